#!/usr/bin/env bash
# What `resil load --workers 2` costs against a single process at the same total
# connections, on a lab started for the purpose:
#   1. `resil lab up` with its own state directory and kubeconfig, `resil deploy` (the
#      demo's NodePort moved to a free port) with REPLICAS pods per colour, the HPAs'
#      maximum, so that the demo does not scale up from one run to the next;
#   2. after one discarded run, RUNS pairs of
#      closed-model runs of DURATION against the demo's NodePort, in alternating order:
#      one process with `-c CONNS --threads 2` (and, for reference, `--threads 1`), and
#      `--workers 2` pods of the lab's Job, each with `--threads 1` and half the
#      connections (the coordinator splits them);
#   3. prints the median throughput of each and the ratios workers / one process (with
#      two threads, the same total, and with the better of one or two threads).
# On a machine with few cores the lab, the demo pods and the generators share them, so
# the ratio is the distributed run's overhead (log streaming, merging, a second process),
# not a speed-up. Target (issue 24): ratio >= 0.9.
#
#   scripts/bench-workers.sh                          # cargo build --release first
#   RESIL=target/debug/resil RUNS=3 scripts/bench-workers.sh
#
# Knobs: RUNS (3), DURATION (10 s), CONNS (32), REPLICAS (5). Needs bash, jq. Touches no real
# kubeconfig or state: HOME, KUBECONFIG, RESIL_LAB_STATE_DIR and the XDG directories
# point into a temporary directory removed at the end; the lab is stopped.
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
REPLICAS=${REPLICAS:-5}   # per colour: the demo HPAs' maxReplicas, so they have no room to scale
root="$(cd "$(dirname "$0")/.." && pwd)"
RESIL=${RESIL:-${CARGO_TARGET_DIR:-$root/target}/release/resil}

say() { printf '%s\n' "$*" >&2; }
command -v jq >/dev/null || { say "jq is required"; exit 2; }
[[ -x "$RESIL" ]] || { say "no resil binary at $RESIL: cargo build --release (or set RESIL)"; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/resil-bench-workers.XXXXXX")"
cleanup() {
  "$RESIL" lab down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export HOME="$work/home" KUBECONFIG="$work/kubeconfig" RESIL_LAB_STATE_DIR="$work/lab" \
  XDG_STATE_HOME="$work/state" XDG_CONFIG_HOME="$work/config" RUST_LOG=off NO_COLOR=1
mkdir -p "$HOME"

# A free port in the NodePort range (nothing answers a connect on it).
port=""
for _ in $(seq 1 100); do
  candidate=$((30100 + RANDOM % 2600))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port=$candidate; break; fi
done
[[ -n "$port" ]] || { say "no free NodePort"; exit 2; }
mkdir -p "$work/manifests"
for f in "$root"/manifests/*.yaml; do
  sed "s/30080/$port/" "$f" >"$work/manifests/$(basename "$f")"
done

say "starting the lab and deploying the demo (NodePort $port)"
"$RESIL" lab up >/dev/null 2>"$work/lab.err" || { cat "$work/lab.err" >&2; exit 2; }
"$RESIL" deploy --manifests "$work/manifests" --replicas "$REPLICAS" --timeout 120s \
  >/dev/null 2>"$work/deploy.err" \
  || { cat "$work/deploy.err" >&2; exit 2; }
url="http://127.0.0.1:$port/"

# One run; its arguments go to `resil load`. Prints the achieved rate and the requests.
load() {
  "$RESIL" load "$url" -c "$CONNS" -d "${DURATION}s" -o json "$@" 2>>"$work/load.err" \
    | jq -r '"\(.achieved_rate) \(.requests) \(.errors)"'
}

: >"$work/single"; : >"$work/single1"; : >"$work/workers"
# The demo starts at its HPAs' maximum, so load cannot scale it up between runs; one
# discarded run warms it, and the order alternates so neither side always runs second.
load --threads 2 >/dev/null
for run in $(seq "$RUNS"); do
  if ((run % 2)); then
    load --threads 2 >>"$work/single"
    load --threads 1 >>"$work/single1"
    load --threads 1 --workers 2 >>"$work/workers"
  else
    load --threads 1 --workers 2 >>"$work/workers"
    load --threads 1 >>"$work/single1"
    load --threads 2 >>"$work/single"
  fi
  say "run $run: single $(tail -n1 "$work/single"), single with one thread" \
    "$(tail -n1 "$work/single1"), 2 workers $(tail -n1 "$work/workers") (req/s requests errors)"
done

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
single=$(cut -d' ' -f1 "$work/single" | median)
single1=$(cut -d' ' -f1 "$work/single1" | median)
workers=$(cut -d' ' -f1 "$work/workers" | median)
echo
echo "resil load -c $CONNS against the lab's demo, ${DURATION}s, median of $RUNS (binary: $RESIL)"
awk -v a="$single" -v a1="$single1" -v b="$workers" 'BEGIN {
  best = (a1 > a) ? a1 : a
  printf "one process, --threads 2        %10.0f req/s\n", a
  printf "one process, --threads 1        %10.0f req/s\n", a1
  printf "--workers 2, --threads 1 each    %10.0f req/s   ratio %.3f (to --threads 2), %.3f (to the better one process)\n",
    b, b / a, b / best }'
echo "target: ratio >= 0.9"
