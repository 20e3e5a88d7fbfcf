#!/usr/bin/env bash
# tsan-check.sh DIR - the end of `make tsan`. Every TSan-built process of
# the run (tests, supervisors, their workers) wrote its reports to
# DIR/tsan.<pid> (TSAN_OPTIONS log_path), not to the logs the harness
# deletes. Prints each distinct report once (its SUMMARY, how many times,
# one file that holds it) and exits 1 when any report has a frame of our
# code (common/, services/, supervisor/, tests/), TSan itself failed, or a
# file holds something else (FATAL, a refused fork: shown, counted).
# Reports inside third-party code only are listed, not counted: silence
# them in tests/tsan.supp once understood.
set -uo pipefail
dir=${1:?usage: tsan-check.sh DIR}
shopt -s nullglob
files=("$dir"/tsan.*)
if [ ${#files[@]} -eq 0 ]; then
  echo "tsan: no reports"
  exit 0
fi
# One line per report: "ours|theirs<TAB>summary<TAB>file".
lines=$(awk '
  /(WARNING|ERROR): ThreadSanitizer/ { inrep = 1; ours = 0; fatal = /ERROR/ }
  inrep && /[ (](common|services|supervisor|tests)\/[^ ]*\.[ch]:[0-9]/ { ours = 1 }
  inrep && /^SUMMARY: ThreadSanitizer/ {
    sub(/^SUMMARY: ThreadSanitizer: /, "")
    printf "%s\t%s\t%s\n", (ours || fatal) ? "ours" : "theirs", $0, FILENAME
    inrep = 0
  }' "${files[@]}")
status=0
for kind in ours theirs; do
  sel=$(awk -F'\t' -v k="$kind" '$1 == k' <<<"$lines")
  [ -n "$sel" ] || continue
  n=$(wc -l <<<"$sel")
  if [ "$kind" = ours ]; then
    echo "tsan: $n report(s) in our code:"; status=1
  else
    echo "tsan: $n report(s) in third-party code only (tests/tsan.supp):"
  fi
  awk -F'\t' '{ c[$2]++; if (!($2 in f)) f[$2] = $3 }
    END { for (s in c) printf "  %4d x %s  (%s)\n", c[s], s, f[s] }' <<<"$sel" | sort -rn
done
for f in "${files[@]}"; do
  if grep -q 'FATAL' "$f" || ! grep -q '^SUMMARY: ThreadSanitizer' "$f"; then
    echo "tsan: other output in $f:"; head -n 5 "$f" | sed 's/^/  /'; status=1
  fi
done
exit $status
