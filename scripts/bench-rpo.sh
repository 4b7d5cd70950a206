#!/usr/bin/env bash
# RPO of asynchronous and synchronous replication, measured end to end with the real
# binary on loopback: two demo apps (region-a, region-b), `resil replicate` between them,
# `resil load --write-ratio 1` at RATE writes/s against region-a, region-a killed
# (SIGKILL) KILL_AFTER seconds in, every acknowledged write read back from region-b.
# Prints one line per run: mode, writes acknowledged, lost (RPO), the RPO window, and for
# the asynchronous runs the expectation RATE × LAG.
#
#   scripts/bench-rpo.sh                       # 3 async runs at lag 500ms, 3 sync runs
#   RATE=400 LAG=250ms RUNS=5 scripts/bench-rpo.sh
set -euo pipefail

RESIL=${RESIL:-target/debug/resil}
RATE=${RATE:-200}
LAG=${LAG:-500ms}
RUNS=${RUNS:-3}
DURATION=${DURATION:-4s}
KILL_AFTER=${KILL_AFTER:-2}
work=$(mktemp -d /tmp/kv-rpo.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Starts a demo app on a free loopback port; sets PID and ADDR.
start_app() {
    local region=$1 out="$work/$1.out"
    : >"$out"
    "$RESIL" demo-app --bind 127.0.0.1 --port 0 --region "$region" --drain 0s >"$out" 2>/dev/null &
    PID=$!
    pids+=("$PID")
    for _ in $(seq 1 100); do
        ADDR=$(sed -n 's/^listening on //p' "$out")
        [ -n "$ADDR" ] && return 0
        sleep 0.05
    done
    echo "demo app $region did not start" >&2
    exit 2
}

lag_ms=$(python3 -c "import sys,re; m=re.fullmatch(r'(\d+)(ms|s)', sys.argv[1]); print(int(m[1])*(1 if m[2]=='ms' else 1000))" "$LAG")
for mode in async sync; do
    for run in $(seq 1 "$RUNS"); do
        start_app region-a; a_pid=$PID a=$ADDR
        start_app region-b; b=$ADDR
        if [ "$mode" = async ]; then how=(--lag "$LAG"); else how=(--sync); fi
        "$RESIL" replicate --from "http://$a" --to "http://$b" "${how[@]}" --json \
            --duration 30s >"$work/replicate.json" 2>/dev/null &
        rep=$!
        pids+=("$rep")
        sleep 0.3
        "$RESIL" load "http://$a/" --rate "$RATE" -d "$DURATION" --timeout 1s \
            --write-ratio 1 --verify-url "http://$b" -o json >"$work/load.json" 2>/dev/null &
        load=$!
        sleep "$KILL_AFTER"
        kill -9 "$a_pid"
        wait "$load" || true
        kill -INT "$rep"
        wait "$rep" || true
        jq -r --arg mode "$mode" --arg run "$run" --argjson rate "$RATE" --argjson lag "$lag_ms" \
            '.writes as $w | "\($mode) run \($run): \($w.acknowledged) acknowledged, \($w.lost) lost (RPO), window \($w.rpo_window_ms // 0) ms, \($w.correctness_errors // ($w.wrong_value + $w.acked_twice)) correctness errors" + (if $mode == "async" then ", expected ≈ \($rate * $lag / 1000) (rate × lag)" else "" end)' \
            "$work/load.json"
        kill "${pids[@]}" 2>/dev/null || true
        pids=()
    done
done
