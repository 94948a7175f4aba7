// The composer: live preview, live recipient count, and picking students by name.
// Media, buttons, variables and the preview's student are composer-content.js.
"use strict";

(() => {
  const form = document.getElementById("composer");
  if (!form) {
    return;
  }
  const { csrfToken, sendJSON, debounce } = window.coursedesk;
  const idsInput = document.getElementById("user-ids");
  const search = document.getElementById("student-search");
  const suggestions = document.getElementById("student-suggestions");
  const chips = document.getElementById("chosen-students");
  const count = document.querySelector("#recipient-count [data-recipients]");
  const countLabel = document.querySelector("#recipient-count [data-recipients-label]");
  const problem = document.getElementById("recipient-problem");
  const names = new Map();

  const checked = (name) => {
    const input = form.querySelector(`input[name="${name}"]:checked`);
    return input ? input.value : "";
  };

  function listedIds() {
    return idsInput.value.split(/[\s,;]+/).filter((part) => part !== "");
  }

  function showPanels() {
    const audience = checked("audience_type");
    form.querySelectorAll("[data-audience-panel]").forEach((panel) => {
      panel.hidden = panel.dataset.audiencePanel !== audience;
    });
    form.querySelector("[data-schedule-panel]").hidden = checked("send_at") !== "later";
  }

  function showCount(value, label, message) {
    count.textContent = value;
    countLabel.textContent = label;
    problem.hidden = !message;
    problem.textContent = message || "";
  }

  function audience() {
    const type = checked("audience_type");
    if (!type) {
      return "Choose who receives it.";
    }
    if (type === "stream") {
      const stream = form.elements.namedItem("stream").value;
      return stream ? { type, stream } : "Choose a stream to count its students.";
    }
    if (type === "users") {
      const ids = listedIds();
      if (ids.length === 0) {
        return "Choose students to count them.";
      }
      if (!ids.every((id) => /^\d+$/.test(id))) {
        return "Student ids are whole numbers, separated by commas.";
      }
      return { type, user_ids: ids.map(Number) };
    }
    return { type };
  }

  async function countRecipients() {
    const chosen = audience();
    if (typeof chosen === "string") {
      showCount("—", "students will receive it", chosen);
      return;
    }
    const answer = await sendJSON("POST", "/api/messages/count", { audience: chosen });
    if (!answer.ok) {
      showCount("—", "students will receive it", answer.body.error);
      return;
    }
    const total = answer.body.total_recipients;
    const unknown = answer.body.invalid_user_ids || [];
    showCount(
      total.toLocaleString("en"),
      total === 1 ? "student will receive it" : "students will receive it",
      unknown.length ? `Not students, left out: ${unknown.slice(0, 10).join(", ")}` : "",
    );
  }

  // The whole form but its file input: the preview shows media, buttons, the student
  // chosen to preview as, and the longest text in the audience.
  async function refreshPreview() {
    const body = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (typeof value === "string") {
        body.append(name, value);
      }
    }
    const response = await fetch("/broadcasts/preview", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken() },
      body,
    });
    document.getElementById("preview").innerHTML = await response.text();
  }

  function showChips() {
    chips.replaceChildren(
      ...listedIds().map((id) => {
        const chip = document.createElement("span");
        chip.className = "chip";
        chip.textContent = names.get(id) || `#${id}`;
        const remove = document.createElement("button");
        remove.type = "button";
        remove.textContent = "×";
        remove.setAttribute("aria-label", `Remove ${chip.textContent}`);
        remove.addEventListener("click", () => {
          idsInput.value = listedIds().filter((other) => other !== id).join(", ");
          showChips();
          countSoon();
        });
        chip.append(remove);
        return chip;
      }),
    );
  }

  function choose(student) {
    const id = String(student.user_id);
    names.set(id, student.label);
    if (!listedIds().includes(id)) {
      idsInput.value = [...listedIds(), id].join(", ");
    }
    search.value = "";
    suggestions.hidden = true;
    showChips();
    countSoon();
    search.focus();
  }

  async function suggest() {
    const query = search.value.trim();
    if (!query) {
      suggestions.hidden = true;
      return;
    }
    const response = await fetch(`/api/users/search?${new URLSearchParams({ q: query, limit: 8 })}`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) {
      suggestions.hidden = true;
      return;
    }
    const { items } = await response.json();
    suggestions.replaceChildren(
      ...items.map((item) => {
        const label = item.first_name || (item.username ? `@${item.username}` : `User ${item.user_id}`);
        const entry = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = label;
        const detail = document.createElement("small");
        detail.textContent = `${item.username ? `@${item.username} · ` : ""}${item.user_id}`;
        button.append(detail);
        button.addEventListener("click", () => choose({ user_id: item.user_id, label }));
        entry.append(button);
        return entry;
      }),
    );
    if (items.length === 0) {
      const entry = document.createElement("li");
      entry.className = "help";
      entry.textContent = "No student matches.";
      suggestions.replaceChildren(entry);
    }
    suggestions.hidden = false;
  }

  const countSoon = debounce(countRecipients, 300);
  const previewSoon = debounce(refreshPreview, 250);

  form.addEventListener("change", (event) => {
    showPanels();
    previewSoon();
    if (["audience_type", "stream", "user_ids"].includes(event.target.name)) {
      countSoon();
    }
  });
  form.addEventListener("input", (event) => {
    if (event.target.name) {
      previewSoon();
    }
  });
  form.addEventListener("composer:changed", previewSoon);
  idsInput.addEventListener("input", () => {
    showChips();
    countSoon();
  });
  search.addEventListener("input", debounce(suggest, 250));
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      const first = suggestions.querySelector("button");
      if (first) {
        first.click();
      }
    }
  });

  showPanels();
  showChips();
  countRecipients();
})();
