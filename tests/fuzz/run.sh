#!/usr/bin/env bash
# run.sh - runs each libFuzzer target of tests/fuzz for a bounded time on a
# working copy of its corpus, then prints one line per target: how long it
# ran, how many inputs, the coverage it reached, and any crash (with the
# input that caused it). Exits non-zero when a target crashed, leaked, hung
# or broke one of its properties. `make fuzz` builds the targets and calls
# this; see README.md.
#
#   FUZZ_SECONDS  seconds per target (60)
#   FUZZ_TARGETS  the targets to run, by name ("http ws"; default: all built)
#   FUZZ_JOBS     targets run at a time (1)
#   FUZZ_MAX_LEN  the largest input libFuzzer makes, in bytes (8192)
#   FUZZ_ARGS     more libFuzzer options ("-seed=1 -jobs=2")
#   BUILD         the build directory holding fuzz/fuzz_* (build/fuzz)
#
# A target's dictionary, tests/fuzz/dict/NAME.dict, is passed when there is
# one. The working copy (BUILD/fuzz-corpus/NAME) starts from the committed seeds
# (tests/fuzz/corpus/NAME) and keeps what the runs add, so a later run goes
# on from there; the committed corpus is never written. Logs go to
# BUILD/fuzz-logs/NAME.log, crashing inputs to BUILD/fuzz-artifacts/NAME/.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build/fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
MAX_LEN=${FUZZ_MAX_LEN:-8192}
SEEDS=tests/fuzz/corpus

targets=()
if [ -n "${FUZZ_TARGETS:-}" ]; then
  for t in $FUZZ_TARGETS; do targets+=("$t"); done
else
  for b in "$BUILD"/fuzz/fuzz_*; do [ -x "$b" ] && targets+=("${b##*/fuzz_}"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets in $BUILD/fuzz" >&2; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0}

# Runs one target; its log says the rest.
run_one() {
  local t=$1 bin=$BUILD/fuzz/fuzz_$1
  local work=$BUILD/fuzz-corpus/$t art=$BUILD/fuzz-artifacts/$t/ log=$BUILD/fuzz-logs/$t.log
  [ -x "$bin" ] || { echo "fuzz: no $bin" >"$log"; return 1; }
  mkdir -p "$work" "$art"
  [ -d "$SEEDS/$t" ] && cp -n "$SEEDS/$t"/* "$work"/ 2>/dev/null
  local dict=tests/fuzz/dict/$t.dict
  # shellcheck disable=SC2086
  "$bin" -max_total_time="$SECONDS_EACH" -max_len="$MAX_LEN" -timeout=30 \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$art" \
    $([ -f "$dict" ] && echo "-dict=$dict") ${FUZZ_ARGS:-} \
    "$work" >"$log" 2>&1
  echo "exit $?" >>"$log"
}
export -f run_one
export BUILD SECONDS_EACH MAX_LEN SEEDS
mkdir -p "$BUILD/fuzz-logs"
echo "fuzz: ${#targets[@]} targets, ${SECONDS_EACH}s each, $JOBS at a time"
printf '%s\n' "${targets[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}'

# One line per target from its log.
status=0
printf '%-14s %8s %11s %9s %7s %7s  %s\n' target seconds runs exec/s cov corpus result
for t in "${targets[@]}"; do
  log=$BUILD/fuzz-logs/$t.log
  rc=$(sed -n 's/^exit //p' "$log" | tail -n1)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n1)
  line=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n1)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$line")
  corp=$(sed -n 's/.*corp: \([0-9]*\).*/\1/p' <<<"$line")
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  result=ok
  if [ "${rc:-1}" != 0 ]; then
    status=1
    what=$(grep -m1 'property broken' "$log" || grep -m1 '^SUMMARY: ' "$log" ||
      grep -m1 'ERROR: libFuzzer' "$log")
    unit=$(sed -n 's/.*Test unit written to \(.*\)/\1/p' "$log" | tail -n1)
    result="FAILED (exit ${rc:-?}): ${what:-see $log}${unit:+ -> $unit}"
  fi
  printf '%-14s %8s %11s %9s %7s %7s  %s\n' "$t" "${secs:--}" "${runs:--}" "${eps:--}" \
    "${cov:--}" "${corp:--}" "$result"
done
[ $status -eq 0 ] || echo "fuzz: a target failed; its log is in $BUILD/fuzz-logs/" >&2
exit $status
