"""Tune retries a trial whose worker died, not one whose own code raised.

``tune.FailureConfig(max_failures=2)`` re-runs a trial after *any* failure. For an exception raised by
the trial's own code (a bad configuration refused when the env is built, a ``ValueError`` in a step)
that re-run raises the same exception again, seeded and deterministic as it is: the user waited for
three worker starts and read three tracebacks for one error. ``retry_only_dead_workers()`` patches
``Trial.handle_error`` (in the driver, once) so that such a trial fails at its first error, and only
a worker that died (killed, out of memory, its node lost: a ``RayActorError`` that is not a failed
``__init__``) is re-run, up to ``max_failures`` times.

Ray's exceptions say which is which: a ``RayTaskError`` is a Python exception raised by the task
(unless it wraps a ``RayActorError``), and a ``RayActorError`` with ``actor_init_failed`` is one raised
in the actor's ``__init__`` (the trainable's ``setup``).

>>> from ray.exceptions import RayTaskError
>>> raised_by_trial_code(RayTaskError("step", "Traceback ...", ValueError("n_actions=1")))
True
>>> from ray.exceptions import ActorDiedError
>>> raised_by_trial_code(ActorDiedError())  # the worker died: retried
False
"""
from __future__ import annotations

from pgu_rllib.rllib.accel.guard import require


def raised_by_trial_code(exc) -> bool:
    """Whether a trial's failure is an exception its own code raised (re-running it raises it again)."""
    from ray.exceptions import RayActorError, RayTaskError

    if isinstance(exc, RayActorError):
        return bool(exc.actor_init_failed)
    if isinstance(exc, RayTaskError):
        return not isinstance(exc.as_instanceof_cause(), RayActorError)
    return False


def retry_only_dead_workers() -> None:
    """Patch Tune's ``Trial.handle_error`` (idempotent): a trial whose own code raised is not retried."""
    from ray.tune.experiment.trial import Trial

    require(Trial, ("handle_error", "should_recover"), "retrying only trials whose worker died")
    if getattr(Trial.handle_error, "_pgu_patched", False):
        return
    original = Trial.handle_error

    def handle_error(self, exc=None):
        if raised_by_trial_code(exc):
            self.max_failures = 0  # should_recover(): a first failure (num_failures 1) exceeds it
        return original(self, exc)

    handle_error._pgu_patched = True
    Trial.handle_error = handle_error
