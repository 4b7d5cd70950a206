#!/usr/bin/env bash
# Benchmarks `resil load` against wrk and oha on this machine, from the same run:
#   - closed model: each tool RUNS x DURATION at each connection count in CONNS against
#     nginx (127.0.0.1 only, `return 200`), server pinned to SERVER_CPU, generator to
#     GEN_CPU; prints the medians of req/s, p50, p99 and mean and the ratios resil/wrk
#     and resil/oha; then runs resil with as many connections as wrk keeps requests in
#     flight (wrk's mean latency x req/s) and compares its latencies with wrk's;
#   - open model: resil and oha (-q, latency-corrected) RUNS x DURATION at each rate in
#     OPEN_RATES on one core: medians of the achieved rate vs target, corrected vs
#     uncorrected p99 (resil keeps both), late sends, and the steal time of both CPUs;
#   - stall: a fixed-rate run while nginx is frozen for 5 s, against hand-computed figures;
#   - soak (not in the default PARTS; PARTS=soak to run it): resil for SOAK seconds
#     (default 600) at SOAK_CONNS connections (or, with SOAK_RATE set, the open model at
#     that rate), its RSS sampled every 10 s; prints RSS at
#     the start and the end, and the last minute's rate against the first minute's.
# Installs what is missing: wrk, nginx, jq (apt-get), oha (cargo install, into
# $OHA_ROOT). Needs a release build of resil (`cargo build --release`; RESIL overrides
# the binary). Takes about 6 minutes with the defaults and loads two CPUs fully.
set -euo pipefail

DURATION=${DURATION:-10}            # seconds per run
RUNS=${RUNS:-3}
CONNS=${CONNS:-"32 128"}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
PORT=${PORT:-18080}
OPEN_RATES=${OPEN_RATES:-${OPEN_RATE:-"45000 60000"}}   # open-model rates (req/s)
OPEN_OHA_CONNS=${OPEN_OHA_CONNS:-64}
PARTS=${PARTS:-"closed open stall"}   # which parts to run: closed open stall soak
SOAK=${SOAK:-600}                   # seconds of the soak run
SOAK_CONNS=${SOAK_CONNS:-32}
SOAK_RATE=${SOAK_RATE:-}            # set: the soak runs the open model at this rate
OHA_ROOT=${OHA_ROOT:-${TMPDIR:-/tmp}/resil-bench-oha}
here=$(cd "$(dirname "$0")/.." && pwd)
RESIL=${RESIL:-${CARGO_TARGET_DIR:-$here/target}/release/resil}

say() { printf '%s\n' "$*" >&2; }

need_apt() {
    local missing=()
    for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${missing[*]} (apt-get)"
    apt-get install -y "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
}

need_apt wrk nginx jq taskset
OHA=$(command -v oha || true)
if [ -z "$OHA" ]; then
    OHA=$OHA_ROOT/bin/oha
    if [ ! -x "$OHA" ]; then
        say "installing oha into $OHA_ROOT (cargo install --locked)"
        CARGO_TARGET_DIR=$OHA_ROOT/build cargo install oha --locked --root "$OHA_ROOT" >/dev/null
    fi
fi
if [ ! -x "$RESIL" ]; then
    say "no release build at $RESIL: run cargo build --release (or set RESIL)"
    exit 2
fi

work=$(mktemp -d)
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
# One process serves, so SIGSTOP freezes the server for the stall case.
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
trap 'kill $nginx_pid 2>/dev/null; wait $nginx_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
url="http://127.0.0.1:$PORT/"
gen() { taskset -c "$GEN_CPU" "$@"; }

# wrk prints latencies as 178.00us / 1.23ms / 1.02s; convert to µs.
to_us() {
    awk '{ v=$1; if (v ~ /us$/) { sub(/us$/,"",v); print v+0 } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v*1000 }
           else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000000 } }'
}

