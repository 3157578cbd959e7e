// Sends the session's CSRF token with every htmx request (the server checks it on every
// POST) and shows a refused htmx request's answer where it was aimed.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
});
document.addEventListener("htmx:beforeSwap", function (event) {
  var status = event.detail.xhr.status;
  if (status >= 400 && status < 600 && status !== 401) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
