#!/usr/bin/env bash
# Renders the HTML report of a results directory (default: the failover fixture) in
# headless Chromium and saves a screenshot, checking on the way that the file loads
# nothing from anywhere: no script, stylesheet, image or url() reference, and that
# Chromium made no network request while rendering it (network log).
# Skips (exit 0) with a message when chromium is not installed.
# Usage: scripts/check-html-report.sh [RESULTS_DIR] [SCREENSHOT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-tests/fixtures/results/failover}"
shot="${2:-/tmp/resil-report.png}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "check-html-report: chromium not installed; skipping (apt-get install -y chromium)"
  exit 0
fi
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --bin resil
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
html="$work/report.html"
"$target_dir/debug/resil" report "$dir" -o html > "$html" || [ $? -eq 1 ]

if grep -Eo '<(script|link|img|iframe)|(src|href)=|url\(|@import' "$html"; then
  echo "check-html-report: FAIL: the report references external resources" >&2
  exit 1
fi
charts=$(grep -o '<svg class="chart"' "$html" | wc -l)
[ "$charts" -eq 3 ] || { echo "check-html-report: FAIL: $charts charts, want 3" >&2; exit 1; }

"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --host-resolver-rules="MAP * ~NOTFOUND" \
  --user-data-dir="$work/profile" --log-net-log="$work/net.json" \
  --screenshot="$shot" --window-size=1200,2000 "file://$html" 2> "$work/chromium.log" || {
  cat "$work/chromium.log" >&2
  echo "check-html-report: FAIL: chromium could not render the report" >&2
  exit 1
}
[ -s "$shot" ] || { echo "check-html-report: FAIL: no screenshot" >&2; exit 1; }
# Chromium's own background services (time, update, account checks) talk to Google hosts
# whatever page it renders; any other URL in the log was asked for by the report. The
# static check above already refuses a report that names any resource at all.
if [ -s "$work/net.json" ] && grep -Eo '"url":"(https?|wss?)://[^"]*' "$work/net.json" | sort -u \
  | grep -Ev '://([a-z0-9-]+\.)*(google\.com|googleapis\.com|gvt1\.com|gstatic\.com)[:/]' | grep .; then
  echo "check-html-report: FAIL: rendering the report made the network requests above" >&2
  exit 1
fi
echo "check-html-report: ok: $charts charts, no external resources, screenshot $shot"
