"""Shapes, layouts and dtypes: 1-d rows, (N, C), (N, d1, d2, C), axis=1 on (N, C, H, W), class
counts from 1 to 100,000, batch sizes 0 to 4096, sliced / transposed / Fortran-ordered /
byte-swapped inputs, and every integer target dtype. All against cece.reference.
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
    check_against_reference,
    make_labels,
    make_logits,
    make_probs,
    make_sample_weight,
    make_weight,
    rtol_for,
)

# (N, C): N small for large C
SIZES = [(n, c) for c in (1, 2, 10, 1000) for n in (0, 1, 7, 4096)] + \
        [(n, 100_000) for n in (0, 1, 7)]


# --quick (tests/conftest.py): the largest size, 4096 x 1000, in float32 only
QUICK_SUBSET = {
    "test_sizes_integer_targets": lambda p: not (p["N"] == 4096 and p["C"] == 1000
                                                 and p["dtype"] is np.float64),
}


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("N,C", SIZES, ids=[f"N{n}-C{c}" for n, c in SIZES])
def test_sizes_integer_targets(rng, dtype, N, C):
    x = make_logits(rng, (N, C), dtype)
    y = make_labels(rng, (N,), C, ignore_index=-100, ignore_frac=0.1)
    kwargs = {"weight": make_weight(rng, C), "label_smoothing": 0.1}
    if N * C <= 100_000:
        kwargs.update(z_loss=1e-3, sample_weight=make_sample_weight(rng, (N,)))
    # the gradients of the reductions differ by a scale only: two suffice for 4M logits
    for reduction in REDUCTIONS if N * C <= 1_000_000 else ("none", "mean"):
        loss, grad = check_against_reference(cece, ref, x, y, reduction=reduction, **kwargs)
        assert grad.shape == (N, C)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("N,C", [(0, 3), (1, 1), (7, 2), (7, 10), (3, 1000), (2, 100_000),
                                 (4096, 10)])
def test_sizes_probability_targets(rng, dtype, N, C):
    x = make_logits(rng, (N, C), dtype)
    t = make_probs(rng, (N, C), -1, dtype)
    for reduction in REDUCTIONS:
        check_against_reference(cece, ref, x, t, reduction=reduction, label_smoothing=0.05)
        check_against_reference(cece, ref, np.abs(x) + 0.1, t, reduction=reduction,
                                from_logits=False)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("C", [1, 2, 10, 1000, 100_000])
def test_one_dimensional_logits(rng, dtype, C):
    """A single row: the target is a 0-d integer array, a NumPy integer or a Python int, and
    every reduction returns a 0-d result."""
    x = make_logits(rng, (C,), dtype)
    label = int(rng.integers(0, C))
    for target in (label, np.int64(label), np.array(label, dtype=np.int8 if C < 100 else np.int32)):
        for reduction in REDUCTIONS:
            loss, grad = check_against_reference(cece, ref, x, target, reduction=reduction,
                                                 weight=make_weight(rng, C))
            assert np.ndim(loss) == 0 and grad.shape == (C,)
    # the single row is the same as a batch of one
    expected = cece.cross_entropy_with_grad(x[None], np.array([label]))
    loss, grad = cece.cross_entropy_with_grad(x, label)
    assert_close(loss, expected[0], rtol_for(dtype), "1-d vs (1, C) loss")
    assert_close(grad, expected[1][0], rtol_for(dtype), "1-d vs (1, C) grad")
    t = make_probs(rng, (C,), 0, dtype)
    check_against_reference(cece, ref, x, t)


# (shape, axis): batch dims around the class axis
LAYOUTS = [
    ((2, 3, 4, 10), -1),  # (N, d1, d2, C)
    ((2, 10, 4, 3), 1),  # (N, C, H, W)
    ((4, 5, 8, 8), 1),
    ((3, 2, 6, 5), 2),
    ((3, 2, 6, 5), -2),
    ((7, 2, 3), 0),
    ((2, 3, 1000), -1),
    ((2, 1000, 3), 1),
    ((5, 1, 7), 1),  # C = 1 in the middle
    ((0, 4, 3, 3), 1),  # empty batch in the middle layout
    ((3, 4, 0), 1),  # inner = 0
]


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("shape,axis", LAYOUTS, ids=[f"{s}-ax{a}" for s, a in LAYOUTS])
def test_layouts(rng, dtype, shape, axis):
    x = make_logits(rng, shape, dtype)
    batch = batch_shape_of(shape, axis)
    C = shape[axis]
    y = make_labels(rng, batch, C, ignore_index=-100, ignore_frac=0.2)
    t = make_probs(rng, shape, axis, dtype)
    for reduction in REDUCTIONS:
        loss, _ = check_against_reference(cece, ref, x, y, axis=axis, reduction=reduction,
                                          weight=make_weight(rng, C),
                                          sample_weight=make_sample_weight(rng, batch),
                                          label_smoothing=0.1, z_loss=1e-3, softcap=3.0)
        if reduction == "none":
            assert loss.shape == batch
        check_against_reference(cece, ref, x, t, axis=axis, reduction=reduction)
    # moving the class axis last gives the same numbers
    moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    loss_a, grad_a = cece.cross_entropy_with_grad(x, y, axis=axis, reduction="none")
    loss_b, grad_b = cece.cross_entropy_with_grad(moved, y, axis=-1, reduction="none")
    assert_close(loss_a, loss_b, rtol_for(dtype), "moved axis loss")
    assert_close(grad_a, np.moveaxis(grad_b, -1, axis), rtol_for(dtype), "moved axis grad")


def _variants(x):
    """The same values in non-contiguous, Fortran-ordered and byte-swapped arrays."""
    big = np.zeros((x.shape[0] * 2, x.shape[1] * 3), dtype=x.dtype)
    big[::2, ::3] = x
    yield "sliced", big[::2, ::3]
    yield "fortran", np.asfortranarray(x)
    yield "transposed_view", np.ascontiguousarray(x.T).T
    yield "reversed", x[::-1][::-1]
    yield "byteswapped", x.astype(x.dtype.newbyteorder(">" if x.dtype.byteorder != ">" else "<"))


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("C", [3, 37])
def test_non_contiguous_inputs(rng, dtype, C):
    x = make_logits(rng, (11, C), dtype)
    y = make_labels(rng, (11,), C)
    t = make_probs(rng, (11, C), -1, dtype)
    w = make_weight(rng, C)
    s = make_sample_weight(rng, (11,))
    rtol = rtol_for(dtype)
    for target in (y, t):
        expected = ref.cross_entropy_with_grad(x, target, weight=w, sample_weight=s,
                                               label_smoothing=0.1)
        for name, xv in _variants(x):
            assert np.array_equal(xv, x)
            loss, grad = cece.cross_entropy_with_grad(xv, target, weight=w, sample_weight=s,
                                                      label_smoothing=0.1)
            assert_close(loss, expected[0], rtol, f"{name} loss")
            assert_close(grad, expected[1], rtol, f"{name} grad")
            assert grad.flags.c_contiguous and grad.dtype == dtype
    # non-contiguous targets and weights
    ybig = np.zeros(33, dtype=np.int64)
    ybig[::3] = y
    tbig = np.zeros((11, 2 * C), dtype=dtype)
    tbig[:, ::2] = t
    wbig = np.zeros(2 * C)
    wbig[1::2] = w
    sbig = np.zeros(22)
    sbig[::2] = s
    for target, target_view in ((y, ybig[::3]), (t, tbig[:, ::2]), (t, np.asfortranarray(t))):
        expected = ref.cross_entropy_with_grad(x, target, weight=w, sample_weight=s)
        loss, grad = cece.cross_entropy_with_grad(np.asfortranarray(x), target_view,
                                                  weight=wbig[1::2], sample_weight=sbig[::2])
        assert_close(loss, expected[0], rtol, "strided target loss")
        assert_close(grad, expected[1], rtol, "strided target grad")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_non_contiguous_middle_axis(rng, dtype):
    x = make_logits(rng, (3, 5, 4, 6), dtype)
    y = make_labels(rng, (3, 4, 6), 5)
    expected = ref.cross_entropy_with_grad(x, y, axis=1, reduction="none")
    for xv in (np.asfortranarray(x), np.ascontiguousarray(x.transpose(3, 2, 1, 0)).transpose(3, 2, 1, 0)):
        for yv in (np.asfortranarray(y), y.astype(np.int16)[:, :, ::-1][:, :, ::-1]):
            loss, grad = cece.cross_entropy_with_grad(xv, yv, axis=1, reduction="none")
            assert_close(loss, expected[0], rtol_for(dtype), "loss")
            assert_close(grad, expected[1], rtol_for(dtype), "grad")
    for name in ("softmax", "log_softmax", "logsumexp"):
        assert_close(getattr(cece, name)(np.asfortranarray(x), axis=1),
                     getattr(ref, name)(x, axis=1), rtol_for(dtype), name)


INT_DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


@pytest.mark.parametrize("target_dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_integer_target_dtypes(rng, dtype, target_dtype):
    C = 7
    x = make_logits(rng, (50, C), dtype)
    y64 = make_labels(rng, (50,), C)
    y = y64.astype(target_dtype)
    kwargs = {"weight": make_weight(rng, C), "label_smoothing": 0.1}
    expected = [ref.cross_entropy(x, y64, reduction=r, **kwargs) for r in REDUCTIONS]
    for reduction, exp in zip(REDUCTIONS, expected):
        loss, _ = check_against_reference(cece, ref, x, y, reduction=reduction, **kwargs)
        assert_close(loss, exp, rtol_for(dtype), f"{target_dtype} vs int64")
    # an ignore_index that the dtype can hold
    ignore = 5 if np.dtype(target_dtype).kind == "u" else -1
    y2 = y.copy()
    y2[::3] = ignore
    for reduction in REDUCTIONS:
        check_against_reference(cece, ref, x, y2, reduction=reduction, ignore_index=ignore)


def test_big_unsigned_label_is_not_an_ignored_label():
    """uint64 labels above 2**63 must not wrap around onto a negative ignore_index: the label
    18446744073709551516 is not -100, it is out of range (docs/semantics.md: a label equal to
    ignore_index is ignored, any other label outside [0, C) is an IndexError)."""
    x = np.zeros((3, 4))
    y = np.array([1, 2, 2**64 - 100], dtype=np.uint64)
    with pytest.raises(IndexError, match=r"target\[2\] = 18446744073709551516 is out of range"):
        cece.cross_entropy(x, y)
    y = np.array([1, 2**64 - 1, 0], dtype=np.uint64)
    with pytest.raises(IndexError, match=r"target\[1\] = 18446744073709551615 is out of range"):
        cece.cross_entropy(x, y, ignore_index=-1)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_big_batch_matches_reference(rng, dtype):
    """N = 4096 rows with every option on (threads split the batch)."""
    x = make_logits(rng, (4096, 33), dtype)
    y = make_labels(rng, (4096,), 33, ignore_index=-100, ignore_frac=0.05)
    for reduction in REDUCTIONS:
        check_against_reference(cece, ref, x, y, reduction=reduction,
                                weight=make_weight(rng, 33),
                                sample_weight=make_sample_weight(rng, (4096,)),
                                label_smoothing=0.1, z_loss=1e-4, softcap=10.0)
