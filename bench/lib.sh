# bench/lib.sh - helpers the bench scripts share (sourced, from the repo's
# root, with BIN set to the binaries' folder).
# A free TCP port on the loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits until URL answers 2xx (up to SECONDS, default 5).
wait_http() {
  local tries=$(( ${2:-5} * 20 ))
  for _ in $(seq "$tries"); do curl -sf "$1" >/dev/null && return 0; sleep 0.05; done
  return 1
}

# Starts the shipped configuration, etc/vapora.conf itself, as `make run`
# does (NATS with JetStream, every service, model prices and budgets, the
# default pool sizes), with its data in DIR and every address on a free
# loopback port: through the variables the file reads (${VAPORA_*}), which
# stay exported for vaporactl. CONFIG, when given, is run instead: the
# shipped file with a bench's sections appended (a later key replaces an
# earlier one). Sets SHIPPED_PID (the supervisor) and exports
# VAPORA_ADMIN_TOKEN; returns once the backend answers /health healthy
# (NATS connected), or fails.
shipped_start() {
  local dir=$1 config=${2:-etc/vapora.conf}
  mkdir -p "$dir/data"
  export VAPORA_DATA_DIR=$dir/data VAPORA_PROMPTS_DIR=$PWD/etc
  export VAPORA_ADMIN_ADDR=127.0.0.1:$(free_port) VAPORA_NATS_PORT=$(free_port)
  export VAPORA_BACKEND_LISTEN=127.0.0.1:$(free_port) VAPORA_AGENTS_LISTEN=127.0.0.1:$(free_port)
  export VAPORA_ROUTER_LISTEN=127.0.0.1:$(free_port)
  export VAPORA_BACKEND_URL=http://$VAPORA_BACKEND_LISTEN VAPORA_ROUTER_URL=http://$VAPORA_ROUTER_LISTEN
  "$BIN/vapora-supervisor" -c "$config" 2>"$dir/supervisor.log" &
  SHIPPED_PID=$!
  wait_http "$VAPORA_BACKEND_URL/health" 30 || { echo "the shipped configuration did not start:" >&2; tail -20 "$dir/supervisor.log" >&2; return 1; }
  VAPORA_ADMIN_TOKEN=$(cat "$VAPORA_DATA_DIR/admin-token")
  export VAPORA_ADMIN_TOKEN
  # One healthy backend worker is not all of them: a burst sent now would
  # land on the workers already up (measured: all 100 of wrk's connections
  # on one backend worker, its sibling still waiting for NATS).
  all_running "$VAPORA_ADMIN_ADDR" 30 || echo "warning: not every worker is running yet" >&2
}

# Waits (up to SECONDS) until the supervisor at ADMIN runs every worker it
# wants, for every service.
all_running() {
  local tries=$(( ${2:-30} * 10 ))
  for _ in $(seq "$tries"); do
    "$BIN/vaporactl" -a "$1" --json status 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if all(s["desired"] == len(s["workers"]) and
                  all(w["state"] == "running" for w in s["workers"])
                  for s in d["services"]) else 1)' && return 0
    sleep 0.1
  done
  return 1
}

# Stops what shipped_start started and forgets its variables (the next
# script starts its own).
shipped_stop() {
  [ -n "${SHIPPED_PID:-}" ] && { kill "$SHIPPED_PID" 2>/dev/null || true; wait "$SHIPPED_PID" 2>/dev/null || true; }
  SHIPPED_PID=
  unset VAPORA_DATA_DIR VAPORA_PROMPTS_DIR VAPORA_ADMIN_ADDR VAPORA_NATS_PORT VAPORA_BACKEND_LISTEN \
    VAPORA_AGENTS_LISTEN VAPORA_ROUTER_LISTEN VAPORA_BACKEND_URL VAPORA_ROUTER_URL VAPORA_ADMIN_TOKEN
}

# The pids of SERVICE's workers, comma-separated, from the supervisor at
# ADMIN (host:port; the token from $VAPORA_ADMIN_TOKEN).
worker_pids() {
  "$BIN/vaporactl" -a "$1" --json status | python3 -c '
import json, sys
print(",".join(str(w["pid"]) for s in json.load(sys.stdin)["services"]
               if s["name"] == sys.argv[1] for w in s["workers"]))' "$2"
}
