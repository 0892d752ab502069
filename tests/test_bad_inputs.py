"""Every bad input is refused before anything is written (issue 14): one line ``pgu: error: …``
naming the bad value, exit 2, no traceback, nothing on stdout, no file or folder created, no
password echoed. In-process (``cli`` fixture): each of these fails before Ray would start.

Categories: search-space files (every value checked against its domain, every combination of
choices built), ``--set`` values, numbers and flags of every command, names and paths, registry
URLs. The counts are in the closing note of issue 14 (``pytest --collect-only -q tests/test_bad_inputs.py``).
"""
import pathlib

import pytest

SPACES = {  # file text -> what the one line must say
    "params: {form: {choice: [Q, V]}\n": "not valid YAML",
    "params: [1, 2]\n": "expected a mapping with a non-empty 'params' mapping",
    "params: {}\n": "expected a mapping with a non-empty 'params' mapping",
    "colour: red\nparams: {lr: {fixed: 0.1}}\n": "unknown top-level key(s) colour",
    "params:\n  lr: {normal: [0, 1]}\n": "lr: unknown or missing distribution (normal)",
    "params:\n  lr: {uniform: [0.1, 0.2], loguniform: [0.1, 0.2]}\n": "use exactly one of",
    "params:\n  lr: {uniform: [0.1, 0.1]}\n": "empty range uniform [0.1, 0.1]",
    "params:\n  lr: {uniform: [0.2, 0.1]}\n": "empty range uniform [0.2, 0.1]",
    "params:\n  lr: {loguniform: [0, 1]}\n": "loguniform needs lo > 0",
    "params:\n  num_epochs: {int: [1.5, 4]}\n": "int needs integer bounds",
    "params:\n  lr: {uniform: [a, b]}\n": "uniform needs [lo, hi] numbers",
    "params:\n  lr: {uniform: [.nan, 1]}\n": "empty range uniform [nan, 1]",
    "params:\n  lr: {uniform: [0.1, .inf]}\n": "empty range uniform [0.1, inf]",
    "params:\n  form: {choice: []}\n": "choice needs a non-empty list",
    "params:\n  form: {choice: V}\n": "choice needs a non-empty list",
    "params:\n  form: {choice: [[1, 2], [3]]}\n": "choice values must be numbers, strings, booleans or null; got [1, 2]",
    "params:\n  form: {choice: [{a: 1}]}\n": "choice values must be numbers, strings, booleans or null; got {'a': 1}",
    "params:\n  lr: {choice: [0.1, .nan]}\n": "choice values must be finite",
    "params:\n  colour: {choice: [red]}\n": "unknown key 'colour'",
    "base_preset: sgd\nparams:\n  lr: {fixed: 0.1}\n": "base_preset 'sgd' is unknown",
    "params:\n  lr:\n    uniform: [0.1, 0.2]\n    when: {0.1: {tau: {fixed: 1}}}\n": "'when' is allowed only under a choice",
    "params:\n  form:\n    choice: [Q, V]\n    when: {P: {tau: {fixed: 1}}}\n": "'when' names 'P', which is not one of",
    "params:\n  lr: {uniform: [0.1, 0.2], log: true}\n": "'log' is allowed only with int",
    "params:\n  form: {choice: [Q, X]}\n": "form='X' is not allowed; allowed: Q, V, P",
    "params:\n  scale: {fixed: mla}\n  alpha_o: {uniform: [-5, -1]}\n  alpha_r: {fixed: 0}\n": "alpha_o=-5 is out of range",
    "params:\n  tau: {uniform: [-1, 0.5]}\n": "tau=-1 is out of range",
    "params:\n  gamma: {uniform: [1.5, 2]}\n": "gamma=1.5 is not allowed; allowed: a number in (0, 1]",
    "params:\n  lr: {uniform: [-1, 1]}\n": "lr=-1 is not allowed",
    "params:\n  minibatch_size: {int: [1000, 2000]}\n": "`minibatch_size` (1000) must be <=",
    "params:\n  num_epochs: {int: [0, 3]}\n": "num_epochs=0 is not allowed; allowed: an integer >= 1",
    "params:\n  form: {choice: [V, P]}\n": "form='P' with delta_r='advantage' is not PGPB",
    "params:\n  normalize_delta_r: {fixed: true}\n": "already standardised (by RLlib over the batch)",
    "params:\n  scale: {choice: [sq, mla]}\n": "scale 'mla' needs parameter(s) alpha_o, alpha_r",
    "params:\n  epsilon: {uniform: [0.1, 1.5]}\n": "epsilon=1.5 is out of range",
    "params:\n  delta_r: {fixed: return}\n": "delta_r='return' (Monte-Carlo returns) needs batch_mode='complete_episodes'",
    "params:\n  entropy_coeff: {uniform: [-0.1, 0.1]}\n": "entropy_coeff=-0.1 is not allowed",
    "params:\n  grad_clip: {choice: [0, 0.5]}\n": "grad_clip=0 is not allowed",
    "": "expected a mapping with a non-empty 'params' mapping",
}

