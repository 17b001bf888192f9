"""Numerical extremes: huge, infinite, NaN and subnormal logits, a million classes, exact 0
and 1 probabilities, and the special rows documented in docs/special_values.md (checked
against PyTorch when it is importable).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import cece
import cece.reference as ref

inf, nan = np.inf, np.nan
FLOATS = [np.float32, np.float64]

try:  # PyTorch is optional: the comparisons are skipped without it
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
IMPLS = pytest.mark.parametrize("impl", [cece, ref], ids=["cece", "reference"])


def same(actual, expected):
    """Equal values, NaN where NaN, for any dtype."""
    np.testing.assert_array_equal(np.asarray(actual, np.float64), np.asarray(expected, np.float64))


# ---- docs/special_values.md: one row, one label -------------------------------------------

# (name, row, label, loss, gradient): the table of docs/special_values.md
SPECIAL_ROWS = [
    ("one -inf, not the label", [-inf, 0.0, 1.0], 2, "finite", "finite"),
    ("-inf at the label", [-inf, 0.0, 1.0], 0, inf, "finite"),
    ("all -inf", [-inf, -inf, -inf], 0, nan, nan),
    ("+inf at the label", [inf, 0.0, 1.0], 0, nan, nan),
    ("+inf not at the label", [0.0, inf, 1.0], 0, nan, nan),
    ("two +inf", [inf, inf, 0.0], 0, nan, nan),
    ("+inf and -inf", [inf, -inf, 0.0], 0, nan, nan),
    ("NaN", [nan, 0.0, 1.0], 1, nan, nan),
    ("NaN at the label", [nan, 0.0, 1.0], 0, nan, nan),
    ("+-1e30", [1e30, -1e30, 0.0], 1, 2e30, [1.0, -1.0, 0.0]),
    ("+-1e30 at the max", [1e30, -1e30, 0.0], 0, 0.0, [0.0, 0.0, 0.0]),
    ("all 1e30", [1e30, 1e30, 1e30], 0, math.log(3), [-2 / 3, 1 / 3, 1 / 3]),
    ("subnormals", [5e-324, 0.0, -5e-324], 0, math.log(3), [-2 / 3, 1 / 3, 1 / 3]),
]


def _torch_ce(x, target, **kwargs):
    tx = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    tt = torch.tensor(target)
    loss = F.cross_entropy(tx, tt, reduction=kwargs.pop("reduction", "sum"), **kwargs)
    loss.backward()
    return loss.detach().numpy(), tx.grad.numpy()


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name,row,label,loss,grad", SPECIAL_ROWS, ids=[r[0] for r in SPECIAL_ROWS])
def test_special_row_documented(name, row, label, loss, grad, dtype):
    x = np.array([row], dtype=dtype)  # float32: the subnormals round to 0, same results
    y = np.array([label])
    got_loss, got_grad = cece.cross_entropy_with_grad(x, y, reduction="sum")
    if loss == "finite":
        assert np.isfinite(got_loss)
    elif isinstance(loss, float) and math.isnan(loss):
        assert np.isnan(got_loss)
    else:
        np.testing.assert_allclose(float(got_loss), loss, rtol=1e-6)
    if grad == "finite":
        assert np.isfinite(got_grad).all()
        assert got_grad[0, np.isneginf(x[0])].tolist() == [-1.0 if j == label else 0.0
                                                         for j in np.flatnonzero(np.isneginf(x[0]))]
    elif isinstance(grad, float) and math.isnan(grad):
        assert np.isnan(got_grad).all()
    else:
        np.testing.assert_allclose(got_grad[0], grad, rtol=1e-6, atol=1e-7)
    # the reference documents the same
    r_loss, r_grad = ref.cross_entropy_with_grad(x, y, reduction="sum")
    np.testing.assert_allclose(np.float64(got_loss), np.float64(r_loss), rtol=1e-6)
    np.testing.assert_allclose(got_grad, r_grad, rtol=1e-6, atol=1e-7)


@needs_torch
@pytest.mark.parametrize("name,row,label,loss,grad", SPECIAL_ROWS, ids=[r[0] for r in SPECIAL_ROWS])
def test_special_row_matches_torch(name, row, label, loss, grad):
    x = np.array([row])
    y = np.array([label])
    got_loss, got_grad = cece.cross_entropy_with_grad(x, y, reduction="sum")
    t_loss, t_grad = _torch_ce(x, y)
    np.testing.assert_allclose(np.float64(got_loss), t_loss, rtol=1e-12)
    np.testing.assert_allclose(got_grad, t_grad, rtol=1e-12, atol=1e-15)
    for fn, tfn in ((cece.softmax, torch.softmax), (cece.log_softmax, torch.log_softmax)):
        np.testing.assert_allclose(fn(x), tfn(torch.tensor(x), -1).numpy(), rtol=1e-12, atol=1e-300)


# logsumexp of the special rows: cece documents NaN for a row holding +inf and for an all -inf
# row (its docstring and docs/special_values.md); PyTorch (and SciPy) return +inf and -inf.
LSE_ROWS = [
    ([-inf, -inf, -inf], nan, -inf),
    ([inf, 0.0, 1.0], nan, inf),
    ([inf, inf, 0.0], nan, inf),
    ([inf, -inf, 0.0], nan, inf),
    ([nan, 0.0, inf], nan, nan),
    ([-inf, 0.0, 0.0], math.log(2), math.log(2)),
    ([1e30, -1e30, 0.0], 1e30, 1e30),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("row,documented,pytorch", LSE_ROWS)
def test_logsumexp_special_rows(row, documented, pytorch, dtype):
    x = np.array([row], dtype=dtype)
    got = cece.logsumexp(x)
    np.testing.assert_allclose(np.float64(got[0]), documented, rtol=1e-6)
    np.testing.assert_allclose(np.float64(ref.logsumexp(x)[0]), documented, rtol=1e-6)
    if torch is not None:
        t = torch.logsumexp(torch.tensor(np.asarray(row)), -1).item()
        np.testing.assert_allclose(t, pytorch, rtol=1e-12)  # the table's PyTorch column


# probability targets: the xlogy convention (a_j == 0 contributes 0) differs from PyTorch's
# 0 * -inf = nan in exactly one documented case
PROB_ROWS = [
    ("all -inf", [-inf, -inf], [0.0, 0.0], nan, [nan, nan], nan),
    ("-inf where the target is 0", [-inf, 0.0], [0.0, 1.0], 0.0, [0.0, 0.0], nan),
    ("-inf where the target is > 0", [-inf, 0.0], [0.5, 0.5], inf, [-0.5, 0.5], inf),
    ("+inf", [inf, 0.0], [1.0, 0.0], nan, [nan, nan], nan),
    ("NaN where the target is 0", [nan, 0.0], [0.0, 1.0], nan, [nan, nan], nan),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name,row,target,loss,grad,torch_loss", PROB_ROWS, ids=[r[0] for r in PROB_ROWS])
def test_special_row_probability_target(name, row, target, loss, grad, torch_loss, dtype):
    x = np.array([row], dtype=dtype)
    t = np.array([target], dtype=dtype)
    got_loss, got_grad = cece.cross_entropy_with_grad(x, t, reduction="sum")
    same(got_loss, loss)
    same(got_grad[0], grad)
    r_loss, r_grad = ref.cross_entropy_with_grad(x, t, reduction="sum")
    same(r_loss, loss)
    same(r_grad[0], grad)
    if torch is not None:
        t_loss, t_grad = _torch_ce(np.array([row]), np.array([target]))
        same(t_loss, torch_loss)
        same(t_grad[0], grad)  # PyTorch's gradient agrees even where its loss is nan


@IMPLS
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_all_ignored_and_empty_batches(reduction, dtype, impl):
    """mean -> nan, sum -> 0, and the gradient rows of ignored positions are 0 (as PyTorch;
    docs/semantics.md: an ignored position has gradient row 0)."""
    x = np.zeros((2, 3), dtype)
    y = np.array([-100, -100])
    expected_loss = nan if reduction == "mean" else 0.0
    loss, grad = impl.cross_entropy_with_grad(x, y, reduction=reduction)
    same(loss, expected_loss)
    same(grad, np.zeros((2, 3)))
    loss, grad = impl.cross_entropy_with_grad(np.zeros((0, 3), dtype), np.zeros(0, np.int64), reduction=reduction)
    same(loss, expected_loss)
    assert grad.shape == (0, 3)
    if torch is not None:
        t_loss, t_grad = _torch_ce(x, y, reduction=reduction)
        same(t_loss, expected_loss)
        same(t_grad, np.zeros((2, 3)))


@IMPLS
@pytest.mark.parametrize("dtype", FLOATS)
def test_zero_class_weights_mean_gradient(dtype, impl):
    """D = 0 with a position that is not ignored: the mean is nan, ignored rows stay 0."""
    x = np.zeros((2, 3), dtype)
    y = np.array([-100, 1])
    w = np.array([1.0, 0.0, 1.0])
    loss, grad = impl.cross_entropy_with_grad(x, y, weight=w)
    assert np.isnan(loss)
    same(grad[0], np.zeros(3))
    assert np.isnan(grad[1]).all()
    if torch is not None:
        _, t_grad = _torch_ce(x, y, reduction="mean", weight=torch.tensor(w))
        same(t_grad[0], np.zeros(3))
        assert np.isnan(t_grad[1]).all()


# ---- isolation: a bad row leaves every other row's result untouched ------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("C", [1, 3, 8, 17, 100])
@pytest.mark.parametrize("layout", ["rows", "tiles"])
def test_special_values_stay_in_their_row(dtype, C, layout):
    rng = np.random.default_rng(C)
    N = 37
    clean = rng.standard_normal((N, C)).astype(dtype)
    y = rng.integers(0, C, N)
    dirty = clean.copy()
    bad = {5: nan, 9: inf, 13: -inf, 20: "all -inf", 21: 1e30, 22: -1e30}
    for i, v in bad.items():
        if v == "all -inf":
            dirty[i] = -inf
        else:
            dirty[i, C // 2] = v
    if layout == "tiles":  # the same positions in the (outer, C, inner) layout, axis=1
        to = lambda a: np.ascontiguousarray(a.reshape(1, N, C).transpose(0, 2, 1))
        kw = {"axis": 1}
        yy = y.reshape(1, N)
        rows = lambda a: a.transpose(0, 2, 1).reshape(N, C)
        pos = lambda a: a.reshape(N)
    else:
        to, kw, yy, rows, pos = (lambda a: a), {}, y, (lambda a: a), (lambda a: a)
    l_clean, g_clean = cece.cross_entropy_with_grad(to(clean), yy, reduction="none", **kw)
    l_dirty, g_dirty = cece.cross_entropy_with_grad(to(dirty), yy, reduction="none", **kw)
    l_clean, l_dirty, g_clean, g_dirty = pos(l_clean), pos(l_dirty), rows(g_clean), rows(g_dirty)
    others = [i for i in range(N) if i not in bad]
    np.testing.assert_array_equal(l_dirty[others], l_clean[others])
    np.testing.assert_array_equal(g_dirty[others], g_clean[others])
    for name in ("softmax", "log_softmax"):
        a = rows(getattr(cece, name)(to(clean), **kw))
        b = rows(getattr(cece, name)(to(dirty), **kw))
        np.testing.assert_array_equal(b[others], a[others])
    lse_a = pos(cece.logsumexp(to(clean), **kw))
    lse_b = pos(cece.logsumexp(to(dirty), **kw))
    np.testing.assert_array_equal(lse_b[others], lse_a[others])
    # and the bad rows are what docs/special_values.md says
    for i in (5, 9, 20):
        assert np.isnan(l_dirty[i]) and np.isnan(g_dirty[i]).all() and np.isnan(lse_b[i])
    if C > 1:  # -inf in one class: finite unless it is the label
        assert np.isfinite(g_dirty[13]).all()
        assert (l_dirty[13] == inf) == (y[13] == C // 2)
    # the reference agrees on which positions are nan / inf
    r_loss = pos(ref.cross_entropy(to(dirty), yy, reduction="none", **kw))
    np.testing.assert_array_equal(np.isnan(r_loss), np.isnan(l_dirty))
    np.testing.assert_array_equal(np.isinf(r_loss), np.isinf(l_dirty))


# ---- huge logits, subnormals -------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("scale", [1e30, -1e30])
def test_huge_logits(dtype, scale):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((50, 7)) * scale).astype(dtype)
    y = rng.integers(0, 7, 50)
    for reduction in ("none", "sum", "mean"):
        got, grad = cece.cross_entropy_with_grad(x, y, reduction=reduction)
        exp, exp_grad = ref.cross_entropy_with_grad(x, y, reduction=reduction)
        np.testing.assert_allclose(np.float64(got), np.float64(exp), rtol=1e-6)
        np.testing.assert_allclose(grad, exp_grad, rtol=1e-6, atol=1e-7)
        assert np.isfinite(grad).all()
    np.testing.assert_allclose(cece.logsumexp(x), ref.logsumexp(x), rtol=1e-6)
    np.testing.assert_allclose(cece.softmax(x), ref.softmax(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(cece.log_softmax(x), ref.log_softmax(x), rtol=1e-6)
    # shifting a whole batch by 1e30 in float64 moves no probability
    if dtype == np.float64:
        small = rng.standard_normal((50, 7))
        np.testing.assert_allclose(cece.softmax(small + 1e15), cece.softmax(small), atol=1e-1)


@pytest.mark.parametrize("dtype", FLOATS)
def test_subnormal_logits_and_outputs(dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.array([[tiny, 0.0, -tiny, 2 * tiny]], dtype=dtype)
    p = cece.softmax(x)
    np.testing.assert_allclose(p, 0.25, rtol=1e-6)
    np.testing.assert_allclose(cece.logsumexp(x), math.log(4), rtol=1e-6)
    # probabilities that are themselves subnormal: exp(-100) in float32 is 3.7e-44. cece's
    # exp flushes results below the smallest normal number to +0 (csrc/cece_math.h): either
    # that 0 or the correctly rounded subnormal, never anything else.
    gap = 100.0 if dtype == np.float32 else 740.0
    row = np.array([0.0, -gap, -gap - 2.0])
    x = row[None].astype(dtype)
    exact = np.exp(row - np.logaddexp.reduce(row)).astype(dtype)
    p = cece.softmax(x)[0]
    assert p[0] == 1.0
    for got, want in zip(p[1:], exact[1:]):
        assert got == 0.0 or abs(got - want) <= 0.1 * want, (got, want)
    # log_softmax[0] = -log1p(e^-gap + ...), itself subnormal: cece keeps it (log1p of the
    # sum of the non-maximal exps), and 0 is its nearest normal neighbour
    np.testing.assert_allclose(cece.log_softmax(x)[0],
                               (row - np.logaddexp.reduce(row)).astype(dtype), rtol=1e-6,
                               atol=float(np.finfo(dtype).smallest_normal))
    loss, grad = cece.cross_entropy_with_grad(x, np.array([1]), reduction="sum")
    np.testing.assert_allclose(float(loss), gap, rtol=1e-6)
    np.testing.assert_allclose(grad[0], [1.0, -1.0, 0.0], atol=float(np.finfo(dtype).smallest_normal))
    assert (grad[0, 2] >= 0) and grad[0, 1] == -1.0


# ---- a million classes in float32 --------------------------------------------------------

BIG_C = 1_000_000


def assert_rows_close(actual, expected, rtol, what, axis=-1):
    """Row by row along `axis`, normwise: max_j |a_j - e_j| <= rtol * max_j |e_j| (an
    entry's own relative error means nothing for the many p_j near 0)."""
    a = np.moveaxis(np.asarray(actual, np.float64), axis, -1)
    e = np.moveaxis(np.asarray(expected, np.float64), axis, -1)
    err = np.abs(a - e).max(axis=-1) / np.abs(e).max(axis=-1)
    assert (err <= rtol).all(), f"{what}: normwise relative error per row {err}"


def _million_class_inputs(kind, rows=3, dtype=np.float32):
    rng = np.random.default_rng(7)
    if kind == "normal":
        x = rng.standard_normal((rows, BIG_C)) * 3
    elif kind == "uniform":
        x = rng.uniform(-80, 80, (rows, BIG_C))
    elif kind == "equal":
        x = np.full((rows, BIG_C), 12.5)
    else:  # "dominant": one class far above the rest
        x = rng.standard_normal((rows, BIG_C))
        x[:, 123_456] = 40
    return x.astype(dtype), rng.integers(0, BIG_C, rows)


@pytest.mark.parametrize("kind", ["normal", "uniform", "equal", "dominant"])
def test_million_classes_float32(kind):
    """float32 loss, logsumexp, softmax and gradient within 1e-6 relative of the float64
    reference, C = 1e6 (softmax and gradient normwise per row).

    "dominant" has one class 40 above the rest, its label on row 0: a loss of 7e-12 that
    is log S with S = 1 + 7e-12, all in the digits below S's leading 1 (the reference takes
    log1p of the sum without the max's own term, exactly 1, to keep them).
    """
    x, y = _million_class_inputs(kind)
    if kind == "dominant":
        y[0] = 123_456
    x64 = x.astype(np.float64)
    loss = cece.cross_entropy(x, y, reduction="none")
    assert loss.dtype == np.float32
    exact = ref.cross_entropy(x64, y, reduction="none")
    np.testing.assert_allclose(loss, exact, rtol=1e-6, atol=0)
    np.testing.assert_allclose(cece.cross_entropy(x, y, reduction="sum"), exact.sum(), rtol=1e-6)
    lse = cece.logsumexp(x)
    np.testing.assert_allclose(lse, ref.logsumexp(x64), rtol=1e-6, atol=0)
    assert_rows_close(cece.softmax(x), ref.softmax(x64), 1e-6, "softmax")
    assert_rows_close(cece.cross_entropy_grad(x, y, reduction="sum"),
                      ref.cross_entropy_grad(x64, y, reduction="sum"), 1e-6, "gradient")
    # float64 logits: the same bound at float64's own precision
    if kind == "dominant":
        np.testing.assert_allclose(cece.cross_entropy(x64, y, reduction="none"), exact, rtol=1e-9, atol=0)


def test_million_classes_float32_class_axis_first():
    """The same with the class axis first (the (outer, C, inner) tile kernels)."""
    x, y = _million_class_inputs("normal", rows=5)
    xt = np.ascontiguousarray(x.T)  # (C, 5), axis=0
    loss = cece.cross_entropy(xt, y, axis=0, reduction="none")
    exact = ref.cross_entropy(x.astype(np.float64), y, reduction="none")
    np.testing.assert_allclose(loss, exact, rtol=1e-6, atol=0)
    np.testing.assert_allclose(cece.logsumexp(xt, axis=0), ref.logsumexp(x.astype(np.float64)), rtol=1e-6)
    assert_rows_close(cece.cross_entropy_grad(xt, y, axis=0, reduction="sum"),
                      ref.cross_entropy_grad(x.astype(np.float64), y, reduction="sum").T, 1e-6,
                      "gradient", axis=0)


# ---- from_logits=False with exact 0 and 1 --------------------------------------------------

CLIP = 1e-7


@pytest.mark.parametrize("dtype", FLOATS)
def test_probabilities_exact_zero_and_one(dtype):
    p = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], dtype=dtype)
    y = np.array([0, 1, 1, 2])
    loss, grad = cece.cross_entropy_with_grad(p, y, from_logits=False, reduction="none")
    expected = -np.log(np.array([1 - CLIP, CLIP, 1 - CLIP, CLIP]))
    np.testing.assert_allclose(loss, expected.astype(dtype), rtol=1e-6)
    # every q is outside [1e-7, 1 - 1e-7] or carries no target: the clip's gradient is 0
    np.testing.assert_array_equal(grad, np.zeros_like(p))
    r_loss, r_grad = ref.cross_entropy_with_grad(p, y, from_logits=False, reduction="none")
    np.testing.assert_allclose(loss, r_loss, rtol=1e-6)
    np.testing.assert_array_equal(grad, r_grad)
    # one-hot probability targets: the same numbers
    onehot = np.eye(3, dtype=dtype)[y]
    np.testing.assert_allclose(cece.cross_entropy(p, onehot, from_logits=False, reduction="none"),
                               expected.astype(dtype), rtol=1e-6)
    # all-zero row: 0/0 -> nan, like any NaN
    z = np.zeros((1, 3), dtype)
    l0, g0 = cece.cross_entropy_with_grad(z, np.array([0]), from_logits=False, reduction="sum")
    assert np.isnan(l0) and np.isnan(g0).all()
    # inside the clip the gradient is Keras's: (g_k - sum_j g_j q_j) / P, g = -a / q
    q = np.array([[0.2, 0.3, 0.5]], dtype=dtype)
    l1, g1 = cece.cross_entropy_with_grad(q * 2, np.array([1]), from_logits=False, reduction="sum")
    np.testing.assert_allclose(float(l1), -math.log(0.3), rtol=1e-6)
    g = np.array([0.0, -1 / 0.3, 0.0])
    np.testing.assert_allclose(g1[0], (g - (g * [0.2, 0.3, 0.5]).sum()) / 2, rtol=1e-5)


