#!/usr/bin/env bash
# Several processes: Redis commands per edit, and capacity (the largest S1-shaped load whose fan-out p99 stays
# under a bound), with the shared Yjs load generator and its start scripts (see bench/README.md).
#
#   cp -r ../shared/bench /tmp/bench && (cd /tmp/bench && npm ci)
#   bench/cluster_bench.sh commands           # S1 once per server, Redis INFO commandstats before and after
#   bench/cluster_bench.sh capacity           # S1 with 200, 400, 800... rooms until p99 >= 50 ms, per server
#
# Env: BENCH (/tmp/bench), SERVERS (commands: "ccl-2p hocuspocus-redis"; capacity: "ccl-pg ccl-w2"),
#      START_ROOMS (200), MAX_ROOMS (3200), BOUND_MS (50), DURATION (20 s), REDIS_CLI ("redis-cli -p 6379").
# Uses the Redis at 127.0.0.1:6379 (as the start scripts do): nothing else may use it during the run.
set -uo pipefail
MODE=${1:?usage: bench/cluster_bench.sh commands|capacity}
BENCH=${BENCH:-/tmp/bench}
PROJECT=$(cd "$(dirname "$0")/.." && pwd)
export CCL_PROJECT=${CCL_PROJECT:-$PROJECT}
REDIS_CLI=${REDIS_CLI:-"redis-cli -p 6379"}
# yload --api provisions every room's session and participants over REST from 127.0.0.1, faster than any person:
# the servers' per-address REST rate limits are off for the run (the start scripts pass the environment on).
export CODECONNECT_RATE_SESSIONS_PER_MINUTE=${CODECONNECT_RATE_SESSIONS_PER_MINUTE:-0}
export CODECONNECT_RATE_JOINS_PER_MINUTE=${CODECONNECT_RATE_JOINS_PER_MINUTE:-0}
OUT=${OUT:-$(mktemp -d /tmp/cluster-bench.XXXXXX)}
mkdir -p "$OUT"
declare -A PORT=([ccl-pg]=18104 [ccl-2p]=18104 [ccl-w2]=18104 [hocuspocus-redis]=18106)
declare -A FRAMING=([ccl-pg]=y-websocket [ccl-2p]=y-websocket [ccl-w2]=y-websocket [hocuspocus-redis]=hocuspocus)
CCL_URL='ws://127.0.0.1:18104/v1/collab/{room}?token={token}'
declare -A URL=([ccl-pg]="$CCL_URL" [ccl-w2]="$CCL_URL"
  [ccl-2p]="$CCL_URL|ws://127.0.0.1:18105/v1/collab/{room}?token={token}"
  [hocuspocus-redis]='ws://127.0.0.1:18106|ws://127.0.0.1:18107')
CCL_EXTRA='--api http://127.0.0.1:18104 --text-name code'
declare -A EXTRA=([ccl-pg]="$CCL_EXTRA" [ccl-2p]="$CCL_EXTRA" [ccl-w2]="$CCL_EXTRA" [hocuspocus-redis]='')

SPID=""
start() { # server
  local port=${PORT[$1]} i
  "$BENCH/anchors/$1.sh" "$port" >"$OUT/server-$1.log" 2>&1 &
  SPID=$!
  for i in $(seq 1 150); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then sleep 0.5; return 0; fi
    kill -0 "$SPID" 2>/dev/null || { echo "$1 exited during start" >&2; return 1; }
    sleep 0.2
  done
  return 1
}
stop() {
  [ -n "$SPID" ] || return 0
  kill -TERM "$SPID" 2>/dev/null
  for _ in $(seq 1 25); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$SPID" 2>/dev/null
  wait "$SPID" 2>/dev/null
  SPID=""
}
trap stop EXIT INT TERM

yload() { # server rooms seconds out
  # shellcheck disable=SC2086
  (cd "$BENCH" && timeout 300 node yload.mjs --framing "${FRAMING[$1]}" --url-template "${URL[$1]}" \
    --rooms "$2" --clients-per-room 2 --edits-per-sec 2 --duration "$3" --warmup 3 ${EXTRA[$1]} \
    --server-pid "$SPID" --max-run 250 --server-name "$1" --scenario "S1x$2" --rep 1 --out "$4" --quiet \
    2>>"$OUT/yload.log")
}

field() { # json-file python-expression-on-r
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"
}

case $MODE in
commands)
  for srv in ${SERVERS:-ccl-2p hocuspocus-redis}; do
    start "$srv" || continue
    $REDIS_CLI CONFIG RESETSTAT >/dev/null
    $REDIS_CLI INFO cpu >"$OUT/redis-cpu-before-$srv.txt"
    yload "$srv" 200 20 "$OUT/commands-$srv.json"
    $REDIS_CLI INFO commandstats >"$OUT/commandstats-$srv.txt"
    $REDIS_CLI INFO cpu >"$OUT/redis-cpu-after-$srv.txt"
    stop
    edits=$(field "$OUT/commands-$srv.json" "r['edits']['totalSent']")
    echo "== $srv: $edits edits sent (warm-up and measured), Redis commands per edit:"
    python3 - "$OUT/commandstats-$srv.txt" "$edits" "$OUT/redis-cpu-before-$srv.txt" \
      "$OUT/redis-cpu-after-$srv.txt" <<'EOF'
import re, sys
calls = {m[1]: int(m[2]) for m in re.finditer(r"cmdstat_(\w+(?:\|\w+)?):calls=(\d+)", open(sys.argv[1]).read())}
edits = int(sys.argv[2])
for name, n in sorted(calls.items(), key=lambda kv: -kv[1]):
    if n >= edits / 100:
        print(f"  {name:<16} {n:>9}  {n / edits:6.2f} per edit")
print(f"  {'all':<16} {sum(calls.values()):>9}  {sum(calls.values()) / edits:6.2f} per edit")
cpu = [sum(float(v) for k, v in re.findall(r"used_cpu_(sys|user):([\d.]+)", open(f).read())) for f in sys.argv[3:5]]
print(f"  Redis CPU during the run: {cpu[1] - cpu[0]:.2f} s ({1000 * (cpu[1] - cpu[0]) / edits:.3f} ms per edit)")
EOF
  done
  ;;
capacity)
  for srv in ${SERVERS:-ccl-pg ccl-w2}; do
    rooms=${START_ROOMS:-200}
    while [ "$rooms" -le "${MAX_ROOMS:-3200}" ]; do
      start "$srv" || break
      out="$OUT/capacity-$srv-$rooms.json"
      yload "$srv" "$rooms" "${DURATION:-20}" "$out"
      stop
      p99=$(field "$out" "r['latency_ms']['p99']" 2>/dev/null || echo 99999)
      cpu=$(field "$out" "r['server_window']['cpuPctAvg']" 2>/dev/null || echo "?")
      conv=$(field "$out" "r['convergence']['converged']" 2>/dev/null || echo "?")
      echo "== $srv rooms $rooms: fan-out p99 $p99 ms, server CPU $cpu %, converged $conv"
      python3 -c "import sys; sys.exit(0 if float('$p99') < float('${BOUND_MS:-50}') else 1)" || break
      rooms=$((rooms * 2))
    done
  done
  ;;
*) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
echo "results in $OUT" >&2
