// Broadcast compose page: the sticky phone preview on the right (ARIA tabs for messenger and
// language, length counters, the chosen WhatsApp template filled in), the template's parameter
// fields, and live progress. Its texts come translated in the #bc-texts JSON. Once a broadcast
// can no longer be edited the form has no text fields: the preview then shows the stored
// content (the #bc-content JSON), i.e. exactly what went out.
(function () {
  "use strict";
  const LIMITS = { telegram: 4096, whatsapp: 4096, caption: 1024 };
  const GSM = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€";
  const GSM_EXT = "^{}\\[~]|€";

  function smsSegments(text) {
    let gsm = true, units = 0;
    for (const ch of text) {
      if (GSM.indexOf(ch) === -1) { gsm = false; break; }
      units += GSM_EXT.indexOf(ch) === -1 ? 1 : 2;
    }
    if (gsm) return { segments: units <= 160 ? 1 : Math.ceil(units / 153), encoding: "GSM-7" };
    let utf16 = 0;
    for (const ch of text) utf16 += ch.length;
    return { segments: utf16 <= 70 ? 1 : Math.ceil(utf16 / 67), encoding: "Unicode" };
  }

  function field(name) { return document.querySelector("[name=" + name + "]"); }

  function readJson(id, fallback) {
    const script = document.getElementById(id);
    if (!script) return fallback;
    try { return JSON.parse(script.textContent); } catch (error) { return fallback; }
  }
  // "{count} of {limit} characters" with the values filled in (the texts come translated)
  function say(key, values) {
    const texts = readJson("bc-texts", {});
    return (texts[key] || "").replace(/\{(\w+)\}/g, (m, name) => (name in (values || {}) ? String(values[name]) : m));
  }

  let stored = null;  // the saved content: {variants: {lang: {body, subject}}, buttons, media_url, media_kind, wa_template_*}
  function storedContent() {
    if (stored === null) stored = readJson("bc-content", {});
    return stored;
  }
  const editable = () => Boolean(field("body_de"));
  const BODY_FIELDS = { "de": "body_de", "en": "body_en", "de-ls": "body_ls" };

  // the chosen WhatsApp template with its parameters filled in, from the form or the stored content
  function templateNow() {
    if (editable()) {
      const select = field("wa_template");
      const templates = readJson("bc-templates", {});
      const chosen = select && select.value ? templates[select.value] : null;
      if (!chosen) return select && select.value ? { name: select.value.split("|")[0], text: "" } : null;
      const params = [];
      for (let i = 1; i <= chosen.parameters; i++) {
        const input = field("wa_param_" + i);
        params.push(input ? input.value : "");
      }
      const text = (chosen.body || "").replace(/\{\{\s*(\d+)\s*\}\}/g, (m, n) => params[Number(n) - 1] || m);
      return { name: chosen.name + " (" + chosen.language + ")", text: text };
    }
    const content = storedContent();
    return content.wa_template_name ? { name: content.wa_template_name, text: content.wa_template_text || "" } : null;
  }

  // the parameter fields the chosen template needs; the others are hidden and not submitted
  function syncTemplateFields() {
    const select = field("wa_template");
    if (!select) return;
    const templates = readJson("bc-templates", {});
    const chosen = templates[select.value];
    const needed = chosen ? chosen.parameters : 0;
    document.querySelectorAll("input[data-param]").forEach((input) => {
      const used = Number(input.dataset.param) <= needed;
      input.disabled = !used;
      const row = input.closest(".form-row") || input.parentElement;
      if (row) row.classList.toggle("bc-param-hidden", !used);
    });
  }

  // what the preview shows, from the form while it can be edited, else from the stored content
  function current(lang) {
    if (editable()) {
      const bodyField = field(BODY_FIELDS[lang]);
      const buttons = [];
      for (let i = 0; i < 3; i++) {
        const title = field("button_" + i + "_title"), url = field("button_" + i + "_url");
        if (title && url && title.value && url.value) buttons.push({ title: title.value, url: url.value });
      }
      const subject = field("subject");
      return {
        text: (bodyField && bodyField.value) || field("body_de").value || "",
        subject: subject ? subject.value : "",
        buttons: buttons,
      };
    }
    const content = storedContent();
    const variants = content.variants || {};
    const variant = variants[lang] || variants.de || Object.values(variants)[0] || { body: "", subject: "" };
    return { text: variant.body || "", subject: variant.subject || "", buttons: content.buttons || [] };
  }

  // a newly chosen file, else the saved one (unless "clear" is ticked)
  function currentMedia() {
    const input = field("media");
    const file = input && input.files && input.files[0];
    if (file) return { url: URL.createObjectURL(file), video: file.type.startsWith("video") };
    const clear = field("media-clear");
    const content = storedContent();
    if (content.media_url && !(clear && clear.checked)) return { url: content.media_url, video: content.media_kind === "video" };
    return null;
  }

  function selected(listId) {
    const tab = document.querySelector("#" + listId + " [role=tab][aria-selected=true]");
    return tab || document.querySelector("#" + listId + " [role=tab]");
  }

  function preview() {
    const box = document.getElementById("bc-preview");
    if (!box) return;
    const kindTab = selected("bc-kind-tabs"), langTab = selected("bc-lang-tabs");
    const kind = kindTab ? kindTab.dataset.kind : "whatsapp";
    const lang = langTab ? langTab.dataset.lang : "de";
    const now = current(lang);
    const text = now.text;
    const phone = document.getElementById("bc-phone");
    phone.dataset.kind = kind;
    phone.setAttribute("aria-labelledby", [kindTab && kindTab.id, langTab && langTab.id].filter(Boolean).join(" "));
    const testLanguage = document.getElementById("bc-test-language");
    if (testLanguage) testLanguage.value = lang;
    let shown = text;
    const buttons = now.buttons;
    if ((kind === "sms" || kind === "whatsapp") && buttons.length) {
      shown += "\n" + buttons.map((b) => b.title + ": " + b.url).join("\n");
    }
    if (kind === "email") {
      shown = (now.subject ? now.subject + "\n\n" : "") + shown + "\n\n--\n" + say("unsubscribe");
    }
    document.getElementById("bc-text").textContent = shown || say("empty");
    const buttonBox = document.getElementById("bc-buttons");
    buttonBox.replaceChildren();
    if (kind === "telegram" || kind === "email") {
      buttons.forEach((b) => { const s = document.createElement("span"); s.textContent = b.title; buttonBox.appendChild(s); });
    }
    const media = document.getElementById("bc-media");
    media.replaceChildren();
    const file = currentMedia();
    if (file && kind !== "sms") {
      const el = document.createElement(file.video ? "video" : "img");
      el.src = file.url;
      if (!file.video) el.alt = "";
      media.appendChild(el);
    }
    const template = templateNow();
    const note = document.getElementById("bc-template-note");
    const showTemplate = kind === "whatsapp" && template && template.text;
    note.hidden = !showTemplate;
    if (showTemplate) {
      document.getElementById("bc-template-intro").textContent = say("templateIntro");
      document.getElementById("bc-template-text").textContent = template.text;
    }
    const counters = document.getElementById("bc-counters");
    counters.replaceChildren();
    const items = [];
    const length = [...text].length;
    if (kind === "telegram" || kind === "whatsapp") {
      const limit = file ? LIMITS.caption : LIMITS[kind];
      items.push([say("chars", { count: length, limit: limit }), length > limit]);
    }
    if (kind === "whatsapp") {
      items.push([template ? say("template", { name: template.name }) : say("noTemplate"), !template]);
    }
    if (kind === "sms") {
      const sms = smsSegments(shown);
      items.push([say("sms", { segments: sms.segments, encoding: sms.encoding, count: [...shown].length }), sms.segments > 3]);
    }
    items.forEach(([label, warn]) => {
      const li = document.createElement("li");
      li.textContent = label;
      if (warn) li.className = "warn";
      counters.appendChild(li);
    });
  }

  // the language tabs of languages without a text are hidden while composing
  function syncLanguageTabs() {
    if (!editable()) return;
    const tabs = Array.from(document.querySelectorAll("#bc-lang-tabs [role=tab]"));
    const written = tabs.filter((tab) => { const f = field(BODY_FIELDS[tab.dataset.lang]); return f && f.value.trim(); });
    tabs.forEach((tab) => { tab.hidden = written.length > 0 && written.indexOf(tab) === -1; });
    const current = selected("bc-lang-tabs");
    if (current && current.hidden) choose(document.getElementById("bc-lang-tabs"), written[0], false);
  }

  // ARIA tabs: click or arrow keys (Home/End) move the selection; one tab per list is focusable
  function choose(list, tab, focus) {
    if (!tab) return;
    list.querySelectorAll("[role=tab]").forEach((other) => {
      const on = other === tab;
      other.setAttribute("aria-selected", on ? "true" : "false");
      other.tabIndex = on ? 0 : -1;
    });
    if (focus) tab.focus();
    preview();
  }
  function setupTabs(list) {
    if (!list) return;
    list.addEventListener("click", (event) => {
      const tab = event.target.closest("[role=tab]");
      if (tab) choose(list, tab, false);
    });
    list.addEventListener("keydown", (event) => {
      const tabs = Array.from(list.querySelectorAll("[role=tab]")).filter((tab) => !tab.hidden);
      const at = tabs.indexOf(document.activeElement);
      if (at === -1) return;
      let next = null;
      if (event.key === "ArrowRight" || event.key === "ArrowDown") next = tabs[(at + 1) % tabs.length];
      else if (event.key === "ArrowLeft" || event.key === "ArrowUp") next = tabs[(at - 1 + tabs.length) % tabs.length];
      else if (event.key === "Home") next = tabs[0];
      else if (event.key === "End") next = tabs[tabs.length - 1];
      if (next) { event.preventDefault(); choose(list, next, true); }
    });
  }

  function setupPreview() {
    const box = document.getElementById("bc-preview");
    if (!box) return;
    setupTabs(document.getElementById("bc-kind-tabs"));
    setupTabs(document.getElementById("bc-lang-tabs"));
    syncTemplateFields();
    syncLanguageTabs();
    const form = document.querySelector("#content-main form");
    if (form) {
      const update = (event) => {
        if (event.target && event.target.name === "wa_template") syncTemplateFields();
        syncLanguageTabs();
        preview();
      };
      form.addEventListener("input", update);
      form.addEventListener("change", update);
    }
    preview();
  }

  // The poll returns the counts, the status with its translated label and the actions this
  // user may take now: buttons that no longer apply disappear, ones that now apply (rendered
  // hidden by the server) appear, and at the end the page shows the final state.
  function setupProgress() {
    const panel = document.getElementById("bc-progress");
    if (!panel) return;
    // the bar's width is set here, not in a style attribute (the CSP allows no inline styles)
    const bar = panel.querySelector("[role=progressbar]");
    document.getElementById("bc-bar-fill").style.width = (bar.dataset.percent || "0") + "%";
    const live = ["approved", "scheduled", "sending", "paused"];
    let status = panel.dataset.status;
    async function poll() {
      try {
        const response = await fetch(panel.dataset.url, { credentials: "same-origin" });
        if (!response.ok) return;
        const data = await response.json();
        panel.querySelectorAll("dd[data-key]").forEach((dd) => { dd.textContent = data[dd.dataset.key]; });
        const fill = document.getElementById("bc-bar-fill");
        fill.style.width = data.percent + "%";
        panel.querySelector("[role=progressbar]").setAttribute("aria-valuenow", data.percent);
        document.getElementById("bc-percent").textContent = data.percent + " %";
        status = data.status;
        const label = document.getElementById("bc-status");
        if (label) label.textContent = data.status_label;
        document.querySelectorAll("#bc-workflow form[data-action]").forEach((form) => {
          form.hidden = (data.actions || []).indexOf(form.dataset.action) === -1;
        });
        const reason = document.getElementById("bc-paused-reason");
        if (reason) { reason.textContent = data.paused_reason || ""; reason.hidden = !data.paused_reason; }
        const plan = document.getElementById("bc-plan");
        if (plan && data.final) plan.hidden = true;  // nothing left to plan
      } catch (error) { /* next poll */ }
    }
    let timer = null;
    const tick = async () => {
      await poll();
      if (live.indexOf(status) === -1 && timer) { clearInterval(timer); timer = null; }
    };
    if (live.indexOf(status) !== -1) timer = setInterval(tick, 1500);
    poll();
  }

  document.addEventListener("DOMContentLoaded", () => { setupPreview(); setupProgress(); });
})();
