"""The ready path (cece._core.ready_*): a call whose arrays cece._validation would pass on
unchanged skips it and runs at once, since a small call is mostly that overhead.

Guarded here: a call the ready path takes gives bitwise the result (value, dtype, shape,
type) of the full path on the same values passed in a form that needs converting; the ready
path takes the calls it should (else the comparison would prove nothing) and none that the
full path would convert, copy or reject, so every error and its message stays
cece._validation's; and it writes into no input.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from cece_testing import make_labels, make_logits, make_positive, make_probs

import cece
from cece import _core

CE_FUNCTIONS = {
    "cross_entropy": _core.LOSS,
    "cross_entropy_grad": _core.GRAD,
    "cross_entropy_with_grad": _core.LOSS_AND_GRAD,
}
NORMALIZE_FUNCTIONS = {
    "log_softmax": _core.LOG_SOFTMAX,
    "softmax": _core.SOFTMAX,
    "logsumexp": _core.LOGSUMEXP,
}
CE_DEFAULTS = dict(axis=-1, weight=None, sample_weight=None, ignore_index=-100,
                   label_smoothing=0.0, reduction="mean", from_logits=True, z_loss=0.0,
                   softcap=None, num_threads=None)
SWAPPED = ">" if sys.byteorder == "little" else "<"


def ready_ce(name, logits, target, grad_out=None, **kwargs):
    """What the ready path returns for this call (None: it leaves it to the full path)."""
    o = {**CE_DEFAULTS, **kwargs}
    return _core.ready_cross_entropy(
        CE_FUNCTIONS[name], logits, target, o["axis"], o["weight"], o["sample_weight"],
        o["ignore_index"], o["label_smoothing"], o["reduction"], o["from_logits"],
        o["z_loss"], o["softcap"], o["num_threads"], grad_out)


def ready_normalize(name, x, axis=-1, out=None, num_threads=None):
    return _core.ready_normalize(NORMALIZE_FUNCTIONS[name], x, axis, out, num_threads)


def assert_bitwise(actual, expected):
    assert type(actual) is type(expected)
    if isinstance(expected, tuple):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_bitwise(a, e)
        return
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.dtype == e.dtype and a.shape == e.shape
    assert a.tobytes() == e.tobytes()


class Sub(np.ndarray):
    pass


def unready_floats(x):
    """x's values in arrays and objects that the full path converts or copies."""
    if x.shape[0] > 1:  # with one row or none, every second row is still C-contiguous
        big = np.zeros((2 * x.shape[0],) + x.shape[1:], x.dtype)
        big[::2] = x
        yield "strided", big[::2]
    yield "byteswapped", x.astype(x.dtype.newbyteorder(SWAPPED))
    yield "subclass", x.view(Sub)
    if not np.asfortranarray(x).flags.c_contiguous:
        yield "fortran", np.asfortranarray(x)
    if x.dtype == np.float64:
        if x.size:  # an empty list has lost the shape
            yield "list", x.tolist()
    else:  # the tests' float32 values are float16 values
        yield "float16", x.astype(np.float16)  # computed in float32, from the same values
        yield "float64-probs", x.astype(np.float64)  # only a target: cast to logits' dtype


def unready_labels(y):
    yield "int32", y.astype(np.int32)
    yield "byteswapped", y.astype(np.dtype(np.int64).newbyteorder(SWAPPED))
    if y.ndim and y.shape[0] > 1:
        big = np.zeros((2 * y.shape[0],) + y.shape[1:], np.int64)
        big[::2] = y
        yield "strided", big[::2]
    if y.size:
        yield "list", y.tolist()
    yield "subclass", y.view(Sub)


def f16_exact(rng, shape, dtype):
    """Logits that float16 holds exactly, so a float16 copy computes the same numbers."""
    return make_logits(rng, shape, np.float16).astype(dtype)


