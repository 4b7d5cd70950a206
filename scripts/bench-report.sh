#!/usr/bin/env bash
# Times `resil report` on a synthetic one-hour run: 3600 per-second buckets and 10M
# requests in HDR form (examples/bench_report_results.rs), release build, every format.
# Prints wall time per format (best of RUNS) and peak RSS from /usr/bin/time -v.
# Target: ≤ 200 ms per report. Usage: scripts/bench-report.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet --bin resil --example bench_report_results
bin="$target_dir/release/resil"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$target_dir/release/examples/bench_report_results" "$work/run"
echo "results dir: $(du -sh "$work/run" | cut -f1) ($(wc -l < "$work/run/timeline.jsonl") timeline lines)"
have_time=1
[ -x /usr/bin/time ] || { have_time=0; echo "(/usr/bin/time missing: no RSS figures; apt-get install time)"; }
for format in table json markdown junit html; do
  best=""
  for _ in $(seq "$runs"); do
    start=$(date +%s%N)
    "$bin" report "$work/run" -o "$format" > "$work/out.$format" || [ $? -eq 1 ]
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  rss="?"
  if [ "$have_time" = 1 ]; then
    rss=$( { /usr/bin/time -v "$bin" report "$work/run" -o "$format" > /dev/null; } 2>&1 \
      | awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}')
  fi
  printf '%-9s best of %s: %4d ms   peak RSS %6s KiB   output %s bytes\n' \
    "$format" "$runs" "$best" "$rss" "$(wc -c < "$work/out.$format")"
done