@pytest.mark.parametrize("dtype", FLOATS)
def test_probabilities_at_the_clip_bounds(dtype):
    """q exactly at 1e-7 or 1 - 1e-7 is inside the clip (TensorFlow's clip_by_value gradient)."""
    p = np.array([[1e-7, 1 - 1e-7]])  # sums to 1 exactly in float64
    if dtype == np.float32:
        pytest.skip("1e-7 and 1 - 1e-7 are not float32 numbers")
    loss, grad = cece.cross_entropy_with_grad(p, np.array([0]), from_logits=False, reduction="sum")
    np.testing.assert_allclose(float(loss), -math.log(1e-7), rtol=1e-12)
    r_loss, r_grad = ref.cross_entropy_with_grad(p, np.array([0]), from_logits=False, reduction="sum")
    np.testing.assert_allclose(grad, r_grad, rtol=1e-12)
    assert grad[0, 0] != 0


# ---- intermediate overflow and underflow (found by tests/test_hypothesis.py) -------------
#
# Each case below has a finite, well-defined answer that plain arithmetic in a safe order
# gets; cece and its reference must both get it (each is checked separately).

@IMPLS
def test_lse_squared_overflow_with_z_loss_zero(impl):
    """|lse| > 1.34e154 and z_loss = 0: the z-loss term is 0, not 0 * inf."""
    x = np.array([[1e200, 0.0]])
    assert float(impl.cross_entropy(x, np.array([0]))) == 0.0
    assert float(impl.cross_entropy(x, np.array([1]))) == 1e200


