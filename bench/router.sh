#!/usr/bin/env bash
# bench/router.sh - the LLM router's benchmarks (part of `make bench`), on
# the shape the shipped configuration runs: NATS on (usage events
# published), the model priced, every call budgeted ([budget:default], $25
# a month as shipped: compare-router sends no X-Vapora-Role) and the
# caller known by its key (compare-router sends `Bearer sk-bench`, a
# legacy [router] api_keys key: allowed every role, charged to "default").
#   1. ../shared/bench/compare-router: added latency (p50, sequential) and
#      throughput at 50 connections, beside the nginx proxy_pass relay,
#      Portkey and the upstream itself; then, labelled "stripped", the
#      same without NATS and without prices (ROUTER_STRIPPED=0 skips it);
#   2. 2,000 concurrent streams (the fake provider streaming each over
#      ~10 s): errors, and the RSS of each router worker at the peak.
# workers = auto, through the supervisor. Prints figures; never fails on speed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/${BUILD:-build}/bin
. bench/lib.sh
work=$(mktemp -d /tmp/vapora-rbench.XXXXXX)
fake_port=$(free_port)
up=${UPSTREAM_PORT:-18090}
MODEL=bench-model
sv=; fake=
stop_sv() {
  [ -z "$sv" ] || { kill "$sv" 2>/dev/null || true; wait "$sv" 2>/dev/null || true; sv=; }
  [ "${shape:-}" != shipped ] || { shipped_stop; unset VAPORA_ROUTER_API_KEYS; }
}
cleanup() { stop_sv; kill "$fake" 2>/dev/null || true; wait "$fake" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The sections both shapes set: the bench's upstream and its slow fake,
# compare-router's key, the bench model first. The shipped shape appends
# them to etc/vapora.conf (a later key replaces an earlier one).
bench_sections() {
  cat <<CONF
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

[routing]
default_model = $MODEL
fallback_chain = upstream
CONF
}

# config SHAPE DIR: the configuration of a run. shipped: etc/vapora.conf
# itself (NATS with JetStream, every service, so the backend's stream keeps
# every usage event; [budget:default] \$25 a month; default pool sizes) and
# the bench's sections, the model priced as gpt-4o-mini; stripped: the
# router alone, no NATS, no prices.
config() {
  local shape=$1 dir=$2
  if [ "$shape" = shipped ]; then
    cat etc/vapora.conf
    echo
    bench_sections
    cat <<CONF

[service:llm-router]
max_connections_per_ip = 8192   ; every stream comes from this one host

; gpt-4o-mini's prices, as shipped
[model:$MODEL]
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.6
CONF
    return 0
  fi
  cat <<CONF
[supervisor]
admin = 127.0.0.1:$admin_port
data_dir = $dir/data
shutdown_timeout = 5

[service:llm-router]
listen = 127.0.0.1:$port
workers = auto
max_connections = 8192
max_connections_per_ip = 8192   ; every stream comes from this one host
max_header_bytes = 4096
max_url_bytes = 2048

[router]
anonymous = loopback
api_keys = sk-bench   ; compare-router's key (legacy keys may be short)

; as shipped: every role without its own budget spends from this one
[budget:default]
window = monthly
limit_usd = 25

CONF
  bench_sections
}

# Waits up to 10 s for URL to answer (a router that failed to start would
# leave curl waiting in the listen backlog: each try is bounded).
up_http() { for _ in $(seq 100); do curl -sf -m 1 "$1" >/dev/null && return 0; sleep 0.1; done; return 1; }

# start SHAPE: a supervisor running the router in that shape, on new ports
# (the shipped one through bench/lib.sh's shipped_start and its variables).
start() {
  local dir=$work/$1
  mkdir -p "$dir"
  if [ "$1" = shipped ]; then
    config shipped "$dir" >"$dir/vapora.conf"
    export VAPORA_ROUTER_API_KEYS=sk-bench
    shipped_start "$dir" "$dir/vapora.conf" ||
      { echo "the shipped configuration did not start" >&2; exit 1; }
    sv=$SHIPPED_PID
    port=${VAPORA_ROUTER_LISTEN##*:} admin_port=${VAPORA_ADMIN_ADDR##*:}
  else
    port=$(free_port); admin_port=$(free_port)
    config stripped "$dir" >"$dir/vapora.conf"
    "$BIN/vapora-supervisor" -c "$dir/vapora.conf" 2>"$dir/supervisor.log" &
    sv=$!
  fi
  up_http "http://127.0.0.1:$port/health" ||
    { echo "the router did not start:" >&2; tail -5 "$dir/supervisor.log" >&2; exit 1; }
  if [ "$1" = shipped ]; then  # serving with NATS connected: /health says healthy
    for _ in $(seq 100); do
      curl -s -m 1 "http://127.0.0.1:$port/health" | grep -q '"status":"healthy"' && break
      sleep 0.1
    done
  fi
  url="http://127.0.0.1:$port/v1/chat/completions"
  shape=$1 admin_token_file=$dir/data/admin-token
}

compare() {
  local c=${COMPARE_ROUTER:-../shared/bench/compare-router}
  if [ -x "$c" ]; then
    UPSTREAM_PORT=$up "$c" "$url" "$MODEL" "${BENCH_SECS:-5}" || echo "(compare-router failed)"
  else
    echo "(no $c)"
  fi
}

python3 tests/fakes/fake_llm.py --port "$fake_port" --ttl 900 >"$work/fake.log" 2>&1 &
fake=$!
wait_http "http://127.0.0.1:$fake_port/_fake/health"

parts=${ROUTER_PARTS:-12}   # which parts to run
if [[ $parts == *1* ]]; then
  echo "== router 1. compare-router, shipped shape: NATS on, usage events published," \
       "model priced, [budget:default] \$25/month ($(nproc) cores, workers = auto)"
  start shipped
  compare
  if [ "${ROUTER_STRIPPED:-1}" != 0 ]; then
    stop_sv
    echo "-- stripped (labelled: no NATS, no prices; budget still on; not what users run)"
    start stripped
    compare
  fi
  echo
fi

[[ $parts == *2* ]] || exit 0
if [ "${shape:-}" != shipped ]; then
  [ -z "$sv" ] || stop_sv
  start shipped
fi
echo "== router 2. 2,000 concurrent streams over ~10 s each"
curl -sf -X POST "http://127.0.0.1:$fake_port/s/slow/_fake/config" \
  -H 'content-type: application/json' \
  -d '{"chunk_delay_ms": 500, "reply": "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty"}' >/dev/null
python3 bench/streams.py "127.0.0.1:$port" "127.0.0.1:$admin_port" "${STREAMS:-2000}" \
  "$admin_token_file"
