/*
 * The staff inbox's live part (/staff/): one WebSocket to /ws/staff/ (the staff session
 * authenticates it). The server sends `inbox.changed` when a conversation's status changes
 * (htmx re-reads the list) and, for the conversation on screen, its chat frames: streamed
 * agent text is shown as it comes (textContent only), and a finished message or a status
 * change makes htmx re-read the server-rendered (sanitised) transcript or actions.
 * The title shows the number of conversations waiting for a person.
 */
(function () {
  "use strict";
  var PING_MS = 60000; // refreshes the member of staff's presence (StaffPresence)
  var baseTitle = document.title;
  var live = document.getElementById("inbox-live");
  var split = document.querySelector("[data-conversation].so-inbox__split");
  var watched = split ? split.getAttribute("data-conversation") : null;
  var retryMs = 1000;

  var timers = {};

  // Events that come in a burst (a user typing fast, many takeovers) cost one re-read.
  function fire(name) {
    if (timers[name]) return;
    timers[name] = setTimeout(function () {
      timers[name] = null;
      if (window.htmx) window.htmx.trigger(document.body, name);
    }, 150);
  }

  function updateTitle() {
    var list = document.getElementById("inbox-list");
    var waiting = list ? parseInt(list.getAttribute("data-waiting") || "0", 10) : 0;
    document.title = waiting > 0 ? "(" + waiting + ") " + baseTitle : baseTitle;
  }

  function showDelta(frame) {
    var box = document.getElementById("transcript-live");
    if (!box) return;
    if (box.getAttribute("data-message") !== frame.message) {
      box.setAttribute("data-message", frame.message);
      box.textContent = (frame.agent ? frame.agent + ": " : "");
    }
    box.hidden = false;
    box.textContent += frame.text || "";
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "inbox.changed":
        fire("inbox-changed");
        break;
      case "message.delta":
        showDelta(frame);
        break;
      case "message.ack":
      case "message.done":
        fire("transcript-changed");
        break;
      case "conversation.status":
        fire("status-changed");
        fire("transcript-changed");
        break;
      default:
        break;
    }
  }

  function setState(state, words) {
    if (!live) return;
    live.setAttribute("data-state", state);
    live.textContent = words;
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + document.body.getAttribute("data-ws-path"));
    var ping = null;
    socket.onopen = function () {
      retryMs = 1000;
      setState("online", "Live");
      if (watched) socket.send(JSON.stringify({ type: "watch", conversation: watched }));
      ping = setInterval(function () { socket.send(JSON.stringify({ type: "ping" })); }, PING_MS);
    };
    socket.onmessage = function (event) {
      try { onFrame(JSON.parse(event.data)); } catch (e) { /* not a frame we know */ }
    };
    socket.onclose = function () {
      clearInterval(ping);
      setState("offline", "Offline: reconnecting…");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
      fire("inbox-changed"); // whatever changed meanwhile
    };
  }

  document.body.addEventListener("htmx:afterSettle", updateTitle);
  updateTitle();
  connect();
})();
