"""The fence: every private Ray, RLlib, Optuna-in-Tune and torch name pgu-rllib touches lives here.

* ``guard``: the Ray version the patches were written for (``TESTED_RAY``), ``patches_enabled()``
  (that version and ``PGU_DISABLE_RAY_PATCHES`` unset), ``require`` (fail at once, naming a missing
  private attribute) and the loopback-only node IP.
* Speed patches, same results, on only when ``patches_enabled()``: ``env_runner`` (untimed, batched
  connector pipelines), ``fast_update`` (fused optimiser step, ``torch._fused_adam_``/``_foreach_*``),
  ``filters`` (the vectorised observation filter).
* Needed for correctness, each name checked by ``require``: ``internals`` (the learner's optimisers,
  schedules, connector pipeline and parameters; the config's model config) and ``optuna_search``
  (a resumable ``OptunaSearch`` whose pickled state holds no storage).
* ``torch_lazy``: no TorchInductor or Dynamo import for a process that never compiles (a speed patch).
* ``tune_retry``: Tune's ``FailureConfig`` re-runs a trial whose worker died, not one whose own code
  raised (which would raise again).

Nothing outside this package names a private attribute of another library; ``tests/test_compat.py``
checks that with an AST scan, and that both paths (patches on and off) learn the same numbers.
"""
