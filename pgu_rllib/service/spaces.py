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

class StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, stricter: a key given twice in one mapping (two ``params:`` sections, say) and
    any alias (``*name``, which lets a 1 kB file expand to gigabytes) are errors, not the last one wins."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"aliases (*{event.anchor}) are not allowed in a search space "
                                 f"(line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        keys = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in keys:
                raise yaml.YAMLError(f"key {key!r} is given twice (line {key_node.start_mark.line + 1}); "
                                     f"allowed: each key once")
            keys.add(key)
        return super().construct_mapping(node, deep=deep)


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
        """Build the config of every point of ``points()`` on ``task``: ``ValueError`` names the first point
        the config refuses (e.g. form P with Δ_R = Â), before any trial can sample it."""
        from pgu_rllib.tasks.training import build_config

        for point in self.points():
            try:
                build_config(task, self.base_preset, point, seed=0, budget=budget)
            except ValueError as err:
                raise ValueError(f"space {self.name}: the point {point} is refused: {str(err).splitlines()[0]}") from None

    def points(self):
        """The points whose validity proves every sample's, exactly and with no cap:

        * the *coupled* keys (every key but the independent PPO knobs of ``FREE_KEYS`` sampled from a
          range at top level) take every combination of their choices (following ``when``) and of both
          ends of their ranges, the free keys at their low end;
        * then each free key alone at its high end, the rest as in the first point.

        A validity rule couples keys only through the coupled ones, and every domain is an interval, so
        a sample is valid iff these points are. A space with more than ``MAX_POINTS`` coupled
        combinations is refused as too large to check."""
        params = {**self.params, **{k: _as_spec(v) for k, v in self.mutable.items()}}
        free = {k: spec for k, spec in params.items()
                if k in FREE_KEYS and not spec.get("when") and any(d in spec for d in ("uniform", "loguniform", "int"))}
        coupled = {k: v for k, v in params.items() if k not in free}
        low = {k: _range(spec)[0] for k, spec in free.items()}
        count = _count_points(coupled)
        if count > MAX_POINTS:
            raise ValueError(f"space {self.name}: {count:,} combinations of its coupled keys to check; allowed: at "
                             f"most {MAX_POINTS:,} (fix some choices, or split the space)")
        first = None
        for point in _points(coupled):
            first = first or point
            yield {**point, **low}
        for key, spec in free.items():
            yield {**(first or {}), **low, key: _range(spec)[1]}

    def active_keys(self, config: dict) -> set[str]:
        """The keys a configuration drawn from this space was given: the top-level ones and those of the
        ``when`` branches its values chose (not the other branches' keys, which keep their defaults)."""
        return active_keys(self.params, config)

    def values_of(self, keys) -> dict[str, list]:
        """Every value (fixed, choice) or range end (uniform, loguniform, int) the space gives each of
        ``keys``, under every ``when`` branch."""
        found: dict[str, list] = {}

        def walk(params: dict) -> None:
            for key, spec in params.items():
                if key in keys:
                    values = ([spec["fixed"]] if "fixed" in spec else list(spec["choice"]) if "choice" in spec
                              else list(next(spec[k] for k in ("uniform", "loguniform", "int") if k in spec)))
                    found.setdefault(key, []).extend(values)
                for sub in spec.get("when", {}).values():
                    walk(sub)

        walk(self.params)
        return found



def active_keys(params: dict, config: dict) -> set[str]:
    """See ``SearchSpace.active_keys`` (``lambda`` is read as ``lambda_`` too)."""
    found = set()
    for key, spec in params.items():
        found.add(key)
        value = config.get(key, config.get("lambda_" if key == "lambda" else key))
        branch = spec.get("when", {}).get(value) if isinstance(value, (str, int, float, bool)) else None
        if branch:
            found |= active_keys(branch, config)
    return found


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


FREE_KEYS = {"lr", "lambda", "gamma", "entropy_coeff", "vf_loss_coeff", "grad_clip", "kl_coeff", "kl_target",
             "clip_param", "vf_clip_param"}  # PPO knobs each checked on its own domain (no rule couples them)
MAX_POINTS = 50_000  # ~6 ms each to build and validate: at most about 5 minutes


def _range(spec: dict) -> list:
    return spec[next(k for k in ("uniform", "loguniform", "int") if k in spec)]


def _values(spec: dict) -> list:
    if "fixed" in spec:
        return [spec["fixed"]]
    if "choice" in spec:
        return list(spec["choice"])
    return list(_range(spec))  # both ends


def _branch(spec: dict, value):
    return spec.get("when", {}).get(value) if isinstance(value, (str, int, float, bool)) else None


def _count_points(params: dict) -> int:
    """How many points ``_points`` yields, without making them."""
    if not params:
        return 1
    spec, rest = next(iter(params.values())), dict(list(params.items())[1:])
    return sum(_count_points({**(_branch(spec, v) or {}), **rest}) for v in _values(spec))


def _points(params: dict):
    """Every combination of the values of ``params`` (choices, both ends of ranges), following ``when``."""
    if not params:
        yield {}
        return
    (key, spec), rest = next(iter(params.items())), dict(list(params.items())[1:])
    for value in _values(spec):
        for tail in _points({**(_branch(spec, value) or {}), **rest}):
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
        if not path.exists():
            raise ValueError(f"search space file {name_or_path!r} does not exist")
        if not path.is_file():
            kind = "a directory" if path.is_dir() else "not a regular file"
            raise ValueError(f"search space file {name_or_path!r} is {kind}; allowed: a YAML file")
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
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: not UTF-8 text (byte {err.start}); allowed: a UTF-8 YAML file") from None
    except OSError as err:
        raise ValueError(f"{where}: cannot be read: {err.strerror}") from None
    try:
        doc = yaml.load(text, Loader=StrictLoader)  # noqa: S506 (a SafeLoader: no aliases, no duplicate keys)
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
    _check_mutable_scales(where, mutable, doc["params"], doc.get("base_preset", "ppo"))
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


def _check_mutable_scales(where: str, mutable: dict, params: dict, base: str) -> None:
    """A mutable scale parameter (α_r) must belong to a scale the space can sample: perturbing a key no
    sampled rule reads would change nothing."""
    from pgu_rllib.core.presets import PRESETS
    from pgu_rllib.core.scales import SCALES, scale_params

    owned = [k for k in mutable if k in scale_params()]
    if not owned:
        return
    scales = set()

    def walk(ps):
        for key, spec in ps.items():
            if key == "scale" and isinstance(spec, dict):
                scales.update(spec.get("choice", [spec.get("fixed")]))
            for sub in (spec.get("when", {}) if isinstance(spec, dict) else {}).values():
                walk(sub)

    walk(params)
    scales = scales or {PRESETS.get(base, {}).get("scale", "ppo_clip")}
    for key in owned:
        if not any(key in SCALES[s].params for s in scales if s in SCALES):
            raise ValueError(f"{where}: mutable: {key!r} is a parameter of no scale this space samples "
                             f"({', '.join(sorted(map(str, scales)))}); allowed: that scale's parameters")


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
        if spec.get("log") and arg[0] <= 0:
            raise ValueError(f"{where}: {key}: int with log: true needs lo > 0, got {arg[0]}")


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
