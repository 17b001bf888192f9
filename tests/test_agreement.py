"""cece against cece.reference (the pure-NumPy float64 oracle), every option and combination.

Tolerances are normwise per array (tests/cece_testing.py: assert_close): 1e-12 in float64,
1e-5 in float32, NaN positions identical. cross_entropy, cross_entropy_grad and
cross_entropy_with_grad must also agree with each other, and none may write into its inputs.
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
    make_positive,
    make_probs,
    make_sample_weight,
    make_weight,
    rtol_for,
)

# (id, shape, axis): the kernel's layouts -- long rows, small C (tiles across rows),
# class axis in the middle (outer, C, inner) and first.
GEOMETRIES = [
    ("rows", (9, 37), -1),
    ("tiles", (33, 3), -1),
    ("axis1", (3, 4, 2, 3), 1),
    ("axis0", (6, 2, 3), 0),
]
TARGETS = ["int", "int_ignore0", "prob"]

# --quick (tests/conftest.py; the installed-wheel and sanitizer jobs): every dtype, layout,
# target kind and mode of the option matrix, with the option flags all off or all on: each
# kernel variant runs, not each combination (README's full run has those).
QUICK_SUBSET = {
    "test_option_matrix": lambda p: (p["use_weight"], p["use_sample_weight"], p["label_smoothing"])
    in {(False, False, 0.0), (True, True, 0.3)},
}
# (id, extra kwargs): from_logits=True variants and the from_logits=False one
MODES = [
    ("plain", {}),
    ("zloss", {"z_loss": 1e-2}),
    ("softcap", {"softcap": 1.5}),
    ("zloss_softcap", {"z_loss": 0.05, "softcap": 3.0}),
    ("probabilities_in", {"from_logits": False}),
]


def _problem(rng, shape, axis, dtype, target_kind, from_logits):
    C = shape[axis]
    batch = batch_shape_of(shape, axis)
    if from_logits:
        logits = make_logits(rng, shape, dtype)
    else:
        logits = make_positive(rng, shape, dtype)
    kwargs = {"axis": axis}
    if target_kind == "int":
        # the default ignore_index=-100, with some positions at -100
        target = make_labels(rng, batch, C, ignore_index=-100, ignore_frac=0.25)
    elif target_kind == "int_ignore0":
        # ignore_index=0 is a valid class: positions labelled 0 are ignored
        target = make_labels(rng, batch, C)
        kwargs["ignore_index"] = 0
    else:
        target = make_probs(rng, shape, axis, dtype)
    return logits, target, kwargs


@pytest.mark.parametrize("mode_id,mode", MODES, ids=[m[0] for m in MODES])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("use_sample_weight", [False, True], ids=["no_sw", "sw"])
@pytest.mark.parametrize("use_weight", [False, True], ids=["no_w", "w"])
@pytest.mark.parametrize("target_kind", TARGETS)
@pytest.mark.parametrize("geom", GEOMETRIES, ids=[g[0] for g in GEOMETRIES])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_option_matrix(rng, dtype, geom, target_kind, use_weight, use_sample_weight,
                       label_smoothing, mode_id, mode):
    _, shape, axis = geom
    from_logits = mode.get("from_logits", True)
    logits, target, kwargs = _problem(rng, shape, axis, dtype, target_kind, from_logits)
    kwargs.update(mode)
    if use_weight:
        kwargs["weight"] = make_weight(rng, shape[axis])
    if use_sample_weight:
        kwargs["sample_weight"] = make_sample_weight(rng, batch_shape_of(shape, axis))
    if label_smoothing:
        kwargs["label_smoothing"] = label_smoothing
    for reduction in REDUCTIONS:
        loss, grad = check_against_reference(cece, ref, logits, target,
                                             reduction=reduction, **kwargs)
        assert np.asarray(loss).dtype == dtype
        assert grad.dtype == dtype and grad.shape == logits.shape
        if reduction == "none":
            assert loss.shape == batch_shape_of(shape, axis)
        else:
            assert np.ndim(loss) == 0


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("target_kind", ["int", "prob"])
@pytest.mark.parametrize("from_logits", [True, False])
def test_full_label_smoothing(rng, dtype, target_kind, from_logits):
    logits, target, kwargs = _problem(rng, (8, 6), -1, dtype, target_kind, from_logits)
    for reduction in REDUCTIONS:
        check_against_reference(cece, ref, logits, target, reduction=reduction,
                                label_smoothing=1.0, from_logits=from_logits,
                                weight=make_weight(rng, 6), **kwargs)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("ignore_index", [-100, -1, 0, 3, 2**40])
def test_ignore_index_values(rng, dtype, ignore_index):
    C = 5
    logits = make_logits(rng, (40, C), dtype)
    y = make_labels(rng, (40,), C)
    if not 0 <= ignore_index < C:
        y[rng.random(40) < 0.3] = ignore_index
    assert (y == ignore_index).any()
    for reduction in REDUCTIONS:
        loss, grad = check_against_reference(cece, ref, logits, y, reduction=reduction,
                                             ignore_index=ignore_index,
                                             weight=make_weight(rng, C))
        ignored = y == ignore_index
        # ignored positions: loss 0 and gradient row exactly 0
        assert np.all(grad[ignored] == 0)
        if reduction == "none":
            assert np.all(loss[ignored] == 0)
    # an ignored label must not be confused with a class: ignoring class 3 equals dropping
    # those positions (sum reduction)
    keep = y != ignore_index
    full = cece.cross_entropy(logits, y, ignore_index=ignore_index, reduction="sum")
    dropped = ref.cross_entropy(logits[keep], y[keep], reduction="sum")
    assert_close(full, dropped, rtol_for(dtype), "ignored == dropped")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_unnormalised_probability_targets(rng, dtype):
    """Soft targets need not sum to 1 (the formula is linear in t)."""
    logits = make_logits(rng, (12, 7), dtype)
    target = rng.uniform(0, 2, size=(12, 7)).astype(dtype)
    target[0] = 0  # a row with no target mass at all
    for reduction in REDUCTIONS:
        for from_logits in (True, False):
            x = logits if from_logits else np.abs(logits) + 0.1
            check_against_reference(cece, ref, x, target, reduction=reduction,
                                    from_logits=from_logits, label_smoothing=0.1)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_probabilities_in_with_clipped_entries(rng, dtype):
    """from_logits=False with some renormalised probabilities outside [1e-7, 1 - 1e-7]:
    the clip changes the loss and zeroes those gradient terms, as the reference does."""
    p = make_positive(rng, (10, 4), dtype)
    p[0] = [1.0, 1e-10, 1e-10, 1e-10]  # q0 ~ 1 - 3e-10 > 1 - 1e-7, the others < 1e-7
    p[1, 2] = 1e-12
    y = make_labels(rng, (10,), 4)
    y[0] = 1
    probs = make_probs(rng, (10, 4), -1, dtype)
    for target in (y, probs):
        for reduction in REDUCTIONS:
            check_against_reference(cece, ref, p, target, reduction=reduction,
                                    from_logits=False, weight=make_weight(rng, 4))


@pytest.mark.parametrize("num_threads", [None, 1, 2, 3, 7])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_num_threads_option(rng, dtype, num_threads):
    logits = make_logits(rng, (300, 50), dtype)
    y = make_labels(rng, (300,), 50, ignore_index=-100, ignore_frac=0.1)
    for reduction in REDUCTIONS:
        check_against_reference(cece, ref, logits, y, reduction=reduction,
                                num_threads=num_threads, label_smoothing=0.1, z_loss=1e-3,
                                weight=make_weight(rng, 50),
                                sample_weight=make_sample_weight(rng, (300,)))
    x = make_logits(rng, (20, 30, 6), dtype)
    for name in ("softmax", "log_softmax", "logsumexp"):
        got = getattr(cece, name)(x, axis=1, num_threads=num_threads)
        assert_close(got, getattr(ref, name)(x, axis=1), rtol_for(dtype), name)


# ---- out / grad_out ---------------------------------------------------------------------------


def _out_problem(rng, dtype, geom, from_logits):
    _, shape, axis = geom
    logits, target, kwargs = _problem(rng, shape, axis, dtype, "int", from_logits)
    kwargs.update(weight=make_weight(rng, shape[axis]), label_smoothing=0.1,
                  from_logits=from_logits)
    if from_logits:
        kwargs.update(z_loss=1e-3, softcap=4.0)
    return logits, target, kwargs


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("geom", GEOMETRIES, ids=[g[0] for g in GEOMETRIES])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_out_and_grad_out(rng, dtype, geom, reduction, from_logits):
    logits, target, kwargs = _out_problem(rng, dtype, geom, from_logits)
    kwargs["reduction"] = reduction
    rtol = rtol_for(dtype)
    rloss, rgrad = ref.cross_entropy_with_grad(logits, target, **kwargs)

    out = np.full_like(logits, np.nan)
    got = cece.cross_entropy_grad(logits, target, out=out, **kwargs)
    assert got is out
    assert_close(out, rgrad, rtol, "out=")

    grad_out = np.full_like(logits, np.nan)
    loss, got = cece.cross_entropy_with_grad(logits, target, grad_out=grad_out, **kwargs)
    assert got is grad_out
    assert_close(grad_out, rgrad, rtol, "grad_out=")
    assert_close(loss, rloss, rtol, "loss with grad_out=")


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("geom", GEOMETRIES, ids=[g[0] for g in GEOMETRIES])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_grad_out_is_logits_in_place(rng, dtype, geom, reduction, from_logits):
    logits, target, kwargs = _out_problem(rng, dtype, geom, from_logits)
    kwargs["reduction"] = reduction
    rtol = rtol_for(dtype)
    rloss, rgrad = ref.cross_entropy_with_grad(logits.copy(), target, **kwargs)
    loss, got = cece.cross_entropy_with_grad(logits, target, grad_out=logits, **kwargs)
    assert got is logits
    assert_close(logits, rgrad, rtol, "in-place gradient")
    assert_close(loss, rloss, rtol, "loss of the in-place call")

    # cross_entropy_grad(out=logits) in place as well
    logits2, target2, kwargs2 = _out_problem(np.random.default_rng(5), dtype, geom, from_logits)
    kwargs2["reduction"] = reduction
    expected = ref.cross_entropy_grad(logits2.copy(), target2, **kwargs2)
    got = cece.cross_entropy_grad(logits2, target2, out=logits2, **kwargs2)
    assert got is logits2
    assert_close(logits2, expected, rtol, "in-place out=")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_grad_out_in_place_probability_target(rng, dtype):
    logits = make_logits(rng, (16, 9), dtype)
    target = make_probs(rng, (16, 9), -1, dtype)
    for reduction in REDUCTIONS:
        x = logits.copy()
        rloss, rgrad = ref.cross_entropy_with_grad(x.copy(), target, reduction=reduction)
        loss, got = cece.cross_entropy_with_grad(x, target, grad_out=x, reduction=reduction)
        assert got is x
        assert_close(x, rgrad, rtol_for(dtype), "in place, probabilities")
        assert_close(loss, rloss, rtol_for(dtype), "loss, probabilities")


# ---- softmax, log_softmax, logsumexp ----------------------------------------------------------


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("shape,axis", [((7, 5), -1), ((7, 5), 0), ((33, 3), -1),
                                        ((2, 9, 4, 3), 1), ((300,), 0), ((4, 1000), -1)])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_normalizers_agree(rng, dtype, name, shape, axis):
    x = make_logits(rng, shape, dtype, scale=5.0)
    before = x.copy()
    got = getattr(cece, name)(x, axis=axis)
    expected = getattr(ref, name)(x, axis=axis)
    assert_close(got, expected, rtol_for(dtype), name)
    assert np.array_equal(x, before)
    if name != "logsumexp":
        out = np.empty_like(x)
        assert getattr(cece, name)(x, axis=axis, out=out) is out
        assert_close(out, expected, rtol_for(dtype), f"{name} out=")
        assert getattr(cece, name)(x, axis=axis, out=x) is x  # in place
        assert_close(x, expected, rtol_for(dtype), f"{name} out=x")
    else:
        assert np.ndim(got) == len(shape) - 1


# ---- dtype conversions of logits --------------------------------------------------------------


@pytest.mark.parametrize("in_dtype,compute", [(np.float16, np.float32), (np.int32, np.float64),
                                              (np.int8, np.float64), (np.bool_, np.float64),
                                              (np.uint16, np.float64)])
def test_logits_dtype_conversion(rng, in_dtype, compute):
    if in_dtype is np.float16:
        logits = make_logits(rng, (10, 6), np.float16)
    elif in_dtype is np.bool_:
        logits = rng.random((10, 6)) < 0.5
    else:
        logits = rng.integers(0, 5, size=(10, 6)).astype(in_dtype)
    y = make_labels(rng, (10,), 6)
    for reduction in REDUCTIONS:
        loss, grad = check_against_reference(cece, ref, logits, y, reduction=reduction,
                                             rtol=rtol_for(compute))
        assert np.asarray(loss).dtype == compute
        assert grad.dtype == compute
    # the compute dtype is what the caller would get by converting first
    expected = ref.cross_entropy_grad(logits.astype(compute), y)
    assert_close(cece.cross_entropy_grad(logits, y), expected, rtol_for(compute), "converted")
    assert cece.softmax(logits).dtype == compute


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("target_dtype", [np.float16, np.float32, np.float64])
def test_probability_target_dtypes(rng, dtype, target_dtype):
    """A probability target of another float dtype is converted to the compute dtype."""
    logits = make_logits(rng, (9, 4), dtype)
    target = make_probs(rng, (9, 4), -1, target_dtype)
    for reduction in REDUCTIONS:
        check_against_reference(cece, ref, logits, target, reduction=reduction)
    expected = ref.cross_entropy(logits, target.astype(dtype), reduction="none")
    assert_close(cece.cross_entropy(logits, target, reduction="none"), expected,
                 rtol_for(dtype), "converted target")


def test_array_likes(rng):
    """Nested lists and Python ints are accepted like arrays."""
    logits = make_logits(rng, (3, 4))
    y = [0, 3, 1]
    expected = ref.cross_entropy_with_grad(logits, np.array(y))
    loss, grad = cece.cross_entropy_with_grad(logits.tolist(), y)
    assert_close(loss, expected[0], 1e-12, "list loss")
    assert_close(grad, expected[1], 1e-12, "list grad")
    loss = cece.cross_entropy(logits, y, weight=[1, 2, 3, 4], sample_weight=[1, 0.5, 2])
    assert_close(loss, ref.cross_entropy(logits, np.array(y), weight=np.array([1., 2, 3, 4]),
                                         sample_weight=np.array([1, 0.5, 2])), 1e-12, "lists")


@pytest.mark.parametrize("target_kind", TARGETS)
def test_reference_entry_points_agree(rng, target_kind):
    """The oracle's own three entry points give the same numbers (the other tests compare
    cece's three against ref.cross_entropy_with_grad only)."""
    logits, target, kwargs = _problem(rng, (3, 4, 2, 3), 1, np.float64, target_kind, True)
    kwargs.update(weight=make_weight(rng, 4), label_smoothing=0.2, z_loss=0.01, softcap=2.0)
    for reduction in REDUCTIONS:
        loss, grad = ref.cross_entropy_with_grad(logits, target, reduction=reduction, **kwargs)
        assert np.array_equal(ref.cross_entropy(logits, target, reduction=reduction, **kwargs),
                              loss)
        assert np.array_equal(ref.cross_entropy_grad(logits, target, reduction=reduction,
                                                     **kwargs), grad)
