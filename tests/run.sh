#!/usr/bin/env bash
# run.sh - runs the criterion suites (unit, then integration) and the SDK
# checks (tests/sdk), shows their output, and ends with one total line.
# Exits non-zero on any failure.
set -uo pipefail
BUILD=${BUILD:-build}
export VAPORA_BIN_DIR=${VAPORA_BIN_DIR:-$PWD/$BUILD/bin}
export VAPORA_TEST_TMP=${VAPORA_TEST_TMP:-$(mktemp -d /tmp/vapora-tests.XXXXXX)}
trap 'rm -rf "$VAPORA_TEST_TMP"' EXIT
passed=0; failed=0; status=0; fails=""
for suite in unit-tests integration-tests; do
  bin=$BUILD/tests/$suite
  [ -x "$bin" ] || { echo "missing $bin" >&2; status=1; continue; }
  echo "== $suite"
  out=$("$bin" --jobs 2 --timeout 120 2>&1); rc=$?
  printf '%s\n' "$out"
  fails+=$(grep -E '\[(FAIL|----)\]|CRASH|Timed out|Warning! The test' <<<"$out" | sed "s/^/$suite: /")$'\n'
  syn=$(printf '%s\n' "$out" | grep 'Synthesis:' | tail -n1)
  t=$(sed -n 's/.*Tested: \([0-9]*\).*/\1/p' <<<"$syn"); t=${t:-0}
  p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$syn"); p=${p:-0}
  passed=$((passed + p)); failed=$((failed + t - p))
  if [ $rc -ne 0 ] || [ -z "$syn" ]; then status=1; [ "$t" = "$p" ] && failed=$((failed + 1)); fi
done
# The official OpenAI and Anthropic SDKs against a real router worker.
echo "== sdk (tests/sdk/run.sh)"
out=$(BUILD=$BUILD tests/sdk/run.sh 2>&1); rc=$?
printf '%s\n' "$out"
line=$(grep '^sdk: ' <<<"$out" | tail -n1)
p=$(sed -n 's/^sdk: \([0-9]*\) passed.*/\1/p' <<<"$line"); p=${p:-0}
f=$(sed -n 's/.* \([0-9]*\) failed/\1/p' <<<"$line"); f=${f:-1}
passed=$((passed + p)); failed=$((failed + f))
[ $rc -eq 0 ] || status=1
fails+=$(grep -E '^(not ok|FAIL)' <<<"$out" | sed 's/^/sdk: /')
# The failures again, last, where a truncated log still shows them.
if [ $status -ne 0 ]; then
  echo "== failures"; grep -v '^$' <<<"$fails" | grep -v -E ': \[----\] +$' | tail -n 40
fi
echo "tests: $passed passed, $failed failed"
exit $status
