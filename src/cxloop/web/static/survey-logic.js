// Same-page display logic on the respondent's pages: shows a follow-up as soon as the answer it
// depends on is given, hides it when it no longer applies. The server decides the same thing
// without this script (the page is shown again after "Next"); this only saves that round trip.
// Conditions come from the page (data-show-if); parts the server already decided are constants.
(function () {
  "use strict";
  var form = document.querySelector("form[method=post]");
  if (!form) return;
  var shownField = form.querySelector("input[name=_shown]");
  var blocks = Array.prototype.slice.call(form.querySelectorAll("[data-show-if]"));

  function valueOf(qid) {
    var values = [];
    var inputs = form.querySelectorAll("[name='" + qid + "']");
    for (var i = 0; i < inputs.length; i++) {
      var input = inputs[i];
      if (input.closest("[hidden]")) continue;
      if (input.type === "radio" || input.type === "checkbox") {
        if (input.checked) values.push(input.value);
      } else if (input.value.trim() !== "") {
        values.push(input.value);
      }
    }
    var multiple = inputs.length && inputs[0].type === "checkbox";
    if (multiple) return values;
    return values.length ? values[0] : null;
  }

  function number(value) {
    if (typeof value === "number") return value;
    if (typeof value !== "string" || !/^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$/.test(value)) return null;
    return parseFloat(value);
  }

  function same(a, b) {
    var x = number(a), y = number(b);
    if (x !== null && y !== null) return x === y;
    return String(a) === String(b);
  }

  function anyItem(actual, test) {
    if (Array.isArray(actual)) return actual.some(test);
    return actual !== null && test(actual);
  }

  function empty(value) {
    return value === null || (Array.isArray(value) ? value.length === 0 : String(value).trim() === "");
  }

  function compare(actual, operator, expected) {
    switch (operator) {
      case "is_empty": return empty(actual);
      case "is_not_empty": return !empty(actual);
      case "equals": return anyItem(actual, function (v) { return same(v, expected); });
      case "not_equals": return !compare(actual, "equals", expected);
      case "in_list": return anyItem(actual, function (v) { return expected.some(function (e) { return same(v, e); }); });
      case "not_in_list": return !compare(actual, "in_list", expected);
      case "contains":
        if (Array.isArray(actual)) return actual.some(function (v) { return same(v, expected); });
        return actual !== null && String(actual).toLowerCase().indexOf(String(expected).toLowerCase()) >= 0;
      case "not_contains": return !compare(actual, "contains", expected);
      case "less_than": case "less_or_equal": case "greater_than": case "greater_or_equal":
        return anyItem(actual, function (v) {
          var x = number(v), y = number(expected);
          if (x === null || y === null) return false;
          if (operator === "less_than") return x < y;
          if (operator === "less_or_equal") return x <= y;
          if (operator === "greater_than") return x > y;
          return x >= y;
        });
    }
    return false;
  }

  // null: cannot tell here (the server decides after "Next"); the element is left as it is.
  function evaluate(node) {
    if ("const" in node) return node["const"];
    if ("unknown" in node) return null;
    if ("field" in node) return compare(valueOf(node.field), node.operator, node.value);
    var results = node.conditions.map(evaluate);
    if (results.indexOf(null) >= 0) return null;
    return node.join === "or" ? results.indexOf(true) >= 0 : results.indexOf(false) < 0;
  }

  function update() {
    // In page order, so a follow-up of a follow-up sees the one above it already updated.
    blocks.forEach(function (block) {
      var result = evaluate(JSON.parse(block.getAttribute("data-show-if")));
      if (result !== null) block.hidden = !result;
    });
    if (shownField) {
      var shown = shownField.value.split(/\s+/).filter(Boolean);
      blocks.forEach(function (block) {
        var qid = block.getAttribute("data-qid");
        var at = shown.indexOf(qid);
        if (!block.hidden && at < 0) shown.push(qid);
        if (block.hidden && at >= 0) shown.splice(at, 1);
      });
      shownField.value = shown.join(" ");
    }
  }

  form.addEventListener("change", update);
  form.addEventListener("input", update);
  update();
})();
