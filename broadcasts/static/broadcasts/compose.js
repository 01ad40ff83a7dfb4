// Broadcast compose page: live phone preview with length counters, and live progress.
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

  function preview() {
    const box = document.getElementById("bc-preview");
    if (!box) return;
    const kind = box.querySelector(".bc-preview-tabs button.active").dataset.target;
    const lang = document.getElementById("bc-preview-lang").value;
    const source = { "de": "body_de", "en": "body_en", "de-ls": "body_ls" }[lang];
    const bodyField = field(source);
    const text = (bodyField && bodyField.value) || (field("body_de") && field("body_de").value) || "";
    const phone = document.getElementById("bc-phone");
    phone.dataset.kind = kind;
    let shown = text;
    const buttons = [];
    for (let i = 0; i < 3; i++) {
      const title = field("button_" + i + "_title"), url = field("button_" + i + "_url");
      if (title && url && title.value && url.value) buttons.push({ title: title.value, url: url.value });
    }
    if ((kind === "sms" || kind === "whatsapp") && buttons.length) {
      shown += "\n" + buttons.map((b) => b.title + ": " + b.url).join("\n");
    }
    if (kind === "email") {
      const subject = field("subject") && field("subject").value;
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
    const file = field("media") && field("media").files && field("media").files[0];
    if (file && kind !== "sms") {
      const el = document.createElement(file.type.startsWith("video") ? "video" : "img");
      el.src = URL.createObjectURL(file);
      media.appendChild(el);
    }
    const counters = document.getElementById("bc-counters");
    counters.replaceChildren();
    const items = [];
    const length = [...text].length;
    if (kind === "telegram") items.push([length + " / " + (file ? LIMITS.caption : LIMITS.telegram), length > (file ? LIMITS.caption : LIMITS.telegram)]);
    if (kind === "whatsapp") {
      items.push([length + " / " + (file ? LIMITS.caption : LIMITS.whatsapp), length > (file ? LIMITS.caption : LIMITS.whatsapp)]);
      const template = field("wa_template_name");
      items.push([template && template.value ? "Vorlage / template: " + template.value : "Ohne Vorlage erreicht WhatsApp nur Personen, die in den letzten 24 h geschrieben haben / without a template only people who wrote in the last 24 h", !(template && template.value)]);
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
    document.getElementById("bc-preview-lang").addEventListener("change", preview);
    document.querySelectorAll("form input, form textarea, form select").forEach((el) => {
      el.addEventListener("input", preview);
      el.addEventListener("change", preview);
    });
    preview();
  }

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
        if (data.status !== status) {
          status = data.status;
          const label = document.getElementById("bc-status");
          if (label) label.textContent = data.status;
        }
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
