"""Tune's JSON and CSV trial loggers without the row loss on a restart in the same driver (Ray 2.60.0,
guarded): needed for correct results files, not a speed patch.

When a trial restarts from a checkpoint (a synchronous PBT pause, a retry after a worker died), Tune's
``JsonLoggerCallback`` and ``CSVLoggerCallback`` first copy the trial's ``result.json`` / ``progress.csv``
back from the storage path (``LoggerCallback._restore_from_remote``). Tune uploads those files only every
``TUNE_GLOBAL_CHECKPOINT_S``, so the stored copy can be behind the driver's own file, and copying it over the
driver's file dropped the rows in between: a PBT member lost its rows from before the exploit (issue 28's
flake: ``pbt_global.txt`` said the population exploited, yet no ``result.json`` showed the change).

Here the copy is made only when the driver has no file of its own for the trial (a resume in a new driver
process); otherwise the driver's file, which holds every row, is kept. ``require`` fails at construction,
naming the attribute, on a Ray release that lacks it.
"""
from __future__ import annotations

import pathlib

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, LoggerCallback

from pgu_rllib.rllib.accel.guard import require

PRIVATE = ("_restore_from_remote",)


class _KeepDriverRows:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        require(LoggerCallback, PRIVATE, "keeping every row of a restarted trial's results file")

    def _restore_from_remote(self, file_name: str, trial) -> None:
        if not pathlib.Path(trial.local_path, file_name).exists():
            super()._restore_from_remote(file_name, trial)


class JsonLogger(_KeepDriverRows, JsonLoggerCallback):
    """Tune's ``result.json`` logger; a restart in the same driver keeps the driver's rows."""


class CSVLogger(_KeepDriverRows, CSVLoggerCallback):
    """Tune's ``progress.csv`` logger; a restart in the same driver keeps the driver's rows."""
