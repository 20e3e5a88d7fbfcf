#!/usr/bin/env bash
# deps.sh - checks every library (pkg-config) and tool VAPORA-C needs and
# installs what is missing with apt-get. As root it installs; otherwise it
# prints the exact apt-get line and fails.
set -euo pipefail

# pkg-config module -> Debian package
declare -A LIBS=(
  [libmicrohttpd]=libmicrohttpd-dev
  [jansson]=libjansson-dev
  [inih]=libinih-dev
  [criterion]=libcriterion-dev
  [libzmq]=libzmq3-dev
  [libczmq]=libczmq-dev
  [libcurl]=libcurl4-openssl-dev
  [sqlite3]=libsqlite3-dev
  [libnats]=libnats-dev
  [libsodium]=libsodium-dev
  [libjwt]=libjwt-dev
  [nettle]=nettle-dev
)
# headers of libraries that ship no pkg-config file -> Debian package
declare -A HEADERS=(
  [/usr/include/wslay/wslay.h]=libwslay-dev
  # not a header: the font the browser tests' screenshots are drawn with
  [/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf]=fonts-dejavu-core
)
# files (globs) of packages that ship neither -> Debian package: the
# libFuzzer runtime `make fuzz` links (clang's compiler-rt)
declare -A FILES=(
  ['/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a']=libclang-rt-14-dev
)
# command -> Debian package
declare -A TOOLS=(
  [cc]=gcc
  [clang]=clang
  [make]=make
  [pkg-config]=pkg-config
  [nats-server]=nats-server
  [curl]=curl
  [wrk]=wrk
  [python3]=python3
  [node]=nodejs
  [npm]=npm
  [chromium]=chromium    # the web board's browser tests (make test-ui)
  [ss]=iproute2          # they find the backend worker holding a WebSocket
)

missing=()
for t in "${!TOOLS[@]}"; do
  command -v "$t" >/dev/null 2>&1 || missing+=("${TOOLS[$t]}")
done
if command -v pkg-config >/dev/null 2>&1; then
  for m in "${!LIBS[@]}"; do
    pkg-config --exists "$m" 2>/dev/null || missing+=("${LIBS[$m]}")
  done
else
  missing+=("${LIBS[@]}")
fi
for h in "${!HEADERS[@]}"; do
  [ -e "$h" ] || missing+=("${HEADERS[$h]}")
done
for f in "${!FILES[@]}"; do
  compgen -G "$f" >/dev/null || missing+=("${FILES[$f]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing: ${missing[*]}" >&2
  echo "deps: run as root:  apt-get update && $line" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends ${missing[*]} >/dev/null
echo "deps: done" >&2
