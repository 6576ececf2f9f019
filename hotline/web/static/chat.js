// Web chat behaviour on top of htmx: clear and refocus the input after sending, keep the
// newest message in view, and send with Enter (Shift+Enter makes a new line).
(function () {
  "use strict";
  function log() { return document.getElementById("log"); }
  function scrollDown() { var l = log(); if (l) { l.scrollTop = l.scrollHeight; } }
  document.addEventListener("DOMContentLoaded", function () {
    scrollDown();
    var text = document.getElementById("text");
    if (text) {
      text.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
          ev.preventDefault();
          if (text.value.trim()) { text.form.requestSubmit(); }
        }
      });
    }
  });
  document.addEventListener("htmx:afterRequest", function (ev) {
    var form = ev.detail.elt;
    if (form && form.classList && form.classList.contains("composer") && ev.detail.successful) {
      form.reset();
      var text = document.getElementById("text");
      if (text) { text.focus(); }
    }
  });
  document.addEventListener("htmx:afterSwap", scrollDown);
  document.addEventListener("htmx:oobAfterSwap", scrollDown);
})();
