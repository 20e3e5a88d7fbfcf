# tests/compose/checks.sh - what tests/compose/run.sh checks once the suite
# is up (sourced): each function runs one or more checks through the
# published loopback ports, or inside a container as a user would with
# `docker-compose exec`. Uses run.sh's pass/fail/compose and the ports of
# lib.sh's write_env; keeps TOKEN, PROJECT_ID, TASK_ID and TITLE for the
# checks after a restart.

# Globals come from run.sh; the jq programs in single quotes use jq variables.
# shellcheck shell=bash disable=SC2154,SC2016

# req METHOD PORT PATH [JSON [CURL_ARGS...]]: sets CODE and BODY ($tmp/headers
# holds the response headers); sends TOKEN when set.
req() {
  local args=(-sS --max-time 15 -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}'
    -X "$1" "http://127.0.0.1:$2$3")
  [ -n "${TOKEN:-}" ] && args+=(-H "Authorization: Bearer $TOKEN")
  [ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' --data "$4")
  [ $# -ge 5 ] && args+=("${@:5}")
  CODE=$(curl "${args[@]}" 2>>"$log") || CODE=000
  BODY=$(cat "$tmp/body" 2>/dev/null)
  printf '%s %s:%s -> %s %.300s\n' "$1" "$2" "$3" "$CODE" "$BODY" >>"$log"
}

# jqt FILTER [ARGS...]: BODY satisfies the jq filter.
jqt() { jq -e "$@" <<<"$BODY" >/dev/null 2>&1; }

check_health() {
  local svc port
  for svc in "backend $BACKEND_PORT" "agents $AGENTS_PORT" "llm-router $ROUTER_PORT"; do
    port=${svc#* } svc=${svc% *}
    req GET "$port" /health
    if [ "$CODE" = 200 ] && jqt --arg s "$svc" '.status == "healthy" and .service == $s'; then
      pass "GET /health of $svc on its published port: healthy"
    else
      fail "GET /health of $svc on its published port" "$CODE $BODY"
    fi
  done
}

# The container as deployed: admin API on the host's loopback only, a
# non-root user, tini as PID 1, workers = auto following the CPUs.
check_container() {
  local svc addr bad="" out ids
  for svc in backend agents llm-router; do
    addr=$(compose port "$svc" 8000 2>>"$log")
    [[ $addr == 127.0.0.1:* ]] || bad+="$svc=$addr "
  done
  if [ -z "$bad" ]; then pass "admin APIs published on the host's loopback only"; else
    fail "admin APIs published on the host's loopback only" "$bad"; fi
  out=$(compose exec -T backend sh -c 'id -u; cat /proc/1/comm; nproc' 2>>"$log")
  mapfile -t ids <<<"$out"
  if [ "${ids[0]:-0}" != 0 ] && [ -n "${ids[0]:-}" ]; then pass "backend runs as a non-root user (uid ${ids[0]})"; else
    fail "backend runs as a non-root user" "uid ${ids[0]:-?}"; fi
  if [ "${ids[1]:-}" = tini ]; then pass "tini is PID 1, reaping"; else fail "tini is PID 1" "${ids[1]:-?}"; fi
  TOKEN=$(admin_token) req GET "$BACKEND_ADMIN_PORT" /status
  if [ "$CODE" = 200 ] && jqt --argjson n "${ids[2]:-0}" \
    '.services[] | select(.name == "backend") | .desired == $n and (.workers | length) == $n'; then
    pass "workers = auto: ${ids[2]} backend workers, the container's CPUs (/status)"
  else
    fail "workers = auto follows the container's CPUs (${ids[2]:-?})" "$CODE $BODY"
  fi
}

login() {
  TOKEN=""
  req POST "$BACKEND_PORT" /api/v1/auth/login \
    "$(jq -nc --arg p "$VAPORA_ADMIN_PASSWORD" '{username: "admin", password: $p}')"
  [ "$CODE" = 200 ] || return 1
  TOKEN=$(jq -r .access_token <<<"$BODY")
  [ -n "$TOKEN" ] && [ "$TOKEN" != null ]
}

# A project, then a task while a WebSocket client listens: the task's event
# goes backend -> NATS (JetStream) -> every backend worker -> the client.
check_project_task_ws() {
  req POST "$BACKEND_PORT" /api/v1/projects '{"name":"Compose","description":"tests/compose"}'
  PROJECT_ID=$(jq -r .id <<<"$BODY" 2>/dev/null)
  if [ "$CODE" != 201 ]; then fail "create a project" "$CODE $BODY"; return; fi
  pass "create a project (201)"
  TITLE="container task $$"
  python3 tests/compose/ws_event.py "127.0.0.1:$BACKEND_PORT" "$TOKEN" "$PROJECT_ID" \
    task.created "$TITLE" 40 >"$tmp/ws.out" 2>"$tmp/ws.err" &
  local ws=$! rc
  for _ in $(seq 100); do
    grep -qs '^open$' "$tmp/ws.out" && break
    kill -0 "$ws" 2>/dev/null || break
    sleep 0.1
  done
  req POST "$BACKEND_PORT" "/api/v1/projects/$PROJECT_ID/tasks" \
    "$(jq -nc --arg t "$TITLE" '{title: $t, priority: "high"}')"
  TASK_ID=$(jq -r .id <<<"$BODY" 2>/dev/null)
  if [ "$CODE" = 201 ]; then pass "create a task (201)"; else fail "create a task" "$CODE $BODY"; fi
  wait "$ws"
  rc=$?
  if [ $rc = 0 ] && tail -n 1 "$tmp/ws.out" | jq -e --arg id "$TASK_ID" \
    '(.data.id | tostring) == $id' >/dev/null 2>&1; then
    pass "task.created reaches a /ws client (through NATS)"
  else
    fail "task.created reaches a /ws client" "ws_event.py exit $rc: $(tail -c 300 "$tmp/ws.err")"
    say "the backend's events metrics, then its log about events:"
    { curl -s "http://127.0.0.1:$BACKEND_PORT/metrics" | grep -E '^vapora_(events|ws)'
      compose logs --no-color backend | grep -iE 'event|nats|ws|websocket' | tail -20
    } 2>&1 | sed 's/^/  | /' >&3
  fi
}

# A chat completion through the router to the fake, which insists on the
# key docker-compose passed from the environment (a wrong one is a 401).
check_chat() {
  local key=sk-ctest-claude
  TOKEN="" req POST "$FAKE_LLM_PORT" /s/claude/_fake/config "{\"expect_key\":\"$key\"}"
  [ "$CODE" = 200 ] || fail "configure the fake provider" "$CODE $BODY"
  # From the host a call reaches the router from Docker's gateway, not its
  # loopback: it needs a caller key.
  TOKEN=$VAPORA_ROUTER_API_KEYS req POST "$ROUTER_PORT" /v1/chat/completions \
    '{"model":"auto","messages":[{"role":"user","content":"hi"}]}' -H 'X-Vapora-Role: developer'
  if [ "$CODE" = 200 ] && jqt '.choices[0].message.content == "Hello from claude-sonnet-4."' &&
    grep -qi '^x-vapora-provider: claude' "$tmp/headers"; then
    pass "chat completion through llm-router to the fake provider (claude)"
  else
    fail "chat completion through llm-router to the fake provider" "$CODE $BODY"
  fi
  TOKEN="" req GET "$FAKE_LLM_PORT" /s/claude/_fake/stats
  if jqt --arg k "$key" '.requests >= 1 and .last.headers["x-api-key"] == $k'; then
    pass "the provider got ANTHROPIC_API_KEY from the environment"
  else
    fail "the provider got ANTHROPIC_API_KEY from the environment" "$BODY"
  fi
}

# An agent does the task: assigned to the developers, it ends in review
# with the provider's answer (the agents reach the backend and the router by
# name, with the password and key those wrote into their volumes).
check_agent_run() {
  local i run
  req POST "$BACKEND_PORT" "/api/v1/tasks/$TASK_ID/assign" '{"role":"developer"}'
  [ "$CODE" = 202 ] || { fail "assign the task to the developers" "$CODE $BODY"; return; }
  for i in $(seq 300); do
    req GET "$BACKEND_PORT" "/api/v1/tasks/$TASK_ID"
    jqt '.status == "review"' && break
    sleep 0.2
  done
  if jqt '.status == "review" and .assigned_agent == "developer" and
          .result.content == "Hello from claude-sonnet-4."'; then
    pass "an agent did the assigned task: review, with the provider's answer"
  else
    fail "an agent did the assigned task" "$CODE $BODY"
    return
  fi
  run=$(jq -r '.result.run_id' <<<"$BODY")
  req GET "$AGENTS_PORT" "/api/v1/runs/$run"
  if [ "$CODE" = 200 ] && jqt '.state == "succeeded" and .attempts == 1'; then
    pass "the agents API shows its run succeeded"
  else
    fail "the agents API shows its run succeeded" "$CODE $BODY"
  fi
}

# The web board: its page from the backend, and the router's reports
# relayed by the backend with the key the router wrote into its volume.
check_board() {
  TOKEN="" req GET "$BACKEND_PORT" /
  if [ "$CODE" = 200 ] && grep -qi '^content-type: text/html' "$tmp/headers" &&
    grep -qi '^content-security-policy:' "$tmp/headers"; then
    pass "the web board is served at / (with its CSP)"
  else
    fail "the web board is served at /" "$CODE"
  fi
  req GET "$BACKEND_PORT" /api/v1/budgets
  if [ "$CODE" = 200 ] && jqt 'type == "array" and length > 0'; then
    pass "the board's costs: the router's budgets relayed by the backend"
  else
    fail "the board's costs: the router's budgets relayed by the backend" "$CODE $BODY"
  fi
}

# exited_cleanly SERVICE...: each stopped container exited 0, which tini
# passes on from the supervisor: it drained its workers in time (Docker's
# SIGKILL after the grace period would be 137). Else its log's end is shown.
exited_cleanly() {
  local svc code bad=0
  for svc in "$@"; do
    code=$(docker inspect -f '{{.State.ExitCode}}' "$(compose ps -q "$svc")" 2>&1)
    [ "$code" = 0 ] && continue
    bad=1
    say "$svc exited with $code; its log:"
    compose logs --no-color --tail 15 "$svc" 2>&1 | sed 's/^/  | /'
  done >&3
  return $bad
}

# check_data_kept LABEL: after containers were restarted or recreated.
check_data_kept() {
  req GET "$BACKEND_PORT" "/api/v1/tasks/$TASK_ID"
  if [ "$CODE" = 200 ] && jqt --arg t "$TITLE" '.title == $t'; then
    pass "$1: the task is there, the token from before is accepted"
  else
    fail "$1: the task is there, the token from before is accepted" "$CODE $BODY"
  fi
  TOKEN=$VAPORA_ROUTER_API_KEYS req GET "$ROUTER_PORT" /api/v1/providers
  if [ "$CODE" = 200 ] && jqt '[.. | objects | select(.name? == "claude") | .requests] | max >= 1'; then
    pass "$1: the router's ledger kept the call"
  else
    fail "$1: the router's ledger kept the call" "$CODE $BODY"
  fi
  BODY=$(compose exec -T nats curl -fsS 'http://127.0.0.1:8222/jsz?streams=true' 2>>"$log")
  if jqt '[.. | objects | select(.name? == "VAPORA") | .state.messages] | max >= 2'; then
    pass "$1: JetStream kept the VAPORA stream"
  else
    fail "$1: JetStream kept the VAPORA stream" "$BODY"
  fi
}

# check_scaling N: BACKEND_WORKERS=N in the environment, `up -d` recreates
# the backend's container, and its supervisor runs N workers.
check_scaling() {
  local n=$1 t out running desired
  t=$(date +%s)
  if ! BACKEND_WORKERS=$n compose up -d >>"$log" 2>&1 || ! wait_healthy; then
    fail "BACKEND_WORKERS=$n docker-compose up -d"
    return
  fi
  pass "BACKEND_WORKERS=$n docker-compose up -d: healthy ($(since "$t") s)"
  for _ in $(seq 120); do
    out=$(compose exec -T backend vaporactl status 2>&1)
    running=$(awk '$1 == "backend" && $4 == "running"' <<<"$out" | wc -l)
    desired=$(awk '$1 == "backend" && NF == 3 { print $3 }' <<<"$out")
    [ "$running" -eq "$n" ] && [ "$desired" = "$n" ] && break
    sleep 0.5
  done
  printf '%s\n' "$out" >>"$log"
  if [ "$running" -eq "$n" ] && [ "$desired" = "$n" ]; then
    pass "vaporactl status in the container: $n backend workers running"
  else
    fail "vaporactl status in the container: $n backend workers" "desired ${desired:-?}, running $running"
  fi
  TOKEN=$(admin_token) req GET "$BACKEND_ADMIN_PORT" /status
  if [ "$CODE" = 200 ] && jqt --argjson n "$n" '.services[] | select(.name == "backend")
      | .desired == $n and ([.workers[] | select(.state == "running")] | length) == $n'; then
    pass "GET /status on the admin port: backend desired $n, $n running"
  else
    fail "GET /status on the admin port: backend desired $n" "$CODE $BODY"
  fi
}
