// Tenant admin start page: keep "Sending now" live. Polls the JSON named in data-sending-url every
// few seconds while something is sending, updates each <progress> bar and its figures, and when
// the set of broadcasts changes (one finished or started) refreshes the "Sending now" and "Latest
// sent" cards from the page itself. Stops when nothing is sending.
(function () {
  "use strict";
  const INTERVAL_MS = 4000;
  const CARDS = ["start-sending", "start-latest-sent", "start-needs-me"];

  function card() { return document.getElementById("start-sending"); }

  function shownIds(root) {
    return Array.from(root.querySelectorAll("[data-broadcast]")).map((el) => el.dataset.broadcast).sort().join(",");
  }

  async function refreshCards() {
    const response = await fetch(window.location.href, { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of CARDS) {
      const current = document.getElementById(id);
      const replacement = fresh.getElementById(id);
      if (current && replacement) current.replaceWith(document.importNode(replacement, true));
    }
  }

  function update(root, item) {
    const row = root.querySelector('[data-broadcast="' + item.id + '"]');
    if (!row) return;
    const bar = row.querySelector("progress");
    if (bar) { bar.value = item.percent; bar.textContent = item.percent + " %"; }
    for (const key of ["done", "total", "reached", "failed"]) {
      const el = row.querySelector('[data-key="' + key + '"]');
      if (el) el.textContent = String(item[key]);
    }
  }

  async function poll() {
    const root = card();
    if (!root || root.dataset.poll !== "1") return;
    try {
      const response = await fetch(root.dataset.sendingUrl, { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        const data = await response.json();
        const ids = data.sending.map((item) => String(item.id)).sort().join(",");
        if (ids !== shownIds(root)) {
          await refreshCards();
        } else {
          data.sending.forEach((item) => update(root, item));
        }
        if (!data.sending.length) return; // nothing sending: stop asking
      }
    } catch (error) { /* try again */ }
    setTimeout(poll, INTERVAL_MS);
  }

  setTimeout(poll, INTERVAL_MS);
})();
