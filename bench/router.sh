#!/usr/bin/env bash
# bench/router.sh - the LLM router's benchmarks (part of `make bench`):
#   1. ../shared/bench/compare-router: added latency (p50, sequential) and
#      throughput at 50 connections, beside Portkey and the upstream itself;
#   2. 2,000 concurrent streams (the fake provider streaming each over
#      ~10 s): errors, and the RSS of each router worker at the peak.
# workers = auto, through the supervisor. Prints figures; never fails on speed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/${BUILD:-build}/bin
. bench/lib.sh
work=$(mktemp -d /tmp/vapora-rbench.XXXXXX)
port=$(free_port); admin_port=$(free_port); fake_port=$(free_port)
up=${UPSTREAM_PORT:-18090}
MODEL=bench-model
cat > "$work/vapora.conf" <<CONF
[supervisor]
admin = 127.0.0.1:$admin_port
data_dir = $work/data
shutdown_timeout = 5

[service:llm-router]
listen = 127.0.0.1:$port
workers = auto
max_connections = 8192
max_connections_per_ip = 8192   ; every stream comes from this one host
max_header_bytes = 4096
max_url_bytes = 2048

[provider:upstream]
kind = openai
base_url = http://127.0.0.1:$up/v1
api_key = bench
models = $MODEL

[provider:slow]
kind = openai
base_url = http://127.0.0.1:$fake_port/s/slow/v1
api_key = bench
models = slow-model
timeout = 60

; every call is budgeted: a pool no benchmark reaches
[budget:default]
limit_usd = 1000000000

[routing]
default_model = $MODEL
fallback_chain = upstream
CONF
python3 tests/fakes/fake_llm.py --port "$fake_port" --ttl 900 >"$work/fake.log" 2>&1 &
fake=$!
"$BIN/vapora-supervisor" -c "$work/vapora.conf" 2>"$work/supervisor.log" &
sv=$!
cleanup() { kill "$sv" "$fake" 2>/dev/null || true; wait "$sv" "$fake" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
wait_http "http://127.0.0.1:$port/health"
wait_http "http://127.0.0.1:$fake_port/_fake/health"
url="http://127.0.0.1:$port/v1/chat/completions"

parts=${ROUTER_PARTS:-12}   # which parts to run
if [[ $parts == *1* ]]; then
echo "== router 1. compare-router ($(nproc) cores, workers = auto)"
compare=${COMPARE_ROUTER:-../shared/bench/compare-router}
if [ -x "$compare" ]; then
  UPSTREAM_PORT=$up "$compare" "$url" "$MODEL" "${BENCH_SECS:-5}" || echo "(compare-router failed)"
else
  echo "(no $compare)"
fi
echo
fi

[[ $parts == *2* ]] || exit 0
echo "== router 2. 2,000 concurrent streams over ~10 s each"
curl -sf -X POST "http://127.0.0.1:$fake_port/s/slow/_fake/config" \
  -H 'content-type: application/json' \
  -d '{"chunk_delay_ms": 500, "reply": "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty"}' >/dev/null
python3 bench/streams.py "127.0.0.1:$port" "127.0.0.1:$admin_port" "${STREAMS:-2000}"
