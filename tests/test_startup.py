"""Readers start like readers (issue 23 §5, issue 25 §7): ``pgu best``, ``pgu export`` and ``pgu presets``
import no ``ray.rllib``, and neither torch nor Ray when they print stored rows; ``pgu --help`` imports
neither torch nor Ray nor SQLAlchemy. Trainers start lean too: no torch compiler imported, and a local Ray's
agent bound at once when Ray's default port is taken."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

CODE = """
import sys
from pgu_rllib.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print(sorted(m for m in ("ray", "ray.rllib", "torch", "sqlalchemy") if m in sys.modules))
"""


def run_reader(argv, cwd) -> subprocess.CompletedProcess:
    """``pgu ARGV`` in a fresh process whose last stdout line lists the heavy modules it loaded."""
    return subprocess.run([sys.executable, "-c", CODE.format(argv=argv)], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def loaded(argv, cwd) -> list[str]:
    return eval(run_reader(argv, cwd).stdout.strip().splitlines()[-1])  # noqa: S307 (our own print of names)


@pytest.mark.parametrize("argv", [["best", "--task", "bandit"], ["export", "--task", "bandit"], ["presets"],
                                  ["tasks"]])
def test_readers_load_no_rllib(argv, tmp_path):
    assert "ray.rllib" not in loaded(argv, tmp_path)


def test_help_loads_neither_torch_nor_ray_nor_the_registry(tmp_path):
    assert loaded(["--help"], tmp_path) == []  # sqlalchemy alone was half of --help's start-up


@pytest.mark.parametrize("command,printed", [("best", "scale mla(alpha_o="), ("export", "scale: mla")])
def test_readers_print_stored_rows_without_torch_or_ray(command, printed, tmp_path):
    """The rule line names each scale's parameters from the scale registry, which imports torch only when
    a scale is called (``core/scales._TorchOnFirstUse``): printing a stored row stays a registry read. The
    rows: the shipped search-methods evidence (schema 0002, upgraded on a copy)."""
    db = tmp_path / "search_methods.db"
    shutil.copy(pathlib.Path(__file__).parents[1] / "docs" / "results" / "search_methods.db", db)
    url = f"sqlite:///{db}"
    subprocess.run([sys.executable, "-m", "pgu_rllib.cli", "registry", "upgrade", "--registry", url], check=True,
                   capture_output=True, timeout=120)
    argv = [command, "--task", "bandit", "--registry", url]
    out = run_reader(argv, tmp_path)
    assert printed in out.stdout, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['sqlalchemy']"


AGENT_PORT_HELD = """
import pathlib, socket
held = socket.socket()
try:
    held.bind(("127.0.0.1", 52365)); held.listen()  # Ray's default agent port, as another local Ray holds it
except OSError:
    pass  # something on this machine holds it already
import ray
from pgu_rllib.rllib import ray_session
assert ray_session.ensure_ray(num_cpus=1)
log = pathlib.Path(ray_session.started_session_dir, "logs", "dashboard_agent.log").read_text()
ray.shutdown()
import re
address = re.search(r"Dashboard agent http address: (\\S+)", log)
print("failed-to-bind" if "Failed to bind" in log else "bound", address.group(1) if address else "no-http-server")
"""


def test_a_local_ray_starts_its_agent_on_a_free_port_when_the_default_is_taken(tmp_path):
    """Ray's default agent port 52365 held (by another local Ray, say): the node ``ensure_ray`` starts binds
    its agent elsewhere at once, instead of six failed binds with back-off (3.4 s of every start)."""
    out = subprocess.run([sys.executable, "-c", AGENT_PORT_HELD], cwd=tmp_path, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    bound, address = out.stdout.split()
    assert bound == "bound" and address.startswith("127.0.0.1:") and address != "127.0.0.1:52365", out.stdout


TRAIN_AND_LIST_COMPILER_MODULES = """
import sys
from pgu_rllib.cli import main
main(["train", "--task", "cartpole", "--env-steps", "512"])
print(sorted(m for m in ("torch._dynamo", "torch._inductor") if m in sys.modules))
"""


@pytest.mark.parametrize("patches,imported", [("", []), ("1", ["torch._dynamo", "torch._inductor"])])
def test_training_imports_no_torch_compiler_unless_the_patches_are_off(patches, imported, tmp_path):
    """RLlib's seeding (``torch.use_deterministic_algorithms``) and torch's optimizer wrappers imported Dynamo
    and Inductor in every trial process, for a compiler pgu-rllib never runs (``rllib/accel/torch_lazy.py``);
    RLlib's own path (``PGU_DISABLE_RAY_PATCHES=1``) still does."""
    env = {**os.environ, "PGU_DISABLE_RAY_PATCHES": patches}
    out = subprocess.run([sys.executable, "-c", TRAIN_AND_LIST_COMPILER_MODULES], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == repr(imported)
