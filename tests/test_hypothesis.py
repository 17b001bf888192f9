"""Property-based tests: random shapes, dtypes, options and values from the whole float range.

cece must agree with cece.reference (the float64 NumPy oracle) everywhere, NaN and inf
included; its gradients must agree with finite differences; and the invariants of the maths
must hold (shift invariance, softmax rows summing to 1, gradient rows summing to
2 * z_loss * lse, the three entry points agreeing bitwise, in-place equal to out-of-place).

Profiles (tests/conftest_hypothesis.py): "ci" by default, "long" (100k examples per test)
with ``--hypothesis-profile=long``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cece
import cece.reference as ref


def _register_profiles() -> None:
    module = sys.modules.get("conftest_hypothesis")
    if module is None:
        path = Path(__file__).with_name("conftest_hypothesis.py")
        spec = importlib.util.spec_from_file_location("cece_tests_conftest_hypothesis", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    module.register()


_register_profiles()

# Opt-in progress for long runs: with CECE_HYPOTHESIS_PROGRESS=path, the number of examples
# each test has run so far is rewritten to that file every 500 examples (a run cut off by a
# time limit prints no statistics of its own).
_PROGRESS_PATH = os.environ.get("CECE_HYPOTHESIS_PROGRESS")
_PROGRESS: dict = {}


def _progress(name: str) -> None:
    if not _PROGRESS_PATH:
        return
    _PROGRESS[name] = _PROGRESS.get(name, 0) + 1
    if _PROGRESS[name] % 500 == 0:
        with open(_PROGRESS_PATH, "w") as f:
            json.dump(_PROGRESS, f)
# A profile chosen with --hypothesis-profile (or loaded by a conftest) wins; else "ci".
PROFILE = (settings.get_profile("ci") if settings.get_current_profile_name() == "default"
           else settings.default)

COMPUTE = {np.dtype(np.float64): np.float64, np.dtype(np.float32): np.float32,
           np.dtype(np.float16): np.float32, np.dtype(np.int32): np.float64}
EPS = {np.float64: float(np.finfo(np.float64).eps), np.float32: float(np.finfo(np.float32).eps)}
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]

# ---- strategies ---------------------------------------------------------------------------


def _float_elements(dtype, mode):
    width = {np.float64: 64, np.float32: 32, np.float16: 16}.get(dtype, 64)
    if mode == "moderate":
        return st.floats(-30, 30, width=width)
    if mode == "wide":
        top = 6e4 if width == 16 else float(np.float32(1e30))
        return st.floats(-top, top, width=width)
    if mode == "whole":
        return st.floats(width=width, allow_nan=False, allow_infinity=False)
    return st.floats(width=width)  # "special": NaN and +-inf too


@st.composite
def shapes(draw, min_classes=1, max_classes=70, max_side=5):
    """(shape, axis): 1-3 dims, any class axis, batch dims possibly 0, C >= 1."""
    ndim = draw(st.integers(1, 3))
    shape = draw(st.lists(st.integers(0, max_side), min_size=ndim, max_size=ndim))
    axis = draw(st.integers(-ndim, ndim - 1))
    shape[axis] = draw(st.one_of(st.integers(min_classes, min(max_classes, 5)),
                                 st.integers(min_classes, max_classes)))
    return tuple(shape), axis


@st.composite
def logits_arrays(draw, shape, probabilities=False):
    dtype = draw(st.sampled_from([np.float64, np.float32, np.float16, np.int32]))
    if dtype == np.int32:
        return draw(hnp.arrays(dtype, shape, elements=st.integers(-50, 50)))
    if probabilities:  # exact 0 and 1 included, and the odd NaN / inf / negative
        exact = [float(dtype(v)) for v in (0.0, 1.0, 0.5, 1e-7, 1 - 1e-7)]
        elements = st.one_of(st.sampled_from(exact),
                             st.floats(0, 1, width={np.float16: 16, np.float32: 32}.get(dtype, 64)))
        if draw(st.integers(0, 9)) == 0:
            elements = st.one_of(elements, _float_elements(dtype, "special"))
        return draw(hnp.arrays(dtype, shape, elements=elements))
    mode = draw(st.sampled_from(["moderate", "moderate", "wide", "whole", "special"]))
    return draw(hnp.arrays(dtype, shape, elements=_float_elements(dtype, mode)))


@st.composite
def ce_problems(draw, smooth=False):
    """(logits, target, kwargs) for any cross-entropy call cece accepts.

    smooth=True keeps to float64, moderate values and probabilities away from the clip
    bounds, for finite differences.
    """
    shape, axis = draw(shapes(max_classes=9 if smooth else 70))
    batch = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    C = shape[axis]
    from_logits = draw(st.booleans()) if smooth else draw(st.sampled_from([True, True, True, False]))
    if smooth:
        lo = 0.05 if not from_logits else -6.0
        logits = draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, 6.0 if from_logits else 1.0)))
    else:
        logits = draw(logits_arrays(shape, probabilities=not from_logits))
    kwargs = {"axis": axis, "from_logits": from_logits,
              "reduction": draw(st.sampled_from(["none", "sum", "mean"]))}
    if draw(st.booleans()):
        ignore = draw(st.sampled_from([-100, -1, 0, 2]))
        kwargs["ignore_index"] = ignore
        idtype = draw(st.sampled_from(INT_DTYPES))
        info = np.iinfo(idtype)
        choices = [v for v in range(C) if info.min <= v <= info.max]
        if info.min <= ignore <= info.max:
            choices.append(ignore)
        target = draw(hnp.arrays(idtype, batch, elements=st.sampled_from(choices)))
    else:
        tdtype = np.float64 if smooth else draw(st.sampled_from([np.float64, np.float32, np.float16]))
        target = draw(hnp.arrays(tdtype, shape, elements=st.floats(0, 1, width=np.dtype(tdtype).itemsize * 8)))
        if draw(st.booleans()):
            with np.errstate(invalid="ignore", divide="ignore"):
                target = target / target.sum(axis=axis, keepdims=True, dtype=np.float64)
                target = np.nan_to_num(target).astype(tdtype)
    if draw(st.booleans()):
        kwargs["weight"] = draw(hnp.arrays(np.float64, (C,), elements=st.floats(0, 10)))
    if draw(st.booleans()):
        kwargs["sample_weight"] = draw(hnp.arrays(np.float64, batch, elements=st.floats(-3, 3)))
    if draw(st.booleans()):
        kwargs["label_smoothing"] = draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1)))
    if from_logits and draw(st.booleans()):
        kwargs["z_loss"] = draw(st.one_of(st.just(1e-4), st.floats(0, 1)))
    if from_logits and draw(st.booleans()):
        kwargs["softcap"] = draw(st.one_of(st.just(30.0), st.floats(0.5, 100)))
    if draw(st.integers(0, 3)) == 0:
        kwargs["num_threads"] = draw(st.integers(1, 4))
    return logits, target, kwargs


# ---- comparison ---------------------------------------------------------------------------


def _rows(a, axis):
    return np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1)


def _error_scales(logits, target, kwargs):
    """Per position: (loss scale, gradient scale, loss floor, gradient floor).

    The loss l = A log S - sum_j a_j (z_j - m) + z_loss lse^2 is a sum of terms each known to
    a relative eps of |a_j| (|z_j| + |m| + log C) and z_loss lse^2; the gradient entries
    s (K p_j - a_j) to eps of |K| (|z_j| + |m| + log C) + |a_j|: the scales, times |s|.
    The floors allow for intermediates in the subnormal range of the compute dtype (a tiny
    sample weight or z_loss held in float32, an exp that cece's kernels flush to 0 below the
    smallest normal number), whose error is absolute: a few of the smallest normal numbers,
    times what multiplies them afterwards.
    """
    axis = kwargs["axis"]
    C = logits.shape[axis]
    tiny = float(np.finfo(COMPUTE[logits.dtype]).smallest_normal)
    x = _rows(logits, axis)
    if kwargs.get("softcap") is not None:
        c = kwargs["softcap"]
        with np.errstate(over="ignore"):  # a tiny cap: x / c is inf, tanh 1, as in cece
            x = c * np.tanh(x / c)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.where(np.isfinite(x), np.abs(x), 0.0)
        M = finite.max(axis=-1) * 2 + math.log(C) + 1 if x.size else np.zeros(x.shape[:-1])
        eps = kwargs.get("label_smoothing", 0.0)
        w = np.ones(C) if kwargs.get("weight") is None else np.asarray(kwargs["weight"], np.float64)
        if np.asarray(target).dtype.kind in "iu":
            a_max = np.broadcast_to(w.max() if C else 0.0, x.shape[:-1])
            A = np.broadcast_to(w.max() + eps * w.sum() / C, x.shape[:-1])
        else:
            t = _rows(target, axis)
            a = w * ((1 - eps) * t + eps / C)
            a_max, A = np.abs(a).max(axis=-1), np.abs(a).sum(axis=-1)
        z_loss = kwargs.get("z_loss", 0.0)
        K = A + _times(2 * z_loss, M)
        loss_scale = _times(A, M) + _times(z_loss, M * M)
        grad_scale = _times(K, M) + a_max
        if not kwargs.get("from_logits", True):
            # q = p / P, clipped to [1e-7, 1 - 1e-7]: |log r| <= 16.2, |a / r| <= 1e7 |a|
            P = np.abs(x).sum(axis=-1)
            loss_scale = A * 17.0
            with np.errstate(divide="ignore"):  # an all-zero row: P = 0, no bound (inf)
                grad_scale = A * 1e7 / P
        s = np.ones(x.shape[:-1]) if kwargs.get("sample_weight") is None else np.abs(kwargs["sample_weight"])
        loss_floor = 8 * tiny * (1 + loss_scale) * np.maximum(1, s)
        grad_floor = 8 * tiny * (1 + grad_scale) * np.maximum(1, s)
        return _times(s, loss_scale), _times(s, grad_scale), loss_floor, grad_floor


def _times(a, b):
    """a * b, where no mass (a zero factor) bounds nothing even beside an unbounded (inf)
    magnitude: 0, not NaN."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where((np.asarray(a) == 0) | (np.asarray(b) == 0), 0.0, np.multiply(a, b))


