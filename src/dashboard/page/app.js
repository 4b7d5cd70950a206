// resil dashboard: draws each frame the server pushes over /events (Server-Sent Events).
// Build-free vanilla JavaScript: no framework, no requests to any other host. Text goes in
// through textContent only. `window.resilSeen` records when each marker was first drawn
// (ms since the epoch), and each pod tile's state (`pod:NAME:STATE`), so a test can
// measure event-to-screen latency.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const WINDOW_MS = 120000;
const SHAPE = { blue: "\u25B2", green: "\u25A0" };
window.resilSeen = {};
window.resilFrames = 0;

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function ms(v) {
  if (v === null || v === undefined) return "\u2014";
  return v >= 10000 ? (v / 1000).toFixed(1) + " s" : Math.round(v) + " ms";
}

function drawSwitch(frame) {
  const sw = document.getElementById("switch");
  sw.dataset.selected = frame.selected || "none";
  for (const pos of sw.querySelectorAll(".pos")) {
    pos.classList.toggle("selected", pos.dataset.color === frame.selected);
  }
}

function drawTiles(frame) {
  const box = document.getElementById("tiles");
  box.replaceChildren(...frame.tiles.map((t) => {
    const ok = t.total > 0 && t.ready >= t.total;
    const state = t.ready === 0 ? "down" : ok ? "ok" : "degraded";
    const tile = el("div", {
      class: "tile " + (t.ready === 0 ? "down" : "ok"),
      "data-color": t.color, "data-state": state,
    });
    tile.append(el("span", {}, `${SHAPE[t.color] || ""} ${t.color} ${t.ready}/${t.total}`));
    tile.append(el("span", { class: "state" },
      state === "down" ? "no pod ready" : state === "ok" ? "all ready" : "some not ready"));
    return tile;
  }));
}

// Pod tiles grouped by zone, then node: green with a tick when Ready, red, dashed and
// crossed when not (or just deleted). The state is also written out.
function drawNodes(frame) {
  const box = document.getElementById("nodes");
  const zones = new Map();
  for (const n of frame.nodes || []) {
    const zone = n.node === null ? "not scheduled" : n.zone || "no zone";
    if (!zones.has(zone)) zones.set(zone, []);
    zones.get(zone).push(n);
  }
  box.replaceChildren(...[...zones].map(([zone, nodes]) => {
    const group = el("div", { class: "zone", "data-zone": zone });
    group.append(el("h3", {}, zone === "not scheduled" || zone === "no zone" ? zone : `zone ${zone}`));
    for (const n of nodes) {
      const node = el("div", {
        class: "node" + (n.ready ? "" : " down"), "data-node": n.node || "", "data-ready": String(n.ready),
      });
      node.append(el("div", { class: "node-name" }, (n.node || "pending") + (n.ready ? "" : " \u2716 node not ready")));
      for (const p of n.pods) {
        const key = `pod:${p.name}:${p.state}`;
        if (!(key in window.resilSeen)) window.resilSeen[key] = Date.now();
        const pod = el("div", {
          class: "pod " + (p.state === "ready" ? "ok" : "down"),
          "data-pod": p.name, "data-color": p.color || "", "data-state": p.state, title: p.name,
        });
        // The pod's own suffix tells its tiles apart (web-blue-7d9f-x2k4p → x2k4p).
        const suffix = p.name.split("-").pop();
        pod.append(el("span", { class: "pod-color" }, `${SHAPE[p.color] || "\u25CF"} ${p.color || "?"} ${suffix}`));
        pod.append(el("span", { class: "state" }, p.state));
        node.append(pod);
      }
      group.append(node);
    }
    return group;
  }));
}

function known(list, at, now) {
  return (list || []).filter((x) => Date.parse(at(x)) <= now);
}

function drawFigures(frame) {
  const rows = [];
  const r = frame.report;
  const now = frame.now_ms;
  const failovers = r ? known(r.failovers, (f) => f.completed_at, now) : [];
  const live = frame.markers.filter((m) => m.kind === "failover" || m.kind === "failback");
  if (failovers.length) {
    const f = failovers[failovers.length - 1];
    rows.push(["failover time", ms(f.control_plane_ms)]);
    rows.push(["client downtime", f.client_downtime_ms === null ? "none seen" : ms(f.client_downtime_ms)]);
  } else if (live.length) {
    rows.push(["failover time", live[live.length - 1].label.replace(/.* in /, "")]);
  }
  if (r) {
    const downs = known(r.downtime, (d) => d.started_at, now);
    const total = downs.reduce((s, d) => s + (d.duration_ms || 0), 0);
    rows.push(["downtime episodes", `${downs.length} (${ms(total)})`]);
    for (const s of known(r.scaling, (s) => s.desired_at, now)) {
      rows.push([`scale ${s.color} ${s.from_replicas}\u2192${s.to_replicas}`, ms(s.latency_ms)]);
    }
    for (const f of known(r.recovery, (f) => f.injected_at, now)) {
      const rto = f.rto_ms !== null ? ms(f.rto_ms) : f.recovered ? "nothing failed" : "not recovered";
      // The injection's time (UTC) tells two faults of one kind apart.
      const at = new Date(f.injected_at).toISOString().slice(11, 19);
      rows.push([`recovery ${f.action} ${at}`, `${rto}, ${f.requests_lost.toLocaleString()} lost`]);
    }
    for (const ro of known(r.rollouts, (ro) => ro.started_at, now)) {
      const rb = ro.rollback;
      if (rb && Date.parse(rb.started_at) <= now) {
        rows.push([`rollback ${ro.deployment}`, rb.breach_to_done_ms === null
          ? `started ${ms(rb.breach_to_start_ms)} after the breach`
          : `${ms(rb.breach_to_done_ms)} breach \u2192 done`]);
      } else if (ro.ended_at && Date.parse(ro.ended_at) <= now) {
        rows.push([`rollout ${ro.deployment}`, `${ro.outcome} in ${ms(ro.duration_ms)}`]);
      }
    }
    if (r.load) rows.push(["requests so far", r.load.requests.toLocaleString()]);
    const cost = r.cost && r.cost.total && r.cost.total.cost_per_1m;
    if (cost !== null && cost !== undefined) rows.push(["cost per 1M", "$" + cost.toFixed(4)]);
  }
  const dl = document.getElementById("figures");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    dl.append(el("dt", {}, k), el("dd", { "data-figure": k }, v));
  }
}

