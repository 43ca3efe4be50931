// The browser chat on the WebSocket session protocol (docs/api.md): one session per browser, its id
// kept in local storage so a reload continues the conversation. No libraries: a small markdown
// renderer that escapes everything first, and DOM updates per event.
"use strict";
(function () {
  const root = document.getElementById("chat");
  const log = document.getElementById("log");
  const input = document.getElementById("message");
  const send = document.getElementById("send");
  const composer = document.getElementById("composer");
  const keybox = document.getElementById("keybox");
  const keyInput = document.getElementById("api-key");
  const connection = document.getElementById("connection");
  const demo = root.dataset.demo === "true";
  const store = window.localStorage;
  let socket = null;
  let counter = 0;
  const answers = new Map();

  function sessionId() {
    let id = store.getItem("studio.session");
    if (!id) {
      const bytes = new Uint8Array(16);
      crypto.getRandomValues(bytes);
      id = "browser-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      store.setItem("studio.session", id);
    }
    return id;
  }

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function inline(text) {
    const codes = [];
    return text
      .replace(/`([^`]+)`/g, (_, code) => { codes.push(code); return "\u0000" + (codes.length - 1) + "\u0000"; })
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[\s(])([_*])([^_*\n]+)\2(?=[\s).,!?:;]|$)/g, "$1<em>$3</em>")
      .replace(/\[([^\]]+)\]\((https?:\/\/[^\s)]+|\/[^\s)]*)\)/g, '<a href="$2">$1</a>')
      .replace(/\u0000(\d+)\u0000/g, (_, index) => "<code>" + codes[Number(index)] + "</code>");
  }

  // Markdown enough for the bot's answers: headings, lists, code blocks, emphasis, links.
  function markdown(source) {
    const lines = escapeHtml(source).split("\n");
    const html = [];
    let list = null, code = null, paragraph = [];
    const flush = () => {
      if (paragraph.length) html.push("<p>" + inline(paragraph.join("<br>")) + "</p>");
      paragraph = [];
      if (list) { html.push("</" + list + ">"); list = null; }
    };
    for (const line of lines) {
      if (code !== null) {
        if (line.startsWith("```")) { html.push("<pre><code>" + code.join("\n") + "</code></pre>"); code = null; }
        else code.push(line);
        continue;
      }
      let match;
      if (line.startsWith("```")) { flush(); code = []; }
      else if ((match = line.match(/^(#{1,6})\s+(.*)$/))) { flush(); const level = Math.min(match[1].length + 1, 4); html.push(`<h${level}>${inline(match[2])}</h${level}>`); }
      else if ((match = line.match(/^\s*(?:[-*•]|(\d+)\.)\s+(.*)$/))) {
        const kind = match[1] ? "ol" : "ul";
        if (paragraph.length) { html.push("<p>" + inline(paragraph.join("<br>")) + "</p>"); paragraph = []; }
        if (list !== kind) { if (list) html.push("</" + list + ">"); html.push("<" + kind + ">"); list = kind; }
        html.push("<li>" + inline(match[2]) + "</li>");
      }
      else if (!line.trim()) flush();
      else { if (list) { html.push("</" + list + ">"); list = null; } paragraph.push(line); }
    }
    if (code !== null) html.push("<pre><code>" + code.join("\n") + "</code></pre>");
    flush();
    return html.join("");
  }

  // Dollars as /budget shows them: cents, or more digits only when a sub-cent amount needs them.
  function usd(amount) {
    const micros = Math.round(amount * 1e6);
    if (micros % 10000 === 0) return "$" + (micros / 1e6).toFixed(2);
    return "$" + (micros / 1e6).toFixed(6).replace(/0+$/, "");
  }

  function scrolled(node) { log.scrollTop = log.scrollHeight; return node; }

  function bubble(kind, text) {
    const node = document.createElement("div");
    node.className = "msg " + kind;
    if (kind === "user") node.textContent = text;
    else if (text) node.innerHTML = markdown(text);
    log.appendChild(node);
    return scrolled(node);
  }

  function answerFor(id) {
    let answer = answers.get(id);
    if (!answer) {
      const node = bubble("bot", "");
      node.setAttribute("aria-busy", "true");
      answer = { node, text: "", body: null, status: null };
      answers.set(id, answer);
    }
    return answer;
  }

  function part(answer, tag, className) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    answer.node.appendChild(node);
    return scrolled(node);
  }

  function receive(event) {
    if (event.type === "ready") { connected(); return; }
    const answer = answerFor(event.message_id || event.request_id);
    if (event.type === "status") {
      answer.status = answer.status || part(answer, "p", "status");
      answer.status.textContent = event.text;  // progress updates in place
    } else if (event.type === "token") {
      answer.body = answer.body || part(answer, "div", "text");
      answer.text += event.text;
      answer.body.innerHTML = markdown(answer.text);
      scrolled(answer.body);
    } else if (event.type === "image") {
      const img = part(answer, "img");
      img.src = event.url; img.alt = event.prompt || "generated image";
      answer.body = null; answer.text = "";
    } else if (event.type === "audio") {
      const figure = part(answer, "figure");
      const caption = document.createElement("figcaption");
      caption.textContent = "♪ " + (event.title || "song");
      const audio = document.createElement("audio");
      audio.controls = true; audio.src = event.url;
      audio.setAttribute("aria-label", event.title || "song");
      figure.append(caption, audio);
      if (event.cover_url) { const cover = document.createElement("img"); cover.src = event.cover_url; cover.alt = "cover art"; figure.appendChild(cover); }
      if (event.lyrics) { const lyrics = document.createElement("pre"); lyrics.textContent = event.lyrics; figure.appendChild(lyrics); }
      answer.body = null; answer.text = "";
    } else if (event.type === "error") {
      const node = part(answer, "p", "error");
      node.setAttribute("role", "alert");
      node.textContent = event.message;
    } else if (event.type === "done") {
      if (answer.status) { answer.status.remove(); answer.status = null; }
      part(answer, "p", "cost").textContent = "Charged " + usd(event.cost_usd || 0);
      answer.node.removeAttribute("aria-busy");
    }
  }

  function connected() {
    connection.textContent = demo ? "Connected to the offline demo: nothing is charged." : "Connected.";
    input.disabled = false; send.disabled = false;
    input.focus();
  }

  async function history(key) {
    const headers = key ? { Authorization: "Bearer " + key } : {};
    const response = await fetch("/v1/sessions/" + encodeURIComponent(sessionId()), { headers });
    if (!response.ok) return;
    const session = await response.json();
    for (const event of session.events) {
      if (event.kind === "user_message") bubble("user", (event.intent && event.intent !== "chat" ? "/" + commandOf(event.intent) + " " : "") + event.text);
      else if (event.kind === "answer" || event.kind === "summary") bubble("bot", event.text);
      else if (event.kind === "image") bubble("bot", "_(image: " + event.text + ")_");
      else if (event.kind === "song") bubble("bot", "_(song: " + event.text + ")_");
      else if (event.kind === "failure") bubble("bot", event.text);
    }
  }

  function commandOf(intent) { return { image: "imagine" }[intent] || intent; }

  function connect(key) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/ws/session/${encodeURIComponent(sessionId())}`);
    socket.addEventListener("open", () => socket.send(JSON.stringify(key ? { type: "auth", api_key: key } : { type: "auth", demo: true })));
    socket.addEventListener("message", (message) => receive(JSON.parse(message.data)));
    socket.addEventListener("close", (closed) => {
      input.disabled = true; send.disabled = true;
      connection.textContent = closed.reason === "invalid API key" ? "That API key was refused." : "Disconnected. Reload the page to reconnect.";
      if (closed.reason === "invalid API key") { store.removeItem("studio.key"); keybox.hidden = false; }
    });
  }

  async function start(key) {
    connection.textContent = "Connecting…";
    await history(key).catch(() => {});
    connect(key);
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || !socket || socket.readyState !== WebSocket.OPEN) return;
    const id = "m" + (++counter) + "-" + Date.now();
    bubble("user", text);
    socket.send(JSON.stringify({ type: "message", text, id }));
    input.value = "";
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); composer.requestSubmit(); }
  });
  keybox.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!key) return;
    store.setItem("studio.key", key);
    keybox.hidden = true;
    start(key);
  });

  const saved = store.getItem("studio.key");
  if (saved) { keybox.hidden = true; start(saved); }
  else if (demo) start(null);
  else { connection.textContent = "Enter an API key to start."; keyInput.focus(); }
})();
