// FirewallIQ Secure console: the little script the pages use. Everything
// works without it; it only adds conveniences. Loaded from 'self' (the CSP
// forbids inline script).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Ask before destructive actions (buttons styled "danger").
  document.querySelectorAll("form button.danger").forEach(function (b) {
    b.form.addEventListener("submit", function (ev) {
      if (ev.submitter === b && !window.confirm(b.textContent.trim() + "?")) {
        ev.preventDefault();
      }
    });
  });
  // Submit a picker when its selection changes (the Show button stays for
  // keyboard users and for browsers without script).
  document.querySelectorAll("form.picker select").forEach(function (s) {
    s.addEventListener("change", function () { s.form.requestSubmit(); });
  });
});
