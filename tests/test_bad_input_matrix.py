"""Hostile input: hundreds of malformed calls, each a clear error and nothing touched.

Every case is a malformed call of a public function. It must raise TypeError, ValueError or
IndexError (the class DESIGN.md names where it names one), the message must name the
offending argument, every array handed in (and the buffer it is a view of) must be bytewise
unchanged afterwards, and the interpreter must survive.

The matrix runs in a child interpreter (this very file run as a script) so that a segfault,
an abort or a sanitizer report is a test failure with the case's name rather than a lost run:
the child prints one JSON line per case, and when it dies the parent records the case that
was running as crashed and starts a new child after it. Each case is run against cece and
against cece.reference (which shares cece's validation), show_config's against cece only.
The children import the cece the parent imported (its folder leads their PYTHONPATH).

    python tests/test_bad_input_matrix.py            # the JSON report on stdout
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from typing import Any, Callable, NamedTuple

import numpy as np

ANY = (TypeError, ValueError, IndexError)
CE_FUNCS = ("cross_entropy", "cross_entropy_grad", "cross_entropy_with_grad")
X_FUNCS = ("log_softmax", "softmax", "logsumexp")
ARRAY_FUNCS = CE_FUNCS + X_FUNCS
ALL_FUNCS = ARRAY_FUNCS + ("show_config",)


class Case(NamedTuple):
    id: str
    func: str
    build: Callable[[], tuple[tuple, dict]]  # fresh (args, kwargs) each run
    name: str  # the argument the message must name
    expect: tuple  # acceptable exception classes
    may_write: tuple = ()  # keyword outputs a failing call may have written (label errors)
    cece_only: bool = False  # cece.reference has no such function (show_config)


# ---- inputs -------------------------------------------------------------------------------


def Z(shape=(4, 3), dtype=np.float64):
    return (np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) * 0.25 - 1).astype(dtype)


def Y(n=4, dtype=np.int64, C=3):
    return (np.arange(n) % C).astype(dtype)


def P(shape=(4, 3), dtype=np.float64):
    z = Z(shape)
    e = np.exp(z - z.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(dtype)


def readonly(a):
    a.flags.writeable = False
    return a


CASES: list[Case] = []


def add(id, func, build, name, expect=ANY, may_write=(), cece_only=False):
    CASES.append(Case(f"{func}:{id}", func, build, name, tuple(expect), tuple(may_write), cece_only))


def first_arg(func):
    return "logits" if func in CE_FUNCS else "x"


def call_with_first(func, x):
    """(args, kwargs) for `func` with first argument `x` and a well-formed rest."""
    if func in CE_FUNCS:
        return (x, Y()), {}
    return (x,), {}


# ---- every function: the array argument, axis, num_threads ----------------------------

BAD_DTYPES = {
    "complex64": lambda: Z().astype(np.complex64),
    "complex128": lambda: Z().astype(np.complex128),
    "object": lambda: Z().astype(object),
    "str": lambda: Z().astype(str),
    "bytes": lambda: Z().astype("S8"),
    "datetime64": lambda: np.zeros((4, 3), dtype="datetime64[s]"),
    "timedelta64": lambda: np.zeros((4, 3), dtype="timedelta64[ms]"),
    "structured": lambda: np.zeros((4, 3), dtype=[("a", "f8"), ("b", "i4")]),
    "list_of_str": lambda: [["a", "b", "c"]] * 4,
}

for func in ARRAY_FUNCS:
    arg = first_arg(func)
    for label, make in BAD_DTYPES.items():
        add(f"{arg}_dtype_{label}", func, lambda f=func, m=make: call_with_first(f, m()), arg, (TypeError,))
    add(f"{arg}_None", func, lambda f=func: call_with_first(f, None), arg, (TypeError,))
    add(f"{arg}_ragged", func, lambda f=func: call_with_first(f, [[1.0, 2.0, 3.0], [1.0]]), arg, (TypeError, ValueError))
    add(f"{arg}_0d_array", func, lambda f=func: call_with_first(f, np.array(1.5)), arg, (ValueError,))
    add(f"{arg}_numpy_scalar", func, lambda f=func: call_with_first(f, np.float32(1.5)), arg, (ValueError,))
    add(f"{arg}_python_float", func, lambda f=func: call_with_first(f, 2.0), arg, (ValueError,))
    add(f"{arg}_python_int", func, lambda f=func: call_with_first(f, 7), arg, (ValueError,))
    add(f"{arg}_C0", func, lambda f=func: call_with_first(f, np.zeros((4, 0))), arg, (ValueError,))
    add(f"{arg}_C0_axis0", func,
        lambda f=func: ((np.zeros((0, 4)), Y()) if f in CE_FUNCS else (np.zeros((0, 4)),),
                        {"axis": 0}), arg, (ValueError,))
    for bad_axis in (2, -3, 100):
        add(f"axis_{bad_axis}", func,
            lambda f=func, a=bad_axis: (call_with_first(f, Z())[0], {"axis": a}), "axis", ANY)
    for bad_axis in (1.0, None, "0", [1]):
        add(f"axis_{type(bad_axis).__name__}", func,
            lambda f=func, a=bad_axis: (call_with_first(f, Z())[0], {"axis": a}), "axis", (TypeError,))
    for bad in (0, -1, -(2**40)):
        add(f"num_threads_{bad}", func,
            lambda f=func, b=bad: (call_with_first(f, Z())[0], {"num_threads": b}), "num_threads", (ValueError,))
    for bad in (2.5, "2", True, np.float64(2.0)):
        add(f"num_threads_{type(bad).__name__}", func,
            lambda f=func, b=bad: (call_with_first(f, Z())[0], {"num_threads": b}), "num_threads", (TypeError,))

# ---- cross-entropy family: target -------------------------------------------------------

INT_WIDTHS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def _labels_with(value, dtype, n=4, at=-1):
    y = Y(n).astype(dtype)
    y[at] = value
    return y


for func in CE_FUNCS:
    # out-of-range labels in every integer width: the largest value of the width, C, -1, the
    # smallest value, all in the last position only
    for dt in INT_WIDTHS:
        info = np.iinfo(dt)
        values = {"eqC": 3, "max": info.max}
        if info.min < 0:
            values.update({"neg1": -1, "min": info.min})
        for label, v in values.items():
            add(f"target_{np.dtype(dt).name}_{label}_last", func,
                lambda v=v, dt=dt: ((Z(), _labels_with(v, dt)), {}), "target", (IndexError,))
    # a uint64 label that wraps to ignore_index (-100) when cast to int64: still out of range
    add("target_uint64_wraps_to_ignore_index", func,
        lambda: ((Z(), _labels_with(2**64 - 100, np.uint64)), {}), "target", (IndexError,))
    add("target_uint64_wraps_to_custom_ignore_index", func,
        lambda: ((Z(), _labels_with(2**64 - 1, np.uint64)), {"ignore_index": -1}), "target",
        (IndexError,))
    add("target_huge_int64_first", func,
        lambda: ((Z(), _labels_with(2**62, np.int64, at=0)), {}), "target", (IndexError,))
    add("target_bad_noncontiguous", func,
        lambda: ((Z((6, 3)), _labels_with(5, np.int64, n=12, at=8)[::2]), {}), "target", (IndexError,))
    add("target_bad_reversed_view", func,
        lambda: ((Z(), _labels_with(-7, np.int32)[::-1]), {}), "target", (IndexError,))
    add("target_bad_axis1_3d", func,
        lambda: ((Z((2, 3, 5)), _labels_with(3, np.int64, n=10).reshape(2, 5)), {"axis": 1}),
        "target", (IndexError,))
    add("target_bad_axis0", func,
        lambda: ((Z((3, 4)), _labels_with(9, np.int16)), {"axis": 0}), "target", (IndexError,))
    add("target_bad_ignore_index_other", func,
        lambda: ((Z(), _labels_with(-100, np.int64)), {"ignore_index": 0}), "target", (IndexError,))
    add("target_bad_with_weights", func,
        lambda: ((Z(), _labels_with(3, np.int64)), {"weight": np.ones(3), "sample_weight": np.ones(4),
                                                    "reduction": "sum"}), "target", (IndexError,))
    add("target_bad_from_probs", func,
        lambda: ((P(), _labels_with(3, np.int64)), {"from_logits": False}), "target", (IndexError,))
    add("target_bad_float32_logits", func,
        lambda: ((Z(dtype=np.float32), _labels_with(4, np.uint8)), {"reduction": "none"}), "target",
        (IndexError,))
    add("target_bad_1d_logits_0d_target", func,
        lambda: ((Z((3,)), np.array(3)), {}), "target", (IndexError,))
    # wrong shapes, dtypes, None, scalars
    add("target_int_wrong_length", func, lambda: ((Z(), Y(5)), {}), "target", (ValueError,))
    add("target_int_2d", func, lambda: ((Z(), Y(12).reshape(4, 3)), {}), "target", (ValueError,))
    add("target_int_column", func, lambda: ((Z(), Y(4).reshape(4, 1)), {}), "target", (ValueError,))
    add("target_int_axis_mismatch", func, lambda: ((Z((3, 4)), Y(3)), {"axis": 0}), "target", (ValueError,))
    add("target_float_batch_shape", func, lambda: ((Z(), np.array([0.0, 1.0, 2.0, 1.0])), {}),
        "target", (ValueError,))
    add("target_float_transposed", func, lambda: ((Z(), P().T.copy()), {}), "target", (ValueError,))
    add("target_float_extra_dim", func, lambda: ((Z(), P()[None]), {}), "target", (ValueError,))
    add("target_float16_wrong_shape", func, lambda: ((Z(), P((4, 2), np.float16)), {}), "target", (ValueError,))
    add("target_bool", func, lambda: ((Z(), np.array([True, False, True, False])), {}), "target", (TypeError,))
    add("target_complex", func, lambda: ((Z(), P().astype(np.complex128)), {}), "target", (TypeError,))
    add("target_str", func, lambda: ((Z(), np.array(["0", "1", "2", "1"])), {}), "target", (TypeError,))
    add("target_object", func, lambda: ((Z(), Y().astype(object)), {}), "target", (TypeError,))
    add("target_datetime", func, lambda: ((Z(), np.zeros(4, dtype="datetime64[D]")), {}), "target", (TypeError,))
    add("target_None", func, lambda: ((Z(), None), {}), "target", (TypeError,))
    add("target_python_int_2d_logits", func, lambda: ((Z(), 1), {}), "target", (ValueError,))
    add("target_0d_2d_logits", func, lambda: ((Z(), np.array(1)), {}), "target", (ValueError,))
    add("target_ragged", func, lambda: ((Z(), [[0], [1, 2]]), {}), "target", (TypeError, ValueError))

# ---- cross-entropy family: options ---------------------------------------------------------

OPTION_CASES = [
    # (id, kwargs, name, expected classes)
    ("weight_nan", {"weight": np.array([1.0, np.nan, 1.0])}, "weight", (ValueError,)),
    ("weight_negative", {"weight": np.array([1.0, -0.5, 1.0])}, "weight", (ValueError,)),
    ("weight_inf", {"weight": np.array([1.0, np.inf, 1.0])}, "weight", (ValueError,)),
    ("weight_neg_inf", {"weight": np.array([-np.inf, 1.0, 1.0])}, "weight", (ValueError,)),
    ("weight_too_short", {"weight": np.ones(2)}, "weight", (ValueError,)),
    ("weight_too_long", {"weight": np.ones(4)}, "weight", (ValueError,)),
    ("weight_2d", {"weight": np.ones((1, 3))}, "weight", (ValueError,)),
    ("weight_0d", {"weight": np.array(1.0)}, "weight", (ValueError,)),
    ("weight_python_scalar", {"weight": 2.0}, "weight", (ValueError,)),
    ("weight_complex", {"weight": np.ones(3, dtype=np.complex128)}, "weight", (TypeError,)),
    ("weight_bool", {"weight": np.ones(3, dtype=bool)}, "weight", (TypeError,)),
    ("weight_object", {"weight": np.ones(3).astype(object)}, "weight", (TypeError,)),
    ("weight_str", {"weight": ["1", "1", "1"]}, "weight", (TypeError,)),
    ("sample_weight_nan", {"sample_weight": np.array([1.0, 1.0, np.nan, 1.0])}, "sample_weight", (ValueError,)),
    ("sample_weight_inf", {"sample_weight": np.array([1.0, -np.inf, 1.0, 1.0])}, "sample_weight", (ValueError,)),
    ("sample_weight_wrong_length", {"sample_weight": np.ones(3)}, "sample_weight", (ValueError,)),
    ("sample_weight_2d", {"sample_weight": np.ones((4, 1))}, "sample_weight", (ValueError,)),
    ("sample_weight_logits_shape", {"sample_weight": np.ones((4, 3))}, "sample_weight", (ValueError,)),
    ("sample_weight_complex", {"sample_weight": np.ones(4, dtype=np.complex64)}, "sample_weight", (TypeError,)),
    ("sample_weight_datetime", {"sample_weight": np.zeros(4, dtype="datetime64[s]")}, "sample_weight", (TypeError,)),
    ("label_smoothing_negative", {"label_smoothing": -0.1}, "label_smoothing", (ValueError,)),
    ("label_smoothing_above_1", {"label_smoothing": 1.0000001}, "label_smoothing", (ValueError,)),
    ("label_smoothing_nan", {"label_smoothing": float("nan")}, "label_smoothing", (ValueError,)),
    ("label_smoothing_inf", {"label_smoothing": float("inf")}, "label_smoothing", (ValueError,)),
    ("label_smoothing_None", {"label_smoothing": None}, "label_smoothing", (TypeError,)),
    ("label_smoothing_str", {"label_smoothing": "0.1"}, "label_smoothing", (TypeError,)),
    ("label_smoothing_array", {"label_smoothing": np.array([0.1, 0.2])}, "label_smoothing", (TypeError, ValueError)),
    ("label_smoothing_complex", {"label_smoothing": 0.1 + 0j}, "label_smoothing", (TypeError,)),
    ("reduction_unknown", {"reduction": "avg"}, "reduction", (ValueError,)),
    ("reduction_upper", {"reduction": "MEAN"}, "reduction", (ValueError,)),
    ("reduction_None", {"reduction": None}, "reduction", (TypeError, ValueError)),
    ("reduction_int", {"reduction": 1}, "reduction", (TypeError, ValueError)),
    ("reduction_bytes", {"reduction": b"mean"}, "reduction", (TypeError, ValueError)),
    ("softcap_zero", {"softcap": 0.0}, "softcap", (ValueError,)),
    ("softcap_negative", {"softcap": -30.0}, "softcap", (ValueError,)),
    ("softcap_nan", {"softcap": float("nan")}, "softcap", (ValueError,)),
    ("softcap_inf", {"softcap": float("inf")}, "softcap", (ValueError,)),
    ("softcap_str", {"softcap": "30"}, "softcap", (TypeError,)),
    ("softcap_bool", {"softcap": True}, "softcap", (TypeError,)),
    ("z_loss_negative", {"z_loss": -1e-4}, "z_loss", (ValueError,)),
    ("z_loss_nan", {"z_loss": float("nan")}, "z_loss", (ValueError,)),
    ("z_loss_inf", {"z_loss": float("inf")}, "z_loss", (ValueError,)),
    ("z_loss_None", {"z_loss": None}, "z_loss", (TypeError,)),
    ("z_loss_str", {"z_loss": "1e-4"}, "z_loss", (TypeError,)),
    ("from_logits_str", {"from_logits": "yes"}, "from_logits", (TypeError,)),
    ("from_logits_None", {"from_logits": None}, "from_logits", (TypeError,)),
    ("from_logits_int", {"from_logits": 1}, "from_logits", (TypeError,)),
    ("softcap_without_logits", {"from_logits": False, "softcap": 30.0}, "softcap", (ValueError,)),
    ("z_loss_without_logits", {"from_logits": False, "z_loss": 1e-4}, "z_loss", (ValueError,)),
    ("ignore_index_float", {"ignore_index": 1.5}, "ignore_index", (TypeError,)),
    ("ignore_index_str", {"ignore_index": "-100"}, "ignore_index", (TypeError,)),
    ("ignore_index_None", {"ignore_index": None}, "ignore_index", (TypeError,)),
    ("ignore_index_bool", {"ignore_index": True}, "ignore_index", (TypeError,)),
    ("ignore_index_too_big", {"ignore_index": 2**63}, "ignore_index", (ValueError, OverflowError)),
    ("ignore_index_too_small", {"ignore_index": -(2**63) - 1}, "ignore_index", (ValueError, OverflowError)),
    ("unknown_keyword", {"labels": np.zeros(4)}, "labels", (TypeError,)),
]

for func in CE_FUNCS:
    for id, kwargs, name, expect in OPTION_CASES:
        add(id, func, lambda kw=kwargs: ((Z(), Y()), copy.deepcopy(kw)), name, expect)

add("out_keyword_on_forward", "cross_entropy", lambda: ((Z(), Y()), {"out": np.empty((4, 3))}), "out",
    (TypeError,))
add("grad_out_keyword_on_grad", "cross_entropy_grad",
    lambda: ((Z(), Y()), {"grad_out": np.empty((4, 3))}), "grad_out", (TypeError,))
for func in CE_FUNCS:
    add("weight_nan_prob_target", func, lambda: ((Z(), P()), {"weight": np.array([np.nan, 1.0, 1.0])}),
        "weight", (ValueError,))

# ---- outputs: out (cross_entropy_grad, softmax, log_softmax), grad_out ---------------------


def _bad_outputs():
    """(id, make_out, expected classes): outputs that are wrong for float64 (4, 3) logits."""
    return [
        ("float32", lambda: np.zeros((4, 3), np.float32), (ValueError,)),
        ("float16", lambda: np.zeros((4, 3), np.float16), (ValueError,)),
        ("int64", lambda: np.zeros((4, 3), np.int64), (ValueError,)),
        ("complex", lambda: np.zeros((4, 3), np.complex128), (ValueError, TypeError)),
        ("byteswapped", lambda: np.zeros((4, 3), ">f8" if sys.byteorder == "little" else "<f8"), (ValueError,)),
        ("shape_transposed", lambda: np.zeros((3, 4)), (ValueError,)),
        ("shape_flat", lambda: np.zeros(12), (ValueError,)),
        ("shape_batch", lambda: np.zeros(4), (ValueError,)),
        ("shape_0d", lambda: np.array(0.0), (ValueError,)),
        ("fortran", lambda: np.zeros((4, 3), order="F"), (ValueError,)),
        ("strided", lambda: np.zeros((4, 6))[:, ::2], (ValueError,)),
        ("reversed", lambda: np.zeros((4, 3))[::-1], (ValueError,)),
        ("readonly", lambda: readonly(np.zeros((4, 3))), (ValueError,)),
        ("list", lambda: [[0.0] * 3] * 4, (TypeError,)),
        ("matrix_like_tuple", lambda: ((0.0,) * 3,) * 4, (TypeError,)),
    ]


for func, outname in (("cross_entropy_grad", "out"), ("cross_entropy_with_grad", "grad_out"),
                      ("softmax", "out"), ("log_softmax", "out")):
    for id, make, expect in _bad_outputs():
        if func in CE_FUNCS:
            build = lambda m=make, o=outname: ((Z(), Y()), {o: m()})
        else:
            build = lambda m=make, o=outname: ((Z(),), {o: m()})
        add(f"{outname}_{id}", func, build, outname, expect)
    # float32 logits with a float64 output (the compute dtype is float32)
    if func in CE_FUNCS:
        add(f"{outname}_float64_for_float32", func,
            lambda o=outname: ((Z(dtype=np.float32), Y()), {o: np.zeros((4, 3))}), outname, (ValueError,))
        add(f"{outname}_float32_for_float16", func,
            lambda o=outname: ((Z(dtype=np.float16), Y()), {o: np.zeros((4, 3), np.float16)}), outname,
            (ValueError,))
    else:
        add(f"{outname}_float64_for_float32", func,
            lambda: ((Z(dtype=np.float32),), {"out": np.zeros((4, 3))}), outname, (ValueError,))
        add(f"{outname}_float64_for_int", func,
            lambda: ((Z().astype(np.int32),), {"out": np.zeros((4, 3), np.int32)}), outname, (ValueError,))


def _overlap_logits_view():
    """logits a strided view of a buffer whose first half is a C-contiguous (4, 3) grad_out."""
    buf = np.zeros(24)
    view = buf.reshape(4, 6)[:, ::2]
    view[...] = Z()
    return view, buf[:12].reshape(4, 3)


for func, outname in (("cross_entropy_grad", "out"), ("cross_entropy_with_grad", "grad_out")):
    def _alias_prob_target(o=outname):
        t = P()
        return (Z(), t), {o: t}

    def _alias_int_target(o=outname):
        g = np.zeros((4, 3))
        return (Z(), g.view(np.int64)[:, 0]), {o: g}

    def _alias_weight(o=outname):
        g = np.ones((4, 3))
        return (Z(), Y()), {o: g, "weight": g[1]}

    def _alias_weight_strided(o=outname):
        g = np.ones((3, 3))
        return (Z((3, 3)), Y(3)), {o: g, "weight": g[:, 1]}

    def _alias_sample_weight(o=outname):
        g = np.ones((4, 4))
        return (Z((4, 4)), Y(4)), {o: g, "sample_weight": g[1]}

    def _alias_sample_weight_strided(o=outname):
        g = np.ones((4, 4))
        return (Z((4, 4)), Y(4)), {o: g, "sample_weight": g[:, 1]}

    def _overlap_logits_partial(o=outname):
        z = Z((5, 3))
        return (z[1:], Y()), {o: z[:4]}

    def _overlap_logits_strided(o=outname):
        view, g = _overlap_logits_view()
        return (view, Y()), {o: g}

    add(f"{outname}_is_prob_target", func, _alias_prob_target, outname, (ValueError,))
    add(f"{outname}_aliases_int_target", func, _alias_int_target, outname, (ValueError,))
    add(f"{outname}_aliases_weight", func, _alias_weight, outname, (ValueError,))
    add(f"{outname}_aliases_weight_strided", func, _alias_weight_strided, outname, (ValueError,))
    add(f"{outname}_aliases_sample_weight", func, _alias_sample_weight, outname, (ValueError,))
    add(f"{outname}_aliases_sample_weight_strided", func, _alias_sample_weight_strided, outname, (ValueError,))
    add(f"{outname}_overlaps_logits_shifted", func, _overlap_logits_partial, outname, (ValueError,))
    add(f"{outname}_overlaps_strided_logits", func, _overlap_logits_strided, outname, (ValueError,))

    # In place on logits with a bad label: logits must be untouched (the label check runs
    # before the sweep), for every reduction, layout and from_logits.
    for red in ("mean", "sum", "none"):
        add(f"{outname}_in_place_bad_label_{red}", func,
            lambda o=outname, r=red: (lambda z: ((z, _labels_with(3, np.int64)), {o: z, "reduction": r}))(Z()),
            "target", (IndexError,))
    add(f"{outname}_in_place_bad_label_axis1", func,
        lambda o=outname: (lambda z: ((z, _labels_with(-2, np.int8, n=10).reshape(2, 5)),
                                      {o: z, "axis": 1, "reduction": "sum"}))(Z((2, 3, 5))),
        "target", (IndexError,))
    add(f"{outname}_in_place_bad_label_probs", func,
        lambda o=outname: (lambda z: ((z, _labels_with(7, np.int64)),
                                      {o: z, "from_logits": False, "reduction": "sum"}))(P()),
        "target", (IndexError,))
    add(f"{outname}_in_place_bad_label_float32", func,
        lambda o=outname: (lambda z: ((z, _labels_with(2**40, np.int64)), {o: z, "reduction": "none"}))(
            Z(dtype=np.float32)), "target", (IndexError,))
    # a separate output with a bad label: the output may have been written, the inputs not
    add(f"{outname}_separate_bad_label_sum", func,
        lambda o=outname: ((Z(), _labels_with(3, np.int64)), {o: np.zeros((4, 3)), "reduction": "sum"}),
        "target", (IndexError,), may_write=(outname,))

for func in ("softmax", "log_softmax"):
    add("out_overlaps_x_shifted", func,
        lambda: (lambda z: ((z[1:],), {"out": z[:4]}))(Z((5, 3))), "out", (ValueError,))
    add("out_overlaps_strided_x", func,
        lambda: (lambda vg: ((vg[0],), {"out": vg[1]}))(_overlap_logits_view()), "out", (ValueError,))
for func in X_FUNCS:
    add("unknown_keyword_weight", func, lambda: ((Z(),), {"weight": np.ones(3)}), "weight", (TypeError,))
add("out_keyword", "logsumexp", lambda: ((Z(),), {"out": np.zeros(4)}), "out", (TypeError,))

# ---- show_config: its one option -------------------------------------------------------------

for id, args, kwargs, expect in [
    ("mode_unknown", ("xml",), {}, (ValueError,)),
    ("mode_upper", ("DICTS",), {}, (ValueError,)),
    ("mode_None", (None,), {}, (TypeError, ValueError)),
    ("mode_int", (1,), {}, (TypeError, ValueError)),
    ("mode_bytes", (b"dicts",), {}, (TypeError, ValueError)),
    ("unknown_keyword", (), {"verbose": True}, (TypeError,)),
]:
    name = "verbose" if "verbose" in kwargs else "mode"
    add(id, "show_config", lambda a=args, k=kwargs: (a, dict(k)), name, expect, cece_only=True)


# ---- the child: run every case, print one JSON line each ---------------------------------


def _snapshot(value):
    """Bytes of every array in `value` (and of the buffers they are views of)."""
    arrays = []

    def visit(v, path):
        if isinstance(v, np.ndarray):
            arrays.append((path, v))
            base, depth = v.base, 0
            while isinstance(base, np.ndarray):
                arrays.append((f"{path}.base{depth}", base))
                base, depth = base.base, depth + 1
        elif isinstance(v, (list, tuple)):
            for i, item in enumerate(v):
                visit(item, f"{path}[{i}]")

    visit(value, "")
    out = []
    for path, a in arrays:
        if a.dtype.hasobject:
            data = copy.deepcopy(a.tolist())
        else:
            data = np.array(a, copy=True, order="K").tobytes()
        out.append((path, a, a.dtype, a.shape, data))
    return out


def _changed(snapshot):
    changed = []
    for path, a, dtype, shape, data in snapshot:
        now = copy.deepcopy(a.tolist()) if a.dtype.hasobject else np.array(a, copy=True, order="K").tobytes()
        if a.dtype != dtype or a.shape != shape or now != data:
            changed.append(path)
    return changed


def run_case(case: Case, impl) -> dict:
    args, kwargs = case.build()
    watched = {f"arg{i}": a for i, a in enumerate(args)}
    watched.update({k: v for k, v in kwargs.items() if k not in case.may_write})
    snap = {name: _snapshot(v) for name, v in watched.items()}
    problems = []
    raised, message = None, ""
    try:
        getattr(impl, case.func)(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - anything else is a finding
        raised, message = type(exc), str(exc)
    if raised is None:
        problems.append("no exception raised")
    else:
        if not issubclass(raised, ANY):
            problems.append(f"raised {raised.__name__}, not TypeError/ValueError/IndexError")
        if not issubclass(raised, case.expect):
            problems.append(f"raised {raised.__name__}, expected {'/'.join(e.__name__ for e in case.expect)}")
        if case.name not in message:
            problems.append(f"message does not name {case.name!r}")
    changed = [f"{name}{path}" for name, s in snap.items() for path in _changed(s)]
    if changed:
        problems.append(f"inputs changed: {', '.join(changed)}")
    return {
        "id": case.id,
        "impl": impl.__name__,
        "raised": raised.__name__ if raised else None,
        "message": message[:300],
        "problems": problems,
    }


def child_main(start: int) -> None:
    import faulthandler

    faulthandler.enable()
    import cece
    import cece.reference

    print(json.dumps({"cece": os.path.realpath(cece.__file__)}), flush=True)
    for index in range(start, len(CASES)):
        case = CASES[index]
        for impl in (cece,) if case.cece_only else (cece, cece.reference):
            print(json.dumps({"begin": index, "id": case.id, "impl": impl.__name__}), flush=True)
            result = run_case(case, impl)
            result["index"] = index
            print(json.dumps(result), flush=True)
    print(json.dumps({"done": True}), flush=True)


def _child_env() -> dict:
    """The environment of a child: the parent's, with the folder that holds the cece the
    parent imported first on PYTHONPATH (absolute, as every other entry: the child runs in
    tests/, where a relative entry such as `PYTHONPATH=.` would point somewhere else)."""
    import cece

    env = dict(os.environ)
    env.setdefault("PYTHONFAULTHANDLER", "1")
    package_root = os.path.dirname(os.path.dirname(os.path.realpath(cece.__file__)))
    entries = [os.path.abspath(e) for e in env.get("PYTHONPATH", "").split(os.pathsep) if e]
    env["PYTHONPATH"] = os.pathsep.join([package_root] + entries)
    return env


def run_matrix(timeout: float = 600.0) -> dict:
    """Run the matrix in child interpreters; {(id, impl): result}, crashes included, and
    under the key ("<child>", "cece") the path of the cece the children imported."""
    results: dict = {}
    start, crashes = 0, 0
    env = _child_env()
    while start < len(CASES):
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", str(start)],
            capture_output=True, text=True, timeout=timeout, env=env,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
        last_begin, done = None, False
        for line in proc.stdout.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if "cece" in record:
                results[("<child>", "cece")] = record["cece"]
            elif "begin" in record:
                last_begin = record
            elif record.get("done"):
                done = True
            else:
                results[(record["id"], record["impl"])] = record
        if done and proc.returncode == 0:
            break
        # the child died (or exited non-zero): blame the case that was running
        crashes += 1
        if last_begin is None or crashes > 50:
            results[("<child>", "startup")] = {
                "id": "<child>", "impl": "startup", "raised": None, "message": "",
                "problems": [f"child exited {proc.returncode} before any case: {proc.stderr[-2000:]}"],
            }
            break
        key = (last_begin["id"], last_begin["impl"])
        if key not in results:
            results[key] = {
                "id": key[0], "impl": key[1], "raised": None, "message": "",
                "problems": [f"interpreter crashed (exit {proc.returncode}): {proc.stderr[-2000:]}"],
            }
        start = last_begin["begin"] + 1
        lost_reference_run = key[1] == "cece" and not CASES[last_begin["begin"]].cece_only
        if lost_reference_run:  # the reference's run of this case was lost with the child
            results.setdefault((key[0], "cece.reference"), {
                "id": key[0], "impl": "cece.reference", "raised": None, "message": "",
                "problems": ["not run: the child crashed on cece's run of this case"]})
    return results


# ---- pytest -------------------------------------------------------------------------------

# every (case, implementation) run: each case against cece and, where it has the function,
# against cece.reference
CALLS = [(c.id, impl) for c in CASES for impl in ("cece",) + (() if c.cece_only else ("cece.reference",))]

if "pytest" in sys.modules:
    import pytest

    @pytest.fixture(scope="module")
    def matrix():
        return run_matrix()

    def test_matrix_size(matrix):
        """At least 60 malformed calls, every public function covered, all of them run."""
        funcs = {c.func for c in CASES}
        assert funcs == set(ALL_FUNCS)
        assert len(CASES) >= 60
        ran = [k for k in matrix if k[0] != "<child>"]
        assert len(ran) == len(CALLS), f"{len(ran)} results for {len(CALLS)} calls"
        crashed = [k for k in ran if any("crashed" in p for p in matrix[k]["problems"])]
        assert not crashed, f"interpreter crashes: {crashed}"

    def test_children_imported_the_same_cece(matrix):
        """The matrix exercised the build under test, not some other cece on the path."""
        import cece

        assert matrix.get(("<child>", "cece")) == os.path.realpath(cece.__file__)

    def test_case_ids_unique():
        ids = [c.id for c in CASES]
        assert len(ids) == len(set(ids))

    @pytest.mark.parametrize("case_id,impl", CALLS)
    def test_bad_input(matrix, case_id, impl):
        result = matrix.get((case_id, impl))
        assert result is not None, f"{case_id} was not run ({matrix.get(('<child>', 'startup'))})"
        assert not result["problems"], (
            f"{case_id} [{impl}]: {'; '.join(result['problems'])} "
            f"(raised {result['raised']}: {result['message']!r})"
        )


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        child_main(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    else:
        report = run_matrix()
        calls = {k: r for k, r in report.items() if isinstance(r, dict)}
        failures = {f"{k[0]} [{k[1]}]": r["problems"] for k, r in calls.items() if r["problems"]}
        print(json.dumps({"cases": len(CASES), "calls": len(calls), "cece": report.get(("<child>", "cece")),
                          "failures": failures}, indent=1))
        sys.exit(1 if failures else 0)