SETS = {
    "lr=nan": "lr=nan is not allowed", "lr=-1": "lr=-1 is not allowed", "lr=inf": "lr=inf is not allowed",
    "gamma=1.5": "gamma=1.5 is not allowed; allowed: a number in (0, 1]", "gamma=0": "gamma=0 is not allowed",
    "num_epochs=0": "num_epochs=0 is not allowed", "num_epochs=2.5": "num_epochs=2.5 is not allowed",
    "minibatch_size=100000": "`minibatch_size` (100000) must be <=",
    "form=P": "form='P' with delta_r='advantage' is not PGPB", "scale=huber": "scale='huber' is not allowed",
    "tau=0": "tau=0 is out of range", "colour=red": "unknown config key(s) colour",
    "novalue": "--set 'novalue' is not key=value", "entropy_coeff=-1": "entropy_coeff=-1 is not allowed",
    "grad_clip=0": "grad_clip=0 is not allowed", "train_batch_size_per_learner=0": "train_batch_size_per_learner=0 is not allowed",
    "model_config={bogus: 1}": "model_config: unknown field(s) bogus", "log_std_init=nan": "log_std_init=nan is not allowed",
    "delta_r=td": "delta_r='td' is not allowed", "kl_schedule=cosine": "kl_schedule='cosine' is not allowed",
}

SEARCH = ["search", "--task", "bandit", "--space", "paper", "--trials", "2"]
FLAGS = [  # (argv, what the one line must say)
    (["train", "--task", "bandit", "--env-steps", "0"], "argument --env-steps: '0' must be > 0"),
    (["train", "--task", "bandit", "--env-steps", "1e400"], "argument --env-steps: '1e400' is not allowed"),
    (["train", "--task", "bandit", "--env-steps", "2.5"], "argument --env-steps: '2.5' is not allowed"),
    ([*SEARCH, "--trials", "1e400"], "argument --trials: '1e400' is not allowed"),
    ([*SEARCH, "--trials", "0"], "argument --trials: '0' must be > 0"),
    ([*SEARCH, "--trials", "100000"], "--trials=100000 is not allowed; allowed: an integer in [1, 1000]"),
    ([*SEARCH, "--trials", "many"], "argument --trials: 'many' is not an integer"),
    ([*SEARCH, "--seed", "-1"], "--seed=-1 is not allowed"),
    ([*SEARCH, "--seed", "99999999"], "--seed=99999999 is not allowed"),
    ([*SEARCH, "--top-k", "0"], "argument --top-k: '0' must be > 0"),
    ([*SEARCH, "--selection-seeds", "2000"], "--selection-seeds=2000 is not allowed"),
    ([*SEARCH, "--test-seeds", "2000"], "--test-seeds=2000 is not allowed"),
    ([*SEARCH, "--max-concurrent", "0"], "argument --max-concurrent: '0' must be > 0"),
    ([*SEARCH, "--gpus-per-trial", "-1"], "argument --gpus-per-trial: '-1' must be >= 0"),
    ([*SEARCH, "--gpus-per-trial", "inf"], "--gpus-per-trial=inf is not allowed; allowed: a finite number >= 0"),
    ([*SEARCH, "--gpus-per-trial", "nan"], "--gpus-per-trial=nan is not allowed"),
    ([*SEARCH, "--env-steps", "1e13"], "argument --env-steps: '1e13' is not allowed; allowed: a whole number in [1, 1000000000000]"),
    (["dashboard", "--port", "99999"], "argument --port: '99999' is not allowed; allowed: a port in [1, 65535]"),
    (["dashboard", "--port", "0"], "argument --port: '0' must be > 0"),
    (["search", "--task", "pong", "--space", "paper"], "unknown task 'pong'; known: bandit"),
    (["search", "--task", "bandit", "--space", "nosuch"], "unknown search space 'nosuch'; shipped: drift, full, mla, paper, ppo_knobs"),
    (["search", "--task", "bandit", "--space", "../paper"], "search space file '../paper' does not exist"),
    (["train", "--task", "bandit", "--preset", "sgd"], "unknown preset 'sgd'; known: ppo"),
    (["evaluate", "--task", "bandit", "--preset", "sgd"], "unknown preset 'sgd'; known: ppo"),
    (["evaluate", "--task", "bandit", "--set", "lr=-1"], "lr=-1 is not allowed"),
    (["export", "--task", "bandit", "--format", "json"], "argument --format: invalid choice: 'json' (choose from 'yaml', 'rlzoo')"),
    (["best", "--task", "pong"], "unknown task 'pong'"),
    (["report", "--name", "nosuch", "--out", "r"], "no search named 'nosuch'"),
    (["train", "--task", "bandit", "--from-best"], "no best configuration for task 'bandit' in sqlite:///"),
    ([*SEARCH, "--resume"], "nothing to resume: no search 'bandit-paper-s0'"),
    (["registry", "migrate"], "argument action: invalid choice: 'migrate'"),
]

