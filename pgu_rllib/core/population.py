"""A population: K configurations of one structure, updated in one batched pass (docs/spec.md §8).

A search trains many small networks that differ only in numbers. At 64-64 MLPs and minibatches of 64, a
gradient step costs per-operation overhead, not arithmetic, so K members cost about what one costs when
their parameters are stacked along a leading member axis (PureJaxRL's idea, in PyTorch): the forward is
batched matmuls (``baddbmm``), each member's loss is ``pgu_loss`` under ``vmap``, one backward gives every
member's gradient, and Adam runs on one ``[K, P]`` tensor. Pure torch, no Ray: the sampler and the search
sit above.

Member k takes the steps a solo learner of its configuration takes, to float32 rounding per step (docs/spec.md
§8; the measured bounds are in tests/test_population.py):

    loss_k    = pgu_loss(rule, member k's minibatch; member k's scale, c_H, c_V)     (§1–§4, one structure)
    g_k       = ∇_θk Σ_j loss_j = ∇ loss_k                 (no term mixes two members)
    g_k      ← g_k · min(1, c_k / (‖g_k‖ + 1e-6))          (RLlib's ``grad_clip_by="global_norm"``)
    θ_k      ← Adam(θ_k, g_k; η_k)                         (torch's Adam, moments and step count per member)

Per member: η, the gradient clip, c_H, c_V, the scale and its parameters (``Member``). Every scale present
is computed for every member and each member takes its own (``torch.where``). The rest of the rule and
the network are the population's structure; ``Population`` refuses members that differ there.

Example::

    >>> import torch
    >>> from pgu_rllib.core.update_rule import UpdateRule
    >>> _ = torch.manual_seed(0)
    >>> nets = [ActorCritic(4, 2, discrete=True) for _ in range(3)]
    >>> members = [Member(UpdateRule(scale="ppo_clip"), lr=3e-4), Member(UpdateRule(scale="mla", alpha_o=1.0,
    ...            alpha_r=0.5), lr=1e-3), Member(UpdateRule(scale="dpo"), lr=1e-2, grad_clip=0.5)]
    >>> pop = Population(nets, members, discrete=True)
    >>> batch = {"obs": torch.randn(3, 64, 4), "actions": torch.randint(0, 2, (3, 64)),
    ...          "behaviour_logp": torch.full((3, 64), -0.69), "advantages": torch.randn(3, 64),
    ...          "value_targets": torch.randn(3, 64)}
    >>> pop.step(batch)["total"].shape     # one minibatch step for each of the 3 members
    torch.Size([3])
"""
from __future__ import annotations

import copy
import dataclasses
import math

import torch
from torch import nn
from torch.func import vmap

from pgu_rllib.core.loss import LossInputs, pgu_loss
from pgu_rllib.core.scales import SCALE_NAMES, SCALES, scale_params

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, which RLlib's learner uses
PER_MEMBER_RULE_KEYS = ("scale", *scale_params())  # the rule's keys a member may set; the rest is structure


@dataclasses.dataclass
class Member:
    """One configuration of a population: its rule (only ``PER_MEMBER_RULE_KEYS`` may differ between
    members) and its optimisation numbers. ``grad_clip=None``: no clipping."""

    rule: object  # an UpdateRule
    lr: float
    grad_clip: float | None = None
    entropy_coeff: float = 0.0
    vf_loss_coeff: float = 1.0
    gamma: float = 0.99  # GAE's discount and λ (used by ``gae``, before the update)
    lam: float = 0.95


class ActorCritic(nn.Module):
    """Separate policy and value MLPs (RLlib's default PPO module, ``vf_share_layers=False``), orthogonal
    init (gain √2, the policy head 0.01, the value head 1). The policy gives the logits (discrete) or the
    Gaussian's mean and log-std (continuous: a free log-std parameter, or a second head)."""

    def __init__(self, obs_dim: int, act_dim: int, *, discrete: bool, hidden=(64, 64), activation=nn.Tanh,
                 free_log_std: bool = True):
        super().__init__()

        def mlp(out: int, gain: float) -> nn.Sequential:
            layers, width = [], obs_dim
            for h in hidden:
                layers += [_orthogonal(nn.Linear(width, h), math.sqrt(2)), activation()]
                width = h
            return nn.Sequential(*layers, _orthogonal(nn.Linear(width, out), gain))

        two_heads = not discrete and not free_log_std
        self.pi = mlp(2 * act_dim if two_heads else act_dim, 0.01)
        self.vf = mlp(1, 1.0)
        self.log_std = nn.Parameter(torch.zeros(act_dim)) if not discrete and free_log_std else None

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.pi(obs)
        if self.log_std is not None:
            out = torch.cat([out, self.log_std.expand_as(out)], dim=-1)
        return out, self.vf(obs).squeeze(-1)