def assert_close(actual, expected, scale, rtol, what, floor=0.0):
    """NaN where the reference has NaN, the same infinities, finite values within
    rtol * (|expected| + scale) + floor.

    An entry whose tolerance exceeds the largest number of the result's dtype is not
    checked: its error bound is itself out of range (a float32 gradient of size 1e200, from a
    1e-211 class weight beside ordinary ones, is inf, NaN or a rounded 0 depending on the
    order of operations), and no implementation can be told right or wrong there."""
    limit = float(np.finfo(np.asarray(actual).dtype).max) \
        if np.asarray(actual).dtype.kind == "f" else math.inf
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    with np.errstate(invalid="ignore", over="ignore"):
        # the bound's own part (not |expected|, which is inf or NaN where those are checked)
        checkable = ~(rtol * np.broadcast_to(scale, expected.shape) + floor > limit)
    actual, expected = actual[checkable], expected[checkable]
    scale = np.broadcast_to(scale, checkable.shape)[checkable]
    floor = np.broadcast_to(floor, checkable.shape)[checkable]
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    bad = nan_a != nan_e
    assert not bad.any(), f"{what}: NaN pattern differs at {np.argwhere(bad)[:5].tolist()}: " \
                          f"cece {actual[bad][:5]} reference {expected[bad][:5]}"
    inf_e = np.isinf(expected)
    bad = inf_e & (actual != expected)
    assert not bad.any(), f"{what}: reference has inf, cece {actual[bad][:5]}"
    with np.errstate(invalid="ignore", over="ignore"):
        fin = np.isfinite(expected)
        tol = rtol * (np.abs(expected) + np.broadcast_to(scale, expected.shape)) + floor
        tol = np.where(np.isnan(tol), np.inf, tol)
        err = np.abs(actual - expected)
        bad = fin & ~(err <= tol)
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} differ; first at {np.argwhere(bad)[:3].tolist()}: "
        f"cece {actual[bad][:3]} reference {expected[bad][:3]} tolerance {tol[bad][:3]}")