@IMPLS
def test_lse_squared_overflow_with_z_loss(impl):
    """z_loss * lse^2 is representable although lse^2 is not: (z_loss * lse) * lse."""
    x = np.array([[1.5e154, 0.0]])
    got = float(impl.cross_entropy(x, np.array([0]), z_loss=1e-4))
    np.testing.assert_allclose(got, 1e-4 * 1.5e154 * 1.5e154, rtol=1e-12)


@IMPLS
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("which", ["weight", "sample_weight"])
def test_mean_gradient_with_tiny_denominator(impl, dtype, which):
    """D = sum of tiny weights: 1/D overflows (float32 below 2.9e-39, float64 below 5.6e-309)
    but the mean's gradient s * w * g / D is ordinary."""
    x = np.zeros((2, 3), dtype)
    y = np.array([0, 1])
    tiny = 1e-39 if dtype == np.float32 else 1e-310
    expected = np.array([[-1 / 3, 1 / 6, 1 / 6], [1 / 6, -1 / 3, 1 / 6]])
    weights = {"weight": np.full(3, tiny)} if which == "weight" else {"sample_weight": np.full(2, tiny)}
    loss, grad = impl.cross_entropy_with_grad(x, y, **weights)
    np.testing.assert_allclose(float(loss), math.log(3), rtol=1e-6)
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("power", [-1000, -70, 70, 1000])
def test_mean_is_unchanged_by_scaling_the_weights(dtype, power):
    """The mean cancels a common factor of the weights; scaled by a power of two (exactly)
    they give the same bits, however far from 1 the factor takes them."""
    rng = np.random.default_rng(abs(power))
    x = rng.standard_normal((6, 5)).astype(dtype)
    y = rng.integers(0, 5, 6)
    w, s = rng.uniform(0.5, 2.0, 5), rng.uniform(0.5, 2.0, 6)
    base = cece.cross_entropy_with_grad(x, y, weight=w, sample_weight=s)
    for kw in ({"weight": np.ldexp(w, power), "sample_weight": s},
               {"weight": w, "sample_weight": np.ldexp(s, power)}):
        loss, grad = cece.cross_entropy_with_grad(x, y, **kw)
        assert loss == base[0] and np.array_equal(grad, base[1]), kw
    # probability targets: D = sum(s) cancels a factor of the sample weights, not of the
    # class weights, which scale the mean
    t = np.full((6, 5), 0.2, dtype)
    base_p = cece.cross_entropy_with_grad(x, t, weight=w, sample_weight=s)
    loss, grad = cece.cross_entropy_with_grad(x, t, weight=w, sample_weight=np.ldexp(s, power))
    assert loss == base_p[0] and np.array_equal(grad, base_p[1])
    if abs(power) < 100:
        scaled = cece.cross_entropy_with_grad(x, t, weight=np.ldexp(w, power), sample_weight=s)
        np.testing.assert_allclose(scaled[0], np.ldexp(base_p[0], power), rtol=4 * np.finfo(dtype).eps)
    # one position (a 1-d call): its sample weight is a 0-d array, scaled all the same
    one = cece.cross_entropy_with_grad(x[0], y[0], sample_weight=np.ldexp(1.5, power))
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(one[0], cece.cross_entropy(x[0], y[0]), rtol=4 * eps)
    np.testing.assert_allclose(one[1], cece.cross_entropy_grad(x[0], y[0]), rtol=4 * eps)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("power", [-230, -70, 70, 230])
