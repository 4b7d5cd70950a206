#!/usr/bin/env bash
# What a dashboard following `resil load` costs the load. RUNS pairs of `resil load` runs
# against nginx on 127.0.0.1 (`return 200`), alternated so drift hits both alike:
#   - alone;
#   - with `resil dashboard --follow` of its results directory and a client reading the
#     page's event stream (the frames the page would draw, 5 or more a second).
# The generator and the dashboard share GEN_CPU (the dashboard's work is taken from the
# generator: the worst case), nginx runs on SERVER_CPU. Each run's rate is the mean of its
# whole seconds in timeline.jsonl, the first and the last left out (the dashboard starts
# once the load has written run.json). Prints both medians, the ratio, and the CPU time
# the dashboard used (a figure that the machine's other work does not blur).
#   MODE=closed (default): CONNS connections as fast as they go;
#   MODE=open: --rate RATE (default 50000), the achieved rate compared.
# The dashboard follows no cluster here (KUBECONFIG points nowhere): its cost is reading
# the results directory, rebuilding the report each second and sending frames.
# Installs what is missing: nginx, jq, curl (apt-get). Needs a release build of resil
# (`cargo build --release`; RESIL overrides the binary).
set -euo pipefail

DURATION=${DURATION:-10}            # seconds per run
RUNS=${RUNS:-3}
MODE=${MODE:-closed}
CONNS=${CONNS:-64}
RATE=${RATE:-50000}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
PORT=${PORT:-18081}
DASH_PORT=${DASH_PORT:-18091}
here=$(cd "$(dirname "$0")/.." && pwd)
RESIL=${RESIL:-${CARGO_TARGET_DIR:-$here/target}/release/resil}

say() { printf '%s\n' "$*" >&2; }

missing=()
for tool in nginx jq curl taskset; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (apt-get)"
    apt-get install -y "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
fi
if [ ! -x "$RESIL" ]; then
    say "no release build at $RESIL: run cargo build --release (or set RESIL)"
    exit 2
fi

work=$(mktemp -d)
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        location / { return 200 "ok\n"; }
    }
}
EOF
taskset -c "$SERVER_CPU" nginx -c "$work/nginx.conf" -p "$work" &
nginx_pid=$!
pids=()
cleanup() {
    for pid in "${pids[@]}" "$nginx_pid"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
url="http://127.0.0.1:$PORT/"
if [ "$MODE" = open ]; then pace=(--rate "$RATE"); else pace=(-c "$CONNS"); fi

# The mean rate of a run's whole seconds, its first and last left out.
rate_of() {
    jq -s '[.[] | select(.type == "load_bucket") | {second, requests}]
        | group_by(.second) | map({second: .[0].second, requests: (map(.requests) | add)})
        | sort_by(.second) | .[1:-1] | (map(.requests) | add) / length' "$1/timeline.jsonl"
}

# One run: `with` = 1 starts a dashboard following it and a client of its event stream.
one() {
    local with=$1 out=$2
    taskset -c "$GEN_CPU" "$RESIL" load "$url" "${pace[@]}" -d "${DURATION}s" --threads 1 \
        --out "$out" -o json >"$out.json" &
    local load=$!
    if [ "$with" = 1 ]; then
        # Bounded: run.json is written as the load starts.
        for _ in $(seq 100); do [ -f "$out/run.json" ] && break; sleep 0.02; done
        KUBECONFIG=$work/no-cluster taskset -c "$GEN_CPU" "$RESIL" dashboard \
            --follow "$out" --port "$DASH_PORT" >/dev/null 2>"$out.dashboard.log" &
        local dash=$!
        pids+=("$dash")
        for _ in $(seq 100); do
            curl -fs "http://127.0.0.1:$DASH_PORT/" >/dev/null 2>&1 && break
            sleep 0.02
        done
        curl -sN "http://127.0.0.1:$DASH_PORT/events" >"$out.events" 2>/dev/null &
        local client=$!
        pids+=("$client")
    fi
    wait "$load"
    if [ "$with" = 1 ]; then
        # The dashboard's own CPU time (user + system, clock ticks) over the run: what it
        # took from the generator's CPU, whatever else the machine was doing.
        awk -v hz="$(getconf CLK_TCK)" -v d="$DURATION" '{
            printf "%.2f\n", ($14 + $15) / hz / d * 100 }' "/proc/$dash/stat" >>"$work/dash-cpu"
        kill "$client" "$dash" 2>/dev/null || true
        wait "$client" "$dash" 2>/dev/null || true
        local frames
        frames=$(grep -c '^data:' "$out.events" || true)
        say "  frames sent to the page: $frames ($(awk -v f="$frames" -v d="$DURATION" 'BEGIN { printf "%.1f", f / d }')/s)"
    fi
    rate_of "$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

say "resil load ${pace[*]} for ${DURATION}s x $RUNS, alone and with a dashboard following it"
say "(generator and dashboard on CPU $GEN_CPU, nginx on CPU $SERVER_CPU)"
: >"$work/alone"
: >"$work/with"
: >"$work/dash-cpu"
for run in $(seq "$RUNS"); do
    r=$(one 0 "$work/alone-$run")
    say "run $run alone: $r req/s"
    echo "$r" >>"$work/alone"
    r=$(one 1 "$work/with-$run")
    say "run $run with dashboard: $r req/s"
    echo "$r" >>"$work/with"
done
alone=$(median <"$work/alone")
cpu=$(median <"$work/dash-cpu")
with=$(median <"$work/with")
awk -v a="$alone" -v w="$with" -v m="$MODE" -v rate="$RATE" -v cpu="$cpu" 'BEGIN {
    printf "alone:          %10.0f req/s (median)\n", a
    printf "with dashboard: %10.0f req/s (median)\n", w
    printf "ratio with/alone: %.4f (the dashboard costs %.2f %% of the throughput)\n", w / a, (1 - w / a) * 100
    printf "CPU time of the dashboard itself: %.2f %% of one CPU (median), taken from the generator\n", cpu
    if (m == "open") printf "target rate %d: alone %.2f %%, with dashboard %.2f %% of it\n", rate, a / rate * 100, w / rate * 100
}'
