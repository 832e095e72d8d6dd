// Live list: polls the JSON API for records newer than the newest shown (and for records that
// ended since the last poll), and inserts them in id order. Rows are built with textContent:
// nothing from a record is ever parsed as HTML.
(function () {
  "use strict";
  const live = document.getElementById("live");
  const tbody = document.getElementById("rows");
  if (!live || !tbody) return;
  const INTERVAL_MS = 1000;
  let newest = live.dataset.newest || "";
  let mark = live.dataset.pollMark || "";
  const query = live.dataset.query || "";
  const api = live.dataset.api;
  const detailUrl = live.dataset.detail;

  function when(value) { return (value || "").replace("T", " ").slice(0, 23); }
  function ms(value) {
    if (value === null || value === undefined) return "–";
    return value >= 1000 ? (value / 1000).toFixed(2) + " s" : Math.round(value) + " ms";
  }
  function usd(value) {
    if (value === null || value === undefined) return "–";
    return "$" + Number(value).toFixed(6).replace(/0+$/, "").replace(/\.$/, "");
  }
  function statusClass(r) {
    if (r.outcome === "blocked") return "blocked";
    const status = r.status || 0;
    if (r.outcome !== "completed" || status >= 500) return "error";
    if (status >= 400) return "warn";
    return "ok";
  }
  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }
  function buildRow(r) {
    const tr = document.createElement("tr");
    const cls = statusClass(r);
    tr.className = "row fresh " + cls;
    tr.dataset.id = r.id;
    const time = cell(when(r.started_at), "time");
    time.title = r.started_at || "";
    tr.appendChild(time);
    tr.appendChild(cell(r.provider || ""));
    tr.appendChild(cell(r.method || "", "method"));
    const path = cell("", "path");
    const link = document.createElement("a");
    link.href = detailUrl.replace("KEY", encodeURIComponent(r.id));
    link.title = r.path || "";
    link.textContent = r.path || "";
    path.appendChild(link);
    tr.appendChild(path);
    tr.appendChild(cell(r.model || ""));
    const status = cell("", "status");
    const badge = document.createElement("span");
    badge.className = "badge " + cls;
    badge.textContent = r.status || "–";
    status.appendChild(badge);
    tr.appendChild(status);
    const outcome = cell(r.outcome || "", "outcome");
    if (r.stream) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "stream";
      outcome.appendChild(document.createTextNode(" "));
      outcome.appendChild(tag);
    }
    tr.appendChild(outcome);
    tr.appendChild(cell(ms(r.duration_ms), "num"));
    const tokens = r.input_tokens === null || r.input_tokens === undefined
      ? "–" : r.input_tokens + " / " + (r.output_tokens || 0);
    tr.appendChild(cell(tokens, "num"));
    tr.appendChild(cell(usd(r.cost_usd), "num"));
    return tr;
  }
  function insert(r) {
    const existing = tbody.querySelector('tr[data-id="' + CSS.escape(r.id) + '"]');
    if (existing) { existing.replaceWith(buildRow(r)); return; }
    const row = buildRow(r);
    for (const other of tbody.querySelectorAll("tr.row")) {
      if (other.dataset.id < r.id) { tbody.insertBefore(row, other); return; }
    }
    if (tbody.querySelector("tr.more-row")) return; // older than this page shows
    tbody.appendChild(row);
  }
  async function poll() {
    const params = new URLSearchParams(query);
    if (newest) params.set("after", newest);
    if (mark) params.set("ended_since", mark);
    if (!newest && !mark) params.set("after", "0");
    try {
      const response = await fetch(api + "?" + params.toString(), {
        headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store",
      });
      if (response.status === 401) { window.location.reload(); return; }
      if (!response.ok) throw new Error("HTTP " + response.status);
      const data = await response.json();
      mark = data.poll_mark || mark;
      const rows = data.rows || [];
      for (let i = rows.length - 1; i >= 0; i--) {
        insert(rows[i]);
        if (rows[i].id > newest) newest = rows[i].id;
      }
      if (rows.length) {
        const empty = document.getElementById("empty");
        if (empty) empty.remove();
      }
      live.className = "live";
      live.textContent = "● live";
    } catch (err) {
      live.className = "live failing";
      live.textContent = "● reconnecting";
    } finally {
      window.setTimeout(poll, INTERVAL_MS);
    }
  }
  window.setTimeout(poll, INTERVAL_MS);
})();