def test_mean_with_z_loss_and_class_weights_far_from_one(dtype, power):
    """z_loss's term carries no class weight, so the mean (sum_i w_yi l_i + z_loss lse_i^2)
    / sum_i w_yi grows as the class weights shrink: the weights' power-of-two rescaling must
    not cancel it (found by the long hypothesis profile: weights of 1.6e-70 gave log 2)."""
    rng = np.random.default_rng(abs(power) + 1)
    x = rng.standard_normal((6, 5)).astype(dtype)
    y = rng.integers(0, 5, 6)
    w = np.ldexp(rng.uniform(0.5, 2.0, 5), power)
    kw = dict(weight=w, z_loss=1e-4)
    loss, grad = cece.cross_entropy_with_grad(x, y, **kw)
    # the oracle: "sum" (which no rescaling touches) over D, in float64
    D = float(np.sum(w[y]))
    with np.errstate(over="ignore"):
        exp_loss = np.float64(ref.cross_entropy(x.astype(np.float64), y, reduction="sum", **kw)) / D
        exp_grad = ref.cross_entropy_grad(x.astype(np.float64), y, reduction="sum", **kw) / D
        in_range = np.isfinite(exp_loss.astype(dtype)), np.isfinite(exp_grad.astype(dtype))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    if in_range[0]:
        np.testing.assert_allclose(float(loss), exp_loss, rtol=rtol)
    else:  # beyond the dtype: inf, as the rounded exact value
        assert float(loss) == np.inf
    finite = in_range[1]
    np.testing.assert_allclose(grad[finite], exp_grad[finite], rtol=rtol,
                               atol=rtol * float(np.abs(exp_grad[finite]).max(initial=0)))
    assert np.array_equal(np.sign(grad[~finite]), np.sign(exp_grad[~finite]))
    assert not np.isnan(grad).any()


