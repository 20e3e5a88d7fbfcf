#!/usr/bin/env bash
# base-image.sh - makes a Debian 12 base image from Debian's archive, for a
# machine that reaches no container registry (so `FROM debian:bookworm-slim`
# cannot pull). The result stands in for debian:bookworm-slim: the `apt`
# variant (Essential packages and apt), man pages, docs and translations
# left out the way the official slim image leaves them out (also for every
# package installed later, through /etc/dpkg/dpkg.cfg.d/).
#
#   deploy/base-image.sh [TAG]      (default vapora-c-base:bookworm, ~25 s)
#   VAPORA_BASE_IMAGE=TAG docker-compose build
#
# Needs root, mmdebstrap and a running Docker daemon. The archive is the one
# this machine's apt uses (/etc/apt/sources.list.d/debian.sources), else
# deb.debian.org with bookworm-updates and bookworm-security.
set -euo pipefail
tag=${1:-vapora-c-base:bookworm}
mirrors=()
[ -f /etc/apt/sources.list.d/debian.sources ] && mirrors=(/etc/apt/sources.list.d/debian.sources)
dpkg_opts=()
for p in /usr/share/doc/\* /usr/share/man/\* /usr/share/info/\* /usr/share/groff/\* \
         /usr/share/lintian/\* /usr/share/linda/\* /usr/share/locale/\*; do
  dpkg_opts+=(--dpkgopt="path-exclude=$p")
done
dpkg_opts+=(--dpkgopt='path-include=/usr/share/doc/*/copyright')
mmdebstrap --variant=apt --quiet "${dpkg_opts[@]}" \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --aptopt='APT::Install-Recommends "false"' \
  bookworm - "${mirrors[@]}" |
  docker import -c 'CMD ["bash"]' -m "mmdebstrap --variant=apt bookworm" - "$tag" >/dev/null
echo "base-image: $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
