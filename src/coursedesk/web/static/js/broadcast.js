// One broadcast: while it is sending (or being deleted), its figures follow the API live.
"use strict";

(() => {
  const root = document.getElementById("broadcast");
  if (!root || root.dataset.live !== "true") {
    return;
  }
  const messageId = root.dataset.messageId;
  const POLL_MS = 1500;
  const WINDOW_MS = 10000;
  const samples = [];
  const number = (value) => value.toLocaleString("en");

  function duration(seconds) {
    const whole = Math.max(1, Math.ceil(seconds));
    if (whole < 60) {
      return `${whole} s`;
    }
    const minutes = Math.ceil(whole / 60);
    return minutes < 60 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function show(item) {
    const sent = item.successful_deliveries - item.deleted_deliveries;
    const figures = {
      delivered: item.successful_deliveries,
      sent,
      failed: item.failed_deliveries,
      pending: item.pending_deliveries,
      cancelled: item.cancelled_deliveries,
      deleted: item.deleted_deliveries,
      total: item.total_recipients,
    };
    for (const [name, value] of Object.entries(figures)) {
      document.querySelectorAll(`[data-figure="${name}"]`).forEach((element) => {
        element.textContent = number(value);
      });
      const bar = root.querySelector(`[data-bar="${name}"]`);
      if (bar && item.total_recipients > 0) {
        bar.style.width = `${(100 * value) / item.total_recipients}%`;
      }
    }
    const badge = document.querySelector('[data-field="status"] .badge');
    if (badge && !badge.classList.contains(item.status)) {
      badge.className = `badge ${item.status}`;
      badge.textContent = item.status.charAt(0).toUpperCase() + item.status.slice(1);
    }
    const progress = root.querySelector('[role="progressbar"]');
    progress.setAttribute("aria-valuenow", String(item.total_recipients - item.pending_deliveries));

    const now = Date.now();
    const done = item.successful_deliveries + item.failed_deliveries;
    samples.push({ now, done });
    while (samples.length > 2 && now - samples[0].now > WINDOW_MS) {
      samples.shift();
    }
    const pace = root.querySelector("[data-pace]");
    if (item.status === "sending" && samples.length > 1) {
      const first = samples[0];
      const rate = ((done - first.done) * 1000) / (now - first.now);
      if (rate > 0) {
        const left = duration(item.pending_deliveries / rate);
        pace.textContent = `${rate.toFixed(1)} messages a second · about ${left} left`;
      } else {
        pace.textContent = "Sending…";
      }
    } else if (item.deletion === "deleting") {
      pace.textContent = `Deleting from chats: ${number(item.deleted_deliveries)} done`;
    }
  }

  async function poll() {
    let finished = false;
    try {
      const response = await fetch(`/api/messages/${messageId}`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        const item = await response.json();
        show(item);
        const live = ["scheduled", "sending"].includes(item.status) || item.deletion === "deleting";
        finished = !live;
      }
    } catch (error) {
      // A dropped connection is simply tried again at the next tick.
    }
    if (finished) {
      // The recipient lists and the buttons change with the status: load them afresh.
      window.location.reload();
      return;
    }
    setTimeout(poll, POLL_MS);
  }

  setTimeout(poll, POLL_MS);
})();
