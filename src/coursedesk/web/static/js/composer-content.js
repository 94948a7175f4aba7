// The composer's content: media uploaded by file input or drag and drop, the buttons
// builder, the variables menu, and the student the preview is shown as. The form works
// without this script; it hides the fields meant for that case.
"use strict";

(() => {
  const form = document.getElementById("composer");
  if (!form) {
    return;
  }
  const { csrfToken, debounce } = window.coursedesk;
  const changed = () => form.dispatchEvent(new Event("composer:changed"));
  const maxMedia = Number(form.dataset.limitsMedia);
  const maxRows = Number(form.dataset.limitsRows);
  const maxInRow = Number(form.dataset.limitsInARow);

  form.querySelectorAll("[data-no-script]").forEach((element) => {
    element.hidden = true;
  });
  form.querySelector(".button-new").remove();
  document.getElementById("attach-file").hidden = true;

  function element(tag, className, text) {
    const made = document.createElement(tag);
    if (className) {
      made.className = className;
    }
    if (text !== undefined) {
      made.textContent = text;
    }
    return made;
  }

  function smallButton(label, title, action) {
    const button = element("button", "ghost small", label);
    button.type = "button";
    button.title = title;
    button.setAttribute("aria-label", title);
    button.addEventListener("click", action);
    return button;
  }

  // ---- Media: uploaded at once to POST /api/media, kept as ids in album order.
  const mediaIds = document.getElementById("media-ids");
  const list = document.getElementById("media-list");
  const mediaProblem = document.getElementById("media-problem");
  const fileInput = document.getElementById("media-file");
  const dropZone = document.getElementById("drop-zone");
  const buttonsProblem = document.getElementById("buttons-problem");
  fileInput.multiple = true;
  dropZone.classList.add("scripted");

  const attachedIds = () => [...list.querySelectorAll("li[data-media-id]")].map((li) => li.dataset.mediaId);

  function showMediaProblem(message) {
    mediaProblem.hidden = !message;
    mediaProblem.textContent = message || "";
  }

  function mediaChanged() {
    mediaIds.value = attachedIds().join(", ");
    checkAlbumButtons();
    changed();
  }

  function withControls(item) {
    const name = item.querySelector(".media-name");
    const label = name ? name.firstChild.textContent.trim() : "this file";
    const controls = element("span", "media-controls");
    controls.append(
      smallButton("↑", `Move ${label} earlier`, () => {
        if (item.previousElementSibling) {
          item.parentNode.insertBefore(item, item.previousElementSibling);
          mediaChanged();
        }
      }),
      smallButton("↓", `Move ${label} later`, () => {
        if (item.nextElementSibling) {
          item.parentNode.insertBefore(item.nextElementSibling, item);
          mediaChanged();
        }
      }),
      smallButton("Remove", `Remove ${label}`, () => {
        item.remove();
        showMediaProblem("");
        mediaChanged();
      }),
    );
    item.append(controls);
    return item;
  }

  function mediaItem(media) {
    const item = element("li");
    item.dataset.mediaId = String(media.media_id);
    item.dataset.kind = media.kind;
    let shown;
    if (media.kind === "photo") {
      shown = element("img");
      shown.alt = "";
      shown.src = `/api/media/${media.media_id}`;
    } else if (media.kind === "video" || media.kind === "animation") {
      shown = element("video");
      shown.muted = true;
      shown.preload = "metadata";
      shown.src = `/api/media/${media.media_id}`;
    } else {
      shown = element("span", "file-icon", media.kind);
    }
    const name = element("span", "media-name", media.filename);
    const kb = media.size < 1024 * 1024 ? `${Math.ceil(media.size / 1024)} kB` : `${(media.size / 1048576).toFixed(1)} MB`;
    name.append(element("small", "", `${media.kind} · ${kb}`));
    item.append(shown, name);
    return withControls(item);
  }

  function uploadRefusal(status, answer, file) {
    const said = answer && answer.error ? answer.error : "";
    if (status === 413) {
      return `${file.name} is too large: ${said || "photos may be at most 10 MB, other files 50 MB"}.`;
    }
    if (status === 415) {
      return `${file.name} cannot be sent: ${said || "the server does not take this kind of file"}.`;
    }
    return `${file.name} was not attached: ${said || `the server answered ${status}`}.`;
  }

  async function upload(file) {
    const waiting = element("li", "uploading", `Uploading ${file.name}…`);
    list.append(waiting);
    const body = new FormData();
    body.append("file", file);
    let response;
    try {
      response = await fetch("/api/media", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrfToken(), Accept: "application/json" },
        body,
      });
    } catch (error) {
      waiting.remove();
      showMediaProblem(`${file.name} was not attached: the server could not be reached.`);
      return;
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch (error) {
      answer = null;
    }
    if (!response.ok) {
      waiting.remove();
      showMediaProblem(uploadRefusal(response.status, answer, file));
      return;
    }
    waiting.replaceWith(mediaItem(answer));
    mediaChanged();
  }

  async function attach(files) {
    const chosen = [...files];
    if (chosen.length === 0) {
      return;
    }
    if (attachedIds().length + chosen.length > maxMedia) {
      showMediaProblem(`At most ${maxMedia} files go in one message (an album).`);
      return;
    }
    showMediaProblem("");
    for (const file of chosen) {
      await upload(file);
    }
  }

  list.querySelectorAll("li[data-media-id]").forEach(withControls);
  fileInput.addEventListener("change", () => {
    attach(fileInput.files).finally(() => {
      fileInput.value = "";
    });
  });
  ["dragenter", "dragover"].forEach((type) =>
    dropZone.addEventListener(type, (event) => {
      event.preventDefault();
      dropZone.classList.add("dragging");
    }),
  );
  ["dragleave", "drop"].forEach((type) =>
    dropZone.addEventListener(type, () => dropZone.classList.remove("dragging")),
  );
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    attach(event.dataTransfer.files);
  });

  // ---- Buttons: rows of fields; each field's hidden row number follows its row.
  const rowsBox = document.getElementById("button-rows");
  const addRow = document.getElementById("add-button-row");
  const buttonTemplate = document.getElementById("button-template");
  addRow.hidden = false;

  function newButton() {
    return buttonTemplate.content.firstElementChild.cloneNode(true);
  }

  function addButtonTo(row) {
    const field = newButton();
    row.insertBefore(field, row.querySelector("[data-add-button]"));
    field.querySelector('input[name="button_text"]').focus();
  }

  function checkAlbumButtons() {
    const hasButtons = rowsBox.querySelector("[data-button]") !== null;
    const album = attachedIds().length > 1;
    buttonsProblem.hidden = !(album && hasButtons);
    buttonsProblem.textContent = album && hasButtons
      ? "Telegram puts no buttons under an album: remove the buttons, or keep one file."
      : "";
  }

  function renumber() {
    const rows = [...rowsBox.querySelectorAll("[data-row]")];
    rows.forEach((row, index) => {
      const fields = row.querySelectorAll("[data-button]");
      if (fields.length === 0) {
        row.remove();
        return;
      }
      fields.forEach((field) => {
        field.querySelector('input[name="button_row"]').value = String(index);
      });
      row.querySelector("[data-add-button]").disabled = fields.length >= maxInRow;
    });
    addRow.disabled = rowsBox.querySelectorAll("[data-row]").length >= maxRows;
    checkAlbumButtons();
  }

  addRow.addEventListener("click", () => {
    const row = element("div", "button-row");
    row.dataset.row = "";
    const add = element("button", "ghost small add", "+ Button in this row");
    add.type = "button";
    add.dataset.addButton = "";
    row.append(add);
    rowsBox.append(row);
    addButtonTo(row);
    renumber();
    changed();
  });
  rowsBox.addEventListener("click", (event) => {
    const add = event.target.closest("[data-add-button]");
    const remove = event.target.closest("[data-remove-button]");
    if (add) {
      addButtonTo(add.closest("[data-row]"));
    } else if (remove) {
      remove.closest("[data-button]").remove();
    } else {
      return;
    }
    renumber();
    changed();
  });
  renumber();

  // ---- Variables: inserted at the cursor, with the fallback if one is given.
  const text = form.elements.namedItem("text");
  const fallback = document.getElementById("variable-fallback");
  const menu = document.getElementById("variables-menu");
  menu.querySelectorAll("[data-variable]").forEach((button) => {
    button.addEventListener("click", () => {
      const spare = fallback.value.replace(/[{}|]/g, "").trim();
      const variable = `{{${button.dataset.variable}${spare ? `|${spare}` : ""}}}`;
      const start = text.selectionStart;
      const end = text.selectionEnd;
      text.setRangeText(variable, start, end, "end");
      menu.open = false;
      text.focus();
      text.dispatchEvent(new Event("input", { bubbles: true }));
    });
  });

  // ---- The student the preview is shown as.
  const previewSearch = document.getElementById("preview-search");
  const previewSuggestions = document.getElementById("preview-suggestions");
  const previewUser = document.getElementById("preview-user-id");

  async function suggestStudents() {
    const query = previewSearch.value.trim();
    if (!query) {
      previewSuggestions.hidden = true;
      if (previewUser.value) {
        previewUser.value = "";
        changed();
      }
      return;
    }
    const response = await fetch(`/api/users/search?${new URLSearchParams({ q: query, limit: 8 })}`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) {
      previewSuggestions.hidden = true;
      return;
    }
    const { items } = await response.json();
    previewSuggestions.replaceChildren(
      ...items.map((item) => {
        const label = item.first_name || (item.username ? `@${item.username}` : `User ${item.user_id}`);
        const entry = element("li");
        const button = element("button", "", label);
        button.type = "button";
        button.append(element("small", "", `${item.username ? `@${item.username} · ` : ""}${item.user_id}`));
        button.addEventListener("click", () => {
          previewUser.value = String(item.user_id);
          previewSearch.value = `${label} (${item.user_id})`;
          previewSuggestions.hidden = true;
          changed();
        });
        entry.append(button);
        return entry;
      }),
    );
    if (items.length === 0) {
      previewSuggestions.replaceChildren(element("li", "help", "No student matches."));
    }
    previewSuggestions.hidden = false;
  }

  previewSearch.addEventListener("input", debounce(suggestStudents, 250));
  previewSearch.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      const first = previewSuggestions.querySelector("button");
      if (first) {
        first.click();
      }
    }
  });
  if (previewUser.value) {
    previewSearch.value = previewUser.value;
  }
})();
