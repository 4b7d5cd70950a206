#!/usr/bin/env bash
# What `--metrics-addr` costs `resil load`, and how fast its `/metrics` answers under load:
#   - target: `resil demo-app` on 127.0.0.1 (pinned to SERVER_CPU), the generator pinned
#     to GEN_CPU; RUNS pairs of closed-model runs (-c CONNS, DURATION each, one thread),
#     alternating without and with `--metrics-addr`; while either run goes on, `curl`
#     scrapes the metrics port every INTERVAL (100 ms: refused without the flag, so both
#     runs pay for curl alike) and records each answered scrape's total time;
#   - prints the median throughput of each side, their ratio (with / without) and the
#     cost in percent, then the scrapes' latency p50, p99 and max, whole (curl's total)
#     and the server's part (request sent to first byte).
# Targets (issue 24): cost <= 2 %, scrape <= 5 ms.
#
#   scripts/bench-metrics.sh                          # cargo build --release first
#   RESIL=target/debug/resil RUNS=3 scripts/bench-metrics.sh
#
# Knobs: RUNS (5), DURATION (10 s), CONNS (32), INTERVAL (0.1 s), SERVER_CPU (0),
# GEN_CPU (1). Needs bash, jq, curl, taskset. Loopback only; everything it starts is
# stopped at the end.
set -euo pipefail

RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
INTERVAL=${INTERVAL:-0.1}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
root="$(cd "$(dirname "$0")/.." && pwd)"
RESIL=${RESIL:-${CARGO_TARGET_DIR:-$root/target}/release/resil}

say() { printf '%s\n' "$*" >&2; }
for tool in jq curl taskset; do
  command -v "$tool" >/dev/null || { say "$tool is required"; exit 2; }
done
[[ -x "$RESIL" ]] || { say "no resil binary at $RESIL: cargo build --release (or set RESIL)"; exit 2; }

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export RUST_LOG=off NO_COLOR=1

free_port() {
  local candidate
  for _ in $(seq 1 100); do
    candidate=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then echo "$candidate"; return; fi
  done
  say "no free port"; exit 2
}

app_port=$(free_port)
taskset -c "$SERVER_CPU" "$RESIL" demo-app --bind 127.0.0.1 --port "$app_port" \
  --pod-name bench >"$work/app.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$app_port/" >/dev/null 2>&1 && break
  sleep 0.1
done
url="http://127.0.0.1:$app_port/"

# One closed-model run; extra arguments go to `resil load`. Prints the achieved rate.
load() {
  taskset -c "$GEN_CPU" "$RESIL" load "$url" -c "$CONNS" -d "${DURATION}s" --threads 1 \
    -o json "$@" 2>"$work/load.err" | jq -r '.achieved_rate'
}

: >"$work/without"; : >"$work/with"; : >"$work/scrape.raw"
# Scrapes 127.0.0.1:$2/metrics every INTERVAL while process $1 runs (bounded: the run
# ends itself after DURATION), appending lines "code total pretransfer starttransfer"
# (curl's timings, seconds) to $3.
scrape_while() {
  local end=$((SECONDS + DURATION + 5))
  while kill -0 "$1" 2>/dev/null && ((SECONDS < end)); do
    curl -s -o /dev/null -w '%{http_code} %{time_total} %{time_pretransfer} %{time_starttransfer}\n' \
      --max-time 1 \
      "http://127.0.0.1:$2/metrics" >>"$3" 2>/dev/null || true
    sleep "$INTERVAL"
  done
}
for run in $(seq "$RUNS"); do
  metrics_port=$(free_port)
  # Both runs have the same scraper beside them (curl, every INTERVAL), so the difference
  # is what serving /metrics costs resil, not what curl costs the machine; without
  # --metrics-addr nothing listens, and its scrapes are refused.
  load >>"$work/without" &
  load_pid=$!
  scrape_while "$load_pid" "$metrics_port" "$work/refused.raw"
  wait "$load_pid"
  load --metrics-addr "127.0.0.1:$metrics_port" >>"$work/with" &
  load_pid=$!
  scrape_while "$load_pid" "$metrics_port" "$work/scrape.raw"
  wait "$load_pid"
  say "run $run: without $(tail -n1 "$work/without") req/s, with $(tail -n1 "$work/with") req/s"
done
# Only answered scrapes count (before the endpoint is up or after it is gone, none).
awk '$1 == 200 { print $2 * 1000 }' "$work/scrape.raw" >"$work/scrapes"
# The server's part: from the request sent to the first byte back (no connect, no client).
awk '$1 == 200 { print ($4 - $3) * 1000 }' "$work/scrape.raw" >"$work/served"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
without=$(median <"$work/without")
with=$(median <"$work/with")
echo
echo "resil load -c $CONNS --threads 1, ${DURATION}s, median of $RUNS (binary: $RESIL)"
awk -v a="$without" -v b="$with" 'BEGIN {
  printf "without --metrics-addr %10.0f req/s\n", a
  printf "with    --metrics-addr %10.0f req/s   ratio %.3f   cost %.2f %%\n", b, b / a, (1 - b / a) * 100 }'
sort -g "$work/scrapes" | awk -v every="$INTERVAL" '{a[NR]=$1} END {
  if (NR == 0) { print "no scrape answered"; exit 1 }
  p99 = int(NR * 0.99); if (p99 < 1) p99 = 1
  printf "scrapes every %ss: %d answered, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", every, NR,
    a[int((NR + 1) / 2)], a[p99], a[NR] }'
sort -g "$work/served" | awk '{a[NR]=$1} END {
  if (NR == 0) exit
  p99 = int(NR * 0.99); if (p99 < 1) p99 = 1
  printf "  of which request sent -> first byte: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    a[int((NR + 1) / 2)], a[p99], a[NR] }'
echo "targets: cost <= 2 %; scrape <= 5 ms"
