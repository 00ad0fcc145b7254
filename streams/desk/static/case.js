// The case page's charts, drawn with the vendored uPlot from the data embedded in the page.
(function () {
  "use strict";
  function read(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function width(el) { return Math.max(280, Math.min(el.clientWidth || 900, 980)); }

  // Shade the case's months behind the series.
  function caseMonths(flags) {
    return {
      hooks: {
        drawClear: function (u) {
          var ctx = u.ctx, xs = u.data[0];
          ctx.save();
          ctx.fillStyle = "rgba(214, 39, 40, 0.12)";
          for (var i = 0; i < xs.length; i++) {
            if (!flags[i]) { continue; }
            var left = u.valToPos(xs[i] - 0.5, "x", true), right = u.valToPos(xs[i] + 0.5, "x", true);
            ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height);
          }
          ctx.restore();
        }
      }
    };
  }

  function draw(el, d, kind, small) {
    // x is the month's index; the axis and the legend show the month itself.
    var xs = d.periods.map(function (_, i) { return i; });
    var month = function (i) { return d.periods[i] || ""; };
    var series = [{ label: "month", value: function (u, i) { return i == null ? "--" : month(i); } }], data = [xs];
    if (kind === "value") {
      series.push({ label: "value", stroke: "#1f4e9e", width: 2, points: { show: true, size: 5 } });
      data.push(d.value);
      series.push({ label: "expected", stroke: "#333", dash: [6, 4], width: 1.5 });
      data.push(d.baseline);
      if (!small) {
        series.push({ label: "band top", stroke: "#8a8a8a", dash: [2, 3], width: 1 });
        data.push(d.band_high);
      }
    } else {
      series.push({ label: "declarations", stroke: "#1f4e9e", width: 2, points: { show: true, size: 5 } });
      data.push(d.count);
      series.push({ label: "expected", stroke: "#333", dash: [6, 4], width: 1.5 });
      data.push(d.baseline_count);
    }
    var opts = {
      width: width(el), height: small ? 110 : 260,
      series: series,
      legend: { show: !small },
      cursor: { show: !small },
      axes: small ? [{ show: false }, { show: false }] : [
        { incrs: [1, 2, 3, 6, 12, 24], values: function (u, splits) { return splits.map(month); } },
        { size: 70 }],
      scales: { x: { time: false } },
      plugins: d.in_case ? [caseMonths(d.in_case)] : []
    };
    return new uPlot(opts, data, el);
  }

  var main = read("chart-data");
  if (main && window.uPlot) {
    var value = document.getElementById("chart-value");
    if (value) { draw(value, main, "value", false); }
    var count = document.getElementById("chart-count");
    if (count) { draw(count, main, "count", false); }
  }
  // The related lanes' small charts are drawn when they come near the screen: a page with dozens
  // of related lanes does not draw them all before it can be read.
  function drawSpark(el) {
    var d = read(el.getAttribute("data-source"));
    if (d && window.uPlot && !el.firstChild) { draw(el, d, "value", true); }
  }
  var sparks = document.querySelectorAll(".spark");
  if ("IntersectionObserver" in window) {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) { observer.unobserve(entry.target); drawSpark(entry.target); }
      });
    }, { rootMargin: "300px" });
    for (var i = 0; i < sparks.length; i++) { observer.observe(sparks[i]); }
  } else {
    for (var j = 0; j < sparks.length; j++) { drawSpark(sparks[j]); }
  }
  window.deskChartsDrawn = performance.now();
  document.dispatchEvent(new CustomEvent("desk:charts"));
})();
