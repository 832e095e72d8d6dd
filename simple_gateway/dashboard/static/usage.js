// Usage page charts (uPlot), drawn from /api/usage; labels are set as text, never as HTML.
(function () {
  "use strict";
  const source = document.getElementById("usage-data");
  if (!source || typeof uPlot === "undefined") return;

  function seconds(bucket) {
    const iso = bucket.length === 10 ? bucket + "T00:00:00Z" : bucket + ":00Z";
    return Date.parse(iso) / 1000;
  }
  function width(element) { return Math.max(300, element.clientWidth - 4); }
  let span = null; // [since, until] of the chosen range, in seconds

  function chart(id, series, data, yLabel) {
    const element = document.getElementById(id);
    if (!element) return;
    if (!data[0].length) { element.textContent = "No requests in this range."; return; }
    const options = {
      width: width(element), height: 220,
      scales: { x: { time: true, range: function () { return span; } } },
      axes: [{}, { label: yLabel, size: 60 }],
      series: [{ label: "time (UTC)" }].concat(series.map(function (s) {
        return Object.assign({ points: { show: true, size: 5 } }, s);
      })),
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
    };
    new uPlot(options, data, element);
  }
  function bars(id, rows) {
    const element = document.getElementById(id);
    if (!element) return;
    const max = Math.max.apply(null, rows.map(function (r) { return r.cost_usd; }).concat([0]));
    if (!rows.length || max <= 0) { element.textContent = "No priced usage in this range."; return; }
    for (const r of rows.slice(0, 12)) {
      const bar = document.createElement("div");
      bar.className = "bar";
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = r.model;
      label.title = r.model;
      const track = document.createElement("div");
      const fill = document.createElement("div");
      fill.className = "fill";
      fill.style.width = Math.max(1, 100 * r.cost_usd / max) + "%";
      track.appendChild(fill);
      const value = document.createElement("span");
      value.className = "num";
      value.textContent = "$" + r.cost_usd.toFixed(4);
      bar.append(label, track, value);
      element.appendChild(bar);
    }
  }
  fetch(source.dataset.api, { credentials: "same-origin", cache: "no-store" })
    .then(function (response) { return response.json(); })
    .then(function (data) {
      const t = data.timeline || [];
      span = [Date.parse(data.range.since) / 1000, Date.parse(data.range.until) / 1000];
      const x = t.map(function (r) { return seconds(r.bucket); });
      chart("chart-rate", [{ label: "requests/min", stroke: "#2f5bea", fill: "rgba(47,91,234,0.1)" }],
        [x, t.map(function (r) { return r.per_minute; })], "req/min");
      chart("chart-errors", [{ label: "error rate %", stroke: "#c62828" }],
        [x, t.map(function (r) { return 100 * r.error_rate; })], "%");
      chart("chart-latency", [
        { label: "p50 ms", stroke: "#1a7f37" }, { label: "p95 ms", stroke: "#9a6700" },
      ], [x, t.map(function (r) { return r.p50_ms; }), t.map(function (r) { return r.p95_ms; })], "ms");
      bars("chart-cost", data.by_model || []);
    })
    .catch(function () {
      for (const id of ["chart-rate", "chart-errors", "chart-latency"]) {
        const element = document.getElementById(id);
        if (element) element.textContent = "Could not load the figures.";
      }
    });
})();
