#!/usr/bin/env bash
# bench/run.sh - `make bench`: measures GET /health of the backend with wrk,
# side by side with the seed's Tokio runtime and nginx when the shared
# compare-health script is present (../shared/bench). Prints figures; never
# fails on speed.
#
# Until the supervisor exists, one backend worker per core is started on the
# same port (SO_REUSEPORT), which is what workers = auto will do.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/bin
SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cores=$(nproc)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq "$cores"); do
  "$BIN/vapora-backend" -c etc/vapora.conf -l "127.0.0.1:$port" 2>/dev/null &
  pids+=($!)
done
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
url="http://127.0.0.1:$port/health"
echo "== /health: $cores backend workers on one port, wrk -c100 -t2, ${SECS}s x $ROUNDS rounds"
compare=${COMPARE_HEALTH:-../shared/bench/compare-health}
if [ -x "$compare" ]; then
  "$compare" "$url" "$SECS" "$ROUNDS"
else
  echo "(no $compare: measuring ours alone)"
  wrk -t2 -c100 -d"${SECS}s" --latency "$url" | grep -E 'Requests/sec|99%'
fi
