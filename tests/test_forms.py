"""Forms (spec §3): autograd of each surrogate equals the closed-form update,
for every form × scale, on random categorical logits and Gaussian parameters;
plus the bias facts of spec §3/§5 (V = PG + τ∇H; P unbiased)."""
import math

import pytest
import torch

from pgu_rllib.core.forms import FORMS, expected_q_continuous, expected_q_discrete, surrogate
from pgu_rllib.core.qreading import q_all_actions, q_soft
from pgu_rllib.core.scales import SCALE_NAMES, make_scale
from pgu_rllib.core.signals import delta_o



@pytest.fixture(autouse=True)
def float64():
    """Exact comparisons in double precision; restored so other tests keep float32."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)

PARAMS = {"mla": {"alpha_o": 1.0, "alpha_r": 0.5}, "ppo_clip": {"epsilon": 0.2}}
B, N, D = 64, 5, 3


def scale(name):
    from pgu_rllib.core.scales import SCALES

    defaults = {k: p.default for k, p in SCALES[name].params.items() if p.default is not None}
    return make_scale(name, **{**defaults, **PARAMS.get(name, {})})  # every registered scale, at its defaults


def signals(g):
    x = 0.4 * torch.randn(B, generator=g)  # Δ_O: some samples fall outside ppo_clip's region
    y = torch.randn(B, generator=g)
    return x, y


@pytest.mark.parametrize("tau", [1.0, 0.5])
@pytest.mark.parametrize("parameterisation", ["logit", "soft"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("scale_name", SCALE_NAMES)
def test_categorical_autograd_equals_closed_form(scale_name, form, parameterisation, tau):
    g = torch.Generator().manual_seed(hash((scale_name, form, parameterisation)) % 2**31)
    z = torch.randn(B, N, generator=g, requires_grad=True)   # policy logits (the parameters)
    v = torch.randn(B, generator=g, requires_grad=True)      # value head output (soft reading)
    a = torch.randint(0, N, (B,), generator=g)
    x, y = signals(g)
    f = scale(scale_name)(x, y)

    logp = torch.log_softmax(z, -1).gather(-1, a[:, None]).squeeze(-1)
    q_all = q_all_actions(parameterisation, z, v, tau)
    q_sa = q_all.gather(-1, a[:, None]).squeeze(-1)
    loss = surrogate(form, f, logp=logp, q_sa=q_sa, expected_q=expected_q_discrete(z, q_all), tau=tau).mean()
    gz, gv = torch.autograd.grad(loss, (z, v), allow_unused=True)
    gv = torch.zeros(B) if gv is None else gv

    # Closed form (ascent directions, spec §3), per sample, then the loss gradient is −U/B.
    pi = torch.softmax(z, -1).detach()
    e_a = torch.nn.functional.one_hot(a, N).double()
    qd = q_all.detach()
    grad_q_z = tau * e_a if parameterisation == "logit" else tau * (e_a - pi)   # ∇_z q(s,a)
    grad_q_v = torch.zeros(B) if parameterisation == "logit" else torch.ones(B)  # ∇_v q(s,a)
    u_v = f[:, None] * tau * (e_a - pi)                                          # f(∇q − E∇q)
    correction = tau * pi * (qd - (pi * qd).sum(-1, keepdim=True))               # τ∇ Σ π sg(q)
    U_z = {"Q": f[:, None] * grad_q_z, "V": u_v, "P": u_v + correction}[form]
    U_v = {"Q": f * grad_q_v, "V": torch.zeros(B), "P": torch.zeros(B)}[form]
    assert torch.allclose(gz, -U_z / B, atol=1e-12)
    assert torch.allclose(gv, -U_v / B, atol=1e-12)


@pytest.mark.parametrize("tau", [1.0, 2.0])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("scale_name", SCALE_NAMES)
def test_gaussian_autograd_equals_closed_form(scale_name, form, tau):
    g = torch.Generator().manual_seed(hash((scale_name, form, "gauss")) % 2**31)
    mu = torch.randn(B, D, generator=g, requires_grad=True)
    log_std = (0.3 * torch.randn(B, D, generator=g)).requires_grad_()
    v = torch.randn(B, generator=g, requires_grad=True)
    a = (mu + log_std.exp() * torch.randn(B, D, generator=g)).detach()
    x, y = signals(g)
    f = scale(scale_name)(x, y)

    dist = torch.distributions.Normal(mu, log_std.exp())
    logp = dist.log_prob(a).sum(-1)
    entropy = dist.entropy().sum(-1)
    loss = surrogate(form, f, logp=logp, q_sa=q_soft(logp, v, tau),
                     expected_q=expected_q_continuous(entropy, tau), tau=tau).mean()
    g_mu, g_ls, g_v = torch.autograd.grad(loss, (mu, log_std, v), allow_unused=True)
    g_v = torch.zeros(B) if g_v is None else g_v

    sigma2 = (2 * log_std).exp().detach()
    dlogp_mu = (a - mu.detach()) / sigma2
    dlogp_ls = (a - mu.detach()) ** 2 / sigma2 - 1.0
    fs = f[:, None]
    U_mu = fs * tau * dlogp_mu
    U_ls = fs * tau * dlogp_ls - (tau**2 if form == "P" else 0.0)  # P: U_V − τ²∇H, ∇_{log σ} H = 1
    U_v = f if form == "Q" else torch.zeros(B)
    assert torch.allclose(g_mu, -U_mu / B, atol=1e-12)
    assert torch.allclose(g_ls, -U_ls / B, atol=1e-12)
    assert torch.allclose(g_v, -U_v / B, atol=1e-12)


def test_form_v_with_sq_at_zero_delta_o_is_vanilla_policy_gradient():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(B, N, generator=g, requires_grad=True)
    a = torch.randint(0, N, (B,), generator=g)
    adv = torch.randn(B, generator=g)
    logp = torch.log_softmax(z, -1).gather(-1, a[:, None]).squeeze(-1)
    x = delta_o(logp, logp.detach())  # on the first minibatch Δ_O = 0
    assert torch.equal(x, torch.zeros(B))
    ours = torch.autograd.grad(surrogate("V", make_scale("sq")(x, adv), logp=logp).mean(), z, retain_graph=True)[0]
    vanilla = torch.autograd.grad(-(adv * logp).mean(), z)[0]
    assert torch.allclose(ours, vanilla, atol=1e-14)


def _bandit(k=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(k, generator=g)
    r_bar = torch.rand(k, generator=g)  # Bernoulli means
    return z, r_bar


def test_exact_expectations_v_is_pg_plus_entropy_gradient_and_p_removes_it():
    """Spec §3: with Δ_R = R − q_θ(a) (logit reading), E[U_V] = τ(∇J + τ∇H) and E[U_P] = τ∇J,
    computed exactly by summing over actions (E[R|a] = r̄_a). At τ = 1: V = PG + ∇H, P = PG.
    (At τ ≠ 1 this needs the P term scaled by τ: our documented choice, see forms.py.)"""
    for tau in (1.0, 0.5):
        z0, r_bar = _bandit()
        z = z0.clone().requires_grad_()
        k = len(z0)
        a = torch.arange(k)
        pi = torch.softmax(z0, -1)
        q_all = q_all_actions("logit", z[None].expand(k, k), None, tau)
        q_sa = q_all.gather(-1, a[:, None]).squeeze(-1)
        logp = torch.log_softmax(z, -1)[a]
        y = r_bar - q_sa.detach()             # E[Δ_R | a]; f = sq at Δ_O = 0 is linear in y
        f = make_scale("sq")(torch.zeros(k), y)
        weights = pi                           # expectation over a ∼ π
        grads = {}
        for form in ("V", "P"):
            per = surrogate(form, f, logp=logp, q_sa=q_sa, expected_q=expected_q_discrete(z[None].expand(k, k), q_all), tau=tau)
            grads[form] = -torch.autograd.grad((weights * per).sum(), z, retain_graph=True)[0]
        zz = z0.clone().requires_grad_()
        true_pg = torch.autograd.grad((torch.softmax(zz, -1) * r_bar).sum(), zz)[0]
        p = torch.softmax(zz, -1)
        grad_h = torch.autograd.grad(-(p * torch.log(p)).sum(), zz)[0]
        assert (grads["V"] - tau * (true_pg + tau * grad_h)).abs().max() < 1e-7
        assert (grads["P"] - tau * true_pg).abs().max() < 1e-7
        assert (grads["V"] - true_pg).abs().max() > 1e-2  # the bias is real


def test_form_p_logit_is_unbiased_monte_carlo():
    """Bernoulli-reward softmax bandit; 400k sampled (a, R). Tolerance: 5 standard errors of
    the per-sample update, per coordinate (a false failure has probability < 1e-5)."""
    z0, r_bar = _bandit(seed=1)
    g = torch.Generator().manual_seed(7)
    n = 400_000
    pi = torch.softmax(z0, -1)
    a = torch.multinomial(pi, n, replacement=True, generator=g)
    R = torch.bernoulli(r_bar[a], generator=g)
    z = z0.clone().repeat(n, 1).requires_grad_()
    q_all = q_all_actions("logit", z, None, 1.0)
    q_sa = q_all.gather(-1, a[:, None]).squeeze(-1)
    logp = torch.log_softmax(z, -1).gather(-1, a[:, None]).squeeze(-1)
    f = make_scale("sq")(delta_o(logp, logp.detach()), R - q_sa.detach())
    per = surrogate("P", f, logp=logp, q_sa=q_sa, expected_q=expected_q_discrete(z, q_all))
    per_sample_update = -torch.autograd.grad(per.sum(), z)[0]     # (n, k)
    estimate = per_sample_update.mean(0)
    stderr = per_sample_update.std(0) / math.sqrt(n)
    true_pg = pi * (r_bar - (pi * r_bar).sum())
    assert ((estimate - true_pg).abs() <= 5 * stderr).all(), (estimate, true_pg, stderr)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_form_p_soft_gaussian_is_unbiased_monte_carlo(tau):
    """Gaussian π = N(μ, σ²), reward r(a) = −(a − c)², soft reading q = τ log π + v, Δ_R = r − q.
    ∇_μ J = −2(μ − c), ∇_{log σ} J = −2σ². Form P's mean update is τ∇J within 5 standard errors
    (4e5 samples)."""
    mu0, ls0, c, v0 = 0.3, -0.2, 1.0, 0.5
    n = 400_000
    g = torch.Generator().manual_seed(11)
    mu = torch.full((n,), mu0, requires_grad=True)
    ls = torch.full((n,), ls0, requires_grad=True)
    a = (mu0 + math.exp(ls0) * torch.randn(n, generator=g))
    r = -(a - c) ** 2
    dist = torch.distributions.Normal(mu, ls.exp())
    logp = dist.log_prob(a)
    q_sa = q_soft(logp, torch.full((n,), v0), tau)
    f = make_scale("sq")(torch.zeros(n), r - q_sa.detach())
    per = surrogate("P", f, logp=logp, q_sa=q_sa, expected_q=expected_q_continuous(dist.entropy(), tau), tau=tau)
    g_mu, g_ls = torch.autograd.grad(per.sum(), (mu, ls))
    for grads, truth in ((-g_mu, -2 * tau * (mu0 - c)), (-g_ls, -2 * tau * math.exp(2 * ls0))):
        err = abs(float(grads.mean()) - truth)
        assert err <= 5 * float(grads.std()) / math.sqrt(n), (float(grads.mean()), truth)


def test_unknown_form_raises():
    with pytest.raises(ValueError, match="unknown form 'X'; allowed: Q, V, P"):
        surrogate("X", torch.zeros(1), logp=torch.zeros(1))
