"""Shared fixtures. Ray tests use one real local Ray per test module (shut down after it, so learner tests really run without Ray) (2 CPUs, no dashboard).

Searches run one trial at a time (``--max-concurrent 1``) unless trials side by side are what a test shows
(PBT's population, the cluster job, the loopback listeners; two searches on one registry run as two
processes). A search starts one worker process per concurrent trial for its tuning phase and again for
its selection and test runs, and a worker's start (torch and RLlib imports, the first build) costs more
CPU than a small test's training. The suite's two pytest workers already keep both cores busy, so a
second trial at a time in a search adds CPU and saves no wall time."""
import os

import pytest
from hypothesis import settings

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Property tests draw the same examples in every run (a hash of the test seeds them; no example database),
# so the suite gives the same result every run. To look for new counterexamples:
# `pytest --hypothesis-profile=explore tests/test_secrets.py` (random draws, as Hypothesis's default).
settings.register_profile("suite", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("suite")


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from pgu_rllib.rllib.accel.guard import free_agent_port

    if ray.is_initialized():  # a Ray an earlier module's test left running (RLlib starts one on demand)
        ray.shutdown()
    with free_agent_port():  # the other pytest worker's Ray may hold Ray's default agent port
        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
                 log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture
def patches_on(monkeypatch):
    """For the tests that compare the speed patches with RLlib's own code: the patched arm needs them on,
    whatever ``PGU_DISABLE_RAY_PATCHES`` the suite runs with (the test sets it for RLlib's arm)."""
    monkeypatch.delenv("PGU_DISABLE_RAY_PATCHES", raising=False)


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


SUITE_BUDGET_S = 20 * 60  # issue 28: `make test` within 20 minutes on a 2-core machine


def pytest_sessionstart(session):
    import time

    session.config._pgu_t0 = time.monotonic()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The guard: the suite's wall time against its budget, in every run's output (CI's included), next to
    the 10 slowest tests that ``--durations=10`` (the Makefile's) lists."""
    import time

    wall = time.monotonic() - config._pgu_t0
    share = wall / SUITE_BUDGET_S
    terminalreporter.write_line(f"pgu suite wall time: {wall:.0f} s of the {SUITE_BUDGET_S} s budget ({share:.0%})"
                                + ("  ** OVER BUDGET **" if share > 1 else ""))


HEAVY_MARKS = ("slow", "cluster", "postgres")


def pytest_collection_modifyitems(config, items):
    """The files with real searches and clusters first, then the rest, each group in file order. With
    ``--dist loadfile`` a file is one unit of work, and the Makefile's ``--no-loadscope-reorder`` keeps
    this order. xdist's default puts the files with the most tests first, so the heaviest files (a few
    tests each) came last, where one pytest worker can be left running one alone. The many small files
    now fill in at the end."""
    heavy = {item.path for item in items if any(item.get_closest_marker(m) for m in HEAVY_MARKS)}
    items.sort(key=lambda item: item.path not in heavy)  # a stable sort: the order within each group stays
