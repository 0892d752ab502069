"""How many writes per second the search's two stores take: Optuna's RDB storage (one
``trial.report`` per trial result, from the Tune driver's OptunaSearch) and the pgu registry (one
``record_trial`` per finished trial). The scale story in ``docs/cluster.md`` divides these rates
by the result rate of N concurrent trials.

Protocol: one process, a fresh SQLite file in a temporary folder (or ``--url``), ``--n`` writes
of each kind, interleaved in ``--rounds`` rounds; the figure is the median rate over rounds.

    python benchmarks/storage_rate.py --n 300 --rounds 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--url", help="a SQLAlchemy URL to use instead of a temporary SQLite file")
    args = ap.parse_args()

    import optuna

    from pgu_rllib.service.registry import Registry

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = tempfile.mkdtemp()
    url = args.url or f"sqlite:///{folder}/bench.db"
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(study_name=f"bench-{os.getpid()}", storage=storage, direction="maximize")
    registry = Registry(url).connect()
    row = registry.start_search(name=f"bench-{os.getpid()}", task="bandit", space="paper", space_yaml="params: {}",
                                settings={}, storage_path=folder, versions={}, git_commit="", resume=False)
    rates = {"optuna trial.report (one result)": [], "pgu registry record_trial": []}
    for r in range(args.rounds):
        trial = study.ask()
        t0 = time.perf_counter()
        for step in range(args.n):
            trial.report(float(step), step)
        rates["optuna trial.report (one result)"].append(args.n / (time.perf_counter() - t0))
        study.tell(trial, 1.0)
        t0 = time.perf_counter()
        for i in range(args.n):
            registry.record_trial(row.id, tune_trial_id=f"r{r}-{i}", status="complete", params={"form": "V"},
                                  score=float(i), env_steps=1024, curve=[[1024, float(i)]])
        rates["pgu registry record_trial"].append(args.n / (time.perf_counter() - t0))
    print(f"# storage_rate  url={'temporary SQLite file' if not args.url else registry.safe_url}  n={args.n}  "
          f"rounds={args.rounds}  load average {os.getloadavg()[0]:.2f}")
    for name, values in rates.items():
        print(f"{name:<36}{statistics.median(values):>9.0f} writes/s")


if __name__ == "__main__":
    main()
