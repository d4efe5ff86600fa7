/* jepsenlike report: the timeline. No dependencies, no network.
 *
 * Data (the JSON in #report-data): ops are arrays, in this field order:
 *   0 invocation index, 1 process, 2 f, 3 key, 4 invoked value, 5 completed value,
 *   6 outcome (ok|fail|info|pending), 7 node, 8 error, 9 invoke time (ns),
 *   10 completion time (ns, -1: never), 11 completion index (-1: never), 12 key ids
 * faults: {kind, start, end, nodes, label, open, error, text}; instants: {index, t, f, value, error}.
 * The view is a time window [v0, v1] in ns; every redraw builds the SVG for the
 * ops that overlap it, so zooming in on a long history stays cheap.
 */
(function () {
  "use strict";
  var errors = [];
  window.__reportErrors = errors;
  window.addEventListener("error", function (e) { errors.push(String(e.message)); });

  var D = JSON.parse(document.getElementById("report-data").textContent);
  var OPS = D.ops;
  var T_END = Math.max(D.t_end, 1);
  var byIndex = {};
  var tMin = Infinity, tMax = 0;
  OPS.forEach(function (o, i) {
    byIndex[o[0]] = i;
    if (o[11] >= 0) { byIndex[o[11]] = i; }
    tMin = Math.min(tMin, o[9]);
    tMax = Math.max(tMax, o[10] >= 0 ? o[10] : T_END);
  });
  if (!isFinite(tMin)) { tMin = 0; tMax = T_END; }
  if (D.window.note === null) { tMin = 0; tMax = T_END; }
  var FULL = [tMin, tMax > tMin ? tMax : tMin + 1];
  var blocked = new Set(D.blocked), related = new Set(D.related);
  var anomalyOps = new Set(D.blocked.concat(D.related));

  var procs = D.processes.map(String);
  var packed = procs.length > 24;
  var shownProcs = new Set(procs);
  var keyFilter = "*";
  var anomalyOnly = false;
  var view = FULL.slice();
  var flashIndex = null;

  var svg = document.getElementById("timeline-svg");
  var box = document.getElementById("timeline-box");
  var tip = document.getElementById("tooltip");
  var LEFT = 70, TOP = 22, LANE = 16, GAP = 3, RIGHT = 10;
  var FAULT_COLORS = { kill: "#d50000", pause: "#1565c0", partition: "#6a1b9a", "start-partition": "#6a1b9a" };

  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  function show(v) { return v === null || v === undefined ? "" : (typeof v === "string" ? v : JSON.stringify(v)); }
  function width() { return Math.max(400, box.clientWidth); }
  function xOf(t, w) { return LEFT + (t - view[0]) / (view[1] - view[0]) * (w - LEFT - RIGHT); }
  function tOf(x, w) { return view[0] + (x - LEFT) / (w - LEFT - RIGHT) * (view[1] - view[0]); }
  function secs(ns) { return (ns / 1e9).toFixed(3) + " s"; }

  function niceStep(span) {
    var raw = span / 8, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }

  function visible(o) {
    if (!shownProcs.has(String(o[1]))) { return false; }
    if (keyFilter !== "*" && o[12].indexOf(keyFilter) < 0) { return false; }
    if (anomalyOnly && !anomalyOps.has(o[0])) { return false; }
    return true;
  }

  function draw() {
    var w = width();
    // lanes: one per process, or (packed) processes that never overlap in time share one,
    // as a retired process's successor takes its worker's place
    var lanes, laneY = {}, laneText = [];
    if (packed) {
      lanes = [];
      for (var li = 0; li < D.n_lanes; li++) { lanes.push(li); }
      procs.forEach(function (p) { laneY[p] = TOP + LANE + GAP + D.lane_of[p] * (LANE + GAP); });
    } else {
      lanes = procs.filter(function (p) { return shownProcs.has(p); });
      lanes.forEach(function (p, i) { laneY[p] = TOP + LANE + GAP + i * (LANE + GAP); });
      laneText = lanes.map(function (p) { return "p" + p; });
    }
    var h = TOP + (lanes.length + 1) * (LANE + GAP) + 8;
    var out = [];
    // axis
    var step = niceStep(view[1] - view[0]);
    out.push('<g class="axis">');
    for (var t = Math.ceil(view[0] / step) * step; t <= view[1]; t += step) {
      var x = xOf(t, w);
      out.push('<line x1="' + x + '" y1="' + (TOP - 4) + '" x2="' + x + '" y2="' + h + '"/>');
      out.push('<text x="' + x + '" y="' + (TOP - 8) + '" text-anchor="middle">' + (t / 1e9).toFixed(step < 1e7 ? 3 : step < 1e8 ? 2 : 1) + ' s</text>');
    }
    out.push("</g>");
    // lanes
    out.push('<text class="lane-label" x="4" y="' + (TOP + LANE - 4) + '">nemesis</text>');
    lanes.forEach(function (p, i) {
      var y = TOP + LANE + GAP + i * (LANE + GAP);
      if (i % 2 === 0) { out.push('<rect class="lane-bg" x="' + LEFT + '" y="' + (y - 1) + '" width="' + (w - LEFT - RIGHT) + '" height="' + (LANE + 2) + '"/>'); }
      if (!packed) { out.push('<text class="lane-label" x="4" y="' + (y + LANE - 4) + '">' + esc(laneText[i]) + "</text>"); }
    });
    var inView = lanes.map(function () { return []; });
    // faults
    D.faults.forEach(function (f, i) {
      if (f.end < view[0] || f.start > view[1]) { return; }
      var x0 = Math.max(LEFT, xOf(f.start, w)), x1 = Math.min(w - RIGHT, xOf(f.end, w));
      var color = FAULT_COLORS[f.kind] || "#555";
      out.push('<rect class="fault" data-fault="' + i + '" x="' + x0 + '" y="' + TOP + '" width="' + Math.max(2, x1 - x0) + '" height="' + (h - TOP) + '" fill="' + color + '"/>');
      out.push('<text class="fault-label" data-fault="' + i + '" x="' + (x0 + 2) + '" y="' + (TOP + 11) + '">' + esc(f.text || f.label) + (f.open ? " (not healed)" : "") + "</text>");
    });
    D.instants.forEach(function (e, i) {
      if (e.t < view[0] || e.t > view[1]) { return; }
      var x = xOf(e.t, w);
      out.push('<line class="instant" data-instant="' + i + '" x1="' + x + '" y1="' + TOP + '" x2="' + x + '" y2="' + h + '"/>');
      out.push('<text class="fault-label" x="' + (x + 2) + '" y="' + (TOP + 11) + '">' + esc(e.f) + "</text>");
    });
    // ops
    var n = 0, markers = [];
    for (var i = 0; i < OPS.length; i++) {
      var o = OPS[i];
      var end = o[10] >= 0 ? o[10] : T_END;
      if (end < view[0] || o[9] > view[1] || !visible(o)) { continue; }
      var xa = Math.max(LEFT - 2, xOf(o[9], w)), xb = Math.min(w, xOf(end, w));
      var cls = "op op-" + o[6];
      if (blocked.has(o[0])) { cls += " anomaly"; } else if (related.has(o[0])) { cls += " related"; }
      if (flashIndex === o[0]) { cls += " flash"; }
      var y = laneY[String(o[1])];
      if (packed) {
        var seen = inView[D.lane_of[String(o[1])]];
        if (seen.indexOf(o[1]) < 0) { seen.push(o[1]); }
      }
      out.push('<rect class="' + cls + '" data-i="' + i + '" data-index="' + o[0] + '" x="' + xa.toFixed(1) + '" y="' + y + '" width="' + Math.max(2, xb - xa).toFixed(1) + '" height="' + LANE + '"/>');
      if (blocked.has(o[0])) {
        // a marker that stays visible when the bar is a hairline at low zoom
        var xm = xa + Math.max(2, xb - xa) / 2;
        markers.push('<path class="anomaly-marker" data-i="' + i + '" d="M ' + (xm - 6).toFixed(1) + ' ' + (y - 7) + ' L ' + (xm + 6).toFixed(1) + ' ' + (y - 7) + ' L ' + xm.toFixed(1) + ' ' + (y + 1) + ' Z"/>');
      }
      n++;
    }
    out.push(markers.join(""));
    if (packed) {
      // a packed lane is labelled with the processes drawn in it in this view
      inView.forEach(function (ps, i) {
        var text = ps.length === 0 ? "" : "p" + ps[0] + (ps.length > 1 ? " +" + (ps.length - 1) : "");
        out.push('<text class="lane-label" x="4" y="' + (TOP + LANE + GAP + i * (LANE + GAP) + LANE - 4) + '">' + esc(text) + "</text>");
      });
    }
    svg.setAttribute("height", h);
    svg.setAttribute("width", w);
    svg.style.width = w + "px";
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.innerHTML = out.join("");
    document.getElementById("view-range").textContent =
      secs(view[0]) + " to " + secs(view[1]) + ", " + n + " op(s) drawn of " + OPS.length;
  }

  function zoom(factor, centreT) {
    var c = centreT === undefined ? (view[0] + view[1]) / 2 : centreT;
    var span = Math.max(1000, (view[1] - view[0]) * factor);
    var left = (c - view[0]) / (view[1] - view[0]);
    view = [c - left * span, c + (1 - left) * span];
    draw();
  }

  function focusOps(indices) {
    var lo = Infinity, hi = -Infinity;
    indices.forEach(function (ix) {
      var i = byIndex[ix];
      if (i === undefined) { return; }
      var o = OPS[i];
      lo = Math.min(lo, o[9]);
      hi = Math.max(hi, o[10] >= 0 ? o[10] : T_END);
    });
    if (!isFinite(lo)) { return false; }
    var pad = Math.max((hi - lo) * 0.5, (FULL[1] - FULL[0]) * 0.01, 2e6);
    view = [lo - pad, hi + pad];
    return true;
  }

  function focusOp(index) {
    var i = byIndex[index];
    if (i === undefined) {
      document.getElementById("view-range").textContent = "op " + index + " is outside the window this page shows";
      return;
    }
    var o = OPS[i];
    if (!shownProcs.has(String(o[1]))) { shownProcs.add(String(o[1])); syncProcessBoxes(); }
    focusOps([o[0]]);
    flashIndex = o[0];
    draw();
    box.scrollIntoView({ behavior: "auto", block: "start" });
  }

  function tooltipHtml(o) {
    var lat = o[10] >= 0 ? ((o[10] - o[9]) / 1e6).toFixed(3) + " ms" : "never completed";
    var rows = [
      ["index", o[0] + (o[11] >= 0 ? " (completion " + o[11] + ")" : "")],
      ["process", o[1]], ["f", o[2]], ["key", show(o[3])], ["value", show(o[4])],
      ["result", show(o[5])], ["outcome", o[6]], ["node", show(o[7])], ["error", show(o[8])],
      ["invoked", secs(o[9])], ["latency", lat]
    ];
    var extra = blocked.has(o[0]) ? "<p><strong>anomaly op</strong></p>" : related.has(o[0]) ? "<p><strong>in the explanation</strong></p>" : "";
    return extra + "<table>" + rows.filter(function (r) { return r[1] !== ""; }).map(function (r) {
      return "<tr><th>" + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>";
    }).join("") + "</table>";
  }

  svg.addEventListener("mousemove", function (e) {
    var el = e.target, html = null;
    if (el.dataset && el.dataset.i !== undefined) {
      html = tooltipHtml(OPS[Number(el.dataset.i)]);
    } else if (el.dataset && el.dataset.fault !== undefined) {
      var f = D.faults[Number(el.dataset.fault)];
      html = "<strong>" + esc(f.text || f.label) + "</strong>" + (f.text && f.text !== f.label ? "<br>" + esc(f.label) : "") + "<br>" + secs(f.start) + " to " + secs(f.end) + (f.open ? " (never healed)" : "") + (f.error ? "<br>error: " + esc(f.error) : "");
    } else if (el.dataset && el.dataset.instant !== undefined) {
      var ev = D.instants[Number(el.dataset.instant)];
      html = "<strong>" + esc(ev.f) + "</strong> at " + secs(ev.t) + "<br>" + esc(show(ev.value)) + (ev.error ? "<br>error: " + esc(ev.error) : "");
    }
    if (html === null) { tip.style.display = "none"; return; }
    tip.innerHTML = html;
    tip.style.display = "block";
    tip.style.left = Math.min(e.clientX + 14, window.innerWidth - 540) + "px";
    tip.style.top = (e.clientY + 14) + "px";
  });
  svg.addEventListener("mouseleave", function () { tip.style.display = "none"; });

  box.addEventListener("wheel", function (e) {
    e.preventDefault();
    var r = svg.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 0.8 : 1.25, tOf((e.clientX - r.left) * width() / r.width, width()));
  }, { passive: false });

  var drag = null;
  box.addEventListener("mousedown", function (e) { drag = { x: e.clientX, v: view.slice() }; box.style.cursor = "grabbing"; });
  window.addEventListener("mouseup", function () { drag = null; box.style.cursor = ""; });
  window.addEventListener("mousemove", function (e) {
    if (!drag) { return; }
    var dt = (e.clientX - drag.x) / (width() - LEFT - RIGHT) * (drag.v[1] - drag.v[0]);
    view = [drag.v[0] - dt, drag.v[1] - dt];
    draw();
  });

  document.getElementById("zoom-in").addEventListener("click", function () { zoom(0.5); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoom(2); });
  document.getElementById("zoom-reset").addEventListener("click", function () { view = FULL.slice(); flashIndex = null; draw(); });
  var anomalyButton = document.getElementById("zoom-anomaly");
  if (anomalyOps.size === 0) { anomalyButton.disabled = true; }
  anomalyButton.addEventListener("click", function () {
    if (focusOps(D.blocked.length ? D.blocked : D.related)) { draw(); }
  });

  document.querySelectorAll("[data-op]").forEach(function (a) {
    a.addEventListener("click", function (e) { e.preventDefault(); focusOp(Number(a.dataset.op)); });
  });
  document.querySelectorAll("button.focus-witness").forEach(function (b) {
    b.addEventListener("click", function () {
      var wi = D.witnesses[Number(b.dataset.witness)];
      if (!wi) { return; }
      if (wi.key !== null && D.keys.indexOf(wi.key) >= 0) { keyFilter = wi.key; keySel.value = wi.key; }
      if (focusOps(wi.focus)) { flashIndex = wi.blocked[0]; draw(); box.scrollIntoView(); }
    });
  });

  var keySel = document.getElementById("key-filter");
  D.keys.forEach(function (k) {
    var opt = document.createElement("option");
    opt.value = k; opt.textContent = k;
    keySel.appendChild(opt);
  });
  keySel.addEventListener("change", function () { keyFilter = keySel.value; draw(); });
  document.getElementById("anomaly-only").addEventListener("change", function (e) { anomalyOnly = e.target.checked; draw(); });
  var packBox = document.getElementById("pack-lanes");
  packBox.checked = packed;
  packBox.addEventListener("change", function (e) { packed = e.target.checked; draw(); });

  var plist = document.getElementById("process-list");
  procs.forEach(function (p) {
    var l = document.createElement("label");
    l.innerHTML = '<input type="checkbox" checked data-proc="' + esc(p) + '"> p' + esc(p);
    plist.appendChild(l);
  });
  function syncProcessBoxes() {
    plist.querySelectorAll("input[data-proc]").forEach(function (c) { c.checked = shownProcs.has(c.dataset.proc); });
  }
  plist.addEventListener("change", function (e) {
    var p = e.target.dataset.proc;
    if (e.target.checked) { shownProcs.add(p); } else { shownProcs.delete(p); }
    draw();
  });
  document.getElementById("proc-all").addEventListener("click", function () { shownProcs = new Set(procs); syncProcessBoxes(); draw(); });
  document.getElementById("proc-none").addEventListener("click", function () { shownProcs = new Set(); syncProcessBoxes(); draw(); });

  window.addEventListener("resize", draw);
  window.__report = { draw: draw, focusOp: focusOp, view: function () { return view.slice(); } };
  draw();
  document.body.setAttribute("data-ready", "1");
})();
