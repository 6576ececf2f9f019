// Administration pages: copy a one-time secret (the button is shown only where JS runs).
(function () {
  "use strict";
  function setup() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      var field = document.querySelector(button.dataset.copy);
      if (!field) { return; }
      button.hidden = false;
      var label = button.textContent;
      button.addEventListener("click", function () {
        field.select();
        var done = function () {
          button.textContent = button.dataset.copied || label;
          window.setTimeout(function () { button.textContent = label; }, 2500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(field.value).then(done, function () {});
        } else if (document.execCommand && document.execCommand("copy")) {
          done();
        }
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();
