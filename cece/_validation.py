"""Every argument check of cece's public API, in one place.

The functions here turn what the user passed into arrays the kernels can take as they are
(C-contiguous, native byte order, the compute dtype) and raise TypeError / ValueError /
IndexError naming the argument otherwise. They never write into the caller's arrays.
`cece.reference` uses the same checks, so both implementations accept and reject the same
calls.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Any, NamedTuple, Optional

import numpy as np

REDUCTIONS = ("none", "sum", "mean")

# Keras's backend.epsilon(): probabilities are clipped to [EPSILON, 1 - EPSILON].
EPSILON = 1e-7

_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)
_INT64 = np.dtype(np.int64)


class CrossEntropyCall(NamedTuple):
    """A validated cross-entropy call: arrays ready for a kernel, options checked."""

    logits: np.ndarray  # C-contiguous, compute dtype, the caller's shape
    axis: int  # class axis, non-negative
    outer: int  # product of the dimensions before the class axis
    classes: int  # C
    inner: int  # product of the dimensions after the class axis
    batch_shape: tuple[int, ...]
    labels: Optional[np.ndarray]  # int64, batch shape (integer targets)
    target: np.ndarray  # the target as the caller gave it (for error messages)
    probs: Optional[np.ndarray]  # compute dtype, logits' shape (probability targets)
    weight: Optional[np.ndarray]  # float64, (C,)
    sample_weight: Optional[np.ndarray]  # float64, batch shape
    ignore_index: int
    label_smoothing: float
    reduction: str
    from_logits: bool
    z_loss: float
    softcap: Optional[float]
    num_threads: int  # 0 = OpenMP's default
    inputs: tuple  # (name, argument as passed) for the overlap checks of grad_out


def compute_dtype(dtype: np.dtype, name: str) -> np.dtype:
    """The dtype cece computes in for an input of `dtype` (DESIGN.md's dtype rules)."""
    if dtype == _FLOAT32 or dtype == _FLOAT64:
        return dtype.newbyteorder("=")
    kind = dtype.kind
    if kind == "f":
        return _FLOAT32 if dtype.itemsize <= 4 else _FLOAT64
    if kind in "iub":
        return _FLOAT64
    raise TypeError(
        f"{name} has dtype {dtype}; expected a real floating, integer or bool dtype"
    )


def as_array(x: Any, name: str) -> np.ndarray:
    if x is None:
        raise TypeError(f"{name} must be an array-like of numbers, got None")
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested sequences and the like
        raise TypeError(f"{name} could not be converted to an array: {exc}") from None


def as_compute_array(x: Any, name: str) -> np.ndarray:
    """`x` as a C-contiguous array of its compute dtype (a copy only when needed)."""
    if type(x) is np.ndarray and x.ndim and (x.dtype is _FLOAT32 or x.dtype is _FLOAT64) \
            and x.flags.c_contiguous:
        return x  # the common call, at the cost of four attribute reads
    arr = as_array(x, name)
    dtype = compute_dtype(arr.dtype, name)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the class axis), got a scalar")
    return np.asarray(arr, dtype=dtype, order="C")


def normalize_axis(axis: Any, ndim: int, name: str = "axis") -> int:
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(axis).__name__}") from None
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(
            f"{name}={axis} is out of bounds for an array of dimension {ndim}"
        )
    return axis % ndim


def split_shape(shape: tuple[int, ...], axis: int, name: str) -> tuple[int, int, int]:
    classes = shape[axis]
    if classes == 0:
        raise ValueError(f"{name} has 0 classes along axis {axis}; at least 1 is needed")
    if axis == len(shape) - 1:
        return math.prod(shape) // classes, classes, 1
    return math.prod(shape[:axis]), classes, math.prod(shape[axis + 1 :])


def check_num_threads(num_threads: Any) -> int:
    if num_threads is None:
        return 0
    if isinstance(num_threads, bool):
        raise TypeError("num_threads must be None or a positive integer, got bool")
    try:
        n = operator.index(num_threads)
    except TypeError:
        raise TypeError(
            f"num_threads must be None or a positive integer, got {type(num_threads).__name__}"
        ) from None
    if n <= 0:
        raise ValueError(f"num_threads must be a positive integer, got {n}")
    return n


def _real_number(value: Any, name: str) -> float:
    # Not float(value): that would take the string "0.1" and 0-d or 1-element arrays.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def check_options(label_smoothing, reduction, from_logits, z_loss, softcap, ignore_index,
                  num_threads):
    """The scalar options, checked: (label_smoothing, from_logits, z_loss, softcap,
    ignore_index, num_threads) as the kernels take them; reduction is checked and then used
    as given. Cached, since a training loop passes the same ones."""
    try:
        return _checked_options(label_smoothing, reduction, from_logits, z_loss, softcap,
                                ignore_index, num_threads)
    except TypeError:  # an unhashable option: check it uncached, to raise the right error
        return _checked_options.__wrapped__(label_smoothing, reduction, from_logits, z_loss,
                                            softcap, ignore_index, num_threads)


