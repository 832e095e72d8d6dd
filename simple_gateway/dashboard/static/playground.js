// Playground: chat through this gateway (Chat Completions, Responses, Anthropic Messages).
// The key lives in this page's memory; only with "remember" ticked is it put in localStorage.
// Replies are written with textContent: nothing a model says is ever parsed as HTML.
(function () {
  "use strict";
  const form = document.getElementById("playground");
  if (!form) return;
  const STORAGE_KEY = "simple-gateway.playground.key";
  const transcript = document.getElementById("transcript");
  const statusLine = document.getElementById("pg-status");
  const detailUrl = document.getElementById("pg-config").dataset.detail;
  let history = [];

  const remembered = window.localStorage.getItem(STORAGE_KEY);
  if (remembered) { form.key.value = remembered; form.remember.checked = true; }
  form.remember.addEventListener("change", function () {
    if (form.remember.checked) window.localStorage.setItem(STORAGE_KEY, form.key.value);
    else window.localStorage.removeItem(STORAGE_KEY);
  });
  form.key.addEventListener("input", function () {
    if (form.remember.checked) window.localStorage.setItem(STORAGE_KEY, form.key.value);
  });
  // Anthropic Messages usually goes to the anthropic provider, the OpenAI APIs to the default.
  const defaultProvider = document.getElementById("pg-config").dataset.defaultProvider;
  form.api.addEventListener("change", function () {
    const wanted = form.api.value === "messages" ? "anthropic" : defaultProvider;
    if ([...form.provider.options].some(function (o) { return o.value === wanted; })) {
      form.provider.value = wanted;
    }
  });
  document.getElementById("clear").addEventListener("click", function () {
    history = [];
    transcript.replaceChildren();
  });

  function bubble(role, text) {
    const div = document.createElement("div");
    div.className = "msg " + role;
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    div.appendChild(body);
    transcript.appendChild(div);
    return div;
  }
  function addMeta(div, text, requestId) {
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = text + " ";
    if (requestId) {
      const link = document.createElement("a");
      link.href = detailUrl.replace("KEY", encodeURIComponent(requestId));
      link.textContent = "view record";
      link.className = "record-link";
      meta.appendChild(link);
    }
    div.appendChild(meta);
  }

  const APIS = {
    chat: {
      path: "/v1/chat/completions",
      headers: function (key) { return key ? { "Authorization": "Bearer " + key } : {}; },
      body: function (model, system, messages, stream) {
        const all = system ? [{ role: "system", content: system }].concat(messages) : messages;
        const body = { model: model, messages: all, stream: stream };
        if (stream) body.stream_options = { include_usage: true };
        return body;
      },
      delta: function (event) {
        const choice = (event.choices || [])[0];
        return choice && choice.delta && choice.delta.content || "";
      },
      whole: function (reply) {
        const choice = (reply.choices || [])[0];
        return choice && choice.message && choice.message.content || "";
      },
    },
    responses: {
      path: "/v1/responses",
      headers: function (key) { return key ? { "Authorization": "Bearer " + key } : {}; },
      body: function (model, system, messages, stream) {
        const body = { model: model, input: messages, stream: stream };
        if (system) body.instructions = system;
        return body;
      },
      delta: function (event) {
        return event.type === "response.output_text.delta" ? event.delta || "" : "";
      },
      whole: function (reply) {
        if (typeof reply.output_text === "string") return reply.output_text;
        const parts = [];
        for (const item of reply.output || []) {
          for (const content of item.content || []) {
            if (content.type === "output_text") parts.push(content.text);
          }
        }
        return parts.join("");
      },
    },
    messages: {
      path: "/v1/messages",
      headers: function (key) {
        const headers = { "anthropic-version": "2023-06-01" };
        if (key) headers["x-api-key"] = key;
        return headers;
      },
      body: function (model, system, messages, stream) {
        const body = { model: model, max_tokens: 1024, messages: messages, stream: stream };
        if (system) body.system = system;
        return body;
      },
      delta: function (event) {
        return event.type === "content_block_delta" && event.delta ? event.delta.text || "" : "";
      },
      whole: function (reply) {
        return (reply.content || []).map(function (c) { return c.text || ""; }).join("");
      },
    },
  };

  async function readStream(response, api, target) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let text = "";
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        for (const line of block.split(/\r?\n/)) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (!data || data === "[DONE]") continue;
          try { text += api.delta(JSON.parse(data)); } catch (err) { /* not JSON: skip */ }
          target.textContent = text;
        }
      }
    }
    return text;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const message = form.message.value.trim();
    if (!message) return;
    const api = APIS[form.api.value];
    const stream = form.stream.checked;
    history.push({ role: "user", content: message });
    bubble("user", message);
    form.message.value = "";
    const reply = bubble("assistant", "…");
    const target = reply.querySelector(".text");
    statusLine.textContent = "sending…";
    const started = performance.now();
    try {
      const response = await fetch("/" + encodeURIComponent(form.provider.value) + api.path, {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/json" }, api.headers(form.key.value)),
        body: JSON.stringify(api.body(form.model.value, form.system.value.trim(), history, stream)),
        credentials: "omit",
      });
      const requestId = response.headers.get("x-request-id");
      let text;
      if (!response.ok) {
        text = await response.text();
        reply.classList.add("failed");
        target.textContent = "HTTP " + response.status + ": " + text;
        history.pop();
      } else if (stream && (response.headers.get("content-type") || "").includes("event-stream")) {
        text = await readStream(response, api, target);
        history.push({ role: "assistant", content: text });
      } else {
        text = api.whole(await response.json());
        target.textContent = text;
        history.push({ role: "assistant", content: text });
      }
      addMeta(reply, ((performance.now() - started) / 1000).toFixed(2) + " s ·", requestId);
      statusLine.textContent = "";
    } catch (err) {
      reply.classList.add("failed");
      target.textContent = "failed: " + err;
      history.pop();
      statusLine.textContent = "";
    }
  });
})();
