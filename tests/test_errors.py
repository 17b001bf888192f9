"""Bad input: every malformed call raises the right class, with the argument's name in the
message, and leaves every input array unchanged (compared with copies taken before).

Each cross-entropy case runs through all three entry points (and the reference, which shares
the validation but has its own label check). Out-of-range labels are IndexErrors whose
message gives the position and the value: ``target[3] = 12 is out of range for 10 classes``.
"""

from __future__ import annotations

import numpy as np
import pytest

import cece
import cece.reference as ref

CE = ["cross_entropy", "cross_entropy_grad", "cross_entropy_with_grad"]
IMPLS = [cece, ref]
AxisError = np.exceptions.AxisError


def X(shape=(4, 3), dtype=np.float64):
    return (np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) * 0.3 - 1).astype(dtype)


def Y(n=4, C=3):
    return np.arange(n, dtype=np.int64) % C


def _readonly(a):
    a.flags.writeable = False
    return a


# (id, builder -> (logits, target, kwargs), exception, text the message must contain)
CE_CASES = [
    # logits
    ("logits_complex", lambda: (X().astype(complex), Y(), {}), TypeError, "logits"),
    ("logits_object", lambda: (np.array([[1.0, "a"], [2, 3]], dtype=object), Y(2), {}),
     TypeError, "logits"),
    ("logits_str", lambda: (np.array([["a", "b"], ["c", "d"]]), Y(2), {}), TypeError, "logits"),
    ("logits_str_scalar", lambda: ("abc", 0, {}), TypeError, "logits"),
    ("logits_datetime", lambda: (np.zeros((2, 3), "datetime64[s]"), Y(2), {}), TypeError,
     "logits"),
    ("logits_none", lambda: (None, Y(), {}), TypeError, "logits"),
    ("logits_ragged", lambda: ([[1.0, 2.0], [3.0]], Y(2), {}), TypeError, "logits"),
    ("logits_0d", lambda: (np.float64(1.5), np.int64(0), {}), ValueError, "logits"),
    ("logits_0d_array", lambda: (np.array(1.5), 0, {}), ValueError, "logits"),
    ("logits_C0", lambda: (np.zeros((3, 0)), Y(3), {}), ValueError, "logits"),
    ("logits_C0_axis1", lambda: (np.zeros((3, 0, 2)), np.zeros((3, 2), np.int64),
                                 {"axis": 1}), ValueError, "logits"),
    # target
    ("target_none", lambda: (X(), None, {}), TypeError, "target"),
    ("target_wrong_length", lambda: (X(), Y(5), {}), ValueError, "target"),
    ("target_extra_dim", lambda: (X(), Y().reshape(4, 1), {}), ValueError, "target"),
    ("target_0d_for_batch", lambda: (X(), np.int64(1), {}), ValueError, "target"),
    ("target_for_other_axis", lambda: (X((4, 3)), Y(3), {}), ValueError, "target"),
    ("target_bool", lambda: (X(), np.array([True, False, True, False]), {}), TypeError, "target"),
    ("target_complex", lambda: (X(), np.ones((4, 3), complex), {}), TypeError, "target"),
    ("target_str", lambda: (X(), np.array(["a", "b", "c", "d"]), {}), TypeError, "target"),
    ("target_float_wrong_shape", lambda: (X(), np.full((4,), 0.5), {}), ValueError, "target"),
    ("target_float_transposed", lambda: (X(), np.full((3, 4), 0.25), {}), ValueError, "target"),
    # weight
    ("weight_wrong_length", lambda: (X(), Y(), {"weight": np.ones(4)}), ValueError, "weight"),
    ("weight_2d", lambda: (X(), Y(), {"weight": np.ones((1, 3))}), ValueError, "weight"),
    ("weight_nan", lambda: (X(), Y(), {"weight": np.array([1.0, np.nan, 1.0])}), ValueError,
     "weight"),
    ("weight_inf", lambda: (X(), Y(), {"weight": np.array([1.0, np.inf, 1.0])}), ValueError,
     "weight"),
    ("weight_negative", lambda: (X(), Y(), {"weight": np.array([1.0, -0.5, 1.0])}), ValueError,
     "weight"),
    ("weight_complex", lambda: (X(), Y(), {"weight": np.ones(3, complex)}), TypeError, "weight"),
    ("weight_str", lambda: (X(), Y(), {"weight": np.array(["a", "b", "c"])}), TypeError, "weight"),
    # sample_weight
    ("sample_weight_wrong_shape", lambda: (X(), Y(), {"sample_weight": np.ones(3)}), ValueError,
     "sample_weight"),
    ("sample_weight_class_shape", lambda: (X(), Y(), {"sample_weight": np.ones((4, 3))}),
     ValueError, "sample_weight"),
    ("sample_weight_nan", lambda: (X(), Y(), {"sample_weight": np.array([1, np.nan, 1, 1])}),
     ValueError, "sample_weight"),
    ("sample_weight_inf", lambda: (X(), Y(), {"sample_weight": np.array([1, 1, -np.inf, 1])}),
     ValueError, "sample_weight"),
    # label_smoothing
    ("label_smoothing_negative", lambda: (X(), Y(), {"label_smoothing": -0.1}), ValueError,
     "label_smoothing"),
    ("label_smoothing_above_1", lambda: (X(), Y(), {"label_smoothing": 1.1}), ValueError,
     "label_smoothing"),
    ("label_smoothing_nan", lambda: (X(), Y(), {"label_smoothing": float("nan")}), ValueError,
     "label_smoothing"),
    ("reduction_unknown", lambda: (X(), Y(), {"reduction": "avg"}), ValueError, "reduction"),
    ("reduction_upper", lambda: (X(), Y(), {"reduction": "MEAN"}), ValueError, "reduction"),
    ("reduction_none_object", lambda: (X(), Y(), {"reduction": None}), ValueError, "reduction"),
    # axis
    ("axis_too_big", lambda: (X(), Y(), {"axis": 2}), AxisError, "axis"),
    ("axis_too_negative", lambda: (X(), Y(), {"axis": -3}), AxisError, "axis"),
    ("axis_1d", lambda: (X((5,)), 0, {"axis": 1}), AxisError, "axis"),
    ("axis_float", lambda: (X(), Y(), {"axis": 1.0}), TypeError, "axis"),
    # num_threads
    ("num_threads_0", lambda: (X(), Y(), {"num_threads": 0}), ValueError, "num_threads"),
    ("num_threads_negative", lambda: (X(), Y(), {"num_threads": -1}), ValueError, "num_threads"),
    ("num_threads_float", lambda: (X(), Y(), {"num_threads": 1.5}), TypeError, "num_threads"),
    ("num_threads_bool", lambda: (X(), Y(), {"num_threads": True}), TypeError, "num_threads"),
    ("num_threads_str", lambda: (X(), Y(), {"num_threads": "2"}), TypeError, "num_threads"),
    # softcap, z_loss, from_logits
    ("softcap_zero", lambda: (X(), Y(), {"softcap": 0.0}), ValueError, "softcap"),
    ("softcap_negative", lambda: (X(), Y(), {"softcap": -2.0}), ValueError, "softcap"),
    ("softcap_inf", lambda: (X(), Y(), {"softcap": float("inf")}), ValueError, "softcap"),
    ("softcap_nan", lambda: (X(), Y(), {"softcap": float("nan")}), ValueError, "softcap"),
    ("z_loss_negative", lambda: (X(), Y(), {"z_loss": -1e-4}), ValueError, "z_loss"),
    ("z_loss_inf", lambda: (X(), Y(), {"z_loss": float("inf")}), ValueError, "z_loss"),
    ("z_loss_nan", lambda: (X(), Y(), {"z_loss": float("nan")}), ValueError, "z_loss"),
    ("softcap_str", lambda: (X(), Y(), {"softcap": "1"}), TypeError, "softcap"),
    ("z_loss_str", lambda: (X(), Y(), {"z_loss": "0.1"}), TypeError, "z_loss"),
    ("z_loss_without_logits", lambda: (np.abs(X()) + 0.1, Y(),
                                       {"z_loss": 0.1, "from_logits": False}),
     ValueError, "from_logits"),
    ("softcap_without_logits", lambda: (np.abs(X()) + 0.1, Y(),
                                        {"softcap": 5.0, "from_logits": False}),
     ValueError, "from_logits"),
    ("from_logits_str", lambda: (X(), Y(), {"from_logits": "yes"}), TypeError, "from_logits"),
    ("from_logits_none", lambda: (X(), Y(), {"from_logits": None}), TypeError, "from_logits"),
    # ignore_index
    ("ignore_index_float", lambda: (X(), Y(), {"ignore_index": 1.5}), TypeError, "ignore_index"),
    ("ignore_index_bool", lambda: (X(), Y(), {"ignore_index": True}), TypeError, "ignore_index"),
    ("ignore_index_huge", lambda: (X(), Y(), {"ignore_index": 2**70}), ValueError,
     "ignore_index"),
]


