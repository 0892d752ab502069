"""``StepMixin``: the rule's ``step`` in the RLlib learner (docs/spec.md §3; ``core/steps.py``).

It acts on the gradient of the PGU loss, whatever the form and scale, through RLlib's gradient
hooks, so Tune, the registry and the CLI need no special case:

* ``optimistic``: in ``postprocess_gradients_for_module``, the policy's gradient g becomes
  g + c·(g − g_prev) before the optimiser (Adam) sees it; g_prev is part of the learner's state;
* ``optimistic_sgd`` / ``optimistic_adam``: the policy's parameters get an optimiser of their own,
  ``core.steps.OptimisticSGD`` (c = ``optimism``, adapted with ``optimism_adaptive``) or
  ``OptimisticAdam``, at the config's learning rate (and its schedule); the critic keeps Adam. Their
  previous gradients and moments are optimiser state, so RLlib's checkpoint holds them;
* ``natural`` / ``trust_region``: the policy's parameters get an optimiser of their own,
  ``SGD(lr=1)``, and their gradient is replaced by −Δθ, the natural step (and, for trust_region,
  the step the line search accepts). The critic keeps Adam on its regression loss. The Fisher
  matrix is the Hessian of KL(sg π_θ ‖ π_θ) on the minibatch, applied by double backward through
  the forward pass of the loss (kept with ``retain_graph``). The step size does not depend on the
  gradient's scale, so RLlib's gradient clipping before it changes nothing.
* the trust-region line search compares the PGU policy loss at θ + Δθ with its value at θ, with
  the scale's values f held at θ (``fixed_f``): the loss whose gradient made the step, as TRPO holds
  its advantages fixed. Recomputing f at θ + Δθ (Δ_R from the moved q, Δ_O ≠ 0) measures another
  function: on the bandit that one rose along every descent step, and no step was ever accepted.

Logged: ``step_kl`` (KL(π_old‖π_new) on the minibatch of the applied natural/trust-region step)
and ``line_search_backtracks`` (trust_region: j of the accepted ½^j step, −1 for no step).
"""
from __future__ import annotations

import numpy as np
import torch
from ray.rllib.core.columns import Columns

from pgu_rllib.core.steps import OptimisticAdam, OptimisticSGD, line_search, natural_step, optimistic
from pgu_rllib.rllib.accel import internals
from pgu_rllib.rllib.schedules import lr_or_schedule
from pgu_rllib.rllib import keys

SECOND_ORDER = ("natural", "trust_region")
OWN_OPTIMISER = (*SECOND_ORDER, "optimistic_sgd", "optimistic_adam")  # the policy's own optimiser, the critic Adam
PREVIOUS_GRADS_STATE = "pgu_previous_grads"


def fisher_vector_product(kl: torch.Tensor, params: list[torch.Tensor]):
    """``v ↦ F v`` with F the Hessian of ``kl`` (a KL(sg π ‖ π_θ) with its graph) w.r.t. ``params``."""
    grads = torch.autograd.grad(kl, params, create_graph=True)
    flat = torch.cat([g.reshape(-1) for g in grads])

    def fvp(v: torch.Tensor) -> torch.Tensor:
        hv = torch.autograd.grad(flat @ v, params, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]).detach()

    return fvp