CASES = [  # (shape, axis, target kind, options)
    ((32, 10), -1, "labels", {}),
    ((32, 10), -1, "labels", {"reduction": "none"}),
    ((32, 10), -1, "labels", {"reduction": "sum", "num_threads": 1}),
    ((32, 10), -1, "labels", {"ignore_index": 3, "label_smoothing": 0.1}),
    ((32, 10), -1, "labels", {"z_loss": 1e-3, "softcap": 5.0, "reduction": "none"}),
    ((32, 10), -1, "probs", {}),
    ((32, 10), -1, "probs", {"from_logits": False, "reduction": "sum"}),
    ((3, 4, 5), 1, "labels", {"reduction": "none"}),
    ((3, 4, 5), 0, "probs", {"label_smoothing": 0.2}),
    ((7,), 0, "labels", {"reduction": "none"}),  # a 0-d batch: "none" gives a scalar
    ((0, 10), -1, "labels", {}),  # empty batch: mean is nan
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[2]}-{c[3]}")
@pytest.mark.parametrize("name", list(CE_FUNCTIONS))
def test_cross_entropy_ready_equals_full(rng, name, case, dtype):
    shape, axis, kind, options = case
    batch = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    if options.get("from_logits") is False:
        x = make_positive(rng, shape, np.float16).astype(dtype)
    else:
        x = f16_exact(rng, shape, dtype)
    if kind == "labels":
        target = make_labels(rng, batch, shape[axis])
        if "ignore_index" in options:
            target.reshape(-1)[::4] = options["ignore_index"]
    else:
        target = make_probs(rng, shape, axis, np.float16).astype(dtype)
    fn = getattr(cece, name)
    kwargs = dict(axis=axis, **options)
    x_before, target_before = x.copy(), target.copy()
    assert ready_ce(name, x, target, **kwargs) is not None
    expected = fn(x, target, **kwargs)
    assert np.array_equal(x, x_before) and np.array_equal(target, target_before)
    assert_bitwise(ready_ce(name, x, target, **kwargs), expected)

    variants = [("logits " + v, xv, target) for v, xv in unready_floats(x) if v != "float64-probs"]
    variants += [("target " + v, x, tv) for v, tv in
                 (unready_labels(target) if kind == "labels" else unready_floats(target))]
    variants.append(("axis np.int64", x, target))
    for what, xv, tv in variants:
        kw = dict(kwargs, axis=np.int64(axis)) if what == "axis np.int64" else kwargs
        assert ready_ce(name, xv, tv, **kw) is None, what
        assert_bitwise(fn(xv, tv, **kw), expected)


@pytest.mark.parametrize("name", ["cross_entropy", "cross_entropy_grad", "cross_entropy_with_grad"])
def test_weights_take_the_full_path(rng, name):
    x = make_logits(rng, (32, 10), np.float32)
    y = make_labels(rng, (32,), 10)
    assert ready_ce(name, x, y, weight=np.ones(10)) is None
    assert ready_ce(name, x, y, sample_weight=np.ones(32)) is None
    # weights of one: the same numbers, from the kernel variant that takes weights (which
    # forms the weighted products in float64, the plain one in float32): within two ulps
    weighted = getattr(cece, name)(x, y, weight=np.ones(10), sample_weight=np.ones(32))
    plain = getattr(cece, name)(x, y)
    pairs = zip(weighted, plain) if isinstance(plain, tuple) else [(weighted, plain)]
    for a, b in pairs:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=2 * np.finfo(np.float32).eps,
                                   atol=2 * np.finfo(np.float32).eps * np.abs(b).max())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,out_name", [("cross_entropy_grad", "out"),
                                           ("cross_entropy_with_grad", "grad_out")])
def test_grad_out_ready_equals_full(rng, name, out_name, reduction):
    x = f16_exact(rng, (32, 10), np.float32)
    y = make_labels(rng, (32,), 10)
    fn = getattr(cece, name)
    expected = fn(x, y, reduction=reduction)

    buffer = np.full_like(x, np.nan)
    assert ready_ce(name, x, y, grad_out=buffer, reduction=reduction) is not None
    assert_bitwise(fn(x, y, reduction=reduction, **{out_name: buffer}), expected)

    in_place = x.copy()  # the very logits array: ready, in place
    assert ready_ce(name, in_place.copy(), y, grad_out=None, reduction=reduction) is not None
    result = fn(in_place, y, reduction=reduction, **{out_name: in_place})
    assert_bitwise(result, expected)
    assert (result[1] if isinstance(result, tuple) else result) is in_place

    # the same memory as another object, and an unready out: both the full path's
    view_of = x.copy()
    assert ready_ce(name, view_of.view(), y, grad_out=view_of, reduction=reduction) is None
    assert_bitwise(fn(view_of.view(), y, reduction=reduction, **{out_name: view_of}), expected)
    sub = np.empty_like(x).view(Sub)
    assert ready_ce(name, x, y, grad_out=sub, reduction=reduction) is None
    result = fn(x, y, reduction=reduction, **{out_name: sub})
    grad, expected_grad = (result[1], expected[1]) if isinstance(result, tuple) else (result, expected)
    assert grad is sub and grad.tobytes() == expected_grad.tobytes()


@pytest.mark.parametrize("name,out_name", [("cross_entropy_grad", "out"),
                                           ("cross_entropy_with_grad", "grad_out")])
def test_bad_grad_out_is_left_to_validation(rng, name, out_name):
    x = make_logits(rng, (8, 5), np.float32)
    y = make_labels(rng, (8,), 5)
    t = make_probs(rng, (8, 5), -1, np.float32)
    fn = getattr(cece, name)
    read_only = np.empty_like(x)
    read_only.flags.writeable = False
    frozen_logits = x.copy()
    frozen_logits.flags.writeable = False
    big = np.empty((16, 5), np.float32)
    bad = [
        (x, y, read_only, "read-only"),
        (frozen_logits, y, frozen_logits, "read-only"),
        (x, t, t, "overlap"),  # the target as grad_out
        (x, y, np.empty((8, 5), np.float64), "dtype"),
        (x, y, np.empty((5, 8), np.float32), "shape"),
        (x, y, np.empty((8, 5), np.float32, order="F"), "C-contiguous"),
        (x, y, np.empty((8, 5), np.dtype(np.float32).newbyteorder(SWAPPED)), "dtype"),
        (big[:8], big[4:12], big[4:12], "overlap"),
    ]
    for logits, target, out, words in bad:
        assert ready_ce(name, logits, target, grad_out=out) is None, words
        with pytest.raises(ValueError, match=out_name) as info:
            fn(logits, target, **{out_name: out})
        assert words in str(info.value)
    # logits as target and grad_out: cece._validation lets it through, the ready path
    # does not take it
    assert ready_ce(name, x, x, grad_out=x) is None


