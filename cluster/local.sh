#!/usr/bin/env bash
# cluster/local.sh up|down|status — a real multi-node Ray cluster on this machine, for trying the
# cluster path without a cloud: a head node and PGU_WORKERS (default 1) worker nodes started with
# Ray's `ray start`, token auth on (its own token file), the dashboard and Jobs API on
# 127.0.0.1:8265, and a shared results folder for Tune and the registry.
#
# Loopback only: each node runs `python -m pgu_rllib.rllib.ray_cli start …`, Ray's own command
# with the node IP 127.0.0.1 kept (Ray would replace it by the external IP), so every server of
# every node listens on 127.0.0.1; metrics collection is off (no unauthenticated endpoint).
# Each node starts in a session of its own (setsid) whose id is recorded in $DIR/*.sid: `down`
# signals those sessions and nothing else, then waits until the cluster's ports are free.
#
#   cluster/local.sh up      # prints the environment to export for `ray job submit`
#   eval "$(cluster/local.sh env)"
#   ray job submit --working-dir . -- python -m pgu_rllib.cli search --task bandit ... \
#       --storage-path "$PGU_CLUSTER_RESULTS/tune" --registry "sqlite:///$PGU_CLUSTER_RESULTS/registry.db"
#   cluster/local.sh down    # stops this cluster's processes only (never `ray stop`, which kills every Ray)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${PGU_CLUSTER_DIR:-/tmp/pgu-cluster}
WORKERS=${PGU_WORKERS:-1}
# Ports: PGU_CLUSTER_PORT, PGU_DASHBOARD_PORT, PGU_CLIENT_PORT, PGU_AGENT_PORT (+1 per node) when given;
# otherwise `up` takes Ray's usual ones if free, else free ones, and records them in $DIR/ports for
# `env`, `status` and `down`.
[ -f "$DIR/ports" ] && . "$DIR/ports"
PORT=${PGU_CLUSTER_PORT:-${PORT:-}}
DASHBOARD_PORT=${PGU_DASHBOARD_PORT:-${DASHBOARD_PORT:-}}
CLIENT_PORT=${PGU_CLIENT_PORT:-${CLIENT_PORT:-}}
AGENT_PORT=${PGU_AGENT_PORT:-${AGENT_PORT:-}}
HEAD_CPUS=${PGU_HEAD_CPUS:-1}
WORKER_CPUS=${PGU_WORKER_CPUS:-1}
VENV=${PGU_VENV:-$ROOT/.venv}
RAY="$VENV/bin/ray"

export PATH="$VENV/bin:$PATH"              # jobs inherit it: `python` and `pgu` are the project's
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH="$DIR/auth_token"
export RAY_USAGE_STATS_ENABLED=0
export RAY_enable_metrics_collection=0
RAY_CLI=("$VENV/bin/python" -m pgu_rllib.rllib.ray_cli)   # Ray's CLI, 127.0.0.1 kept
RAY_START=("${RAY_CLI[@]}" start)

env_lines() {
  cat <<ENV
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH=$DIR/auth_token
export RAY_ADDRESS=http://127.0.0.1:$DASHBOARD_PORT
export PGU_CLUSTER_RESULTS=$DIR/results
ENV
}

nodes_alive() {
  "$VENV/bin/python" - "$PORT" <<'PY' 2>/dev/null || echo 0
import sys, ray
from pgu_rllib.rllib.accel.guard import loopback_node_ip
with loopback_node_ip():
    ray.init(address=f"127.0.0.1:{sys.argv[1]}", logging_level="ERROR", log_to_driver=False)
print(sum(1 for n in ray.nodes() if n["Alive"]))
PY
}

# start_node NAME ARGS…: one node, in a new session whose id goes to $DIR/NAME.sid
start_node() {
  local name=$1; shift
  setsid --wait bash -c 'echo $$ > "$1"; shift; exec "$@"' _ "$DIR/$name.sid" \
      "${RAY_START[@]}" --node-ip-address=127.0.0.1 --disable-usage-stats "$@" >"$DIR/$name.log" 2>&1 \
    || { echo "ray start ($name) failed; see $DIR/$name.log" >&2; tail -5 "$DIR/$name.log" >&2; exit 1; }
}

ports_in_use() {   # the cluster's ports that something still listens on
  [ -n "$PORT" ] || return 0
  local listening; listening=$(ss -Htln | awk '{print $4}')
  for p in "$PORT" "$DASHBOARD_PORT" "$CLIENT_PORT" $(seq "$AGENT_PORT" $((AGENT_PORT + WORKERS))); do
    grep -qE "[:.]$p\$" <<<"$listening" && echo "$p"
  done
  return 0
}

