"""Shared fixtures. Ray tests use one real local Ray per test module (shut down after it, so learner tests really run without Ray) (2 CPUs, no dashboard)."""
import os

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
             log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``pgu ARGS`` in this process (for inputs refused before Ray starts): returns an object
    with ``returncode``, ``stdout`` and ``stderr`` like ``subprocess.run``."""
    import types

    from pgu_rllib.cli import main

    def run(*argv, cwd=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        umask = os.umask(0o022)
        os.umask(umask)
        try:
            code = main([str(a) for a in argv])
        except SystemExit as stop:
            code = stop.code
        finally:
            os.umask(umask)  # main() tightens the process's umask for the commands that write
        captured = capsys.readouterr()
        return types.SimpleNamespace(returncode=code, stdout=captured.out, stderr=captured.err)

    return run
