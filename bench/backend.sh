#!/usr/bin/env bash
# bench/backend.sh - the backend's benchmarks (part of `make bench`): under
# vapora-supervisor with workers = auto, wrk -t2 -c100 against
#   POST /api/v1/projects/{id}/tasks, GET /api/v1/tasks/{id},
#   GET /api/v1/tasks?project_id=…&limit=50 and GET /health,
# beside the raw rate at which SQLite commits single-row transactions
# (WAL, synchronous=NORMAL) on this machine, measured in the same run.
# Prints figures; never fails on speed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/${BUILD:-build}/bin
SECS=${BENCH_SECS:-5}
work=$(mktemp -d /tmp/vapora-bench-backend.XXXXXX)
. bench/lib.sh
port=$(free_port); admin=$(free_port); nats=$(free_port)
cat > "$work/vapora.conf" <<CONF
[supervisor]
admin = 127.0.0.1:$admin
data_dir = $work/data
shutdown_timeout = 5

[nats]
url = nats://127.0.0.1:$nats

[backend]
admin_password = bench-password-123

[service:backend]
listen = 127.0.0.1:$port
workers = auto
pool_threads = ${POOL_THREADS:-16}

[program:nats]
command = nats-server -js -a 127.0.0.1 -p $nats -sd $work/data/nats
CONF
"$BIN/vapora-supervisor" -c "$work/vapora.conf" 2>"$work/supervisor.log" &
sv=$!
cleanup() { kill "$sv" 2>/dev/null || true; wait "$sv" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
B=http://127.0.0.1:$port
wait_http "$B/health"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
tok=$(curl -sf -XPOST "$B/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d '{"username":"admin","password":"bench-password-123"}' | json '["access_token"]')
auth="Authorization: Bearer $tok"
pid=$(curl -sf -XPOST "$B/api/v1/projects" -H "$auth" -H 'Content-Type: application/json' \
  -d '{"name":"bench"}' | json '["id"]')
for i in $(seq 60); do
  curl -sf -o /dev/null -XPOST "$B/api/v1/projects/$pid/tasks" -H "$auth" \
    -H 'Content-Type: application/json' -d "{\"title\":\"seed $i\"}"
done
tid=$(curl -sf "$B/api/v1/tasks?project_id=$pid&limit=1" -H "$auth" | json '["items"][0]["id"]')
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"title":"bench task","priority":"high"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $tok"
LUA
cat > "$work/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $tok"
LUA
run() { # name script url -> "name  req/s  p99"
  wrk -t2 -c100 -d"${SECS}s" --latency ${2:+-s "$2"} "$3" 2>&1 | awk -v n="$1" '
    /Requests\/sec/ {r=$2} / 99%/ {p=$2} /Non-2xx/ {e=$5}
    END {printf "%-28s req/s %9.0f   p99 %9s%s\n", n, r, p, e ? "   non-2xx " e : ""}'
}
echo "== backend: $(nproc) cores, workers = auto, wrk -t2 -c100, ${SECS}s each"
cc -O2 -o "$work/sqlite_rate" bench/sqlite_rate.c $(pkg-config --cflags --libs sqlite3)
raw=$("$work/sqlite_rate" "$work/raw.db" "$SECS")
printf "%-28s tx/s  %9.0f   (single-row transactions, WAL/NORMAL, one process)\n" \
  "raw SQLite commits" "$raw"
# Reads first: the writes leave tens of thousands of events for the
# publisher, whose work would otherwise overlap the read figures.
run "GET /tasks/{id}" "$work/get.lua" "$B/api/v1/tasks/$tid"
run "GET /tasks?limit=50" "$work/get.lua" "$B/api/v1/tasks?project_id=$pid&limit=50"
run "GET /health" "" "$B/health"
run "POST /projects/{id}/tasks" "$work/post.lua" "$B/api/v1/projects/$pid/tasks"
# Let the publisher catch up before timing single changes.
for _ in $(seq 600); do
  d=$(curl -sf "$B/metrics" | awk '/^vapora_events_outbox_depth/ {print $2}')
  [ "${d:-0}" = 0 ] && break; sleep 0.1
done
cc -O2 -o "$work/ws_latency" bench/ws_latency.c
"$work/ws_latency" "$port" "$port" "$tok" "$pid" "${WS_ROUNDS:-200}"
