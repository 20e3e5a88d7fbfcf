# tests/compose/lib.sh - the machinery of tests/compose/run.sh (sourced):
# packages, dockerd, the base image, the test's environment file, waiting
# for healthchecks. Uses run.sh's globals: tmp, log, dockerd_pid, say,
# compose, BASE_TAG.

# Globals (tmp, log...) come from run.sh.
# shellcheck shell=bash disable=SC2154

# Installs the Debian packages of the commands given as CMD=PACKAGE that
# are missing; as root only, otherwise prints the apt-get line and fails.
need() {
  local pkgs=() spec
  for spec in "$@"; do
    command -v "${spec%%=*}" >/dev/null 2>&1 || pkgs+=("${spec#*=}")
  done
  [ ${#pkgs[@]} -eq 0 ] && return 0
  mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
  if [ "$(id -u)" -ne 0 ]; then
    say "missing: ${pkgs[*]}; run as root: apt-get update && apt-get install -y ${pkgs[*]}"
    return 1
  fi
  say "installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >>"$log" 2>&1 &&
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >>"$log" 2>&1
}

# dockerd is checked as a file: a docker client alone may be on PATH.
install_missing() {
  local cmds=(docker=docker.io docker-compose=docker-compose curl=curl jq=jq python3=python3)
  [ -x /usr/sbin/dockerd ] || cmds+=(dockerd=docker.io)
  need "${cmds[@]}"
}

docker_ok() { docker info >/dev/null 2>&1; }

# Starts dockerd when no daemon answers; remembers its pid to stop it.
start_dockerd() {
  docker_ok && return 0
  say "starting dockerd"
  setsid "$(command -v dockerd || echo /usr/sbin/dockerd)" >"$tmp/dockerd.log" 2>&1 </dev/null 3>&- 4>&- &
  dockerd_pid=$!
  for _ in $(seq 60); do
    docker_ok && return 0
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 1
  done
  cat "$tmp/dockerd.log" >>"$log"
  return 1
}

# Stops the dockerd this run started (SIGTERM, then SIGKILL after 30 s).
stop_dockerd() {
  [ -n "$dockerd_pid" ] || return 0
  kill -TERM "$dockerd_pid" 2>/dev/null
  for _ in $(seq 30); do
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 1
  done
  kill -KILL "$dockerd_pid" 2>/dev/null
  wait "$dockerd_pid" 2>/dev/null
  say "stopped the dockerd it started (pid $dockerd_pid)"
  dockerd_pid=""
}

# The base image: made from Debian's archive (deploy/base-image.sh) when it
# is ours and missing, pulled when it is another one.
ensure_base() {
  docker image inspect "$VAPORA_BASE_IMAGE" >/dev/null 2>&1 && return 0
  if [ "$VAPORA_BASE_IMAGE" != "$BASE_TAG" ]; then
    docker pull "$VAPORA_BASE_IMAGE" >>"$log" 2>&1
    return
  fi
  need mmdebstrap=mmdebstrap || return 1
  say "making $BASE_TAG from Debian's archive (deploy/base-image.sh)"
  deploy/base-image.sh "$BASE_TAG" >>"$log" 2>&1
}

# Prints N distinct free loopback ports (all bound at once, then released).
free_ports() {
  python3 -c 'import socket,sys
socks=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# Every variable docker-compose.yml reads, in $tmp/test.env (passed with
# --env-file, so a .env of yours is not read) and exported (so your shell's
# values do not apply either). Every provider is the fake.
write_env() {
  local p secret
  read -r -a p <<<"$(free_ports 7)"
  secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  cat >"$tmp/test.env" <<EOF
COMPOSE_PROJECT_NAME=$COMPOSE_PROJECT_NAME
VAPORA_TAG=$VAPORA_TAG
VAPORA_BASE_IMAGE=$VAPORA_BASE_IMAGE
VAPORA_PUBLISH_ADDR=127.0.0.1
BACKEND_PORT=${p[0]}
AGENTS_PORT=${p[1]}
ROUTER_PORT=${p[2]}
BACKEND_ADMIN_PORT=${p[3]}
AGENTS_ADMIN_PORT=${p[4]}
ROUTER_ADMIN_PORT=${p[5]}
FAKE_LLM_PORT=${p[6]}
BACKEND_WORKERS=auto
AGENTS_WORKERS=auto
ROUTER_WORKERS=auto
VAPORA_LOG_LEVEL=info
VAPORA_JWT_SECRET=$secret
VAPORA_ADMIN_PASSWORD=ctest-${secret:0:16}
VAPORA_ROUTER_API_KEYS=vpk-ctest-${secret:16:32}
ANTHROPIC_API_KEY=sk-ctest-claude
ANTHROPIC_BASE_URL=http://fake-llm:9000/s/claude
OPENAI_API_KEY=sk-ctest-openai
OPENAI_BASE_URL=http://fake-llm:9000/s/oai/v1
GEMINI_API_KEY=ctest-gemini
GEMINI_BASE_URL=http://fake-llm:9000/s/gem
OLLAMA_HOST=http://fake-llm:9000/s/llama
EOF
  set -a
  # shellcheck disable=SC1091
  . "$tmp/test.env"
  set +a
  say "ports: backend $BACKEND_PORT, agents $AGENTS_PORT, llm-router $ROUTER_PORT," \
    "admin $BACKEND_ADMIN_PORT/$AGENTS_ADMIN_PORT/$ROUTER_ADMIN_PORT, fake $FAKE_LLM_PORT"
}

# Waits until every service's container reports healthy (default 120 s).
# shellcheck disable=SC2120
wait_healthy() {
  local deadline=$(($(date +%s) + ${1:-120})) want ids id st bad
  want=$(compose config --services 2>>"$log" | wc -l)
  while :; do
    ids=$(compose ps -q 2>>"$log")
    bad=""
    for id in $ids; do
      st=$(docker inspect -f '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>&1)
      [ "${st##* }" = healthy ] || bad+="${st#/} "
    done
    [ -z "$bad" ] && [ "$(wc -w <<<"$ids")" -eq "$want" ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "not healthy: ${bad:-$(wc -w <<<"$ids") of $want containers}"
      return 1
    fi
    sleep 1
  done
}

# On a failure: the containers and the end of each one's log.
show_logs() {
  say "docker-compose ps and logs:"
  { compose ps; compose logs --no-color --tail 25; } 2>&1 | sed 's/^/  | /'
}

# Sizes in MB of the images this run built; the runtime one must stay < 150.
check_image_sizes() {
  local img size sizes=""
  for img in "vapora-c:$VAPORA_TAG" "vapora-c-nats:$VAPORA_TAG" \
    "vapora-c-fake-llm:$VAPORA_TAG" "$VAPORA_BASE_IMAGE"; do
    size=$(docker image inspect -f '{{.Size}}' "$img" 2>/dev/null | awk '{printf "%.0f", $1/1e6}')
    sizes+="$img ${size:-?} MB, "
    [ "$img" = "vapora-c:$VAPORA_TAG" ] && RUNTIME_MB=${size:-999}
  done
  say "image sizes: ${sizes%, }"
  if [ "$RUNTIME_MB" -lt 150 ]; then
    pass "runtime image under 150 MB ($RUNTIME_MB MB)"
  else
    fail "runtime image under 150 MB" "$RUNTIME_MB MB"
  fi
}

# The backend supervisor's admin token (its data volume, read in the container).
admin_token() { compose exec -T backend cat /var/lib/vapora/admin-token 2>>"$log"; }