def _snapshot(objs):
    return [(o, o.copy()) for o in objs if isinstance(o, np.ndarray)]


def _assert_unchanged(snapshot):
    for obj, before in snapshot:
        assert obj.dtype == before.dtype and obj.shape == before.shape
        assert obj.tobytes() == before.tobytes(), "an input was modified by a failing call"


@pytest.mark.parametrize("impl", IMPLS, ids=["cece", "reference"])
@pytest.mark.parametrize("func", CE)
@pytest.mark.parametrize("case_id,build,exc,name", CE_CASES, ids=[c[0] for c in CE_CASES])
def test_bad_argument(impl, func, case_id, build, exc, name):
    logits, target, kwargs = build()
    snap = _snapshot([logits, target, *kwargs.values()])
    with pytest.raises(exc) as info:
        getattr(impl, func)(logits, target, **kwargs)
    assert name in str(info.value), f"message {str(info.value)!r} does not name {name!r}"
    assert type(info.value) in (TypeError, ValueError, IndexError, AxisError)
    _assert_unchanged(snap)


def test_axis_error_is_value_and_index_error():
    with pytest.raises(ValueError):
        cece.cross_entropy(X(), Y(), axis=5)
    with pytest.raises(IndexError):
        cece.cross_entropy(X(), Y(), axis=5)
    with pytest.raises(IndexError):
        cece.softmax(X(), axis=-3)


