// The student list: results, and the CSV export, follow the search box and filters as they
// change.
"use strict";

(() => {
  const form = document.getElementById("student-filters");
  const results = document.getElementById("results");
  if (!form || !results) {
    return;
  }
  let latest = 0;

  async function refresh() {
    const query = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (value !== "") {
        query.append(name, value);
      }
    }
    const search = query.toString();
    const url = search ? `${form.action}?${search}` : form.action;
    const ticket = ++latest;
    results.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("results");
      if (ticket !== latest || !fresh) {
        return;
      }
      results.replaceChildren(...fresh.childNodes);
      // The export downloads exactly what the list now shows, every page of it.
      const exported = page.getElementById("export-csv");
      const exportLink = document.getElementById("export-csv");
      if (exported && exportLink) {
        exportLink.setAttribute("href", exported.getAttribute("href"));
      }
      const crumbs = page.querySelector(".page-heading .crumbs");
      const current = document.querySelector(".page-heading .crumbs");
      if (crumbs && current) {
        current.textContent = crumbs.textContent;
      }
      history.replaceState(null, "", url);
    } catch (error) {
      form.submit();
    } finally {
      results.setAttribute("aria-busy", "false");
    }
  }

  const refreshSoon = window.coursedesk.debounce(refresh, 300);
  form.querySelector('input[type="search"]').addEventListener("input", refreshSoon);
  form.querySelectorAll("select").forEach((select) => select.addEventListener("change", refresh));
})();
