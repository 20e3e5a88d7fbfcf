#!/usr/bin/env bash
# tests/sdk/run.sh - the official OpenAI and Anthropic SDKs (Node, pinned in
# package.json, installed from npm into $BUILD/sdk) against a real
# vapora-llm-router worker and the fake provider (tests/fakes). Prints one
# line per check and "sdk: N passed, M failed"; exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
dir=$PWD/$BUILD/sdk
mkdir -p "$dir"
if ! cmp -s tests/sdk/package.json "$dir/package.json" || [ ! -d "$dir/node_modules/openai" ]; then
  cp tests/sdk/package.json tests/sdk/package-lock.json "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
cp tests/sdk/sdk_check.mjs "$dir/"
work=$(mktemp -d "${VAPORA_TEST_TMP:-/tmp}/sdk.XXXXXX")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fake_port=$(free_port); port=$(free_port)
python3 tests/fakes/fake_llm.py --port "$fake_port" --parent-pid $$ --ttl 300 >"$work/fake.log" 2>&1 &
fake=$!
cat > "$work/router.conf" <<CONF
[supervisor]
data_dir = $work/data
[service:llm-router]
listen = 127.0.0.1:$port
[router]
anonymous = no
[caller:sdk]
key = sdk-test-key-0123456789
roles = *
[caller:narrow]
key = sdk-narrow-key-0123456789
roles = tester
[budget:default]
limit_usd = 1000
[provider:oai]
kind = openai
base_url = http://127.0.0.1:$fake_port/s/oai/v1
api_key = sk-oai
models = gpt-a
[provider:claude]
kind = anthropic
base_url = http://127.0.0.1:$fake_port/s/claude
api_key = sk-ant
models = claude-x
[provider:gem]
kind = gemini
base_url = http://127.0.0.1:$fake_port/s/gem
api_key = g-key
models = gem-x
[provider:local]
kind = ollama
base_url = http://127.0.0.1:$fake_port/s/local
models = llama
CONF
"$BUILD/bin/vapora-llm-router" -c "$work/router.conf" >"$work/router.log" 2>&1 &
router=$!
cleanup() { kill "$router" "$fake" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && curl -sf "http://127.0.0.1:$fake_port/_fake/health" >/dev/null && break
  sleep 0.05
done
set +e
out=$(cd "$dir" && node sdk_check.mjs "http://127.0.0.1:$port" sdk-test-key-0123456789 sdk-narrow-key-0123456789 2>&1); rc=$?
set -e
printf '%s\n' "$out"
ok=$(grep -c '^ok ' <<<"$out" || true); bad=$(grep -c '^FAIL ' <<<"$out" || true)
[ "$rc" -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
echo "sdk: $ok passed, $bad failed"
[ "$rc" -eq 0 ] || { echo "--- router log"; tail -60 "$work/router.log"; exit 1; }
