"""E[U] for every (form, Δ_R, normalisation) pair by exact enumeration (docs/spec.md §3 table).

One state, k actions, rewards r(a), policy π = softmax(z). Readings: ``logit`` (q = τ·z) and
``soft`` (q = τ·log π + v). R̂ = r(a) (a one-step episode). The expectation over a ~ π is a sum
with π as detached weights; normalisation uses the population mean and std under π (the limit of
the per-minibatch standardisation). Scale ``sq`` at Δ_O = 0, so f = Δ_R. With
g_J = ∇_z J, g_H = ∇_z H(π), σ_x = Std_π[x], E[f] = E_π[Δ_R], E∇q = E_{u∼π}∇q(u):

    V:  advantage (τ/σ_r)·g_J          q  τ·g_J + τ²·g_H      q+norm  (τ/σ_{r−q})·(g_J + τ·g_H)
        v / return  τ·g_J              v / return + norm  (τ/σ_r)·g_J
    P:  the V row − τ²·g_H             (only P with q, not normalised, is τ·g_J: PGPB)
    Q:  the V row + E[f]·E∇q           (E∇_z q = τπ for logit, 0 for soft; E∇_v q = 1 for soft)

Errors are at machine precision (float64). The P rows are also tied to ``UpdateRule.validate``:
it accepts form P exactly where E[U] is a positive multiple of g_J.
"""
import pytest
import torch

from pgu_rllib.core.forms import expected_q_discrete, surrogate
from pgu_rllib.core.qreading import q_all_actions
from pgu_rllib.core.scales import make_scale
from pgu_rllib.core.signals import delta_o, delta_r
from pgu_rllib.core.update_rule import UpdateRule

K = 6
ROWS = [(form, dr, norm) for form in "QVP" for dr in ("advantage", "q", "v", "return")
        for norm in (False, True) if not (dr == "advantage" and norm)]


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _bandit(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(K, generator=g), torch.randn((), generator=g), torch.rand(K, generator=g)


def _pop_std(x, w):
    m = (w * x).sum()
    return ((w * (x - m) ** 2).sum()).sqrt(), m


def expected_update(form, dr, norm, parameterisation, tau, z0, v0, r):
    """−∇ of Σ_a π(a)·loss(a), π detached: E[U] over a ~ π, through the library's own functions."""
    z, v = z0.clone().requires_grad_(), v0.clone().requires_grad_()
    logits = z
    pi = torch.softmax(logits, -1).detach()
    q_all = q_all_actions(parameterisation, logits, v.expand(1), tau)[0] if parameterisation == "soft" else \
        q_all_actions(parameterisation, logits, None, tau)
    q_all = q_all.reshape(K)
    logp = torch.log_softmax(logits, -1)
    value = v if parameterisation == "soft" else (pi * q_all.detach()).sum()  # the module's V(s)
    actions = torch.arange(K)
    advantage = None
    if dr == "advantage":  # RLlib: (R̂ − V − μ)/σ over the batch
        raw = r - value.detach()
        sd, m = _pop_std(raw, pi)
        advantage = (raw - m) / sd
    y = delta_r(dr, advantages=advantage, value_targets=r, returns=r, q_sa=q_all, v_s=value.expand(K),
                normalize=False)
    if norm:
        sd, m = _pop_std(y, pi)
        y = (y - m) / sd
    f = make_scale("sq")(delta_o(logp, logp.detach()), y)
    loss = surrogate(form, f, logp=logp[actions], q_sa=q_all[actions],
                     expected_q=expected_q_discrete(logits, q_all).expand(K), tau=tau)
    gz, gv = torch.autograd.grad((pi * loss).sum(), (z, v), allow_unused=True)
    return -gz, (torch.zeros(()) if gv is None else -gv)


def closed_form(form, dr, norm, parameterisation, tau, z0, v0, r):
    z = z0.clone().requires_grad_()
    pi_t = torch.softmax(z, -1)
    g_j = torch.autograd.grad((pi_t * r).sum(), z, retain_graph=True)[0]
    g_h = torch.autograd.grad(-(pi_t * torch.log(pi_t)).sum(), z)[0]
    pi = pi_t.detach()
    J = (pi * r).sum()
    logpi = torch.log(pi)
    q = tau * logpi + v0 if parameterisation == "soft" else tau * z0
    V = v0 if parameterisation == "soft" else (pi * q).sum()
    sigma_r, _ = _pop_std(r, pi)
    sigma_q, _ = _pop_std(r - q, pi)
    if dr == "advantage":
        u_v = tau / sigma_r * g_j
    elif dr == "q":
        u_v = tau / sigma_q * (g_j + tau * g_h) if norm else tau * g_j + tau**2 * g_h
    else:  # "v" and "return": an action-independent baseline (or none)
        u_v = tau / sigma_r * g_j if norm else tau * g_j
    if form == "V":
        return u_v, torch.zeros(())
    if form == "P":
        return u_v - tau**2 * g_h, torch.zeros(())
    mean_f = {"advantage": 0.0, "q": J - (pi * q).sum(), "v": J - V, "return": J}[dr] if not norm else 0.0
    mean_f = torch.as_tensor(mean_f)
    if parameterisation == "logit":
        return u_v + mean_f * tau * pi, torch.zeros(())
    return u_v, mean_f


@pytest.mark.parametrize("tau", [1.0, 0.5])
@pytest.mark.parametrize("parameterisation", ["logit", "soft"])
@pytest.mark.parametrize("form,dr,norm", ROWS)
def test_expected_update_matches_the_table(form, dr, norm, parameterisation, tau):
    for seed in range(3):
        z, v, r = _bandit(seed)
        got_z, got_v = expected_update(form, dr, norm, parameterisation, tau, z, v, r)
        want_z, want_v = closed_form(form, dr, norm, parameterisation, tau, z, v, r)
        assert torch.allclose(got_z, want_z, atol=1e-12), (got_z, want_z)
        assert torch.allclose(got_v, want_v, atol=1e-12), (got_v, want_v)


@pytest.mark.parametrize("dr,norm", [(dr, norm) for form, dr, norm in ROWS if form == "P"])
def test_form_p_is_accepted_exactly_where_it_is_pgpb(dr, norm):
    """Validation follows the math: form P runs only where E[U] = c·∇J with c > 0."""
    parallel = []
    for seed in range(3):
        z, v, r = _bandit(seed)
        u, _ = expected_update("P", dr, norm, "soft", 1.0, z, v, r)
        z_ = z.clone().requires_grad_()
        g_j = torch.autograd.grad((torch.softmax(z_, -1) * r).sum(), z_)[0]
        parallel.append(float(torch.nn.functional.cosine_similarity(u, g_j, dim=0)) > 1 - 1e-12)
    rule = UpdateRule(form="P", delta_r=dr, normalize_delta_r=norm)
    if all(parallel):
        rule.validate()
        assert (dr, norm) == ("q", False)
    else:
        with pytest.raises(ValueError, match="is not PGPB"):
            rule.validate()
