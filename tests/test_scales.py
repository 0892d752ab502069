"""Scale functions (spec §4): the four constraints, continuity, known values, errors."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from pgu_rllib.core.scales import SCALE_NAMES, make_scale

finite = st.floats(-6.0, 6.0, allow_nan=False)
alpha = st.floats(0.0, 3.0, allow_nan=False)
SETTINGS = settings(max_examples=300, deadline=None)


def f_of(name, **params):
    fn = make_scale(name, **params)
    return lambda x, y: float(fn(torch.tensor([x], dtype=torch.float64), torch.tensor([y], dtype=torch.float64))[0])


def constrained_scales():
    """The scales for which spec §4 says the constraints hold."""
    fixed = st.sampled_from(["sq", "ml", "sil"]).map(lambda n: (n, {}))
    mla = st.tuples(alpha, alpha).map(lambda a: ("mla", {"alpha_o": a[0], "alpha_r": a[1]}))
    return st.one_of(fixed, mla)


@SETTINGS
@given(constrained_scales(), finite)
def test_constraint_1_zero_error_gives_zero(scale, x):
    name, params = scale
    assert f_of(name, **params)(x, 0.0) == 0.0


@SETTINGS
@given(constrained_scales(), finite, finite, finite)
def test_constraint_2_nondecreasing_in_delta_r(scale, x, y1, y2):
    name, params = scale
    f = f_of(name, **params)
    lo, hi = sorted((y1, y2))
    assert f(x, lo) <= f(x, hi) + 1e-9 * (1 + abs(f(x, hi)))


@SETTINGS
@given(constrained_scales(), finite, finite, finite)
def test_constraint_3_abs_nondecreasing_in_delta_o(scale, x1, x2, y):
    name, params = scale
    f = f_of(name, **params)
    lo, hi = sorted((x1, x2))
    assert abs(f(lo, y)) <= abs(f(hi, y)) + 1e-9 * (1 + abs(f(hi, y)))


@SETTINGS
@given(st.one_of(st.sampled_from([("sq", {}), ("ml", {}), ("sil", {})]),
                 st.tuples(st.floats(0.05, 3.0), alpha).map(lambda a: ("mla", {"alpha_o": a[0], "alpha_r": a[1]}))),
       st.floats(-5.0, 5.0))
def test_constraint_4_vanishes_as_delta_o_to_minus_infinity(scale, y):
    name, params = scale
    f = f_of(name, **params)
    # exp() arguments are clamped at -20 (spec §1), so e^x bottoms out at 2e-9.
    assert abs(f(-1e4, y)) <= 1e-6 * (1 + math.exp(abs(y)))


@given(alpha, finite)
def test_mla_with_alpha_o_zero_ignores_delta_o(alpha_r, y):
    """Documented exception: at α_o = 0, f_MLA does not depend on Δ_O, so constraint 4
    holds only for α_o > 0 (the spec's 'α_o ≥ 0' includes this boundary)."""
    f = f_of("mla", alpha_o=0.0, alpha_r=alpha_r)
    assert f(-1e4, y) == f(0.0, y) == f(5.0, y)


def test_mla_special_points():
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    y = torch.linspace(-2, 2, 61, dtype=torch.float64)
    X, Y = torch.meshgrid(x, y, indexing="ij")
    # (0, 0): plain regression / on-policy PG, f = y
    assert torch.allclose(make_scale("mla", alpha_o=0, alpha_r=0)(X, Y), Y)
    # (1, 0) agrees with importance-weighted PG e^x·y to first order around (0, 0)
    small_x, small_y = X * 1e-3, Y * 1e-3
    sq = make_scale("sq")(small_x, small_y)
    mla10 = make_scale("mla", alpha_o=1, alpha_r=0)(small_x, small_y)
    assert torch.allclose(mla10, sq, atol=1e-8)


def _max_jump(fn, lines):
    """Largest change of fn over a tiny step along many lines crossing the plane."""
    eps = 1e-9
    worst = 0.0
    for (x0, y0, dx, dy) in lines:
        t = torch.linspace(-4, 4, 40001, dtype=torch.float64)
        xs, ys = x0 + dx * t, y0 + dy * t
        v = fn(xs, ys)
        v2 = fn(xs + eps * dx, ys + eps * dy)
        worst = max(worst, float((v2 - v).abs().max()))
    return worst


@pytest.mark.parametrize("name,params", [("mla", {"alpha_o": 1.0, "alpha_r": 1.0}),
                                         ("mla", {"alpha_o": 0.7, "alpha_r": 2.5}),
                                         ("mla", {"alpha_o": 2.0, "alpha_r": 0.0}),
                                         ("mla_piecewise", {})])
def test_continuity_across_branch_switches(name, params):
    fn = make_scale(name, **params)
    g = torch.Generator().manual_seed(0)
    lines = [tuple(float(v) for v in torch.randn(4, generator=g)) for _ in range(40)]
    # plus lines along the switch surfaces themselves
    lines += [(-1.0, 0.0, 0.0, 1.0), (0.0, -1.0, 1.0, -1.0), (0.0, -2.0, 1.0, -2.0)]
    assert _max_jump(fn, lines) < 1e-5
    # the probe does see a jump where there is one
    assert _max_jump(lambda x, y: (x + y > 0).double(), lines) == 1.0


def test_mla_piecewise_branches_meet():
    fn = make_scale("mla_piecewise")
    x = torch.linspace(-0.99, 3, 200, dtype=torch.float64)
    y = -(1 + x)  # the switch 1 + x + y = 0
    below, above = fn(x, y - 1e-9), fn(x, y + 1e-9)
    assert torch.allclose(below, -0.5 * (1 + x) ** 2, atol=1e-8)
    assert torch.allclose(above, below, atol=1e-7)


def test_known_values():
    x = torch.tensor([0.0, 0.0, math.log(2.0), -1.0], dtype=torch.float64)
    y = torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64)
    assert torch.allclose(make_scale("sq")(x, y), torch.tensor([1.0, -1.0, 2.0, math.exp(-1)], dtype=torch.float64))
    assert torch.allclose(make_scale("ml")(x[:1], y[:1]), torch.tensor([math.e - 1], dtype=torch.float64))
    assert torch.allclose(make_scale("sil")(x, y), torch.tensor([1.0, 0.0, 2.0, math.exp(-1)], dtype=torch.float64))
    clip = make_scale("ppo_clip", epsilon=0.2)
    xs = torch.tensor([0.1, 0.3, -0.1, -0.3, 0.3, -0.3])
    ys = torch.tensor([1.0, 1.0, -1.0, -1.0, -1.0, 1.0])
    # inside the region: e^x·y; pushed past the clip in the direction y wants: 0
    expect = torch.tensor([math.exp(0.1), 0.0, -math.exp(-0.1), 0.0, -math.exp(0.3), math.exp(-0.3)])
    assert torch.allclose(clip(xs, ys), expect)


