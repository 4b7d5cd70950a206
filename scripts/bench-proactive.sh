#!/usr/bin/env bash
# Predictive vs reactive scaling on the lab, on the same repeated-ramp workload:
#   reactive   — the demo's HPA alone (CPU, target 50 % of the 100m request);
#   predictive — the same HPA with `resil autoscale --predictive` raising its minReplicas
#                ahead of the forecast (at most MAX_REPLICAS).
# Each mode gets a fresh lab (its own XDG_STATE_HOME, HOME and KUBECONFIG under a temp
# directory), `resil deploy --replicas 1`, `resil watch --observe-only --out R` recording
# pods and HPA, and `resil load --ramp ... --path /work?ms=WORK_MS --out R`: RAMPS ramps of
# REST s at BASE req/s, RISE s up to PEAK, HOLD s at PEAK, FALL s back down. Prints per mode:
# seconds whose p99 is over SLO_MS and seconds under-provisioned (more requests than the
# ready blue pods serve at their CPU limit), both from the timeline; errors, blue
# pod-seconds, mean scaling latency (HPA desired raised → pods Ready) and cost per 1M
# requests (`resil report -o json`); then the ratios predictive/reactive.
#
# Each pod's work is held to its CPU limit (500m in the manifests: the lab's kubelet
# passes `resources.limits.cpu` to the demo app, which throttles like CFS), so one pod
# serves at most LIMIT_M / WORK_MS req/s and a ramp above that needs more pods in time.
# The workload is a flash ramp: RISE is shorter than the HPA's reaction (metrics window
# plus HPA_SYNC), and REST long enough for the HPA to scale back down to one pod (60 s
# stabilisation, then halving every 15 s). The first ramp teaches the seasonal model, so
# it is not anticipated; every ramp counts in the figures. Each request opens its own
# connection (`--no-keepalive`), like many independent clients: a keep-alive connection
# opened before a scale-up stays on its old pod (the Service balances connections, not
# requests), so new pods would take no load from it and the reactive run would look
# worse than its pod count makes it.
#
#   scripts/bench-proactive.sh               # target/debug/resil (cargo build first)
#   RESIL=target/release/resil RAMPS=4 PEAK=30 scripts/bench-proactive.sh
#
# Bounded: each step runs under `timeout`; about 2 × (RAMPS × 160 s + 40 s) with the
# defaults. Needs bash, jq, curl, timeout. The Service's NodePort is NODE_PORT (default: a
# free port in 30000-32767), so another lab on 30080 is left alone. Keeps the results
# directories when KEEP=1 (prints where).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
resil="${RESIL:-${CARGO_TARGET_DIR:-$root/target}/debug/resil}"
WORK_MS=${WORK_MS:-5}           # CPU per request on /work
LIMIT_M=${LIMIT_M:-500}         # the pods' CPU limit in millicores (manifests)
BASE=${BASE:-4}                 # req/s between ramps: one pod, at the HPA's target
PEAK=${PEAK:-150}               # req/s at the top of a ramp: 1.5 pods' limit
RAMPS=${RAMPS:-3}
REST=${REST:-140}               # long enough for the HPA to scale back down
RISE=${RISE:-5}
HOLD=${HOLD:-30}
FALL=${FALL:-10}
MAX_REPLICAS=${MAX_REPLICAS:-3} # the predictive autoscaler's cap
SLO_MS=${SLO_MS:-100}           # p99 SLO per second
HPA_SYNC=${HPA_SYNC:-15s}       # the upstream HPA's default sync period
LOOK_AHEAD=${LOOK_AHEAD:-20s}   # the HPA's sync period plus a pod's start
HEADROOM=${HEADROOM:-20%}
SAMPLE_STEP=${SAMPLE_STEP:-5s}
SEASONAL=${SEASONAL:-1}         # 1: tell the autoscaler the ramp period (Holt-Winters)
MODES=${MODES:-"reactive predictive"}