def _mean_denominator(target, kwargs):
    """D of "mean" (None for probability targets' sum of s); and sum |s w_y| for conditioning."""
    axis = kwargs["axis"]
    t = np.asarray(target)
    if t.dtype.kind in "iu":
        C = None
        labels = t.astype(np.int64)
        valid = labels != kwargs.get("ignore_index", -100)
        w = kwargs.get("weight")
        wy = np.ones(labels.shape) if w is None else np.asarray(w)[np.where(valid, labels, 0)]
        s = np.ones(labels.shape) if kwargs.get("sample_weight") is None else kwargs["sample_weight"]
        terms = np.where(valid, s * wy, 0.0)
    else:
        shape = t.shape[:axis % t.ndim] + t.shape[axis % t.ndim + 1:]
        terms = np.ones(shape) if kwargs.get("sample_weight") is None else kwargs["sample_weight"]
        C = None
    del C
    return float(np.sum(terms)), float(np.sum(np.abs(terms)))


def _has_mass(target, kwargs):
    """Whether some position of "mean"'s denominator has nonzero weight (in exact arithmetic:
    s * w_y may underflow)."""
    t = np.asarray(target)
    s = kwargs.get("sample_weight")
    s_nonzero = np.ones(1, bool) if s is None else np.asarray(s) != 0
    if t.dtype.kind not in "iu":
        return bool(np.any(s_nonzero))
    labels = t.astype(np.int64)
    valid = labels != kwargs.get("ignore_index", -100)
    w = kwargs.get("weight")
    w_nonzero = valid if w is None else valid & (np.asarray(w)[np.where(valid, labels, 0)] != 0)
    return bool(np.any(w_nonzero & s_nonzero))


