"""cece against other libraries, for every option both have.

- PyTorch ``torch.nn.functional.cross_entropy`` (the ``peers`` extra: torch==2.13.0, CPU):
  weight, ignore_index, label_smoothing, reduction, integer and probability targets, class
  axis anywhere (torch wants it at dim 1, so cece's axis is moved there), gradients by
  autograd. Options torch lacks (softcap, z_loss, sample weights) are written out in torch
  ops and differentiated by autograd.
- Keras's ``categorical_crossentropy(from_logits=False)`` formula, written out in NumPy here
  (renormalise, clip to [1e-7, 1 - 1e-7], -sum(t * log)).
- optax's softmax_cross_entropy(_with_integer_labels), when optax is importable.
"""

from __future__ import annotations

import numpy as np
import pytest

import cece
from cece_testing import (
    FLOATS,
    REDUCTIONS,
    assert_close,
    batch_shape_of,
    finite_difference_grad,
    make_labels,
    make_logits,
    make_positive,
    make_probs,
    make_sample_weight,
    make_weight,
    rtol_for,
)

torch = pytest.importorskip("torch", reason="peers extra not installed: pip install .[peers]")
F = torch.nn.functional
torch.set_num_threads(1)  # tiny problems; avoid oversubscribing with OpenMP

TORCH_DTYPE = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}


def _torch_ce(x, target, axis, *, probs=False, weight=None, **kwargs):
    """(loss, dloss/dx) from torch with the class axis moved to dim 1 (and back)."""
    ndim = x.ndim
    moved = np.ascontiguousarray(np.moveaxis(x, axis, 1)) if ndim > 1 else x
    xt = torch.tensor(moved, requires_grad=True)
    if probs:
        tt = torch.tensor(np.ascontiguousarray(np.moveaxis(target, axis, 1)) if ndim > 1
                          else target).to(xt.dtype)
    else:
        tt = torch.tensor(np.asarray(target, dtype=np.int64))
    wt = None if weight is None else torch.tensor(weight, dtype=xt.dtype)
    loss = F.cross_entropy(xt, tt, weight=wt, **kwargs)
    loss.sum().backward()
    grad = xt.grad.numpy()
    grad = np.moveaxis(grad, 1, axis) if ndim > 1 else grad
    return loss.detach().numpy(), grad


# (id, shape, cece axis)
GEOMETRIES = [
    ("NC", (17, 6), -1),
    ("NCHW_axis1", (3, 5, 4, 2), 1),
    ("N_d1_d2_C", (2, 3, 4, 5), -1),
    ("N_C_d_axis1", (4, 7, 3), 1),
    ("small_C_tiles", (40, 3), -1),
]


