"""Tune's ``OptunaSearch`` made resumable without pickling its storage (Ray 2.60.0 internals, guarded).

``OptunaSearch`` keeps its study, storage and live Optuna trials in private attributes
(``_ot_study``, ``_storage``, ``_study_name``, ``_sampler``, ``_ot_trials``, ``_completed_trials``) and
pickles all of them into Tune's experiment state, the storage URL (and its password) included. This
subclass is the one place that reads those names:

* its pickled state holds no storage and trial ids instead of live trials; ``reopen_storage`` (given by
  the caller) re-opens the storage after a restore;
* an update to an Optuna trial that is already finished (a kill between Optuna's ``tell`` and Tune's
  state save) is dropped instead of failing the resume;
* ``prune(trial_id)`` tells the study a trial was stopped early (PRUNED, as Optuna's own pruners leave it).
* ``running()`` names the trials it started and has not told (a resume counts them against ``--trials``).

``require`` fails at construction, naming the attribute, on a Ray release that lacks one.
"""
from __future__ import annotations

import pickle

import optuna
from ray.tune.search.optuna import OptunaSearch

from pgu_rllib.rllib.accel.guard import require

PRIVATE = ("_ot_trials", "_ot_study", "_storage", "_study_name", "_sampler", "_completed_trials")


class StorageFreeOptunaSearch(OptunaSearch):
    """``OptunaSearch`` whose pickled state holds no storage, tolerant of a re-run finished trial."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        require(self, PRIVATE, "resuming an Optuna search")

    def reopen_storage(self):
        """The Optuna storage to load the study from after a restore (None: stay without one)."""
        return None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_storage"] = state["_ot_study"] = None
        state["_ot_trials"] = {k: getattr(t, "_trial_id", t) for k, t in self._ot_trials.items()}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        storage = self.reopen_storage() if self._storage is None and self._study_name else None
        if storage is not None:
            self._storage = storage
            self._ot_study = optuna.load_study(study_name=self._study_name, storage=storage, sampler=self._sampler)
            self._ot_trials = {k: optuna.trial.Trial(self._ot_study, tid) for k, tid in self._ot_trials.items()}

    def save(self, checkpoint_path: str):
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str):
        with open(checkpoint_path, "rb") as f:
            self.__setstate__(pickle.load(f))

    def is_open(self, trial_id) -> bool:
        """Whether ``trial_id`` is a live Optuna trial of this searcher, not yet told."""
        return trial_id in self._ot_trials and trial_id not in self._completed_trials

    def running(self) -> set:
        """The trial ids this searcher started that are not yet told (``is_open``)."""
        return {k for k in self._ot_trials if self.is_open(k)}

    def told(self, trial_id) -> bool:
        """Whether the study already holds ``trial_id``'s Optuna trial as finished: an attempt killed after
        Optuna's ``tell`` but before Tune saved its state, which the resume re-runs and stops at once."""
        trial = self._ot_trials.get(trial_id)
        if trial is None or self._ot_study is None:
            return False
        frozen = [t for t in self._ot_study.get_trials(deepcopy=False) if t.number == trial.number]
        return bool(frozen) and frozen[0].state.is_finished()

    def prune(self, trial_id) -> None:
        """Tell the study that ``trial_id`` stopped early: PRUNED, ranked below every finished trial."""
        if self.told(trial_id):
            self._ot_trials.pop(trial_id, None)
            return
        self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)

    def on_trial_result(self, trial_id, result):
        try:
            super().on_trial_result(trial_id, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass

    def on_trial_complete(self, trial_id, result=None, error=False):
        if self.told(trial_id):  # Optuna refuses a second tell (ValueError: "Cannot tell a COMPLETE trial.")
            self._ot_trials.pop(trial_id, None)
            return
        try:
            super().on_trial_complete(trial_id, result, error)
        except optuna.exceptions.UpdateFinishedTrialError:
            self._ot_trials.pop(trial_id, None)
