"""Readers start like readers (issue 23 §5, issue 25 §7): ``pgu best``, ``pgu export`` and ``pgu presets``
import no ``ray.rllib``, and neither torch nor Ray when they print stored rows; ``pgu --help`` imports
neither torch nor Ray nor SQLAlchemy."""
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
