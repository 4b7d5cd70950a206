#!/usr/bin/env bash
# Benchmarks `resil watch` against a baseline that works like the original demo's shell
# watcher (poll `kubectl get endpoints` every 3 s, patch the Service selector), on a lab
# started for the purpose:
#
#   1. `resil lab up` in a temporary XDG_STATE_HOME, `resil deploy` (the demo's NodePort
#      moved to a free port), `resil load --rate RATE --out LOAD_DIR` running throughout;
#   2. per phase (resil, then baseline) ROUNDS times `resil chaos kill-pods --color blue
#      --force`, each time waiting (bounded) until blue is back, serving and selected again
#      (resil fails back after --stable-for 2s; the baseline fails back on its next poll);
#   3. prints, per phase, the median and p90 of the control-plane failover time — blue's
#      last ready pod or endpoint gone → Service selector switched to green, read from the
#      recorder's timeline (in the baseline phase `resil watch --observe-only` records) —
#      the recorder's own summary.json figure (→ green endpoints ready), the outage as the
#      Service saw it (blue gone → a ready endpoint again, by a switch or by blue's
#      replacement: a poller that is too slow to switch never gets a failover figure), the
#      median client-observed downtime per episode from the load's summary.json, and the
#      ratio baseline / resil.
#
#   scripts/bench-watch.sh                          # cargo build --release first
#   RESIL=target/debug/resil ROUNDS=5 scripts/bench-watch.sh
#
# Knobs: ROUNDS (30), BASELINE_ROUNDS (ROUNDS), RATE (200 req/s), POLL (3 s, baseline).
# Targets (issue 7): median failover ≤ 50 ms, median downtime ≤ 300 ms.
# Needs bash, jq, kubectl. Touches no real kubeconfig or state: HOME, KUBECONFIG and the
# XDG directories point into a temporary directory removed at the end; the lab is stopped.
set -euo pipefail

ROUNDS=${ROUNDS:-30}
BASELINE_ROUNDS=${BASELINE_ROUNDS:-$ROUNDS}
RATE=${RATE:-200}
POLL=${POLL:-3}
NS=distributed-resilience
root="$(cd "$(dirname "$0")/.." && pwd)"

say() { printf '%s\n' "$*" >&2; }
for tool in jq kubectl; do
  command -v "$tool" >/dev/null || { say "$tool is required"; exit 2; }
done
if [[ -z "${RESIL:-}" ]]; then
  say "building resil (release)"
  (cd "$root" && cargo build --release --quiet)
  RESIL="${CARGO_TARGET_DIR:-$root/target}/release/resil"
fi
[[ -x "$RESIL" ]] || { say "no resil binary at $RESIL"; exit 2; }

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$RESIL" lab down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export HOME="$work/home" KUBECONFIG="$work/kubeconfig" XDG_STATE_HOME="$work/state" \
  XDG_CONFIG_HOME="$work/config" RUST_LOG=off NO_COLOR=1
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
"$RESIL" deploy --manifests "$work/manifests" --timeout 120s >/dev/null 2>"$work/deploy.err" \
  || { cat "$work/deploy.err" >&2; exit 2; }

k() { kubectl -n "$NS" "$@"; }
selected() { k get service web -o jsonpath='{.spec.selector.version}'; }
endpoints() { k get endpoints web -o jsonpath='{.subsets[*].addresses[*].ip}'; }
# Names of the ready, not terminating pods of colour $1, space-separated.
ready_pods() {
  k get pods -l "app=web,version=$1" -o json | jq -r '[.items[]
    | select(.metadata.deletionTimestamp == null)
    | select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))
    | .metadata.name] | join(" ")'
}
# Polls "$@" every 0.2 s for at most $1 seconds.
wait_until() {
  local secs=$1
  shift
  local end=$((SECONDS + secs))
  until "$@"; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}
# Blue is serving again through pods other than the killed ones.
blue_back() {
  local killed=$1 now
  now="$(ready_pods blue)"
  [[ -n "$now" && "$now" != *"$killed"* ]] || return 1
  [[ "$(selected)" == blue && -n "$(endpoints)" ]]
}

