// Drives the resil dashboard in headless Chromium for tests/it/dashboard/browser.rs.
//
// usage: node dashboard.mjs live URL SCREENSHOT_DIR
//   Opens URL, waits until the page shows blue selected, pod tiles grouped by zone and
//   node and every blue pod tile ready, and prints "READY"; the test then deletes pods and
//   kills blue. Waits until the page shows green selected, the blue colour tile down, a
//   red tile for every deleted blue pod, a failover marker with its failover time, and
//   then every blue pod tile green again (their replacements Ready); takes a screenshot;
//   samples the page's JS heap for MEMORY_SECONDS (default 10); prints one JSON line.
// usage: node dashboard.mjs memory URL SCREENSHOT_DIR SECONDS
//   Opens URL (a replay) and only samples the JS heap for SECONDS.
// usage: node dashboard.mjs figures URL SCREENSHOT_DIR
//   Opens URL (a replay), waits for the final verdict and prints the figures, markers and
//   SLO lines the page shows.
//
// Times are ms since the epoch on the page's clock (the machine's, as the test's). The
// JSON holds every request the page made to a host other than its own, the page's
// first-seen times (window.resilSeen) and the heap samples.
import { chromium } from "playwright-core";

const [mode, url, shots, seconds] = process.argv.slice(2);
const executablePath = process.env.RESIL_CHROMIUM || "/usr/bin/chromium";
const limit = (ms) => ({ timeout: ms, polling: 10 });
const memorySeconds = Number(seconds || process.env.MEMORY_SECONDS || 10);

