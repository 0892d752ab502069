"""``ReferenceMixin``: GRPO's reference policy π_ref for the penalty β·KL(π_θ‖π_ref) (docs/spec.md §3).

* π_ref is a frozen copy of the module taken when the learner is built (the initial policy), or
  refreshed to the current policy after every ``ref_refresh`` = K updates (K = 0: never).
* The penalty uses DeepSeekMath's unbiased k3 estimator on the sampled actions,
  k3 = π_ref/π_θ − log(π_ref/π_θ) − 1 ≥ 0, whose expectation under π_θ is KL(π_θ‖π_ref)
  (``core.forms.k3``). The learner logs its mean (``ref_kl``) and the exact KL of the two
  distributions on the minibatch's states (``ref_kl_exact``).
* π_ref and the update count are part of the learner's state (``get_state``/``set_state``), so a
  checkpointed run (Tune's pause/restore, ``--resume``) keeps its reference.
"""
from __future__ import annotations

import copy

import torch
from ray.rllib.core.columns import Columns

REFERENCE_STATE = "pgu_reference"


class ReferenceMixin:
    """Put before the ``TorchLearner`` in the bases; the loss calls ``reference_logits``."""

    def build(self) -> None:
        super().build()
        self._pgu_reference: dict = {}  # module id -> frozen copy of the module
        self._pgu_updates = 0
        for module_id in self.module.keys():
            if self.config.get_config_for_module(module_id).ref_kl_coeff > 0:
                self._refresh_reference(module_id)

    def _refresh_reference(self, module_id) -> None:
        ref = copy.deepcopy(self.module[module_id].unwrapped())
        for p in ref.parameters():
            p.requires_grad_(False)
        self._pgu_reference[module_id] = ref

    def reference_logits(self, module_id, batch) -> torch.Tensor:
        """π_ref's action-distribution inputs on the minibatch (no gradient)."""
        if module_id not in self._pgu_reference:  # a β turned on later (a schedule): the policy of now
            self._refresh_reference(module_id)
        with torch.no_grad():
            return self._pgu_reference[module_id].forward_train(batch)[Columns.ACTION_DIST_INPUTS]

    def after_gradient_based_update(self, *, timesteps) -> None:
        super().after_gradient_based_update(timesteps=timesteps)
        self._pgu_updates += 1
        for module_id in self.module.keys():
            config = self.config.get_config_for_module(module_id)
            if config.ref_kl_coeff > 0 and config.ref_refresh and self._pgu_updates % config.ref_refresh == 0:
                self._refresh_reference(module_id)

    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict:
        state = super().get_state(components, not_components=not_components, **kwargs)
        if components is None and not not_components:
            state[REFERENCE_STATE] = {
                "updates": self._pgu_updates,
                "modules": {mid: {k: v.detach().cpu().numpy() for k, v in ref.state_dict().items()}
                            for mid, ref in self._pgu_reference.items()}}
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        saved = state.get(REFERENCE_STATE)
        if saved is not None:
            self._pgu_updates = int(saved["updates"])
            for module_id, weights in saved["modules"].items():
                self._refresh_reference(module_id)
                self._pgu_reference[module_id].load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
