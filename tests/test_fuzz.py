"""The fuzz tier (issue 24 §8): Hypothesis builds ``--set`` values, search-space YAMLs and registry URLs,
and every one either validates (exit 0 of ``--dry-run``) or is refused with exit 2 and one line
``pgu: error: ...``; never a traceback, and nothing is written either way. CI runs a bounded number of
examples per property (``FUZZ_EXAMPLES``, 40); a longer run: ``PGU_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py``.
Each property runs in-process (``cli`` fixture): the commands validate before any Ray starts."""
import os
import pathlib
import tempfile

import yaml
from hypothesis import HealthCheck, event, example, given, settings, strategies as st

from pgu_rllib.core.update_rule import KEYS

FUZZ_EXAMPLES = int(os.environ.get("PGU_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

RULE_KEYS = sorted(KEYS)
PPO_KEYS = ["lr", "gamma", "lambda_", "num_epochs", "minibatch_size", "train_batch_size_per_learner", "entropy_coeff",
            "vf_loss_coeff", "grad_clip", "clip_param", "vf_clip_param", "kl_coeff", "use_kl_loss",
            "num_envs_per_env_runner", "env_config", "model_config", "seed"]
keys = st.one_of(st.sampled_from(RULE_KEYS + PPO_KEYS), st.from_regex(r"[a-z_]{1,12}", fullmatch=True))
words = st.sampled_from(["V", "Q", "P", "ppo_clip", "mla", "dpo", "sq", "advantage", "q", "first_order", "natural",
                         "soft", "logit", "true", "false", "null", "nan", "inf", "-inf", "[64, 64]", "[[0, 1e-3]]",
                         "{a: 1}", "", "1e400", "-0", "0x10"])
numbers = st.one_of(st.integers(-10**15, 10**15), st.floats(allow_nan=True, allow_infinity=True))
values = st.one_of(words, numbers.map(repr), st.text(alphabet="abc01.-e[]{},: ", max_size=12))


def refused_or_valid(out, where: pathlib.Path) -> None:
    event(f"exit {out.returncode}")  # --hypothesis-show-statistics: how many were valid, how many refused
    assert out.returncode in (0, 2), (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    if out.returncode == 2:
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("pgu: error: "), out.stderr[-2000:]
    assert sorted(p.name for p in where.iterdir() if p.name != "space.yaml") == [], "nothing written"


@FUZZ
@given(st.lists(st.tuples(keys, values), min_size=1, max_size=4))
def test_any_set_value_is_accepted_or_refused_in_one_line(cli, pairs):
    with tempfile.TemporaryDirectory() as tmp:
        sets = [x for k, v in pairs for x in ("--set", f"{k}={v}")]
        out = cli("train", "--task", "bandit", *sets, "--dry-run", cwd=tmp)
        refused_or_valid(out, pathlib.Path(tmp))


bounds = st.lists(st.one_of(numbers, words), min_size=0, max_size=3)
distributions = st.one_of(
    st.builds(lambda b: {"choice": b}, st.lists(st.one_of(words, numbers), min_size=0, max_size=4)),
    st.builds(lambda d, b: {d: b}, st.sampled_from(["uniform", "loguniform", "int", "normal", "fixed"]), bounds),
    st.builds(lambda v: {"fixed": v}, st.one_of(words, numbers)),
    st.one_of(words, numbers),
)
ordered = st.tuples(st.floats(1e-6, 1.0), st.floats(1e-6, 1.0)).map(sorted).map(list)
plausible = st.fixed_dictionaries({}, optional={  # spaces a user would write, some valid, some not
    "lr": st.builds(lambda b: {"loguniform": b}, ordered),
    "gamma": st.builds(lambda b: {"uniform": b}, ordered),
    "num_epochs": st.builds(lambda a, b: {"int": [a, b]}, st.integers(-2, 12), st.integers(-2, 12)),
    "form": st.builds(lambda c: {"choice": c}, st.lists(st.sampled_from(["V", "Q", "P", "X"]), min_size=1, max_size=3)),
    "scale": st.builds(lambda c: {"choice": c}, st.lists(st.sampled_from(["ppo_clip", "mla", "sq", "dpo", "nope"]),
                                                         min_size=1, max_size=3)),
    "alpha_o": st.builds(lambda b: {"uniform": b}, ordered),
})
spaces = st.one_of(
    st.builds(lambda params: {"params": params}, plausible),
    st.builds(lambda params, preset: {"params": params, **({"base_preset": preset} if preset else {})},
              st.dictionaries(keys, distributions, max_size=4), st.sampled_from([None, "ppo", "mla", "sgd"])),
    st.one_of(words, numbers, st.lists(words, max_size=2)),
)


@FUZZ
@given(spaces)
def test_any_space_file_is_accepted_or_refused_in_one_line(cli, space):
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "space.yaml"
        path.write_text(yaml.safe_dump(space))
        out = cli("search", "--task", "bandit", "--space", str(path), "--trials", "2", "--dry-run", cwd=tmp)
        refused_or_valid(out, pathlib.Path(tmp))


schemes = st.sampled_from(["sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg", "mysql", "nosuch", "",
                           "sqlite:", "http"])
parts = st.text(alphabet="abcXYZ019@:/?%#. ", max_size=12)


@FUZZ
@example("", "", "Secret00", "127.0.0.1:1", "")  # found by this test: a malformed URL echoed its password
@given(schemes, parts, parts, st.sampled_from(["127.0.0.1:1", "127.0.0.1", "", "[::1]:1", "host:port"]), parts)
def test_any_registry_url_is_accepted_or_refused_in_one_line(cli, scheme, user, password, host, path):
    with tempfile.TemporaryDirectory() as tmp:
        if scheme.startswith("sqlite"):
            url = f"{scheme}:///{tmp}/{path}"
        else:
            url = f"{scheme}://{user}:{password}@{host}/{path}"
        out = cli("search", "--task", "bandit", "--space", "paper", "--registry", url, "--dry-run", cwd=tmp)
        refused_or_valid(out, pathlib.Path(tmp))
        plain = not any(c in user + password for c in "@:/?#% ")  # else it is no password in the URL's grammar
        if plain and len(password) >= 4 and password not in user + host + path and out.returncode == 2:
            assert password not in out.stderr  # tests/test_secrets.py: passwords with any of those characters
