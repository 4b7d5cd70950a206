#!/usr/bin/env bash
# Client-observed RTO of a region outage behind `resil gateway`: two named labs
# (region-a, region-b) with the demo deployed, the gateway in front (health checks every
# INTERVAL, failover after 3 failed checks, fail back after 2 s stable), `resil load`
# through the gateway throughout, and ROUNDS times `resil chaos region-outage` of
# region-a for OUTAGE. Per outage: RTO = the fault's injection (the chaos journal's
# injected_at) → the end of the last client downtime episode that began during it;
# requests lost; then the median and max over the rounds against the target.
#
#   scripts/bench-region-failover.sh                 # uses target/release/resil
#   RESIL=target/debug/resil ROUNDS=3 scripts/bench-region-failover.sh
#
# Knobs: ROUNDS (10), OUTAGE (5s), GAP (seconds between outages, 6: longer than the
# fail-back window), RATE (200 req/s), INTERVAL (100ms).
# Target (the multi-region issue): median RTO ≤ 1 s over 10 region outages.
# Touches no real kubeconfig or state: HOME, KUBECONFIG and the state directories point
# into a temporary directory removed at the end; both labs are stopped whatever happens.
# Loopback only; every wait is bounded. Needs bash, python3, curl.
set -euo pipefail

ROUNDS=${ROUNDS:-10}
OUTAGE=${OUTAGE:-5s}
GAP=${GAP:-6}
RATE=${RATE:-200}
INTERVAL=${INTERVAL:-100ms}
root="$(cd "$(dirname "$0")/.." && pwd)"
resil="${RESIL:-${CARGO_TARGET_DIR:-$root/target}/release/resil}"
[[ -x "$resil" ]] || { echo "no resil binary at $resil; cargo build --release or set RESIL" >&2; exit 2; }
for tool in python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done

work="$(mktemp -d)"
export HOME="$work/home" KUBECONFIG="$work/kubeconfig" XDG_STATE_HOME="$work/state"
mkdir -p "$HOME"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$resil" chaos revert --state-dir "$work/chaos" >/dev/null 2>&1 || true
  "$resil" lab down --all >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '%s\n' "$*" >&2; }

say "starting region-a and region-b, deploying the demo to each"
"$resil" lab up --name region-a >/dev/null 2>"$work/up-a.err" || { cat "$work/up-a.err" >&2; exit 2; }
"$resil" lab up --name region-b >/dev/null 2>"$work/up-b.err" || { cat "$work/up-b.err" >&2; exit 2; }
"$resil" --context resil-region-a deploy --node-port 30080 >/dev/null 2>&1
"$resil" --context resil-region-b deploy --node-port 31080 >/dev/null 2>&1

gw_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$resil" gateway --region a=http://127.0.0.1:30080 --region b=http://127.0.0.1:31080 \
  --listen "127.0.0.1:$gw_port" --interval "$INTERVAL" --fail-after 3 --failback-after 2s \
  --timeline "$work/gateway.jsonl" >"$work/gw.out" 2>"$work/gw.err" &
pids+=($!)
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$gw_port/" 2>/dev/null && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$gw_port/" || { say "the gateway does not answer:"; cat "$work/gw.err" >&2; exit 2; }

outage_s=$(python3 -c "import re,sys; m=re.fullmatch(r'(\d+)(ms|s)', sys.argv[1]); print(int(m[1])/(1000 if m[2]=='ms' else 1))" "$OUTAGE")
total=$(python3 -c "print(int($ROUNDS * ($outage_s + $GAP) + $GAP + 5))")
say "load: $RATE req/s through the gateway for ${total}s; $ROUNDS outages of region-a for $OUTAGE"
"$resil" load --rate "$RATE" -d "${total}s" -o json "http://127.0.0.1:$gw_port/" \
  >"$work/load.json" 2>"$work/load.err" &
load_pid=$!
pids+=("$load_pid")
sleep "$GAP"
for r in $(seq "$ROUNDS"); do
  say "round $r/$ROUNDS: region-a down for $OUTAGE"
  "$resil" --context resil-region-a chaos region-outage --duration "$OUTAGE" \
    --state-dir "$work/chaos" >/dev/null 2>"$work/chaos-$r.err" \
    || { say "region-outage failed:"; cat "$work/chaos-$r.err" >&2; exit 2; }
  sleep "$GAP"
done
wait "$load_pid" || { say "load failed:"; tail -5 "$work/load.err" >&2; exit 2; }

python3 - "$work" "$outage_s" <<'EOF'
import json, statistics, sys
from datetime import datetime
work, outage_s = sys.argv[1], float(sys.argv[2])
def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
faults = sorted(ts(e["injected_at"]) for e in json.load(open(f"{work}/chaos/journal.json"))["entries"])
load = json.load(open(f"{work}/load.json"))
episodes = [(ts(e["started_at"]), ts(e["ended_at"]) if e.get("ended_at") else None, e["failed_requests"])
            for e in load["downtime"]]
rtos, lost = [], []
for t in faults:
    during = [e for e in episodes if t <= e[0] < t + outage_s]
    if not during:
        rtos.append(0.0); lost.append(0); continue
    ends = [e[1] for e in during]
    rtos.append(float("inf") if None in ends else max(ends) - t)
    lost.append(sum(e[2] for e in during))
print(f"{'outage':>6} {'RTO s':>7} {'lost':>6}")
for i, (r, l) in enumerate(zip(rtos, lost), 1):
    print(f"{i:>6} {r:>7.3f} {l:>6}")
med = statistics.median(rtos)
print(f"median RTO {med:.3f} s, max {max(rtos):.3f} s over {len(rtos)} region outages; "
      f"{med:.2f} of the 1 s target; {sum(lost)} of {load['requests']} requests lost "
      f"({load['errors']} errors in all)")
EOF