has() { [[ " $PARTS " == *" $1 "* ]]; }
# Appends the TSV row that jq makes (arguments: FILE, then jq's) from the JSON on stdin
# to FILE, and shows it.
row() { local file=$1; shift; jq -r "$@" | tee -a "$file" >&2; }
# CPU time the hypervisor gave to others on the server's and the generator's CPUs so far
# (ms): the steal column of /proc/stat. A frozen CPU delays sends however good the
# generator is, and the corrected latencies rightly show it.
steal_ms() {
    awk -v a="cpu$SERVER_CPU" -v b="cpu$GEN_CPU" -v hz="$(getconf CLK_TCK)" \
        '$1 == a || $1 == b { s += $9 } END { printf "%d\n", s * 1000 / hz }' /proc/stat
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# The median of column COL of the closed-model rows of TOOL at connection count C.
med_of() { awk -F'\t' -v t="$1" -v c="$2" -v col="$3" '$1==t && $2==c {print $col}' "$results" | median; }
# One closed-model resil run with CONNS connections, recorded as TOOL's row for count C.
resil_closed() {
    local tool=$1 conns=$2 c=$3 run=$4
    gen "$RESIL" load "$url" -c "$conns" -d "${DURATION}s" --threads 1 -o json \
        | row "$results" --arg t "$tool" --arg c "$c" --arg run "$run" \
            '[$t, $c, $run, .achieved_rate, .latency.p50_us, .latency.p99_us, .latency.mean_us] | @tsv'
}

results=$work/results.tsv   # tool conns run rps p50_us p99_us mean_us
if has closed; then
for c in $CONNS; do
    for run in $(seq "$RUNS"); do
        out=$(gen wrk -t1 -c"$c" -d"${DURATION}s" --latency "$url")
        rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        p50=$(awk '$1=="50%" {print $2}' <<<"$out" | to_us)
        p99=$(awk '$1=="99%" {print $2}' <<<"$out" | to_us)
        mean=$(awk '$1=="Latency" && $2!="Distribution" {print $2}' <<<"$out" | to_us)
        printf 'wrk\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$run" "$rps" "$p50" "$p99" "$mean" | tee -a "$results" >&2

        gen "$OHA" -z "${DURATION}s" -c "$c" --no-tui --output-format json "$url" \
            | row "$results" --arg c "$c" --arg run "$run" \
                '["oha", $c, $run, .metrics.requests_per_sec, .metrics.latency_ms.p50*1000, .metrics.latency_ms.p99*1000, .metrics.latency_ms.mean*1000] | @tsv'

        resil_closed resil "$c" "$c" "$run"
    done
done

echo
echo "closed model: median of $RUNS x ${DURATION}s, generator on CPU $GEN_CPU, nginx on CPU $SERVER_CPU"
printf '%-6s %6s %12s %10s %10s %10s\n' tool conns "req/s" "p50 µs" "p99 µs" "mean µs"
declare -A med
for c in $CONNS; do
    for tool in wrk oha resil; do
        for col in 4 5 6 7; do
            med[$tool,$c,$col]=$(med_of "$tool" "$c" "$col")
        done
        printf '%-6s %6s %12.0f %10.0f %10.0f %10.0f\n' "$tool" "$c" "${med[$tool,$c,4]}" "${med[$tool,$c,5]}" \
            "${med[$tool,$c,6]}" "${med[$tool,$c,7]}"
    done
done
echo
printf '%-6s %14s %14s %14s %14s %14s\n' conns "rps resil/wrk" "rps resil/oha" "p50 resil/wrk" "p99 resil/wrk" \
    "mean resil/wrk"
for c in $CONNS; do
    awk -v rw="${med[resil,$c,4]}" -v w="${med[wrk,$c,4]}" -v o="${med[oha,$c,4]}" \
        -v r50="${med[resil,$c,5]}" -v w50="${med[wrk,$c,5]}" -v r99="${med[resil,$c,6]}" -v w99="${med[wrk,$c,6]}" \
        -v rm="${med[resil,$c,7]}" -v wm="${med[wrk,$c,7]}" -v c="$c" \
        'BEGIN { printf "%-6s %14.3f %14.3f %14.3f %14.3f %14.3f\n", c, rw/w, rw/o, r50/w50, r99/w99, rm/wm }'
done
# With every connection busy, the mean latency is fixed by the rate (Little's law:
# conns / req/s). resil sends a connection's next request as soon as its response is
# read, so its mean is conns / req/s. wrk registers for writability instead and writes in
# its next event-loop turn, so each connection idles between a response and the next
# request, untimed: wrk's mean x req/s is how many requests it really keeps in flight,
# fewer than its connections. Fewer requests in flight wait less at the server, so the
# like-for-like latency comparison runs resil with that many connections.
echo
echo "in flight (mean latency x req/s) and resil at wrk's in-flight count, median of $RUNS:"
printf '%-6s %10s %10s %12s %10s %10s %14s %14s\n' conns "wrk" "resil" "resil -c N" "req/s" \
    "p50 µs" "p50 resil/wrk" "p99 resil/wrk"
for c in $CONNS; do
    inflight=$(awk -v m="${med[wrk,$c,7]}" -v r="${med[wrk,$c,4]}" -v c="$c" 'BEGIN {
        n = int(m * r / 1e6 + 0.5); print (n < 1) ? 1 : (n > c) ? c : n }')
    for run in $(seq "$RUNS"); do
        resil_closed resil-inflight "$inflight" "$c" "$run"
    done
    for col in 4 5 6; do
        med[resil-inflight,$c,$col]=$(med_of resil-inflight "$c" "$col")
    done
    awk -v c="$c" -v n="$inflight" -v wm="${med[wrk,$c,7]}" -v wr="${med[wrk,$c,4]}" \
        -v rm="${med[resil,$c,7]}" -v rr="${med[resil,$c,4]}" -v ir="${med[resil-inflight,$c,4]}" \
        -v i50="${med[resil-inflight,$c,5]}" -v i99="${med[resil-inflight,$c,6]}" \
        -v w50="${med[wrk,$c,5]}" -v w99="${med[wrk,$c,6]}" 'BEGIN {
        printf "%-6s %10.1f %10.1f %12d %10.0f %10.0f %14.3f %14.3f\n", c, wm * wr / 1e6, rm * rr / 1e6, n, ir, i50,
            i50 / w50, i99 / w99 }'
