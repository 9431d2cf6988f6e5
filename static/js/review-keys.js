/* Keyboard-first reviewing: a approve, r then 1-5 reject with a reason, e edit, s skip, u undo, ? help.
   htmx does the requests; this file only maps keys to buttons, times each example, and keeps
   one request in flight at a time (a double key press never submits twice). */
(function () {
  "use strict";
  var shownAt = performance.now();

  function card() { return document.getElementById("review-card"); }
  function q(sel) { var c = card(); return c ? c.querySelector(sel) : null; }
  function typing(t) { return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)); }
  // One request at a time: set when a request leaves the card, cleared when its answer is about to be swapped
  // in (beforeSwap fires on the old card while it is still in the page) or when it fails.
  var inFlight = false;
  function busy() { return inFlight; }
  function fromCard(e) { return e.detail.elt && e.detail.elt.closest && e.detail.elt.closest("#review-card"); }
  document.addEventListener("htmx:beforeRequest", function (e) { if (fromCard(e)) inFlight = true; });
  ["htmx:afterRequest", "htmx:responseError", "htmx:sendError", "htmx:timeout", "htmx:swapError"].forEach(function (name) {
    document.addEventListener(name, function () { inFlight = false; });
  });
  // Keys send the button's request through htmx.ajax: it works even in the instant after a swap, before htmx
  // has bound the new card's buttons (a click then would be lost).
  function click(el) {
    if (!el || el.disabled) return false;
    var url = el.getAttribute("hx-post");
    if (!url || !window.htmx) { el.click(); return true; }
    htmx.ajax("POST", url, { source: el, target: "#review-card", swap: "outerHTML" });
    return true;
  }

  function armReject(on) {
    var box = q("#reject-reasons"), btn = q('[data-action="reject-arm"]');
    if (!box) return;
    box.hidden = !on;
    if (btn) btn.setAttribute("aria-expanded", on ? "true" : "false");
    if (on) { openEdit(false); var first = box.querySelector("button[data-reason]"); if (first) first.focus(); }
  }
  function rejectArmed() { var box = q("#reject-reasons"); return !!box && !box.hidden; }

  function openEdit(on) {
    var form = q("#edit-form"), btn = q('[data-action="edit-open"]');
    if (!form) return;
    form.hidden = !on;
    if (btn) btn.setAttribute("aria-expanded", on ? "true" : "false");
    if (on) { armReject(false); var first = form.querySelector("textarea"); if (first) first.focus(); }
    else { var c = card(); if (c) c.focus(); }
  }

  function toggleHelp(force) {
    var d = document.getElementById("review-help");
    if (!d) return;
    var open = force === undefined ? !d.open : force;
    if (open && !d.open) d.showModal(); else if (!open && d.open) d.close();
  }

  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.altKey || e.metaKey || !card()) return;
    var help = document.getElementById("review-help");
    if (typing(e.target)) {
      if (e.key === "Escape") { openEdit(false); e.preventDefault(); }
      else if (e.key === "Enter" && e.ctrlKey) {
        var form = e.target.closest("form");
        if (form && form.id === "edit-form" && !busy()) { form.requestSubmit(); }
        e.preventDefault();
      }
      return;
    }
    if (e.ctrlKey) return;
    var k = e.key;
    if (help && help.open && k !== "?" && k !== "Escape") return;
    if (busy() && "arsu12345".indexOf(k) >= 0) { e.preventDefault(); return; }
    if (k === "?") toggleHelp();
    else if (k === "Escape") { armReject(false); openEdit(false); toggleHelp(false); }
    else if (/^[1-5]$/.test(k)) { if (!rejectArmed() || !click(q('#reject-reasons [data-reason="' + k + '"]'))) return; }
    else if (k === "a") click(q('[data-key="a"]'));
    else if (k === "r") armReject(!rejectArmed());
    else if (k === "e") openEdit(true);
    else if (k === "s") click(q('[data-key="s"]'));
    else if (k === "u") click(q('[data-key="u"]'));
    else return;
    e.preventDefault();
  });

  document.addEventListener("click", function (e) {
    var t = e.target.closest ? e.target.closest("[data-action]") : null;
    if (!t) return;
    var a = t.getAttribute("data-action");
    if (a === "reject-arm") armReject(!rejectArmed());
    else if (a === "reject-cancel") armReject(false);
    else if (a === "edit-open") openEdit(true);
    else if (a === "edit-cancel") openEdit(false);
    else if (a === "help") toggleHelp();
  });

  // Seconds spent on this example travel with every decision; the server bounds them by the claim's age.
  document.addEventListener("htmx:configRequest", function (e) {
    if (!e.detail.elt.closest || !e.detail.elt.closest("#review-card")) return;
    var secs = ((performance.now() - shownAt) / 1000).toFixed(2);
    var p = e.detail.parameters;
    if (typeof p.set === "function") p.set("seconds_spent", secs); else p.seconds_spent = secs;
  });
  // Conflicts (409) and invalid edits (422) come back as a card with a message: show them.
  document.addEventListener("htmx:beforeSwap", function (e) {
    if (e.detail.target && e.detail.target.id === "review-card") inFlight = false;
    var s = e.detail.xhr.status;
    if ((s === 409 || s === 422) && e.detail.target && e.detail.target.id === "review-card") {
      e.detail.shouldSwap = true; e.detail.isError = false;
    }
  });
  document.addEventListener("htmx:load", function (e) {
    var el = e.detail.elt;
    if (el && el.id === "review-card") {
      shownAt = performance.now();
      // Focus the new card for screen readers, unless the reviewer already started editing in it.
      if (!el.contains(document.activeElement)) el.focus({ preventScroll: false });
    }
  });
  document.addEventListener("DOMContentLoaded", function () { var c = card(); if (c) c.focus(); });
})();
