"""A registry that cannot lie after a resume (issue 24), on a real finished bandit search:

* every selection and test row carries the hash of what it ran, and a resume reuses a row only on an
  exact match: a row whose configuration no longer matches is re-run, and the run says so;
* the winner's params, its selection rows and its test rows belong to one configuration;
* ``--resume`` with changed settings exits 2 with one line naming each difference and writes nothing;
* a resume while another live process holds the search's lease exits 2 naming the holder."""
import signal
import sqlite3
import subprocess
import sys

import pytest

from pgu_rllib.service.registry import Registry

pytestmark = pytest.mark.slow

ARGS = ["search", "--task", "bandit", "--space", "paper", "--env-steps", "768", "--max-concurrent", "1", "--top-k", "2",
        "--selection-seeds", "2", "--test-seeds", "2", "--name", "integrity"]


def pgu(*args, cwd, timeout=600):
    return subprocess.run([sys.executable, "-m", "pgu_rllib.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("integrity")
    out = pgu(*ARGS, "--trials", "3", cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    return cwd, Registry(f"sqlite:///{cwd}/pgu_results/registry.db")


def dump(cwd) -> list[str]:
    with sqlite3.connect(cwd / "pgu_results" / "registry.db") as con:
        return list(con.iterdump())


def check_one_configuration(reg: Registry) -> int:
    """The best row, the winner's selection rows and its test rows all ran the winner's configuration, and
    every stored row's hash is the hash of its own params (rows of an earlier winner stay, as history, under
    their own hash). Returns the number of rows checked."""
    search = reg.get_search("integrity")
    best = reg.best("bandit", "paper")
    selection, test = reg.evaluations(search.id, "selection"), reg.evaluations(search.id, "test")
    for row in selection + test:
        assert row["config_hash"] == _expected_hash(reg, search, row["params"]), row
    winner = _expected_hash(reg, search, best["params"])
    mine_test = [t for t in test if t["config_hash"] == winner]
    mine_selection = [s for s in selection if s["config_hash"] == winner]
    assert sorted(best["test_scores"]) == sorted(t["score"] for t in mine_test)
    assert sorted(best["test_seeds"]) == sorted(t["seed"] for t in mine_test)
    assert sorted(best["selection_scores"]) == sorted(s["score"] for s in mine_selection)
    assert best["protocol"]["test_policies"] == [t["policy_path"] for t in sorted(mine_test, key=lambda t: t["seed"])]
    return 1 + len(selection) + len(test)


def _expected_hash(reg, search, params):
    from pgu_rllib.service._tune_hooks import config_hash
    from pgu_rllib.tasks import get_task
    from pgu_rllib.tasks.training import build_config

    base = build_config("bandit", search.settings["base_preset"], {"pgu_objective": "train"}, seed=0,
                        budget=search.settings["env_steps"]).to_dict()
    return config_hash({**base, **params}, search.settings["env_steps"], get_task("bandit").protocol("train"))


def test_a_finished_search_holds_one_configuration_per_winner(finished):
    cwd, reg = finished
    assert check_one_configuration(reg) == 1 + 4 + 2


def test_a_stored_run_of_another_configuration_is_re_run_not_reused(finished):
    cwd, reg = finished
    search = reg.get_search("integrity")
    with sqlite3.connect(cwd / "pgu_results" / "registry.db") as con:  # as if the row had run another config
        con.execute("UPDATE pgu_evaluations SET config_hash = 'stale', score = -1 WHERE phase = 'test' AND seed = ?",
                    (2_000_000,))
    out = pgu(*ARGS, "--trials", "3", "--resume", cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "test: 1 stored run ran another configuration (candidate, seed [(" in out.stderr
    assert "test: 2 runs of 768 env steps (1 already stored)" in out.stderr
    test = reg.evaluations(search.id, "test")
    assert len(test) == 2 and all(t["score"] != -1 and t["config_hash"] != "stale" for t in test)
    check_one_configuration(reg)


def test_more_trials_on_resume_keep_winner_selection_and_test_together(finished):
    cwd, reg = finished
    out = pgu(*ARGS, "--trials", "6", "--resume", "--json", cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    row = reg.get_search("integrity")
    assert row.status.value == "complete" and row.settings["trials"] == 6
    assert {t["params"]["seed"] for t in reg.trials(row.id)} == set(range(6))  # tuning seeds 1000·S + i, S = 0
    check_one_configuration(reg)


@pytest.mark.parametrize("change,needle", [
    (["--space", "mla"], "the space file's content differs"),
    (["--env-steps", "1536"], "env_steps 768 -> 1536"),
    (["--top-k", "1", "--test-seeds", "3"], "top_k 2 -> 1; test_seeds 2 -> 3"),
    (["--sampler", "random", "--pruner", "none"], "pruner 'asha' -> 'none'; sampler 'tpe' -> 'random'"),
])
def test_a_resume_with_changed_settings_exits_2_and_writes_nothing(finished, cli, change, needle):
    cwd, _ = finished
    argv = list(ARGS)
    for flag, value in zip(change[::2], change[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    before = dump(cwd)
    out = cli(*argv, "--trials", "3", "--resume", cwd=cwd)  # refused before Ray starts: in-process
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "search 'integrity' was started with other settings" in lines[0] and needle in lines[0]
    assert dump(cwd) == before


def test_a_resume_while_another_process_writes_exits_2_naming_it(finished, cli):
    cwd, _ = finished
    url = f"sqlite:///{cwd}/pgu_results/registry.db"
    from test_lease import HOLDER

    holder = subprocess.Popen([sys.executable, str(HOLDER), url, "integrity"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = dump(cwd)
        out = cli(*ARGS, "--trials", "3", "--resume", cwd=cwd)
        assert out.returncode == 2, out.stderr[-2000:]
        assert f"search 'integrity' is being written by pid {holder.pid} on" in out.stderr
        assert [r for r in dump(cwd) if "lease_heartbeat" not in r and "pgu_searches" not in r] == \
               [r for r in before if "lease_heartbeat" not in r and "pgu_searches" not in r]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    out = pgu(*ARGS, "--trials", "3", "--resume", cwd=cwd)  # the holder is dead: the lease is free at once
    assert out.returncode == 0, out.stderr[-3000:]
