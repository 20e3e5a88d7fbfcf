#!/usr/bin/env bash
# tests/ui/run.sh - the web board in headless Chromium against the real
# suite (make test-ui; .ci/run calls it after make test). Installs
# puppeteer-core (pinned in package.json / package-lock.json) into
# $BUILD/ui, runs ui_test.mjs, and leaves the screenshots of every page in
# $BUILD/ui-screenshots. Ends with "ui: N passed, M failed"; exits non-zero
# on a failure. UI_ONLY=REGEX runs the tests whose name matches.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
dir=$PWD/$BUILD/ui
mkdir -p "$dir"
if ! cmp -s tests/ui/package.json "$dir/package.json" || [ ! -d "$dir/node_modules/puppeteer-core" ]; then
  cp tests/ui/package.json tests/ui/package-lock.json "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
cp tests/ui/suite.mjs tests/ui/ui_test.mjs "$dir/"
command -v chromium >/dev/null || { echo "ui: chromium is missing (make deps installs it)" >&2; echo "ui: 0 passed, 1 failed"; exit 1; }
export VAPORA_ROOT=$PWD
export VAPORA_BIN_DIR=${VAPORA_BIN_DIR:-$PWD/$BUILD/bin}
export UI_OUT=${UI_OUT:-$PWD/$BUILD/ui-screenshots}
rm -rf "$UI_OUT"
exec node "$dir/ui_test.mjs"
