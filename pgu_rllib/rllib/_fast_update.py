"""``FastUpdateMixin``: TorchLearner's optimiser step with the same math and fewer host syncs.

RLlib 2.60's ``TorchLearner`` checks every gradient tensor for NaN/inf twice per minibatch
(``torch.isfinite(grad).all()`` per parameter in ``apply_gradients``: 26 host syncs for a
64-64 actor-critic), clips by global norm with one ``torch.norm`` per tensor, and steps a
single-tensor Adam. On the 64-row minibatches of the MuJoCo recipe these per-tensor Python
loops cost as much as the arithmetic (``benchmarks/profile_trial.py``). This mixin keeps the
arithmetic and replaces the loops (issue 6):

* global-norm clipping with ``torch._foreach_norm`` / ``_foreach_mul_``: the same
  ``grad_clip / max(‖g‖ + 1e-6, grad_clip)`` coefficient, the same logged global norm;
* one finiteness check over all gradients (the vector of per-tensor norms is finite iff
  every gradient is, barring float overflow of a norm); anything else (a NaN or inf, an
  overflow, a grad scaler, custom LR schedulers, ``torch_skip_nan_gradients``) takes RLlib's
  own path unchanged;
* Adam with ``fused=True`` (the fused kernel of the same update; it also accepts the tensor
  learning rate RLlib's schedules set, which ``foreach=True`` rejects).
"""
from __future__ import annotations

import torch
from ray.rllib.utils.torch_utils import clip_gradients

from pgu_rllib.rllib.compat import patches_enabled


def clip_by_global_norm(gradients_dict: dict, *, grad_clip: float, grad_clip_by: str):
    """``ray.rllib.utils.torch_utils.clip_gradients`` with fused kernels for ``global_norm``."""
    if grad_clip_by != "global_norm":
        return clip_gradients(gradients_dict, grad_clip=grad_clip, grad_clip_by=grad_clip_by)
    grads = [g.detach() for g in gradients_dict.values() if g is not None]
    if not grads:
        return torch.tensor(0.0)
    per_tensor = torch.stack(torch._foreach_norm(grads)).nan_to_num(neginf=-10e8, posinf=10e8)
    total_norm = torch.linalg.vector_norm(per_tensor).nan_to_num(neginf=-10e8, posinf=10e8)
    coeff = torch.clamp(grad_clip / torch.clamp(total_norm + 1e-6, min=grad_clip), max=1.0)
    torch._foreach_mul_(grads, coeff)
    return total_norm


class FastUpdateMixin:
    """Put before ``TorchLearner`` (or a subclass) in the bases. With the patches disabled
    (``_compat.patches_enabled``) it runs RLlib's own clip, NaN check and Adam."""

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        params = self.get_parameters(self._module[module_id])
        lr = config.lr
        if getattr(config, "lr_anneal", False):  # PGUConfig: linear to 0 at the run's budget
            lr = [[0, float(lr)], [int(config.pgu_budget), 0.0]]
        self.register_optimizer(module_id=module_id, optimizer=torch.optim.Adam(params, fused=patches_enabled()),
                                params=params, lr_or_lr_schedule=lr)

    @staticmethod
    def _get_clip_function():
        return clip_by_global_norm if patches_enabled() else clip_gradients

    def apply_gradients(self, gradients_dict) -> None:
        if not patches_enabled():
            return super().apply_gradients(gradients_dict)
        grads = [g for g in gradients_dict.values() if g is not None]
        simple = (self._grad_scalers is None and self._lr_scheduler_classes is None
                  and not self.config.torch_skip_nan_gradients)
        if not (simple and grads and bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())):
            return super().apply_gradients(gradients_dict)
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for module_id, optimizer_names in self._module_optimizers.items():
            for optimizer_name in optimizer_names:
                self.get_optimizer(module_id, optimizer_name).step()
