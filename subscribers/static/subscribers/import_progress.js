// Import detail page: follow a running import and reload once it has finished (to show the
// error report).
(function () {
  "use strict";
  const root = document.querySelector("[data-progress-url]");
  if (!root || root.dataset.running !== "1") return;
  const set = (id, value) => { const el = document.getElementById(id); if (el) el.textContent = value; };
  async function poll() {
    try {
      const response = await fetch(root.dataset.progressUrl, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) return;
      const data = await response.json();
      set("import-status", data.status_label);
      set("import-rows", data.processed + (data.total ? " / " + data.total : ""));
      set("import-created", data.created);
      set("import-matched", data.matched);
      set("import-subscriptions", data.subscriptions);
      set("import-rejected", data.rejected);
      const bar = document.getElementById("import-progress");
      if (bar) bar.value = data.percent;
      if (data.finished) { window.location.reload(); return; }
    } catch (error) { /* try again */ }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();
