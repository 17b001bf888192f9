"""Bitwise identity of results for any thread count (DESIGN.md: fixed reduction order).

Inputs are large enough to be split across threads: 4096 x 1000 float32 rows, axis=1 on
(64, 1000, 8, 8) (the (outer, C, inner) layout), many short rows (the small-C tiles), float64,
probability targets, every option. Losses of every reduction and gradients must be identical
bytes for num_threads = 1, 2, 3, 8 (and the default), and agree with the reference.
"""

from __future__ import annotations

import numpy as np
import pytest

import cece
import cece.reference as ref
from cece_testing import (
    REDUCTIONS,
    assert_close,
    batch_shape_of,
    make_labels,
    make_logits,
    make_probs,
    make_sample_weight,
    make_weight,
    rtol_for,
)

THREADS = [1, 2, 3, 8, None]

# (id, shape, axis, dtype)
BIG = [
    ("rows_4096x1000_f32", (4096, 1000), -1, np.float32),
    ("axis1_64x1000x8x8_f32", (64, 1000, 8, 8), 1, np.float32),
    ("tiles_200000x3_f32", (200_000, 3), -1, np.float32),
    # short rows over many items, ending in a partial block
    ("tiles_65557x10_f32", (65_557, 10), -1, np.float32),
    ("tiles_33333x7_f64", (33_333, 7), -1, np.float64),
    # more items wanted (16) than its 64-row units (5): an item per unit, the last partial
    ("tiles_300x255_f32", (300, 255), -1, np.float32),
    ("rows_2048x500_f64", (2048, 500), -1, np.float64),
    ("axis1_16x7x32x32_f64", (16, 7, 32, 32), 1, np.float64),
]
OPTIONS = [
    ("plain", {}),
    ("all_options", {"weight": True, "sample_weight": True, "label_smoothing": 0.1,
                     "z_loss": 1e-4, "softcap": 15.0}),
]


# --quick (tests/conftest.py): every layout and dtype with all options on (the option-free
# kernels run threaded in the full suite and single-threaded in test_agreement's quick
# subset); probability targets on the tiles and the float64 rows (float32 rows are the same
# code with another T).
QUICK_SUBSET = {
    "test_integer_targets_bitwise_across_threads": lambda p: p["opt_id"] == "all_options",
    "test_probability_targets_bitwise_across_threads": lambda p: p["case"][0] != "rows_4096x1000_f32",
}


def _bytes(a):
    return np.asarray(a).tobytes()


@pytest.mark.parametrize("opt_id,options", OPTIONS, ids=[o[0] for o in OPTIONS])
@pytest.mark.parametrize("case", BIG, ids=[b[0] for b in BIG])
def test_integer_targets_bitwise_across_threads(rng, case, opt_id, options):
    _, shape, axis, dtype = case
    C = shape[axis]
    batch = batch_shape_of(shape, axis)
    x = make_logits(rng, shape, dtype)
    y = make_labels(rng, batch, C, ignore_index=-100, ignore_frac=0.05)
    kwargs = {"axis": axis}
    if options.get("weight"):
        kwargs["weight"] = make_weight(rng, C)
    if options.get("sample_weight"):
        kwargs["sample_weight"] = make_sample_weight(rng, batch)
    for key in ("label_smoothing", "z_loss", "softcap"):
        if key in options:
            kwargs[key] = options[key]
    for reduction in REDUCTIONS:
        results, alone = {}, {}
        for n in THREADS:
            loss, grad = cece.cross_entropy_with_grad(x, y, reduction=reduction, num_threads=n,
                                                      **kwargs)
            results[n] = (_bytes(loss), grad)
            # the loss-only call too: a float32 mean or sum over short rows is its own kernel
            # (the log of a product), equal to the one above to rounding, not always bitwise
            alone[n] = cece.cross_entropy(x, y, reduction=reduction, num_threads=n, **kwargs)
            assert_close(alone[n], loss, rtol_for(dtype), f"loss alone ({reduction})")
            assert _bytes(alone[n]) == _bytes(alone[THREADS[0]]), \
                f"loss alone ({reduction}) differs with {n} threads"
        first_loss, first_grad = results[THREADS[0]]
        for n in THREADS[1:]:
            assert results[n][0] == first_loss, f"loss ({reduction}) differs with {n} threads"
            assert np.array_equal(results[n][1], first_grad), \
                f"gradient ({reduction}) differs with {n} threads"
            assert _bytes(results[n][1]) == _bytes(first_grad)
        if reduction == "mean":
            rloss = ref.cross_entropy(x, y, reduction="mean", **kwargs)
            assert_close(np.frombuffer(first_loss, dtype)[0], rloss, rtol_for(dtype), "mean")
    # cross_entropy_grad with every count: identical too
    grads = [cece.cross_entropy_grad(x, y, num_threads=n, **kwargs) for n in (1, 3, 8)]
    assert all(np.array_equal(g, grads[0]) for g in grads[1:])


@pytest.mark.parametrize("case", BIG[:2] + BIG[3:4], ids=[b[0] for b in BIG[:2] + BIG[3:4]])
def test_probability_targets_bitwise_across_threads(rng, case):
    _, shape, axis, dtype = case
    x = make_logits(rng, shape, dtype)
    t = make_probs(rng, shape, axis, dtype)
    for from_logits in (True, False):
        xi = x if from_logits else np.abs(x) + dtype(0.01)
        for reduction in ("none", "mean"):
            out = [cece.cross_entropy_with_grad(xi, t, axis=axis, reduction=reduction,
                                                from_logits=from_logits, label_smoothing=0.05,
                                                num_threads=n) for n in THREADS]
            for loss, grad in out[1:]:
                assert _bytes(loss) == _bytes(out[0][0])
                assert _bytes(grad) == _bytes(out[0][1])


@pytest.mark.parametrize("case", BIG[:3], ids=[b[0] for b in BIG[:3]])
def test_normalizers_bitwise_across_threads(rng, case):
    _, shape, axis, dtype = case
    x = make_logits(rng, shape, dtype)
    for name in ("softmax", "log_softmax", "logsumexp"):
        f = getattr(cece, name)
        first = f(x, axis=axis, num_threads=1)
        for n in THREADS[1:]:
            assert _bytes(f(x, axis=axis, num_threads=n)) == _bytes(first), f"{name} {n}"


def test_in_place_bitwise_across_threads(rng):
    x = make_logits(rng, (4096, 1000), np.float32)
    y = make_labels(rng, (4096,), 1000)
    expected = cece.cross_entropy_with_grad(x, y, num_threads=1)
    for n in (2, 3, 8):
        z = x.copy()
        loss, grad = cece.cross_entropy_with_grad(z, y, grad_out=z, num_threads=n)
        assert grad is z
        assert _bytes(loss) == _bytes(expected[0])
        assert _bytes(z) == _bytes(expected[1])
