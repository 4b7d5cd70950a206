// Drives the resil dashboard in headless Chromium for tests/it/dashboard.rs.
//
// usage: node dashboard.mjs URL SCREENSHOT_DIR
// Opens URL, waits until the page shows blue selected and prints "READY"; the test then
// kills the blue pods. Waits until the page shows green selected, the blue tile down and a
// failover marker with its failover time, takes a screenshot, and prints one JSON line:
// when each was seen (ms since the epoch, the page's clock), the marker's event time, and
// every request the page made to a host other than its own.
import { chromium } from "playwright-core";

const [url, shots] = process.argv.slice(2);
const executablePath = process.env.RESIL_CHROMIUM || "/usr/bin/chromium";
const limit = (ms) => ({ timeout: ms, polling: 10 });

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  const own = new URL(url).host;
  const foreign = [];
  page.on("request", (req) => {
    const host = new URL(req.url()).host;
    if (host !== own) foreign.push(req.url());
  });
  await page.goto(url);
  await page.waitForFunction(
    () => document.getElementById("switch").dataset.selected === "blue" &&
      document.querySelector('.tile[data-color="blue"][data-state="ok"]'),
    null, limit(30000));
  console.log("READY");
  // Each condition is timed when first seen: the blue tile goes green again once the
  // Deployment has replaced the killed pods, so they need not all hold at once.
  const green = await page.waitForFunction(() => {
    const seen = (window.testSeen ||= {});
    const mark = (name, holds) => { if (holds && !(name in seen)) seen[name] = Date.now(); };
    mark("green", document.getElementById("switch").dataset.selected === "green");
    mark("blue_down", !!document.querySelector('.tile[data-color="blue"][data-state="down"]'));
    const marker = document.querySelector('#markers li[data-kind="failover"]');
    if (marker && !("marker_at" in seen)) seen.marker_at = Number(marker.dataset.at);
    const time = document.querySelector('[data-figure="failover time"]');
    if (time && !("time" in seen)) seen.time = time.textContent;
    const done = ["green", "blue_down", "marker_at", "time"].every((k) => k in seen);
    return done && seen;
  }, null, limit(30000));
  const seen = await green.jsonValue();
  const markerSeen = await page.evaluate(
    (at) => window.resilSeen["failover@" + at], seen.marker_at);
  await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });
  console.log(JSON.stringify({
    green_seen_ms: seen.green,
    blue_down_seen_ms: seen.blue_down,
    marker_at_ms: seen.marker_at,
    marker_seen_ms: markerSeen,
    failover_time: seen.time,
    foreign,
  }));
} finally {
  await browser.close();
}
