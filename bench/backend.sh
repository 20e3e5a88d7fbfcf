#!/usr/bin/env bash
# bench/backend.sh - the backend's benchmarks (part of `make bench`), on the
# shape `make run` ships: etc/vapora.conf itself (vapora-supervisor with
# every service, workers = auto, NATS on: every write's event published to
# JetStream; pool sizes at their defaults). wrk -t2 -c100 against
#   GET /api/v1/tasks/{id}, GET /api/v1/tasks?project_id=…&limit=50,
#   GET /health and POST /api/v1/projects/{id}/tasks,
# beside the raw rates at which SQLite commits rows on this machine (WAL,
# synchronous=NORMAL, one process: single-row transactions, and 64 rows per
# transaction as a group commit makes them), measured in the same run. Then
# change-to-WebSocket latency, and POST again on a stripped shape (no NATS,
# so no events), labelled as such.
#   POOL_THREADS=N   sets pool_threads (default: the runtime's default)
#   BENCH_SECS=N     seconds per wrk run (default 5)
#   BENCH_BACKEND_ROUNDS=N  rounds of the read ratio and of POST, whose
#                    medians are the figures (default 3; each round printed)
# Prints figures; never fails on speed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/${BUILD:-build}/bin
SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_BACKEND_ROUNDS:-3}
work=$(mktemp -d /tmp/vapora-bench-backend.XXXXXX)
. bench/lib.sh
sv=""
cleanup() {
  [ -n "$sv" ] && { kill "$sv" 2>/dev/null || true; wait "$sv" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# start NAME NATS(1|0): a supervisor on the config of that shape, data in
# $work/NAME; sets port, B, tok, auth and pid (the project the tasks go to).
# With NATS: etc/vapora.conf itself, every service (bench/lib.sh
# shipped_start), POOL_THREADS appended when set; without: the backend
# alone.
start() {
  local name=$1 with_nats=$2 admin
  mkdir -p "$work/$name"
  if [ "$with_nats" = 1 ]; then
    { cat etc/vapora.conf
      if [ -n "${POOL_THREADS:-}" ]; then printf '\n[runtime]\npool_threads = %s\n' "$POOL_THREADS"; fi
    } > "$work/$name/vapora.conf"
    export VAPORA_ADMIN_PASSWORD=bench-password-123
    shipped_start "$work/$name" "$work/$name/vapora.conf"
    sv=$SHIPPED_PID
    B=$VAPORA_BACKEND_URL port=${VAPORA_BACKEND_LISTEN##*:}
  else
    port=$(free_port); admin=$(free_port)
    {
      printf '[supervisor]\nadmin = 127.0.0.1:%s\ndata_dir = %s\nshutdown_timeout = 5\n\n' \
        "$admin" "$work/$name/data"
      printf '[backend]\nadmin_password = bench-password-123\n\n'
      printf '[service:backend]\nlisten = 127.0.0.1:%s\nworkers = auto\n' "$port"
      if [ -n "${POOL_THREADS:-}" ]; then printf 'pool_threads = %s\n' "$POOL_THREADS"; fi
    } > "$work/$name/vapora.conf"
    "$BIN/vapora-supervisor" -c "$work/$name/vapora.conf" 2>"$work/$name/supervisor.log" &
    sv=$!
    B=http://127.0.0.1:$port
    wait_http "$B/health"
  fi
  tok=$(curl -sf -XPOST "$B/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d '{"username":"admin","password":"bench-password-123"}' | json '["access_token"]')
  auth="Authorization: Bearer $tok"
  pid=$(curl -sf -XPOST "$B/api/v1/projects" -H "$auth" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}' | json '["id"]')
  cat > "$work/$name/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"title":"bench task","priority":"high"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $tok"
LUA
  cat > "$work/$name/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $tok"
LUA
}

stop() {
  kill "$sv" 2>/dev/null || true; wait "$sv" 2>/dev/null || true; sv=""
  shipped_stop; unset VAPORA_ADMIN_PASSWORD
}

run() { # label script url -> "label  req/s  p99"; req/s and p99 (ms) in $work/last
  wrk -t2 -c100 -d"${SECS}s" --latency ${2:+-s "$2"} "$3" 2>&1 | awk -v n="$1" -v out="$work/last" '
    /Requests\/sec/ {r=$2} / 99%/ {p=$2} /Non-2xx/ {e=$5}
    END {printf "%-40s req/s %9.0f   p99 %9s%s\n", n, r, p, e ? "   non-2xx " e : "";
         ms = p + 0; if (p ~ /us$/) ms /= 1000; else if (p ~ /[0-9]s$/) ms *= 1000;
         printf "%d %.2f\n", r, ms > out}'
}

median() { sort -g | awk '{v[NR]=$1} END {print NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# Waits (up to a minute) until the publisher has sent every event, so that
# what comes next is not timed while it catches up. Each worker's gauge of
# the shared outbox is refreshed about once a second: an empty outbox counts
# once it still reads empty more than a second later.
drain_outbox() {
  local d empty=
  for _ in $(seq 600); do
    d=$(curl -sf "$B/metrics" | awk '/^vapora_events_outbox_depth/ {print $2}')
    if [ "${d:-0}" = 0 ]; then
      [ -n "$empty" ] && return
      empty=1; sleep 1.2
    else
      empty=; sleep 0.1
    fi
  done
}

echo "== backend: $(nproc) cores, workers = auto, pool_threads ${POOL_THREADS:-default}," \
  "wrk -t2 -c100, ${SECS}s each"
cc -O2 -o "$work/sqlite_rate" bench/sqlite_rate.c $(pkg-config --cflags --libs sqlite3)
printf "%-40s rows/s %8.0f   (single-row transactions, WAL/NORMAL, one process)\n" \
  "anchor: raw SQLite commits" "$("$work/sqlite_rate" "$work/raw1.db" "$SECS")"
printf "%-40s rows/s %8.0f   (64 rows per transaction)\n" \
  "anchor: raw SQLite, 64-row commits" "$("$work/sqlite_rate" "$work/raw64.db" "$SECS" 64)"

echo "-- shipped shape (etc/vapora.conf: every service, NATS on, every write's event published)"
start shipped 1
for i in $(seq 60); do
  curl -sf -o /dev/null -XPOST "$B/api/v1/projects/$pid/tasks" -H "$auth" \
    -H 'Content-Type: application/json' -d "{\"title\":\"seed $i\"}"
done
tid=$(curl -sf "$B/api/v1/tasks?project_id=$pid&limit=1" -H "$auth" | json '["items"][0]["id"]')
# Reads first: the writes leave tens of thousands of events for the
# publisher, whose work would otherwise overlap the read figures.
# GET task beside /health, ROUNDS rounds in alternating order: the figure
# is the median of each round's ratio, as machine noise falls on both.
: > "$work/ratios"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then
    run "GET /tasks/{id} (round $r)" "$work/shipped/get.lua" "$B/api/v1/tasks/$tid"; get=$(cut -d' ' -f1 "$work/last")
    run "GET /health (round $r)" "" "$B/health"; health=$(cut -d' ' -f1 "$work/last")
  else
    run "GET /health (round $r)" "" "$B/health"; health=$(cut -d' ' -f1 "$work/last")
    run "GET /tasks/{id} (round $r)" "$work/shipped/get.lua" "$B/api/v1/tasks/$tid"; get=$(cut -d' ' -f1 "$work/last")
  fi
  awk -v g="$get" -v h="$health" 'BEGIN {printf "%.2f\n", h ? g / h : 0}' >> "$work/ratios"
done
printf "%-40s %.2f   (median of %s rounds: %s)\n" "GET /tasks/{id} / GET /health" \
  "$(median < "$work/ratios")" "$ROUNDS" "$(tr '\n' ' ' < "$work/ratios" | awk '{$1=$1; print}')"
run "GET /tasks?limit=50" "$work/shipped/get.lua" "$B/api/v1/tasks?project_id=$pid&limit=50"
# POST, ROUNDS rounds, each from an empty outbox (the publisher caught up).
: > "$work/posts"
for r in $(seq "$ROUNDS"); do
  drain_outbox
  run "POST /projects/{id}/tasks (round $r)" "$work/shipped/post.lua" "$B/api/v1/projects/$pid/tasks"
  cat "$work/last" >> "$work/posts"
done
printf "%-40s req/s %9.0f   p99 %7.2fms   (medians of %s rounds)\n" "POST /projects/{id}/tasks" \
  "$(cut -d' ' -f1 "$work/posts" | median)" "$(cut -d' ' -f2 "$work/posts" | median)" "$ROUNDS"
drain_outbox
cc -O2 -o "$work/ws_latency" bench/ws_latency.c
"$work/ws_latency" "$port" "$port" "$tok" "$pid" "${WS_ROUNDS:-200}"
stop

echo "-- stripped shape (not what users run): no NATS, no events"
start stripped 0
run "POST /projects/{id}/tasks (stripped)" "$work/stripped/post.lua" \
  "$B/api/v1/projects/$pid/tasks"
stop
