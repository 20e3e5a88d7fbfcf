#!/usr/bin/env bash
# bench/agents.sh - the agents service's benchmarks (part of `make bench`),
# on the shipped configuration (etc/vapora.conf: NATS on, every service,
# prices and budgets set, default pool sizes), with these differences,
# printed below: the ports and data_dir, provider openai pointed at the
# benchmark's upstream, the developer agent on model gpt-4o with
# max_concurrent 512 (its shipped 4 would measure that cap), and, for
# part 2, a slow provider and an agent using it.
#   1a. SEQ_N (200) assignments one at a time, each in review before the
#      next (bench/agents_seq.py), against compare-agents' upstream: the
#      time from an assignment to the first byte of its answer (p50, p99;
#      the agents' own histogram) on a suite with nothing else to do.
#   1b. ../shared/bench/compare-agents: N tasks assigned, each doing one
#      streamed completion against a fast upstream, until all are in review;
#      beside Celery + Redis doing the same work in the same run; then the
#      first-byte histogram again, with the burst's queueing in it.
#      Then the same work (N tasks, 16 at a time) from a client that is not
#      the bound (bench/agents_fast.py + agents_assign.c: one C thread), with
#      the CPU each process spent per task, beside compare-agents' driver's
#      own ceiling (requests, 16 threads, one Session, on GET /health): its
#      figure is the lower of ours and that ceiling on these cores.
#   2. 5,000 runs in flight at once (the fake provider streaming each over
#      ~30 s): errors and the peak RSS of each agents worker.
# Prints figures; never fails on speed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/${BUILD:-build}/bin
. bench/lib.sh
work=$(mktemp -d /tmp/vapora-abench.XXXXXX)
up=${UPSTREAM_PORT:-18091}
fake_port=$(free_port)
export VAPORA_DATA_DIR=$work/data VAPORA_NATS_PORT=$(free_port)
export VAPORA_ADMIN_ADDR=127.0.0.1:$(free_port)
be=$(free_port); ag=$(free_port); rt=$(free_port)
export VAPORA_BACKEND_LISTEN=127.0.0.1:$be VAPORA_AGENTS_LISTEN=127.0.0.1:$ag
export VAPORA_ROUTER_LISTEN=127.0.0.1:$rt VAPORA_ROUTER_URL=http://127.0.0.1:$rt
export VAPORA_BACKEND_URL=http://127.0.0.1:$be VAPORA_LOG_LEVEL=warn
export VAPORA_ADMIN_PASSWORD=bench-admin-password VAPORA_AGENTS_PASSWORD=bench-agents-password
export OPENAI_BASE_URL=http://127.0.0.1:$up/v1 OPENAI_API_KEY=sk-bench
overrides="
[agent:developer]
model = gpt-4o
max_concurrent = 512

[provider:slow]
kind = openai
base_url = http://127.0.0.1:$fake_port/s/slow/v1
api_key = sk-slow
models = slow-model
timeout = 120

[routing]
fallback_chain = claude, openai, gemini, ollama, slow

