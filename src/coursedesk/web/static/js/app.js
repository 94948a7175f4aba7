// Shared by every page: the CSRF token for page scripts, and confirmation of risky forms.
"use strict";

window.coursedesk = (() => {
  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // JSON to the app's API, with the session's CSRF token; resolves to {ok, status, body}.
  async function sendJSON(method, url, payload) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRF-Token": csrfToken(),
      },
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = { error: `The server answered ${response.status}.` };
    }
    return { ok: response.ok, status: response.status, body };
  }

  function debounce(action, waitMs) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => action(...args), waitMs);
    };
  }

  document.addEventListener("submit", (event) => {
    const question = event.target.dataset ? event.target.dataset.confirm : undefined;
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // A pop-over form the server sent back refused opens again, showing why.
  document.querySelectorAll("[popover][data-open]").forEach((popover) => popover.showPopover());

  return { csrfToken, sendJSON, debounce };
})();
