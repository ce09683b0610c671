/*
 * The staff inbox's live part (/staff/): one WebSocket to /ws/staff/ (the staff session
 * authenticates it). The server sends `inbox.changed` when a conversation's status changes
 * or its user writes to a person (htmx re-reads the list; the frame carries the number
 * waiting, shown in the title as "(3) Inbox"), `presence.changed` when someone comes online
 * (htmx re-reads who is online) and, for the conversation on screen, its chat frames:
 * streamed agent text is shown as it comes (textContent only), and a finished message or a
 * status change makes htmx re-read the server-rendered (sanitised) transcript or actions.
 * A conversation that starts waiting raises a browser notification once the member of
 * staff turned them on (a click on "Turn on notifications"; never asked on load).
 * Canned replies: the picker (or "/" and a title in the reply box) inserts the text into
 * the reply, which stays editable; nothing is sent until "Send reply".
 */
(function () {
  "use strict";
  var PING_MS = 60000; // refreshes the member of staff's presence (StaffPresence)
  var NO_UUID = "00000000-0000-0000-0000-000000000000";
  var UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  var SUGGESTIONS = 8;
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

  // --- The title's badge: the number of conversations waiting for a person ------------

  function setWaiting(waiting) {
    document.title = waiting > 0 ? "(" + waiting + ") " + baseTitle : baseTitle;
  }

  function updateTitle() {
    var list = document.getElementById("inbox-list");
    setWaiting(list ? parseInt(list.getAttribute("data-waiting") || "0", 10) : 0);
  }

  function countChanged(waiting) {
    if (typeof waiting !== "number" || waiting < 0) return;
    var list = document.getElementById("inbox-list");
    if (list) list.setAttribute("data-waiting", String(waiting)); // until htmx re-reads it
    setWaiting(waiting);
  }

  // --- Browser notifications ------------------------------------------------------------

  var notifyButton = document.getElementById("notify-on");
  var notifyState = document.getElementById("notify-state");

  function notificationsAvailable() {
    return "Notification" in window;
  }

  function showNotifyState() {
    if (!notifyButton || !notifyState || !notificationsAvailable()) return;
    var permission = window.Notification.permission;
    notifyButton.hidden = permission !== "default";
    notifyState.hidden = permission === "default";
    notifyState.textContent = permission === "granted"
      ? "Notifications on"
      : "Notifications are blocked in this browser's settings";
  }

  function askForNotifications() {
    var asked = window.Notification.requestPermission(showNotifyState); // older Safari: callback
    if (asked && typeof asked.then === "function") asked.then(showNotifyState, showNotifyState);
  }

  function conversationUrl(key) {
    var pattern = document.body.getAttribute("data-conversation-url") || "";
    return UUID.test(key || "") && pattern.indexOf(NO_UUID) >= 0 ? pattern.replace(NO_UUID, key) : null;
  }

  // Only a conversation that starts waiting (not every change, not a user's message).
  function notifyWaiting(frame) {
    if (frame.change !== "status" || frame.status !== "waiting") return;
    if (!notificationsAvailable() || window.Notification.permission !== "granted") return;
    var url = conversationUrl(frame.conversation);
    if (!url) return;
    var waiting = typeof frame.waiting === "number" ? frame.waiting : 1;
    try {
      var note = new window.Notification("A conversation is waiting for a person", {
        body: waiting + " waiting now. Click to open it.",
        tag: "superorch-waiting-" + frame.conversation, // every open inbox tab shows it once
      });
      note.onclick = function () {
        window.focus();
        window.location.assign(url);
        note.close();
      };
    } catch (e) {
      /* a browser that only notifies from a service worker: the title's badge still shows it */
    }
  }

  // --- The socket -----------------------------------------------------------------------

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
        countChanged(frame.waiting);
        notifyWaiting(frame);
        fire("inbox-changed");
        break;
      case "presence.changed":
        fire("presence-changed");
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
      case "approval.request":
      case "approval.resolved":
        fire("approvals-changed"); // the pane's "Waiting for approval" is re-read
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
      fire("presence-changed");
    };
  }

  // --- Canned replies ---------------------------------------------------------------------

  function setupCanned() {
    var box = document.getElementById("reply-text");
    var picker = document.getElementById("canned");
    var select = document.getElementById("canned-pick");
    var suggest = document.getElementById("canned-suggest");
    if (!box || !picker || !select || !suggest) return;
    var replies = Array.prototype.slice.call(select.options, 1).map(function (option) {
      return { title: option.textContent, text: option.getAttribute("data-text") || "" };
    });
    var shown = [];
    var active = 0;
    picker.hidden = false;
    box.setAttribute("aria-describedby", "canned-hint");

    // Inserted where the cursor is (replacing a selection); the reply stays editable.
    function insert(text, start, end) {
      box.focus();
      box.setRangeText(text, start, end, "end");
      box.dispatchEvent(new Event("input", { bubbles: true }));
    }

    select.addEventListener("change", function () {
      var option = select.options[select.selectedIndex];
      if (option && option.value) {
        insert(option.getAttribute("data-text") || "", box.selectionStart, box.selectionEnd);
      }
      select.value = "";
    });

    function hide() {
      suggest.hidden = true;
      suggest.textContent = "";
      shown = [];
    }

    function mark() {
      Array.prototype.forEach.call(suggest.children, function (item, i) {
        item.setAttribute("aria-selected", i === active ? "true" : "false");
      });
    }

    function pick(i) {
      var reply = shown[i];
      hide();
      if (reply) insert(reply.text, 0, box.value.length); // the box held only "/title"
    }

    // "/word" alone in the reply box: the canned replies whose title has the word.
    box.addEventListener("input", function () {
      var typed = /^\/(\S*)$/.exec(box.value);
      if (!typed) { hide(); return; }
      var word = typed[1].toLowerCase();
      shown = replies.filter(function (r) {
        return r.title.toLowerCase().indexOf(word) >= 0;
      }).slice(0, SUGGESTIONS);
      suggest.textContent = "";
      shown.forEach(function (reply, i) {
        var item = document.createElement("li");
        item.setAttribute("role", "option");
        item.textContent = reply.title;
        item.addEventListener("mousedown", function (event) {
          event.preventDefault(); // the reply box keeps the focus
          pick(i);
        });
        suggest.appendChild(item);
      });
      active = 0;
      mark();
      suggest.hidden = shown.length === 0;
    });

    box.addEventListener("keydown", function (event) {
      if (suggest.hidden || !shown.length) return;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        active = (active + (event.key === "ArrowDown" ? 1 : shown.length - 1)) % shown.length;
        mark();
      } else if (event.key === "Enter" || event.key === "Tab") {
        pick(active);
      } else if (event.key === "Escape") {
        hide();
      } else {
        return;
      }
      event.preventDefault();
    });
    box.addEventListener("blur", hide);
  }

  if (notifyButton && notificationsAvailable()) {
    notifyButton.addEventListener("click", askForNotifications);
    showNotifyState();
  }
  setupCanned();
  // The status filter applies on change (the list is swapped by htmx: delegate).
  document.body.addEventListener("change", function (event) {
    if (event.target.id === "inbox-status" && event.target.form) {
      event.target.form.requestSubmit();
    }
  });
  document.body.addEventListener("htmx:afterSettle", updateTitle);
  updateTitle();
  connect();
})();
