/* aiweb dashboard: charts from data-spec JSON, confirmations. No inline script (strict CSP). */
(function () {
  "use strict";
  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];

  function hourLabel(iso) {
    var d = new Date(iso);
    return isNaN(d) ? iso : String(d.getHours()).padStart(2, "0") + ":00";
  }

  function axisTitle(text) {
    return text ? { display: true, text: text } : { display: false };
  }

  function bounds(axis, min, max) {
    if (min !== undefined && min !== null) axis.min = min;
    if (max !== undefined && max !== null) axis.max = max;
    return axis;
  }

  /* x/y points: series [{name, points: [[x, y]], line, dashed, colour}] (calibration,
     cost curve with its threshold line, residuals). */
  function xyConfig(spec) {
    var datasets = spec.series.map(function (s, i) {
      var colour = s.colour || PALETTE[i % PALETTE.length];
      return {
        label: s.name,
        data: s.points.map(function (p) { return { x: p[0], y: p[1] }; }),
        showLine: !!s.line, borderColor: colour, backgroundColor: colour + "99",
        borderDash: s.dashed ? [6, 4] : [], pointRadius: s.line && s.points.length > 20 ? 0 : 3,
        borderWidth: 2, tension: 0
      };
    });
    return {
      type: "scatter",
      data: { datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: {
          x: bounds({ type: "linear", title: axisTitle(spec.x_label) }, spec.x_min, spec.x_max),
          y: bounds({ type: "linear", title: axisTitle(spec.y_label) }, spec.y_min, spec.y_max)
        },
        plugins: { legend: { display: datasets.length > 1 } }
      }
    };
  }

  /* A waterfall: floating horizontal bars [start, end], base value first, margin last. */
  function waterfallConfig(spec) {
    return {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: [{ label: "contribution", data: spec.ranges, backgroundColor: spec.colours, borderSkipped: false }]
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, indexAxis: "y",
        scales: { x: { title: axisTitle(spec.x_label) } },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                var r = spec.ranges[ctx.dataIndex];
                var last = ctx.dataIndex === spec.ranges.length - 1;
                if (ctx.dataIndex === 0 || last) return r[1].toFixed(3);
                var d = r[1] - r[0];
                return (d >= 0 ? "+" : "") + d.toFixed(3) + " \u2192 " + r[1].toFixed(3);
              }
            }
          }
        }
      }
    };
  }

  function buildChart(canvas) {
    if (canvas.dataset.ready || typeof window.Chart === "undefined") return;
    var spec = JSON.parse(canvas.dataset.spec);
    if (spec.type === "xy" || spec.type === "waterfall") {
      canvas.dataset.ready = "1";
      new window.Chart(canvas, spec.type === "xy" ? xyConfig(spec) : waterfallConfig(spec));
      return;
    }
    var labels = spec.time ? spec.labels.map(hourLabel) : spec.labels;
    var datasets = spec.series.map(function (s, i) {
      var colour = PALETTE[i % PALETTE.length];
      return {
        label: s.name, data: s.values, borderColor: colour,
        backgroundColor: spec.colours || (spec.type === "bar" ? colour + "cc" : colour + "33"),
        spanGaps: true, tension: 0.2, pointRadius: 2
      };
    });
    var valueAxis = { beginAtZero: true };
    if (spec.max !== undefined) valueAxis.max = spec.max;
    if (spec.y_label) valueAxis.title = axisTitle(spec.y_label);
    var scales = spec.horizontal ? { x: valueAxis } : { y: valueAxis };
    if (spec.x_label && !spec.horizontal) scales.x = { title: axisTitle(spec.x_label) };
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

  /* The tabular playground: choosing another model puts its example row (every column,
     null) in the textarea, unless the row was edited. */
  document.addEventListener("focusin", function (event) {
    var select = event.target;
    if (select instanceof HTMLSelectElement && select.dataset.exampleFor) {
      select.dataset.previous = select.value;
    }
  });
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!(select instanceof HTMLSelectElement) || !select.dataset.exampleFor) return;
    var area = document.getElementById(select.dataset.exampleFor);
    var option = select.selectedOptions[0];
    if (!area || !option) return;
    var before = select.querySelector('option[value="' + CSS.escape(select.dataset.previous || "") + '"]');
    var untouched = !area.value.trim() || (before && area.value === before.dataset.example);
    if (untouched) area.value = option.dataset.example || "{}";
    select.dataset.previous = select.value;
  });

  document.addEventListener("DOMContentLoaded", function () {
    initCharts(document);
    if (window.htmx) window.htmx.onLoad(initCharts);
  });
})();
