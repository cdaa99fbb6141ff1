// tito dashboard: refreshes a queue page's totals and heatmap every few seconds and draws the
// throughput (events handled per second) from the samples taken while the page is open.
"use strict";
(function () {
  var stats = document.getElementById("stats");
  if (!stats) return;
  var url = stats.getAttribute("data-url");
  var samples = []; // [time ms, handled]
  var rates = [];
  var every = 3000;

  // The same levels as the server's heat_level.
  function level(pending) {
    if (pending <= 0) return 0;
    if (pending === 1) return 1;
    if (pending <= 4) return 2;
    if (pending <= 16) return 3;
    if (pending <= 64) return 4;
    if (pending <= 256) return 5;
    return 6;
  }

  function set(name, text) {
    var el = stats.querySelector('[data-stat="' + name + '"]');
    if (el) el.textContent = text;
  }

  function draw() {
    var line = document.querySelector("#throughput polyline");
    if (!line || rates.length === 0) return;
    var max = Math.max.apply(null, rates.concat([1])) * 1.25; // headroom above the peak
    // One sample draws a flat line; more spread over the width.
    var points = rates.length === 1 ? [rates[0], rates[0]] : rates;
    var step = 600 / (points.length - 1);
    line.setAttribute("points", points.map(function (r, i) {
      return (i * step).toFixed(1) + "," + (78 - (r / max) * 74).toFixed(1);
    }).join(" "));
    document.getElementById("rate").textContent = rates[rates.length - 1].toFixed(1) + " /s";
  }

  function heatmap(partitions) {
    var cells = document.querySelectorAll("#heatmap .cell");
    var busy = {};
    partitions.forEach(function (p) { busy[p[0]] = p; });
    for (var i = 0; i < cells.length; i++) {
      var p = busy[i] || [i, 0, 0];
      var cls = "cell h" + level(p[1]) + (p[2] > 0 ? " retry" : "");
      if (cells[i].className !== cls) cells[i].className = cls;
      cells[i].setAttribute("data-pending", p[1]);
      cells[i].title = "partition " + i + ": " + p[1] + " pending, " + p[2] + " retrying";
    }
  }

  function tick() {
    fetch(url, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) return;
        set("pending", s.pending.toLocaleString("en-US"));
        set("retrying", s.retrying.toLocaleString("en-US"));
        set("oldest", s.oldest);
        set("handled", s.handled.toLocaleString("en-US"));
        heatmap(s.partitions);
        var last = samples[samples.length - 1];
        samples.push([s.at_ms, s.handled]);
        if (last && s.at_ms > last[0]) {
          rates.push(Math.max(0, (s.handled - last[1]) * 1000 / (s.at_ms - last[0])));
          if (rates.length > 120) rates.shift();
          draw();
        }
        if (samples.length > 2) samples.shift();
      })
      .catch(function () {})
      .then(function () { setTimeout(tick, every); });
  }
  tick();
})();
