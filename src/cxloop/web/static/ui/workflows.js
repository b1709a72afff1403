/* The workflow builder's few scripted behaviours (without them the forms still work):
   insert piped text at the caret, re-render the form when a choice changes what the pickers
   offer, put focus where the last button's change happened, and hide no-JS-only buttons. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-insert]");
    if (!button) return;
    var input = document.getElementById(button.getAttribute("data-insert"));
    var menu = document.getElementById(button.getAttribute("data-insert-from"));
    if (!input || !menu || !menu.value) return;
    event.preventDefault();
    var start = input.selectionStart == null ? input.value.length : input.selectionStart;
    var end = input.selectionEnd == null ? start : input.selectionEnd;
    input.value = input.value.slice(0, start) + menu.value + input.value.slice(end);
    input.focus();
    var caret = start + menu.value.length;
    input.setSelectionRange(caret, caret);
  });

  document.addEventListener("change", function (event) {
    if (!event.target.closest) return;
    var element = event.target.closest("[data-refresh]") ||
      (event.target.closest("[data-refresh-within]") ? event.target : null);
    if (!element) return;
    var refresh = document.getElementById("builder-refresh");
    if (!refresh || !window.htmx) return;
    /* A change fires when the box loses focus, often because a button was pressed (Save):
       wait a moment, and let that button's request go instead. */
    clearTimeout(pending);
    pending = setTimeout(function () {
      pending = null;
      lastFocus = changed = element.id;
      refresh.click();
    }, 300);
  });
  var pending = null;
  document.addEventListener("submit", function () {
    clearTimeout(pending);
    pending = null;
  }, true);

  var lastFocus = null;
  function focusTarget(root) {
    if (lastFocus && document.getElementById(lastFocus)) {
      document.getElementById(lastFocus).focus();
      lastFocus = null;
      return;
    }
    /* The swapped part first (a task's fieldset, or the whole form), then what is inside it. */
    var form = root && root.matches && root.matches("[data-focus]") ? root : null;
    if (!form && root && root.querySelector) form = root.querySelector("[data-focus]");
    if (!form) return;
    var target = document.getElementById(form.getAttribute("data-focus"));
    if (target && !document.querySelector("[data-error-summary]")) target.focus();
  }
  document.addEventListener("DOMContentLoaded", function () { focusTarget(document); });
  document.addEventListener("htmx:afterSettle", function (event) { focusTarget(event.target); });

  /* Ask for the changed task's fieldset only when a change stays inside one task (the server
     decides; without this header, or for other changes, it sends the whole form). */
  document.addEventListener("htmx:configRequest", function (event) {
    if (!event.target.closest || !event.target.closest("#builder")) return;
    event.detail.headers["X-Builder-Partial"] = "1";
    if (changed) event.detail.headers["X-Builder-Changed"] = changed.replace(/^field-/, "");
    changed = null;
  });
  var changed = null;
})();