# ---- labels out of range: IndexError with the position and the value -----------------------


def _bad_label_cases():
    big = np.zeros(16, np.int64)
    big[1::2] = [0, 1, 2, 12, 4, 5, 6, 7]  # the view big[1::2] holds 12 at position 3
    last = np.zeros(4096, np.int64)
    last[-1] = 10
    y2 = np.zeros((2, 3), np.int64)
    y2[1, 2] = 7
    # in a full block of short rows, labels whose low 32 bits are a class
    high = np.zeros(64, np.int64)
    high[37] = 2**32 + 3
    wrapped = np.zeros(64, np.int64)
    wrapped[40] = -(2**32) + 3
    return [
        ("above", X((5, 10)), np.array([0, 1, 2, 12, 4]), {}, r"target\[3\] = 12 is out of range for 10 classes"),
        ("equal_C", X((5, 10)), np.array([0, 10, 2, 3, 4]), {}, r"target\[1\] = 10 is out of range for 10 classes"),
        ("negative", X((5, 10)), np.array([0, 1, -1, 3, 4]), {}, r"target\[2\] = -1 is out of range for 10 classes"),
        ("int8_negative", X((5, 10)), np.array([0, 1, 2, 3, -5], np.int8), {}, r"target\[4\] = -5 is out of range for 10 classes"),
        ("uint8", X((3, 10)), np.array([0, 200, 1], np.uint8), {}, r"target\[1\] = 200 is out of range for 10 classes"),
        ("last_only", X((4096, 10)), last, {}, r"target\[4095\] = 10 is out of range for 10 classes"),
        ("non_contiguous", X((8, 10)), big[1::2], {}, r"target\[3\] = 12 is out of range for 10 classes"),
        ("two_dims", X((2, 3, 5)), y2, {}, r"target\[1, 2\] = 7 is out of range for 5 classes"),
        ("axis1", X((2, 5, 3)), y2, {"axis": 1}, r"target\[1, 2\] = 7 is out of range for 5 classes"),
        ("scalar", X((4,)), np.int64(4), {}, r"target = 4 is out of range for 4 classes"),
        ("python_int", X((4,)), -2, {}, r"target = -2 is out of range for 4 classes"),
        ("default_ignore_not_ignored", X((3, 4)), np.array([0, -100, 1]), {"ignore_index": 0},
         r"target\[1\] = -100 is out of range for 4 classes"),
        ("tiles", X((37, 3)), np.r_[np.zeros(36, np.int64), 3], {},
         r"target\[36\] = 3 is out of range for 3 classes"),
        ("high_half_f32", X((64, 10), np.float32), high, {},
         r"target\[37\] = 4294967299 is out of range for 10 classes"),
        ("high_half_f64", X((64, 10)), high, {},
         r"target\[37\] = 4294967299 is out of range for 10 classes"),
        ("wrapped_f32", X((64, 10), np.float32), wrapped, {},
         r"target\[40\] = -4294967293 is out of range for 10 classes"),
    ]