@functools.lru_cache(maxsize=256, typed=True)
def _checked_options(label_smoothing, reduction, from_logits, z_loss, softcap, ignore_index,
                     num_threads):
    eps = _real_number(label_smoothing, "label_smoothing")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {eps}")
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of 'none', 'sum', 'mean', got {reduction!r}")
    if not isinstance(from_logits, (bool, np.bool_)):
        raise TypeError(f"from_logits must be a bool, got {type(from_logits).__name__}")
    lam = _real_number(z_loss, "z_loss")
    if not (math.isfinite(lam) and lam >= 0.0):
        raise ValueError(f"z_loss must be a finite number >= 0, got {lam}")
    cap = None
    if softcap is not None:
        cap = _real_number(softcap, "softcap")
        if not (math.isfinite(cap) and cap > 0.0):
            raise ValueError(f"softcap must be None or a finite number > 0, got {cap}")
    if not from_logits and (lam != 0.0 or cap is not None):
        raise ValueError("z_loss and softcap need from_logits=True")
    if isinstance(ignore_index, (bool, np.bool_)):
        raise TypeError("ignore_index must be an integer, got bool")
    try:
        ignore = operator.index(ignore_index)
    except TypeError:
        raise TypeError(
            f"ignore_index must be an integer, got {type(ignore_index).__name__}"
        ) from None
    if not -(2**63) <= ignore < 2**63:
        raise ValueError(f"ignore_index={ignore} does not fit in a 64-bit integer")
    return eps, bool(from_logits), lam, cap, ignore, check_num_threads(num_threads)


def _weights(x: Any, name: str, shape: tuple[int, ...], nonnegative: bool) -> Optional[np.ndarray]:
    if x is None:
        return None
    arr = as_array(x, name)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} has dtype {arr.dtype}; expected a real floating or integer dtype")
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}; expected {shape}")
    arr = np.asarray(arr, dtype=_FLOAT64, order="C")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (it contains NaN or inf)")
    if nonnegative and (arr < 0).any():
        raise ValueError(f"{name} must be >= 0 (it contains negative values)")
    return arr


def _mean_exponent(w: Optional[np.ndarray]) -> int:
    """The power of two that brings the weights' largest magnitude near one for
    reduction="mean" (0 when it lies within 2**+-60 already, or there are no weights).

    The mean's loss and gradient do not change when every sample weight (or, with integer
    targets, every class weight) is multiplied by the same number: it cancels against the
    denominator D. With a power of two the multiplication is exact, so nothing changes at
    all, except that D, 1/D and s/D stay in range: weights of 1e-310 would make 1/D overflow
    to inf before it meets the weights in the gradient's numerator.
    """
    if w is None:
        return 0
    top = float(np.abs(w).max(initial=0.0))
    if top == 0.0 or 2.0**-60 <= top <= 2.0**60:
        return 0
    return -math.frexp(top)[1]


def _scaled(w: Optional[np.ndarray], k: int) -> Optional[np.ndarray]:
    if w is None or k == 0:
        return w
    # out=: an array even for the 0-d sample weight of a 1-d call (ldexp gives a scalar there)
    return np.ldexp(w, k, out=np.empty_like(w))


def _exact_ldexp(v: float, k: int) -> Optional[float]:
    """v * 2**k when that is exact (no overflow, no rounding into the subnormals), else None."""
    try:
        r = math.ldexp(v, k)
    except OverflowError:
        return None
    return r if math.ldexp(r, -k) == v else None


def _target(target: Any, logits: np.ndarray, batch_shape: tuple[int, ...], classes: int):
    """(labels, probs, original) for the target's two forms, told apart by dtype."""
    t = target if type(target) is np.ndarray else as_array(target, "target")
    kind = t.dtype.kind
    if kind in "iu":
        if t.dtype is _INT64 and t.flags.c_contiguous and t.shape == batch_shape:
            return t, None, t
        if t.shape != batch_shape:
            raise ValueError(
                f"target holds class indices (dtype {t.dtype}) so its shape must be the "
                f"logits' shape without the class axis, {batch_shape}; got {t.shape}"
            )
        if t.dtype.kind == "u" and t.dtype.itemsize == 8:
            # Values from 2**63 up would wrap to negative int64s, and could wrap onto
            # ignore_index: they are out of range whatever the number of classes.
            huge = np.flatnonzero(t >= np.uint64(2**63))
            if huge.size:
                raise label_error(t, int(huge[0]), classes)
        return np.asarray(t, dtype=_INT64, order="C"), None, t
    if kind == "f":
        if t.shape != logits.shape:
            raise ValueError(
                f"target holds probabilities (dtype {t.dtype}) so its shape must be the "
                f"logits' shape {logits.shape}; got {t.shape}"
            )
        return None, np.asarray(t, dtype=logits.dtype, order="C"), t
    raise TypeError(
        f"target has dtype {t.dtype}; expected integer class indices or floating "
        "probabilities"
    )


