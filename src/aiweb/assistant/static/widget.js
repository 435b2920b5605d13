/*! aiweb chat widget, served by aiweb at /widget.js (no framework, no CDN).
 *
 *   <script src="https://aiweb.example/widget.js" data-assistant="helpdesk"
 *           data-key="aiw_…" async></script>
 *
 * Optional attributes: data-title (the panel's heading, default "Chat with us"),
 * data-greeting (a first line shown before the visitor writes), data-open="true"
 * (open on load).
 *
 * The key is a publishable chat key (`aiweb keys create site --scopes chat --assistants
 * helpdesk --origins https://shop.example`). Everything lives in one element's shadow
 * root: the page's CSS cannot reach it and its CSS cannot reach the page. Styles are a
 * constructed stylesheet (CSSOM), text is set with textContent, never as HTML, so the
 * widget works under a strict Content-Security-Policy on the host page: the page needs
 * only script-src and connect-src for the aiweb origin (ws: or wss:).
 *
 * Transport: one WebSocket, /v1/assistants/{name}/ws (frames in docs/assistant.md). A
 * dropped connection is reopened with exponential back-off (1 s doubling to 30 s, with
 * jitter, at once when the browser comes back online) and resumes from the last message
 * shown, so an operator's reply sent meanwhile is not lost. The conversation id is kept
 * in sessionStorage: a reload in the same tab continues the conversation.
 */
