// The case list without full reloads: a change of the filters fetches /rows with the same query
// string the form would submit and replaces the results; the address bar keeps the view's URL.
// Without this script the form and the links work as they are.
(function () {
  "use strict";
  var form = document.getElementById("filters");
  if (!form || !window.fetch) { return; }
  var seq = 0;
  var timer = null;

  function queryOf(f) {
    var params = new URLSearchParams();
    new FormData(f).forEach(function (value, key) { if (value !== "") { params.append(key, value); } });
    return params.toString();
  }

  // A change of the form shows the first page of the new view; a page link, its page.
  function update(pageQuery) {
    var started = performance.now();
    var mine = ++seq;
    var qs = pageQuery === undefined ? queryOf(form) : pageQuery;
    return fetch("/rows?" + qs, { headers: { "Accept": "text/html" } }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.text();
    }).then(function (html) {
      if (mine !== seq) { return; }  // a newer change is on its way
      var results = document.getElementById("results");
      results.outerHTML = html;
      history.replaceState(null, "", "/?" + qs);
      document.dispatchEvent(new CustomEvent("desk:updated", { detail: { ms: performance.now() - started } }));
    }).catch(function () {
      form.submit();  // fall back to the plain form
    });
  }

  form.addEventListener("change", function () { clearTimeout(timer); update(); });
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a.page");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
    event.preventDefault();
    update(new URL(link.href).search.slice(1)).then(function () {
      var results = document.getElementById("results");
      if (results) { results.scrollIntoView(); }
    });
  });
  form.addEventListener("input", function (event) {
    if (event.target.type === "search" || event.target.name === "hs") {
      clearTimeout(timer);
      timer = setTimeout(update, 250);
    }
  });
  form.addEventListener("submit", function (event) { event.preventDefault(); clearTimeout(timer); update(); });

  // Following the source (`transitwatch desk --refresh`): the desk reads its alerts again every
  // so many seconds; when its rows changed (new alert records, someone's feedback) the page says
  // so and shows the new view of the same filters on request, never under the analyst's eyes.
  var refresh = parseFloat(form.getAttribute("data-refresh") || "0");
  var changed = document.getElementById("changed");
  if (refresh > 0 && changed) {
    var poll = function () {
      var results = document.getElementById("results");
      fetch("/healthz", { headers: { "Accept": "application/json" } }).then(function (response) {
        return response.ok ? response.json() : null;
      }).then(function (health) {
        if (!health || !results) { return; }
        if (String(health.version) !== results.getAttribute("data-version")) {
          changed.querySelector("span").textContent = "The cases changed since this view was shown: "
            + health.records + " alert records in " + health.cases + " cases now.";
          changed.hidden = false;
        }
      }).catch(function () { /* the desk is restarting: the next poll will say */ });
    };
    setInterval(poll, Math.max(refresh, 2) * 1000);
    document.getElementById("show-changed").addEventListener("click", function () {
      update().then(function () { changed.hidden = true; });
    });
  }

  // Sorting from the column headers: put the link's sort into the form, then update.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a.sort");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
    event.preventDefault();
    var params = new URL(link.href).searchParams;
    form.elements.sort.value = params.get("sort") || "severity";
    form.elements.dir.value = params.get("dir") || "desc";
    update();
  });
})();
