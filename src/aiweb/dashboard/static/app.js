/* aiweb dashboard: charts from data-spec JSON, confirmations. No inline script (strict CSP). */
(function () {
  "use strict";
  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];

  function hourLabel(iso) {
    var d = new Date(iso);
    return isNaN(d) ? iso : String(d.getHours()).padStart(2, "0") + ":00";
  }

  function buildChart(canvas) {
    if (canvas.dataset.ready || typeof window.Chart === "undefined") return;
    var spec = JSON.parse(canvas.dataset.spec);
    var labels = spec.time ? spec.labels.map(hourLabel) : spec.labels;
    var datasets = spec.series.map(function (s, i) {
      var colour = PALETTE[i % PALETTE.length];
      return {
        label: s.name, data: s.values, borderColor: colour,
        backgroundColor: spec.type === "bar" ? colour + "cc" : colour + "33",
        spanGaps: true, tension: 0.2, pointRadius: 2
      };
    });
    var valueAxis = { beginAtZero: true };
    if (spec.max !== undefined) valueAxis.max = spec.max;
    var scales = spec.horizontal ? { x: valueAxis } : { y: valueAxis };
    canvas.dataset.ready = "1";
    new window.Chart(canvas, {
      type: spec.type,
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        indexAxis: spec.horizontal ? "y" : "x", scales: scales,
        plugins: { legend: { display: datasets.length > 1 } }
      }
    });
  }

  function initCharts(root) {
    (root || document).querySelectorAll("canvas[data-spec]").forEach(buildChart);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm) {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    }
  }, true);

  document.addEventListener("DOMContentLoaded", function () {
    initCharts(document);
    if (window.htmx) window.htmx.onLoad(initCharts);
  });
})();