def test_errors_are_validations_own(rng):
    """Ready arrays with a bad option or label: the same exception and message as the
    full path gives for unready arrays of the same values."""
    x = make_logits(rng, (8, 5), np.float32)
    y = make_labels(rng, (8,), 5)
    y_bad = y.copy()
    y_bad[3] = 12
    calls = [
        (y, dict(reduction="avg")),
        (y, dict(label_smoothing=1.5)),
        (y, dict(from_logits=1)),
        (y, dict(ignore_index=-100.0)),
        (y, dict(num_threads=0)),
        (y, dict(num_threads=True)),
        (y, dict(z_loss=0.1, from_logits=False)),
        (y, dict(softcap=[1.0])),
        (y, dict(axis=2)),
        (y_bad, dict()),
        (y_bad, dict(reduction="none")),
    ]
    for name in CE_FUNCTIONS:
        fn = getattr(cece, name)
        for target, kwargs in calls:
            with pytest.raises((TypeError, ValueError, IndexError)) as ready:
                fn(x, target, **kwargs)
            with pytest.raises(ready.type) as full:
                fn(x.tolist(), target.tolist(), **kwargs)
            assert str(ready.value) == str(full.value), (name, kwargs)
    assert "target[3] = 12 is out of range for 5 classes" in str(ready.value)


def test_in_place_with_a_bad_label_writes_nothing(rng):
    x = make_logits(rng, (8, 5), np.float32)
    y = make_labels(rng, (8,), 5)
    y[6] = -1
    before = x.copy()
    for reduction in ("mean", "sum", "none"):
        with pytest.raises(IndexError, match=r"target\[6\] = -1"):
            cece.cross_entropy_with_grad(x, y, reduction=reduction, grad_out=x)
        assert np.array_equal(x, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape,axis", [((32, 10), -1), ((3, 4, 5), 1), ((7,), 0),
                                        ((0, 10), -1), ((4, 3), 0)])
@pytest.mark.parametrize("name", list(NORMALIZE_FUNCTIONS))
def test_normalize_ready_equals_full(rng, name, shape, axis, dtype):
    x = f16_exact(rng, shape, dtype)
    fn = getattr(cece, name)
    before = x.copy()
    assert ready_normalize(name, x, axis) is not None
    expected = fn(x, axis=axis)
    assert np.array_equal(x, before)
    assert_bitwise(ready_normalize(name, x, axis), expected)
    assert_bitwise(fn(x, axis=axis, num_threads=1), expected)
    for what, xv in unready_floats(x):
        if what == "float64-probs":
            continue
        assert ready_normalize(name, xv, axis) is None, what
        assert_bitwise(fn(xv, axis=axis), expected)
    assert ready_normalize(name, x, np.int64(axis)) is None
    assert_bitwise(fn(x, axis=np.int64(axis)), expected)
    if name == "logsumexp":
        return
    buffer = np.full_like(x, np.nan)
    assert (ready_normalize(name, x, axis, out=buffer) is not None) == (x.size > 0)
    assert_bitwise(fn(x, axis=axis, out=buffer), expected)
    in_place = x.copy()
    assert fn(in_place, axis=axis, out=in_place) is in_place
    assert_bitwise(in_place, expected)
    same_memory = x.copy()
    assert ready_normalize(name, same_memory.view(), axis, out=same_memory) is None
    assert_bitwise(fn(same_memory.view(), axis=axis, out=same_memory), expected)


def test_normalize_bad_out_and_threads_are_left_to_validation(rng):
    x = make_logits(rng, (8, 5), np.float32)
    read_only = np.empty_like(x)
    read_only.flags.writeable = False
    big = np.zeros((16, 5), np.float32)
    for out in (read_only, np.empty((8, 5), np.float64), np.empty((5, 8), np.float32),
                np.asfortranarray(np.empty((8, 5), np.float32))):
        assert ready_normalize("softmax", x, out=out) is None
    assert ready_normalize("softmax", big[:8], out=big[1:9]) is None
    with pytest.raises(ValueError, match="out must not overlap x"):
        cece.softmax(big[:8], out=big[1:9])
    with pytest.raises(ValueError, match="num_threads"):
        cece.softmax(x, num_threads=0)
    with pytest.raises(TypeError, match="num_threads"):
        cece.logsumexp(x, num_threads=2.0)