def _skip_ill_conditioned(logits, target, kwargs):
    """Cases whose exact answer is a discontinuity or a cancellation, where two correct
    implementations may differ by their summation order alone."""
    if kwargs["reduction"] == "mean":
        D, D_abs = _mean_denominator(target, kwargs)
        assume(D == 0.0 and D_abs == 0.0 or abs(D) > 1e-6 * D_abs)
        # D below the weights' own scale by more than 2**900 (the labels' class weights
        # subnormal while others are ordinary): 1/D overflows, and the gradient's s w_y / D
        # is a ratio of subnormals, which neither implementation resolves (cece gives NaN,
        # the reference 0). docs/semantics.md names the case.
        w = kwargs.get("weight")
        sw = kwargs.get("sample_weight")
        top = max(np.abs(np.asarray(w)).max(initial=0.0) if w is not None else 1.0, 1e-300) * \
            max(np.abs(np.asarray(sw)).max(initial=0.0) if sw is not None else 1.0, 1e-300)
        assume(D == 0.0 or abs(D) > 2.0**-900 * top)
        # D (and "sum") below float64's normal range while some position carries weight:
        # cece rescales the weights by powers of two and gives the mean, which "sum" / D
        # cannot check (tests/test_extremes.py checks the rescaling itself)
        assume(abs(D) >= np.finfo(np.float64).smallest_normal or not _has_mass(target, kwargs))
    if not kwargs["from_logits"]:
        x = _rows(logits, kwargs["axis"])
        with np.errstate(all="ignore"):
            q = x / x.sum(axis=-1, keepdims=True)
            for bound in (1e-7, 1 - 1e-7):
                assume(not (np.abs(q - bound) <= 1e-9 * bound).any())
            # P = sum p is itself a sum with cancellation when p has mixed signs
            assume(not (np.abs(x).sum(-1) > 1e6 * np.abs(x.sum(-1))).any())