done
fi

if has open; then
echo
echo "open model: $RUNS x ${DURATION}s at each rate in OPEN_RATES, generator on CPU $GEN_CPU;"
echo "peer: oha -q RATE --latency-correction -c $OPEN_OHA_CONNS (corrected latencies only)"
echo "steal: ms the hypervisor ran something else on the two CPUs during the run (/proc/stat)"
# tool rate run achieved p99_corrected p99_uncorrected late steal_ms
open_results=$work/open.tsv
for rate in $OPEN_RATES; do
    for run in $(seq "$RUNS"); do
        before=$(steal_ms)
        json=$(gen "$RESIL" load "$url" --rate "$rate" -d "${DURATION}s" --threads 1 -o json)
        row "$open_results" --arg rate "$rate" --arg run "$run" --arg steal "$(($(steal_ms) - before))" \
            '["resil", $rate, $run, .achieved_rate, .latency.p99_us, .latency_uncorrected.p99_us, .late_sends, $steal] | @tsv' \
            <<<"$json"
        before=$(steal_ms)
        json=$(gen "$OHA" -q "$rate" -z "${DURATION}s" -c "$OPEN_OHA_CONNS" --latency-correction \
            --no-tui --output-format json "$url")
        row "$open_results" --arg rate "$rate" --arg run "$run" --arg steal "$(($(steal_ms) - before))" \
            '["oha", $rate, $run, .metrics.requests_per_sec, .metrics.latency_ms.p99*1000, "-", "-", $steal] | @tsv' \
            <<<"$json"
    done
done
echo
printf '%-6s %7s %14s %9s %16s %18s %8s %12s %10s\n' tool rate "achieved (med)" "vs rate" \
    "p99 corr. µs" "p99 uncorr. µs" "corr/unc" "late (med)" "steal ms"
for rate in $OPEN_RATES; do
    for tool in resil oha; do
        col() { awk -F'\t' -v t="$tool" -v r="$rate" -v c="$1" '$1==t && $2==r {print $c}' "$open_results" | median; }
        achieved=$(col 4)
        p99c=$(col 5)
        steal=$(col 8)
        if [ "$tool" = resil ]; then p99u=$(col 6); late=$(col 7); else p99u=-; late=-; fi
        awk -v t="$tool" -v r="$rate" -v a="$achieved" -v c="$p99c" -v u="$p99u" -v l="$late" -v s="$steal" 'BEGIN {
            ratio = (u == "-" || u == 0) ? "-" : sprintf("%.2f", c / u)
            printf "%-6s %7d %14.0f %8.2f%% %16.0f %18s %8s %12s %10s\n", t, r, a, (a / r - 1) * 100, c, u, ratio, l, s }'
    done
done
echo "targets: achieved within 0.5 % of the rate; corrected p99 <= 2 x uncorrected"
for rate in $OPEN_RATES; do
    awk -F'\t' -v r="$rate" '$1 == "resil" && $2 == r {
            n++; a = $4 / r - 1; if (a < 0) a = -a
            if (a <= 0.005 && $5 <= 2 * $6) met++ }
        END { printf "resil at %d: %d of %d runs met both\n", r, met, n }' "$open_results"
done
# An open-model target only means something with headroom: say how close the rate is to
# what this machine serves closed-model (the closed part's best wrk median).
if has closed; then
    best=0
    for c in $CONNS; do best=$(awk -v a="$best" -v b="${med[wrk,$c,4]}" 'BEGIN { print (b > a) ? b : a }'); done
    for rate in $OPEN_RATES; do
        awk -v r="$rate" -v w="$best" 'BEGIN {
            printf "%d req/s is %.2f of wrk'"'"'s closed-model median here (%.0f req/s)\n", r, r / w, w }'
    done
fi
fi