@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("case", ["smoothing", "smoothing_far_logit", "tiny_sample_weight"])
def test_float32_gradient_beyond_float32_range(case, axis):
    """The mean's gradient s (K p_j - a_j) / D of a label whose class weight is tiny beside
    the others' (D = 1e-41 with label smoothing): entries of ~1e39, beyond float32. Each is
    inf with the float64 reference's sign, never NaN (inf - inf, or inf * 0 where p_j is 0,
    as before the gradient factors that do not fit a float took the float64 loop; found by
    the long hypothesis profile); entries in range agree to float32 rounding of the terms."""
    x, y, kw = {
        "smoothing": (np.zeros((2, 3)), [0, 0], dict(weight=[1e-41, 1, 1], label_smoothing=0.1)),
        "smoothing_far_logit": (np.array([[0, -200, 0]]), [0], dict(weight=[1e-41, 1, 1], label_smoothing=0.1)),
        "tiny_sample_weight": (np.array([[30, 0, -90]]), [2], dict(weight=[1, 1, 1e-30], sample_weight=[1e-20])),
    }[case]
    x = np.asarray(x, np.float32)
    x = x if axis == -1 else np.ascontiguousarray(x.T)
    y = np.array(y)
    kw = {k: np.asarray(v, np.float64) if isinstance(v, list) else v for k, v in kw.items()}
    grad = cece.cross_entropy_grad(x, y, axis=axis, **kw)
    exact = ref.cross_entropy_grad(x.astype(np.float64), y, axis=axis, **kw)
    assert not np.isnan(grad).any()
    beyond = np.abs(exact) > np.finfo(np.float32).max
    assert np.array_equal(grad[beyond], np.sign(exact[beyond]) * np.inf)
    # the terms K p_j and a_j are as large as the largest entry: float32 rounding of those
    atol = 4 * float(np.finfo(np.float32).eps) * float(np.abs(exact).max())
    np.testing.assert_allclose(grad[~beyond], exact[~beyond], rtol=1e-6, atol=atol)