def _reduced_scale(scale, target, kwargs):
    if kwargs["reduction"] == "none":
        return scale
    total = float(np.sum(scale))
    if kwargs["reduction"] == "sum":
        return total
    D, _ = _mean_denominator(target, kwargs)
    return total / abs(D) if D != 0 else math.inf


# ---- agreement with the reference ---------------------------------------------------------


@PROFILE
@given(ce_problems())
def test_cross_entropy_agrees_with_reference(problem):
    _progress("test_cross_entropy_agrees_with_reference")
    logits, target, kwargs = problem
    note(f"logits {logits.dtype} {logits.shape}, target {np.asarray(target).dtype}, {kwargs}")
    _skip_ill_conditioned(logits, target, kwargs)
    compute = COMPUTE[logits.dtype]
    rtol = 64 * EPS[compute]
    with np.errstate(all="ignore"):
        expected_loss, expected_grad = ref.cross_entropy_with_grad(logits, target, **kwargs)
    loss, grad = cece.cross_entropy_with_grad(logits, target, **kwargs)
    assert np.asarray(loss).dtype == compute and grad.dtype == compute
    loss_scale, grad_scale, loss_floor, grad_floor = _error_scales(logits, target, kwargs)
    assert_close(loss, expected_loss, _reduced_scale(loss_scale, target, kwargs), rtol, "loss",
                 floor=_reduced_scale(loss_floor, target, kwargs))
    if kwargs["reduction"] == "mean":
        D, _ = _mean_denominator(target, kwargs)
        if D == 0:
            # The mean is NaN and the gradient of a NaN is NaN or inf, except at ignored
            # positions, whose rows are 0 (docs/semantics.md, as PyTorch): test_extremes.py
            # checks those against PyTorch.
            return
        grad_scale, grad_floor = grad_scale / abs(D), grad_floor / abs(D)

    def per_entry(v):
        shape = _rows(logits, kwargs["axis"]).shape
        return np.moveaxis(np.broadcast_to(np.asarray(v)[..., None], shape), -1, kwargs["axis"])

    assert_close(grad, expected_grad, per_entry(grad_scale), rtol, "gradient", floor=per_entry(grad_floor))


@PROFILE
@given(ce_problems())
def test_entry_points_agree_bitwise(problem):
    """cross_entropy, cross_entropy_grad, cross_entropy_with_grad and the in-place backward
    are one kernel: their results are the same bits."""
    _progress("test_entry_points_agree_bitwise")
    logits, target, kwargs = problem
    loss, grad = cece.cross_entropy_with_grad(logits, target, **kwargs)
    np.testing.assert_array_equal(cece.cross_entropy(logits, target, **kwargs), loss, strict=True)
    np.testing.assert_array_equal(cece.cross_entropy_grad(logits, target, **kwargs), grad, strict=True)
    compute = COMPUTE[logits.dtype]
    buffer = np.array(logits, dtype=compute, order="C", copy=True)
    before = buffer.copy()
    out = np.empty_like(buffer)
    np.testing.assert_array_equal(cece.cross_entropy_grad(buffer, target, out=out, **kwargs), grad)
    np.testing.assert_array_equal(buffer, before)
    loss2, grad2 = cece.cross_entropy_with_grad(buffer, target, grad_out=buffer, **kwargs)
    assert grad2 is buffer
    np.testing.assert_array_equal(loss2, loss)
    # in place the kernel cannot keep its exps in the output, so it may round differently:
    # the same numbers to a few ulps (NaN and inf in the same places)
    _, grad_scale, _, grad_floor = _error_scales(logits, target, kwargs)
    if kwargs["reduction"] == "mean":
        D, _ = _mean_denominator(target, kwargs)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            grad_scale, grad_floor = grad_scale / abs(D), grad_floor / abs(D)
    shape = _rows(logits, kwargs["axis"]).shape
    per_entry = lambda v: np.moveaxis(np.broadcast_to(np.asarray(v)[..., None], shape), -1, kwargs["axis"])
    assert_close(grad2, grad, per_entry(grad_scale), 8 * EPS[compute], "in-place gradient",
                 floor=per_entry(grad_floor))