def _flat_row(module: nn.Module) -> torch.Tensor:
    """A module's parameters as one row of ``Population.flat`` (the order of ``named_parameters``)."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def _orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def log_prob_entropy(dist_inputs: torch.Tensor, actions: torch.Tensor, discrete: bool):
    """log π(a|s) and H(π(·|s)) of a categorical (logits) or diagonal Gaussian (mean, log-std)."""
    if discrete:
        logp_all = torch.log_softmax(dist_inputs, dim=-1)
        logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        return logp, -(logp_all.exp() * logp_all).sum(-1)
    mean, log_std = dist_inputs.chunk(2, dim=-1)
    z = (actions - mean) / log_std.exp()
    logp = (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    return logp, (log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum(-1)


def gae(rewards, values, dones, next_value, gamma, lam) -> torch.Tensor:
    """GAE(λ) advantages of every member at once: ``rewards``, ``values``, ``dones`` are ``[K, T, n]`` (n envs per
    member), ``next_value`` ``[K, n]`` bootstraps the rollout's cut-off, ``gamma`` and ``lam`` are per member.

        δ_t = r_t + γ·V(s_{t+1})·(1 − d_t) − V(s_t),    Â_t = δ_t + γλ·(1 − d_t)·Â_{t+1}
    """
    gamma64, lam64 = (torch.as_tensor(v, dtype=torch.float64).view(-1, 1) for v in (gamma, lam))
    g, gl = gamma64.to(rewards.dtype), (gamma64 * lam64).to(rewards.dtype)  # γλ rounded once, as γ·λ in Python
    adv, last = torch.zeros_like(rewards), torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[1])):
        nv = next_value if t == rewards.shape[1] - 1 else values[:, t + 1]
        delta = rewards[:, t] + g * nv * (1 - dones[:, t]) - values[:, t]
        last = delta + gl * (1 - dones[:, t]) * last
        adv[:, t] = last
    return adv


def structure_difference(rule, reference) -> tuple | None:
    """The first key outside ``PER_MEMBER_RULE_KEYS`` where ``rule`` differs from ``reference``, as
    ``(key, rule's value, reference's value)``, or None."""
    for key, value in dataclasses.asdict(rule).items():
        if key not in PER_MEMBER_RULE_KEYS and value != getattr(reference, key):
            return key, value, getattr(reference, key)
    return None


def check_one_structure(members: list[Member], reference=None, who: str = "member 0", names=None) -> None:
    """Raise ``ValueError`` naming the first member (``names[k]``, else ``member k``) and key where a member's
    rule differs from ``reference`` (member 0's rule by default, called ``who``) outside
    ``PER_MEMBER_RULE_KEYS``, or a rule a population cannot run yet."""
    reference = members[0].rule if reference is None else reference
    for k, m in enumerate(members):
        name = names[k] if names else f"member {k}"
        diff = structure_difference(m.rule, reference)
        if diff:
            key, value, ref = diff
            raise ValueError(f"{name}: {key}={value!r} differs from {who}'s {key}={ref!r}; a population holds one structure (only "
                             f"{', '.join(PER_MEMBER_RULE_KEYS)}, lr, grad_clip, entropy_coeff, vf_loss_coeff, gamma "
                             f"and lam may differ)")
        if m.rule.step != "first_order" or m.rule.ref_kl_coeff != 0:
            raise ValueError(f"{name}: step={m.rule.step!r}, ref_kl_coeff={m.rule.ref_kl_coeff!r}: a population "
                             f"runs step='first_order' with ref_kl_coeff=0 only")


class Population:
    """K members (``Member``) with networks of one structure (``modules``: ``ActorCritic``s, each member's initial
    weights), updated together by ``step``.

    Every member's weights live in one flat ``[K, P]`` tensor (``flat``); ``params`` holds its views, one
    ``[K, ...]`` tensor per module parameter. Adam's moments (``[K, P]`` too) and step counts are per member,
    so a member can be replaced (``set_member``), cloned (``copy_member``, PBT's exploit) or removed
    (``remove``) without touching the others.

    The forward pass is the module's, batched over members by ``baddbmm`` (``forward``); each member's loss is
    ``pgu_loss`` on its own outputs (``vmap`` over the loss alone); one backward of the members' summed
    losses gives each member its own gradient (no term mixes two members), in the same flat layout."""

    def __init__(self, modules: list[nn.Module], members: list[Member], *, discrete: bool, one_step: bool = False,
                 use_critic: bool = True, vf_clip: float = math.inf):
        if len(modules) != len(members) or not members:
            raise ValueError(f"{len(modules)} modules for {len(members)} members; give one module per member")
        for module in modules:
            if not isinstance(module, ActorCritic):
                raise ValueError(f"a population trains ActorCritic networks, not {type(module).__name__}")
        for m in members:
            m.rule.validate()
        check_one_structure(members)
        self.rule, self.discrete = members[0].rule, discrete
        self.one_step, self.use_critic, self.vf_clip = one_step, use_critic, vf_clip
        self.base = copy.deepcopy(modules[0]).to("meta")  # the structure; the weights live in self.flat
        self.shapes = {name: p.shape for name, p in modules[0].named_parameters()}
        self.flat = torch.stack([_flat_row(m) for m in modules])
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(self.flat), torch.zeros_like(self.flat)
        self.steps = [0] * len(members)  # Adam's step count, per member
        self.failed: dict[int, str] = {}  # member -> why it stopped (its signals were not finite): it takes no step
        self.lr_factor = torch.ones(len(members), dtype=torch.float64)  # a schedule's factor on each member's lr
        self.members = list(members)
        self._rebuild_hp()
        self._member_losses = vmap(self._member_loss)

    @property
    def K(self) -> int:
        return len(self.members)

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """The weights as ``{name: [K, ...] view of flat}``, in the module's parameter order."""
        return self._views(self.flat)

    def _views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        out, at = {}, 0
        for name, shape in self.shapes.items():
            size = math.prod(shape)
            out[name] = flat[:, at:at + size].view(flat.shape[0], *shape)
            at += size
        return out

    def forward(self, obs: torch.Tensor, params: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's ``ActorCritic.forward`` on its own observations ``[K, B, obs_dim]``: the distribution
        inputs ``[K, B, ·]`` and values ``[K, B]``; with ``params`` (``{name: [K, ...]}``, as ``self.params``)
        in place of the population's own weights."""
        params = self.params if params is None else params

        def mlp(name: str, x: torch.Tensor) -> torch.Tensor:
            for i, layer in enumerate(getattr(self.base, name)):
                if isinstance(layer, nn.Linear):
                    w, b = params[f"{name}.{i}.weight"], params[f"{name}.{i}.bias"]
                    x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
                else:
                    x = layer(x)  # a parameter-free activation
            return x

        out = mlp("pi", obs)
        if "log_std" in params:
            out = torch.cat([out, params["log_std"].unsqueeze(1).expand_as(out)], dim=-1)
        return out, mlp("vf", obs).squeeze(-1)

    def _rebuild_hp(self) -> None:
        """The per-member tensors, from ``self.members``: the scale's index and parameters, the coefficients,
        lr and clip. A member's unused scale parameters hold the scale's default (or 1): inert."""
        members = self.members
        self.scales = tuple(s for s in SCALE_NAMES if any(m.rule.scale == s for m in members))

        def per_member(values) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float64)

        self.hp = {"scale": torch.tensor([self.scales.index(m.rule.scale) for m in members]),
                   "entropy_coeff": per_member([m.entropy_coeff for m in members]),
                   "vf_loss_coeff": per_member([m.vf_loss_coeff for m in members])}
        for key, param in scale_params().items():
            if any(key in SCALES[s].params for s in self.scales):
                fill = param.default if param.default is not None else 1.0
                self.hp[key] = per_member([getattr(m.rule, key) if key in SCALES[m.rule.scale].params else fill
                                           for m in members])
        self.lr = per_member([m.lr for m in members])
        self.grad_clip = torch.tensor([math.inf if m.grad_clip is None else m.grad_clip for m in members])

    def set_member(self, k: int, member: Member, module: nn.Module | None = None) -> None:
        """Give slot k a new configuration (PBT's explore, or a refill after a member stopped). With
        ``module``: also its weights, and a fresh Adam state (a new member); without: the weights and Adam
        state stay (the same network goes on under new hyperparameters)."""
        member.rule.validate()
        check_one_structure([member], reference=self.rule, who="the population", names=[f"slot {k}"])
        self.members[k] = member
        if module is not None:
            self.flat[k] = _flat_row(module)
            self.exp_avg[k], self.exp_avg_sq[k] = 0, 0
            self.steps[k] = 0
            self.failed.pop(k, None)
        self._rebuild_hp()

    def add(self, member: Member, module: nn.Module) -> int:
        """Append a new member (its weights from ``module``, a fresh Adam state); returns its slot."""
        member.rule.validate()
        check_one_structure([member], reference=self.rule, who="the population", names=[f"slot {self.K}"])
        row = _flat_row(module).unsqueeze(0)
        self.flat = torch.cat([self.flat, row])
        self.exp_avg, self.exp_avg_sq = (torch.cat([t, torch.zeros_like(row)]) for t in (self.exp_avg, self.exp_avg_sq))
        self.lr_factor = torch.cat([self.lr_factor, torch.ones(1, dtype=torch.float64)])
        self.steps.append(0)
        self.members.append(member)
        self._rebuild_hp()
        return self.K - 1

    def copy_member(self, src: int, dst: int) -> None:
        """Slot ``dst`` takes slot ``src``'s weights and Adam state (PBT's exploit); its hyperparameters stay
        its own until ``set_member`` changes them."""
        for state in (self.flat, self.exp_avg, self.exp_avg_sq):
            state[dst] = state[src]
        self.steps[dst] = self.steps[src]

    def remove(self, k: int) -> None:
        """Drop member k (stopped by the scheduler): the population shrinks, the others go on unchanged."""
        if self.K == 1:
            raise ValueError("cannot remove the last member of a population")
        keep = [i for i in range(self.K) if i != k]
        self.flat, self.exp_avg, self.exp_avg_sq = self.flat[keep], self.exp_avg[keep], self.exp_avg_sq[keep]
        self.failed = {i - (i > k): why for i, why in self.failed.items() if i != k}
        self.lr_factor = self.lr_factor[keep]
        del self.steps[k], self.members[k]
        self._rebuild_hp()

    def _scale_fn(self, hp: dict):
        """Member k's scale: each scale present, computed, and member k's own taken."""

        def f(x, y):
            out = torch.zeros_like(y)
            for i, name in enumerate(self.scales):
                spec = SCALES[name]
                out = torch.where(hp["scale"] == i, spec.factory(**{k: hp[k] for k in spec.params})(x, y), out)
            return out

        return f

    def _member_loss(self, dist_inputs, values, batch, hp):
        """One member's loss from its network's outputs on its minibatch (under ``vmap``: one member's tensors)."""
        logp, entropy = log_prob_entropy(dist_inputs, batch["actions"], self.discrete)
        inputs = LossInputs(logp=logp, behaviour_logp=batch["behaviour_logp"], actions=batch["actions"],
                            logits=dist_inputs if self.discrete else None, discrete=self.discrete, values=values,
                            value_targets=batch.get("value_targets"), advantages=batch.get("advantages"),
                            returns=batch.get("returns"), entropy=entropy)
        terms = pgu_loss(self.rule, inputs, one_step=self.one_step, entropy_coeff=hp["entropy_coeff"],
                         vf_loss_coeff=hp["vf_loss_coeff"], vf_clip=self.vf_clip, use_critic=self.use_critic,
                         scale_fn=self._scale_fn(hp), check=False)
        return terms.total, {"policy": terms.policy, "vf_mean": terms.vf_mean, "entropy": entropy.mean(),
                             "delta_o": terms.delta_o, "delta_r": terms.delta_r}

    def _flat_losses(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        # the views of flat, as leaves: their gradients are joined by one cat (a gradient through the slices
        # of one flat leaf would cost a [K, P] zero-fill and add per parameter)
        params = {name: v.detach().requires_grad_(True) for name, v in self.params.items()}
        dist_inputs, values = self.forward(batch["obs"], params)
        total, aux = self._member_losses(dist_inputs, values, batch, self.hp)
        for name in ("delta_o", "delta_r"):
            for k in (~torch.isfinite(aux[name]).flatten(1).all(1)).nonzero().flatten().tolist():
                self.failed.setdefault(k, f"non-finite {name} in population member {k} at its step {self.steps[k]}")
        grads = torch.autograd.grad(total.sum(), list(params.values()))  # Σ_k loss_k: member k's is ∇loss_k
        grad = torch.cat([g.reshape(self.K, -1) for g in grads], dim=1)
        return grad, total.detach(), {k: v.detach() for k, v in aux.items()}

    def losses(self, batch: dict) -> tuple[dict, torch.Tensor, dict]:
        """Every member's gradient (``{name: [K, ...]}``), total loss and loss terms on its minibatch (``[K, M,
        ...]`` tensors), without a step. A member's non-finite Δ_O or Δ_R raises ``FloatingPointError`` naming it."""
        grad, total, aux = self._flat_losses(batch)
        if self.failed:
            raise FloatingPointError(next(iter(self.failed.values())))
        return self._views(grad), total, aux

    def step(self, batch: dict) -> dict:
        """One minibatch step for every member: gradient, clip by the member's global norm, Adam. Returns
        per-member statistics (``[K]`` tensors): the loss terms before the step and the gradient's norm."""
        g, total, aux = self._flat_losses(batch)
        frozen = sorted(self.failed)
        if frozen:  # a failed member takes no step, now or later: its row is put back after the update
            before = [(k, self.flat[k].clone(), self.exp_avg[k].clone(), self.exp_avg_sq[k].clone()) for k in frozen]
            g = g.clone()
            g[frozen] = 0.0
        dtype = self.flat.dtype
        norms = torch.linalg.vector_norm(g, dim=1)
        clip = self.grad_clip.to(dtype)
        coeff = torch.where(torch.isinf(clip), torch.ones_like(norms),  # no clip; else RLlib's global-norm rule
                            torch.clamp(clip / torch.maximum(norms + 1e-6, clip), max=1.0))
        self.steps = [t + 1 for t in self.steps]
        beta1, beta2 = ADAM_BETAS
        # torch's Adam, with Python floats per member: value = −lr/(1 − β₁ᵗ), denominator √v/√(1 − β₂ᵗ) + ε
        neg_step = (-(self.lr * self.lr_factor) / torch.tensor([1 - beta1**t for t in self.steps],
                                                                 dtype=torch.float64)).to(dtype)
        bc2_sqrt = torch.tensor([(1 - beta2**t) ** 0.5 for t in self.steps], dtype=torch.float64).to(dtype)
        g = g * coeff.unsqueeze(1)
        self.exp_avg.lerp_(g, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (self.exp_avg_sq.sqrt() / bc2_sqrt.unsqueeze(1)).add_(ADAM_EPS)
        self.flat.add_(neg_step.unsqueeze(1) * self.exp_avg / denom)
        for k, flat, m, v in (before if frozen else []):
            self.flat[k], self.exp_avg[k], self.exp_avg_sq[k] = flat, m, v
            self.steps[k] -= 1
        return {"total": total, "policy": aux["policy"], "vf_mean": aux["vf_mean"], "entropy": aux["entropy"],
                "grad_norm": norms}

    def member_state_dict(self, k: int) -> dict:
        """Member k's weights, as its solo module's ``state_dict``."""
        return {name: v[k].clone() for name, v in self.params.items()}

    def optimizer_state(self, k: int) -> dict:
        """Member k's weights and Adam state (a checkpoint's)."""
        return {"flat": self.flat[k].clone(), "exp_avg": self.exp_avg[k].clone(),
                "exp_avg_sq": self.exp_avg_sq[k].clone(), "step": self.steps[k]}

    def load_optimizer_state(self, k: int, state: dict) -> None:
        """Slot k takes the weights and Adam state of ``optimizer_state`` (PBT's exploit across processes)."""
        self.flat[k], self.exp_avg[k], self.exp_avg_sq[k] = state["flat"], state["exp_avg"], state["exp_avg_sq"]
        self.steps[k] = int(state["step"])
