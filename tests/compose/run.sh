#!/usr/bin/env bash
# tests/compose/run.sh - the suite in containers, driven as a user would
# (make compose-test; .ci/run after make test). It installs what is missing
# (docker.io, docker-compose, mmdebstrap, jq...), starts dockerd if none
# runs, makes the base image when no registry can give it
# (deploy/base-image.sh), builds the images, `docker-compose up -d` with
# tests/compose/docker-compose.test.yml (the fake LLM provider), waits for
# every healthcheck, then checks through the published ports: login, a
# project and a task, the task's event on /ws, a chat completion through the
# router against the fake, `docker-compose restart` and `down` + `up`
# keeping the data, `docker-compose stop` letting every supervisor drain and
# exit 0, and BACKEND_WORKERS scaling the backend's workers (vaporactl status
# in the container, the supervisor's /status).
#
# Its own project name (vapora-ctest), image tag (ctest) and free loopback
# ports, so a `make run` or a `docker-compose up` of yours is not touched.
# Everything it started is removed on exit, whatever failed: the containers,
# network and volumes (down -v), and dockerd if it started it. The images
# stay as a build cache (--rmi removes them; the base image always stays).
# Prints one line per check and "compose: N passed, M failed, K skipped";
# exits non-zero on a failure.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
RMI=0
[ "${1:-}" = --rmi ] && RMI=1

export COMPOSE_PROJECT_NAME=vapora-ctest
export VAPORA_TAG=ctest
BASE_TAG=vapora-c-base:bookworm
export VAPORA_BASE_IMAGE=${VAPORA_BASE_IMAGE:-$BASE_TAG}
FILES=(-f docker-compose.yml -f tests/compose/docker-compose.test.yml)
tmp=$(mktemp -d /tmp/vapora-compose-test.XXXXXX)
log=$tmp/compose.log
t_start=$(date +%s)
passed=0 failed=0 skipped=0 dockerd_pid="" up=0 finished=0 failed_names=()

say() { printf 'compose: %s\n' "$*"; }
pass() { passed=$((passed + 1)); say "ok   $1"; }
fail() {
  failed=$((failed + 1))
  failed_names+=("$1")
  say "FAIL $1${2:+: $2}"
}
skip() { skipped=$((skipped + 1)); say "skip $1${2:+: $2}"; }
# check NAME CMD...: one check, passed when CMD succeeds.
check() { local n=$1; shift; if "$@" >>"$log" 2>&1; then pass "$n"; else fail "$n"; fi; }
compose() { docker-compose --env-file "$tmp/test.env" "${FILES[@]}" "$@"; }
since() { echo $(($(date +%s) - $1)); }

. tests/compose/lib.sh
. tests/compose/checks.sh

# A trap may run while a command's redirection to $log is still in force:
# the script's own output goes back to fds 3 and 4, saved at the start.
exec 3>&1 4>&2
cleanup() {
  set +e
  trap - EXIT INT TERM
  exec 1>&3 2>&4
  [ "$finished" = 1 ] || [ "$failed" -gt 0 ] || fail "the run stopped before its end"
  if [ "$up" = 1 ]; then
    [ "$failed" -gt 0 ] && show_logs
    compose down -v --remove-orphans --timeout 20 >>"$log" 2>&1
  fi
  if [ "$RMI" = 1 ] && [ -n "$dockerd_pid$(docker_ok && echo y)" ]; then
    docker rmi "vapora-c:$VAPORA_TAG" "vapora-c-nats:$VAPORA_TAG" \
      "vapora-c-fake-llm:$VAPORA_TAG" >>"$log" 2>&1
    docker image prune -f --filter label=vapora-c >>"$log" 2>&1
  fi
  stop_dockerd
  [ "$failed" -gt 0 ] && { say "log: last lines of $log"; tail -n 40 "$log" | sed 's/^/  | /'; }
  rm -rf "$tmp"
  say "total $(since "$t_start") s"
  # The failed checks again, last: a CI log that keeps only its end
  # still says which ones they were.
  local n
  for n in "${failed_names[@]}"; do say "failed: $n"; done
  echo "compose: $passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ]
  exit $?
}
trap cleanup EXIT
trap 'exec 1>&3 2>&4; fail "interrupted"; exit 1' INT TERM

install_missing || { fail "install docker.io, docker-compose, curl, jq, python3"; exit 1; }
start_dockerd || { fail "start dockerd" "see $log"; exit 1; }
write_env
check "docker-compose config -q (docker-compose $(docker-compose version --short 2>/dev/null))" \
  compose config -q
if docker compose version >/dev/null 2>&1; then
  check "docker compose config -q (v2)" docker compose --env-file "$tmp/test.env" "${FILES[@]}" config -q
fi

t=$(date +%s)
ensure_base || { fail "base image $VAPORA_BASE_IMAGE" "see $log"; exit 1; }
say "base image $VAPORA_BASE_IMAGE ready in $(since "$t") s"
t=$(date +%s)
compose build >>"$log" 2>&1 || { fail "docker-compose build"; exit 1; }
pass "docker-compose build ($(since "$t") s)"
check_image_sizes

t=$(date +%s)
up=1
compose up -d >>"$log" 2>&1 || { fail "docker-compose up -d"; exit 1; }
wait_healthy || { fail "every service healthy after up"; exit 1; }
pass "docker-compose up -d: every service healthy ($(since "$t") s)"

check_container
check_health
login || { fail "login as admin"; exit 1; }
pass "login as admin (password from the environment)"
check_project_task_ws
check_chat
check_agent_run
check_board

t=$(date +%s)
if compose restart >>"$log" 2>&1 && wait_healthy; then
  pass "docker-compose restart: every service healthy again ($(since "$t") s)"
  check_data_kept "after restart"
else
  fail "docker-compose restart"
fi

t=$(date +%s)
if compose stop >>"$log" 2>&1; then
  check "docker-compose stop ($(since "$t") s): every supervisor drained and exited 0" \
    exited_cleanly backend agents llm-router
else
  fail "docker-compose stop"
fi
t=$(date +%s)
if compose down >>"$log" 2>&1 && compose up -d >>"$log" 2>&1 && wait_healthy; then
  pass "docker-compose down && up -d: every service healthy ($(since "$t") s)"
  check_data_kept "after down && up"
else
  fail "docker-compose down && up -d"
fi

check_scaling 3
finished=1
