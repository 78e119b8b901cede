// The live badge: shows when the page's event stream is down (htmx's SSE extension retries).
(function () {
  document.body.addEventListener("htmx:sseOpen", function () {
    document.body.dataset.live = "on";
  });
  document.body.addEventListener("htmx:sseError", function () {
    document.body.dataset.live = "off";
  });
  // Counts the live updates applied, so a test (or a curious technician) can see them.
  document.body.addEventListener("htmx:sseMessage", function () {
    var n = parseInt(document.body.dataset.updates || "0", 10) + 1;
    document.body.dataset.updates = String(n);
  });
})();