function drawSlos(frame) {
  const list = document.getElementById("slos");
  const verdict = document.getElementById("verdict");
  const slos = (frame.report && frame.report.slos) || [];
  list.replaceChildren(...slos.map((v) =>
    el("li", { class: v.passed ? "pass" : "fail" }, v.message)));
  if (frame.complete && frame.report) {
    verdict.textContent = frame.report.slos_passed ? "PASSED (final)" : "FAILED (final)";
    verdict.className = "verdict " + (frame.report.slos_passed ? "pass" : "fail");
  } else {
    verdict.textContent = slos.length ? "so far" : "";
    verdict.className = "verdict";
  }
}

function drawMarkers(frame) {
  const list = document.getElementById("markers");
  list.replaceChildren(...frame.markers.slice().reverse().map((m) => {
    const key = m.kind + "@" + m.at_ms;
    if (!(key in window.resilSeen)) window.resilSeen[key] = Date.now();
    const when = new Date(m.at_ms).toISOString().slice(11, 23);
    const item = el("li", { "data-kind": m.kind, "data-at": String(m.at_ms), title: m.reason },
      `${when} ${m.kind}: ${m.label}`);
    return item;
  }));
}

function chart(id, frame, lines) {
  const svg = document.getElementById(id);
  const w = 600, h = 140, pad = 16;
  const from = frame.now_ms - WINDOW_MS;
  const x = (t) => ((t - from) / WINDOW_MS) * w;
  let max = 1;
  // A value of null is no data (a colour that served nothing that second): left out.
  for (const line of lines) for (const p of frame.points) max = Math.max(max, line.value(p) ?? 0);
  const y = (v) => h - pad - (v / max) * (h - 2 * pad);
  const nodes = [el("svg:line", { class: "axis", x1: 0, x2: w, y1: h - pad, y2: h - pad })];
  nodes.push(el("svg:text", { class: "label", x: 4, y: 12 }, String(Math.round(max))));
  for (const line of lines) {
    const pts = frame.points.filter((p) => line.value(p) !== null)
      .map((p) => `${x(p.at_ms).toFixed(1)},${y(line.value(p)).toFixed(1)}`);
    if (pts.length) nodes.push(el("svg:polyline", { class: line.cls, points: pts.join(" ") }));
  }
  for (const m of frame.markers) {
    if (m.at_ms < from) continue;
    const line = el("svg:line", { class: "m-" + m.kind, x1: x(m.at_ms), x2: x(m.at_ms), y1: 0, y2: h });
    line.append(el("svg:title", {}, `${m.kind}: ${m.label} \u2014 ${m.reason}`));
    nodes.push(line);
  }
  svg.replaceChildren(...nodes);
}

function draw(frame) {
  document.getElementById("mode").textContent = frame.replay ? "replay" : "live";
  drawSwitch(frame);
  drawTiles(frame);
  drawNodes(frame);
  drawFigures(frame);
  drawSlos(frame);
  drawMarkers(frame);
  const per = (field, color) => (p) => (p[field][color] || 0);
  chart("chart-rps", frame, [
    { cls: "l-blue", value: per("requests", "blue") },
    { cls: "l-green", value: per("requests", "green") },
  ]);
  chart("chart-eps", frame, [
    { cls: "l-blue", value: per("errors", "blue") },
    { cls: "l-green", value: per("errors", "green") },
  ]);
  // A colour's latency. A timeline written without it per colour shows every response's
  // latency on the chart of each colour that served in that second.
  const lat = (color, field) => (p) => {
    const l = p.latency && p.latency[color];
    if (l) return l[field];
    const perColour = Object.keys(p.latency || {}).length > 0;
    return perColour || !(p.requests[color] > 0) ? null : p[field];
  };
  for (const color of ["blue", "green"]) {
    chart("chart-lat-" + color, frame, [
      { cls: "l-p50", value: lat(color, "p50_ms") },
      { cls: "l-p99", value: lat(color, "p99_ms") },
    ]);
  }
  window.resilFrame = frame;
}

function connect() {
  const conn = document.getElementById("conn");
  const source = new EventSource("/events");
  source.onopen = () => { conn.textContent = "connected"; conn.className = "conn"; };
  source.onerror = () => { conn.textContent = "reconnecting\u2026"; conn.className = "conn down"; };
  source.onmessage = (msg) => {
    const frame = JSON.parse(msg.data);
    window.resilFrames += 1;
    if (frame.tiles) draw(frame);
  };
}

document.addEventListener("DOMContentLoaded", connect);