@st.composite
def normalize_problems(draw):
    shape, axis = draw(shapes())
    return draw(logits_arrays(shape)), axis


@PROFILE
@given(normalize_problems(), st.sampled_from(["softmax", "log_softmax", "logsumexp"]))
def test_normalizers_agree_with_reference(problem, name):
    _progress("test_normalizers_agree_with_reference")
    x, axis = problem
    compute = COMPUTE[x.dtype]
    expected = getattr(ref, name)(x, axis=axis)
    actual = getattr(cece, name)(x, axis=axis)
    assert np.asarray(actual).dtype == compute
    rows = _rows(x, axis)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.where(np.isfinite(rows), np.abs(rows), 0.0)
        M = (finite.max(axis=-1) * 2 + math.log(x.shape[axis]) + 1) if rows.size else np.zeros(rows.shape[:-1])
        if name == "softmax":  # the relative error of each p_j is eps * |z_j - m - log S|
            scale = np.moveaxis(np.broadcast_to(M[..., None], rows.shape), -1, axis) * np.abs(expected)
        elif name == "log_softmax":
            scale = np.moveaxis(np.broadcast_to(M[..., None], rows.shape), -1, axis)
        else:
            scale = M
    # cece's exp flushes results below the smallest normal number to 0 (csrc/cece_math.h)
    floor = 2 * float(np.finfo(compute).smallest_normal) if name == "softmax" else 0.0
    assert_close(actual, expected, scale, 16 * EPS[compute], name, floor=floor)
    if name != "logsumexp":
        out = np.empty_like(np.asarray(actual))
        assert getattr(cece, name)(x, axis=axis, out=out) is out
        np.testing.assert_array_equal(out, actual)


# ---- finite differences ------------------------------------------------------------------


@PROFILE
@given(ce_problems(smooth=True), st.integers(0, 2**32 - 1))
def test_gradient_matches_finite_differences(problem, seed):
    _progress("test_gradient_matches_finite_differences")
    logits, target, kwargs = problem
    _skip_ill_conditioned(logits, target, kwargs)
    if kwargs["reduction"] == "mean":
        D, _ = _mean_denominator(target, kwargs)
        assume(abs(D) > 1e-3)

    def total(z):
        return float(np.sum(cece.cross_entropy(z, target, **kwargs), dtype=np.float64))

    grad = cece.cross_entropy_grad(logits, target, **kwargs)
    v = np.random.default_rng(seed).standard_normal(logits.shape)
    h = 1e-6
    fd = (total(logits + h * v) - total(logits - h * v)) / (2 * h)
    analytic = float(np.sum(grad * v))
    bound = 1e-5 * (abs(analytic) + np.linalg.norm(grad) * np.linalg.norm(v)) + 1e-7 * (1 + abs(total(logits)))
    if not kwargs["from_logits"]:
        # probabilities near 0 make log() steep: scale by the largest |d log r / dp| = 1/min p
        bound *= 1.0 / max(float(np.min(logits, initial=1.0)), 1e-3)
    assert abs(fd - analytic) <= bound, f"finite difference {fd} vs analytic {analytic}"


# ---- invariants ----------------------------------------------------------------------------


@st.composite
def shift_problems(draw):
    shape, axis = draw(shapes())
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    top = float(draw(st.sampled_from([10.0, 1e3, 1e6])))
    x = draw(hnp.arrays(dtype, shape, elements=st.floats(-top, top, width=np.dtype(dtype).itemsize * 8)))
    batch = tuple(1 if i == axis % len(shape) else n for i, n in enumerate(shape))
    c = draw(hnp.arrays(np.float64, batch, elements=st.floats(-top, top))).astype(dtype)
    return x, c, axis, top