say() { printf '%s\n' "$*" >&2; }
[[ -x "$resil" ]] || { say "no resil binary at $resil: run cargo build or set RESIL"; exit 2; }
for tool in jq curl timeout; do
  command -v "$tool" >/dev/null || { say "$tool is required"; exit 2; }
done

period=$((REST + RISE + HOLD + FALL))
total=$((RAMPS * period))
ramp=""
for _ in $(seq 1 "$RAMPS"); do
  ramp+="${REST}s:${BASE},${RISE}s:${PEAK},${HOLD}s:${PEAK},${FALL}s:${BASE},"
done
ramp=${ramp%,}
# One pod serves this many req/s at the HPA's target: 50 % of 100 mCPU = 50 ms of CPU per
# second, WORK_MS each.
capacity=$(awk -v w="$WORK_MS" 'BEGIN { printf "%.2f", 50 / w }')
# One pod serves at most this many req/s: its CPU limit, WORK_MS each.
saturation=$(awk -v w="$WORK_MS" -v l="$LIMIT_M" 'BEGIN { printf "%.2f", l / w }')

free_node_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((30000 + RANDOM % 2768))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  say "no free port in 30000-32767"
  exit 2
}
NODE_PORT=${NODE_PORT:-$(free_node_port)}

work="$(mktemp -d)"
state=""
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n "$state" ]]; then
    timeout 60 "$resil" lab --state-dir "$state" down >/dev/null 2>&1 || true
  fi
  if [[ ${KEEP:-0} == 1 ]]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The built-in manifests with the Service on NODE_PORT.
cp -r "$root/manifests" "$work/manifests"
sed -i "s/nodePort: 30080/nodePort: $NODE_PORT/" "$work/manifests/20-service.yaml"

