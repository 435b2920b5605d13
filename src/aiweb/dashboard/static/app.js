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

  function percent(value) {
    return Math.round(value * 1000) / 10 + "%";
  }

  /* x/y points: series [{name, points: [[x, y]], line, dashed, colour}] (calibration,
     cost curve with its threshold line, residuals), and optionally per series: stepped
     (a step line), fill (down to zero), radius and point_style (markers), notes (one
     tooltip line per point); spec.y_percent shows y as a percentage (a rollout's
     traffic over time). */
  function xyConfig(spec) {
    var notes = false;
    var datasets = spec.series.map(function (s, i) {
      var colour = s.colour || PALETTE[i % PALETTE.length];
      if (s.notes) notes = true;
      return {
        label: s.name,
        data: s.points.map(function (p, j) {
          return { x: p[0], y: p[1], note: s.notes ? s.notes[j] : undefined };
        }),
        showLine: !!s.line, borderColor: colour,
        backgroundColor: s.fill ? colour + "22" : colour + "99",
        borderDash: s.dashed ? [6, 4] : [],
        pointRadius: s.radius !== undefined ? s.radius : (s.line && s.points.length > 20 ? 0 : 3),
        pointStyle: s.point_style || "circle", stepped: !!s.stepped, fill: s.fill ? "origin" : false,
        borderWidth: 2, tension: 0
      };
    });
    var y = bounds({ type: "linear", title: axisTitle(spec.y_label) }, spec.y_min, spec.y_max);
    if (spec.y_percent) y.ticks = { callback: percent };
    var plugins = { legend: { display: datasets.length > 1 } };
    if (notes) {
      plugins.tooltip = {
        callbacks: {
          label: function (ctx) {
            var value = spec.y_percent ? percent(ctx.parsed.y) : ctx.parsed.y;
            return ctx.raw.note ? ctx.dataset.label + ": " + ctx.raw.note : ctx.dataset.label + ": " + value;
          }
        }
      };
    }
    return {
      type: "scatter",
      data: { datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: {
          x: bounds({ type: "linear", title: axisTitle(spec.x_label) }, spec.x_min, spec.x_max),
          y: y
        },
        plugins: plugins
      }
    };
  }

  /* Estimates with their intervals, one row each: labels, values (a point each), ranges
     ([low, high] bars; null: none), colours; spec.percent shows the axis as percentages
     (both variants' live accuracy on the rollout page). */
  function intervalConfig(spec) {
    var x = bounds({ title: axisTitle(spec.x_label) }, spec.x_min, spec.x_max);
    if (spec.percent) x.ticks = { callback: percent };
    var show = spec.percent ? percent : function (v) { return v; };
    return {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: [
          {
            type: "bar", label: "95% interval", data: spec.ranges, borderSkipped: false,
            backgroundColor: spec.colours.map(function (c) { return c + "44"; }),
            borderColor: spec.colours, borderWidth: 1, barPercentage: 0.5
          },
          {
            type: "line", label: "estimate", data: spec.values, showLine: false,
            pointRadius: 7, pointHoverRadius: 8, pointStyle: "rectRot", clip: false,
            backgroundColor: spec.colours, borderColor: spec.colours
          }
        ]
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, indexAxis: "y",
        scales: { x: x },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                if (ctx.datasetIndex === 1) return "estimate " + show(ctx.parsed.x);
                var r = spec.ranges[ctx.dataIndex];
                return r ? "95% interval " + show(r[0]) + " to " + show(r[1]) : "";
              }
            }
          }
        }
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
    var special = { xy: xyConfig, waterfall: waterfallConfig, interval: intervalConfig };
    if (special[spec.type]) {
      canvas.dataset.ready = "1";
      new window.Chart(canvas, special[spec.type](spec));
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

  /* A polled fragment (the rollout page) replaces its charts every few seconds: free the
     old Chart objects first, which Chart.js would otherwise keep, and drop the style
     attribute Chart.js gave their canvases: htmx's settle step copies the attributes of
     an old element to the new one of the same id with setAttribute, and a style
     attribute set that way is an inline style the CSP blocks. */
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!event.detail.shouldSwap || !target || typeof window.Chart === "undefined") return;
    target.querySelectorAll("canvas[data-spec]").forEach(function (canvas) {
      var old = window.Chart.getChart(canvas);
      if (old) old.destroy();
      canvas.removeAttribute("style");
    });
  });

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
