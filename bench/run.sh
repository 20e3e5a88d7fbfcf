#!/usr/bin/env bash
# bench/run.sh - `make bench`. Every part runs on the shipped shape: the
# shipped etc/vapora.conf itself (NATS with JetStream, every service, model
# prices and budgets, the default pool sizes; bench/lib.sh shipped_start),
# on free loopback ports. Here, the backend's GET /health and its workers:
#   1. GET /health with wrk, side by side with the seed's Tokio runtime and
#      nginx (../shared/bench/compare-health, when present);
#   1b. CPU per request (server user and kernel time) and p99, ours beside
#      Tokio and nginx in one interleaved run (bench/cpusplit.py), and a
#      stripped variant (the backend alone, without NATS), labelled so;
#   2. kill -9 of a worker to its replacement being ready (median of 20);
#   3. failed requests while every worker is rolling-restarted under wrk.
# Then bench/backend.sh, bench/router.sh and bench/agents.sh. Prints
# figures; never fails on speed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/${BUILD:-build}/bin
SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CPU_ROUNDS=${BENCH_CPU_ROUNDS:-9} # part 1b: its ratios are medians of rounds
work=$(mktemp -d /tmp/vapora-bench.XXXXXX)
. bench/lib.sh
stripped=
anchors=()
cleanup() {
  [ ${#anchors[@]} -gt 0 ] && { kill "${anchors[@]}" 2>/dev/null || true; wait "${anchors[@]}" 2>/dev/null || true; }
  anchors=()
  [ -n "$stripped" ] && { kill "$stripped" 2>/dev/null || true; wait "$stripped" 2>/dev/null || true; }
  stripped=
  shipped_stop
  rm -rf "$work"
}
trap cleanup EXIT
shipped_start "$work/shipped"
admin=$VAPORA_ADMIN_ADDR
url="$VAPORA_BACKEND_URL/health"
ctl() { "$BIN/vaporactl" -a "$admin" "$@"; }
echo "== 1. GET /health of the backend, shipped configuration ($(nproc) cores, workers = auto, NATS connected), wrk -t2 -c100, ${SECS}s x $ROUNDS"
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
built=${BENCH_WORK:-${TMPDIR:-/tmp}/vapora-bench}
tokio_bin=$built/tokio-health/target/release/tokio-health
if [ -x "$tokio_bin" ] && [ -x "$compare" ] && command -v nginx >/dev/null; then
  echo "== 1b. CPU per /health request and p99: ours (shipped) beside Tokio and nginx, and stripped (wrk -t2 -c100, ${SECS}s x $CPU_ROUNDS, interleaved)"
  # The stripped variant: the backend alone, no NATS, as the first benches ran.
  sport=$(free_port); sadmin=$(free_port)
  printf '[supervisor]\nadmin = 127.0.0.1:%s\ndata_dir = %s\n\n[service:backend]\nlisten = 127.0.0.1:%s\nworkers = auto\n' \
    "$sadmin" "$work/stripped" "$sport" > "$work/stripped.conf"
  "$BIN/vapora-supervisor" -c "$work/stripped.conf" 2>"$work/stripped.log" & stripped=$!
  tport=$(free_port); nport=$(free_port)
  sed -e "s#@DIR@#$work#g" -e "s#@PORT@#$nport#g" "$(dirname "$compare")/anchors/nginx.conf.in" \
    > "$work/nginx.conf"
  "$tokio_bin" "$tport" & anchors+=($!)
  tpid=$!
  nginx -c "$work/nginx.conf" & anchors+=($!)
  npid=$!
  wait_http "http://127.0.0.1:$tport/health"; wait_http "http://127.0.0.1:$nport/health"
  wait_http "http://127.0.0.1:$sport/health" 10
  spids=$(VAPORA_ADMIN_TOKEN=$(cat "$work/stripped/admin-token") worker_pids "127.0.0.1:$sadmin" backend)
  npids=$(pgrep -d, -P "$npid"),$npid
  python3 bench/cpusplit.py "$CPU_ROUNDS" "$SECS" "ours=$url=$(worker_pids "$admin" backend)" \
    "tokio=http://127.0.0.1:$tport/health=$tpid" "nginx=http://127.0.0.1:$nport/health=$npids" \
    "stripped=http://127.0.0.1:$sport/health=$spids" || true
  echo "(stripped: the backend alone, without NATS, services or prices; not what users run)"
  kill "${anchors[@]}" "$stripped" 2>/dev/null || true; wait "${anchors[@]}" "$stripped" 2>/dev/null || true
  anchors=(); stripped=
  echo
fi
echo "== 2. kill -9 of a backend worker to its replacement ready (shipped configuration)"
python3 bench/killbench.py "$admin" backend "${KILL_ROUNDS:-20}"
echo
echo "== 3. rolling restart of every backend worker under wrk -t2 -c100 (6 s, restart at 2 s)"
wrk -t2 -c100 -d6s "$url" > "$work/wrk.txt" 2>&1 &
wrkpid=$!
sleep 2
before=$(worker_pids "$admin" backend)
ctl restart backend
wait "$wrkpid"
after=$(worker_pids "$admin" backend)
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
bench/agents.sh
