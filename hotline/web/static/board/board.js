// Board behaviour without inline script (CSP: script-src 'self').
(function () {
  "use strict";
  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  // Every htmx request carries the session's CSRF token.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrf();
  });
  // <form data-confirm="Text"> asks before it is sent (merge, delete, transfer ...).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form && form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
  // <button data-insert-target="#id" data-insert-text="..."> inserts text into a textarea.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-insert-target]") : null;
    if (!button) { return; }
    var area = document.querySelector(button.dataset.insertTarget);
    if (!area) { return; }
    var text = button.dataset.insertText || "";
    var start = area.selectionStart || area.value.length;
    area.value = area.value.slice(0, start) + text + area.value.slice(area.selectionEnd || start);
    area.focus();
    event.preventDefault();
  });
})();