@PROFILE
@given(shift_problems(), st.booleans())
def test_shift_invariance(problem, probability_target):
    """Adding a constant per position to the logits changes no loss, no gradient, no
    softmax, no log_softmax, and adds the constant to logsumexp."""
    _progress("test_shift_invariance")
    x, c, axis, top = problem
    shifted = (x + c).astype(x.dtype)
    eps = EPS[x.dtype.type]
    C = x.shape[axis]
    # x + c is rounded: each logit moves by up to half an ulp of 2 * top
    tol = 8 * eps * (2 * top) * (1 + math.log(C)) + 8 * eps
    batch = x.shape[:axis % x.ndim] + x.shape[axis % x.ndim + 1:]
    if probability_target:
        target = np.full(x.shape, 1.0 / C)
    else:
        target = np.arange(int(np.prod(batch)), dtype=np.int64).reshape(batch) % C
    for reduction in ("none", "sum"):
        a = cece.cross_entropy(x, target, axis=axis, reduction=reduction)
        b = cece.cross_entropy(shifted, target, axis=axis, reduction=reduction)
        n = max(1, int(np.prod(batch))) if reduction == "sum" else 1
        np.testing.assert_allclose(b, a, rtol=0, atol=tol * n)
    g1 = cece.cross_entropy_grad(x, target, axis=axis, reduction="sum")
    g2 = cece.cross_entropy_grad(shifted, target, axis=axis, reduction="sum")
    np.testing.assert_allclose(g2, g1, rtol=0, atol=tol)
    np.testing.assert_allclose(cece.log_softmax(shifted, axis=axis), cece.log_softmax(x, axis=axis),
                               rtol=0, atol=tol)
    np.testing.assert_allclose(cece.softmax(shifted, axis=axis), cece.softmax(x, axis=axis), rtol=0, atol=tol)
    c_squeezed = np.squeeze(c.astype(np.float64), axis=axis)
    np.testing.assert_allclose(cece.logsumexp(shifted, axis=axis),
                               cece.logsumexp(x, axis=axis).astype(np.float64) + c_squeezed,
                               rtol=0, atol=tol + 4 * eps * 3 * top)


@PROFILE
@given(normalize_problems())
def test_softmax_rows_sum_to_one(problem):
    _progress("test_softmax_rows_sum_to_one")
    x, axis = problem
    compute = COMPUTE[x.dtype]
    p = cece.softmax(x, axis=axis)
    logp = cece.log_softmax(x, axis=axis)
    lse = cece.logsumexp(x, axis=axis)
    rows_p, rows_x = _rows(p, axis), _rows(x, axis)
    finite_rows = np.isfinite(rows_x).all(axis=-1)
    sums = rows_p.sum(axis=-1)
    C = x.shape[axis]
    assert np.all(np.abs(sums[finite_rows] - 1.0) <= 4 * C * EPS[compute] + 2 * EPS[compute]), sums
    assert np.all((rows_p[finite_rows] >= 0) & (rows_p[finite_rows] <= 1))
    assert np.all(_rows(logp, axis)[finite_rows] <= 0)
    # logsumexp is at least the row maximum, at most max + log C
    m = rows_x.max(axis=-1) if rows_x.size else np.zeros(rows_x.shape[:-1])
    lse64 = np.asarray(lse, np.float64)
    slack = 4 * EPS[compute] * (np.abs(m) + math.log(C) + 1)
    assert np.all(lse64[finite_rows] >= m[finite_rows] - slack[finite_rows])
    assert np.all(lse64[finite_rows] <= m[finite_rows] + math.log(C) + slack[finite_rows])
    # a row with NaN or +inf, or all -inf, is NaN everywhere (docs/semantics.md)
    nan_rows = np.isnan(rows_x).any(-1) | np.isposinf(rows_x).any(-1) | np.isneginf(rows_x).all(-1)
    assert np.isnan(rows_p[nan_rows]).all() and np.isnan(lse64[nan_rows]).all()


