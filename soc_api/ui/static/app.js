/* Canh Gác UI: htmx settings and small page behaviours (no inline scripts: CSP script-src 'self'). */
"use strict";

htmx.config.allowEval = false;             // no hx-on / js: expressions
htmx.config.allowScriptTags = false;       // scripts inside swapped content never run
htmx.config.includeIndicatorStyles = false; // htmx would inject an inline <style>, refused by the CSP
htmx.config.selfRequestsOnly = true;
htmx.config.historyCacheSize = 0;          // keep no copies of alert pages in localStorage
htmx.config.refreshOnHistoryMiss = true;
// The server renders conflicts, refusals and errors as messages: swap them like successes.
htmx.config.responseHandling = [
  { code: "204", swap: false },
  { code: "[2345]..", swap: true, error: false },
];

document.addEventListener("htmx:configRequest", function (event) {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) {
    event.detail.headers["X-CSRF-Token"] = meta.content;
  }
});

document.addEventListener("change", function (event) {
  const box = event.target;
  if (box instanceof HTMLInputElement && box.id === "select-all") {
    document.querySelectorAll("input.alert-select").forEach(function (other) {
      other.checked = box.checked;
    });
  }
});

// Keyboard shortcuts (listed on "?"): j/k move through the queue, o/Enter open, a acknowledge,
// m assign to me, / search. In the queue, a and m act on the ticked alerts, or else on the
// current row, through the bulk bar; on an alert page, through its triage panel.
(function () {
  function typing(target) {
    if (target instanceof HTMLInputElement) {
      return ["checkbox", "radio", "button", "submit", "reset"].indexOf(target.type) < 0;
    }
    return target instanceof HTMLElement &&
      (target.isContentEditable || ["TEXTAREA", "SELECT"].indexOf(target.tagName) >= 0);
  }
  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("table.alerts tbody tr[data-alert-id]"));
  }
  let currentId = null; // kept by id: a bulk action swaps the rows it changed for new ones
  function current() {
    return rows().find(function (row) { return row.dataset.alertId === currentId; }) || null;
  }
  function mark() {
    rows().forEach(function (row) {
      const on = row.dataset.alertId === currentId;
      row.classList.toggle("current", on);
      if (on) { row.setAttribute("aria-current", "true"); } else { row.removeAttribute("aria-current"); }
    });
  }
  function move(step) {
    const all = rows();
    if (!all.length) { return; }
    const at = all.indexOf(current());
    const next = all[Math.min(all.length - 1, Math.max(0, at < 0 ? 0 : at + step))];
    currentId = next.dataset.alertId;
    mark();
    next.scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("htmx:afterSettle", mark);
  function bulk(action, status) {
    const ticked = document.querySelectorAll("input.alert-select:checked");
    const row = current();
    if (!ticked.length && row) {
      row.querySelector("input.alert-select").checked = true;
    }
    if (status) {
      document.querySelector("[data-testid=bulk-status]").value = status;
    }
    const button = document.querySelector("[data-testid=" + action + "]");
    if (button) { button.click(); }
  }
  function press(selector) {
    const button = document.querySelector(selector);
    if (button) { button.click(); }
  }
  function help(show) {
    const overlay = document.getElementById("shortcuts");
    if (overlay) { overlay.hidden = !show; }
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "Escape") { help(false); return; }
    if (typing(event.target)) { return; }
    const inQueue = document.querySelector("table.alerts") !== null;
    const onAlert = document.getElementById("triage") !== null;
    let handled = true;
    switch (event.key) {
      case "?": help(document.getElementById("shortcuts").hidden); break;
      case "j": move(1); break;
      case "k": move(-1); break;
      case "o": case "Enter":
        if (inQueue && current()) { current().querySelector("a.open").click(); } else { handled = false; }
        break;
      case "a":
        if (inQueue) { bulk("bulk-set-status", "acknowledged"); } else if (onAlert) { press("[data-testid=set-acknowledged]"); }
        break;
      case "m":
        if (inQueue) { bulk("bulk-assign-me"); } else if (onAlert) { press("[data-testid=assign-me]"); }
        break;
      case "/": {
        const field = document.querySelector("[data-search]");
        if (field) { field.focus(); field.select(); } else { handled = false; }
        break;
      }
      default: handled = false;
    }
    if (handled) { event.preventDefault(); }
  });
  document.addEventListener("click", function (event) {
    const overlay = document.getElementById("shortcuts");
    if (overlay && !overlay.hidden && event.target === overlay) { help(false); }
  });
})();
