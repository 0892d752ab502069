"""A trial that restarts in the same driver (a PBT pause, a retry) keeps every row of its ``result.json`` and
``progress.csv`` (``rllib.accel.tune_loggers``); a trial resumed by a new driver gets the stored rows back.
Tune's own loggers, on the same files, lose the rows the storage copy had not caught up with: the PBT
test's flake of issue 28."""
import pathlib
import types

import pyarrow.fs
import pytest
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from pgu_rllib.rllib.accel.tune_loggers import CSVLogger, JsonLogger

FILES = {JsonLogger: "result.json", JsonLoggerCallback: "result.json",
         CSVLogger: "progress.csv", CSVLoggerCallback: "progress.csv"}


def trial(tmp_path: pathlib.Path, local_rows: list[str] | None, stored_rows: list[str], name: str):
    local, stored = tmp_path / "driver", tmp_path / "storage"
    local.mkdir()
    stored.mkdir()
    if local_rows is not None:
        (local / name).write_text("".join(local_rows))
    (stored / name).write_text("".join(stored_rows))
    return Trial(local_path=str(local), storage=types.SimpleNamespace(
        trial_fs_path=str(stored), storage_filesystem=pyarrow.fs.LocalFileSystem()))


class Trial:
    """What the loggers read of a Tune trial that restarts from a checkpoint (hashable, as Tune's is)."""

    def __init__(self, local_path: str, storage):
        self.local_path, self.storage, self.config, self.checkpoint = local_path, storage, {"lr": 0.1}, object()

    def init_local_path(self) -> None:
        pathlib.Path(self.local_path).mkdir(parents=True, exist_ok=True)


def start(logger, t) -> str:
    """The logger's start of a (re)started trial, through its public calls; returns the driver's file."""
    if isinstance(logger, CSVLoggerCallback):
        logger.log_trial_result(3, t, {"x": 3})  # the CSV logger opens its file on the first result
    else:
        logger.log_trial_start(t)
    name = FILES[type(logger)]
    return (pathlib.Path(t.local_path) / name).read_text()


@pytest.mark.parametrize("logger", [JsonLogger, CSVLogger])
def test_a_restart_in_the_same_driver_keeps_the_drivers_rows(tmp_path, logger):
    name = FILES[logger]
    t = trial(tmp_path, ["row 1\n", "row 2\n"], ["row 1\n"], name)  # the stored copy is one upload behind
    assert start(logger(), t).startswith("row 1\nrow 2\n")


@pytest.mark.parametrize("tunes", [JsonLoggerCallback, CSVLoggerCallback])
def test_tunes_own_logger_loses_them(tmp_path, tunes):
    """What the subclass exists for: with Tune's logger the same restart drops row 2."""
    name = FILES[tunes]
    t = trial(tmp_path, ["row 1\n", "row 2\n"], ["row 1\n"], name)
    text = start(tunes(), t)
    assert text.startswith("row 1\n") and "row 2" not in text


@pytest.mark.parametrize("logger", [JsonLogger, CSVLogger])
def test_a_resume_in_a_new_driver_gets_the_stored_rows_back(tmp_path, logger):
    name = FILES[logger]
    t = trial(tmp_path, None, ["row 1\n", "row 2\n"], name)  # a new driver has no file of its own
    assert start(logger(), t).startswith("row 1\nrow 2\n")
