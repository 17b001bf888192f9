"""Shared helpers of cece's test suite: the tolerance check, random data makers, and small
utilities to call the three cross-entropy entry points at once.

Imported by the test modules as ``from cece_testing import ...`` (tests/conftest.py puts
this directory on sys.path; pytest runs with --import-mode=importlib).
"""

from __future__ import annotations

import numpy as np

FLOATS = (np.float64, np.float32)
REDUCTIONS = ("none", "sum", "mean")

# Normwise tolerances of the acceptance list: max|a - e| <= RTOL * max(max|e|, tiny).
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def rtol_for(dtype) -> float:
    return RTOL[np.dtype(dtype)]


def assert_close(actual, expected, rtol, what="", *, check_dtype=True, scale=None):
    """Normwise closeness of one array (or scalar) to its expected value.

    - shapes equal (and dtypes, when the expected value is a NumPy array or scalar and
      ``check_dtype``);
    - NaN at exactly the same positions;
    - +inf / -inf at exactly the same positions;
    - over the finite entries: max|a - e| <= rtol * max(max|e|, tiny).

    ``scale`` (rarely used) raises the floor ``tiny`` to a known natural magnitude of the
    result, for arrays that are small only by cancellation (a saturated softcap's chain rule
    1 - (z/c)**2, computed as the semantics prescribe, has an absolute error of one rounding).
    """
    a_arr = np.asarray(actual)
    e_arr = np.asarray(expected)
    assert a_arr.shape == e_arr.shape, f"{what}: shape {a_arr.shape} != expected {e_arr.shape}"
    if check_dtype and isinstance(expected, (np.ndarray, np.generic)):
        assert a_arr.dtype == e_arr.dtype, f"{what}: dtype {a_arr.dtype} != expected {e_arr.dtype}"
    a = a_arr.astype(np.float64)
    e = e_arr.astype(np.float64)
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    assert np.array_equal(nan_a, nan_e), (
        f"{what}: NaN positions differ: actual NaN at {np.argwhere(nan_a & ~nan_e)[:5].tolist()}, "
        f"expected NaN at {np.argwhere(nan_e & ~nan_a)[:5].tolist()}")
    inf_a = np.isinf(a)
    inf_e = np.isinf(e)
    assert np.array_equal(inf_a, inf_e) and np.array_equal(a[inf_a], e[inf_e]), (
        f"{what}: infinities differ: actual {np.argwhere(inf_a)[:5].tolist()} "
        f"expected {np.argwhere(inf_e)[:5].tolist()}")
    finite = np.isfinite(e)
    if not finite.any():
        return
    err = float(np.max(np.abs(a[finite] - e[finite])))
    norm = max(float(np.max(np.abs(e[finite]))), float(np.finfo(np.float64).tiny),
               0.0 if scale is None else float(scale))
    assert err <= rtol * norm, (
        f"{what}: max abs error {err:.3e} > {rtol:g} * {norm:.3e} "
        f"(normwise relative {err / norm:.3e})")


def nan_positions_equal(a, b) -> bool:
    return np.array_equal(np.isnan(np.asarray(a, np.float64)), np.isnan(np.asarray(b, np.float64)))


# ---- random data ----------------------------------------------------------------------------


def make_logits(rng, shape, dtype=np.float64, scale=2.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def make_positive(rng, shape, dtype=np.float64, low=0.05, high=1.0):
    """Inputs for from_logits=False: positive, unnormalised, away from the clip bounds
    (every ratio stays well inside [1e-7, 1 - 1e-7] once renormalised, for C >= 2)."""
    return rng.uniform(low, high, size=shape).astype(dtype)


def make_labels(rng, batch_shape, classes, dtype=np.int64, ignore_index=None, ignore_frac=0.0):
    """Random class indices; a fraction of positions set to ``ignore_index``."""
    y = rng.integers(0, classes, size=batch_shape).astype(np.int64)
    if ignore_index is not None and ignore_frac > 0 and y.size:
        mask = rng.random(batch_shape) < ignore_frac
        y = np.where(mask, ignore_index, y)
    return y.astype(dtype)


def make_probs(rng, shape, axis=-1, dtype=np.float64):
    """Soft labels: positive, each position summing to 1 along ``axis``."""
    q = rng.random(shape) + 0.01
    q /= q.sum(axis=axis, keepdims=True)
    return q.astype(dtype)


def make_weight(rng, classes):
    return rng.uniform(0.2, 3.0, size=classes)


def make_sample_weight(rng, batch_shape):
    """Sample weights, some negative (they double as the upstream gradient of a VJP)."""
    return rng.uniform(-1.0, 3.0, size=batch_shape)


def batch_shape_of(shape, axis):
    axis = axis % len(shape)
    return tuple(shape[:axis]) + tuple(shape[axis + 1:])


# ---- calling the three entry points -----------------------------------------------------------


def all_three(module, logits, target, **kwargs):
    """(loss of cross_entropy, grad of cross_entropy_grad, (loss, grad) of with_grad)."""
    loss = module.cross_entropy(logits, target, **kwargs)
    grad = module.cross_entropy_grad(logits, target, **kwargs)
    both = module.cross_entropy_with_grad(logits, target, **kwargs)
    return loss, grad, both


def check_against_reference(cece_mod, ref_mod, logits, target, rtol=None, what="", **kwargs):
    """cece's three entry points against the reference's, and against each other."""
    logits_before = np.array(logits, copy=True)
    target_before = np.array(target, copy=True)
    dtype = np.asarray(logits).dtype
    if rtol is None:
        rtol = rtol_for(np.float64 if dtype.kind in "iub" else
                        (np.float32 if dtype.itemsize <= 4 else np.float64))
    loss, grad, (loss2, grad2) = all_three(cece_mod, logits, target, **kwargs)
    rloss, rgrad = ref_mod.cross_entropy_with_grad(logits, target, **kwargs)
    tag = f"{what} {kwargs}"
    assert_close(loss, rloss, rtol, f"loss {tag}")
    assert_close(grad, rgrad, rtol, f"grad {tag}")
    assert_close(loss2, rloss, rtol, f"with_grad loss {tag}")
    assert_close(grad2, rgrad, rtol, f"with_grad grad {tag}")
    # the three entry points agree with each other
    assert_close(loss2, loss, rtol, f"with_grad loss vs cross_entropy {tag}")
    assert_close(grad2, grad, rtol, f"with_grad grad vs cross_entropy_grad {tag}")
    # nothing written into the inputs
    assert np.array_equal(np.asarray(logits), logits_before, equal_nan=True)
    assert np.array_equal(np.asarray(target), target_before, equal_nan=True)
    return loss, grad


def finite_difference_grad(f, x, h=1e-6):
    """Central differences of the scalar function f at x (float64), entry by entry."""
    x = np.array(x, dtype=np.float64, copy=True)
    g = np.empty_like(x)
    flat = x.reshape(-1)
    gflat = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = float(f(x))
        flat[i] = old - h
        fm = float(f(x))
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g
