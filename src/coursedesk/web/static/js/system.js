// The SQL form of the system page: it posts to the guarded migrate API and shows the answer.
"use strict";

(() => {
  const form = document.getElementById("sql-form");
  if (!form) {
    return;
  }
  const result = document.getElementById("sql-result");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector('button[type="submit"]');
    const dryRun = form.elements.namedItem("dry_run").checked;
    if (!dryRun && !window.confirm("Run this SQL for real? It is committed at once.")) {
      return;
    }
    button.disabled = true;
    result.hidden = false;
    result.classList.remove("failed");
    result.textContent = "Running…";
    try {
      const answer = await window.coursedesk.sendJSON("POST", form.action, {
        sql: form.elements.namedItem("sql").value,
        description: form.elements.namedItem("description").value,
        dry_run: dryRun,
      });
      if (answer.ok) {
        // A statement that returns rows is followed by its columns and rows, tab-separated.
        const lines = answer.body.results.flatMap((step) =>
          step.rows
            ? [
                step.command,
                step.columns.join("\t"),
                ...step.rows.map((row) => row.map((value) => value ?? "NULL").join("\t")),
              ]
            : [step.command],
        );
        result.textContent = [answer.body.message, ...lines].join("\n");
      } else {
        const where = answer.body.line ? ` (line ${answer.body.line})` : "";
        result.textContent = `Nothing was kept. ${answer.body.error}${where}`;
        result.classList.add("failed");
      }
    } catch (error) {
      result.textContent = "The server could not be reached; nothing was run.";
      result.classList.add("failed");
    } finally {
      button.disabled = false;
    }
  });
})();
