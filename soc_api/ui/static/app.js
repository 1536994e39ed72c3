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
