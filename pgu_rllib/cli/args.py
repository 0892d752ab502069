"""The argument types of ``pgu`` (each refuses a bad value with one line naming it and what is allowed),
``--set`` parsing, and the parser class that prints argparse's errors on one line and exits 2."""
from __future__ import annotations

import argparse

DEFAULT_REGISTRY = "sqlite:///pgu_results/registry.db"


def parse_value(text: str):
    """``--set`` values: numbers (``1e-3``, ``64``), else YAML (``true``, ``null``, ``[64, 64]``, ``V``)."""
    import yaml

    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_sets(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items as a dict (values as ``parse_value`` reads them); shared with
    ``benchmarks/``. ``ValueError`` names an item without ``=``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r} is not key=value")
        out[key.strip()] = parse_value(value)
    return out


MAX_CLI_COUNT = 10**12  # the largest count a flag takes (budgets, trials); the service checks its own limits


def positive_int(text: str, high: int = MAX_CLI_COUNT, what: str = "a whole number") -> int:
    """A whole number in [1, ``high``] (``1e5`` and ``2048.0`` are fine; ``1e400``, ``2.5`` are not)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    if not (v <= high and v.is_integer()):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: {what} in [1, {high}]")
    return int(v)


def train_seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= v < 2**31:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: an integer in [0, 2^31)")
    return v


def port(text: str) -> int:
    return positive_int(text, 65535, "a port")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every default in the help, but not "(default: None)" on a required or unset option."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


FLAGS: set[str] = set()  # every option string of every sub-command (for naming a bad value by its flag)


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block), exit 2, and every default in the help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        FLAGS.update(a for a in args if a.startswith("--"))
        return super().add_argument(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"pgu: error: {message} (see `{self.prog} --help`)\n")


def fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return v
