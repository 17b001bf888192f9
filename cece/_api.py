"""cece's public functions: validate once (cece._validation), then one kernel call.

Each function first offers its arguments to the compiled ready path (cece._core.ready_*),
which runs a call whose arrays cece._validation would pass on unchanged without going
through it (a small call is mostly such overhead); when that path returns None, the call is
validated and converted in full and then run by the same compiled code.

The docstrings carry the maths; docs/semantics.md has every rule in one page, and
cece.reference is the same API written in plain NumPy.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _core
from ._core import GRAD, LOSS, LOSS_AND_GRAD, ready_cross_entropy, ready_normalize
from ._validation import (
    as_compute_array,
    check_grad_out,
    check_normalize_out,
    check_num_threads,
    normalize_axis,
    prepare_cross_entropy,
    same_memory,
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

_COMMON_PARAMETERS = """\
    logits : array_like
        Scores (or probabilities with ``from_logits=False``), class axis ``axis``.
        float32/float64 are computed natively, float16 in float32, integers and bool in
        float64.
    target : array_like
        Either integer class indices with the shape of ``logits`` without the class axis
        (any signed or unsigned width), or floating probabilities with the shape of
        ``logits`` (one-hot or soft labels).
    axis : int, default -1
        The class axis. Any axis works without a transpose copy.
    weight : array_like, shape (C,), optional
        Per-class weights (finite, >= 0), as PyTorch's ``weight``.
    sample_weight : array_like, optional
        Per-position weights with the batch shape (finite; may be negative, as it doubles as
        the upstream gradient of a vector-Jacobian product).
    ignore_index : int, default -100
        Integer targets equal to this contribute nothing and leave the mean's denominator.
    label_smoothing : float in [0, 1], default 0
        The target becomes ``(1 - eps) * target + eps / C`` (PyTorch's formula).
    reduction : {"mean", "sum", "none"}, default "mean"
        "mean" is the weighted mean ``sum(s_i * l_i) / D`` with ``D = sum(s_i * w[y_i])``
        for integer targets and ``D = sum(s_i)`` for probabilities; "none" returns
        ``s_i * l_i`` in the batch shape.
    from_logits : bool, default True
        False: ``logits`` are probabilities, renormalised along ``axis`` and clipped to
        ``[1e-7, 1 - 1e-7]`` (Keras).
    z_loss : float >= 0, default 0
        Adds ``z_loss * logsumexp(logits)**2`` per non-ignored position (PaLM).
    softcap : float > 0, optional
        Logits become ``softcap * tanh(logits / softcap)`` first (Gemma 2).
    num_threads : int, optional
        OpenMP threads; None uses OpenMP's default (``OMP_NUM_THREADS``, threadpoolctl).
        Small inputs run on the calling thread; results are bitwise the same for any count.
"""


def _doc(text: str) -> str:
    return text.replace("%(common)s", _COMMON_PARAMETERS)


def _full_path(want: int, logits: Any, target: Any, axis: Any, weight: Any,
               sample_weight: Any, ignore_index: Any, label_smoothing: Any, reduction: Any,
               from_logits: Any, z_loss: Any, softcap: Any, num_threads: Any,
               grad_out: Any = None, grad_out_name: str = "grad_out"):
    """A cross-entropy call validated and converted by cece._validation, then run."""
    call = prepare_cross_entropy(logits, target, axis, weight, sample_weight, ignore_index,
                                 label_smoothing, reduction, from_logits, z_loss, softcap,
                                 num_threads)
    in_place = False
    if grad_out is not None:
        grad_out = check_grad_out(grad_out, call, grad_out_name)
        in_place = same_memory(grad_out, call.logits)
    return _core.cross_entropy(call, want, grad_out, in_place)


def cross_entropy(logits: Any, target: Any, *, axis: int = -1, weight: Any = None,
                  sample_weight: Any = None, ignore_index: int = -100,
                  label_smoothing: float = 0.0, reduction: str = "mean",
                  from_logits: bool = True, z_loss: float = 0.0,
                  softcap: Optional[float] = None, num_threads: Optional[int] = None):
    loss = ready_cross_entropy(LOSS, logits, target, axis, weight, sample_weight, ignore_index,
                               label_smoothing, reduction, from_logits, z_loss, softcap,
                               num_threads, None)
    if loss is None:
        loss = _full_path(LOSS, logits, target, axis, weight, sample_weight, ignore_index,
                          label_smoothing, reduction, from_logits, z_loss, softcap, num_threads)
    return loss


cross_entropy.__doc__ = _doc("""Softmax cross-entropy between ``logits`` and ``target``.

For each position, with ``p = softmax(logits)`` along ``axis`` and the target distribution
``t`` (one-hot of the label, or the given probabilities, then smoothed)::

    l = -sum_j w_j * t_j * log p_j  +  z_loss * logsumexp(logits)**2

computed in one max-shifted sweep (no overflow at any magnitude), then reduced.

Parameters
----------
%(common)s
Returns
-------
loss : numpy scalar or ndarray
    A scalar of the compute dtype for "mean" and "sum"; the batch-shaped array of
    ``s_i * l_i`` for "none".

Raises
------
TypeError, ValueError, IndexError
    For malformed arguments, naming the argument; an out-of-range label is reported with
    its position, e.g. ``target[3] = 12 is out of range for 10 classes``.

See Also
--------
cross_entropy_grad, cross_entropy_with_grad, cece.reference.cross_entropy

Examples
--------
>>> import numpy as np, cece
>>> logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
>>> labels = np.array([0, 1])
>>> float(cece.cross_entropy(logits, labels))  # doctest: +ELLIPSIS
0.3...
""")


def cross_entropy_grad(logits: Any, target: Any, *, axis: int = -1, weight: Any = None,
                       sample_weight: Any = None, ignore_index: int = -100,
                       label_smoothing: float = 0.0, reduction: str = "mean",
                       from_logits: bool = True, z_loss: float = 0.0,
                       softcap: Optional[float] = None, num_threads: Optional[int] = None,
                       out: Optional[np.ndarray] = None) -> np.ndarray:
    grad = ready_cross_entropy(GRAD, logits, target, axis, weight, sample_weight, ignore_index,
                               label_smoothing, reduction, from_logits, z_loss, softcap,
                               num_threads, out)
    if grad is None:
        grad = _full_path(GRAD, logits, target, axis, weight, sample_weight, ignore_index,
                          label_smoothing, reduction, from_logits, z_loss, softcap, num_threads,
                          out, "out")
    return grad


cross_entropy_grad.__doc__ = _doc("""Gradient of :func:`cross_entropy` with respect to ``logits``.

With ``p = softmax(logits)``, ``a_j = w_j * t_j`` and ``A = sum_j a_j``, each position's
row is ``s_i * ((A + 2 * z_loss * lse) * p_j - a_j)`` (times the softcap's chain rule
``1 - tanh^2``), divided by the mean's denominator for "mean". For "none" it is the gradient
of ``sum_i s_i * l_i``, so ``sample_weight`` acts as the upstream gradient.

Parameters
----------
%(common)s    out : ndarray, optional
        Where to write the gradient: C-contiguous, of the compute dtype and logits' shape.
        It may be ``logits`` itself (in place: no new N x C array at all).

Returns
-------
grad : ndarray
    Same shape as ``logits``, compute dtype.

Examples
--------
>>> import numpy as np, cece
>>> logits = np.zeros((2, 3))
>>> cece.cross_entropy_grad(logits, np.array([0, 2]), reduction="sum").round(3)
array([[-0.667,  0.333,  0.333],
       [ 0.333,  0.333, -0.667]])
""")


def cross_entropy_with_grad(logits: Any, target: Any, *, axis: int = -1, weight: Any = None,
                            sample_weight: Any = None, ignore_index: int = -100,
                            label_smoothing: float = 0.0, reduction: str = "mean",
                            from_logits: bool = True, z_loss: float = 0.0,
                            softcap: Optional[float] = None,
                            num_threads: Optional[int] = None,
                            grad_out: Optional[np.ndarray] = None):
    result = ready_cross_entropy(LOSS_AND_GRAD, logits, target, axis, weight, sample_weight,
                                 ignore_index, label_smoothing, reduction, from_logits, z_loss,
                                 softcap, num_threads, grad_out)
    if result is None:
        result = _full_path(LOSS_AND_GRAD, logits, target, axis, weight, sample_weight,
                            ignore_index, label_smoothing, reduction, from_logits, z_loss,
                            softcap, num_threads, grad_out)
    return result


cross_entropy_with_grad.__doc__ = _doc("""Loss and gradient in one sweep over the logits.

The training-loop call: the same loss as :func:`cross_entropy` and the same gradient as
:func:`cross_entropy_grad`, computed together (the logits are read once per row).

Parameters
----------
%(common)s    grad_out : ndarray, optional
        Where to write the gradient; may be ``logits`` itself for an in-place backward.

Returns
-------
loss : numpy scalar or ndarray
grad : ndarray

Examples
--------
>>> import numpy as np, cece
>>> rng = np.random.default_rng(0)
>>> W = rng.normal(size=(4, 3)); X = rng.normal(size=(8, 4)); y = rng.integers(0, 3, 8)
>>> loss, dlogits = cece.cross_entropy_with_grad(X @ W, y)
>>> W -= 0.1 * (X.T @ dlogits)  # one step of gradient descent
""")


def _prepare_x(x: Any, axis: Any, num_threads: Any):
    threads = check_num_threads(num_threads)
    arr = as_compute_array(x, "x")
    ax = normalize_axis(axis, arr.ndim)
    outer, classes, inner = split_shape(arr.shape, ax, "x")
    return arr, ax, outer, classes, inner, threads


def _normalize(op: int, x: Any, axis: Any, out: Any, num_threads: Any):
    """The full path of log_softmax, softmax and logsumexp (which passes no out)."""
    arr, ax, outer, classes, inner, threads = _prepare_x(x, axis, num_threads)
    if out is not None:
        out = check_normalize_out(out, arr, x)
    return _core.normalize(op, arr, ax, outer, classes, inner, out, threads)


def log_softmax(x: Any, axis: int = -1, *, out: Optional[np.ndarray] = None,
                num_threads: Optional[int] = None) -> np.ndarray:
    """``x - logsumexp(x, axis)``, max-shifted, in one kernel call.

    Parameters
    ----------
    x : array_like
    axis : int, default -1
    out : ndarray, optional
        C-contiguous, compute dtype, x's shape; may be ``x`` itself.
    num_threads : int, optional

    Examples
    --------
    >>> import numpy as np, cece
    >>> cece.log_softmax(np.array([0.0, 0.0])).round(4)
    array([-0.6931, -0.6931])
    """
    y = ready_normalize(_core.LOG_SOFTMAX, x, axis, out, num_threads)
    return _normalize(_core.LOG_SOFTMAX, x, axis, out, num_threads) if y is None else y


def softmax(x: Any, axis: int = -1, *, out: Optional[np.ndarray] = None,
            num_threads: Optional[int] = None) -> np.ndarray:
    """``exp(x - logsumexp(x, axis))``: rows that sum to 1, with no overflow.

    Parameters
    ----------
    x : array_like
    axis : int, default -1
    out : ndarray, optional
        C-contiguous, compute dtype, x's shape; may be ``x`` itself.
    num_threads : int, optional

    Examples
    --------
    >>> import numpy as np, cece
    >>> cece.softmax(np.array([1000.0, 1000.0]))
    array([0.5, 0.5])
    """
    y = ready_normalize(_core.SOFTMAX, x, axis, out, num_threads)
    return _normalize(_core.SOFTMAX, x, axis, out, num_threads) if y is None else y


def logsumexp(x: Any, axis: int = -1, *, num_threads: Optional[int] = None):
    """``log(sum(exp(x), axis))`` computed as ``m + log(sum(exp(x - m)))``, m the max.

    The class axis is removed; a 1-d input gives a NumPy scalar. A row that is all -inf
    gives NaN (as DESIGN.md's cross-entropy rules), a row holding +inf gives NaN.

    Examples
    --------
    >>> import numpy as np, cece
    >>> float(cece.logsumexp(np.array([1000.0, 1000.0])))  # doctest: +ELLIPSIS
    1000.693...
    """
    y = ready_normalize(_core.LOGSUMEXP, x, axis, None, num_threads)
    return _normalize(_core.LOGSUMEXP, x, axis, None, num_threads) if y is None else y