(function () {
  "use strict";

  var script =
    document.currentScript ||
    document.querySelector('script[src*="widget.js"][data-assistant]');
  if (!script) return;
  var assistant = script.getAttribute("data-assistant") || "";
  var key = script.getAttribute("data-key") || "";
  var heading = script.getAttribute("data-title") || "Chat with us";
  var greeting = script.getAttribute("data-greeting");
  var instances = (window.__aiwebWidgets = window.__aiwebWidgets || {});
  if (!assistant || instances[assistant]) return;
  instances[assistant] = true;

  var server = new URL(script.src, location.href);
  var socketUrl =
    (server.protocol === "https:" ? "wss://" : "ws://") +
    server.host +
    "/v1/assistants/" +
    encodeURIComponent(assistant) +
    "/ws?key=" +
    encodeURIComponent(key);
  var storageKey = "aiweb-widget:" + assistant + ":conversation";
  var MAX_TEXT = 2000;
  var PERMANENT = { 4401: "the chat key is not valid", 4403: "this page may not use the chat",
                    4404: "this assistant does not exist" };

  var CSS = [
    ":host { all: initial; position: fixed; right: 16px; bottom: 16px; z-index: 2147483000;",
    "  font: 15px/1.4 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1f2328; }",
    "* { box-sizing: border-box; }",
    "[hidden] { display: none !important; }",
    ".launcher { width: 56px; height: 56px; border-radius: 50%; border: 0; cursor: pointer;",
    "  background: #1f6feb; color: #fff; box-shadow: 0 4px 14px rgba(0,0,0,.25);",
    "  display: flex; align-items: center; justify-content: center; }",
    ".launcher svg { width: 28px; height: 28px; fill: currentColor; }",
    "button:focus-visible, textarea:focus-visible, a:focus-visible, .log:focus-visible {",
    "  outline: 3px solid #f59e0b; outline-offset: 2px; }",
    ".panel { position: fixed; right: 16px; bottom: 84px; width: 360px; height: 520px;",
    "  max-height: calc(100vh - 100px); display: flex; flex-direction: column; background: #fff;",
    "  border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.3); overflow: hidden; }",
    "header { display: flex; align-items: center; gap: 8px; padding: 12px 14px;",
    "  background: #1f6feb; color: #fff; }",
    "header h2 { flex: 1; margin: 0; font-size: 16px; font-weight: 600; }",
    ".close { background: transparent; color: #fff; border: 0; font-size: 22px; line-height: 1;",
    "  cursor: pointer; padding: 4px 8px; border-radius: 6px; }",
    ".status { margin: 0; padding: 6px 14px; font-size: 13px; background: #fff8c5; color: #3d2e00; }",
    ".log { flex: 1; overflow-y: auto; margin: 0; padding: 12px; list-style: none;",
    "  display: flex; flex-direction: column; gap: 8px; }",
    ".msg { max-width: 85%; padding: 8px 12px; border-radius: 12px; white-space: pre-wrap;",
    "  overflow-wrap: anywhere; }",
    ".msg.visitor { align-self: flex-end; background: #1f6feb; color: #fff; }",
    ".msg.bot, .msg.agent { align-self: flex-start; background: #f0f2f5; }",
    ".msg.agent { border-left: 4px solid #2da44e; }",
    ".msg.error { align-self: center; background: #ffebe9; color: #82071e; font-size: 13px; }",
    ".who { display: block; font-size: 12px; color: #57606a; margin-bottom: 2px; }",
    ".sources { margin: 6px 0 0; padding-left: 18px; font-size: 13px; }",
    ".sources a { color: #0550ae; }",
    ".typing { margin: 0 12px 6px; font-size: 13px; color: #57606a; }",
    ".rate { display: flex; gap: 4px; margin-top: 4px; }",
    ".rate button { border: 1px solid #d0d7de; background: #fff; border-radius: 6px; cursor: pointer;",
    "  line-height: 0; padding: 3px 5px; color: #57606a; }",
    ".rate svg { width: 14px; height: 14px; fill: currentColor; }",
    ".rate button[aria-pressed=true] { background: #ddf4ff; border-color: #0969da; color: #0969da; }",
    "form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #d0d7de; }",
    "textarea { flex: 1; resize: none; font: inherit; padding: 8px; border: 1px solid #8c959f;",
    "  border-radius: 8px; min-height: 40px; max-height: 120px; color: inherit; }",
    "form button { border: 0; border-radius: 8px; padding: 0 14px; background: #1f6feb; color: #fff;",
    "  font: inherit; font-weight: 600; cursor: pointer; }",
    ".sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden;",
    "  clip: rect(0 0 0 0); white-space: nowrap; }",
    "@media (max-width: 480px) {",
    "  .panel { right: 0; bottom: 0; width: 100vw; height: 100%; max-height: none; border-radius: 0; }",
    "}",
  ].join("\n");

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs || {}) node.setAttribute(name, attrs[name]);
    if (text != null) node.textContent = text;
    return node;
  }

  var CHAT_ICON =
    "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 2-2zm3 6v2h10V9H7zm0 4v2h7v-2H7z";
  // Material Design's thumb_up (Apache-2.0); thumbs down is the same turned over
  var THUMB_ICON =
    "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06" +
    "L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22" +
    "l3.02-7.05c.09-.23.14-.47.14-.73v-2z";

  function icon(d, turned) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    if (turned) path.setAttribute("transform", "rotate(180 12 12)");
    svg.appendChild(path);
    return svg;
  }

  // --- the DOM, in a shadow root -------------------------------------------------
  var host = el("div", { "data-aiweb-widget": assistant });
  var root = host.attachShadow({ mode: "open" });
  if ("adoptedStyleSheets" in root && typeof CSSStyleSheet.prototype.replaceSync === "function") {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.appendChild(el("style", {}, CSS)); // older browsers; needs style-src to allow it
  }
  var launcher = el("button", {
    type: "button", class: "launcher", "aria-label": "Open chat: " + heading,
    "aria-expanded": "false", "aria-controls": "aiweb-panel",
  });
  launcher.appendChild(icon(CHAT_ICON));
  var panel = el("section", {
    id: "aiweb-panel", class: "panel", role: "dialog", "aria-modal": "false",
    "aria-labelledby": "aiweb-title",
  });
  panel.hidden = true;
  var header = el("header");
  header.appendChild(el("h2", { id: "aiweb-title" }, heading));
  var closeButton = el("button", { type: "button", class: "close", "aria-label": "Close chat" }, "×");
  header.appendChild(closeButton);
  var status = el("p", { class: "status", role: "status" });
  status.hidden = true;
  var log = el("ol", {
    class: "log", role: "log", "aria-live": "polite", "aria-label": "Messages", tabindex: "0",
  });
  var typing = el("p", { class: "typing", "aria-live": "polite" }, "Typing…");
  typing.hidden = true;
  var form = el("form", { "aria-label": "Send a message" });
  var input = el("textarea", {
    id: "aiweb-input", rows: "1", maxlength: String(MAX_TEXT), placeholder: "Type a message…",
    autocomplete: "off",
  });
  var sendButton = el("button", { type: "submit" }, "Send");
  form.appendChild(el("label", { for: "aiweb-input", class: "sr-only" }, "Your message"));
  form.appendChild(input);
  form.appendChild(sendButton);
  panel.appendChild(header);
  panel.appendChild(status);
  panel.appendChild(log);
  panel.appendChild(typing);
  panel.appendChild(form);
  root.appendChild(panel);
  root.appendChild(launcher);

  // --- state ---------------------------------------------------------------------
  var socket = null;
  var attempts = 0;
  var retryTimer = null;
  var stopped = false; // a refusal no retry can mend (bad key, origin, assistant)
  var conversationId = null;
  try { conversationId = sessionStorage.getItem(storageKey); } catch (e) { /* storage off */ }
  var lastSeq = 0; // the highest message seq shown
  var outbox = []; // frames written while the socket was down
  var pending = []; // the visitor's texts shown before the server numbered them

  function setStatus(text) {
    status.textContent = text || "";
    status.hidden = !text;
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function rating(seq) {
    // thumbs up or down on a bot reply: {"type": "feedback", "seq", "helpful"}
    var group = el("div", { class: "rate", role: "group", "aria-label": "Was this helpful?" });
    [[true, "Helpful"], [false, "Not helpful"]].forEach(function (choice) {
      var button = el("button", { type: "button", "aria-label": choice[1], "aria-pressed": "false",
                                  title: choice[1] });
      button.appendChild(icon(THUMB_ICON, !choice[0]));
      button.addEventListener("click", function () {
        group.querySelectorAll("button").forEach(function (b) {
          b.setAttribute("aria-pressed", String(b === button));
        });
        send({ type: "feedback", conversation_id: conversationId, seq: seq, helpful: choice[0] });
      });
      group.appendChild(button);
    });
    return group;
  }

  function render(role, text, sources, seq, type) {
    var item = el("li", { class: "msg " + role });
    if (role === "agent") item.appendChild(el("span", { class: "who" }, "Support agent"));
    item.appendChild(document.createTextNode(text));
    var links = (sources || []).filter(function (s) { return s && (s.url || s.title); });
    if (links.length) {
      var list = el("ul", { class: "sources", "aria-label": "Sources" });
      links.forEach(function (source) {
        var entry = el("li");
        if (source.url && /^https?:\/\//i.test(source.url)) {
          entry.appendChild(el("a", { href: source.url, target: "_blank",
            rel: "noopener noreferrer" }, source.title || source.url));
        } else {
          entry.textContent = source.title;
        }
        list.appendChild(entry);
      });
      item.appendChild(list);
    }
    if (role === "bot" && seq && type !== "slot_prompt" && type !== "handoff") {
      item.appendChild(rating(seq));
    }
    log.appendChild(item);
    scrollDown();
    return item;
  }

  function showError(text) {
    var item = render("error", text);
    item.setAttribute("role", "alert");
  }

  function remember(id) {
    if (!id || id === conversationId) return;
    conversationId = id;
    try { sessionStorage.setItem(storageKey, id); } catch (e) { /* storage off */ }
  }

  function showStatus(value) {
    setStatus(
      value === "waiting_for_agent" ? "Waiting for a person to join…" :
      value === "agent" ? "You are talking with a person." : ""
    );
  }

  // --- frames from the server ------------------------------------------------------
  function onFrame(frame) {
    if (!frame || typeof frame !== "object") return;
    if (frame.type === "typing") {
      typing.hidden = !frame.typing;
    } else if (frame.type === "turn") {
      var turn = frame.turn || {};
      remember(turn.conversation_id);
      pending.shift();
      if (turn.seq > lastSeq) {
        if (turn.reply != null) render("bot", turn.reply, turn.sources, turn.seq, turn.type);
        lastSeq = turn.seq;
      }
      showStatus(turn.status);
    } else if (frame.type === "message") {
      var message = frame.message || {};
      if (!(message.seq > lastSeq)) return; // shown already
      lastSeq = message.seq;
      if (message.role === "visitor") {
        if (pending.length && pending[0] === message.text) return; // our own, shown
        render("visitor", message.text);
      } else {
        render(message.role === "agent" ? "agent" : "bot", message.text, message.sources,
               message.seq, message.type);
      }
    } else if (frame.type === "feedback") {
      // stored; nothing more to show (the pressed button says it)
    } else if (frame.type === "status") {
      showStatus(frame.status);
    } else if (frame.type === "error") {
      pending.shift();
      if (frame.status === 404) forget();
      showError(ERRORS[frame.status] ||
                "Sorry, that did not work: " + (frame.detail || frame.title || frame.status));
    }
  }

  var ERRORS = {
    404: "This conversation has ended; send your message again to start a new one.",
    429: "You are sending messages too fast; wait a moment.",
  };

  function forget() {
    // the conversation was erased or expired: the next message starts a new one
    conversationId = null;
    lastSeq = 0;
    try { sessionStorage.removeItem(storageKey); } catch (e) { /* storage off */ }
  }

  // --- the connection ----------------------------------------------------------------
  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
    else {
      outbox.push(frame);
      connect();
    }
  }

  function connect() {
    if (stopped || (socket && socket.readyState <= WebSocket.OPEN)) return;
    clearTimeout(retryTimer);
    retryTimer = null;
    socket = new WebSocket(socketUrl);
    socket.onopen = function () {
      attempts = 0;
      setStatus("");
      if (conversationId) {
        socket.send(JSON.stringify({ type: "resume", conversation_id: conversationId,
                                     after: lastSeq }));
      }
      var waiting = outbox;
      outbox = [];
      waiting.forEach(function (frame) {
        if (frame.conversation_id === null) frame.conversation_id = conversationId;
        socket.send(JSON.stringify(frame));
      });
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      onFrame(frame);
    };
    socket.onclose = function (event) {
      socket = null;
      typing.hidden = true;
      if (PERMANENT[event.code]) {
        stopped = true;
        setStatus("Chat unavailable: " + PERMANENT[event.code] + ".");
        return;
      }
      if (panel.hidden && !outbox.length) return; // reconnect when opened again
      var delay = Math.min(30000, 1000 * Math.pow(2, attempts)) * (0.5 + Math.random() / 2);
      attempts += 1;
      setStatus("Connection lost; reconnecting…");
      retryTimer = setTimeout(connect, delay);
    };
  }

  window.addEventListener("online", function () {
    if (!panel.hidden && !socket) connect();
  });

  // --- the visitor's actions -----------------------------------------------------
  function open() {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", "Close chat: " + heading);
    if (greeting && !log.childElementCount) render("bot", greeting);
    connect();
    input.focus();
  }

  function close() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", "Open chat: " + heading);
    launcher.focus();
  }

  launcher.addEventListener("click", function () {
    if (panel.hidden) open();
    else close();
  });
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      event.preventDefault();
      close();
    }
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
    }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim().slice(0, MAX_TEXT);
    if (!text) return;
    input.value = "";
    render("visitor", text);
    pending.push(text);
    send({ type: "message", text: text, conversation_id: conversationId });
  });

  function mount() {
    document.body.appendChild(host);
    if (script.getAttribute("data-open") === "true") open();
    else if (conversationId) connect(); // a reload: show the conversation so far
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
