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


def test_a_resume_from_a_stale_tune_state_starts_no_trial_past_the_trials_asked_for(tmp_path, monkeypatch):
    """A ``kill -9`` loses up to 10 s of Tune's state: the resume restores a searcher that does not know the
    trials started (and recorded in the registry) after the save, and Tune's ``num_samples`` would start as many
    again (8 trials for ``--trials 7``, seen in CI). The searcher counts the registry's rows and its own running
    trials against ``--trials`` instead."""
    from ray.tune.search import Searcher

    from pgu_rllib.service._tune_hooks import ResumableOptunaSearch
    from pgu_rllib.service.registry import REGISTRY_ENV, Registry

    url = f"sqlite:///{tmp_path}/registry.db"
    monkeypatch.setenv(REGISTRY_ENV, url)
    reg = Registry(url).connect()
    search = reg.start_search(name="s", task="bandit", space="paper", space_yaml="", settings={}, storage_path="",
                              versions={}, git_commit="", resume=False)
    searcher = ResumableOptunaSearch(space={"x": optuna.distributions.FloatDistribution(0, 1)}, metric="m",
                                     mode="max", study_name="s", storage=optuna.storages.RDBStorage(url))
    searcher.pgu_search_id, searcher.pgu_budget, searcher.pgu_trials = search.id, 100, 4
    assert isinstance(searcher.suggest("a"), dict)
    saved = searcher.__getstate__()  # Tune's last save: one trial, a, running
    for trial_id in ("a", "b", "c"):  # after it, the killed attempt finished a and started and finished b and c
        if trial_id != "a":
            assert isinstance(searcher.suggest(trial_id), dict)
        searcher.on_trial_complete(trial_id, {"m": 1.0, "env_steps": 100})
        reg.record_trial(search.id, tune_trial_id=trial_id, params={}, score=1.0, env_steps=100, iterations=1,
                         status="complete", curve=[], metrics={}, config_hash="h")

    resumed = ResumableOptunaSearch.__new__(ResumableOptunaSearch)
    resumed.__setstate__(saved)  # the resume: a open again; b and c unknown to Tune's state
    assert resumed.taken() == 3
    assert isinstance(resumed.suggest("d"), dict)  # the fourth of --trials 4
    assert resumed.suggest("e") == Searcher.FINISHED and resumed.taken() == 4
    resumed.on_trial_complete("d", {"m": 1.0, "env_steps": 100})
    reg.record_trial(search.id, tune_trial_id="d", params={}, score=1.0, env_steps=100, iterations=1,
                     status="complete", curve=[], metrics={}, config_hash="h")
    assert resumed.suggest("f") == Searcher.FINISHED
