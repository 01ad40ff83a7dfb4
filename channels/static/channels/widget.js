// Alarm status widget: asks the JSON endpoint for the current state every `data-refresh`
// seconds and updates text, colour and lamp. Announces changes to screen readers (role=status).
(function () {
  "use strict";
  const widget = document.getElementById("alarm-widget");
  if (!widget) return;
  const stateEl = document.getElementById("alarm-state");
  const sinceEl = document.getElementById("alarm-since");
  const offlineEl = document.getElementById("alarm-offline");
  const language = widget.dataset.language || "de";
  const every = Math.max(15, parseInt(widget.dataset.refresh || "60", 10)) * 1000;
  const format = new Intl.DateTimeFormat(language === "en" ? "en-GB" : "de-DE", { dateStyle: "short", timeStyle: "short" });

  function show(data) {
    widget.dataset.state = data.state;
    widget.dataset.colour = data.colour;
    const label = (data.label && (data.label[language] || data.label.de)) || data.state;
    if (stateEl.textContent !== label) stateEl.textContent = label;
    sinceEl.textContent = "";
    if (data.since) {
      const time = document.createElement("time");
      time.dateTime = data.since;
      time.textContent = format.format(new Date(data.since));
      sinceEl.append(widget.dataset.sinceLabel + " ", time);
    }
    document.title = (data.name || "") + ": " + label;
    offlineEl.hidden = true;
  }

  async function refresh() {
    try {
      const response = await fetch(widget.dataset.statusUrl, { cache: "no-store", credentials: "omit" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      show(await response.json());
    } catch (error) {
      offlineEl.hidden = false;
    }
  }

  setInterval(refresh, every);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
})();
