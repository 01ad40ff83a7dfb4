// Phone simulator: polls for new chat bubbles and sends what the simulated person types.
(function () {
  "use strict";
  const phone = document.getElementById("phone");
  if (!phone) return;
  const chat = document.getElementById("chat");
  const form = document.getElementById("composer");
  const input = document.getElementById("composer-text");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  let after = 0;
  let busy = false;

  function button(spec) {
    if (spec.url) {
      const a = document.createElement("a");
      a.href = spec.url; a.target = "_blank"; a.rel = "noopener"; a.textContent = spec.title;
      return a;
    }
    const b = document.createElement("button");
    b.type = "button"; b.textContent = spec.title;
    b.addEventListener("click", () => send(spec.title, spec.payload || spec.title));
    return b;
  }

  function render(message) {
    const empty = chat.querySelector(".empty");
    if (empty) empty.remove();
    const bubble = document.createElement("div");
    bubble.className = "bubble " + (message.direction === "out" ? "out" : "in");
    bubble.dataset.id = message.id;
    if (message.media_url) {
      const media = document.createElement(message.media_kind === "video" ? "video" : "img");
      media.src = message.media_url;
      if (message.media_kind === "video") media.controls = true; else media.alt = "";
      bubble.appendChild(media);
    }
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text;
    bubble.appendChild(text);
    if (message.buttons && message.buttons.length) {
      const row = document.createElement("div");
      row.className = "buttons";
      message.buttons.forEach((spec) => row.appendChild(button(spec)));
      bubble.appendChild(row);
    }
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = new Date(message.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    bubble.appendChild(meta);
    chat.appendChild(bubble);
    chat.scrollTop = chat.scrollHeight;
  }

  async function poll() {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(phone.dataset.messagesUrl + "?after=" + after, { credentials: "same-origin" });
      if (response.ok) {
        const data = await response.json();
        data.messages.forEach((message) => { render(message); after = Math.max(after, message.id); });
        if (!after && !chat.querySelector(".empty")) {
          const empty = document.createElement("p");
          empty.className = "empty"; empty.textContent = phone.dataset.empty;
          chat.appendChild(empty);
        }
      }
    } finally {
      busy = false;
    }
  }

  async function send(text, payload) {
    const body = new URLSearchParams({ text: text, payload: payload || "" });
    await fetch(phone.dataset.sendUrl, {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "X-CSRFToken": csrf, "X-Requested-With": "fetch" },
    });
    poll();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send(text, "");
  });
  poll();
  setInterval(poll, 1000);
})();
