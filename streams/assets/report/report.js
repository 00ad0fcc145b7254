/* transitwatch report: filters, sorting, search and case details over the embedded data.
 * Plain ES2017, no framework; charts by the vendored uPlot (global `uPlot`), drawn when a case
 * is opened. Text from the data is only ever set as textContent, never parsed as HTML. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var cases = data.cases;
  var table = document.getElementById("cases");
  if (!table) return;
  var F = {};
  data.record_fields.forEach(function (name, i) { F[name] = i; });
  var SEVERITY = { critical: 0, high: 1, medium: 2, low: 3 };
  var CONFIDENCE = { "very high": 0, high: 1, medium: 2, low: 3 };
  var bodies = cases.map(function (_, i) { return document.getElementById("case-" + i); });
  var searchText = null;

  function money(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    var a = Math.abs(v), units = [[1e9, "bn"], [1e6, "m"], [1e3, "k"]];
    for (var i = 0; i < units.length; i++) {
      if (a >= units[i][0]) return +(v / units[i][0]).toPrecision(3) + units[i][1];
    }
    return String(+v.toPrecision(3));
  }
  function fixed(v, digits) { return v === null || v === undefined ? "–" : v.toFixed(digits); }

  function el(tag, attrs) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function explanation(rec) {
    return rec[F.explanation].map(function (i) { return data.sentences[i]; }).join(" ");
  }

  // ---- filters and search ------------------------------------------------------------------
  function buildSearchText() {
    searchText = cases.map(function (c, i) {
      var parts = [bodies[i].textContent, c.case_id, c.series_id, c.banned_by || ""];
      c.records.forEach(function (r) {
        parts.push(explanation(r));
        [F.top_exporters, F.top_consignees, F.new_consignees].forEach(function (f) {
          r[f].forEach(function (p) { parts.push(p[0] || ""); });
        });
      });
      return parts.join(" ").toLowerCase();
    });
  }

  var form = document.getElementById("filters");
  var shown = document.getElementById("shown");

  function applyFilters() {
    var f = {};
    form.querySelectorAll("[data-filter]").forEach(function (input) {
      f[input.getAttribute("data-filter")] = input.value.trim();
    });
    var terms = f.q ? f.q.toLowerCase().split(/\s+/) : [];
    if (terms.length && searchText === null) buildSearchText();
    var hs = f.hs.replace(/\D/g, "");
    var count = 0;
    cases.forEach(function (c, i) {
      var ok = (!f.severity || c.severity === f.severity) &&
        (!f.partner || c.partner === f.partner) &&
        (!f.reporter || c.reporter === f.reporter) &&
        (!hs || String(c.hs6).indexOf(hs) === 0) &&
        (!f.tier || String(c.tier) === f.tier) &&
        (!f.detector || c.detectors.indexOf(f.detector) >= 0) &&
        (!f.status || c.status === f.status) &&
        terms.every(function (t) { return searchText[i].indexOf(t) >= 0; });
      bodies[i].hidden = !ok;
      if (ok) count++;
    });
    shown.textContent = "Showing " + count + " of " + cases.length + " cases";
    saveView();
  }

  // ---- the view in the address (#partner=AM&sort=excess.descending), to share or come back to --
  var sorted = null;
  function saveView() {
    var params = new URLSearchParams();
    form.querySelectorAll("[data-filter]").forEach(function (input) {
      if (input.value.trim()) params.set(input.getAttribute("data-filter"), input.value.trim());
    });
    if (sorted) params.set("sort", sorted);
    var hash = params.toString() ? "#" + params.toString() : "";
    if (hash === location.hash || (!hash && !location.hash)) return;
    try {
      history.replaceState(null, "", hash || location.pathname + location.search);
    } catch (e) {
      location.replace(hash || "#");  // where a file:// page may not rewrite its address
    }
  }
  function loadView() {
    var params = new URLSearchParams(location.hash.slice(1));
    form.querySelectorAll("[data-filter]").forEach(function (input) {
      var value = params.get(input.getAttribute("data-filter")) || "";
      if (input.tagName === "SELECT" && !Array.prototype.some.call(input.options, function (o) { return o.value === value; })) value = "";
      input.value = value;  // the address decides, also over a form the browser restored
    });
    var sort = (params.get("sort") || "").split(".");
    var th = table.querySelector("th[data-key='" + sort[0].replace(/[^a-z_]/g, "") + "']");
    if (th && (sort[1] === "ascending" || sort[1] === "descending")) {
      sortBy(th, sort[1]);
    } else if (sorted) {  // back to the report's own order, most severe first
      sorted = null;
      table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.setAttribute("aria-sort", "none"); });
      var fragment = document.createDocumentFragment();
      bodies.forEach(function (body) { fragment.appendChild(body); });
      table.appendChild(fragment);
    }
  }
  form.addEventListener("input", applyFilters);
  form.addEventListener("change", applyFilters);
  form.addEventListener("submit", function (e) { e.preventDefault(); });
  form.addEventListener("reset", function () { setTimeout(applyFilters, 0); });

  // ---- sorting -------------------------------------------------------------------------------
  var SORT_KEYS = {
    severity: function (c) { return c.severity in SEVERITY ? SEVERITY[c.severity] : 9; },
    confidence: function (c) { return c.confidence in CONFIDENCE ? CONFIDENCE[c.confidence] : 9; },
    lane: function (c) { return c.reporter + ">" + c.partner + " " + c.flow; },
    hs6: function (c) { return c.hs6; },
    tier: function (c) { return c.tier; },
    onset: function (c) { return c.onset; },
    months: function (c) { return c.months; },
    peak_ratio: function (c) { return c.peak_ratio; },
    excess: function (c) { return c.excess; },
    detectors: function (c) { return c.detectors.join(", "); },
    status: function (c) { return c.status; },
  };
  function unknown(v) { return v === null || v === undefined || v === ""; }
  function sortBy(th, direction) {
    var key = th.getAttribute("data-key");
    direction = direction || (th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending");
    sorted = key + "." + direction;
    table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", direction);
    var sign = direction === "ascending" ? 1 : -1, value = SORT_KEYS[key];
    var order = cases.map(function (c, i) { return i; });
    order.sort(function (i, j) {
      var a = value(cases[i]), b = value(cases[j]);
      if (unknown(a) || unknown(b)) return (unknown(a) - unknown(b)) || i - j;  // unknowns last
      return sign * (a < b ? -1 : a > b ? 1 : 0) || i - j;
    });
    var fragment = document.createDocumentFragment();
    order.forEach(function (i) { fragment.appendChild(bodies[i]); });
    table.appendChild(fragment);
    saveView();
  }
  table.querySelectorAll("th[data-key] button").forEach(function (button) {
    button.addEventListener("click", function () { sortBy(button.parentNode, null); });
  });

  // ---- a case's details: chart and records -------------------------------------------------
  function monthLabel(first, i) {
    var y = +first.slice(0, 4), m = +first.slice(5, 7) - 1 + i;
    y += Math.floor(m / 12);
    m = ((m % 12) + 12) % 12 + 1;
    return y + "-" + (m < 10 ? "0" : "") + m;
  }

  function chart(c, host) {
    var lane = data.lanes[c.series_id];
    if (!lane || typeof uPlot === "undefined") {
      host.appendChild(el("p", { "class": "note" }, "No chart data was provided for this lane."));
      return;
    }
    var n = lane.value.length, xs = [], months = [];
    for (var i = 0; i < n; i++) { xs.push(i); months.push(monthLabel(lane.first, i)); }
    var marks = lane.value.map(function () { return null; });
    var counts = marks.slice(), hasCounts = false;
    c.records.forEach(function (r) {
      var k = months.indexOf(r[F.period]);
      if (k < 0) return;
      marks[k] = lane.value[k];
      if (r[F.observed_count] !== null) { counts[k] = r[F.observed_count]; hasCounts = true; }
    });
    var cur = data.currency;
    var series = [
      { label: "month", value: function (u, v) { return v === null || v === undefined ? "–" : months[v]; } },
      { label: "normal band, low", stroke: "rgba(0,0,0,0)", width: 0, points: { show: false }, value: function (u, v) { return money(v); } },
      { label: "normal band, high", stroke: "#868e96", width: 0.5, points: { show: false }, value: function (u, v) { return money(v); } },
      { label: "expected", stroke: "#495057", width: 1.5, dash: [6, 4], points: { show: false }, value: function (u, v) { return money(v); } },
      { label: "observed (" + cur + ")", stroke: "#1864ab", width: 2, points: { show: true, size: 5 }, value: function (u, v) { return money(v); } },
      { label: "case months", stroke: "#c92a2a", fill: "#c92a2a", paths: function () { return null; },
        points: { show: true, size: 9, stroke: "#c92a2a", fill: "#c92a2a" }, value: function (u, v) { return money(v); } },
    ];
    var rows = [xs, lane.low, lane.high, lane.expected, lane.value, marks];
    var axes = [
      { values: function (u, splits) { return splits.map(function (s) { return Number.isInteger(s) && s >= 0 && s < n ? months[s] : ""; }); },
        space: 60, incrs: [1, 2, 3, 6, 12, 24] },
      { values: function (u, splits) { return splits.map(money); }, size: 60, label: "monthly value (" + cur + ")" },
    ];
    // A lumpy lane's band can dwarf its values: then the chart is scaled to the values and says so.
    function peak(xs) { return xs.reduce(function (m, v) { return v !== null && v > m ? v : m; }, 0); }
    var top = Math.max(peak(lane.value), peak(lane.expected)), band = peak(lane.high);
    var clipped = band > 3 * top && top > 0;
    top = clipped ? top * 1.15 : Math.max(top, band) * 1.05;
    var scales = { x: { time: false }, y: { range: function () { return [0, top > 0 ? top : 1]; } } };
    if (hasCounts) {
      series.push({ label: "declarations", scale: "n", stroke: "#5f3dc4", fill: "#5f3dc4", paths: function () { return null; },
        points: { show: true, size: 7, stroke: "#5f3dc4", fill: "#fff" } });
      rows.push(counts);
      axes.push({ scale: "n", side: 1, grid: { show: false }, label: "declarations", size: 50 });
      scales.n = { range: function (u, lo, hi) { return [0, hi > 0 ? hi * 1.1 : 1]; } };
    }
    var width = Math.max(320, Math.min(1040, host.clientWidth || 1000));
    var box = el("div", { "class": "chart", role: "img",
      "aria-label": "Chart of " + lane.title + ": monthly value, expected value and normal band, " +
        "with the case's " + c.records.length + " months marked" });
    host.appendChild(box);
    new uPlot({ width: width, height: 280, scales: scales, series: series, axes: axes,
      bands: [{ series: [2, 1], fill: "rgba(134,142,150,0.28)" }], cursor: { drag: { x: false, y: false } } },
      rows, box);
    if (clipped) {
      host.appendChild(el("p", { "class": "note" }, "The normal band reaches " + money(band) + " " + cur +
        " at its widest, above the top of this chart, which is scaled to the exported and expected values."));
    }
  }

  function parties(label, list) {
    if (!list.length) return null;
    return el("p", null, el("b", null, label + ": "), list.map(function (p) {
      return p[0] + " (" + money(p[1]) + (p[2] ? ", first seen " + p[2] : "") + ")";
    }).join("; "));
  }

  function details(c, cell) {
    var lane = data.lanes[c.series_id];
    cell.appendChild(el("h3", null, (lane ? lane.title : c.series_id) + " · case " + c.case_id));
    chart(c, cell);
    if (c.banned_since) {
      cell.appendChild(el("p", null, "Banned for export to the watch's destinations since " +
        c.banned_since + (c.banned_by ? " (" + c.banned_by + ")" : "") + "."));
    }
    var head = el("tr", null);
    ["Month", "Event", "Severity", "Confidence", "Materiality", "Detectors", "Observed", "Expected",
      "Ratio", "Case ratio", "p-value"].forEach(function (t) { head.appendChild(el("th", { scope: "col" }, t)); });
    var records = el("table", { "class": "records" },
      el("caption", null, c.records.length + " alert records of case " + c.case_id + ", oldest first"),
      el("thead", null, head));
    var body = el("tbody", null);
    c.records.forEach(function (r) {
      var count = r[F.observed_count] !== null ? " (" + r[F.observed_count] + " decl.)" : "";
      body.appendChild(el("tr", { "data-alert-id": r[F.alert_id] },
        el("th", { scope: "row" }, r[F.period] + (r[F.early] ? " (early)" : "")), el("td", null, r[F.case_event]),
        el("td", null, el("span", { "class": "sev sev-" + String(r[F.severity]).replace(" ", "-") }, r[F.severity])),
        el("td", null, r[F.confidence]), el("td", null, r[F.materiality]),
        el("td", null, (r[F.detectors] || []).join(", ") || "none"),
        el("td", { "class": "num" }, money(r[F.observed_value]) + count),
        el("td", { "class": "num" }, money(r[F.baseline_value])),
        el("td", { "class": "num" }, r[F.ratio] === null ? "–" : "×" + fixed(r[F.ratio], 1)),
        el("td", { "class": "num" }, r[F.case_ratio] === null ? "–" : "×" + fixed(r[F.case_ratio], 1)),
        el("td", { "class": "num" }, r[F.p_value] === null ? "–" : r[F.p_value] < 1e-3 ? r[F.p_value].toExponential(1) : r[F.p_value].toPrecision(2))));
      var why = el("td", { colspan: "11" }, el("p", null, explanation(r)),
        parties("Top exporters", r[F.top_exporters]), parties("Top consignees", r[F.top_consignees]),
        parties("New consignees", r[F.new_consignees]),
        r[F.corroborating_reporters].length ? el("p", null, "Also seen by reporters: " + r[F.corroborating_reporters].join(", ")) : null,
        el("p", null, el("small", null, r[F.alert_id])));
      body.appendChild(el("tr", { "class": "why" }, why));
    });
    records.appendChild(body);
    cell.appendChild(records);
  }

  table.addEventListener("click", function (e) {
    var button = e.target.closest("button.open");
    if (!button) return;
    var row = document.getElementById(button.getAttribute("aria-controls"));
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    row.hidden = !open;
    if (open && !row.firstChild.hasChildNodes()) {
      details(cases[+row.id.split("-")[1]], row.firstChild);
    }
  });

  loadView();
  applyFilters();
  window.addEventListener("hashchange", function () { loadView(); applyFilters(); });
})();
