"""Pure-NumPy twin of cece's public API: the oracle of the tests and the benchmarks' baseline.

Written for clarity, not speed: everything is computed in float64 with the class axis moved
last, following docs/semantics.md line by line. Arguments go through the same checks as the
compiled functions (cece._validation), so both accept and reject the same calls; results are
cast to the same compute dtype. `num_threads` is accepted and ignored.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._validation import (
    EPSILON,
    CrossEntropyCall,
    as_compute_array,
    check_grad_out,
    check_normalize_out,
    check_num_threads,
    label_error,
    normalize_axis,
    prepare_cross_entropy,
    split_shape,
)

__all__ = [
    "cross_entropy",
    "cross_entropy_grad",
    "cross_entropy_with_grad",
    "log_softmax",
    "softmax",
    "logsumexp",
]


def _xlogy_sum(a: np.ndarray, logp: np.ndarray) -> np.ndarray:
    """sum_j a_j * logp_j over the last axis, where a_j == 0 contributes exactly 0."""
    with np.errstate(invalid="ignore"):
        terms = np.where(a == 0.0, 0.0, a * logp)
    return terms.sum(axis=-1)


def _log_sum_shifted_exp(z: np.ndarray, m: np.ndarray, axis: int = -1):
    """(log S, U, first_max) along `axis` (kept, length 1): S = sum_j exp(z_j - m), m = max_j z_j,
    U = S - 1, and the index of the first max.

    U is the sum without the max's own term, which is exp(0) = 1 exactly, and log S is
    log1p(U): when one class dominates, S = 1 + 7e-12 say, adding the small terms to that 1
    would round away their low digits, and log S is all in them. A row with NaN, +inf or
    only -inf has NaN there instead of 1, and stays NaN.
    """
    with np.errstate(over="ignore"):  # a difference beyond the range is -inf: its exp is 0
        e = np.exp(z - m)
    first_max = np.argmax(z, axis=axis, keepdims=True)  # a NaN's index in a row holding one
    top = np.take_along_axis(e, first_max, axis=axis)  # 1, or NaN
    np.put_along_axis(e, first_max, 0.0, axis=axis)
    U = e.sum(axis=axis, keepdims=True) + (top - 1.0)
    return np.log1p(U), U, first_max


def _scale(x: np.ndarray, by: np.ndarray, *over: Any) -> np.ndarray:
    """x * by / (product of `over`), for factors anywhere in the float64 range.

    A gradient is a product of factors that may lie far apart: the mean's 1/D for tiny class
    weights (D < 5.6e-309: 1/D overflows) times coefficients that carry those same weights,
    or the 1/P of a row of subnormal probabilities times a tiny sample weight. Multiplied in
    turn they overflow (or underflow) on the way although the result is ordinary. So each
    factor is split into a mantissa in [0.5, 1) and a binary exponent (np.frexp): the
    mantissas are combined, the exponents added, and the power of two applied once, last
    (np.ldexp, which is exact unless the result itself is out of range). Zeros, infs
    and NaNs give what the plain product gives.
    """
    x_mantissa, exponent = np.frexp(x)  # x too: a subnormal x times a mantissa would round
    by_mantissa, by_exponent = np.frexp(by)
    ratio = by_mantissa
    exponent = exponent + by_exponent
    for factor in over:
        mantissa, factor_exponent = np.frexp(factor)
        ratio = ratio / mantissa
        exponent = exponent - factor_exponent
    return np.ldexp(x_mantissa * ratio, exponent)


def _target_distribution(call: CrossEntropyCall, valid: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """t (batch..., C): the smoothed one-hot or smoothed probability target."""
    C = call.classes
    eps = call.label_smoothing
    if call.labels is not None:
        onehot = np.zeros(labels.shape + (C,))
        np.put_along_axis(onehot, np.where(valid, labels, 0)[..., None], 1.0, axis=-1)
        t = onehot
    else:
        t = np.moveaxis(call.probs.astype(np.float64), call.axis, -1)
    return (1.0 - eps) * t + eps / C


def _check_labels(call: CrossEntropyCall) -> tuple[np.ndarray, np.ndarray]:
    """(labels, valid): valid is False at ignored positions; IndexError for a bad label."""
    labels = call.labels
    ignored = labels == call.ignore_index
    bad = ~ignored & ((labels < 0) | (labels >= call.classes))
    if bad.any():
        raise label_error(call.target, int(np.flatnonzero(bad)[0]), call.classes)
    return labels, ~ignored


def _forward_backward(call: CrossEntropyCall):
    """Per-position losses s_i * l_i, the denominator D, and the gradient of sum_i s_i * l_i."""
    x = np.moveaxis(call.logits.astype(np.float64), call.axis, -1)
    batch = x.shape[:-1]
    if call.labels is not None:
        labels, valid = _check_labels(call)
    else:
        labels, valid = None, np.ones(batch, dtype=bool)
    t = _target_distribution(call, valid, labels)
    w = np.ones(call.classes) if call.weight is None else call.weight
    a = w * t
    s = np.ones(batch) if call.sample_weight is None else call.sample_weight

    with np.errstate(all="ignore"):
        if call.from_logits:
            z = x
            if call.softcap is not None:
                c = call.softcap
                z = c * np.tanh(x / c)
            m = z.max(axis=-1, keepdims=True)
            log_s, U, first_max = _log_sum_shifted_exp(z, m)
            logp = (z - m) - log_s
            lse = (m + log_s)[..., 0]
            # A row whose logsumexp is NaN (a NaN, a +inf, or only -inf) has a NaN loss
            # whatever the target: DESIGN.md's "an all -inf row is nan".
            loss = np.where(np.isnan(lse), np.nan, -_xlogy_sum(a, logp))
            if call.z_loss > 0:  # (z * lse) * lse: no overflow of lse**2 when z_loss is small
                loss = loss + call.z_loss * lse * lse
            p = np.exp(logp)
            K = (a.sum(axis=-1) + 2.0 * call.z_loss * lse)[..., None]
            grad = K * p - a
            # At the max p = 1 / S: K p - a is taken as ((K - a) - a U) / S there, which
            # does not cancel when p is within rounding of 1 (a confident prediction). K - a
            # is the rest of the target mass (summed without the max's a) plus the z-loss
            # term.
            a_max = np.take_along_axis(a, first_max, axis=-1)
            a_others = np.broadcast_to(a, grad.shape).copy()
            np.put_along_axis(a_others, first_max, 0.0, axis=-1)
            K_minus_a = a_others.sum(axis=-1, keepdims=True) + 2.0 * call.z_loss * lse[..., None]
            np.put_along_axis(grad, first_max, (K_minus_a - a_max * U) / (1.0 + U), axis=-1)
            if call.softcap is not None:
                grad = grad * (1.0 - (z / call.softcap) ** 2)
            row_divisor = np.ones(batch + (1,))
        else:
            total = x.sum(axis=-1, keepdims=True)
            q = x / total
            r = np.clip(q, EPSILON, 1.0 - EPSILON)
            loss = -_xlogy_sum(a, np.log(r))
            inside = (q >= EPSILON) & (q <= 1.0 - EPSILON)
            g = np.where(inside, -a / r, 0.0)
            # dl/dp = (g - sum_j g_j q_j) / P: the division by P is left to _scale below
            grad = g - (g * q).sum(axis=-1, keepdims=True)
            row_divisor = total

        if call.labels is not None:
            denominator = (s * w[np.where(valid, labels, 0)])[valid].sum()
        else:
            denominator = s.sum()
        divisors = (row_divisor, np.float64(denominator)) if call.reduction == "mean" else (row_divisor,)
        # s * grad / (P * D) (P = 1 with logits, D only for the mean), without forming 1/P or
        # 1/D on their own
        grad = _scale(grad, s[..., None], *divisors)
    loss = np.where(valid, s * loss, 0.0)
    # Ignored positions have a zero gradient row even when the mean divides by D = 0.
    grad = np.where(valid[..., None], grad, 0.0)
    return loss, denominator, grad


def _reduce(call: CrossEntropyCall, loss: np.ndarray, denominator: float):
    dtype = call.logits.dtype.type
    if call.reduction == "none":
        return loss.astype(dtype)[()]
    if call.reduction == "sum":
        return dtype(loss.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return dtype(np.float64(loss.sum()) / np.float64(denominator))


def _scaled_grad(call: CrossEntropyCall, grad: np.ndarray, grad_out):
    grad = np.moveaxis(grad, -1, call.axis).astype(call.logits.dtype)
    if grad_out is None:
        return grad
    grad_out[...] = grad
    return grad_out


def cross_entropy(logits, target, *, axis=-1, weight=None, sample_weight=None,
                  ignore_index=-100, label_smoothing=0.0, reduction="mean",
                  from_logits=True, z_loss=0.0, softcap=None, num_threads=None):
    """Reference cross-entropy; same API and semantics as :func:`cece.cross_entropy`."""
    call = prepare_cross_entropy(logits, target, axis, weight, sample_weight, ignore_index,
                                 label_smoothing, reduction, from_logits, z_loss, softcap,
                                 num_threads)
    loss, denominator, _ = _forward_backward(call)
    return _reduce(call, loss, denominator)


def cross_entropy_grad(logits, target, *, axis=-1, weight=None, sample_weight=None,
                       ignore_index=-100, label_smoothing=0.0, reduction="mean",
                       from_logits=True, z_loss=0.0, softcap=None, num_threads=None,
                       out=None):
    """Reference gradient; same API and semantics as :func:`cece.cross_entropy_grad`."""
    call = prepare_cross_entropy(logits, target, axis, weight, sample_weight, ignore_index,
                                 label_smoothing, reduction, from_logits, z_loss, softcap,
                                 num_threads)
    if out is not None:
        out = check_grad_out(out, call, "out")
    _, denominator, grad = _forward_backward(call)
    return _scaled_grad(call, grad, out)


def cross_entropy_with_grad(logits, target, *, axis=-1, weight=None, sample_weight=None,
                            ignore_index=-100, label_smoothing=0.0, reduction="mean",
                            from_logits=True, z_loss=0.0, softcap=None, num_threads=None,
                            grad_out=None):
    """Reference (loss, gradient); same API as :func:`cece.cross_entropy_with_grad`."""
    call = prepare_cross_entropy(logits, target, axis, weight, sample_weight, ignore_index,
                                 label_smoothing, reduction, from_logits, z_loss, softcap,
                                 num_threads)
    if grad_out is not None:
        grad_out = check_grad_out(grad_out, call)
    loss, denominator, grad = _forward_backward(call)
    return _reduce(call, loss, denominator), _scaled_grad(call, grad, grad_out)


def _prepare_x(x, axis, num_threads):
    check_num_threads(num_threads)
    arr = as_compute_array(x, "x")
    ax = normalize_axis(axis, arr.ndim)
    split_shape(arr.shape, ax, "x")
    return arr, ax


def _log_softmax64(arr: np.ndarray, axis: int) -> np.ndarray:
    x = arr.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # a log-probability below -max is -inf
        m = x.max(axis=axis, keepdims=True)
        return (x - m) - _log_sum_shifted_exp(x, m, axis)[0]


def _store(result: np.ndarray, like: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
    if out is None:
        return result.astype(like.dtype)
    out[...] = result
    return out


def log_softmax(x, axis=-1, *, out=None, num_threads=None):
    """Reference log-softmax along `axis`: x - logsumexp(x)."""
    arr, ax = _prepare_x(x, axis, num_threads)
    if out is not None:
        out = check_normalize_out(out, arr, x)
    return _store(_log_softmax64(arr, ax), arr, out)


def softmax(x, axis=-1, *, out=None, num_threads=None):
    """Reference softmax along `axis`: exp(x - logsumexp(x))."""
    arr, ax = _prepare_x(x, axis, num_threads)
    if out is not None:
        out = check_normalize_out(out, arr, x)
    return _store(np.exp(_log_softmax64(arr, ax)), arr, out)


def logsumexp(x, axis=-1, *, num_threads=None):
    """Reference log(sum(exp(x))) along `axis`, max-shifted; the axis is removed."""
    arr, ax = _prepare_x(x, axis, num_threads)
    x64 = arr.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = x64.max(axis=ax, keepdims=True)
        result = (m + _log_sum_shifted_exp(x64, m, ax)[0]).squeeze(ax)
    return result.astype(arr.dtype)[()]