// The page's JS heap in use (CDP Performance.getMetrics), after a full garbage
// collection at the first and the last sample, once a second for `secs` seconds.
async function sampleHeap(page, secs) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");
  const heap = async () => {
    const { metrics } = await cdp.send("Performance.getMetrics");
    return metrics.find((m) => m.name === "JSHeapUsedSize").value;
  };
  const frames = () => page.evaluate(() => window.resilFrames || 0);
  await cdp.send("HeapProfiler.collectGarbage");
  const samples = [{ at: Date.now(), heap: await heap(), frames: await frames() }];
  for (let i = 1; i < secs; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    samples.push({ at: Date.now(), heap: await heap(), frames: await frames() });
  }
  await new Promise((r) => setTimeout(r, 1000));
  await cdp.send("HeapProfiler.collectGarbage");
  samples.push({ at: Date.now(), heap: await heap(), frames: await frames() });
  return samples;
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const own = new URL(url).host;
  const foreign = [];
  page.on("request", (req) => {
    const host = new URL(req.url()).host;
    if (host !== own) foreign.push(req.url());
  });
  await page.goto(url);
  if (mode === "figures") {
    await page.waitForFunction(
      () => document.getElementById("verdict").textContent.includes("final"), null, limit(30000));
    const shown = await page.evaluate(() => ({
      figures: Object.fromEntries([...document.querySelectorAll("[data-figure]")]
        .map((d) => [d.dataset.figure, d.textContent])),
      markers: [...document.querySelectorAll("#markers li")]
        .map((m) => ({ kind: m.dataset.kind, at_ms: Number(m.dataset.at), reason: m.title })),
      slos: [...document.querySelectorAll("#slos li")].map((l) => l.textContent),
      verdict: document.getElementById("verdict").textContent,
    }));
    await page.screenshot({ path: `${shots}/replay.png`, fullPage: true });
    console.log(JSON.stringify({ foreign, ...shown }));
  } else if (mode === "memory") {
    await page.waitForFunction(() => (window.resilFrames || 0) > 0, null, limit(30000));
    const heap = await sampleHeap(page, memorySeconds);
    // Each chart's lines (class) and how many points each holds.
    const charts = await page.evaluate(() => Object.fromEntries(
      [...document.querySelectorAll("svg[id^=chart-]")].map((svg) => [svg.id,
        [...svg.querySelectorAll("polyline")].map((l) =>
          [l.getAttribute("class"), l.getAttribute("points").split(" ").length])])));
    console.log(JSON.stringify({ foreign, heap, charts }));
  } else {
    await page.waitForFunction(() => {
      const blue = [...document.querySelectorAll('.pod[data-color="blue"]')];
      return document.getElementById("switch").dataset.selected === "blue" &&
        document.querySelector('.tile[data-color="blue"][data-state="ok"]') &&
        document.querySelector('.zone[data-zone^="lab-"] .node[data-node^="lab-node-"]') &&
        blue.length > 0 && blue.every((p) => p.dataset.state === "ready");
    }, null, limit(30000));
    const bluePods = await page.evaluate(() =>
      [...document.querySelectorAll('.pod[data-color="blue"]')].map((p) => p.dataset.pod));
    console.log("READY");
    // Each condition is timed when first seen: the blue tile goes green again once the
    // Deployment has replaced the killed pods, so they need not all hold at once.
    const green = await page.waitForFunction((killed) => {
      const seen = (window.testSeen ||= {});
      const mark = (name, holds) => { if (holds && !(name in seen)) seen[name] = Date.now(); };
      mark("green", document.getElementById("switch").dataset.selected === "green");
      mark("blue_down", !!document.querySelector('.tile[data-color="blue"][data-state="down"]'));
      mark("blue_pods_red", killed.every((name) => {
        const tile = document.querySelector(`.pod[data-pod="${name}"]`);
        return !tile || tile.classList.contains("down");
      }));
      const marker = document.querySelector('#markers li[data-kind="failover"]');
      if (marker && !("marker_at" in seen)) seen.marker_at = Number(marker.dataset.at);
      const time = document.querySelector('[data-figure="failover time"]');
      if (time && !("time" in seen)) seen.time = time.textContent;
      const done = ["green", "blue_down", "blue_pods_red", "marker_at", "time"]
        .every((k) => k in seen);
      return done && seen;
    }, bluePods, limit(30000));
    const seen = await green.jsonValue();
    const markerSeen = await page.evaluate(
      (at) => window.resilSeen["failover@" + at], seen.marker_at);
    // The replacements: new blue pods, every one Ready (green) on a node in a zone.
    await page.waitForFunction((killed) => {
      const blue = [...document.querySelectorAll('.zone[data-zone^="lab-"] .pod[data-color="blue"]')]
        .filter((p) => !killed.includes(p.dataset.pod));
      return blue.length > 0 && blue.every((p) => p.dataset.state === "ready" &&
        p.classList.contains("ok"));
    }, bluePods, limit(30000));
    const blueBack = Date.now();
    await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });
    const heap = await sampleHeap(page, memorySeconds);
    // Each projector setting: the WCAG contrast ratio of the page's text, of each
    // colour's and state's text on its card, and the cue that is not colour.
    const schemes = {};
    for (const scheme of ["light", "dark"]) {
      await page.emulateMedia({ colorScheme: scheme });
      schemes[scheme] = await page.evaluate(() => {
        const rgb = (c) => c.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number);
        const lum = (c) => {
          const [r, g, b] = rgb(c).map((v) => {
            v /= 255;
            return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
          });
          return 0.2126 * r + 0.7152 * g + 0.0722 * b;
        };
        const contrast = (a, b) => {
          const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
          return (hi + 0.05) / (lo + 0.05);
        };
        const css = (node, prop) => getComputedStyle(node)[prop];
        const card = css(document.querySelector("#nodes").closest("section"), "backgroundColor");
        const text = (sel) => {
          const node = document.querySelector(sel);
          return node ? contrast(css(node, "color"), card) : null;
        };
        const cue = (p) => p.textContent.trim().split(/\s+/)[0];
        return {
          background: css(document.body, "backgroundColor"),
          text: contrast(css(document.body, "color"), css(document.body, "backgroundColor")),
          blue: text('.pod[data-color="blue"] .pod-color'),
          green: text('.pod[data-color="green"] .pod-color'),
          ready: text(".pod.ok .state"),
          down: text(".pod.down .state"),
          shapes: [...document.querySelectorAll(".pod")].map((p) => [p.dataset.color, cue(p)]),
        };
      });
    }
    const pageSeen = await page.evaluate(() => window.resilSeen);
    const zones = await page.evaluate(() =>
      [...document.querySelectorAll(".zone")].map((z) => z.dataset.zone));
    const tiles = await page.evaluate(() =>
      [...document.querySelectorAll(".pod")].map((p) => ({
        pod: p.dataset.pod, state: p.dataset.state,
        node: p.closest(".node").dataset.node, zone: p.closest(".zone").dataset.zone,
      })));
    console.log(JSON.stringify({
      blue_pods: bluePods,
      green_seen_ms: seen.green,
      blue_down_seen_ms: seen.blue_down,
      blue_pods_red_seen_ms: seen.blue_pods_red,
      blue_back_seen_ms: blueBack,
      marker_at_ms: seen.marker_at,
      marker_seen_ms: markerSeen,
      failover_time: seen.time,
      page_seen: pageSeen,
      zones,
      tiles,
      schemes,
      heap,
      foreign,
    }));
  }
} finally {
  await browser.close();
}