# The old shell watcher: every POLL seconds, an empty Endpoints flips the selector to the
# other colour if it has a ready pod; a ready blue brings it back.
baseline_watcher() {
  local deadline=$((SECONDS + $1)) sel other
  while ((SECONDS < deadline)); do
    sel="$(selected)"
    other=blue
    [[ "$sel" == blue ]] && other=green
    if [[ -z "$(endpoints)" && -n "$(ready_pods "$other")" ]]; then
      k patch service web -p "{\"spec\":{\"selector\":{\"version\":\"$other\"}}}" >/dev/null
    elif [[ "$sel" == green && -n "$(ready_pods blue)" ]]; then
      k patch service web -p '{"spec":{"selector":{"version":"blue"}}}' >/dev/null
    fi
    sleep "$POLL"
  done
}

# The rounds of one phase; $1 names it, $2 is the round count.
run_phase() {
  local phase=$1 rounds=$2 budget=$(($2 * 100 + 60))
  local wdir="$work/$phase-watch" ldir="$work/$phase-load" log="$work/$phase-watch.log"
  local watch_pid baseline_pid="" load_pid killed
  if [[ "$phase" == resil ]]; then
    "$RESIL" watch --out "$wdir" --stable-for 2s >"$work/$phase-watch.out" 2>"$log" &
    watch_pid=$!
    pids+=("$watch_pid")
    wait_until 30 grep -q "holding lease" "$log" || { cat "$log" >&2; exit 2; }
  else
    "$RESIL" watch --observe-only --out "$wdir" >"$work/$phase-watch.out" 2>"$log" &
    watch_pid=$!
    baseline_watcher "$budget" &
    baseline_pid=$!
    pids+=("$watch_pid" "$baseline_pid")
  fi
  "$RESIL" load "http://127.0.0.1:$port/" --rate "$RATE" --duration "${budget}s" \
    --out "$ldir" >/dev/null 2>"$work/$phase-load.log" &
  load_pid=$!
  pids+=("$load_pid")
  sleep 2
  for i in $(seq 1 "$rounds"); do
    killed="$(ready_pods blue)"
    killed="${killed%% *}"
    "$RESIL" chaos kill-pods --color blue --force >/dev/null 2>>"$work/chaos.log" \
      || { cat "$work/chaos.log" >&2; exit 2; }
    wait_until 90 blue_back "${killed:-none}" \
      || { say "$phase round $i: blue did not come back within 90 s"; exit 2; }
    say "$phase: round $i/$rounds done"
    sleep 1
  done
  # SIGTERM: background jobs of a script ignore SIGINT; both stop cleanly on TERM.
  kill -TERM "$load_pid" "$watch_pid" 2>/dev/null || true
  wait "$load_pid" "$watch_pid" 2>/dev/null || true
  [[ -z "$baseline_pid" ]] || kill "$baseline_pid" 2>/dev/null || true
}