def label_error(target: np.ndarray, position: int, classes: int) -> IndexError:
    """The error for an out-of-range label at flat `position` of the batch."""
    index = np.unravel_index(position, target.shape)
    where = "target" + (f"[{', '.join(str(int(i)) for i in index)}]" if index else "")
    return IndexError(f"{where} = {target[index]} is out of range for {classes} classes")


def prepare_cross_entropy(
    logits: Any,
    target: Any,
    axis: Any,
    weight: Any,
    sample_weight: Any,
    ignore_index: Any,
    label_smoothing: Any,
    reduction: Any,
    from_logits: Any,
    z_loss: Any,
    softcap: Any,
    num_threads: Any,
) -> CrossEntropyCall:
    eps, from_logits, lam, cap, ignore, threads = check_options(
        label_smoothing, reduction, from_logits, z_loss, softcap, ignore_index, num_threads
    )
    z = as_compute_array(logits, "logits")
    ax = normalize_axis(axis, z.ndim)
    outer, classes, inner = split_shape(z.shape, ax, "logits")
    batch_shape = z.shape[:ax] + z.shape[ax + 1 :]
    labels, probs, original = _target(target, z, batch_shape, classes)
    w = _weights(weight, "weight", (classes,), nonnegative=True)
    sw = _weights(sample_weight, "sample_weight", batch_shape, nonnegative=False)
    if reduction == "mean":
        sw = _scaled(sw, _mean_exponent(sw))
        # Class weights only with integer targets: probability targets' D is sum(s), their
        # mean scales with w. z_loss's term carries no class weight, so it is scaled with
        # them, exactly, or neither is.
        k = _mean_exponent(w) if labels is not None else 0
        lam_k = _exact_ldexp(lam, k) if k else None
        if lam_k is not None:
            w, lam = _scaled(w, k), lam_k
    return CrossEntropyCall(
        z, ax, outer, classes, inner, batch_shape, labels, original, probs, w, sw,
        ignore, eps, reduction, from_logits, lam, cap, threads,
        (("logits", logits), ("target", target), ("weight", weight),
         ("sample_weight", sample_weight)),
    )


def check_out(out: Any, like: np.ndarray, name: str) -> np.ndarray:
    """`out` must be exactly what the kernel would allocate: dtype, shape, C order, writeable."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != like.dtype or not out.dtype.isnative:
        raise ValueError(f"{name} has dtype {out.dtype}; expected {like.dtype}")
    if out.shape != like.shape:
        raise ValueError(f"{name} has shape {out.shape}; expected {like.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


def same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """True when `a` and `b` are the very same elements (an in-place call)."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
    )


def _check_overlaps(out: np.ndarray, name: str, inputs, in_place_name: str,
                    in_place_of: np.ndarray) -> None:
    """`out` may share memory with no input, except by being the input `in_place_name`
    exactly (an in-place call on an input that needed no copy). The same array passed as
    another argument too (logits as their own probability target) is still an overlap: the
    sweep would overwrite that argument while reading it."""
    for input_name, arg in inputs:
        if isinstance(arg, np.ndarray) and np.may_share_memory(out, arg):
            if (input_name == in_place_name and arg is in_place_of
                    and same_memory(out, in_place_of)):
                continue
            in_place = input_name == in_place_name
            raise ValueError(f"{name} must not overlap {input_name}"
                             + (" unless it is that very array" if in_place else ""))


def check_grad_out(grad_out: Any, call: CrossEntropyCall, name: str = "grad_out") -> np.ndarray:
    out = check_out(grad_out, call.logits, name)
    _check_overlaps(out, name, call.inputs, "logits", call.logits)
    return out


def check_normalize_out(out: Any, arr: np.ndarray, x: Any) -> np.ndarray:
    """`out` for softmax / log_softmax of `x` (converted to `arr`); it may be x itself."""
    out = check_out(out, arr, "out")
    _check_overlaps(out, "out", (("x", x),), "x", arr)
    return out
