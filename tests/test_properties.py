"""Mathematical properties and special values: shift invariance, normalisation, gradient row
sums, stability at huge magnitudes, NaN / inf propagation, empty and fully ignored batches,
and identities between options (affine in label_smoothing, linear in sample_weight, one-hot
probabilities equal integer labels, softcap and z_loss spelled out, ...).
"""

from __future__ import annotations

import numpy as np
import pytest

import cece
import cece.reference as ref
from cece_testing import (
    FLOATS,
    REDUCTIONS,
    assert_close,
    batch_shape_of,
    make_labels,
    make_logits,
    make_positive,
    make_probs,
    make_sample_weight,
    make_weight,
    rtol_for,
)

LAYOUTS = [((12, 37), -1), ((40, 5), -1), ((3, 6, 4, 2), 1)]
LAYOUT_IDS = ["rows", "tiles", "axis1"]
inf, nan = np.inf, np.nan


def _grid_logits(rng, shape, dtype):
    """Logits on a 2**-10 grid within +-8: adding an integer < 2**10 is exact in float32."""
    return (rng.integers(-8 * 1024, 8 * 1024, size=shape) / 1024.0).astype(dtype)


# ---- shift invariance ------------------------------------------------------------------------


@pytest.mark.parametrize("target_kind", ["int", "prob"])
@pytest.mark.parametrize("shape,axis", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_shift_invariance(rng, dtype, shape, axis, target_kind):
    """Adding a constant to each position's logits changes neither loss nor gradient
    (without z_loss / softcap, which are not shift invariant)."""
    x = _grid_logits(rng, shape, dtype)
    batch = batch_shape_of(shape, axis)
    shift = np.expand_dims(rng.integers(-500, 500, size=batch), axis).astype(dtype)
    shifted = x + shift
    assert np.array_equal(shifted - shift, x)  # the shift is exact
    C = shape[axis]
    target = (make_labels(rng, batch, C, ignore_index=-100, ignore_frac=0.2)
              if target_kind == "int" else make_probs(rng, shape, axis, dtype))
    kwargs = {"axis": axis, "weight": make_weight(rng, C), "label_smoothing": 0.1,
              "sample_weight": make_sample_weight(rng, batch)}
    rtol = rtol_for(dtype)
    for reduction in REDUCTIONS:
        a = cece.cross_entropy_with_grad(x, target, reduction=reduction, **kwargs)
        b = cece.cross_entropy_with_grad(shifted, target, reduction=reduction, **kwargs)
        assert_close(b[0], a[0], rtol, f"shifted loss {reduction}")
        assert_close(b[1], a[1], rtol, f"shifted grad {reduction}")
    assert_close(cece.softmax(shifted, axis=axis), cece.softmax(x, axis=axis), rtol, "softmax")
    assert_close(cece.log_softmax(shifted, axis=axis), cece.log_softmax(x, axis=axis), rtol,
                 "log_softmax")
    assert_close(cece.logsumexp(shifted, axis=axis),
                 (cece.logsumexp(x, axis=axis).astype(np.float64)
                  + np.squeeze(shift, axis).astype(np.float64)), rtol, "logsumexp",
                 check_dtype=False)


# ---- normalisation -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape,axis", LAYOUTS + [((3, 1000), -1), ((2, 100_000), -1)],
                         ids=LAYOUT_IDS + ["C1000", "C100000"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_softmax_rows_sum_to_one(rng, dtype, shape, axis):
    x = make_logits(rng, shape, dtype, scale=6.0)
    p = cece.softmax(x, axis=axis)
    assert p.dtype == dtype
    assert np.all(p >= 0) and np.all(p <= 1)
    sums = p.sum(axis=axis, dtype=np.float64)
    assert_close(sums, np.ones_like(sums), rtol_for(dtype), "softmax row sums")
    logp = cece.log_softmax(x, axis=axis)
    assert np.all(logp <= 0)
    assert_close(np.exp(logp.astype(np.float64)), p.astype(np.float64), 4 * rtol_for(dtype),
                 "exp(log_softmax) == softmax")
    lse = cece.logsumexp(x, axis=axis)
    assert_close(logp.astype(np.float64),
                 x.astype(np.float64) - np.expand_dims(lse.astype(np.float64), axis),
                 rtol_for(dtype), "log_softmax == x - logsumexp")


@pytest.mark.parametrize("target_kind", ["int", "prob"])
@pytest.mark.parametrize("z_loss", [0.0, 0.02])
@pytest.mark.parametrize("shape,axis", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_gradient_row_sums(rng, dtype, shape, axis, z_loss, target_kind):
    """sum_j dl/dz_j = s_i * (A - A + 2 z_loss lse) / D: 0 without z_loss, for any target,
    weights and smoothing (softcap off)."""
    C = shape[axis]
    batch = batch_shape_of(shape, axis)
    x = make_logits(rng, shape, dtype)
    target = (make_labels(rng, batch, C, ignore_index=-100, ignore_frac=0.2)
              if target_kind == "int" else make_probs(rng, shape, axis, dtype))
    s = make_sample_weight(rng, batch)
    for kwargs in ({}, {"weight": make_weight(rng, C), "label_smoothing": 0.2, "sample_weight": s}):
        g = cece.cross_entropy_grad(x, target, axis=axis, reduction="sum", z_loss=z_loss, **kwargs)
        sums = g.sum(axis=axis, dtype=np.float64)
        lse = ref.logsumexp(x.astype(np.float64), axis=axis)
        valid = np.ones(batch, bool) if target_kind == "prob" else target != -100
        expected = np.where(valid, 2 * z_loss * lse * kwargs.get("sample_weight", 1.0), 0.0)
        bound = rtol_for(dtype) * (np.abs(g).astype(np.float64).sum(axis=axis) + np.abs(expected))
        assert np.all(np.abs(sums - expected) <= bound), np.max(np.abs(sums - expected) - bound)
        if z_loss == 0.0 and target_kind == "int" and not kwargs:
            # one-hot, no smoothing: the label's entry is p_y - 1, the others p_j
            p = ref.softmax(x, axis=axis)
            onehot = np.moveaxis(np.eye(C)[np.where(valid, target, 0)], -1, axis)
            expected_g = np.where(np.expand_dims(valid, axis), p - onehot, 0.0)
            assert_close(g, expected_g.astype(dtype), rtol_for(dtype), "p - onehot")


# ---- stability ---------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # lse**2, f32
@pytest.mark.parametrize("scale", [1e4, 1e30])
@pytest.mark.parametrize("shape,axis", LAYOUTS + [((2, 1000), -1)], ids=LAYOUT_IDS + ["C1000"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_huge_logits(rng, dtype, shape, axis, scale):
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    batch = batch_shape_of(shape, axis)
    C = shape[axis]
    y = make_labels(rng, batch, C)
    t = make_probs(rng, shape, axis, dtype)
    rtol = rtol_for(dtype)
    for target in (y, t):
        for kwargs in ({}, {"label_smoothing": 0.1, "weight": make_weight(rng, C)},
                       {"softcap": 30.0}, {"z_loss": 1e-4}):
            for reduction in REDUCTIONS:
                loss, grad = cece.cross_entropy_with_grad(x, target, axis=axis,
                                                          reduction=reduction, **kwargs)
                rloss, rgrad = ref.cross_entropy_with_grad(x, target, axis=axis,
                                                           reduction=reduction, **kwargs)
                assert_close(loss, rloss, rtol, f"loss {kwargs}")
                natural = None
                if "softcap" in kwargs:
                    # saturated tanh: the gradient is ~0 by cancellation in 1 - (z/c)**2;
                    # measure its error against the unsaturated gradient's magnitude
                    natural = np.max(np.abs(ref.cross_entropy_grad(
                        np.zeros_like(x), target, axis=axis, reduction=reduction)))
                assert_close(grad, rgrad, rtol, f"grad {kwargs}", scale=natural)
                assert np.all(np.isfinite(grad)), "the gradient is bounded"
                if "z_loss" not in kwargs:  # lse**2 can overflow float32 at 1e30
                    assert np.all(np.isfinite(loss))
    for name in ("softmax", "log_softmax", "logsumexp"):
        got = getattr(cece, name)(x, axis=axis)
        assert np.all(np.isfinite(got))
        assert_close(got, getattr(ref, name)(x, axis=axis), rtol, name)


# ---- NaN and infinities ------------------------------------------------------------------------


def _poison(x, axis, pos, values):
    """Write `values` (broadcast) into the logits of batch position `pos`."""
    xm = np.moveaxis(x, axis, -1)
    xm[pos] = values


@pytest.mark.parametrize("target_kind", ["int", "prob"])
@pytest.mark.parametrize("shape,axis", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_nan_stays_in_its_row(rng, dtype, shape, axis, target_kind):
    x = make_logits(rng, shape, dtype)
    batch = batch_shape_of(shape, axis)
    C = shape[axis]
    target = (make_labels(rng, batch, C) if target_kind == "int"
              else make_probs(rng, shape, axis, dtype))
    pos = tuple(int(rng.integers(0, n)) for n in batch)
    row = np.moveaxis(x, axis, -1)[pos].copy()
    row[int(rng.integers(0, C))] = nan
    _poison(x, axis, pos, row)
    mask = np.zeros(batch, bool)
    mask[pos] = True
    for kwargs in ({}, {"weight": make_weight(rng, C), "label_smoothing": 0.1, "z_loss": 1e-3,
                        "softcap": 5.0}):
        loss, grad = cece.cross_entropy_with_grad(x, target, axis=axis, reduction="none", **kwargs)
        assert np.array_equal(np.isnan(loss), mask)
        gm = np.moveaxis(grad, axis, -1)
        assert np.all(np.isnan(gm[mask])) and not np.isnan(gm[~mask]).any()
        rloss, rgrad = ref.cross_entropy_with_grad(x, target, axis=axis, reduction="none",
                                                   **kwargs)
        assert_close(loss, rloss, rtol_for(dtype), "loss")
        assert_close(grad, rgrad, rtol_for(dtype), "grad")
        for reduction in ("sum", "mean"):
            loss, grad = cece.cross_entropy_with_grad(x, target, axis=axis, reduction=reduction,
                                                      **kwargs)
            assert np.isnan(loss)
            gm = np.moveaxis(grad, axis, -1)
            assert np.all(np.isnan(gm[mask])) and not np.isnan(gm[~mask]).any()
    p = cece.softmax(x, axis=axis)
    assert np.array_equal(np.isnan(np.moveaxis(p, axis, -1)).any(axis=-1), mask)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_nan_in_an_ignored_row_is_ignored(rng, dtype):
    x = make_logits(rng, (20, 4), dtype)
    y = make_labels(rng, (20,), 4)
    x[3] = nan
    y[3] = -100
    for reduction in REDUCTIONS:
        loss, grad = cece.cross_entropy_with_grad(x, y, reduction=reduction)
        rloss, rgrad = ref.cross_entropy_with_grad(x, y, reduction=reduction)
        assert not np.isnan(loss).any() and not np.isnan(grad).any()
        assert np.all(grad[3] == 0)
        assert_close(loss, rloss, rtol_for(dtype), "loss")
        assert_close(grad, rgrad, rtol_for(dtype), "grad")


@pytest.mark.parametrize("shape,axis", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_masked_classes_stay_finite(rng, dtype, shape, axis):
    """-inf logits are classes of probability 0: with integer labels elsewhere (or probability
    targets with no mass there) loss and gradient are finite, the gradient 0 there."""
    x = make_logits(rng, shape, dtype)
    batch = batch_shape_of(shape, axis)
    C = shape[axis]
    xm = np.moveaxis(x, axis, -1)
    masked = rng.random(xm.shape) < 0.3
    masked[..., 0] = False  # class 0 is never masked
    xm[masked] = -inf
    y = np.zeros(batch, np.int64)
    t = np.moveaxis(make_probs(rng, shape, axis, dtype), axis, -1).copy()
    t[masked] = 0
    t = np.moveaxis(t, -1, axis)
    for target in (y, t):
        for kwargs in ({}, {"weight": make_weight(rng, C), "z_loss": 1e-3},
                       {"softcap": 4.0}, {"sample_weight": make_sample_weight(rng, batch)}):
            for reduction in REDUCTIONS:
                loss, grad = cece.cross_entropy_with_grad(x, target, axis=axis,
                                                          reduction=reduction, **kwargs)
                assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
                assert np.all(np.moveaxis(grad, axis, -1)[masked] == 0)
                rloss, rgrad = ref.cross_entropy_with_grad(x, target, axis=axis,
                                                           reduction=reduction, **kwargs)
                assert_close(loss, rloss, rtol_for(dtype), f"loss {kwargs}")
                assert_close(grad, rgrad, rtol_for(dtype), f"grad {kwargs}")
    p = cece.softmax(x, axis=axis)
    assert np.all(np.moveaxis(p, axis, -1)[masked] == 0)
    assert np.all(np.isneginf(np.moveaxis(cece.log_softmax(x, axis=axis), axis, -1)[masked]))
    # label smoothing puts mass on the masked classes: the loss is +inf, as the reference
    loss = cece.cross_entropy(x, y, axis=axis, reduction="none", label_smoothing=0.1)
    assert_close(loss, ref.cross_entropy(x, y, axis=axis, reduction="none", label_smoothing=0.1),
                 rtol_for(dtype), "smoothed masked")
    assert np.array_equal(np.isposinf(loss), masked.any(axis=-1))


@pytest.mark.parametrize("row", [[-inf] * 5, [inf, 0, 1, 2, 3], [0, 1, inf, 2, -inf]],
                         ids=["all_-inf", "+inf", "+inf_and_-inf"])
@pytest.mark.parametrize("shape,axis", [((6, 5), -1), ((3, 5, 4), 1)], ids=["rows", "axis1"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_rows_that_give_nan(rng, dtype, shape, axis, row):
    """An all -inf row, or a row holding +inf, gives NaN loss and gradient there only."""
    x = make_logits(rng, shape, dtype)
    batch = batch_shape_of(shape, axis)
    y = make_labels(rng, batch, shape[axis])
    pos = (1,) + (0,) * (len(batch) - 1)
    _poison(x, axis, pos, np.array(row, dtype))
    mask = np.zeros(batch, bool)
    mask[pos] = True
    loss, grad = cece.cross_entropy_with_grad(x, y, axis=axis, reduction="none")
    assert np.array_equal(np.isnan(loss), mask)
    gm = np.moveaxis(grad, axis, -1)
    assert np.all(np.isnan(gm[mask])) and np.all(np.isfinite(gm[~mask]))
    rloss, rgrad = ref.cross_entropy_with_grad(x, y, axis=axis, reduction="none")
    assert_close(loss, rloss, rtol_for(dtype), "loss")
    assert_close(grad, rgrad, rtol_for(dtype), "grad")
    assert np.isnan(cece.cross_entropy(x, y, axis=axis))
    lse = cece.logsumexp(x, axis=axis)
    assert np.array_equal(np.isnan(lse), mask)


# ---- nothing to average ------------------------------------------------------------------------


@pytest.mark.parametrize("target_kind", ["int", "prob"])
@pytest.mark.parametrize("shape,axis", [((0, 5), -1), ((0, 5, 3), 1), ((2, 5, 0), 1),
                                        ((0, 3), -1)])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_empty_batch(dtype, shape, axis, target_kind):
    x = np.zeros(shape, dtype)
    batch = batch_shape_of(shape, axis)
    target = np.zeros(batch, np.int64) if target_kind == "int" else np.zeros(shape, dtype)
    loss = cece.cross_entropy(x, target, axis=axis)
    assert np.isnan(loss) and np.asarray(loss).dtype == dtype
    total = cece.cross_entropy(x, target, axis=axis, reduction="sum")
    assert total == 0 and np.asarray(total).dtype == dtype
    none = cece.cross_entropy(x, target, axis=axis, reduction="none")
    assert none.shape == batch and none.dtype == dtype
    for reduction in REDUCTIONS:
        loss, grad = cece.cross_entropy_with_grad(x, target, axis=axis, reduction=reduction)
        assert grad.shape == shape and grad.dtype == dtype
        assert cece.cross_entropy_grad(x, target, axis=axis, reduction=reduction).shape == shape
    assert cece.softmax(x, axis=axis).shape == shape
    assert cece.logsumexp(x, axis=axis).shape == batch


@pytest.mark.parametrize("impl", [cece, ref], ids=["cece", "reference"])
@pytest.mark.parametrize("shape,axis", [((9, 4), -1), ((2, 4, 3), 1), ((30, 3), -1)])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_all_ignored(rng, dtype, shape, axis, impl):
    """Every position ignored: mean NaN (0/0), sum 0, and the gradient 0 everywhere, since an
    ignored position's gradient row is 0 (docs/semantics.md; PyTorch agrees). Checked for the
    reference too, which is the oracle of the other tests."""
    x = make_logits(rng, shape, dtype)
    batch = batch_shape_of(shape, axis)
    for ignore in (-100, 2):
        y = np.full(batch, ignore, np.int64)
        kwargs = {"axis": axis, "ignore_index": ignore,
                  "sample_weight": make_sample_weight(rng, batch)}
        loss, grad = impl.cross_entropy_with_grad(x, y, **kwargs)
        assert np.isnan(loss)
        assert np.all(grad == 0), "mean over nothing: the ignored rows' gradient is still 0"
        assert np.all(impl.cross_entropy_grad(x, y, **kwargs) == 0)
        loss, grad = impl.cross_entropy_with_grad(x, y, reduction="sum", **kwargs)
        assert loss == 0 and np.all(grad == 0)
        loss, grad = impl.cross_entropy_with_grad(x, y, reduction="none", **kwargs)
        assert np.all(loss == 0) and np.all(grad == 0)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # 0/0
@pytest.mark.parametrize("impl", [cece, ref], ids=["cece", "reference"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_zero_denominator_from_weights(rng, dtype, impl):
    """Class weights 0 for every label present: D = 0, the mean is NaN (0/0); the gradient is
    NaN in the counted rows and 0 in the ignored row (as PyTorch's)."""
    x = make_logits(rng, (6, 4), dtype)
    y = np.array([0, 1, 0, 1, 0, -100])
    w = np.array([0.0, 0.0, 1.0, 1.0])
    assert np.isnan(impl.cross_entropy(x, y, weight=w))
    assert impl.cross_entropy(x, y, weight=w, reduction="sum") == 0
    for grad in (impl.cross_entropy_grad(x, y, weight=w),
                 impl.cross_entropy_with_grad(x, y, weight=w)[1]):
        assert np.all(np.isnan(grad[:5]))
        assert np.all(grad[5] == 0), f"ignored row: {grad[5]}"


# ---- identities between options ----------------------------------------------------------------


@pytest.mark.parametrize("target_kind", ["int", "prob"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_reductions_consistent(rng, dtype, target_kind):
    """sum == sum(none); mean == sum / D; grad(mean) == grad(sum) / D; grad(none) ==
    grad(sum)."""
    C = 6
    x = make_logits(rng, (30, C), dtype)
    target = (make_labels(rng, (30,), C, ignore_index=-100, ignore_frac=0.2)
              if target_kind == "int" else make_probs(rng, (30, C), -1, dtype))
    w = make_weight(rng, C)
    s = make_sample_weight(rng, (30,))
    kw = {"weight": w, "sample_weight": s, "label_smoothing": 0.1, "z_loss": 1e-2}
    if target_kind == "int":
        valid = target != -100
        D = np.sum(s[valid] * w[target[valid]])
    else:
        D = np.sum(s)
    rtol = rtol_for(dtype)
    none, g_none = cece.cross_entropy_with_grad(x, target, reduction="none", **kw)
    total, g_sum = cece.cross_entropy_with_grad(x, target, reduction="sum", **kw)
    mean, g_mean = cece.cross_entropy_with_grad(x, target, reduction="mean", **kw)
    assert_close(total, dtype(np.sum(none, dtype=np.float64)), rtol, "sum")
    assert_close(mean, dtype(np.float64(total) / D), rtol, "mean")
    assert_close(g_none, g_sum, rtol, "grad none == grad sum")
    assert_close(g_mean, (g_sum / D).astype(dtype), rtol, "grad mean")


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("target_kind", ["int", "prob"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_affine_in_label_smoothing(rng, dtype, target_kind, from_logits):
    """The loss and gradient are affine in eps: L(eps) = (1 - eps) L(0) + eps L(1)."""
    C = 5
    x = make_logits(rng, (10, C), dtype) if from_logits else make_positive(rng, (10, C), dtype)
    target = (make_labels(rng, (10,), C) if target_kind == "int"
              else make_probs(rng, (10, C), -1, dtype))
    kw = {"weight": make_weight(rng, C), "reduction": "sum", "from_logits": from_logits}
    l0, g0 = cece.cross_entropy_with_grad(x, target, label_smoothing=0.0, **kw)
    l1, g1 = cece.cross_entropy_with_grad(x, target, label_smoothing=1.0, **kw)
    for eps in (0.25, 0.6):
        le, ge = cece.cross_entropy_with_grad(x, target, label_smoothing=eps, **kw)
        assert_close(le, dtype((1 - eps) * np.float64(l0) + eps * np.float64(l1)),
                     rtol_for(dtype), "affine loss")
        assert_close(ge, ((1 - eps) * g0.astype(np.float64) + eps * g1).astype(dtype),
                     rtol_for(dtype), "affine grad")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_linear_in_sample_weight(rng, dtype):
    x = make_logits(rng, (3, 7, 4), dtype)
    y = make_labels(rng, (3, 4), 7, ignore_index=-100, ignore_frac=0.2)
    s = make_sample_weight(rng, (3, 4))
    kw = {"axis": 1, "reduction": "none", "label_smoothing": 0.1, "z_loss": 1e-3}
    plain, g = cece.cross_entropy_with_grad(x, y, **kw)
    weighted, gw = cece.cross_entropy_with_grad(x, y, sample_weight=s, **kw)
    assert_close(weighted, (plain * s).astype(dtype), rtol_for(dtype), "s * l")
    assert_close(gw, (g * s[:, None, :]).astype(dtype), rtol_for(dtype), "s * grad")


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("shape,axis", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_one_hot_probabilities_equal_labels(rng, dtype, shape, axis, from_logits):
    C = shape[axis]
    batch = batch_shape_of(shape, axis)
    x = make_logits(rng, shape, dtype) if from_logits else make_positive(rng, shape, dtype)
    y = make_labels(rng, batch, C)
    onehot = np.moveaxis(np.eye(C, dtype=dtype)[y], -1, axis)
    kw = {"axis": axis, "weight": make_weight(rng, C), "label_smoothing": 0.15,
          "sample_weight": make_sample_weight(rng, batch), "from_logits": from_logits}
    if from_logits:
        kw.update(z_loss=1e-3, softcap=6.0)
    for reduction in ("none", "sum"):
        a = cece.cross_entropy_with_grad(x, y, reduction=reduction, **kw)
        b = cece.cross_entropy_with_grad(x, onehot, reduction=reduction, **kw)
        assert_close(a[0], b[0], rtol_for(dtype), "loss")
        assert_close(a[1], b[1], rtol_for(dtype), "grad")
    # the means differ only by their denominators: sum(s_i w_y) versus sum(s_i)
    w, s = kw["weight"], kw["sample_weight"]
    ratio = np.sum(s * w[y]) / np.sum(s)
    a = cece.cross_entropy(x, y, **kw)
    b = cece.cross_entropy(x, onehot, **kw)
    assert_close(np.float64(a) * ratio, np.float64(b), 10 * rtol_for(dtype), "means")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_per_position_loss_is_minus_log_softmax(rng, dtype):
    x = make_logits(rng, (25, 9), dtype)
    y = make_labels(rng, (25,), 9)
    expected = -np.take_along_axis(cece.log_softmax(x), y[:, None], axis=1)[:, 0]
    assert_close(cece.cross_entropy(x, y, reduction="none"), expected, rtol_for(dtype),
                 "-log_softmax[y]")
    p = cece.softmax(x)
    assert_close(cece.cross_entropy_grad(x, y, reduction="sum"),
                 p - np.eye(9, dtype=dtype)[y], rtol_for(dtype), "softmax - onehot")


def test_probabilities_in_equal_softmax_of_logits(rng):
    """from_logits=False on softmax(x) gives the loss of from_logits=True on x (float64, away
    from the clip bounds); its gradient is the chain rule through softmax."""
    x = make_logits(rng, (8, 6), np.float64, scale=1.0)
    y = make_labels(rng, (8,), 6)
    p = ref.softmax(x)
    kw = {"weight": make_weight(rng, 6), "label_smoothing": 0.1}
    assert_close(cece.cross_entropy(p, y, from_logits=False, reduction="none", **kw),
                 cece.cross_entropy(x, y, reduction="none", **kw), 1e-12, "loss")
    gp = cece.cross_entropy_grad(p, y, from_logits=False, reduction="sum", **kw)
    # dL/dx = J_softmax^T dL/dp = p * (gp - sum(gp * p))
    chain = p * (gp - np.sum(gp * p, axis=-1, keepdims=True))
    assert_close(chain, cece.cross_entropy_grad(x, y, reduction="sum", **kw), 1e-10, "chain")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_probabilities_in_are_renormalised(rng, dtype):
    """Scaling the probabilities by k leaves the loss unchanged and divides the gradient by k."""
    p = make_positive(rng, (10, 5), dtype)
    y = make_labels(rng, (10,), 5)
    k = dtype(8.0)  # a power of two: the scaling itself is exact
    a = cece.cross_entropy_with_grad(p, y, from_logits=False)
    b = cece.cross_entropy_with_grad(p * k, y, from_logits=False)
    assert_close(b[0], a[0], rtol_for(dtype), "loss")
    assert_close(b[1] * k, a[1], rtol_for(dtype), "grad")


def test_z_loss_and_softcap_spelled_out(rng):
    x = make_logits(rng, (7, 3, 5), np.float64, scale=3.0)
    y = make_labels(rng, (7, 5), 3, ignore_index=-100, ignore_frac=0.3)
    lam = 0.07
    base = cece.cross_entropy(x, y, axis=1, reduction="none")
    with_z = cece.cross_entropy(x, y, axis=1, reduction="none", z_loss=lam)
    lse = cece.logsumexp(x, axis=1)
    assert_close(with_z, base + np.where(y != -100, lam * lse**2, 0.0), 1e-12, "z_loss term")
    c = 2.5
    capped = c * np.tanh(x / c)
    assert_close(cece.cross_entropy(x, y, axis=1, reduction="none", softcap=c),
                 cece.cross_entropy(capped, y, axis=1, reduction="none"), 1e-12, "softcap")
    g_capped = cece.cross_entropy_grad(capped, y, axis=1, reduction="sum")
    assert_close(cece.cross_entropy_grad(x, y, axis=1, reduction="sum", softcap=c),
                 g_capped * (1 - (capped / c) ** 2), 1e-12, "softcap chain rule")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_class_weight_scaling(rng, dtype):
    x = make_logits(rng, (20, 4), dtype)
    y = make_labels(rng, (20,), 4)
    k = 4.0
    assert_close(cece.cross_entropy(x, y, weight=np.full(4, k), reduction="sum"),
                 dtype(k * np.float64(cece.cross_entropy(x, y, reduction="sum"))),
                 rtol_for(dtype), "sum scales")
    assert_close(cece.cross_entropy(x, y, weight=np.full(4, k)), cece.cross_entropy(x, y),
                 rtol_for(dtype), "mean does not")


@pytest.mark.parametrize("C", [1, 3, 40])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_certain_prediction_has_zero_loss(rng, dtype, C):
    """A position whose label holds all the mass (the other logits -inf) has p_y = 1 exactly:
    loss 0 and gradient 0 (z_loss off, no smoothing)."""
    x = make_logits(rng, (6, C), dtype, scale=4.0)
    x[:, 1:] = -inf
    y = np.zeros(6, np.int64)
    for kwargs in ({}, {"weight": make_weight(rng, C)}, {"sample_weight": np.arange(6.0)}):
        loss, grad = cece.cross_entropy_with_grad(x, y, reduction="none", **kwargs)
        assert np.all(loss == 0), (kwargs, loss)
        assert np.all(grad == 0), (kwargs, grad)


@pytest.mark.parametrize("softcap", [0.5, 3.0, 30.0])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_single_class_with_softcap_has_zero_loss(rng, dtype, softcap):
    """C = 1: p = 1 exactly whatever the (softcapped) logit, so loss and gradient are exactly
    0, as in the reference: logp = (z - m) - log S with m = z and S = exp(0) = 1."""
    x = make_logits(rng, (40, 1), dtype, scale=4.0)
    y = np.zeros(40, np.int64)
    for reduction in REDUCTIONS:
        loss, grad = cece.cross_entropy_with_grad(x, y, reduction=reduction, softcap=softcap)
        assert np.all(loss == 0), loss
        assert np.all(grad == 0), grad
    x3 = make_logits(rng, (5, 1, 7), dtype)  # the (outer, C, inner) layout
    loss, grad = cece.cross_entropy_with_grad(x3, np.zeros((5, 7), np.int64), axis=1,
                                              reduction="none", softcap=softcap)
    assert np.all(loss == 0) and np.all(grad == 0)


@pytest.mark.parametrize("C", [3, 40])
def test_softcap_float32_confident_predictions(C):
    """float32 with softcap: a confidently right prediction has a small positive loss; it must
    stay >= 0 and agree with the reference normwise."""
    x = np.zeros((4, C), np.float32)
    x[:, 0] = [20.0, 21.0, 22.5, 19.0]
    y = np.zeros(4, np.int64)
    loss, grad = cece.cross_entropy_with_grad(x, y, reduction="none", softcap=30.0)
    rloss, rgrad = ref.cross_entropy_with_grad(x, y, reduction="none", softcap=30.0)
    assert np.all(loss >= 0), loss
    assert_close(loss, rloss, 1e-5, "loss")
    assert_close(grad, rgrad, 1e-5, "grad")
