"""Search spaces as YAML files, validated, turned into an Optuna define-by-run function.

Schema (``search_spaces/*.yaml``)::

    description: one line            # optional
    base_preset: ppo                 # optional: the preset the sampled keys override (default ppo)
    mutable:                         # optional (--scheduler pbt|pb2): keys changed during training
      alpha_r: [0.0, 2.0]            #   within [lo, hi]; PBT also takes {choice: [...]}
    params:                          # config key -> one distribution
      form:  {choice: [Q, V, P]}
      lr:    {loguniform: [1.0e-4, 3.0e-3]}
      lambda: {uniform: [0.9, 1.0]}
      num_epochs: {int: [1, 20]}     # inclusive; {int: [lo, hi], log: true} also works
      use_kl_loss: {fixed: false}
      scale:
        choice: [sq, ml, mla]
        when:                        # keys that exist only under one choice
          mla:
            alpha_o: {uniform: [0.0, 2.0]}
            alpha_r: {uniform: [0.0, 2.0]}

Distributions: ``choice`` (non-empty list), ``uniform`` / ``loguniform`` (``[lo, hi]``,
``lo < hi``, loguniform needs ``lo > 0``), ``int`` (``[lo, hi]`` integers, ``lo < hi``),
``fixed`` (any value). Keys must be config keys (``training.allowed_keys()``). Every
error is a ``ValueError`` naming the file, the key and what is allowed.

Example::

    >>> space = load_space("paper")
    >>> sorted(space.params)
    ['delta_r', 'form', 'scale']
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import math
import pathlib

import yaml

SHIPPED = "pgu_rllib.search_spaces"  # the repository's search_spaces/, installed with the package
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int", "fixed")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    name: str
    source: str  # the YAML text, stored in the registry with every search
    params: dict
    base_preset: str = "ppo"
    description: str = ""
    mutable: dict = dataclasses.field(default_factory=dict)  # key -> [lo, hi] or {"choice": [...]}

    def __call__(self, trial) -> dict:
        """Optuna define-by-run: suggest every key; return the fixed ones as constants."""
        return _suggest(trial, self.params)

    def check(self, task: str, budget: int | None = None) -> None:
        """Build the config of every corner on ``task``: ``ValueError`` names the first point the
        config refuses (e.g. form P with Δ_R = Â), before any trial can sample it."""
        from pgu_rllib.tasks.training import build_config

        for point in self.corners():
            try:
                build_config(task, self.base_preset, point, seed=0, budget=budget)
            except ValueError as err:
                raise ValueError(f"space {self.name}: the point {point} is refused: {str(err).splitlines()[0]}") from None

    def corners(self, limit: int = 20_000):
        """Every combination of the ``choice`` values (following ``when``), each twice: with every
        range at its low end and at its high end. A space whose corners all build a valid config
        can only sample valid ones, up to cross-key constraints between two ranges."""
        count = 0
        for end in (0, 1):
            for point in _corners({**self.params, **{k: _as_spec(v) for k, v in self.mutable.items()}}, end):
                yield point
                count += 1
                if count >= limit:
                    return


def _suggest(trial, params: dict) -> dict:
    constants = {}
    for key, spec in params.items():
        if "fixed" in spec:
            constants[key] = spec["fixed"]
            continue
        if "choice" in spec:
            value = trial.suggest_categorical(key, spec["choice"])
        elif "uniform" in spec:
            value = trial.suggest_float(key, *spec["uniform"])
        elif "loguniform" in spec:
            value = trial.suggest_float(key, *spec["loguniform"], log=True)
        else:
            value = trial.suggest_int(key, *spec["int"], log=bool(spec.get("log", False)))
        sub = spec.get("when", {}).get(value)
        if sub:
            constants.update(_suggest(trial, sub))
    return constants


def _as_spec(mutable_spec) -> dict:
    return mutable_spec if isinstance(mutable_spec, dict) else {"uniform": list(mutable_spec)}


def _corners(params: dict, end: int):
    """Points of ``params`` with every range at index ``end`` of its [lo, hi] (see ``corners``)."""
    items = list(params.items())
    if not items:
        yield {}
        return
    (key, spec), rest = items[0], dict(items[1:])
    if "fixed" in spec:
        values = [spec["fixed"]]
    elif "choice" in spec:
        values = spec["choice"]
    else:
        kind = next(k for k in ("uniform", "loguniform", "int") if k in spec)
        values = [spec[kind][end]]
    for value in values:
        branch = spec.get("when", {}).get(value) if isinstance(value, (str, int, float, bool)) else None
        for tail in _corners({**(branch or {}), **rest}, end):
            yield {key: value, **tail}


def _shipped():
    return importlib.resources.files(SHIPPED)


def space_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in _shipped().iterdir() if p.name.endswith(".yaml"))


def resolve_space_path(name_or_path: str):
    """A shipped space name (``paper``, read from the installed package) or a path to the user's
    own YAML file. Returns something with ``read_text()`` and ``name``."""
    path = pathlib.Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path or path.exists():
        if not path.is_file():
            raise ValueError(f"search space file {name_or_path!r} does not exist")
        return path
    shipped = _shipped() / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise ValueError(f"unknown search space {name_or_path!r}; shipped: {', '.join(space_names())} "
                         f"(or give a path to a .yaml file)")
    return shipped


def load_space(name_or_path: str, allowed_keys: set[str] | None = None) -> SearchSpace:
    """Read and validate a space; ``allowed_keys`` defaults to the config keys."""
    path = resolve_space_path(name_or_path)
    where = str(path) if isinstance(path, pathlib.Path) else path.name
    text = path.read_text()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ValueError(f"{where}: not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("params"), dict) or not doc["params"]:
        raise ValueError(f"{where}: expected a mapping with a non-empty 'params' mapping")
    extra = sorted(set(doc) - {"params", "description", "base_preset", "mutable"})
    if extra:
        raise ValueError(f"{where}: unknown top-level key(s) {', '.join(extra)}; "
                         f"allowed: params, description, base_preset, mutable")
    mutable = _check_mutable(where, doc.get("mutable") or {})
    if allowed_keys is None:
        from pgu_rllib.tasks.training import allowed_keys as _allowed

        allowed_keys = _allowed()
    base = doc.get("base_preset", "ppo")
    from pgu_rllib.core.presets import PRESETS

    if base not in PRESETS:
        raise ValueError(f"{where}: base_preset {base!r} is unknown; known: {', '.join(PRESETS)}")
    _validate_params(where, doc["params"], allowed_keys, seen=set())
    return SearchSpace(name=path.name.rsplit(".", 1)[0], source=text, params=doc["params"], base_preset=base,
                       description=str(doc.get("description", "")), mutable=mutable)


def _check_mutable(where: str, mutable) -> dict:
    from pgu_rllib.rllib.algorithm import MUTABLE_KEYS

    if not isinstance(mutable, dict):
        raise ValueError(f"{where}: mutable must be a mapping of key -> [lo, hi] or {{choice: [...]}}")
    for key, spec in mutable.items():
        if key not in MUTABLE_KEYS:
            raise ValueError(f"{where}: mutable: {key!r} cannot change during training; allowed: {', '.join(MUTABLE_KEYS)}")
        if isinstance(spec, dict) and set(spec) == {"choice"} and isinstance(spec["choice"], list) and spec["choice"]:
            continue
        _check_range(where, f"mutable: {key}", "range", spec)
    return mutable


def _validate_params(where: str, params, allowed: set[str], seen: set[str]) -> None:
    if not isinstance(params, dict) or not params:
        raise ValueError(f"{where}: params must be a non-empty mapping of config key -> distribution")
    for key, spec in params.items():
        if key not in allowed:
            raise ValueError(f"{where}: unknown key {key!r}; allowed: update-rule keys or PPOConfig keys")
        if key in seen:
            raise ValueError(f"{where}: key {key!r} is defined twice")
        seen.add(key)
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: {key}: expected a mapping like {{uniform: [lo, hi]}}, got {spec!r}")
        kinds = [k for k in spec if k in DISTRIBUTIONS]
        unknown = sorted(set(spec) - set(DISTRIBUTIONS) - {"when", "log"})
        if unknown or len(kinds) != 1:
            bad = ", ".join(unknown) if unknown else (", ".join(kinds) or "none")
            raise ValueError(f"{where}: {key}: unknown or missing distribution ({bad}); "
                             f"use exactly one of: {', '.join(DISTRIBUTIONS)}")
        kind, arg = kinds[0], spec[kinds[0]]
        if kind == "choice":
            if not isinstance(arg, list) or not arg:
                raise ValueError(f"{where}: {key}: choice needs a non-empty list")
            bad = [v for v in arg if not (v is None or isinstance(v, (str, int, float, bool)))]
            if bad:
                raise ValueError(f"{where}: {key}: choice values must be numbers, strings, booleans or null; "
                                 f"got {bad[0]!r}")
            if any(isinstance(v, float) and not math.isfinite(v) for v in arg):
                raise ValueError(f"{where}: {key}: choice values must be finite; got {arg!r}")
        elif kind in ("uniform", "loguniform", "int"):
            _check_range(where, key, kind, arg)
        if "when" in spec:
            if kind != "choice" or not isinstance(spec["when"], dict):
                raise ValueError(f"{where}: {key}: 'when' is allowed only under a choice, as a mapping")
            for value, sub in spec["when"].items():
                if value not in arg:
                    raise ValueError(f"{where}: {key}: 'when' names {value!r}, which is not one of {arg}")
                branch_seen = set(seen)
                _validate_params(where, sub, allowed, branch_seen)
        if "log" in spec and kind != "int":
            raise ValueError(f"{where}: {key}: 'log' is allowed only with int (use loguniform)")


def _check_range(where, key, kind, arg) -> None:
    if not (isinstance(arg, list) and len(arg) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in arg)):
        raise ValueError(f"{where}: {key}: {kind} needs [lo, hi] numbers, got {arg!r}")
    lo, hi = arg
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ValueError(f"{where}: {key}: empty range {kind} [{lo}, {hi}]; need lo < hi")
    if kind == "loguniform" and lo <= 0:
        raise ValueError(f"{where}: {key}: loguniform needs lo > 0, got {lo}")
    if kind == "int" and not (float(lo).is_integer() and float(hi).is_integer()):
        raise ValueError(f"{where}: {key}: int needs integer bounds, got {arg!r}")
