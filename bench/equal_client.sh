#!/usr/bin/env bash
# Run yload's anchor comparison with the same work on the load generator's side for every server.
#
# For our server, yload first provisions a real session and participant tokens for every room over REST
# (`--api`: hundreds to thousands of POSTs through Node's fetch); for the anchors it does not. That leaves the
# load generator's own heap larger for the whole measured window: with `--trace-gc`, one S1 run against ours had
# 7 full (mark-compact) collections in the load generator and 2 against ywss, and the same ywss run with the
# provisioning added had 7 too, with its fan-out p99 up from 3.0 to 5.6 ms. The load generator shares the cores
# with the server and measures on its own event loop, so its garbage collection lands in every server's tail.
#
# This script makes the anchors' runs do the same provisioning (`--api` and `--text-name code`) against a
# separate, otherwise idle Code Connect Live server on PROVISION_PORT, whose sessions are never connected to;
# the anchors' WebSockets still go to the anchors with their own framing and room names. Everything else is
# yload's own run_anchors.sh, unchanged: same scenarios, order, repetitions, sampling and table.
#
#   cp -r ../shared/bench /tmp/bench && (cd /tmp/bench && npm ci)
#   BENCH=/tmp/bench SERVERS="ccl ywss hocuspocus pycrdt" bench/equal_client.sh
#
# Env: BENCH (a writable copy of the shared bench folder, default /tmp/bench), PROVISION_PORT (18190), and
# whatever run_anchors.sh takes (SERVERS, SCENARIOS, REPS, RES, ...). CCL_PROJECT defaults to this checkout.
set -euo pipefail
project="$(cd "$(dirname "$0")/.." && pwd)"
bench="${BENCH:-/tmp/bench}"
port="${PROVISION_PORT:-18190}"
export CCL_PROJECT="${CCL_PROJECT:-$project}"
# yload --api provisions every room's session and participants over REST from 127.0.0.1, faster than any person:
# the servers' per-address REST rate limits are off for the run (the start scripts pass the environment on).
export CODECONNECT_RATE_SESSIONS_PER_MINUTE=${CODECONNECT_RATE_SESSIONS_PER_MINUTE:-0}
export CODECONNECT_RATE_JOINS_PER_MINUTE=${CODECONNECT_RATE_JOINS_PER_MINUTE:-0}
[ -x "$bench/run_anchors.sh" ] || { echo "equal_client: no run_anchors.sh in $bench (BENCH)" >&2; exit 2; }

# The provisioning server: the same start script the comparison uses for ours, on its own port and database.
"$bench/anchors/ccl.sh" "$port" >"/tmp/ccl-provision-$port.log" 2>&1 &
provisioner=$!
trap 'kill "$provisioner" 2>/dev/null; wait "$provisioner" 2>/dev/null; rm -f "$bench/run_equal_client.sh"' EXIT
for _ in $(seq 1 150); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  kill -0 "$provisioner" 2>/dev/null || { echo "equal_client: provisioning server exited" >&2; exit 1; }
  sleep 0.2
done

# run_anchors.sh with the anchors' extra yload flags set to the provisioning ones (pycrdt-df keeps its own).
provision="--api http://127.0.0.1:$port --text-name code"
sed -E "s#^declare -A EXTRA=\(\[ywss\]='' \[hocuspocus\]='' \[pycrdt\]=''#declare -A EXTRA=([ywss]='$provision' [hocuspocus]='$provision' [pycrdt]='$provision'#" \
  "$bench/run_anchors.sh" >"$bench/run_equal_client.sh"
if cmp -s "$bench/run_anchors.sh" "$bench/run_equal_client.sh"; then
  echo "equal_client: run_anchors.sh's EXTRA line is not the expected one; nothing changed" >&2
  exit 2
fi
chmod +x "$bench/run_equal_client.sh"
"$bench/run_equal_client.sh"
