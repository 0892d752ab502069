"""The wheel carries what the service needs: built with pip, installed non-editable in a fresh
venv (its dependencies seen through the project's venv, not its source), a search with a shipped
space runs from an unrelated directory, and the registry's migrations come along."""
import pathlib
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp.glob("pgu_rllib-*.whl"))
    venv = tmp / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # dependencies from the project's venv; a plain path line does not run its editable finder
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True)
    return wheel, venv


def test_the_wheel_holds_the_spaces_and_the_migrations(installed):
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    for space in ("paper", "mla", "full", "ppo_knobs"):
        assert f"pgu_rllib/search_spaces/{space}.yaml" in names
    assert "pgu_rllib/service/migrations/env.py" in names
    assert any(n.startswith("pgu_rllib/service/migrations/versions/0002_") for n in names)
    source = {str(p.relative_to(ROOT)) for p in (ROOT / "pgu_rllib").rglob("*.py")}
    assert source - set(names) == set()  # every module of the source tree (a new subpackage too) ships


def test_a_search_with_a_shipped_space_runs_from_another_directory(installed, tmp_path):
    _, venv = installed
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import pgu_rllib; print(pgu_rllib.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(venv) in where and str(ROOT) not in where  # the installed copy, not the source tree
    out = subprocess.run([str(venv / "bin" / "pgu"), "search", "--task", "bandit", "--space", "paper", "--trials", "1",
                          "--env-steps", "512", "--top-k", "1", "--selection-seeds", "1", "--test-seeds", "1",
                          "--max-concurrent", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "winner (*) on 1 test seed:" in out.stdout
    assert (tmp_path / "pgu_results" / "registry.db").exists()
