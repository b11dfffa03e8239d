// The ion observer's pages come alive here: the live marker, updates on the
// container's events (server-sent, /events), and the kill / restart buttons.
// No inline script anywhere (the CSP forbids it); nothing from elsewhere.
"use strict";

(function () {
  var page = document.body.getAttribute("data-page");
  var live = document.getElementById("live");

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      if (timer !== null) { return; }  // one refresh at most every ms
      timer = setTimeout(function () { timer = null; fn(); }, ms);
    };
  }

  function setLive(text) {
    if (live) { live.textContent = text; live.className = text; }
  }

  // The chart: the SVG again, with the page's filters, swapped into #chart.
  function refreshChart() {
    fetch("/msc.svg" + window.location.search, { cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "image/svg+xml");
        var svg = doc.documentElement;
        var chart = document.getElementById("chart");
        if (chart && svg && svg.nodeName === "svg") {
          var atEnd = chart.scrollTop + chart.clientHeight >= chart.scrollHeight - 30;
          chart.replaceChildren(document.importNode(svg, true));
          if (atEnd) { chart.scrollTop = chart.scrollHeight; }  // follow, unless scrolled back
        }
      })
      .catch(function () { /* the next event tries again */ });
  }

  // Any other page: the page again, and its main part swapped in.
  function refreshMain() {
    fetch(window.location.href, { cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.querySelector("main");
        var main = document.querySelector("main");
        if (fresh && main) { main.replaceWith(document.importNode(fresh, true)); }
      })
      .catch(function () { /* the next event tries again */ });
  }

  // The chart opens on its newest arcs.
  var firstChart = document.getElementById("chart");
  if (firstChart) { firstChart.scrollTop = firstChart.scrollHeight; }

  if (window.EventSource) {
    var source = new EventSource("/events");
    source.onopen = function () { setLive("live"); };
    source.onerror = function () { setLive("offline"); };
    // A page kept in the back-forward cache would hold its stream open, and a
    // browser allows about six connections per origin.
    window.addEventListener("pagehide", function () { source.close(); });
    window.addEventListener("pageshow", function (e) {
      if (e.persisted) { window.location.reload(); }  // back from that cache: a new stream
    });
    if (page === "msc") {
      source.addEventListener("msg", debounce(refreshChart, 150));
    } else if (page !== "error") {
      var refresh = debounce(refreshMain, 300);
      ["proc", "sup", "cc"].forEach(function (type) { source.addEventListener(type, refresh); });
      if (page === "queues") { source.addEventListener("q", refresh); }
      if (page === "conversations") { source.addEventListener("msg", refresh); }
    }
  } else {
    setLive("offline");
  }

  // Actions: the token web() shows in the shell, asked once per tab (sessionStorage).
  function token() {
    var t = window.sessionStorage.getItem("ion-token");
    if (!t) {
      t = window.prompt("Paste the web view's token (the shell's web() shows it):");
      if (t) { window.sessionStorage.setItem("ion-token", t.trim()); }
    }
    return t ? t.trim() : null;
  }

  function act(path, body) {
    var t = token();
    if (!t) { return; }
    fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Ion-Token": t },
      body: JSON.stringify(body)
    })
      .then(function (r) {
        return r.json().then(function (data) {
          if (r.status === 403) { window.sessionStorage.removeItem("ion-token"); }
          if (!r.ok) { window.alert(data.error || ("failed: " + r.status)); }
        });
      })
      .catch(function (e) { window.alert("failed: " + e); });
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button") : null;
    if (!b) { return; }
    var cid = encodeURIComponent(b.getAttribute("data-cid") || "");
    if (b.classList.contains("kill")) {
      act("/api/c/" + cid + "/kill", { pid: b.getAttribute("data-pid") });
    } else if (b.classList.contains("restart")) {
      act("/api/c/" + cid + "/restart",
          { supervisor: b.getAttribute("data-supervisor"), child: b.getAttribute("data-child") });
    }
  });
}());
