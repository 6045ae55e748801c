// itsmd console: asks the live parts of a page (hx-trigger="itsmd:poll from:body") to refresh
// every 3 seconds while the page is visible, and at once when it becomes visible again; a
// background tab does not poll. A file of its own: the CSP forbids inline script and eval.
(function () {
  "use strict";
  function poll() {
    if (document.visibilityState === "visible" && window.htmx) {
      window.htmx.trigger(document.body, "itsmd:poll");
    }
  }
  window.setInterval(poll, 3000);
  document.addEventListener("visibilitychange", poll);
})();
