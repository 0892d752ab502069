"""Where a result came from: the package versions and the git commit stored with every search and best
row, and the registry URL made absolute for trial processes."""
from __future__ import annotations

import importlib.metadata as md
import os
import pathlib
import subprocess


def versions() -> dict:
    out = {}
    for dist in ("pgu-rllib", "ray", "torch", "gymnasium", "mujoco", "optuna"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def git_commit() -> str | None:
    """The commit of the source tree, when it is a git checkout (or $PGU_GIT_COMMIT)."""
    if os.environ.get("PGU_GIT_COMMIT"):
        return os.environ["PGU_GIT_COMMIT"]
    try:
        here = pathlib.Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def absolute_sqlite(url: str) -> str:
    """Optuna and Tune workers may run elsewhere: make a relative SQLite path absolute."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return parsed.set(database=str(pathlib.Path(parsed.database).resolve())).render_as_string(hide_password=False)
    return url