def test_exp_clamp_keeps_finite():
    for name in ("sq", "ml", "sil"):
        out = make_scale(name)(torch.tensor([1e6, -1e6]), torch.tensor([1e3, 1e3]))
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("call,needle", [
    (lambda: make_scale("huber"), "unknown scale 'huber'; allowed: sq, ml, sil, mla_piecewise, mla, ppo_clip"),
    (lambda: make_scale("mla", alpha_o=1.0), "needs parameter(s) alpha_r"),
    (lambda: make_scale("mla", alpha_o=-0.5, alpha_r=0.0), "alpha_o=-0.5 is out of range; allowed [0, inf)"),
    (lambda: make_scale("ppo_clip", epsilon=1.5), "epsilon=1.5 is out of range; allowed (0, 1)"),
    (lambda: make_scale("ppo_clip", epsilon=0.0), "epsilon=0.0 is out of range"),
    (lambda: make_scale("ppo_clip"), "needs parameter(s) epsilon"),
    (lambda: make_scale("sq", alpha_o=1.0), "takes no parameter alpha_o"),
    (lambda: make_scale("mla", alpha_o="big", alpha_r=0), "alpha_o='big' is not a number"),
    (lambda: make_scale("mla", alpha_o=float("nan"), alpha_r=0), "out of range"),
])
def test_bad_scale_arguments_raise_value_error(call, needle):
    with pytest.raises(ValueError) as err:
        call()
    assert needle in str(err.value)


def test_every_scale_is_elementwise():
    x, y = torch.randn(5, 7), torch.randn(5, 7)
    params = {"mla": {"alpha_o": 1.0, "alpha_r": 0.5}, "ppo_clip": {"epsilon": 0.2},
              "dpo": {"dpo_alpha": 2.0, "dpo_beta": 0.6}}
    for name in SCALE_NAMES:
        fn = make_scale(name, **params.get(name, {}))
        full = fn(x, y)
        assert full.shape == x.shape
        assert torch.allclose(full[2, 3], fn(x[2, 3:4], y[2, 3:4])[0])


def dpo_objective(x, a, alpha, beta):
    """Lu et al.'s DPO objective per sample, r·A − drift(r, A) with r = e^x, written as the paper writes it."""
    r = torch.exp(x)
    pos = torch.relu((r - 1) * a - alpha * torch.tanh((r - 1) * a / alpha))
    neg = torch.relu(torch.log(r) * a - beta * torch.tanh(torch.log(r) * a / beta))
    return r * a - torch.where(a >= 0, pos, neg)


@pytest.mark.parametrize("alpha,beta", [(2.0, 0.6), (0.5, 0.1), (4.0, 2.0)])
def test_dpo_scale_times_grad_log_pi_is_the_gradient_of_dpos_objective(alpha, beta):
    """f(Δ_O, Δ_R)·∇log π = ∇(r·A − drift): with log π = θ, ∂/∂θ of the objective at x = θ − log b is f,
    on a grid of (Δ_O, Δ_R) in float64, kinks (x = 0, A = 0) included."""
    xs = torch.linspace(-3.0, 3.0, 121, dtype=torch.float64)
    ys = torch.linspace(-4.0, 4.0, 81, dtype=torch.float64)
    x, y = torch.meshgrid(xs, ys, indexing="ij")
    theta = x.clone().requires_grad_(True)  # log π(a|s), the behaviour's log b = 0
    dpo_objective(theta, y, alpha, beta).sum().backward()
    f = make_scale("dpo", dpo_alpha=alpha, dpo_beta=beta)(x, y)
    assert float((f - theta.grad).abs().max()) <= 1e-12
    assert torch.equal(make_scale("dpo", dpo_alpha=alpha, dpo_beta=beta)(torch.zeros_like(ys), ys), ys)  # on-policy: PG