[agent:bench-slow]
role = tester
model = slow-model
max_concurrent = 6000
max_tokens = 4096
"
{ cat etc/vapora.conf; echo "$overrides"; } > "$work/vapora.conf"
echo "(the shipped etc/vapora.conf, then:$(echo "$overrides" | sed 's/^/  /'))" | sed -n '1,8p' # head could end the echo with SIGPIPE
python3 tests/fakes/fake_llm.py --port "$fake_port" --ttl 1800 >"$work/fake.log" 2>&1 &
fake=$!
"$BIN/vapora-supervisor" -c "$work/vapora.conf" 2>"$work/supervisor.log" &
sv=$!
nginx_pid=""
cleanup() { kill "$sv" "$fake" $nginx_pid 2>/dev/null || true; wait "$sv" "$fake" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
wait_http "http://127.0.0.1:$be/health" || true
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ag/health" >/dev/null && break; sleep 0.1; done
sleep 2 # the consumers bind
# The backend makes the agents' user at its first start; an older one did
# not: then the admin makes it.
login() { curl -sf "http://127.0.0.1:$be/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"$1\",\"password\":\"$2\"}"; }
if ! login agents "$VAPORA_AGENTS_PASSWORD" >/dev/null; then
  tok=$(login admin "$VAPORA_ADMIN_PASSWORD" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -sf "http://127.0.0.1:$be/api/v1/users" -H "Authorization: Bearer $tok" -H 'content-type: application/json' \
    -d "{\"username\":\"agents\",\"password\":\"$VAPORA_AGENTS_PASSWORD\",\"role\":\"member\"}" >/dev/null
fi

parts=${AGENTS_PARTS:-12}
if [[ $parts == *1* ]]; then
compare=${COMPARE_AGENTS:-../shared/bench/compare-agents}
if [ -x "$compare" ]; then
  # First, on a fresh suite (its histogram empty), with compare-agents'
  # upstream (nginx answering as a provider) started here for this part.
  echo "== agents 1a. assignments one at a time: assign -> first LLM byte"
  sed -e "s#@DIR@#$work#g" -e "s#@PORT@#$up#g" \
    "$(dirname "$compare")/anchors/nginx-llm.conf.in" >"$work/nginx-llm.conf"
  nginx -c "$work/nginx-llm.conf" &
  nginx_pid=$!
  python3 bench/agents_seq.py "127.0.0.1:$be" "$VAPORA_ADMIN_PASSWORD" "${SEQ_N:-200}" || true
  python3 bench/agents_firstbyte.py "http://127.0.0.1:$ag/metrics" || true
  kill "$nginx_pid"
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=""
  echo
  echo "== agents 1b. compare-agents ($(nproc) cores, workers = auto)"
  UPSTREAM_PORT=$up VAPORA_PASSWORD=$VAPORA_ADMIN_PASSWORD MODEL=gpt-4o \
    "$compare" "http://127.0.0.1:$be" "http://127.0.0.1:$rt" "${AGENTS_N:-2000}" \
    || echo "(compare-agents failed)"
  echo "(the same histogram, now with the burst's queueing:)"
  python3 bench/agents_firstbyte.py "http://127.0.0.1:$ag/metrics" || true
  echo "-- the same work from a fast client (bench/agents_fast.py), and what the driver above can reach"
  sed -e "s#@DIR@#$work#g" -e "s#@PORT@#$up#g" \
    "$(dirname "$compare")/anchors/nginx-llm.conf.in" >"$work/nginx-llm.conf"
  nginx -c "$work/nginx-llm.conf" &
  nginx_pid=$!
  cc -O2 -o "$work/agents_assign" bench/agents_assign.c
  python3 bench/agents_fast.py burst "127.0.0.1:$be" "$VAPORA_ADMIN_PASSWORD" "${AGENTS_N:-2000}" \
    "$work/agents_assign" "$sv" || echo "(the fast client failed)"
  /usr/bin/python3 bench/agents_fast.py ceiling "127.0.0.1:$be" "${AGENTS_N:-2000}" || true
  kill "$nginx_pid"
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=""
else
  echo "(no $compare)"
fi
echo
fi
[[ $parts == *2* ]] || exit 0
echo "== agents 2. ${INFLIGHT:-5000} runs in flight at once (each streamed over ~30 s)"
curl -sf -X POST "http://127.0.0.1:$fake_port/s/slow/_fake/config" -H 'content-type: application/json' \
  -d '{"chunk_delay_ms": 3000, "reply": "one two three four five six seven eight nine ten"}' >/dev/null
python3 bench/agents_inflight.py "127.0.0.1:$be" "127.0.0.1:$fake_port" "$VAPORA_ADMIN_ADDR" \
  "$VAPORA_ADMIN_PASSWORD" "$work/data/admin-token" "${INFLIGHT:-5000}"
