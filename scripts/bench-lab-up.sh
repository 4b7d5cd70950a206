#!/usr/bin/env bash
# Measures `resil lab up` until the lab's API answers GET /version over TLS with its token,
# RUNS times (default 10), each with a fresh state directory (so certificates are generated
# every time: the slowest, first-start case), and prints every run and the median in ms.
#
#   scripts/bench-lab-up.sh                 # uses target/debug/resil (cargo build first)
#   RESIL=target/release/resil RUNS=20 scripts/bench-lab-up.sh
#
# Needs bash, curl, sort. Touches no real kubeconfig: HOME and KUBECONFIG point into a
# temporary directory that is removed at the end, and every lab is stopped with `lab down`.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
resil="${RESIL:-${CARGO_TARGET_DIR:-$root/target}/debug/resil}"
runs="${RUNS:-10}"
[[ -x "$resil" ]] || { echo "no resil binary at $resil; run cargo build or set RESIL" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl is required" >&2; exit 2; }

work="$(mktemp -d)"
state=""
cleanup() {
  [[ -n "$state" ]] && "$resil" lab --state-dir "$state" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export HOME="$work/home" KUBECONFIG="$work/kubeconfig"
mkdir -p "$HOME"

times=()
for i in $(seq 1 "$runs"); do
  state="$work/state-$i"
  start=$(date +%s%N)
  "$resil" lab --state-dir "$state" up --no-kubeconfig >/dev/null 2>"$work/up.err" \
    || { cat "$work/up.err" >&2; exit 2; }
  addr=$(sed -n 's/.*"address": *"\([^"]*\)".*/\1/p' "$state/lab.json")
  # `lab up` returns once the API accepts connections; this proves it answers a request.
  answered=no
  for _ in $(seq 1 100); do
    if curl -sf --cacert "$state/ca.crt" -H "Authorization: Bearer $(cat "$state/token")" \
        "https://$addr/version" >/dev/null; then
      answered=yes
      break
    fi
    sleep 0.01
  done
  end=$(date +%s%N)
  [[ $answered == yes ]] || { echo "run $i: the API at $addr never answered GET /version" >&2; exit 2; }
  ms=$(( (end - start) / 1000000 ))
  times+=("$ms")
  echo "run $i: ${ms} ms"
  "$resil" lab --state-dir "$state" down >/dev/null 2>&1
  state=""
done

sorted=($(printf '%s\n' "${times[@]}" | sort -n))
n=${#sorted[@]}
if (( n % 2 )); then median=${sorted[n/2]}; else median=$(( (sorted[n/2-1] + sorted[n/2]) / 2 )); fi
echo "lab up -> API answering: median ${median} ms over $n runs (min ${sorted[0]}, max ${sorted[n-1]})"
