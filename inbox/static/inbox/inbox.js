// The inbox page: asks the server every few seconds whether anything changed and then refreshes
// the list and the open thread (never the forms, so a half-written answer stays), fills canned
// replies into the answer box, shows as many template fields as the chosen template needs, and
// offers keyboard shortcuts. A file that the messenger no longer has (its image, player or video
// failed to load) is replaced by a short note with a link to the reason.
(function () {
  "use strict";
  const root = document.querySelector(".inbox");
  if (!root) return;
  const POLL_MS = 4000;
  let since = root.dataset.since;
  let busy = false;

  async function fetchHtml(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
    if (!response.ok) throw new Error(String(response.status));
    const holder = document.createElement("div");
    holder.innerHTML = await response.text();  // server-rendered and escaped by Django
    return holder;
  }

  function scrollThread() {
    const body = document.querySelector(".thread-body");
    const thread = document.getElementById("thread");
    if (body && thread) thread.lastElementChild && thread.lastElementChild.scrollIntoView({ block: "nearest" });
  }

  async function refresh(changed) {
    const list = document.getElementById("inbox-list");
    if (list && root.dataset.listUrl) {
      const fresh = await fetchHtml(root.dataset.listUrl);
      list.innerHTML = fresh.innerHTML;
    }
    const current = Number(root.dataset.conversation || 0);
    if (current && changed.includes(current) && root.dataset.threadUrl) {
      const fresh = await fetchHtml(root.dataset.threadUrl);
      for (const selector of [".thread-head", "#thread"]) {
        const now = document.querySelector(selector);
        const next = fresh.querySelector(selector);
        if (now && next) now.replaceWith(next);
      }
      scrollThread();
    }
  }

  async function poll() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const url = root.dataset.changesUrl + "?since=" + encodeURIComponent(since);
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) {
        const data = await response.json();
        since = data.cursor;
        const badge = document.querySelector(".task-nav-badge[data-badge=inbox]");
        if (badge && badge.firstChild && badge.firstChild.nodeType === Node.TEXT_NODE) {
          badge.firstChild.nodeValue = String(data.unanswered);  // the navigation's "unanswered" count
          badge.hidden = !data.unanswered;
        }
        if (data.changed.length) await refresh(data.changed);
      }
    } catch (error) {
      // offline for a moment: the next poll tries again
    } finally {
      busy = false;
    }
  }

  setInterval(poll, POLL_MS);
  document.addEventListener("visibilitychange", poll);
  scrollThread();

  const canned = document.querySelector("[data-canned]");
  const replyText = document.getElementById("reply-text");
  if (canned && replyText) {
    canned.addEventListener("change", function () {
      if (canned.value) { replyText.value = canned.value; replyText.focus(); }
    });
  }

  document.addEventListener("click", function (event) {
    const use = event.target.closest(".use-answer");
    if (use && replyText) { replyText.value = use.dataset.fill; replyText.focus(); }
  });

  const template = document.getElementById("reply-template");
  function showParams() {
    const option = template.options[template.selectedIndex];
    const count = option ? Number(option.dataset.params || 0) : 0;
    document.querySelectorAll(".template-param").forEach(function (row) {
      const used = Number(row.dataset.param) <= count;
      row.hidden = !used;
      row.querySelector("input").required = used;
    });
  }
  if (template) { template.addEventListener("change", showParams); showParams(); }

  function typing(target) {
    return target.closest("input, textarea, select, [contenteditable]");
  }
  function move(step) {
    const links = Array.from(document.querySelectorAll("[data-conversation-link]"));
    if (!links.length) return;
    const at = links.findIndex((a) => a.getAttribute("aria-current") === "true");
    const next = links[Math.min(links.length - 1, Math.max(0, at + step))];
    if (next) window.location.assign(next.href);
  }
  // Load errors do not bubble: listen in the capture phase, so images the live refresh brings
  // in are covered too.
  document.addEventListener("error", function (event) {
    const element = event.target;
    if (!(element instanceof HTMLElement) || !element.matches(".media img, .media audio, .media video")) return;
    const holder = element.closest(".media");
    if (!holder || holder.dataset.failed) return;
    holder.dataset.failed = "1";
    const note = document.createElement("span");
    note.className = "media-failed";
    note.textContent = holder.dataset.mediaFailed + " ";
    const why = document.createElement("a");
    why.href = element.getAttribute("src") || "#";
    why.textContent = holder.dataset.mediaOpen;
    note.appendChild(why);
    holder.replaceChildren(note);
  }, true);
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const actions = {
      j: () => move(1),
      k: () => move(-1),
      r: () => replyText && replyText.focus(),
      n: () => { const note = document.getElementById("note-text"); if (note) note.focus(); },
      a: () => { const me = document.getElementById("assign-me"); if (me) me.click(); },
      e: () => { const close = document.getElementById("close-conversation"); if (close) close.click(); },
    };
    const action = actions[event.key];
    if (action) { event.preventDefault(); action(); }
  });
})();