@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
@pytest.mark.parametrize("use_weight", [False, True], ids=["no_w", "w"])
@pytest.mark.parametrize("ignore", ["none", "default_-100", "class_0"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("geom", GEOMETRIES, ids=[g[0] for g in GEOMETRIES])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_torch_integer_targets(rng, dtype, geom, reduction, ignore, use_weight,
                               label_smoothing):
    _, shape, axis = geom
    C = shape[axis]
    x = make_logits(rng, shape, dtype)
    y = make_labels(rng, batch_shape_of(shape, axis), C)
    kwargs = {"reduction": reduction, "label_smoothing": label_smoothing}
    if ignore == "default_-100":
        y[rng.random(y.shape) < 0.3] = -100
    elif ignore == "class_0":
        kwargs["ignore_index"] = 0
    weight = make_weight(rng, C) if use_weight else None
    tloss, tgrad = _torch_ce(x, y, axis, weight=weight, **kwargs)
    loss, grad = cece.cross_entropy_with_grad(x, y, axis=axis, weight=weight, **kwargs)
    rtol = rtol_for(dtype)
    assert_close(loss, tloss.astype(dtype), rtol, "loss vs torch", check_dtype=False)
    assert_close(grad, tgrad.astype(dtype), rtol, "grad vs torch", check_dtype=False)
    assert_close(cece.cross_entropy(x, y, axis=axis, weight=weight, **kwargs),
                 tloss, rtol, "cross_entropy vs torch", check_dtype=False)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
@pytest.mark.parametrize("use_weight", [False, True], ids=["no_w", "w"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("geom", GEOMETRIES, ids=[g[0] for g in GEOMETRIES])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_torch_probability_targets(rng, dtype, geom, reduction, use_weight, label_smoothing):
    _, shape, axis = geom
    x = make_logits(rng, shape, dtype)
    t = make_probs(rng, shape, axis, dtype)
    weight = make_weight(rng, shape[axis]) if use_weight else None
    kwargs = {"reduction": reduction, "label_smoothing": label_smoothing}
    tloss, tgrad = _torch_ce(x, t, axis, probs=True, weight=weight, **kwargs)
    loss, grad = cece.cross_entropy_with_grad(x, t, axis=axis, weight=weight, **kwargs)
    rtol = rtol_for(dtype)
    assert_close(loss, tloss.astype(dtype), rtol, "loss vs torch", check_dtype=False)
    assert_close(grad, tgrad.astype(dtype), rtol, "grad vs torch", check_dtype=False)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_torch_unbatched_single_row(rng, dtype, reduction):
    """1-d logits: a single row, the target a 0-d integer (or a Python int)."""
    x = make_logits(rng, (9,), dtype)
    for label in (4, np.int64(4), np.array(4, dtype=np.int32)):
        tloss, tgrad = _torch_ce(x, np.array(4), 0, reduction=reduction, label_smoothing=0.1)
        loss, grad = cece.cross_entropy_with_grad(x, label, reduction=reduction,
                                                  label_smoothing=0.1)
        assert np.ndim(loss) == 0 and grad.shape == (9,)
        assert_close(loss, tloss, rtol_for(dtype), "1-d loss", check_dtype=False)
        assert_close(grad, tgrad, rtol_for(dtype), "1-d grad", check_dtype=False)
    t = make_probs(rng, (9,), 0, dtype)
    tloss, tgrad = _torch_ce(x, t, 0, probs=True, reduction=reduction)
    loss, grad = cece.cross_entropy_with_grad(x, t, reduction=reduction)
    assert_close(loss, tloss, rtol_for(dtype), "1-d prob loss", check_dtype=False)
    assert_close(grad, tgrad, rtol_for(dtype), "1-d prob grad", check_dtype=False)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("C", [1, 2, 1000])
def test_torch_class_counts(rng, dtype, C):
    x = make_logits(rng, (5, C), dtype)
    y = make_labels(rng, (5,), C)
    for reduction in REDUCTIONS:
        tloss, tgrad = _torch_ce(x, y, -1, reduction=reduction, label_smoothing=0.1)
        loss, grad = cece.cross_entropy_with_grad(x, y, reduction=reduction, label_smoothing=0.1)
        assert_close(loss, tloss, rtol_for(dtype), f"C={C} loss", check_dtype=False)
        assert_close(grad, tgrad, rtol_for(dtype), f"C={C} grad", check_dtype=False)


# ---- options torch lacks, written in torch ops (autograd for the gradient) --------------------


def _torch_composed(x, y, axis, *, weight, sample_weight, label_smoothing, z_loss, softcap,
                    reduction, ignore_index=-100):
    xt = torch.tensor(np.ascontiguousarray(np.moveaxis(x, axis, 1)), requires_grad=True)
    yt = torch.tensor(y.astype(np.int64))
    wt = None if weight is None else torch.tensor(weight, dtype=xt.dtype)
    z = xt if softcap is None else softcap * torch.tanh(xt / softcap)
    per = F.cross_entropy(z, yt, weight=wt, label_smoothing=label_smoothing, reduction="none",
                          ignore_index=ignore_index)
    valid = yt != ignore_index
    lse = torch.logsumexp(z, dim=1)
    per = per + torch.where(valid, z_loss * lse**2, torch.zeros_like(lse))
    s = (torch.ones_like(per) if sample_weight is None
         else torch.tensor(sample_weight, dtype=xt.dtype))
    if reduction == "none":
        loss = per * s
        total = loss.sum()
    else:
        total = (per * s).sum()
        if reduction == "mean":
            wy = (torch.ones_like(per) if wt is None
                  else wt[torch.where(valid, yt, torch.zeros_like(yt))])
            total = total / (s * wy * valid).sum()
        loss = total
    total.backward()
    return loss.detach().numpy(), np.moveaxis(xt.grad.numpy(), 1, axis)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ["softcap", "z_loss", "sample_weight", "all"])
@pytest.mark.parametrize("geom", GEOMETRIES[:3], ids=[g[0] for g in GEOMETRIES[:3]])
def test_torch_composed_options(rng, geom, case, reduction):
    _, shape, axis = geom
    C = shape[axis]
    batch = batch_shape_of(shape, axis)
    x = make_logits(rng, shape, np.float64, scale=3.0)
    y = make_labels(rng, batch, C, ignore_index=-100, ignore_frac=0.2)
    opts = {"weight": None, "sample_weight": None, "label_smoothing": 0.0, "z_loss": 0.0,
            "softcap": None}
    if case in ("softcap", "all"):
        opts["softcap"] = 2.0
    if case in ("z_loss", "all"):
        opts["z_loss"] = 0.03
    if case in ("sample_weight", "all"):
        opts["sample_weight"] = make_sample_weight(rng, batch)
    if case == "all":
        opts["weight"] = make_weight(rng, C)
        opts["label_smoothing"] = 0.1
    tloss, tgrad = _torch_composed(x, y, axis, reduction=reduction, **opts)
    loss, grad = cece.cross_entropy_with_grad(x, y, axis=axis, reduction=reduction, **opts)
    assert_close(loss, tloss, 1e-12, f"{case} loss vs torch ops", check_dtype=False)
    assert_close(grad, tgrad, 1e-12, f"{case} grad vs torch ops", check_dtype=False)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("shape,axis", [((6, 11), -1), ((3, 4, 5), 1), ((4, 3), 0)])
def test_torch_normalizers(rng, dtype, shape, axis):
    x = make_logits(rng, shape, dtype, scale=4.0)
    xt = torch.tensor(x)
    rtol = rtol_for(dtype)
    assert_close(cece.softmax(x, axis=axis), torch.softmax(xt, dim=axis).numpy(), rtol, "softmax")
    assert_close(cece.log_softmax(x, axis=axis), torch.log_softmax(xt, dim=axis).numpy(), rtol,
                 "log_softmax")
    assert_close(cece.logsumexp(x, axis=axis), torch.logsumexp(xt, dim=axis).numpy(), rtol,
                 "logsumexp")


# ---- Keras's from_logits=False formula, in NumPy ---------------------------------------------


def keras_categorical_crossentropy(target, output, axis=-1, label_smoothing=0.0):
    """keras.losses.categorical_crossentropy(from_logits=False), per position, in float64."""
    output = np.asarray(output, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    C = output.shape[axis]
    target = target * (1.0 - label_smoothing) + label_smoothing / C
    output = output / np.sum(output, axis=axis, keepdims=True)
    output = np.clip(output, 1e-7, 1.0 - 1e-7)
    return -np.sum(target * np.log(output), axis=axis)


def keras_sparse_categorical_crossentropy(target, output, axis=-1):
    C = np.asarray(output).shape[axis]
    onehot = np.moveaxis(np.eye(C)[np.asarray(target)], -1, axis)
    return keras_categorical_crossentropy(onehot, output, axis)


@pytest.mark.parametrize("clipped", [False, True], ids=["inside", "clipped"])
@pytest.mark.parametrize("shape,axis", [((12, 5), -1), ((3, 4, 6), 1), ((5, 2), 0)])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_keras_probabilities_formula(rng, dtype, shape, axis, clipped):
    p = make_positive(rng, shape, dtype)
    if clipped:  # renormalised entries below 1e-7 and above 1 - 1e-7
        row = np.zeros(shape[axis], dtype=dtype)
        row[0] = 1.0
        row[1:] = 1e-12
        slicer = tuple(slice(None) if d == axis % len(shape) else 0 for d in range(len(shape)))
        p[slicer] = row
    t = make_probs(rng, shape, axis, dtype)
    y = make_labels(rng, batch_shape_of(shape, axis), shape[axis])
    s = make_sample_weight(rng, batch_shape_of(shape, axis))
    rtol = rtol_for(dtype)
    for ls in (0.0, 0.2):
        expected = keras_categorical_crossentropy(t, p, axis, ls)
        got = cece.cross_entropy(p, t, axis=axis, from_logits=False, label_smoothing=ls,
                                 reduction="none")
        assert_close(got, expected, rtol, "keras categorical", check_dtype=False)
        # Keras's sample_weight multiplies; sum_over_batch_size divides by N
        got = cece.cross_entropy(p, t, axis=axis, from_logits=False, label_smoothing=ls,
                                 sample_weight=s, reduction="sum")
        assert_close(got, np.sum(expected * s), rtol, "keras weighted sum", check_dtype=False)
        got = cece.cross_entropy(p, t, axis=axis, from_logits=False, label_smoothing=ls)
        assert_close(got, np.mean(expected), rtol, "keras sum_over_batch_size",
                     check_dtype=False)
    expected = keras_sparse_categorical_crossentropy(y, p, axis)
    got = cece.cross_entropy(p, y, axis=axis, from_logits=False, reduction="none")
    assert_close(got, expected, rtol, "keras sparse", check_dtype=False)
    assert_close(cece.cross_entropy(p, y, axis=axis, from_logits=False), np.mean(expected),
                 rtol, "keras sparse mean", check_dtype=False)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_keras_formula_gradient(rng, reduction):
    """The gradient with respect to the probabilities, against finite differences of the
    Keras formula itself (inputs away from the clip bounds)."""
    p = make_positive(rng, (4, 5), low=0.2)
    t = make_probs(rng, (4, 5))
    s = make_sample_weight(rng, (4,))
    reduce = {"none": np.sum, "sum": np.sum, "mean": lambda v: np.sum(v) / np.sum(s)}[reduction]
    fd = finite_difference_grad(lambda z: reduce(keras_categorical_crossentropy(t, z) * s), p)
    got = cece.cross_entropy_grad(p, t, from_logits=False, sample_weight=s, reduction=reduction)
    assert_close(got, fd, 1e-6, "keras gradient")


# ---- optax (optional) ------------------------------------------------------------------------


def test_optax():
    optax = pytest.importorskip("optax", reason="optax not installed")
    rng = np.random.default_rng(0)
    x = make_logits(rng, (7, 5), np.float32)
    y = make_labels(rng, (7,), 5)
    t = make_probs(rng, (7, 5), -1, np.float32)
    expected = np.asarray(optax.softmax_cross_entropy_with_integer_labels(x, y))
    assert_close(cece.cross_entropy(x, y, reduction="none"), expected, 1e-5, "optax int",
                 check_dtype=False)
    expected = np.asarray(optax.softmax_cross_entropy(x, t))
    assert_close(cece.cross_entropy(x, t, reduction="none"), expected, 1e-5, "optax probs",
                 check_dtype=False)
