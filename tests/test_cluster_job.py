"""`cluster/local.sh up`, a real `ray job submit` of a bandit search with Ray 2.60's token auth,
SUCCEEDED, trials on more than one node (node ids in the registry), the best row stored; the
cluster is torn down even when the test fails."""
import os
import re
import sqlite3
import subprocess
import sys
import tempfile

import pytest

from pgu_rllib.rllib.accel.guard import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def cluster():
    """One two-node cluster for the module's tests (in file order: the last one takes it down and up)."""
    root = tempfile.mkdtemp(prefix="pgu-cluster-")
    env = {**os.environ, "PGU_CLUSTER_DIR": root, "PGU_CLUSTER_PORT": str(free_port()),
           "PGU_DASHBOARD_PORT": str(free_port()), "PGU_CLIENT_PORT": str(free_port()),
           "PGU_AGENT_PORT": str(free_port()),
           "PGU_VENV": os.path.dirname(VENV_BIN)}
    for key in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE"):
        env.pop(key, None)
    try:
        up = subprocess.run(["bash", "cluster/local.sh", "up"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "2 nodes" in up.stdout
        job_env = dict(env)
        for line in subprocess.run(["bash", "cluster/local.sh", "env"], cwd=ROOT, env=env, capture_output=True,
                                   text=True).stdout.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            job_env[key] = value
        yield root, job_env
    finally:
        subprocess.run(["bash", "cluster/local.sh", "down"], cwd=ROOT, env=env, capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", root])


def test_ray_job_submit_runs_a_search_across_nodes(cluster):
    root, env = cluster
    results = os.path.join(root, "results")
    assert env["RAY_AUTH_MODE"] == "token" and os.path.exists(env["RAY_AUTH_TOKEN_PATH"])
    token = open(env["RAY_AUTH_TOKEN_PATH"]).read().strip()

    # Without the token the Jobs API refuses: token auth is really on.
    no_auth = {k: v for k, v in env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    refused = subprocess.run([f"{VENV_BIN}/ray", "job", "list"], cwd=ROOT, env=no_auth, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode != 0

    submit = subprocess.run(
        # fresh workers (PGU_REUSE_ACTORS=0): with 1 CPU per node, the two trials in flight are on two nodes. A reused
        # worker may run every trial when one trial ends before the other node's worker has started (Tune then
        # hands the pending trial to the idle worker), which says nothing about where a cluster puts trials
        [f"{VENV_BIN}/ray", "job", "submit", "--working-dir", ".", "--runtime-env-json",
         '{"env_vars": {"PGU_REUSE_ACTORS": "0"}}', "--",
         "python", "-m", "pgu_rllib.cli", "search", "--task", "bandit", "--space", "paper", "--trials", "4",
         "--max-concurrent", "2", "--env-steps", "1024", "--top-k", "1", "--selection-seeds", "1",
         "--test-seeds", "2",
         "--storage-path", f"{results}/tune", "--registry", f"sqlite:///{results}/registry.db"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    log = submit.stdout + submit.stderr
    assert submit.returncode == 0, log[-4000:]
    assert "succeeded" in log.lower()
    assert token not in log  # no secrets in logs
    for noise in ("Install gputil", "RLModule(config=", "on the new API stack", "Removed the following hyperparameter"):
        assert noise not in log, noise  # silenced at their loggers in every trial process (issue 13)
    assert log.count("[pgu search bandit-paper-s0] trial ") == 4  # the progress lines stay
    job_id = re.search(r"raysubmit_[A-Za-z0-9]+", log).group(0)
    status = subprocess.run([f"{VENV_BIN}/ray", "job", "status", job_id], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert "succeeded" in (status.stdout + status.stderr).lower()  # "Job '...' succeeded" (SUCCEEDED)

    with sqlite3.connect(f"{results}/registry.db") as con:
        nodes = {row[0] for row in con.execute("select node_id from pgu_trials")}
        n_trials = con.execute("select count(*) from pgu_trials").fetchone()[0]
        best = con.execute("select test_scores, search_name from pgu_best where task='bandit'").fetchall()
    assert n_trials == 4
    assert len(nodes - {None}) >= 2, nodes  # the trials ran on more than one node
    assert len(best) == 1 and best[0][1] == "bandit-paper-s0"


def _cluster_listeners(root: str) -> list[str]:
    sids = [open(os.path.join(root, f)).read().strip() for f in os.listdir(root) if f.endswith(".sid")]
    pids = {p for sid in sids for p in subprocess.run(["pgrep", "-s", sid], capture_output=True, text=True).stdout.split()}
    ss = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True).stdout
    return [line.split()[3] for line in ss.splitlines() if any(f"pid={p}," in line for p in pids)]


def test_local_sh_listens_on_loopback_and_down_stops_only_its_own_processes(cluster):
    root, env = cluster
    listeners = _cluster_listeners(root)
    assert len(listeners) >= 10, listeners  # two nodes: GCS, raylets, agents, dashboard, Jobs API, client
    off = [a for a in listeners if not a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:"))]
    assert off == [], off

    # A job asking for a GPU the cluster lacks gives up after PGU_RESOURCE_WAIT_S with one clear line.
    job = subprocess.run(
        [f"{VENV_BIN}/ray", "job", "submit", "--working-dir", ".", "--runtime-env-json",
         '{"env_vars": {"PGU_RESOURCE_WAIT_S": "5"}}', "--", "python", "-m", "pgu_rllib.cli", "search", "--task",
         "bandit", "--space", "paper", "--trials", "2", "--gpus-per-trial", "1", "--name", "gpu-refused",
         "--storage-path", f"{root}/results/tune", "--registry", f"sqlite:///{root}/results/gpu.db"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert job.returncode != 0 and "--gpus-per-trial=1.0 asks for more than the cluster has" in job.stdout + job.stderr
    assert not os.path.exists(f"{root}/results/gpu.db")

    port, client = env["PGU_CLUSTER_PORT"], env["PGU_CLIENT_PORT"]
    decoy = subprocess.Popen(["bash", "-c", f"exec -a 'decoy 127.0.0.1:{port} --port={client} {root}/ray' sleep 300"])
    try:
        down = subprocess.run(["bash", "cluster/local.sh", "down"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        assert decoy.poll() is None  # a process that only names the cluster's address is not its process
        assert _cluster_listeners(root) == []
        up = subprocess.run(["bash", "cluster/local.sh", "up"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=240)  # at once after down: the ports are free
        assert up.returncode == 0 and "2 nodes" in up.stdout, up.stdout + up.stderr
    finally:
        decoy.kill()