free_port() {   # $1 if nothing listens on it, else a free port the kernel picks
  if ! ss -Htln | awk '{print $4}' | grep -qE "[:.]$1\$"; then echo "$1"; return; fi
  "$VENV/bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}

stale_sids() {   # session files whose sessions are gone (a failed or killed start): removed
  for f in "$DIR"/*.sid; do
    [ -e "$f" ] || continue
    pgrep -s "$(cat "$f")" >/dev/null 2>&1 || rm -f "$f"
  done
}

up() {
  mkdir -p "$DIR/results" "$DIR/ray"
  stale_sids
  if [ -z "$(ls "$DIR"/*.sid 2>/dev/null)" ]; then   # no live cluster: choose this one's ports
    PORT=${PGU_CLUSTER_PORT:-$(free_port 6379)}
    DASHBOARD_PORT=${PGU_DASHBOARD_PORT:-$(free_port 8265)}
    CLIENT_PORT=${PGU_CLIENT_PORT:-$(free_port 10001)}
    AGENT_PORT=${PGU_AGENT_PORT:-52400}   # per node, +1 each; 52365 (Ray's default) may be a local Ray's
    printf 'PORT=%s\nDASHBOARD_PORT=%s\nCLIENT_PORT=%s\nAGENT_PORT=%s\n' "$PORT" "$DASHBOARD_PORT" \
      "$CLIENT_PORT" "$AGENT_PORT" > "$DIR/ports"
  fi
  # Each node gets its own temp dir: sharing one, a worker's runtime-env agent deletes the job's
  # working_dir copy (the driver's cwd) on the head when the worker's trials end.
  if [ ! -s "$DIR/auth_token" ]; then   # a fresh random token, readable by this user only
    (umask 077; "$VENV/bin/python" -c "import secrets; print(secrets.token_hex(32))" > "$DIR/auth_token")
  fi
  if [ -n "$(ls "$DIR"/*.sid 2>/dev/null)" ]; then
    echo "a cluster of $DIR is up: run cluster/local.sh down first" >&2; exit 1
  fi
  trap 'echo "start failed: taking down what started" >&2; down >/dev/null 2>&1 || true' ERR EXIT
  start_node head --head --port="$PORT" --dashboard-host=127.0.0.1 \
      --dashboard-port="$DASHBOARD_PORT" --ray-client-server-port="$CLIENT_PORT" --num-cpus="$HEAD_CPUS" \
      --dashboard-agent-listen-port="$AGENT_PORT" --temp-dir="$DIR/ray" --resources='{"pgu_head": 1}'
  for i in $(seq 1 "$WORKERS"); do
    start_node "worker$i" --address="127.0.0.1:$PORT" --num-cpus="$WORKER_CPUS" \
        --dashboard-agent-listen-port=$((AGENT_PORT + i)) --temp-dir="$DIR/ray-worker$i" \
        --resources='{"pgu_worker": 1}'
  done
  want=$((WORKERS + 1))
  for _ in $(seq 1 60); do
    [ "$(nodes_alive)" -ge "$want" ] && break
    sleep 1
  done
  ready=0
  for _ in $(seq 1 90); do   # ready once the head's job agent takes a job (listing jobs is not enough)
    if RAY_ADDRESS="http://127.0.0.1:$DASHBOARD_PORT" "$RAY" job submit --no-wait -- true >/dev/null 2>&1; then
      ready=1; break
    fi
    sleep 1
  done
  [ "$ready" = 1 ] || { echo "the Jobs API did not accept a job within 90 s; see $DIR/ray/session_latest/logs" >&2; exit 1; }
  trap - ERR EXIT
  echo "local Ray cluster up: $(nodes_alive) nodes, dashboard and Jobs API http://127.0.0.1:$DASHBOARD_PORT"
  echo "shared results folder: $DIR/results; token: $DIR/auth_token"
  echo "export this environment (or: eval \"\$(cluster/local.sh env)\"):"
  env_lines
}

down() {
  # Only this cluster's processes: the sessions its nodes were started in. Never `ray stop`,
  # which kills every Ray of the user, and never a match on command lines.
  local sids
  sids=$(cat "$DIR"/*.sid 2>/dev/null || true)
  for sid in $sids; do pkill -TERM -s "$sid" 2>/dev/null || true; done
  for _ in $(seq 1 40); do
    alive=0
    for sid in $sids; do pgrep -s "$sid" >/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  for sid in $sids; do pkill -KILL -s "$sid" 2>/dev/null || true; done
  for _ in $(seq 1 120); do   # until the ports are free, so an `up` right after works
    [ -z "$(ports_in_use)" ] && break
    sleep 0.5
  done
  rm -f "$DIR"/*.sid
  busy=$(ports_in_use | tr '\n' ' ')
  rm -f "$DIR/ports"
  [ -z "$busy" ] || { echo "local Ray cluster down, but port(s) $busy are still in use by another process" >&2; exit 1; }
  echo "local Ray cluster down"
}

status() {
  "${RAY_CLI[@]}" status --address="127.0.0.1:$PORT"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) env_lines ;;
  *) echo "usage: cluster/local.sh up|down|status|env" >&2; exit 2 ;;
esac