# Per switch to green: ms from blue's first loss signal after it last served.
failover_ms() {
  jq -s -r '
    def ms: (.[0:19] + "Z" | fromdateiso8601) * 1000 + (.[20:23] | tonumber);
    [ .[] | select(.source == "watch") | .t = (.ts | ms) ] as $ev
    | $ev[] | select(.type == "selector_switched" and .to == "green") | .t as $T
    | ([ $ev[] | select(.type == "endpoints_changed" and (.ready.blue // 0) > 0 and .t < $T)
         | .t ] | max) as $serving
    | ([ $ev[] | select($serving != null and .t >= $serving and .t <= $T)
         | select(((.type == "pod_deleted" or .type == "pod_unready") and .color == "blue")
                  or (.type == "endpoints_changed" and (.ready.blue // 0) == 0))
         | .t ] | min) as $gone
    | select($gone != null) | $T - $gone' "$1/timeline.jsonl"
}
# Per kill: ms from blue's loss to the Service having a ready endpoint again, whichever
# way that came (a switch to green, or blue replaced in place when no switch happened).
outage_ms() {
  jq -s -r '
    def ms: (.[0:19] + "Z" | fromdateiso8601) * 1000 + (.[20:23] | tonumber);
    [ .[] | select(.source == "watch") | .t = (.ts | ms) ]
    | reduce .[] as $e ({gone: null, out: []};
        if $e.type == "endpoints_changed" then
          (([$e.ready[]] | add) // 0) as $n
          | if $n > 0 and .gone != null then .out += [$e.t - .gone] | .gone = null
            elif $n == 0 and .gone == null then .gone = $e.t
            else . end
        elif ($e.type == "pod_deleted" or $e.type == "pod_unready") and $e.color == "blue"
             and .gone == null then .gone = $e.t
        else . end)
    | .out[]' "$1/timeline.jsonl"
}
summary_ms() {
  jq -r '.watch.failovers[]? | select(.direction == "failover") | .duration_ms' "$1/summary.json"
}
downtime_ms() {
  jq -r '.load.downtime[]? | .duration_ms // empty' "$1/summary.json"
}
# "median p90 count" of the numbers on stdin ("- - 0" when there are none).
stats() {
  sort -n | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "- - 0"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    p = int(NR * 0.9); if (p < NR * 0.9) p++; if (p < 1) p = 1
    print m, v[p], NR }'
}

run_phase resil "$ROUNDS"
run_phase baseline "$BASELINE_ROUNDS"

read -r r_med r_p90 r_n < <(failover_ms "$work/resil-watch" | stats)
read -r b_med b_p90 b_n < <(failover_ms "$work/baseline-watch" | stats)
read -r rs_med rs_p90 _ < <(summary_ms "$work/resil-watch" | stats)
read -r bs_med bs_p90 _ < <(summary_ms "$work/baseline-watch" | stats)
read -r ro_med ro_p90 ro_n < <(outage_ms "$work/resil-watch" | stats)
read -r bo_med bo_p90 bo_n < <(outage_ms "$work/baseline-watch" | stats)
read -r rd_med rd_p90 rd_n < <(downtime_ms "$work/resil-load" | stats)
read -r bd_med bd_p90 bd_n < <(downtime_ms "$work/baseline-load" | stats)
total_ms() { jq -r '.load.downtime_total_ms // 0' "$1/summary.json"; }
r_total=$(total_ms "$work/resil-load")
b_total=$(total_ms "$work/baseline-load")
r_per_kill=$((r_total / ROUNDS))
b_per_kill=$((b_total / BASELINE_ROUNDS))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.1f\n", a / b }'; }

printf '\n%-44s %14s %14s %8s\n' "figure (ms)" "resil" "baseline" "ratio"
printf '%-44s %14s %14s %8s\n' "kills" "$ROUNDS" "$BASELINE_ROUNDS" ""
printf '%-44s %14s %14s %8s\n' "failovers (switches to green)" "$r_n" "$b_n" ""
printf '%-44s %14s %14s %8s\n' "failover median (blue gone → selector)" "$r_med" "$b_med" "$(ratio "$b_med" "$r_med")"
printf '%-44s %14s %14s %8s\n' "failover p90" "$r_p90" "$b_p90" "$(ratio "$b_p90" "$r_p90")"
printf '%-44s %14s %14s %8s\n' "recorder median (→ green endpoints ready)" "$rs_med" "$bs_med" "$(ratio "$bs_med" "$rs_med")"
printf '%-44s %14s %14s %8s\n' "recorder p90" "$rs_p90" "$bs_p90" ""
printf '%-44s %14s %14s %8s\n' "outages seen (blue gone → endpoints again)" "$ro_n" "$bo_n" ""
printf '%-44s %14s %14s %8s\n' "outage median" "$ro_med" "$bo_med" "$(ratio "$bo_med" "$ro_med")"
printf '%-44s %14s %14s %8s\n' "outage p90" "$ro_p90" "$bo_p90" "$(ratio "$bo_p90" "$ro_p90")"
printf '%-44s %14s %14s %8s\n' "downtime episodes" "$rd_n" "$bd_n" ""
printf '%-44s %14s %14s %8s\n' "downtime median per episode" "$rd_med" "$bd_med" "$(ratio "$bd_med" "$rd_med")"
printf '%-44s %14s %14s %8s\n' "downtime p90" "$rd_p90" "$bd_p90" ""
printf '%-44s %14s %14s %8s\n' "downtime per kill (all episodes summed)" "$r_per_kill" "$b_per_kill" "$(ratio "$b_per_kill" "$r_per_kill")"
echo "targets: failover median ≤ 50 ms, downtime median ≤ 300 ms (load at $RATE req/s)"
