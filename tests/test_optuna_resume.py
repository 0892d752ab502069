"""The searcher of a resumed search (``rllib.accel.optuna_search``) on a real Optuna study in SQLite: a trial
that a kill -9 left open in Tune's saved state but that the study already holds as finished is re-run by the
resume and stopped at once. Telling the study again must neither fail (Optuna: "Cannot tell a COMPLETE trial",
which Tune logged as a traceback and retried the trial three times) nor change what the study holds."""
import optuna

from pgu_rllib.rllib.accel.optuna_search import StorageFreeOptunaSearch


class _Searcher(StorageFreeOptunaSearch):
    url = None

    def reopen_storage(self):
        return optuna.storages.RDBStorage(self.url)


def test_a_trial_the_study_already_finished_is_stopped_quietly_after_a_restore(tmp_path):
    _Searcher.url = f"sqlite:///{tmp_path}/study.db"
    searcher = _Searcher(space={"x": optuna.distributions.FloatDistribution(0, 1)}, metric="m", mode="max",
                         study_name="s", storage=optuna.storages.RDBStorage(_Searcher.url))
    searcher.suggest("a"), searcher.suggest("b"), searcher.suggest("c")
    saved = searcher.__getstate__()  # Tune's last save: a, b and c running
    searcher.on_trial_complete("a", {"m": 1.0})  # then the killed attempt told a COMPLETE, pruned b
    searcher.prune("b")

    resumed = _Searcher.__new__(_Searcher)
    resumed.__setstate__(saved)  # the resume: a, b and c open again in the searcher
    assert resumed.told("a") and resumed.told("b") and not resumed.told("c")
    resumed.on_trial_result("a", {"m": 0.2, "training_iteration": 1})
    resumed.on_trial_complete("a", {"m": 0.5})  # the stopper ends the re-run at once
    resumed.prune("b")
    resumed.prune("c")  # a trial still open is told as before

    study = optuna.load_study(study_name="s", storage=_Searcher.url)
    assert [(t.state.name, t.value) for t in study.trials] == [("COMPLETE", 1.0), ("PRUNED", None), ("PRUNED", None)]
