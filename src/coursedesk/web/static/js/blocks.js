// Blocks of a page (the dashboard's, the system page's) each fetched on its own, charts drawn.
"use strict";

(() => {
  const PLOT_CONFIG = { displayModeBar: false, responsive: true };

  function drawCharts(root) {
    root.querySelectorAll(".chart").forEach((element) => {
      const source = element.nextElementSibling;
      if (!source || !source.classList.contains("chart-figure") || !window.Plotly) {
        return;
      }
      const figure = JSON.parse(source.textContent);
      window.Plotly.newPlot(element, figure.data, figure.layout, PLOT_CONFIG).then(() => {
        // A click on a day whose points include a page of this app (a broadcast's
        // marker; hover is unified per day) leads to that page.
        element.on("plotly_click", (event) => {
          const linked = (event.points || []).find(
            (point) => typeof point.customdata === "string",
          );
          const target = linked && linked.customdata;
          if (target && target.startsWith("/") && !target.startsWith("//")) {
            window.location.assign(target);
          }
        });
      });
    });
  }

  function showFailure(block) {
    const box = document.createElement("div");
    box.className = "block-error";
    box.setAttribute("role", "alert");
    const text = document.createElement("span");
    text.textContent = "This block could not be loaded.";
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "secondary small";
    retry.textContent = "Retry";
    retry.addEventListener("click", () => loadBlock(block));
    box.append(text, retry);
    block.replaceChildren(box);
  }

  async function loadBlock(block) {
    block.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(block.dataset.blockSrc, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      block.innerHTML = await response.text();
      drawCharts(block);
    } catch (error) {
      showFailure(block);
    } finally {
      block.setAttribute("aria-busy", "false");
    }
  }

  document.querySelectorAll("[data-block-src]").forEach(loadBlock);
})();