# Stops a background process with SIGINT (it writes its summary) and waits, bounded.
stop() {
  local pid=$1
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

run_mode() {
  local mode=$1 dir="$work/$1"
  mkdir -p "$dir/home"
  export XDG_STATE_HOME="$dir/xdg" HOME="$dir/home" KUBECONFIG="$dir/kubeconfig"
  state="$dir/xdg/resil/lab"
  say "[$mode] lab up, deploy (NodePort $NODE_PORT)"
  timeout 120 "$resil" lab --state-dir "$state" up --hpa-sync-period "$HPA_SYNC" \
    >"$dir/lab.log" 2>&1 || { cat "$dir/lab.log" >&2; exit 2; }
  timeout 180 "$resil" deploy --manifests "$work/manifests" --replicas 1 \
    >"$dir/deploy.log" 2>&1 || { cat "$dir/deploy.log" >&2; exit 2; }
  local out="$dir/results"
  mkdir -p "$out"
  "$resil" watch --observe-only --out "$out" >"$dir/watch.log" 2>&1 &
  local watch_pid=$!
  pids=("$watch_pid")
  local auto_pid=""
  if [[ $mode == predictive ]]; then
    local seasonal=()
    [[ $SEASONAL == 1 ]] && seasonal=(--period "${period}s")
    "$resil" autoscale --predictive --from "$out" --capacity "$capacity" \
      --headroom "$HEADROOM" --look-ahead "$LOOK_AHEAD" --sample-step "$SAMPLE_STEP" \
      --max-replicas "$MAX_REPLICAS" \
      --interval 5s "${seasonal[@]}" --duration "$((total + 30))s" \
      >"$dir/autoscale.log" 2>&1 &
    auto_pid=$!
    pids+=("$auto_pid")
  fi
  sleep 3
  say "[$mode] load: $RAMPS ramps $BASE→$PEAK req/s on /work?ms=$WORK_MS, ${total}s"
  timeout $((total + 60)) "$resil" load "http://127.0.0.1:$NODE_PORT" --ramp "$ramp" \
    --duration "${total}s" --path "/work?ms=$WORK_MS" --timeout 5s --no-keepalive --out "$out" \
    -o json >"$dir/load.json" 2>"$dir/load.log" || true
  [[ -n $auto_pid ]] && stop "$auto_pid"
  stop "$watch_pid"
  pids=()
  # No SLOs are judged here, so the report exits 0; its figures are what we want.
  timeout 60 "$resil" report "$out" -o json >"$dir/report.json" 2>"$dir/report.log" \
    || { cat "$dir/report.log" >&2; exit 2; }
  timeout 60 "$resil" lab --state-dir "$state" down >/dev/null 2>&1 || true
  state=""
  figures "$mode" "$out" "$dir/report.json" >"$dir/figures"
  cat "$dir/figures"
}

# mode over_slo_s under_s errors pod_s scaling_ms cost_per_1m requests decisions
figures() {
  local mode=$1 out=$2 report=$3
  local over under
  over=$(jq -s --argjson slo "$((SLO_MS * 1000))" \
    '[.[] | select(.type == "load_bucket" and .requests > 0 and .p99_us > $slo)] | length' \
    "$out/timeline.jsonl")
  # Replays the timeline in time order, keeping web-blue's ready count.
  under=$(jq -s --argjson cap "$saturation" '
    sort_by(.ts)
    | reduce .[] as $e ({ready: 0, under: 0};
        if $e.type == "deployment_replicas" and $e.deployment == "web-blue" then .ready = $e.ready
        elif $e.type == "load_bucket" and $e.requests > $cap * .ready then .under += 1
        else . end)
    | .under' "$out/timeline.jsonl")
  jq -r --arg mode "$mode" --argjson over "$over" --argjson under "$under" '
    [ $mode, $over, $under,
      (.load.errors // 0),
      ((.replica_seconds.blue // 0) * 10 | round / 10),
      ([.scaling[] | select(.color == "blue") | .latency_ms // empty]
         | if length > 0 then (add / length | round) else "-" end),
      (.cost.total.cost_per_1m // null | if . == null then "-" else (. * 10000 | round / 10000) end),
      (.load.requests // 0),
      ([.decisions[] | select(.controller == "autoscale")] | length)
    ] | @tsv' "$report"
}

for mode in $MODES; do run_mode "$mode"; done

say ""
printf 'SLO p99 < %s ms; %s ramps %s→%s req/s, /work?ms=%s, HPA sync %s, look-ahead %s\n' \
  "$SLO_MS" "$RAMPS" "$BASE" "$PEAK" "$WORK_MS" "$HPA_SYNC" "$LOOK_AHEAD"
printf '%-11s %12s %13s %7s %11s %17s %9s %9s %10s\n' mode "p99>SLO (s)" \
  "under-prov (s)" errors "blue pod-s" "scaling lat (ms)" "\$ per 1M" requests decisions
for mode in $MODES; do
  IFS=$'\t' read -r m over under errors pods scaling cost requests decisions \
    <"$work/$mode/figures"
  printf '%-11s %12s %13s %7s %11s %17s %9s %9s %10s\n' "$m" "$over" "$under" "$errors" \
    "$pods" "$scaling" "$cost" "$requests" "$decisions"
done
if [[ -f $work/reactive/figures && -f $work/predictive/figures ]]; then
  ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
      if (b == "-" || a == "-") { print "-"; exit }
      if (b + 0 == 0) { print (a + 0 == 0 ? "1.00 (both 0)" : "inf"); exit }
      printf "%.2f", a / b }'
  }
  IFS=$'\t' read -r _ r_over r_under r_err r_pods r_scal r_cost _ _ <"$work/reactive/figures"
  IFS=$'\t' read -r _ p_over p_under p_err p_pods p_scal p_cost _ _ <"$work/predictive/figures"
  printf 'predictive/reactive: p99>SLO time %s, under-provisioned time %s, errors %s, pod-seconds %s, scaling latency %s, cost per request %s\n' \
    "$(ratio "$p_over" "$r_over")" "$(ratio "$p_under" "$r_under")" "$(ratio "$p_err" "$r_err")" \
    "$(ratio "$p_pods" "$r_pods")" "$(ratio "$p_scal" "$r_scal")" \
    "$(ratio "$p_cost" "$r_cost")"
  echo "targets: p99>SLO time <= 0.50 at pod-seconds <= 1.15"
fi
