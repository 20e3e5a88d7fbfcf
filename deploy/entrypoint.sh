#!/bin/sh
# vapora-entrypoint - runs one VAPORA service in its container under its own
# vapora-supervisor (docs/deploy.md). `vapora-entrypoint SERVICE` writes the
# container's configuration, /etc/vapora/vapora.conf followed by
# /etc/vapora/container.conf with every [program:*] section and every
# [service:*] section but SERVICE's left out, then execs the supervisor on it
# (tini stays PID 1). Any other command is run as given: `docker run --rm -it
# vapora-c sh`. (A running container is asked with `docker-compose exec
# backend vaporactl status`, which does not pass through here.)
set -eu
base=${VAPORA_CONFIG:-/etc/vapora/vapora.conf}
overlay=${VAPORA_CONTAINER_CONFIG:-/etc/vapora/container.conf}
conf=${VAPORA_RUN_CONFIG:-/tmp/vapora.conf}

[ $# -gt 0 ] || set -- backend
svc=$1
case "$svc" in
*[!A-Za-z0-9_-]*) exec "$@" ;;
esac
if ! grep -q "^[[:space:]]*\[service:$svc\]" "$base" "$overlay"; then
  if [ $# -eq 1 ] && ! command -v "$svc" >/dev/null 2>&1; then
    echo "vapora-entrypoint: no [service:$svc] in $base or $overlay" >&2
    exit 2
  fi
  exec "$@"
fi
[ $# -eq 1 ] || { echo "vapora-entrypoint: usage: vapora-entrypoint SERVICE" >&2; exit 2; }

awk -v keep="service:$svc" '
  /^[ \t]*\[/ {
    name = $0
    sub(/^[ \t]*\[/, "", name)
    sub(/\].*$/, "", name)
    skip = (name ~ /^(service|program):/ && name != keep)
  }
  !skip
' "$base" "$overlay" >"$conf"
echo "vapora-entrypoint: service $svc: $base + $overlay -> $conf" >&2
exec vapora-supervisor -c "$conf"
