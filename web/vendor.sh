#!/usr/bin/env bash
# web/vendor.sh - refreshes web/vendor/ from npm: the browser libraries of
# the web board at the versions pinned below, as ES modules with their
# licenses, under versioned folders (vendor/NAME-VERSION/, cached for a
# year by the backend). Bare imports ("preact") are rewritten to relative
# ones, so the board needs no import map (an inline script the
# Content-Security-Policy would have to allow). Not run by the build: the
# files are committed; run it by hand to change a version, then update the
# imports in web/app/lib.js.
set -euo pipefail
cd "$(dirname "$0")"
PREACT=10.29.8
HTM=3.1.1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && echo '{"private":true}' >package.json &&
  npm install --no-audit --no-fund --loglevel=error "preact@$PREACT" "htm@$HTM" >/dev/null)
rm -rf vendor && mkdir -p "vendor/preact-$PREACT" "vendor/htm-$HTM"
p=$tmp/node_modules/preact
cp "$p/dist/preact.mjs" "$p/LICENSE" "vendor/preact-$PREACT/"
sed 's/from"preact"/from".\/preact.mjs"/g; s/from "preact"/from ".\/preact.mjs"/g' \
  "$p/hooks/dist/hooks.mjs" >"vendor/preact-$PREACT/hooks.mjs"
cp "$tmp/node_modules/htm/dist/htm.mjs" "$tmp/node_modules/htm/LICENSE" "vendor/htm-$HTM/"
grep -q '"preact"' "vendor/preact-$PREACT/hooks.mjs" && { echo "bare import left" >&2; exit 1; }
sed -i '/sourceMappingURL/d' vendor/*/*.mjs
ls -l vendor/*/