@PROFILE
@given(ce_problems())
def test_gradient_rows_and_reductions(problem):
    """Gradient rows sum to s * scale * 2 * z_loss * lse (no softcap, from_logits); "sum" is
    the sum of "none" and "mean" is "sum" / D."""
    _progress("test_gradient_rows_and_reductions")
    logits, target, kwargs = problem
    _skip_ill_conditioned(logits, target, kwargs)
    compute = COMPUTE[logits.dtype]
    eps = EPS[compute]
    kw = dict(kwargs, reduction="none")
    none = np.asarray(cece.cross_entropy(logits, target, **kw), np.float64)
    total = float(cece.cross_entropy(logits, target, **dict(kwargs, reduction="sum")))
    loss_scale, _, loss_floor, _ = _error_scales(logits, target, kwargs)
    with np.errstate(invalid="ignore", over="ignore"):
        if np.isfinite(none).all() and math.isfinite(total):
            tol = 64 * eps * float(np.sum(np.abs(none)) + np.sum(loss_scale)) + float(np.sum(loss_floor))
            assert abs(total - float(np.sum(none))) <= tol
            D, D_abs = _mean_denominator(target, kwargs)
            mean = float(cece.cross_entropy(logits, target, **dict(kwargs, reduction="mean")))
            # the sum before it is rounded to the logits' dtype (a float32 sum of 1e-81 is 0,
            # but over D = 1e-139 it makes a mean of inf): the reference's, in float64
            # (probability targets as cece sees them: in the compute dtype, where 2e-308 is 0)
            t = target.astype(compute) if np.asarray(target).dtype.kind == "f" else target
            with np.errstate(over="ignore"):
                wide = float(ref.cross_entropy(np.asarray(logits, np.float64), t,
                                               **dict(kwargs, reduction="sum")))
            if 0 < abs(D) < np.finfo(np.float64).smallest_normal or D == 0 and _has_mass(target, kwargs):
                pass  # "sum" and D underflow (see _skip_ill_conditioned): nothing to check against
            elif D != 0:
                with np.errstate(over="ignore"):
                    exact = float(compute(wide / D))  # the mean is rounded to the compute dtype
                assert mean == exact or abs(mean - exact) <= tol / abs(D) + 4 * eps * abs(exact)
            else:  # nan for 0 / 0 (nothing to average); a z-loss over zero class weights: inf
                with np.errstate(divide="ignore", invalid="ignore"):
                    expected = np.float64(wide) / np.float64(0.0)
                assert mean == expected or (math.isnan(mean) and math.isnan(expected))
    if kwargs["from_logits"] and kwargs.get("softcap") is None and np.isfinite(logits).all() \
            and logits.size:
        x = np.asarray(logits, np.float64)
        assume(np.abs(x).max() < 1e4)
        grad = cece.cross_entropy_grad(logits, target, **dict(kwargs, reduction="none"))
        row_sums = _rows(grad, kwargs["axis"]).sum(axis=-1)
        lse = np.asarray(ref.logsumexp(x, axis=kwargs["axis"]), np.float64)
        s = np.ones(lse.shape) if kwargs.get("sample_weight") is None else kwargs["sample_weight"]
        expected = s * 2 * kwargs.get("z_loss", 0.0) * lse
        if np.asarray(target).dtype.kind in "iu":
            expected = np.where(np.asarray(target).astype(np.int64) == kwargs.get("ignore_index", -100),
                                0.0, expected)
        _, grad_scale, _, grad_floor = _error_scales(logits, target, kwargs)
        C = logits.shape[kwargs["axis"]]
        assert_close(row_sums, expected, grad_scale * C, 64 * eps, "gradient row sums", floor=grad_floor * C)


def test_profiles_are_registered():
    """The profiles exist whatever conftest did (a cheap check that the module set up)."""
    assert settings.get_profile("ci").max_examples < 1000
    assert settings.get_profile("long").max_examples == 100_000
