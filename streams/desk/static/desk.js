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