BAD_LABELS = _bad_label_cases()


@pytest.mark.parametrize("impl", IMPLS, ids=["cece", "reference"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("func", CE)
@pytest.mark.parametrize("case", BAD_LABELS, ids=[c[0] for c in BAD_LABELS])
def test_label_out_of_range(impl, func, reduction, case):
    _, logits, target, kwargs, message = case
    snap = _snapshot([logits, target])
    with pytest.raises(IndexError, match=message):
        getattr(impl, func)(logits, target, reduction=reduction, **kwargs)
    _assert_unchanged(snap)


@pytest.mark.parametrize("impl", IMPLS, ids=["cece", "reference"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("case", BAD_LABELS, ids=[c[0] for c in BAD_LABELS])
def test_label_out_of_range_in_place_leaves_logits(impl, reduction, case):
    """grad_out=logits with a bad label: the IndexError comes before any write."""
    _, logits, target, kwargs, message = case
    logits = logits.copy()
    before = logits.copy()
    with pytest.raises(IndexError, match=message):
        impl.cross_entropy_with_grad(logits, target, reduction=reduction, grad_out=logits,
                                     **kwargs)
    assert logits.tobytes() == before.tobytes()
    with pytest.raises(IndexError, match=message):
        impl.cross_entropy_grad(logits, target, reduction=reduction, out=logits, **kwargs)
    assert logits.tobytes() == before.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bad_label_in_place_with_options(dtype):
    x = X((64, 1000), dtype)
    y = np.arange(64) % 1000
    y[50] = 1000
    before = x.copy()
    for kwargs in ({"label_smoothing": 0.1, "softcap": 3.0, "z_loss": 0.1},
                   {"weight": np.ones(1000), "sample_weight": np.ones(64), "num_threads": 2}):
        with pytest.raises(IndexError, match=r"target\[50\] = 1000 is out of range"):
            cece.cross_entropy_with_grad(x, y, grad_out=x, reduction="sum", **kwargs)
        assert x.tobytes() == before.tobytes()


# ---- out / grad_out ---------------------------------------------------------------------------


def _out_cases():
    return [
        ("wrong_dtype", lambda x: np.empty(x.shape, np.float32), ValueError),
        ("wrong_shape", lambda x: np.empty((x.shape[0] + 1, x.shape[1])), ValueError),
        ("transposed_shape", lambda x: np.empty(x.shape[::-1]), ValueError),
        ("fortran", lambda x: np.asfortranarray(np.empty(x.shape)), ValueError),
        ("sliced", lambda x: np.empty((x.shape[0], 2 * x.shape[1]))[:, ::2], ValueError),
        ("read_only", lambda x: _readonly(np.empty(x.shape)), ValueError),
        ("byteswapped", lambda x: np.empty(x.shape, ">f8"), ValueError),
        ("list", lambda x: np.empty(x.shape).tolist(), TypeError),
        ("partial_overlap_with_logits", lambda x: x.reshape(-1)[1:].reshape(-1)[: x.size - 1],
         ValueError),
    ]


OUT_CASES = _out_cases()


@pytest.mark.parametrize("impl", IMPLS, ids=["cece", "reference"])
@pytest.mark.parametrize("case_id,make,exc", OUT_CASES, ids=[c[0] for c in OUT_CASES])
def test_bad_out(impl, case_id, make, exc):
    big = np.arange(13, dtype=np.float64) * 0.1
    x = big[:12].reshape(4, 3)
    if case_id == "partial_overlap_with_logits":
        out = big[1:13].reshape(4, 3)  # overlaps x, is not x
    else:
        out = make(x)
    y = Y()
    snap = _snapshot([big, y])
    out_before = out.copy() if isinstance(out, np.ndarray) else None
    with pytest.raises(exc) as info:
        impl.cross_entropy_grad(x, y, out=out)
    assert "out" in str(info.value)
    with pytest.raises(exc) as info:
        impl.cross_entropy_with_grad(x, y, grad_out=out)
    assert "grad_out" in str(info.value)
    _assert_unchanged(snap)
    if out_before is not None:
        assert out.tobytes() == out_before.tobytes()


@pytest.mark.parametrize("impl", IMPLS, ids=["cece", "reference"])
def test_grad_out_must_not_alias_the_target(impl):
    x = X()
    t = np.full((4, 3), 1 / 3)
    before = t.copy()
    with pytest.raises(ValueError, match="grad_out.*target"):
        impl.cross_entropy_with_grad(x, t, grad_out=t)
    with pytest.raises(ValueError, match="out.*target"):
        impl.cross_entropy_grad(x, t, out=t)
    assert np.array_equal(t, before)
    # a contiguous grad_out sharing memory with a strided probability target
    big = np.full((4, 6), 0.5)
    before = big.copy()
    with pytest.raises(ValueError, match="grad_out.*target"):
        impl.cross_entropy_with_grad(x, big[:, :3], grad_out=big.reshape(-1)[:12].reshape(4, 3))
    assert np.array_equal(big, before)
    # integer labels in the same memory as grad_out (an int64 view of a float64 buffer)
    buf = np.zeros((4, 3))
    labels = buf.reshape(-1).view(np.int64)[:4]
    with pytest.raises(ValueError, match="grad_out.*target"):
        impl.cross_entropy_with_grad(x, labels, grad_out=buf)
    assert np.all(buf == 0)


@pytest.mark.parametrize("impl", IMPLS, ids=["cece", "reference"])
def test_grad_out_must_not_alias_sample_weight(impl):
    x = X((3, 1))
    s = np.ones((3, 1))
    with pytest.raises(ValueError, match="grad_out.*sample_weight"):
        impl.cross_entropy_with_grad(x, np.zeros(3, np.int64), sample_weight=s[:, 0],
                                     grad_out=s)


# ---- softmax / log_softmax / logsumexp -----------------------------------------------------


NORM = ["softmax", "log_softmax", "logsumexp"]
NORM_CASES = [
    ("complex", lambda: (X().astype(complex), {}), TypeError, "x"),
    ("object", lambda: (np.array([[1, "a"]], dtype=object), {}), TypeError, "x"),
    ("none", lambda: (None, {}), TypeError, "x"),
    ("0d", lambda: (np.array(2.0), {}), ValueError, "x"),
    ("C0", lambda: (np.zeros((3, 0)), {}), ValueError, "x"),
    ("axis", lambda: (X(), {"axis": 2}), AxisError, "axis"),
    ("num_threads_0", lambda: (X(), {"num_threads": 0}), ValueError, "num_threads"),
    ("num_threads_float", lambda: (X(), {"num_threads": 1.5}), TypeError, "num_threads"),
]


@pytest.mark.parametrize("impl", IMPLS, ids=["cece", "reference"])
@pytest.mark.parametrize("func", NORM)
@pytest.mark.parametrize("case_id,build,exc,name", NORM_CASES, ids=[c[0] for c in NORM_CASES])
def test_bad_normalizer_argument(impl, func, case_id, build, exc, name):
    x, kwargs = build()
    snap = _snapshot([x])
    with pytest.raises(exc) as info:
        getattr(impl, func)(x, **kwargs)
    assert name in str(info.value)
    _assert_unchanged(snap)


@pytest.mark.parametrize("impl", IMPLS, ids=["cece", "reference"])
@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
@pytest.mark.parametrize("case_id,make,exc", OUT_CASES, ids=[c[0] for c in OUT_CASES])
def test_bad_normalizer_out(impl, func, case_id, make, exc):
    big = np.arange(13, dtype=np.float64) * 0.1
    x = big[:12].reshape(4, 3)
    out = big[1:13].reshape(4, 3) if case_id == "partial_overlap_with_logits" else make(x)
    before = big.copy()
    with pytest.raises(exc) as info:
        getattr(impl, func)(x, out=out)
    assert "out" in str(info.value)
    assert big.tobytes() == before.tobytes()


def test_show_config_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        cece.show_config(mode="json")


# ---- out / grad_out overlapping an input that cece had to copy -------------------------------
# DESIGN.md: grad_out may be logits itself but must not overlap any other input; nothing is
# written into an input unless grad_out says so. The check must look at the caller's arrays,
# not only at the contiguous copies made of strided or converted ones.


def _overlap_cases():
    y = np.array([0, 1, 2, 0])

    def weight_strided():
        buf = np.zeros(24)
        return buf, (X(), y), {"weight": buf[::8]}, buf[:12].reshape(4, 3), "weight"

    def weight_float32():
        buf = np.zeros(12)
        return buf, (X(), y), {"weight": buf.view(np.float32)[:3]}, buf.reshape(4, 3), "weight"

    def sample_weight_strided():
        buf = np.ones(24)
        return (buf, (X(), y), {"sample_weight": buf[::3][:4]}, buf[:12].reshape(4, 3),
                "sample_weight")

    def logits_strided():
        big = X((4, 6))
        return big, (big[:, ::2], y), {}, big.reshape(-1)[:12].reshape(4, 3), "logits"

    def target_probabilities_strided_float32():
        buf = np.full(24, 0.25)
        t32 = buf.view(np.float32)[:24].reshape(4, 6)[:, ::2]
        return buf, (X(), t32), {}, buf[:12].reshape(4, 3), "target"

    def logits_as_their_own_target():
        # grad_out=logits is an in-place call, but the same array is the probability target
        # too, which the sweep would overwrite while reading it
        buf = np.full((4, 3), 1 / 3)
        return buf, (buf, buf), {}, buf, "target"

    return [weight_strided, weight_float32, sample_weight_strided, logits_strided,
            target_probabilities_strided_float32, logits_as_their_own_target]


OVERLAP_CASES = _overlap_cases()


@pytest.mark.parametrize("impl", IMPLS, ids=["cece", "reference"])
@pytest.mark.parametrize("func", ["cross_entropy_grad", "cross_entropy_with_grad"])
@pytest.mark.parametrize("make", OVERLAP_CASES, ids=[f.__name__ for f in OVERLAP_CASES])
def test_out_overlapping_a_copied_input(impl, func, make):
    buf, args, kwargs, out, name = make()
    before = buf.copy()
    key = "out" if func == "cross_entropy_grad" else "grad_out"
    with pytest.raises(ValueError) as info:
        getattr(impl, func)(*args, **kwargs, **{key: out})
    assert key in str(info.value) and name in str(info.value), str(info.value)
    assert buf.tobytes() == before.tobytes(), "the caller's input was overwritten"


@pytest.mark.parametrize("impl", IMPLS, ids=["cece", "reference"])
@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
def test_normalizer_out_overlapping_strided_x(impl, func):
    big = X((4, 6))
    before = big.copy()
    with pytest.raises(ValueError, match="out"):
        getattr(impl, func)(big[:, ::2], out=big.reshape(-1)[:12].reshape(4, 3))
    assert big.tobytes() == before.tobytes()