@IMPLS
def test_probability_inputs_with_subnormal_sum(impl):
    """from_logits=False, C = 1, subnormal p: q = 1 is clipped, so the gradient is 0 (not
    (1/P) * 0 = inf * 0)."""
    p = np.array([[2e-313], [3e-310]])
    _, grad = impl.cross_entropy_with_grad(p, np.array([0, 0]), from_logits=False, reduction="sum")
    np.testing.assert_array_equal(grad, np.zeros((2, 1)))


@IMPLS
def test_probability_inputs_gradient_scaled_back_into_range(impl):
    """from_logits=False with P = 4e-310: (g - sum g q) / P ~ 1e310 overflows on its own, the
    sample weight 1e-10 brings dl/dp back to ~1e300."""
    p = np.array([[1e-310, 3e-310]])
    q = np.array([0.25, 0.75])
    g = np.array([-1 / 0.25, 0.0])
    s = 1e-10
    expected = s * (g - (g * q).sum()) / 4e-310
    _, grad = impl.cross_entropy_with_grad(p, np.array([0]), from_logits=False, reduction="sum",
                                           sample_weight=np.array([s]))
    np.testing.assert_allclose(grad[0], expected, rtol=1e-9)


@IMPLS
def test_label_smoothing_with_logits_spanning_the_float64_range(impl):
    """sum_j w_j (z_j - m) over many classes must not overflow before it is scaled by eps/C."""
    C = 70
    x = np.full((1, C), -1.0e307)
    x[0, 0] = 1.5e308
    # l = -sum_j (1 / C) * logp_j, logp_0 = 0, logp_j = -(1.5e308 + 1e307) for j > 0
    expected = (C - 1) / C * (1.5e308 + 1e307)
    got = float(impl.cross_entropy(x, np.array([0]), label_smoothing=1.0))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    zero = impl.cross_entropy(x, np.array([0]), label_smoothing=1.0, reduction="none",
                              sample_weight=np.array([0.0]))
    assert float(zero[0]) == 0.0


@pytest.mark.parametrize("case", ["soft target", "label smoothing"])
def test_float32_logit_differences_beyond_float32_range(case):
    """z_j - m exceeds the float32 range (logits of both signs near 3e38): the float64
    reference stays finite where the difference is weighted by a small target mass."""
    x = np.array([[3.0e38, -3.0e38, 0.0]], dtype=np.float32)
    if case == "soft target":
        target, kwargs = np.array([[0.99, 0.001, 0.009]], dtype=np.float32), {}
    else:
        target, kwargs = np.array([0]), {"label_smoothing": 0.001}
    t64 = target.astype(np.float64) if target.dtype.kind == "f" else target
    expected = ref.cross_entropy(x.astype(np.float64), t64, reduction="none", **kwargs)
    assert np.isfinite(expected.astype(np.float32)).all()
    np.testing.assert_allclose(cece.cross_entropy(x, target, reduction="none", **kwargs),
                               expected.astype(np.float32), rtol=1e-6)
