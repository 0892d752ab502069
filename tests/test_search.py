"""The search service for real: Ray Tune + OptunaSearch + SQLite registry on the bandit,
resume after a real SIGKILL, and the bad-input matrix (exit 2, one line, nothing written)."""
import json
import os
import pathlib
import re
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest

from pgu_rllib.service.registry import Registry

pytestmark = pytest.mark.slow


# One trial at a time (why: tests/conftest.py); trials side by side: the PBT, cluster and two-searches tests
SEARCH = ["--task", "bandit", "--space", "paper", "--max-concurrent", "1", "--env-steps", "1024",
          "--top-k", "2", "--selection-seeds", "2", "--test-seeds", "2"]


def pgu(*args, cwd, timeout=600):
    return subprocess.run([sys.executable, "-m", "pgu_rllib.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def study_states(db: pathlib.Path, name: str) -> list[str]:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    return [t.state.name for t in study.trials]


def check_study_tells_the_truth(db: pathlib.Path, name: str) -> None:
    """Each trial the registry holds as finished is COMPLETE in the study, each ASHA stopped is PRUNED."""
    reg = Registry(f"sqlite:///{db}")
    rows = reg.trials(reg.get_search(name).id)
    states = study_states(db, name)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    abandoned = [t for t in study.trials if t.state.name == "FAIL" and "pgu_abandoned" in t.user_attrs]
    states = [s for s in states if s != "FAIL"] + ["FAIL"] * (states.count("FAIL") - len(abandoned))
    assert "RUNNING" not in states, states  # a trial a killed driver left RUNNING is closed as abandoned
    assert sorted(states) == sorted("COMPLETE" if t["status"] == "complete" else "PRUNED" for t in rows), states


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One real search (6 trials, one at a time) shared by the readers below."""
    cwd = tmp_path_factory.mktemp("search")
    out = pgu("search", *SEARCH, "--trials", "6", "--seed", "1", "--json", "--tracking", "mlflow",
              "--tracking-uri", f"sqlite:///{cwd}/mlflow.db", cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    return cwd, out


def test_bandit_search_fills_optuna_and_the_registry(searched):
    tmp_path, out = searched
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["status"] == "complete" and summary["name"] == "bandit-paper-s1"
    assert out.stderr.count("[pgu search bandit-paper-s1] trial ") == 6  # a progress line per trial
    assert "A new study created" not in out.stderr  # Optuna's INFO lines: the plan line names the study
    # the selection and test phases are one Tune run: one worker ran the 4 selection and the 2 test runs
    session = pathlib.Path(re.search(r"its logs: (\S+)", out.stderr).group(1))
    workers = {f.name: f.read_text() for f in session.glob("worker-*.out")}
    runners = [name for name, log in workers.items() if ":actor_name:EvaluationRun" in log]
    assert len(runners) == 1, runners
    idle = [name for name, log in workers.items() if ":actor_name:" not in log]
    assert idle == [], idle  # no worker started ahead that no trial used (rllib/ray_session.py)

    db = tmp_path / "pgu_results" / "registry.db"
    check_study_tells_the_truth(db, "bandit-paper-s1")
    study = optuna.load_study(study_name="bandit-paper-s1", storage=f"sqlite:///{db}")
    winner = study.user_attrs["pgu_winner"]  # what optuna-dashboard shows beside the study: pgu best's winner

    reg = Registry(f"sqlite:///{db}")
    search_row = reg.get_search("bandit-paper-s1")
    assert search_row.status.value == "complete"
    trials = reg.trials(search_row.id)
    assert len(trials) == 6 and all(t["score"] is not None for t in trials)
    tuning = {t["params"]["seed"] for t in trials}
    assert tuning == set(range(1000, 1006))  # tuning seeds 1000·S + i
    best = reg.best("bandit", "paper")
    assert best["search_name"] == "bandit-paper-s1"
    assert winner["params"] == best["params"] and winner["test_mean"] == best["test_mean"]
    assert {k: v for k, v in study.trials[winner["trial"]].params.items() if k in best["params"]} == \
        {k: v for k, v in best["params"].items() if k in study.trials[winner["trial"]].params}
    assert best["selection_seeds"] == [1_001_000, 1_001_001] and best["test_seeds"] == [2_001_000, 2_001_001]
    assert not tuning & set(best["selection_seeds"]) and not set(best["selection_seeds"]) & set(best["test_seeds"])
    assert best["protocol"]["tuning_seeds"] == sorted(tuning)
    assert 0.5 < best["test_mean"] <= 0.7538 + 1e-3  # the optimal policy's expected reward is 0.7538
    assert best["test_ci95"][0] <= best["test_iqm"] <= best["test_ci95"][1]
    assert best["versions"]["ray"] == "2.60.0" and best["versions"]["torch"].startswith("2.13.0")
    selection = reg.evaluations(search_row.id, "selection")
    test = reg.evaluations(search_row.id, "test")
    assert len(selection) == 4 and len(test) == 2  # top-2 x 2 selection seeds; the winner x 2 test seeds
    # the winner is the best selection mean; only it ran on the test seeds, whose scores are the reported ones
    means = {c: sum(e["score"] for e in selection if e["candidate"] == c) / 2 for c in {e["candidate"] for e in selection}}
    winner = max(means, key=means.get)
    assert best["selection_mean"] == pytest.approx(means[winner])
    assert {e["candidate"] for e in test} == {winner} and best["params"] == test[0]["params"]
    assert sorted(best["test_scores"]) == sorted(e["score"] for e in test)
    assert all(e["curve"] and e["curve"][-1][0] >= 1024 for e in selection + test)  # a learning curve per run
    assert set(search_row.timings) == {"tuning", "selection", "test"} and search_row.timings["test"]["env_steps"] >= 2048
    # a TensorBoard event file per trial
    assert len(list((tmp_path / "pgu_results" / "tune").rglob("events.out.tfevents.*"))) >= 6


def test_every_tuning_trial_is_an_mlflow_run_with_its_params_and_metrics(searched):
    import mlflow

    tmp_path, _ = searched
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("bandit-paper-s1")
    runs = client.search_runs([experiment.experiment_id])
    reg = Registry(f"sqlite:///{tmp_path}/pgu_results/registry.db")
    trials = {t["tune_trial_id"]: t for t in reg.trials(reg.get_search("bandit-paper-s1").id)}
    assert sorted(r.info.run_name for r in runs) == sorted(trials)
    for run in runs:
        trial = trials[run.info.run_name]
        assert {k: str(v) for k, v in trial["params"].items()} == run.data.params  # the sampled keys, no more
        assert run.data.metrics["objective"] == pytest.approx(trial["score"])  # the last value logged
        assert run.info.status == "FINISHED"


def test_best_export_and_train_from_best(searched):
    tmp_path, _ = searched
    best = Registry(f"sqlite:///{tmp_path}/pgu_results/registry.db").best("bandit", "paper")
    shown = json.loads(pgu("best", "--task", "bandit", "--json", cwd=tmp_path).stdout)[0]
    for key in ("tuning_score", "selection_mean", "selection_seeds", "test_mean", "test_std", "test_median",
                "test_iqm", "test_ci95", "test_seeds"):
        assert shown[key] == best[key], key
    exported = pgu("export", "--task", "bandit", "--format", "yaml", cwd=tmp_path)
    import yaml
    doc = yaml.safe_load(exported.stdout)
    assert doc["bandit"]["paper"]["overrides"] == best["params"]
    assert doc["bandit"]["paper"]["test"]["scores"] == best["test_scores"]
    assert doc["bandit"]["paper"]["selection"]["seeds"] == best["selection_seeds"]
    trained = pgu("train", "--task", "bandit", "--from-best", "--env-steps", "512", "--json", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert all(json.loads(trained.stdout.splitlines()[-1])["config"][k] == v for k, v in best["params"].items())
    none = pgu("train", "--task", "cartpole", "--from-best", cwd=tmp_path)
    assert none.returncode == 2 and "no best configuration for task 'cartpole'" in none.stderr


def _png_is_real(path: pathlib.Path) -> bool:
    import matplotlib.image

    img = matplotlib.image.imread(path)
    return img.shape[0] >= 200 and img.shape[1] >= 300 and float(img[..., :3].std()) > 0.02


def test_report_page_with_real_plots(searched):
    tmp_path, _ = searched
    out = pgu("report", "--name", "bandit-paper-s1", "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    page = (tmp_path / "report" / "index.html").read_text()
    pngs = sorted((tmp_path / "report").glob("*.png"))
    assert [p.name for p in pngs] == ["alphas.png", "curves.png", "evaluations.png", "form_scale.png", "importances.png",
                                      "schedules.png"]
    for png in [p for p in pngs if p.name != "schedules.png"]:  # no schedule in a TPE search: a message
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert _png_is_real(png), png
        assert f'src="{png.name}"' in page
    assert "test " in page and "selection mean" in page and "bandit-paper-s1" in page
    missing = pgu("report", "--name", "nosuch", "--out", str(tmp_path / "r2"), cwd=tmp_path)
    assert missing.returncode == 2 and "no search named 'nosuch'" in missing.stderr


def _browser() -> str:
    import shutil

    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    assert found, "no headless browser: `make test` installs Debian's chromium (the Makefile's `browser` target)"
    return found


def test_the_dashboard_serves_the_study_on_loopback_and_a_real_browser_shows_the_winner(searched, tmp_path):
    """``pgu dashboard`` listens on 127.0.0.1 only and serves the study with its 6 trials; its page, rendered
    by headless Chromium (the page is built by JavaScript: the raw HTML holds no attribute), shows the
    study's pgu_winner with the test scores `pgu best` reports; the screenshot is a real picture."""
    import socket
    import urllib.request

    cwd, _ = searched
    best = json.loads(pgu("best", "--task", "bandit", "--json", cwd=cwd).stdout)[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "pgu_rllib.cli", "dashboard", "--port", str(port)], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        studies = None
        for _ in range(60):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    studies = json.loads(r.read())["study_summaries"]
                break
            except OSError:
                time.sleep(0.5)
        assert studies, "dashboard did not answer"
        study_id = next(s["study_id"] for s in studies if s["study_name"] == "bandit-paper-s1")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study_id}", timeout=5) as r:
            assert len(json.loads(r.read())["trials"]) == 6
        listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
        assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening
        url = f"http://127.0.0.1:{port}/dashboard/studies/{study_id}"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert "pgu_winner" not in r.read().decode()  # only a browser running the page's scripts shows it
        chrome = [_browser(), "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000",
                  "--window-size=1280,2400", f"--user-data-dir={tmp_path / 'profile'}"]
        dom = subprocess.run([*chrome, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        shot = tmp_path / "dashboard.png"
        subprocess.run([*chrome, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    import html
    import re

    text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
    at = text.find("pgu_winner")
    assert at >= 0, text[:2000]
    shown, _ = json.JSONDecoder().raw_decode(text, text.index("{", at))
    assert shown["test_mean"] == pytest.approx(best["test_mean"])
    assert shown["test_scores"] == pytest.approx(best["test_scores"])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and _png_is_real(shot)


def _registry_trial_count(db: pathlib.Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as con:
            return con.execute("select count(*) from pgu_trials").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _evaluations(db: pathlib.Path) -> list:
    try:
        with sqlite3.connect(db, timeout=30) as con:
            return con.execute("select id, phase, candidate, seed, score from pgu_evaluations order by id").fetchall()
    except sqlite3.OperationalError:  # the tables are not there yet
        return []


def _start_and_wait_for_trials(args, cwd, n, **popen_kwargs):
    """Start ``pgu ARGS`` and return once the registry holds ``n`` trial rows (or it exits, or 400 s)."""
    proc = subprocess.Popen([sys.executable, "-m", "pgu_rllib.cli", *args], cwd=cwd, **popen_kwargs)
    db = cwd / "pgu_results" / "registry.db"
    deadline = time.time() + 400
    while _registry_trial_count(db) < n and time.time() < deadline and proc.poll() is None:
        time.sleep(1)
    return proc, db


def _interrupt(args, cwd, db, trials: int, sig) -> tuple[int, str]:
    """Start ``pgu ARGS``, wait for ``trials`` trial rows and one more than were there before (so the signal
    reaches a search that is running, not a process still importing), send ``sig``; return (exit code,
    stderr)."""
    trials = max(trials, _registry_trial_count(cwd / "pgu_results" / "registry.db") + 1)
    proc, _ = _start_and_wait_for_trials(args, cwd, trials, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         start_new_session=True)
    assert proc.poll() is None, "the search finished before the signal"
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started, no clean-up
        proc.wait()
        subprocess.run(["pkill", "-9", "-f", f"{cwd}"], check=False)  # stray Ray workers of that session
        return proc.returncode, ""
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def test_ctrl_c_sigterm_and_kill_9_stop_a_search_and_resume_finishes_it(tmp_path):
    """SIGINT (Ctrl-C) part-way through tuning; kill -9 part-way through the resume; SIGTERM in the selection
    phase of the next: SIGINT and SIGTERM exit 130, leave the search 'interrupted' and say how to resume;
    kill -9 leaves it 'running'. Each keeps the finished trials and selection runs as they were and writes
    no best row; a last --resume runs the rest, and the study tells the truth (a trial the killed attempt
    left RUNNING is closed as abandoned). Four process lifetimes: each costs a Ray start-up."""
    args = ["search", *SEARCH, "--trials", "7", "--seed", "3", "--name", "ctrlc"]
    db = tmp_path / "pgu_results" / "registry.db"
    reg = Registry(f"sqlite:///{db}")
    kept: dict = {}
    for sig, resume, trials in ((signal.SIGINT, [], 2), (signal.SIGKILL, ["--resume"], 3)):
        code, err = _interrupt([*args, *resume], tmp_path, db, trials, sig)
        if sig == signal.SIGKILL:
            assert reg.get_search("ctrlc").status.value == "running"
        else:
            _check_interrupted(code, err, reg)
        now = {t["tune_trial_id"]: t for t in reg.trials(reg.get_search("ctrlc").id)}
        assert all(now[k] == row for k, row in kept.items())  # neither lost nor re-run
        assert trials <= len(now) < 7
        kept = now
        assert reg.best("bandit", "paper") is None  # nothing half-written

    # the last tuning trials, then SIGTERM in the selection phase: no finished run is lost or re-run
    proc = subprocess.Popen([sys.executable, "-m", "pgu_rllib.cli", *args, "--resume"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 400
    while not _evaluations(db) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None, "the search finished before the selection phase could be stopped"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    _check_interrupted(proc.returncode, err, reg)
    assert "interrupted during selection" in err, err[-3000:]
    selected = _evaluations(db)
    assert selected and all(r[1] == "selection" for r in selected) and reg.best("bandit", "paper") is None

    resumed = pgu(*args, "--resume", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = {t["tune_trial_id"]: t for t in reg.trials(reg.get_search("ctrlc").id)}
    assert len(rows) == 7 and all(rows[k] == row for k, row in kept.items())
    evaluations = _evaluations(db)
    assert evaluations[:len(selected)] == selected  # kept as they were, not re-run
    assert [r[1] for r in evaluations].count("selection") == 4 and [r[1] for r in evaluations].count("test") == 2
    assert reg.get_search("ctrlc").status.value == "complete"
    check_study_tells_the_truth(db, "ctrlc")
    assert reg.best("bandit", "paper")["search_name"] == "ctrlc"


# A Ctrl-C that lands between two phases, where no Tune run is catching SIGINT: raised by the progress line
# that announces the selection phase, so it lands there every time (a real signal's timing varies)
_CTRL_C_AT_SELECTION = """
import sys
from pgu_rllib.service.search import search

def progress(line):
    print(line, file=sys.stderr, flush=True)
    if "] selection:" in line:
        raise KeyboardInterrupt

out = search("bandit", "paper", trials=2, max_concurrent=1, env_steps=1024, top_k=1, selection_seeds=1,
             test_seeds=1, name="boundary", registry=sys.argv[1], storage_path=sys.argv[2], progress=progress)
print(out["status"], out["phase"])
"""


def test_ctrl_c_between_two_phases_leaves_the_search_interrupted(tmp_path):
    """Outside a Tune run, Ctrl-C is a KeyboardInterrupt: the search is 'interrupted' in the phase it was
    entering, and its finished trials stay (it used to be marked 'failed'; resuming an interrupted search:
    the test above)."""
    db = tmp_path / "r.db"
    out = subprocess.run([sys.executable, "-c", _CTRL_C_AT_SELECTION, f"sqlite:///{db}", str(tmp_path / "tune")],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["interrupted", "selection"], out.stderr[-3000:]
    assert "interrupted during selection" in out.stderr and "resume=True" in out.stderr
    reg = Registry(f"sqlite:///{db}")
    assert reg.get_search("boundary").status.value == "interrupted"
    assert len(reg.trials(reg.get_search("boundary").id)) == 2 and reg.best("bandit", "paper") is None


def _check_interrupted(code: int, err: str, reg: Registry) -> None:
    """What Ctrl-C and SIGTERM leave: exit 130, a line saying how to resume, no traceback, 'interrupted'."""
    assert code == 130, err[-3000:]
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    assert reg.get_search("ctrlc").status.value == "interrupted"


@pytest.mark.parametrize("space_text,args,needle", [  # the whole matrix runs in-process: tests/test_bad_inputs.py
    ("params:\n  form: {choice: [V, P]}\n", [],
     "the point {'form': 'P'} is refused: form='P' with delta_r='advantage' is not PGPB"),
    (None, ["--registry", "postgresql://pgu:secret@127.0.0.1:1/pgu"], "registry postgresql://pgu:***@127.0.0.1:1/pgu is unreachable"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, space_text, args, needle):
    """As a user meets it: a real `pgu` process, its whole stderr (import-time warnings included)."""
    base = {"--task": "bandit", "--space": "paper", "--trials": "2"}
    if space_text is not None:
        (tmp_path / "space.yaml").write_text(space_text)
        base["--space"] = str(tmp_path / "space.yaml")
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = [item for pair in base.items() for item in pair]
    before = set(tmp_path.iterdir())
    out = pgu("search", *argv, cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert needle in out.stderr, out.stderr
    error_lines = [line for line in out.stderr.splitlines() if "error" in line.lower()]
    assert len(error_lines) == 1 and "secret" not in out.stderr
    assert set(tmp_path.iterdir()) == before  # nothing written
    assert out.stdout == ""
