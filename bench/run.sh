#!/usr/bin/env bash
# bench/run.sh - `make bench`. Starts vapora-supervisor (workers = auto) on
# free loopback ports and measures:
#   1. GET /health with wrk, side by side with the seed's Tokio runtime and
#      nginx when ../shared/bench/compare-health is present;
#   2. kill -9 of a worker to its replacement being ready (median of 20);
#   3. failed requests while every worker is rolling-restarted under wrk.
# Prints figures; never fails on speed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/${BUILD:-build}/bin
SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
work=$(mktemp -d /tmp/vapora-bench.XXXXXX)
. bench/lib.sh
port=$(free_port); admin_port=$(free_port)
cat > "$work/vapora.conf" <<CONF
[supervisor]
admin = 127.0.0.1:$admin_port
data_dir = $work/data
shutdown_timeout = 5

[service:backend]
listen = 127.0.0.1:$port
workers = auto
CONF
"$BIN/vapora-supervisor" -c "$work/vapora.conf" 2>"$work/supervisor.log" &
sv=$!
cleanup() { kill "$sv" 2>/dev/null || true; wait "$sv" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
url="http://127.0.0.1:$port/health"
wait_http "$url"
ctl() { "$BIN/vaporactl" -a "127.0.0.1:$admin_port" "$@"; }
echo "== 1. GET /health through the supervisor ($(nproc) cores, workers = auto), wrk -t2 -c100, ${SECS}s x $ROUNDS"
compare=${COMPARE_HEALTH:-../shared/bench/compare-health}
if [ -x "$compare" ]; then
  "$compare" "$url" "$SECS" "$ROUNDS"
else
  echo "(no $compare: ours alone)"
  wrk -t2 -c100 -d"${SECS}s" --latency "$url" | grep -E 'Requests/sec|99%'
fi
echo
# Where the CPU goes: the anchors compare-health built and installed, run
# here again so that their processes can be measured. See docs/runtime.md.
anchors=${BENCH_WORK:-${TMPDIR:-/tmp}/vapora-bench}
tokio_bin=$anchors/tokio-health/target/release/tokio-health
if [ -x "$tokio_bin" ] && command -v nginx >/dev/null; then
  echo "== 1b. CPU per /health request: ours, Tokio, nginx (wrk -t2 -c100, ${SECS}s x $ROUNDS)"
  tport=$(free_port); nport=$(free_port)
  sed -e "s#@DIR@#$work#g" -e "s#@PORT@#$nport#g" ../shared/bench/anchors/nginx.conf.in > "$work/nginx.conf"
  "$tokio_bin" "$tport" & tpid=$!
  nginx -c "$work/nginx.conf" & npid=$!
  wait_http "http://127.0.0.1:$tport/health"; wait_http "http://127.0.0.1:$nport/health"
  wpids=$(ctl --json status | python3 -c 'import json,sys; print(",".join(str(w["pid"]) for w in json.load(sys.stdin)["services"][0]["workers"]))')
  npids=$(pgrep -d, -P "$npid"),$npid
  python3 bench/cpusplit.py "$ROUNDS" "$SECS" "ours=$url=$wpids" \
    "tokio=http://127.0.0.1:$tport/health=$tpid" "nginx=http://127.0.0.1:$nport/health=$npids" || true
  kill "$tpid" "$npid" 2>/dev/null || true; wait "$tpid" "$npid" 2>/dev/null || true
  echo
fi
echo "== 2. kill -9 of a worker to its replacement ready"
python3 bench/killbench.py "127.0.0.1:$admin_port" backend "${KILL_ROUNDS:-20}"
echo
echo "== 3. rolling restart of every worker under wrk -t2 -c100 (6 s, restart at 2 s)"
wrk -t2 -c100 -d6s "$url" > "$work/wrk.txt" 2>&1 &
wrkpid=$!
sleep 2
before=$(ctl --json status | python3 -c 'import json,sys; print(sorted(w["pid"] for w in json.load(sys.stdin)["services"][0]["workers"]))')
ctl restart backend
wait "$wrkpid"
after=$(ctl --json status | python3 -c 'import json,sys; print(sorted(w["pid"] for w in json.load(sys.stdin)["services"][0]["workers"]))')
echo "worker pids before $before, after $after"
grep -E 'requests in|Requests/sec|Socket errors|Non-2xx' "$work/wrk.txt" || true
errs=$(awk '/Socket errors/ {gsub(",",""); n += $4+$6+$8+$10} /Non-2xx/ {n += $5} END {print n+0}' "$work/wrk.txt")
echo "failed requests during the rolling restart: ${errs:-0}"
echo
# Each part measures alone: this supervisor and its workers go first.
cleanup
trap - EXIT
bench/backend.sh
bench/router.sh
