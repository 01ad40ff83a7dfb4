// Broadcast compose page: live phone preview with length counters, and live progress.
// Once a broadcast can no longer be edited the form has no text fields: the preview then shows
// the stored content (the #bc-content JSON), i.e. exactly what went out.
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

  let stored = null;  // the saved content: {variants: {lang: {body, subject}}, buttons, media_url, media_kind, wa_template_name}
  function storedContent() {
    if (stored === null) {
      const script = document.getElementById("bc-content");
      try { stored = script ? JSON.parse(script.textContent) : {}; } catch (error) { stored = {}; }
    }
    return stored;
  }
  const editable = () => Boolean(field("body_de"));

  // what the preview shows, from the form while it can be edited, else from the stored content
  function current(lang) {
    if (editable()) {
      const source = { "de": "body_de", "en": "body_en", "de-ls": "body_ls" }[lang];
      const bodyField = field(source);
      const buttons = [];
      for (let i = 0; i < 3; i++) {
        const title = field("button_" + i + "_title"), url = field("button_" + i + "_url");
        if (title && url && title.value && url.value) buttons.push({ title: title.value, url: url.value });
      }
      const template = field("wa_template_name");
      const subject = field("subject");
      return {
        text: (bodyField && bodyField.value) || field("body_de").value || "",
        subject: subject ? subject.value : "",
        buttons: buttons,
        template: template ? template.value : "",
      };
    }
    const content = storedContent();
    const variants = content.variants || {};
    const variant = variants[lang] || variants.de || Object.values(variants)[0] || { body: "", subject: "" };
    return { text: variant.body || "", subject: variant.subject || "", buttons: content.buttons || [], template: content.wa_template_name || "" };
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

  function preview() {
    const box = document.getElementById("bc-preview");
    if (!box) return;
    const kind = box.querySelector(".bc-preview-tabs button.active").dataset.target;
    const lang = document.getElementById("bc-preview-lang").value;
    const now = current(lang);
    const text = now.text;
    const phone = document.getElementById("bc-phone");
    phone.dataset.kind = kind;
    let shown = text;
    const buttons = now.buttons;
    if ((kind === "sms" || kind === "whatsapp") && buttons.length) {
      shown += "\n" + buttons.map((b) => b.title + ": " + b.url).join("\n");
    }
    if (kind === "email") {
      const subject = now.subject;
      shown = (subject ? subject + "\n\n" : "") + shown + "\n\n--\n(Abmelden / unsubscribe)";
    }
    document.getElementById("bc-text").textContent = shown || "…";
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
      media.appendChild(el);
    }
    const counters = document.getElementById("bc-counters");
    counters.replaceChildren();
    const items = [];
    const length = [...text].length;
    if (kind === "telegram") items.push([length + " / " + (file ? LIMITS.caption : LIMITS.telegram), length > (file ? LIMITS.caption : LIMITS.telegram)]);
    if (kind === "whatsapp") {
      items.push([length + " / " + (file ? LIMITS.caption : LIMITS.whatsapp), length > (file ? LIMITS.caption : LIMITS.whatsapp)]);
      const template = now.template;
      items.push([template ? "Vorlage / template: " + template : "Ohne Vorlage erreicht WhatsApp nur Personen, die in den letzten 24 h geschrieben haben / without a template only people who wrote in the last 24 h", !template]);
    }
    if (kind === "sms") {
      const sms = smsSegments(shown);
      items.push([sms.segments + " SMS (" + sms.encoding + ", " + [...shown].length + " Zeichen/chars)", sms.segments > 3]);
    }
    items.forEach(([label, warn]) => {
      const li = document.createElement("li");
      li.textContent = label;
      if (warn) li.className = "warn";
      counters.appendChild(li);
    });
  }

  function setupPreview() {
    const box = document.getElementById("bc-preview");
    if (!box) return;
    box.querySelectorAll(".bc-preview-tabs button").forEach((button) => {
      button.addEventListener("click", () => {
        box.querySelectorAll(".bc-preview-tabs button").forEach((b) => b.classList.remove("active"));
        button.classList.add("active");
        preview();
      });
    });
    const languages = document.getElementById("bc-preview-lang");
    const variants = storedContent().variants || {};
    if (!editable() && !variants[languages.value] && Object.keys(variants).length) {
      languages.value = Object.keys(variants)[0];  // e.g. a broadcast that went out in English only
    }
    languages.addEventListener("change", preview);
    document.querySelectorAll("form input, form textarea, form select").forEach((el) => {
      el.addEventListener("input", preview);
      el.addEventListener("change", preview);
    });
    preview();
  }

  // The poll returns the counts, the status with its translated label and the actions this
  // user may take now: buttons that no longer apply disappear, ones that now apply (rendered
  // hidden by the server) appear, and at the end the page shows the final state.
  function setupProgress() {
    const panel = document.getElementById("bc-progress");
    if (!panel) return;
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
