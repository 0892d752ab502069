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
  learning rate RLlib's schedules set, which ``foreach=True`` rejects), called as its kernel
  (``fused_adam_step``) on the lean path.
"""
from __future__ import annotations

import numpy as np
import torch
from ray.rllib.core.learner.training_data import TrainingData
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    MODULE_TRAIN_BATCH_SIZE_MEAN,
    NUM_ENV_STEPS_TRAINED,
    NUM_ENV_STEPS_TRAINED_LIFETIME,
    NUM_MODULE_STEPS_TRAINED,
    NUM_MODULE_STEPS_TRAINED_LIFETIME,
    WEIGHTS_SEQ_NO,
)
from ray.rllib.utils.torch_utils import clip_gradients

from pgu_rllib.rllib.accel.guard import patches_enabled
from pgu_rllib.rllib.schedules import lr_or_schedule


def fused_adam_step(optimizer: torch.optim.Optimizer) -> None:
    """``Adam(fused=True).step()`` as the one kernel it launches: ``_foreach_add_`` of the step counts and
    ``torch._fused_adam_`` with the group's own settings, without ``Optimizer.step``'s wrappers (profiler
    hook, grad-mode switch, fallback checks, ``_init_group``'s walk over the parameters: about 0.15 ms of
    a 64-row minibatch's ~1.4 ms). The first step creates Adam's state as ``Adam._init_group`` does for a
    fused group (``step`` a float32 zero, both moments zeros like the parameter), so ``Optimizer.step``,
    whose wrappers import Dynamo (``accel.torch_lazy``), is never called. Anything but one CPU group of a
    fused, plain Adam of float32 parameters that all have gradients takes ``optimizer.step()``."""
    groups = optimizer.param_groups
    group = groups[0]
    params = group["params"]
    if not (type(optimizer) is torch.optim.Adam and len(groups) == 1 and group.get("fused")
            and not (group["amsgrad"] or group["maximize"] or group["differentiable"] or group["capturable"]
                     or group.get("decoupled_weight_decay"))
            and all(p.grad is not None and p.device.type == "cpu" and p.dtype == torch.float32 for p in params)):
        optimizer.step()
        return
    for p in params:
        if not optimizer.state.get(p):  # Adam's lazy state, as its _init_group makes it for a fused group
            optimizer.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                                  "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                  "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
    states = [optimizer.state[p] for p in params]
    steps = [s["step"] for s in states]
    beta1, beta2 = group["betas"]
    with torch.no_grad():
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                           [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False, lr=group["lr"],
                           beta1=float(beta1), beta2=float(beta2), weight_decay=group["weight_decay"],
                           eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)


def clip_by_global_norm(gradients_dict: dict, *, grad_clip: float, grad_clip_by: str):
    """``ray.rllib.utils.torch_utils.clip_gradients`` with fused kernels for ``global_norm``."""
    if grad_clip_by != "global_norm":
        return clip_gradients(gradients_dict, grad_clip=grad_clip, grad_clip_by=grad_clip_by)
    grads = [g.detach() for g in gradients_dict.values() if g is not None]
    if not grads:
        return torch.tensor(0.0)
    per_tensor = torch.stack(torch._foreach_norm(grads)).nan_to_num(neginf=-10e8, posinf=10e8)
    return scale_to_global_norm(grads, per_tensor, grad_clip)


def scale_to_global_norm(grads: list, per_tensor: torch.Tensor, grad_clip: float) -> torch.Tensor:
    """RLlib's global-norm clip given each gradient's (finite) norm: scale ``grads`` in place by
    ``grad_clip / max(‖g‖ + 1e-6, grad_clip)`` and return the global norm ‖g‖."""
    total_norm = torch.linalg.vector_norm(per_tensor).nan_to_num(neginf=-10e8, posinf=10e8)
    torch._foreach_mul_(grads, torch.clamp(grad_clip / torch.clamp(total_norm + 1e-6, min=grad_clip), max=1.0))
    return total_norm


class FastUpdateMixin:
    """Put before ``TorchLearner`` (or a subclass) in the bases. With the patches disabled
    (``guard.patches_enabled``) it runs RLlib's own clip, NaN check and Adam."""

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        params = self.get_parameters(self._module[module_id])
        self.register_optimizer(module_id=module_id, optimizer=torch.optim.Adam(params, fused=patches_enabled()),
                                params=params, lr_or_lr_schedule=lr_or_schedule(config))

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


# -- the epochs loop ------------------------------------------------------------------------------
def minibatch_plan(sizes: dict, *, minibatch_size: int, num_epochs: int, shuffle: bool) -> list[dict]:
    """Row indices of every minibatch of one update, module by module: exactly the minibatches
    RLlib's ``MiniBatchCyclicIterator`` cuts (same count, same rows, same ``np.random`` draws).

    Each module's batch is walked in order and cycled: a minibatch that reaches the end takes the
    tail, wraps to the start, and the batch is re-shuffled at each wrap (never before the first
    epoch), until every module has been covered ``num_epochs`` times.

    >>> [idx.tolist() for idx in (p["m"] for p in minibatch_plan({"m": 5}, minibatch_size=2, num_epochs=1, shuffle=False))]
    [[0, 1], [2, 3], [4, 0]]
    """
    order = {mid: np.arange(n) for mid, n in sizes.items()}
    start = dict.fromkeys(sizes, 0)
    covered = dict.fromkeys(sizes, 0)
    plan = []
    while min(covered.values()) < num_epochs:
        minibatch = {}
        for mid, n in sizes.items():
            s, need, pieces = start[mid], minibatch_size, []
            while s + need >= n:  # the same ">=" as RLlib: a minibatch ending at n also wraps
                pieces.append(order[mid][s:])
                need -= n - s
                s = 0
                covered[mid] += 1
                if shuffle:  # SampleBatch.shuffle(): one np.random.permutation of the rows
                    order[mid] = order[mid][np.random.permutation(n)]
            if need > 0:
                pieces.append(order[mid][s:s + need])
            start[mid] = s + need
            minibatch[mid] = torch.from_numpy(np.concatenate(pieces))
        plan.append(minibatch)
    return plan


def take_rows(column, idx: torch.Tensor):
    """``column[idx]`` for a tensor, a numpy array, or a (nested) dict of them."""
    if isinstance(column, torch.Tensor):
        return column.index_select(0, idx.to(column.device))
    if isinstance(column, np.ndarray):
        return column[idx.numpy()]
    if isinstance(column, dict):
        return {k: take_rows(v, idx) for k, v in column.items()}
    raise TypeError(f"cannot slice a batch column of type {type(column).__name__}")


class LeanEpochsMixin:
    """``Learner.update`` for the common case, one loop over pre-cut minibatches (issue 15).

    RLlib's update slices a ``SampleBatch`` per minibatch (``MiniBatchCyclicIterator``: a
    ``SampleBatch`` and a ``MultiAgentBatch`` built per minibatch, ``concat_samples``), toggles
    the module's train mode and logs ~25 metrics per minibatch. Every one of those metrics has
    ``window=1`` (only the last minibatch's value survives the reduce) or is a sum over
    minibatches. This loop keeps the math and the reduced results and drops the per-minibatch
    work: the same minibatch rows (``minibatch_plan``) gathered from the batch's tensors, the
    module put in train mode once, the loss's window-1 metrics computed on the last minibatch
    only (``self.log_this_minibatch``), step counts logged once with their sums.

    Anything unusual takes RLlib's own ``update``: data iterators, several learners, recurrent
    modules, ``torch_compile_learner``, a fixed ``num_total_minibatches``, no minibatch size, or
    ``PGU_DISABLE_RAY_PATCHES=1``. ``tests/test_fast_learner.py`` checks that both paths leave
    the same weights and report the same metrics.
    """

    log_this_minibatch = True  # RLlib's own update logs every minibatch

    def update(self, batch=None, batches=None, batch_refs=None, episodes=None, episodes_refs=None,
               data_iterators=None, training_data=None, *, timesteps=None, num_total_minibatches=0,
               num_epochs=1, minibatch_size=None, shuffle_batch_per_epoch=False, _no_metrics_reduce=False,
               **kwargs):
        if training_data is None and data_iterators is None:
            training_data = TrainingData(batch=batch, batches=batches, batch_refs=batch_refs, episodes=episodes,
                                         episodes_refs=episodes_refs)
        lean = (patches_enabled() and minibatch_size and training_data is not None
                and training_data.data_iterators is None and training_data.batches is None
                and not num_total_minibatches and not kwargs and self.config.num_learners <= 1
                and not self.config.torch_compile_learner and not self.iterator
                and not any(m.is_stateful() for m in self.module.values()))
        if not lean:
            return super().update(batch=batch, batches=batches, batch_refs=batch_refs, episodes=episodes,
                                  episodes_refs=episodes_refs, data_iterators=data_iterators,
                                  training_data=training_data, timesteps=timesteps,
                                  num_total_minibatches=num_total_minibatches, num_epochs=num_epochs,
                                  minibatch_size=minibatch_size, shuffle_batch_per_epoch=shuffle_batch_per_epoch,
                                  _no_metrics_reduce=_no_metrics_reduce, **kwargs)
        self._check_is_built()
        self.before_gradient_based_update(timesteps=timesteps or {})
        training_data.validate()
        training_data.solve_refs()
        self._weights_seq_no += 1
        full = self._make_batch_if_necessary(training_data=training_data)
        for module_id in list(full.policy_batches):
            if not self.should_module_be_updated(module_id, full):
                del full.policy_batches[module_id]
        if not full.policy_batches:
            return {}
        columns = {mid: dict(b) for mid, b in full.policy_batches.items()}
        plan = minibatch_plan({mid: len(b) for mid, b in full.policy_batches.items()},
                              minibatch_size=minibatch_size, num_epochs=num_epochs,
                              shuffle=shuffle_batch_per_epoch and num_epochs > 1)
        for module in self.module.values():
            if isinstance(module, torch.nn.Module):
                module.train()
        groups = self._first_order_groups()
        for i, rows in enumerate(plan):
            self.log_this_minibatch = i == len(plan) - 1
            minibatch = {mid: {k: take_rows(v, rows[mid]) for k, v in columns[mid].items()} for mid in rows}
            loss_per_module = self._lean_step(minibatch, groups)
        self.log_this_minibatch = True
        self._log_steps_trained(full, plan)
        for mid, loss in loss_per_module.items():
            self.metrics.log_value(key=(mid, self.TOTAL_LOSS_KEY), value=loss, window=1)
        self.after_gradient_based_update(timesteps=timesteps or {})
        if not _no_metrics_reduce:
            return self.metrics.reduce()

    def _lean_step(self, minibatch: dict, groups) -> dict:
        """``TorchLearner._uncompiled_update`` with the module already in train mode; with ``groups``
        (``_first_order_groups``), the gradient step in a few fused kernels and one host sync."""
        self._compute_off_policyness(minibatch)
        fwd_out = {mid: self.module[mid]._forward_train(b) for mid, b in minibatch.items()}
        loss_per_module = self.compute_losses(fwd_out=fwd_out, batch=minibatch)
        if groups is None:
            self.apply_gradients(self.postprocess_gradients(self.compute_gradients(loss_per_module)))
            return loss_per_module
        for *_, params in groups:  # Optimizer.zero_grad(set_to_none=True) without its hooks and profiler
            for p in params:
                p.grad = None
        sum(loss_per_module.values()).backward()
        grads = [[p.grad for p in params if p.grad is not None] for *_, params in groups]
        norms = [torch.stack(torch._foreach_norm(g)) if g else torch.zeros(1) for g in grads]
        if not bool(torch.isfinite(torch.cat(norms)).all()):  # RLlib's path: NaN/inf gradients to zero
            self.apply_gradients(self.postprocess_gradients({pid: p.grad for pid, p in self._params.items()}))
            return loss_per_module
        for (module_id, name, optimizer, grad_clip, _), g, per_tensor in zip(groups, grads, norms):
            if grad_clip and g:  # the norms were just found finite
                total = scale_to_global_norm(g, per_tensor, grad_clip)
                if self.log_this_minibatch:
                    self.metrics.log_value((module_id, f"gradients_{name}_global_norm"), total, window=1)
            fused_adam_step(optimizer)
        return loss_per_module

    def _first_order_groups(self):
        """``(module_id, optimizer name, optimizer, grad_clip, params)`` per optimizer when a step is plain
        Adam after a global-norm clip (``step="first_order"``, no grad scaler, no torch LR scheduler,
        NaN gradients zeroed); else None and RLlib's gradient hooks run (the natural, trust-region and
        optimistic steps live there)."""
        if (self._grad_scalers is not None or self._lr_scheduler_classes is not None
                or self.config.torch_skip_nan_gradients):
            return None
        groups = []
        for module_id in self.module.keys():  # noqa: SIM118 (a MultiRLModule, not a dict)
            config = self.config.get_config_for_module(module_id)
            if getattr(config, "step", "first_order") != "first_order" or config.log_gradients or (
                    config.grad_clip and config.grad_clip_by != "global_norm"):
                return None
            for name, optimizer in self.get_optimizers_for_module(module_id):
                params = [self._params[ref] for ref in self._optimizer_parameters[optimizer]]
                groups.append((module_id, name, optimizer, config.grad_clip, params))
        return groups

    def _log_steps_trained(self, full, plan) -> None:
        """``Learner._log_steps_trained_metrics`` + ``_log_metrics`` for every minibatch at once."""
        count, env_steps = len(plan), full.env_steps()
        log = self.metrics.log_value
        for mid in plan[0]:
            size = len(plan[0][mid])
            log((mid, WEIGHTS_SEQ_NO), self._weights_seq_no, window=1)
            log((mid, MODULE_TRAIN_BATCH_SIZE_MEAN), size, reduce="mean")
            log((mid, NUM_MODULE_STEPS_TRAINED), size * count, reduce="sum")
            log((mid, NUM_MODULE_STEPS_TRAINED_LIFETIME), size * count, reduce="lifetime_sum", with_throughput=True)
            log((ALL_MODULES, NUM_MODULE_STEPS_TRAINED), size * count, reduce="sum", with_throughput=True)
            log((ALL_MODULES, NUM_MODULE_STEPS_TRAINED_LIFETIME), size * count, reduce="lifetime_sum",
                with_throughput=True)
        # RLlib counts the whole batch's env steps once per minibatch; so do we.
        log((ALL_MODULES, NUM_ENV_STEPS_TRAINED), env_steps * count, reduce="sum", with_throughput=True)
        log((ALL_MODULES, NUM_ENV_STEPS_TRAINED_LIFETIME), env_steps * count, reduce="lifetime_sum",
            with_throughput=True)
        if env_steps > 0:
            self._metrics_all_modules_num_env_steps_trained.inc(value=env_steps * count)
            self._metrics_all_modules_num_module_steps_trained.inc(
                value=sum(len(rows) for minibatch in plan for rows in minibatch.values()))

    def _compute_off_policyness(self, batch) -> None:  # window=1: only the last minibatch's survives
        if self.log_this_minibatch:
            super()._compute_off_policyness(batch)

    def postprocess_gradients_for_module(self, *, module_id, config=None, module_gradients_dict):
        """``Learner.postprocess_gradients_for_module`` for global-norm clipping; the norm (a
        window-1 metric) is logged on the last minibatch only."""
        if not (patches_enabled() and config.grad_clip and config.grad_clip_by == "global_norm"):
            return super().postprocess_gradients_for_module(module_id=module_id, config=config,
                                                            module_gradients_dict=module_gradients_dict)
        out = {}
        for optimizer_name, optimizer in self.get_optimizers_for_module(module_id):
            grads = self.filter_param_dict_for_optimizer(param_dict=module_gradients_dict, optimizer=optimizer)
            norm = clip_by_global_norm(grads, grad_clip=config.grad_clip, grad_clip_by="global_norm")
            if self.log_this_minibatch:
                self.metrics.log_value((module_id, f"gradients_{optimizer_name}_global_norm"), norm, window=1)
            out.update(grads)
        return out