if has stall; then
echo
STALL_RATE=${STALL_RATE:-500}
echo "stall honesty: resil --rate $STALL_RATE for 10s; nginx frozen (SIGSTOP) from 2.5s to 7.5s"
gen "$RESIL" load "$url" --rate "$STALL_RATE" -d 10s --threads 1 -o json >"$work/stall.json" &
load_pid=$!
sleep 2.55   # resil starts sending ~50 ms after it starts
kill -STOP "$nginx_pid"
sleep 5
kill -CONT "$nginx_pid"
wait "$load_pid"
# Half the requests are answered at once; the other half were sent during the freeze and
# wait for its end: their latencies spread evenly over (0, 5 s]. So p75 = 2.5 s, p90 = 4 s
# (p50 sits on the edge between the halves).
jq -r '"requests \(.requests), late sends \(.late_sends)\n"
     + "p50 \(.latency.p50_us) µs; p75 \(.latency.p75_us) µs (hand-computed 2500000, \((.latency.p75_us / 2500000 - 1) * 1000 | round / 10)%); "
     + "p90 \(.latency.p90_us) µs (hand-computed 4000000, \((.latency.p90_us / 4000000 - 1) * 1000 | round / 10)%)"' "$work/stall.json"
fi

if has soak; then
echo
if [ -n "$SOAK_RATE" ]; then soak_pace=(--rate "$SOAK_RATE"); else soak_pace=(-c "$SOAK_CONNS"); fi
echo "soak: resil ${soak_pace[*]} for ${SOAK}s on CPU $GEN_CPU; RSS sampled every 10 s"
# taskset directly (not the `gen` function, which would fork a subshell): $! must be the
# resil process whose RSS is sampled.
# -vv logs the open model's pool review every 10 s (its users), shown beside the RSS.
taskset -c "$GEN_CPU" "$RESIL" -vv load "$url" "${soak_pace[@]}" -d "${SOAK}s" --threads 1 -o json \
    --out "$work/soak" >"$work/soak.json" 2>"$work/soak.log" &
soak_pid=$!
: >"$work/rss"
steal_ms >"$work/steal"
# Bounded: the run stops itself after SOAK seconds; the loop ends with it.
while kill -0 "$soak_pid" 2>/dev/null; do
    sleep 10
    awk '/^VmRSS:/ {print $2}' "/proc/$soak_pid/status" 2>/dev/null >>"$work/rss" || true
    steal_ms >>"$work/steal"
done
wait "$soak_pid"
awk 'NR==1 {first=$1} {last=$1; if ($1>max) max=$1} END {
    printf "RSS after 10 s %d KiB, at the end %d KiB, max %d KiB (end/start %.3f)\n", first, last, max, last/first }' "$work/rss"
# Per-second buckets from the timeline; whole minutes only (the last second may be short).
jq -rs --argjson soak "$SOAK" '
    [.[] | select(.type == "load_bucket")] as $b
    | ([$b[] | select(.second < 60) | .requests] | add / 60) as $first
    | ([$b[] | select(.second >= ($soak - 61) and .second < ($soak - 1)) | .requests] | add / 60) as $last
    | "first minute \($first | floor) req/s, last minute \($last | floor) req/s (last/first \($last / $first * 1000 | round / 1000))"' \
    "$work/soak/timeline.jsonl"
jq -rs '[.[] | select(.type == "load_bucket")] | group_by(.second / 60 | floor)
    | map(map(.requests) | add / length | floor) | "req/s per minute: \(join(" "))"' \
    "$work/soak/timeline.jsonl"
awk '{printf "%s%s", (NR > 1 ? " " : "RSS KiB every 10 s: "), $1} END {print ""}' "$work/rss"
# A minute whose rate dips beside a high steal lost CPU to the hypervisor, not to resil.
awk 'NR == 1 {start = $1} NR > 1 && (NR - 1) % 6 == 0 {printf "%s%d", (n++ ? " " : "steal ms per minute: "), $1 - start; start = $1}
    END {print ""}' "$work/steal"
sed 's/\x1b\[[0-9;]*m//g' "$work/soak.log" | awk '/open-model pool review/ {
    for (i = 1; i <= NF; i++) if ($i ~ /^users=/) { sub(/^users=/, "", $i); printf "%s%s", (n++ ? " " : "open-model users every 10 s: "), $i } }
    END { if (n) print "" }'
jq -r '"requests \(.requests), errors \(.errors), p99 \(.latency.p99_us) µs"
    + (if .latency_uncorrected then ", uncorrected p99 \(.latency_uncorrected.p99_us) µs, late sends \(.late_sends), dropped \(.dropped_sends // 0)"
       else "" end)' "$work/soak.json"
fi