class StepMixin:
    """Put before ``FastUpdateMixin`` and the ``TorchLearner`` in the bases."""

    def build(self) -> None:
        super().build()
        self._step_state: dict = {}  # module id -> what the current minibatch's step needs
        self._previous_grads: dict = {}  # module id -> the policy's last gradient (optimistic)

    # -- which parameters are the policy's --------------------------------------------------------
    def policy_params(self, module_id) -> list[torch.Tensor]:
        """The parameters the action distribution's inputs depend on (found once, by autograd on a
        sampled observation): actor and policy head, never the critic."""
        cache = self.__dict__.setdefault("_policy_params_cache", {})
        if module_id not in cache:
            module = self.module[module_id].unwrapped()
            params = [p for p in module.parameters() if p.requires_grad]
            obs = torch.as_tensor(np.asarray([module.observation_space.sample()]), dtype=torch.float32,
                                  device=params[0].device)
            out = module.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
            grads = torch.autograd.grad(out.sum(), params, allow_unused=True)
            cache[module_id] = [p for p, g in zip(params, grads) if g is not None]
        return cache[module_id]

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        if config.step not in OWN_OPTIMISER:
            return super().configure_optimizers_for_module(module_id, config)
        policy = self.policy_params(module_id)
        ids = {id(p) for p in policy}
        critic = [p for p in self.get_parameters(self.module[module_id]) if id(p) not in ids]
        if config.step in SECOND_ORDER:
            self.register_optimizer(module_id=module_id, optimizer_name="policy_step",
                                    optimizer=torch.optim.SGD(policy, lr=1.0), params=policy)
        else:
            lr = lr_or_schedule(config)
            first = lr if isinstance(lr, float) else float(lr[0][1])
            optimizer = (OptimisticSGD(policy, lr=first, optimism=config.optimism, adaptive=config.optimism_adaptive,
                                       optimism_lr=config.optimism_lr)
                         if config.step == "optimistic_sgd" else OptimisticAdam(policy, lr=first))
            self.register_optimizer(module_id=module_id, optimizer_name="policy_step", optimizer=optimizer,
                                    params=policy, lr_or_lr_schedule=lr)
        if critic:
            self.register_optimizer(module_id=module_id, optimizer=torch.optim.Adam(critic), params=critic,
                                    lr_or_lr_schedule=lr_or_schedule(config))

    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict:
        """RLlib's state plus the ``optimistic`` step's last policy gradient (checkpointed like the
        optimisers' own state, so a restored run takes the same next step)."""
        state = super().get_state(components, not_components=not_components, **kwargs)
        if components is None and not not_components and self._previous_grads:
            state[PREVIOUS_GRADS_STATE] = {mid: [g.cpu().numpy() for g in grads]
                                           for mid, grads in self._previous_grads.items()}
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        for module_id, grads in (state.get(PREVIOUS_GRADS_STATE) or {}).items():
            device = self.policy_params(module_id)[0].device
            self._previous_grads[module_id] = [torch.as_tensor(g, device=device) for g in grads]

    # -- the hooks --------------------------------------------------------------------------------
    def remember_for_step(self, module_id, config, batch, terms, logits) -> None:
        """Called by the loss: keep what a natural / trust-region step needs for this minibatch."""
        if config.step in SECOND_ORDER:
            self._step_state[module_id] = {"batch": batch, "logits": logits, "mask": batch.get(Columns.LOSS_MASK),
                                           "loss0": float(terms.policy.detach()), "f": terms.f.detach()}

    def compute_gradients(self, loss_per_module, **kwargs):
        if not self._step_state:
            return super().compute_gradients(loss_per_module, **kwargs)
        if internals.grad_scalers(self) is not None:
            raise ValueError("step='natural'/'trust_region' does not support mixed-precision grad scalers")
        for optim in internals.optimizers(self):
            optim.zero_grad(set_to_none=True)
        total = sum(loss_per_module.values())
        total.backward(retain_graph=True)  # the forward pass stays for the Fisher-vector products
        return {pid: p.grad for pid, p in internals.parameters(self).items()}

    def postprocess_gradients_for_module(self, *, module_id, config=None, module_gradients_dict):
        grads = super().postprocess_gradients_for_module(module_id=module_id, config=config,
                                                         module_gradients_dict=module_gradients_dict)
        if config.step == "optimistic":
            refs = [self.get_param_ref(p) for p in self.policy_params(module_id)]
            current = [grads[r].detach().clone() for r in refs if r in grads]
            previous = self._previous_grads.get(module_id)
            for i, r in enumerate(r for r in refs if r in grads):
                grads[r] = optimistic(grads[r], None if previous is None else previous[i], config.optimism)
            self._previous_grads[module_id] = current
        elif config.step in SECOND_ORDER and module_id in self._step_state:
            self._second_order(module_id, config, grads, self._step_state.pop(module_id))
        return grads

    def _second_order(self, module_id, config, grads, state) -> None:
        module = self.module[module_id].unwrapped()
        params = self.policy_params(module_id)
        refs = [self.get_param_ref(p) for p in params]
        g = torch.cat([grads[r].reshape(-1) for r in refs])
        dist_cls = module.get_train_action_dist_cls()
        mask = state["mask"]

        def mean(x):
            return x.mean() if mask is None else x[mask].mean()

        logits = state["logits"]
        old = dist_cls.from_logits(logits.detach())
        fvp = fisher_vector_product(mean(old.kl(dist_cls.from_logits(logits))), params)
        step = natural_step(g, fvp, max_kl=config.max_kl, iters=config.cg_iters, damping=config.cg_damping)

        def evaluate(delta: torch.Tensor) -> tuple[float, float]:
            """(PGU policy loss, KL(π_old‖π_new)) on the minibatch at θ + Δθ."""
            with torch.no_grad():
                self._shift(params, delta)
                try:
                    fwd = module.forward_train(state["batch"])
                    terms = self._pgu_terms(module_id, config, state["batch"], fwd, first_pass=False,
                                            fixed_f=state["f"])
                    kl = mean(old.kl(dist_cls.from_logits(fwd[Columns.ACTION_DIST_INPUTS])))
                    return float(terms.policy), float(kl)
                finally:
                    self._shift(params, -delta)

        backtracks = 0
        if config.step == "trust_region":
            step, backtracks = line_search(step, evaluate, loss0=state["loss0"], max_kl=config.max_kl,
                                           steps=config.line_search_steps)
            self.metrics.log_value((module_id, keys.LINE_SEARCH_BACKTRACKS), backtracks, window=1)
        self.metrics.log_value((module_id, keys.STEP_KL), evaluate(step)[1] if step.any() else 0.0, window=1)
        offset = 0
        for p, r in zip(params, refs):  # SGD(lr=1) on −Δθ moves p by +Δθ
            n = p.numel()
            grads[r] = -step[offset:offset + n].view_as(p)
            offset += n

    @staticmethod
    def _shift(params, delta) -> None:
        offset = 0
        for p in params:
            n = p.numel()
            p.add_(delta[offset:offset + n].view_as(p))
            offset += n
