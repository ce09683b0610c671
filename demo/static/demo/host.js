// The example host page's own code: it uses the widget's page API like a customer's site would.
(function () {
  "use strict";
  var user = document.getElementById("demo-user");
  var log = document.getElementById("events");
  function whenReady(fn) {
    if (window.SuperOrch) fn(window.SuperOrch);
    else setTimeout(function () { whenReady(fn); }, 50);
  }
  whenReady(function (so) {
    if (user) so.identify(JSON.parse(user.textContent));
    so.setContext({ page: location.pathname, title: document.title });
  });
  document.getElementById("open-chat").addEventListener("click", function () { whenReady(function (so) { so.open(); }); });
  document.getElementById("reset-chat").addEventListener("click", function () { whenReady(function (so) { so.reset(); }); });
  window.addEventListener("superorch:ready", function (e) { log.textContent = "Chat ready (conversation " + e.detail.conversation.slice(0, 8) + ")"; });
  window.addEventListener("superorch:message", function (e) { log.textContent = "New message from " + ((e.detail.agent && e.detail.agent.name) || "the team"); });
})();
