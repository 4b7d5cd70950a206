#!/usr/bin/env bash
# What `resil gateway` adds to a request: the same open-model load (RATE req/s for
# DURATION) straight at a region's demo app and through the gateway in front of it — and,
# where nginx is installed, through nginx as a reverse proxy in front of it (the peer: an
# upstream with pooled keep-alive connections, as the gateway's) — alternated ROUNDS times
# in one run so all see the same machine, then the medians of each round's p50 and p99,
# what each proxy adds (proxy − direct) and the gateway's cost over nginx's:
#
#   scripts/bench-gateway.sh                          # uses target/release/resil
#   RESIL=target/debug/resil RATE=2000 ROUNDS=3 scripts/bench-gateway.sh
#
# Knobs: RATE (10000 req/s), DURATION (10s per leg), ROUNDS (3), CONNECTIONS (the load's
# --max-connections, 64). Target (the multi-region issue): the gateway adds ≤ 100 µs to
# the p50 at 10k req/s.
# Two demo apps (regions a and b) and the gateway run on loopback for the purpose and are
# stopped at the end; health checks every 100 ms, as in the failover figures.
# Needs bash, python3; nginx (Debian's nginx-light) for the peer leg, skipped without it.
set -euo pipefail

RATE=${RATE:-10000}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
root="$(cd "$(dirname "$0")/.." && pwd)"
resil="${RESIL:-${CARGO_TARGET_DIR:-$root/target}/release/resil}"
[[ -x "$resil" ]] || { echo "no resil binary at $resil; cargo build --release or set RESIL" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 2; }

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Starts `resil ARGS`, waits (bounded) for its `listening on ADDR` line, prints ADDR.
start() {
  local name=$1; shift
  "$resil" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 100); do
    local addr
    addr=$(sed -n 's/.*listening on \(http:\/\/\)\{0,1\}\([0-9.:]*\).*/\2/p' "$work/$name.out" "$work/$name.err" | head -1)
    [[ -n "$addr" ]] && { echo "$addr"; return; }
    sleep 0.1
  done
  echo "$name did not start:" >&2; cat "$work/$name.err" >&2; exit 2
}

a=$(start a demo-app --bind 127.0.0.1 --port 0 --region a --color blue)
b=$(start b demo-app --bind 127.0.0.1 --port 0 --region b --color green)
gw_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$resil" gateway --region "a=http://$a" --region "b=http://$b" \
  --listen "127.0.0.1:$gw_port" --interval 100ms >"$work/gw.out" 2>"$work/gw.err" &
pids+=($!)
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$gw_port/" 2>/dev/null && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$gw_port/" || { echo "the gateway did not start:" >&2; cat "$work/gw.err" >&2; exit 2; }

# The peer: nginx in front of the same demo app, its worker count the machine's cores.
nginx_port=""
if command -v nginx >/dev/null; then
  nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<CONF
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream region_a { server $a; keepalive 128; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://region_a;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" >"$work/nginx.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$nginx_port/" 2>/dev/null && break
    sleep 0.1
  done
  curl -sf -o /dev/null "http://127.0.0.1:$nginx_port/" \
    || { echo "nginx did not start:" >&2; cat "$work/nginx.out" "$work/nginx/error.log" >&2; exit 2; }
else
  echo "nginx not installed (apt-get install nginx-light): no peer leg" >&2
fi

leg() { # leg NAME URL ROUND
  "$resil" load --rate "$RATE" -d "$DURATION" --max-connections "$CONNECTIONS" -o json "$2" \
    >"$work/$1-$3.json" 2>"$work/$1-$3.err" \
    || { echo "load against $2 failed:" >&2; tail -5 "$work/$1-$3.err" >&2; exit 2; }
}
for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS: direct, through the gateway${nginx_port:+, through nginx} ($RATE req/s for $DURATION each)" >&2
  leg direct "http://$a/" "$r"
  leg gateway "http://127.0.0.1:$gw_port/" "$r"
  [[ -z "$nginx_port" ]] || leg nginx "http://127.0.0.1:$nginx_port/" "$r"
done

python3 - "$work" "$ROUNDS" "$RATE" <<'EOF'
import json, statistics, sys
work, rounds, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def figures(name):
    runs = [json.load(open(f"{work}/{name}-{r}.json")) for r in range(1, rounds + 1)]
    return {
        "p50_us": statistics.median(x["latency"]["p50_us"] for x in runs),
        "p99_us": statistics.median(x["latency"]["p99_us"] for x in runs),
        "rate": statistics.median(x["achieved_rate"] for x in runs),
        "errors": sum(x["errors"] for x in runs),
    }
import os
legs = [("direct", figures("direct")), ("gateway", figures("gateway"))]
if os.path.exists(f"{work}/nginx-1.json"):
    legs.append(("nginx", figures("nginx")))
print(f"{'':10} {'p50 µs':>8} {'p99 µs':>8} {'req/s':>9} {'errors':>7}")
for name, f in legs:
    print(f"{name:10} {f['p50_us']:>8.0f} {f['p99_us']:>8.0f} {f['rate']:>9.0f} {f['errors']:>7}")
d, g = legs[0][1], legs[1][1]
added = g["p50_us"] - d["p50_us"]
print(f"gateway adds {added:.0f} µs to the p50 and {g['p99_us'] - d['p99_us']:.0f} µs to the p99 "
      f"at {rate:.0f} req/s; {added / 100:.2f} of the 100 µs target")
if len(legs) > 2:
    n = legs[2][1]
    peer = n["p50_us"] - d["p50_us"]
    print(f"nginx adds {peer:.0f} µs to the p50 and {n['p99_us'] - d['p99_us']:.0f} µs to the p99; "
          f"gateway/nginx added p50: {added / peer:.2f}" if peer > 0 else
          f"nginx adds {peer:.0f} µs to the p50 (no ratio: not above direct)")
EOF
