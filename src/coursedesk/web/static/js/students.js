// The student list: results follow the search box and filters as they change.
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
