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
  // Submit a picker when its selection is changed with a pointer (mouse,
  // touch, pen). A change made with the keyboard is left alone: arrow keys
  // on a closed select change it one option at a time, and submitting then
  // would load a new page at every step (WCAG 3.2.2, on input); keyboard
  // users, and browsers without script, use the form's Filter/Show button,
  // which every picker has. The last input that touched the select decides.
  document.querySelectorAll("form.picker select").forEach(function (s) {
    var byPointer = false;
    s.addEventListener("pointerdown", function () { byPointer = true; });
    s.addEventListener("keydown", function () { byPointer = false; });
    s.addEventListener("change", function () {
      if (byPointer) { s.form.requestSubmit(); }
    });
  });
  // Live scan progress: the scan page's #progress names its Server-Sent
  // Events feed (the console relays the scan service's progress).
  var box = document.getElementById("progress");
  if (box && box.dataset.events && window.EventSource) {
    watchScan(box, 0);
  }
});

// fmtSeconds shows a duration in seconds as "1h 2m 3s".
function fmtSeconds(s) {
  if (!(s >= 0) || !isFinite(s)) { return "—"; }
  s = Math.round(s);
  var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), out = "";
  if (h) { out += h + "h "; }
  if (h || m) { out += m + "m "; }
  return out + (s % 60) + "s";
}

function setText(id, text) {
  var el = document.getElementById(id);
  if (el) { el.textContent = text; }
}

// watchScan shows each progress event; when the run ends it reloads the
// page once (if the state changed) so the job's figures and actions are
// current. A queued scan's feed ends at once (it is not running yet): it is
// asked again every two seconds, a bounded number of times.
function watchScan(box, attempt) {
  var initial = box.dataset.state, errors = 0, ended = false;
  var es = new EventSource(box.dataset.events);
  es.addEventListener("progress", function (ev) {
    errors = 0;
    var p = JSON.parse(ev.data);
    setText("p-state", p.state);
    setText("scan-state", p.state);
    if (p.total > 0 || p.sent > 0) {
      setText("p-sent", String(p.sent));
      setText("p-done", p.done + " of " + p.total);
      setText("p-rate", p.rate_pps.toFixed(1) + " packets/s of a " + p.cap_pps + "/s cap");
      setText("p-elapsed", fmtSeconds(p.elapsed_seconds));
      setText("p-eta", p.final ? "done" : fmtSeconds(p.eta_seconds));
      var bar = document.getElementById("progress-bar");
      if (bar && p.total > 0) { bar.max = p.total; bar.value = p.done; }
    }
  });
  es.addEventListener("end", function (ev) {
    ended = true;
    es.close();
    var end = JSON.parse(ev.data);
    if (end.state && end.state !== initial) {
      // Load the page again without its one-off notice.
      var u = new URL(window.location.href);
      u.searchParams.delete("flash");
      window.location.replace(u.toString());
    } else if (end.state === "queued" && attempt < 300) {
      window.setTimeout(function () { watchScan(box, attempt + 1); }, 2000);
    }
  });
  es.addEventListener("error", function () {
    if (ended) { return; }
    errors += 1;
    if (errors > 5) { es.close(); setText("p-state", "progress feed lost; reload the page"); }
  });
}
