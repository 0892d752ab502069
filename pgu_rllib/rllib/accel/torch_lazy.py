"""Torch without its compiler: no TorchInductor or Dynamo import in a process that never compiles
(a speed patch, same results; on only with ``patches_enabled()``).

torch 2.13 imports Dynamo and Inductor (~1.6 s of CPU, more under load) the first time a process
* calls ``torch.use_deterministic_algorithms``, which RLlib's ``set_torch_seed`` does for every
  algorithm it builds: it imports ``torch._inductor.config`` to set its ``deterministic`` flag;
* calls an ``Optimizer`` method wrapped in ``torch._disable_dynamo`` (``add_param_group``, which every
  optimizer's constructor calls, ``zero_grad``, ``state_dict``, ``load_state_dict``): the wrapper
  imports Dynamo to build ``torch._dynamo.disable(fn)``, which only matters while Dynamo traces;
* steps an ``Adam`` (``_use_grad_for_differentiable`` and the functional ``adam``): the first
  step of ``fast_update.fused_adam_step`` now creates Adam's state itself, so ``Optimizer.step``
  is not called on the lean path.

pgu-rllib never compiles (``torch_compile_learner`` stays off), so every trial process and every
``pgu train`` paid that for nothing. ``no_compiler_imports()`` sets torch's deterministic flag as
``use_deterministic_algorithms`` does (``torch._C._set_deterministic_algorithms``) and hands Inductor's
flag over without the import (set at once when Inductor is loaded, else through
``TORCHINDUCTOR_DETERMINISTIC``, which Inductor's config reads when it is first imported), and calls
the ``Optimizer`` methods unwrapped (``__wrapped__``). ``tests/test_startup.py`` checks that building
and training a PGU algorithm imports neither, and that without the patches it did.
"""
from __future__ import annotations

import os
import sys

from pgu_rllib.rllib.accel.guard import patches_enabled, require

OPTIMIZER_METHODS = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def no_compiler_imports() -> None:
    """Install the two patches (idempotent; nothing without ``patches_enabled()``)."""
    import torch
    from torch.optim import Optimizer

    if not patches_enabled() or getattr(torch.use_deterministic_algorithms, "_pgu_patched", False):
        return
    require(torch._C, ("_set_deterministic_algorithms",), "setting torch's deterministic mode")
    require(Optimizer, OPTIMIZER_METHODS, "calling torch's optimizers without Dynamo")

    def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
        os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1" if mode else "0"  # read when Inductor's config loads
        inductor_config = sys.modules.get("torch._inductor.config")
        if inductor_config is not None:
            inductor_config.deterministic = mode
        torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)

    use_deterministic_algorithms._pgu_patched = True
    use_deterministic_algorithms.__doc__ = torch.use_deterministic_algorithms.__doc__
    torch.use_deterministic_algorithms = use_deterministic_algorithms
    for name in OPTIMIZER_METHODS:
        method = getattr(Optimizer, name)
        if hasattr(method, "__wrapped__"):  # torch._disable_dynamo's wrapper (functools.wraps)
            setattr(Optimizer, name, method.__wrapped__)
