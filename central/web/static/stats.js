// 统计 charts page: four ECharts charts from the JSON the page carries (no extra request).
(function () {
  "use strict";
  function start() {
    var el = document.getElementById("stats-data");
    if (!el || !window.echarts) return;
    var data = JSON.parse(el.textContent);
    var charts = [];
    function chart(id, option) {
      var node = document.getElementById(id);
      var c = window.echarts.init(node, null, { renderer: "svg" });
      c.setOption(Object.assign({ tooltip: { trigger: "axis" }, grid: { left: 40, right: 10, top: 40, bottom: 30 } }, option));
      node.setAttribute("data-ready", "1");
      charts.push(c);
    }
    function lines(series, stack) {
      return Object.keys(series).map(function (name) {
        return { name: name, type: stack ? "bar" : "line", stack: stack || undefined, data: series[name] };
      });
    }
    var x = { type: "category", data: data.days };
    chart("chart-species", { legend: { type: "scroll" }, xAxis: x, yAxis: { type: "value" }, series: lines(data.species) });
    chart("chart-sites", { legend: { type: "scroll" }, xAxis: x, yAxis: { type: "value" }, series: lines(data.sites, "sites") });
    chart("chart-rules", { tooltip: { trigger: "item" }, xAxis: { type: "value" },
      yAxis: { type: "category", data: Object.keys(data.rules), axisLabel: { width: 120, overflow: "truncate" } },
      grid: { left: 130, right: 20, top: 10, bottom: 30 },
      series: [{ type: "bar", data: Object.values(data.rules) }] });
    chart("chart-backlog", { xAxis: x, yAxis: { type: "value" }, series: [{ name: "待处理 unreviewed", type: "bar", data: data.backlog, itemStyle: { color: "#d9480f" } }] });
    window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
