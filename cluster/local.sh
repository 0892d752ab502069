#!/usr/bin/env bash
# cluster/local.sh up|down|status — a real multi-node Ray cluster on this machine, for trying the
# cluster path without a cloud: a head node and PGU_WORKERS (default 1) worker nodes started with
# `ray start`, node IP 127.0.0.1, token auth on (its own token file), the dashboard and Jobs API
# on 127.0.0.1:8265, and a shared results folder for Tune and the registry.
#
#   cluster/local.sh up      # prints the environment to export for `ray job submit`
#   eval "$(cluster/local.sh env)"
#   ray job submit --working-dir . -- python -m pgu_rllib.cli search --task bandit ... \
#       --storage-path "$PGU_CLUSTER_RESULTS/tune" --registry "sqlite:///$PGU_CLUSTER_RESULTS/registry.db"
#   cluster/local.sh down    # stops this cluster's processes only (never `ray stop`, which kills every Ray)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${PGU_CLUSTER_DIR:-/tmp/pgu-cluster}
PORT=${PGU_CLUSTER_PORT:-6379}
DASHBOARD_PORT=${PGU_DASHBOARD_PORT:-8265}
CLIENT_PORT=${PGU_CLIENT_PORT:-10001}
WORKERS=${PGU_WORKERS:-1}
AGENT_PORT=${PGU_AGENT_PORT:-52400}         # per node, +1 each; 52365 (Ray's default) may be a local Ray's
HEAD_CPUS=${PGU_HEAD_CPUS:-1}
WORKER_CPUS=${PGU_WORKER_CPUS:-1}
VENV=${PGU_VENV:-$ROOT/.venv}
RAY="$VENV/bin/ray"

export PATH="$VENV/bin:$PATH"              # jobs inherit it: `python` and `pgu` are the project's
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH="$DIR/auth_token"
export RAY_USAGE_STATS_ENABLED=0

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
ray.init(address=f"127.0.0.1:{sys.argv[1]}", logging_level="ERROR", log_to_driver=False)
print(sum(1 for n in ray.nodes() if n["Alive"]))
PY
}

up() {
  mkdir -p "$DIR/results" "$DIR/ray"
  # Each node gets its own temp dir: sharing one, a worker's runtime-env agent deletes the job's
  # working_dir copy (the driver's cwd) on the head when the worker's trials end.
  if [ ! -s "$DIR/auth_token" ]; then   # a fresh random token, readable by this user only
    (umask 077; "$VENV/bin/python" -c "import secrets; print(secrets.token_hex(32))" > "$DIR/auth_token")
  fi
  "$RAY" start --head --port="$PORT" --node-ip-address=127.0.0.1 --dashboard-host=127.0.0.1 \
      --dashboard-port="$DASHBOARD_PORT" --ray-client-server-port="$CLIENT_PORT" --num-cpus="$HEAD_CPUS" \
      --dashboard-agent-listen-port="$AGENT_PORT" --temp-dir="$DIR/ray" --resources='{"pgu_head": 1}' \
      --disable-usage-stats >"$DIR/head.log" 2>&1 \
    || { echo "ray start --head failed; see $DIR/head.log" >&2; tail -5 "$DIR/head.log" >&2; exit 1; }
  for i in $(seq 1 "$WORKERS"); do
    "$RAY" start --address="127.0.0.1:$PORT" --node-ip-address=127.0.0.1 --num-cpus="$WORKER_CPUS" \
        --dashboard-agent-listen-port=$((AGENT_PORT + i)) --temp-dir="$DIR/ray-worker$i" \
        --resources='{"pgu_worker": 1}' \
        --disable-usage-stats >"$DIR/worker$i.log" 2>&1 \
      || { echo "ray start (worker $i) failed; see $DIR/worker$i.log" >&2; exit 1; }
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
  echo "local Ray cluster up: $(nodes_alive) nodes, dashboard and Jobs API http://127.0.0.1:$DASHBOARD_PORT"
  echo "shared results folder: $DIR/results; token: $DIR/auth_token"
  echo "export this environment (or: eval \"\$(cluster/local.sh env)\"):"
  env_lines
}

down() {
  # Only this cluster's processes: those naming its temp dir or its GCS address.
  pids=$(pgrep -f -- "$DIR/ray|127\.0\.0\.1:$PORT|--port=$CLIENT_PORT" || true)
  [ -n "$pids" ] && kill $pids 2>/dev/null || true
  for _ in $(seq 1 20); do
    pgrep -f -- "$DIR/ray|127\.0\.0\.1:$PORT" >/dev/null || break
    sleep 0.5
  done
  pids=$(pgrep -f -- "$DIR/ray|127\.0\.0\.1:$PORT|--port=$CLIENT_PORT" || true)
  [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
  echo "local Ray cluster down"
}

status() {
  "$RAY" status --address="127.0.0.1:$PORT"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) env_lines ;;
  *) echo "usage: cluster/local.sh up|down|status|env" >&2; exit 2 ;;
esac
