// Kith console: the only script, and only an enhancement. Every page works
// without it; with it, times show in the reader's own time zone and a
// revocation asks to be confirmed.
"use strict";

function showLocalTimes() {
  for (const element of document.querySelectorAll("time[datetime]")) {
    const moment = new Date(element.getAttribute("datetime"));
    if (Number.isNaN(moment.getTime())) continue;
    // The UTC text the server wrote stays available on hover.
    element.title = element.textContent;
    element.textContent = moment.toLocaleString();
  }
}

function confirmDangerousForms() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  showLocalTimes();
  confirmDangerousForms();
});