NAMES = ["../../../escaped", "a/b", "x" * 300, ".hidden", "", "bad name", "-dash", "tab\tname", "semi;colon"]

REGISTRIES = {
    "not a url": "registry URL 'not a url' is malformed",
    "nosuchdialect://x": "registry URL 'nosuchdialect://x' cannot be used",
    "sqlite:////proc/x/x.db": "registry sqlite:////proc/x/x.db is unreachable: /proc/x cannot be created",
    "postgresql://user:secret@127.0.0.1:1/db": "registry postgresql://user:***@127.0.0.1:1/db is unreachable",
    "mysql://u:secret@127.0.0.1:1/db": "registry URL 'mysql://u:***@127.0.0.1:1/db' cannot be used",
    "postgresql://user:secret@host:notaport/db": "registry URL 'postgresql://user:***@host:notaport/db' is malformed",
    "postgresql+asyncpg://u:secret@127.0.0.1/db": "registry URL 'postgresql+asyncpg://u:***@127.0.0.1/db' cannot be used",
}


def _refused(out, needle, cwd: pathlib.Path, before: set):
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pgu: error: "), out.stderr[-2000:]
    assert needle in lines[0], lines[0]
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert "secret" not in out.stderr
    assert set(cwd.iterdir()) == before  # nothing written


@pytest.mark.parametrize("text", list(SPACES), ids=[f"space{i}" for i in range(len(SPACES))])
def test_bad_space_file(cli, tmp_path, text):
    (tmp_path / "space.yaml").write_text(text)
    before = set(tmp_path.iterdir())
    out = cli("search", "--task", "bandit", "--space", "space.yaml", "--trials", "2", cwd=tmp_path)
    _refused(out, SPACES[text], tmp_path, before)


@pytest.mark.parametrize("item", list(SETS))
def test_bad_set_value(cli, tmp_path, item):
    out = cli("train", "--task", "bandit", "--set", item, cwd=tmp_path)
    _refused(out, SETS[item], tmp_path, set())


@pytest.mark.parametrize("argv,needle", FLAGS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in FLAGS])
def test_bad_flag(cli, tmp_path, argv, needle):
    out = cli(*argv, cwd=tmp_path)
    _refused(out, needle, tmp_path, set())


@pytest.mark.parametrize("name", NAMES, ids=[f"name{i}" for i in range(len(NAMES))])
def test_bad_name(cli, tmp_path, name):
    out = cli(*SEARCH, f"--name={name}", cwd=tmp_path)
    _refused(out, "--name=", tmp_path, set())
    assert "allowed: 1-100 characters of A-Z a-z 0-9 . _ -" in out.stderr


@pytest.mark.parametrize("url", list(REGISTRIES))
def test_bad_registry(cli, tmp_path, url):
    out = cli(*SEARCH, "--registry", url, cwd=tmp_path)
    _refused(out, REGISTRIES[url], tmp_path, set())


def test_storage_path_that_is_a_file(cli, tmp_path):
    (tmp_path / "f").write_text("x")
    before = set(tmp_path.iterdir())
    _refused(cli(*SEARCH, "--storage-path", "f/tune", cwd=tmp_path), "--storage-path='f/tune' is not allowed",
             tmp_path, before)


def test_export_out_that_is_a_directory_and_report_out_that_is_a_file(cli, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    before = set(tmp_path.iterdir())
    _refused(cli("export", "--task", "bandit", "--out", "d", cwd=tmp_path), "--out='d' is not allowed", tmp_path, before)
    _refused(cli("report", "--name", "x", "--out", "f", cwd=tmp_path), "--out='f' is not allowed", tmp_path, before)


def test_an_existing_name_is_not_reused_and_a_failed_start_does_not_block_it(cli, tmp_path):
    from pgu_rllib.service.registry import Registry

    bad = cli(*SEARCH, "--name", "mine", "--set-typo", cwd=tmp_path)  # argparse refuses: nothing written
    assert bad.returncode == 2 and not (tmp_path / "pgu_results").exists()
    reg = Registry(f"sqlite:///{tmp_path}/pgu_results/registry.db").connect()
    reg.start_search(name="mine", task="bandit", space="paper", space_yaml="", settings={}, storage_path="",
                     versions={}, git_commit=None, resume=False)
    before = set(tmp_path.iterdir())
    _refused(cli(*SEARCH, "--name", "mine", cwd=tmp_path),
             "search 'mine' already exists; pass --resume to continue it or choose a new --name", tmp_path, before)


def test_the_matrix_has_at_least_sixty_inputs():
    n = len(SPACES) + len(SETS) + len(FLAGS) + len(NAMES) + len(REGISTRIES) + 4
    assert n >= 60, n
