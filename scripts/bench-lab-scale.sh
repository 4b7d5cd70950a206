#!/usr/bin/env bash
# The multi-node lab at scale, against the targets of its issue, printed as figure / target
# ratios (below 1.00 meets the target):
#   1. PODS demo pods (default 1000) over NODES nodes (default 10) all available, from the
#      apply of one Deployment;                                    target 10 s
#   2. proportional set size (PSS) of the lab and every pod process; target 2 GiB
#   3. `kubectl get pods -A` with those pods, median of 5;          target 100 ms
#   4. p99 of a write (PATCH of a ConfigMap, curl, 200 samples) with WATCHES (default 100)
#      watches open (from one client process), against the same write with none in the
#      same run;                                                   target +5 ms
#
#   scripts/bench-lab-scale.sh                       # uses target/release/resil
#   RESIL=target/debug/resil PODS=200 NODES=4 scripts/bench-lab-scale.sh
#
# Needs bash, curl, kubectl, python3. Loopback only; every wait is bounded (BUDGET_S,
# default 300 s); HOME and KUBECONFIG point into a temporary directory removed at the end,
# and the lab is stopped with `lab down` whatever happens.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
resil="${RESIL:-${CARGO_TARGET_DIR:-$root/target}/release/resil}"
pods="${PODS:-1000}"
nodes="${NODES:-10}"
watches="${WATCHES:-100}"
budget="${BUDGET_S:-300}"
[[ -x "$resil" ]] || { echo "no resil binary at $resil; cargo build --release or set RESIL" >&2; exit 2; }
for tool in curl kubectl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done

work="$(mktemp -d)"
state="$work/state"
watchers=()
cleanup() {
  for p in "${watchers[@]}"; do kill "$p" 2>/dev/null || true; done
  "$resil" lab --state-dir "$state" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export HOME="$work/home" KUBECONFIG="$work/kubeconfig"
mkdir -p "$HOME"

per_node=$(( pods / nodes + 20 ))
"$resil" lab --state-dir "$state" up --nodes "$nodes" --max-pods "$per_node" >/dev/null 2>"$work/up.err" \
  || { cat "$work/up.err" >&2; exit 2; }
addr=$(sed -n 's/.*"address": *"\([^"]*\)".*/\1/p' "$state/lab.json")
api() { curl -sf --cacert "$state/ca.crt" -H "Authorization: Bearer $(cat "$state/token")" "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

# 1. Pods to available.
start=$(now_ms)
kubectl apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: scale}
spec:
  replicas: $pods
  selector: {matchLabels: {app: scale}}
  template:
    metadata: {labels: {app: scale}}
    spec:
      containers:
      - name: web
        image: resil-demo:1
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /readyz, port: 8080}, periodSeconds: 1}
EOF
available=0
deadline=$(( $(date +%s) + budget ))
while (( $(date +%s) < deadline )); do
  available=$(kubectl get deploy scale -o jsonpath='{.status.availableReplicas}' 2>/dev/null || echo 0)
  [[ "${available:-0}" -ge "$pods" ]] && break
  sleep 0.2
done
ready_ms=$(( $(now_ms) - start ))
[[ "${available:-0}" -ge "$pods" ]] || { echo "only ${available:-0}/$pods available after ${budget}s" >&2; exit 1; }

# 2. PSS of the lab and its pods (pods are the lab's children).
lab_pid=$(cat "$state/lab.pid")
pss_kib=$(python3 - "$lab_pid" <<'PY'
import os, sys
root = int(sys.argv[1])
children = {}
for d in os.listdir('/proc'):
    if d.isdigit():
        try:
            ppid = int(open(f'/proc/{d}/stat').read().rsplit(')', 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(d))
todo, total = [root], 0
while todo:
    pid = todo.pop()
    todo += children.get(pid, [])
    try:
        for line in open(f'/proc/{pid}/smaps_rollup'):
            if line.startswith('Pss:'):
                total += int(line.split()[1])
    except OSError:
        pass
print(total)
PY
)

# 3. kubectl get pods -A, median of 5 (after one warm-up for kubectl's discovery cache).
kubectl get pods -A >/dev/null
gets=()
for _ in 1 2 3 4 5; do
  s=$(date +%s%N); kubectl get pods -A >/dev/null; e=$(date +%s%N)
  gets+=($(( (e - s) / 1000000 )))
done
get_ms=$(printf '%s\n' "${gets[@]}" | sort -n | sed -n 3p)

# 4. Write p99 without and with watches.
kubectl create configmap probe --from-literal=n=0 >/dev/null
write_p99() {
  local samples=()
  for i in $(seq 1 200); do
    local t
    t=$(api -o /dev/null -w '%{time_total}' -X PATCH \
      -H 'Content-Type: application/merge-patch+json' \
      -d "{\"data\":{\"n\":\"$i\"}}" "https://$addr/api/v1/namespaces/default/configmaps/probe")
    samples+=("$t")
  done
  printf '%s\n' "${samples[@]}" | sort -n | sed -n 198p
}
quiet=$(write_p99)
# The watches come from one client process (curl's parallel transfers), as an informer's
# do from one controller: the figure is the server's fan-out, not a hundred processes
# waking on two cores.
urls=()
for i in $(seq 1 "$watches"); do
  urls+=(-o /dev/null "https://$addr/api/v1/configmaps?watch=1&w=$i")
done
api -N -Z --parallel-immediate --parallel-max "$watches" --max-time "$budget" "${urls[@]}" >/dev/null 2>&1 &
watchers+=($!)
sleep 1
open_watches=$(ss -Htn state established "( dport = :${addr##*:} )" | wc -l)
(( open_watches >= watches )) || { echo "only $open_watches of $watches watches open" >&2; exit 1; }
busy=$(write_p99)
added_ms=$(python3 -c "print(f'{max(0.0, ($busy - $quiet) * 1000):.2f}')")

echo "pods available:       ${ready_ms} ms for $pods pods on $nodes nodes   ratio to 10 s:   $(ratio "$ready_ms" 10000)"
echo "lab + pods PSS:       $(( pss_kib / 1024 )) MiB                      ratio to 2 GiB:  $(ratio "$pss_kib" 2097152)"
echo "kubectl get pods -A:  ${get_ms} ms (median of 5)               ratio to 100 ms: $(ratio "$get_ms" 100)"
echo "write p99:            $(python3 -c "print(f'{$quiet*1000:.2f}')") ms quiet, $(python3 -c "print(f'{$busy*1000:.2f}')") ms with $watches watches: +${added_ms} ms   ratio to 5 ms: $(ratio "$added_ms" 5)"
