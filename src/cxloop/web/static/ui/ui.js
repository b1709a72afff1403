/* cxloop admin UI: the few behaviours that need a script (no inline scripts: the pages' CSP
   allows only scripts from this site). Progressive: everything else is links and forms. */
(function () {
  "use strict";

  /* Menu buttons ("More actions for ..."): WAI-ARIA menu button pattern. */
  function menuItems(menu) {
    return Array.prototype.slice.call(menu.querySelectorAll('[role="menuitem"]'));
  }
  function closeMenu(wrapper, focusButton) {
    var button = wrapper.querySelector(".menu-button");
    var list = wrapper.querySelector('[role="menu"]');
    if (!list || list.hidden) return;
    list.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (focusButton) button.focus();
  }
  function openMenu(wrapper, focusLast) {
    document.querySelectorAll("[data-menu]").forEach(function (other) {
      if (other !== wrapper) closeMenu(other, false);
    });
    var button = wrapper.querySelector(".menu-button");
    var list = wrapper.querySelector('[role="menu"]');
    list.hidden = false;
    button.setAttribute("aria-expanded", "true");
    var items = menuItems(list);
    if (items.length) items[focusLast ? items.length - 1 : 0].focus();
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest(".menu-button");
    if (button) {
      var wrapper = button.closest("[data-menu]");
      if (button.getAttribute("aria-expanded") === "true") closeMenu(wrapper, true);
      else openMenu(wrapper, false);
      return;
    }
    document.querySelectorAll("[data-menu]").forEach(function (wrapper) {
      if (!wrapper.contains(event.target)) closeMenu(wrapper, false);
    });
  });
  document.addEventListener("keydown", function (event) {
    var button = event.target.closest && event.target.closest(".menu-button");
    if (button && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      openMenu(button.closest("[data-menu]"), event.key === "ArrowUp");
      return;
    }
    var item = event.target.closest && event.target.closest('[role="menuitem"]');
    if (!item) return;
    var wrapper = item.closest("[data-menu]");
    var items = menuItems(wrapper);
    var index = items.indexOf(item);
    var next = null;
    if (event.key === "ArrowDown") next = items[(index + 1) % items.length];
    else if (event.key === "ArrowUp") next = items[(index - 1 + items.length) % items.length];
    else if (event.key === "Home") next = items[0];
    else if (event.key === "End") next = items[items.length - 1];
    else if (event.key === "Escape") { event.preventDefault(); closeMenu(wrapper, true); return; }
    else if (event.key === "Tab") { closeMenu(wrapper, false); return; }
    if (next) { event.preventDefault(); next.focus(); }
  });

  /* Show inputs only for some choices: an element with data-show-when="NAME=VALUE" is shown
     when the radio button or select NAME has VALUE (e.g. the login URL for My Domain). */
  function updateConditional(root) {
    (root || document).querySelectorAll("[data-show-when]").forEach(function (element) {
      var parts = element.getAttribute("data-show-when").split("=");
      var form = element.closest("form") || document;
      var chosen = form.querySelector('[name="' + parts[0] + '"]:checked') ||
        form.querySelector('select[name="' + parts[0] + '"]');
      element.hidden = !(chosen && chosen.value === parts[1]);
    });
  }
  document.addEventListener("change", function () { updateConditional(document); });

  /* Copy buttons: <button data-copy="#element-id"> copies that element's text. */
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button || !navigator.clipboard) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (source) navigator.clipboard.writeText(source.value || source.textContent.trim());
  });

  function onReady(root) {
    updateConditional(root);
    /* GOV.UK's pattern: move focus to the error summary so it is read out first. */
    var summary = (root || document).querySelector("[data-error-summary]");
    if (summary) summary.focus();
  }
  document.addEventListener("DOMContentLoaded", function () { onReady(document); });
  document.addEventListener("htmx:afterSettle", function (event) { onReady(event.target); });
})();
