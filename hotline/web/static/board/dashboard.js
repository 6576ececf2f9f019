// Dashboard charts (Chart.js, vendored). The figures come from <script type="application/json">;
// every chart has a data table next to it, so the page works without this script.
(function () {
  "use strict";
  var COLOURS = ["#0b5394", "#b35900", "#1e6b32", "#6a3d9a", "#a4161a", "#00756f", "#4a5560"];
  var TARGET = "#a4161a";

  function start() {
    var source = document.getElementById("dashboard-data");
    if (!source || typeof window.Chart === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var Chart = window.Chart;
    var fmt = new Intl.NumberFormat(data.lang === "de" ? "de-DE" : "en-GB", { maximumFractionDigits: 1 });
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#1b1f24";
    Chart.defaults.animation = false;

    function shareChart(id, values, target, title) {
      var canvas = document.getElementById(id);
      if (!canvas) { return; }
      new Chart(canvas, {
        data: {
          labels: data.cities,
          datasets: [
            { type: "bar", label: title, data: values, backgroundColor: "#0b5394", order: 2 },
            {
              type: "line",
              label: data.text.target + " (" + fmt.format(target) + " %)",
              data: data.cities.map(function () { return target; }),
              borderColor: TARGET,
              borderDash: [6, 4],
              borderWidth: 2,
              pointRadius: 0,
              fill: false,
              order: 1
            }
          ]
        },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          scales: {
            y: { min: 0, max: 100, title: { display: true, text: data.text.share },
                 ticks: { callback: function (v) { return v + " %"; } } }
          },
          plugins: {
            legend: { position: "bottom" },
            tooltip: { callbacks: { label: function (ctx) {
              var v = ctx.parsed.y;
              return ctx.dataset.label + ": " + (v === null ? "–" : fmt.format(v) + " %");
            } } }
          }
        }
      });
    }

    shareChart("chart-first-response", data.firstResponse, data.targets.firstResponse, data.text.firstResponse);
    shareChart("chart-first-contact", data.firstContact, data.targets.firstContact, data.text.firstContact);

    var daily = document.getElementById("chart-daily");
    if (daily) {
      new Chart(daily, {
        type: "line",
        data: {
          labels: data.days,
          datasets: data.cities.map(function (name, i) {
            var colour = COLOURS[i % COLOURS.length];
            return {
              label: name,
              data: data.daily[i],
              borderColor: colour,
              backgroundColor: colour,
              borderWidth: 2,
              pointRadius: data.days.length > 45 ? 0 : 2,
              tension: 0
            };
          })
        },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          scales: {
            y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: data.text.newTickets } },
            x: { ticks: { autoSkip: true, maxTicksLimit: daily.clientWidth < 700 ? 8 : 14, maxRotation: 0 } }
          },
          plugins: { legend: { position: "bottom" } }
        }
      });
    }
    document.documentElement.setAttribute("data-charts", "ready");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
