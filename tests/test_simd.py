"""Every SIMD level this CPU runs (cece._core.build_info()["simd_supported"]): a representative
agreement run per level, agreement between levels, and the accuracy of the kernels' own
vectorised exp (cece._core.exp_array) over the whole range.

The ``simd_level`` fixture (tests/conftest.py) selects each level with
cece._core.select_simd and restores the one selected before.
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

LEVEL_AT_IMPORT = cece.show_config(mode="dicts")["simd_selected"]

# shapes that exercise every kernel path and vector tail: transposed blocks of short rows
# (C < 256; several vectors of classes from 17, fewer rows a block from 65), rows (one chunk
# and several), the (outer, C, inner) layout with inner not a multiple of the vector width
CASES = [
    ((37, 3), -1), ((21, 15), -1), ((21, 16), -1), ((21, 17), -1), ((45, 40), -1),
    ((37, 127), -1), ((19, 255), -1), ((7, 256), -1), ((5, 1000), -1),
    ((3, 5000), -1), ((2, 7, 13), 1), ((3, 20, 9), 1), ((2, 5, 3, 3), 1), ((9,), 0),
]


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_agreement_per_level(simd_level, rng, dtype):
    for shape, axis in CASES:
        C = shape[axis]
        batch = batch_shape_of(shape, axis)
        x = make_logits(rng, shape, dtype, scale=3.0)
        y = make_labels(rng, batch, C, ignore_index=-100, ignore_frac=0.2)
        t = make_probs(rng, shape, axis, dtype)
        full = {"weight": make_weight(rng, C), "sample_weight": make_sample_weight(rng, batch),
                "label_smoothing": 0.1}
        for reduction in REDUCTIONS:
            kw = {"axis": axis, "reduction": reduction}
            check_against_reference(cece, ref, x, y, what=f"{simd_level} {shape}", **kw)
            check_against_reference(cece, ref, x, y, what=f"{simd_level} {shape}", z_loss=1e-3,
                                    softcap=4.0, **full, **kw)
            check_against_reference(cece, ref, x, t, what=f"{simd_level} {shape}", **full, **kw)
            check_against_reference(cece, ref, make_positive(rng, shape, dtype), t,
                                    from_logits=False, what=f"{simd_level} {shape}", **full, **kw)
        for name in ("softmax", "log_softmax", "logsumexp"):
            assert_close(getattr(cece, name)(x, axis=axis), getattr(ref, name)(x, axis=axis),
                         rtol_for(dtype), f"{simd_level} {name} {shape}")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_special_values_per_level(simd_level, rng, dtype):
    x = make_logits(rng, (10, 20), dtype)
    x[1, 3] = np.nan
    x[2, :5] = -np.inf
    x[3] = -np.inf
    x[4, 7] = np.inf
    x[5] *= 1e30 if dtype == np.float64 else 1e28
    y = make_labels(rng, (10,), 20)
    y[2] = 10
    for reduction in REDUCTIONS:
        check_against_reference(cece, ref, x, y, reduction=reduction, what=simd_level)
    loss = cece.cross_entropy(x, y, reduction="none")
    assert np.array_equal(np.isnan(loss), np.isin(np.arange(10), [1, 3, 4]))


def test_levels_agree_with_each_other(rng):
    levels = cece._core.build_info()["simd_supported"]
    original = cece.show_config(mode="dicts")["simd_selected"]
    x = make_logits(rng, (300, 77), np.float32)
    y = make_labels(rng, (300,), 77)
    results = {}
    try:
        for level in levels:
            cece._core.select_simd(level)
            results[level] = cece.cross_entropy_with_grad(x, y, reduction="sum", softcap=5.0)
    finally:
        cece._core.select_simd(original)
    first = results[levels[0]]
    for level in levels[1:]:
        assert_close(results[level][0], first[0], 1e-5, f"{level} loss")
        assert_close(results[level][1], first[1], 1e-5, f"{level} grad")


def _at_level(level, fn):
    original = cece.show_config(mode="dicts")["simd_selected"]
    try:
        cece._core.select_simd(level)
        return fn()
    finally:
        cece._core.select_simd(original)


def _same_bits(a, b):
    """The same bits, except that a NaN may be any NaN (its sign and payload are not ours)."""
    a, b = np.asarray(a), np.asarray(b)
    nan = np.isnan(a)
    return np.array_equal(nan, np.isnan(b)) and a[~nan].tobytes() == b[~nan].tobytes()


class _label_exp:
    """With the AVX-512 float32 label-shifted forward on the polynomial exp (table=False, so
    that it computes the AVX2 kernel's bits) or on its own table form (the default)."""

    def __init__(self, table):
        self.table = table

    def __enter__(self):
        self.was = cece._core.label_exp_table(self.table)

    def __exit__(self, *exc):
        cece._core.label_exp_table(self.was)


def _fma_levels():
    supported = cece._core.build_info()["simd_supported"]
    if not {"avx2", "avx512"} <= set(supported):
        pytest.skip(f"needs a CPU with AVX2 and AVX-512 (this one: {supported})")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_avx512_shifted_exp_same_bits_as_avx2(rng, dtype):
    """AVX-512's shifted exp scales by vscalef, AVX2's by two multiplies (cece_avx512.h):
    the same rounding, so the same bits, subnormal results and special values included."""
    _fma_levels()
    low = -104.0 if dtype == np.float32 else -746.0
    x = np.concatenate([rng.uniform(low - 2, 0, 300_000), np.linspace(low - 2, 0, 100_001),
                        -rng.exponential(1e-3, 10_000), [0.0, -0.0, -np.inf, np.nan, low]])
    x = x.astype(dtype)
    exps = {level: _at_level(level, lambda: cece._core.exp_array(x, np.empty_like(x),
                                                                  shifted=True))
            for level in ("avx2", "avx512")}
    assert _same_bits(exps["avx512"], exps["avx2"])


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_avx512_small_classes_same_bits_as_avx2(rng, dtype):
    """The small-C kernel's AVX-512 class loop (intrinsics) against AVX2's (the portable
    loop): losses and gradients to the bit, ties, -inf, NaN and ignored rows included."""
    _fma_levels()
    for C in (1, 2, 3, 10, 15, 16, 17, 100, 255):
        x = make_logits(rng, (203, C), dtype, scale=30.0)
        x[rng.random(x.shape) < 0.05] = -np.inf
        x[5] = 0.0          # a row of ties
        x[7, 0] = np.nan
        x[9] -= 200.0       # exps far below the row's max: 0 and subnormal
        x[9, 0] = 0.0
        y = make_labels(rng, (203,), C, ignore_index=-100, ignore_frac=0.1)

        def run():
            with np.errstate(all="ignore"):
                return [cece.cross_entropy(x, y, reduction="none"),
                        *cece.cross_entropy_with_grad(x, y, reduction="mean"),
                        # the forward alone: float32 sums its lanes as logs of products
                        cece.cross_entropy(x, y, reduction="mean"),
                        cece.cross_entropy(x, y, reduction="sum")]

        with _label_exp(table=False):
            got = {level: _at_level(level, run) for level in ("avx2", "avx512")}
        for a, b in zip(got["avx512"], got["avx2"]):
            assert _same_bits(a, b), C


@pytest.mark.parametrize("confident", [False, True, "wrong"], ids=["plain", "tiny-U", "wrong"])
def test_avx512_small_forward_usual_blocks_same_bits_as_avx2(rng, confident):
    """The float32 forward of a mean or sum takes blocks whose rows all have a class and no
    tiny U through unmasked product steps (cece_small_product_f32): against AVX2's portable
    loop to the bit (its label-shifted blocks on the polynomial exp, as AVX2's), alone and
    beside blocks that take the masked steps (a row with U below 2^-29, a row's label
    ignored); with the table exp (the default), to the float64 reference as closely as
    AVX2's."""
    _fma_levels()
    for C in (1, 2, 3, 4, 10, 15, 16, 100):
        n = 3 * 4096 + 7  # several items, the last block partial
        x = make_logits(rng, (n, C), np.float32, scale=3.0)
        y = make_labels(rng, (n,), C)
        if confident == "wrong":  # labels below the max by 39 (a factor near e^39) and 45
            x[::89, :] = 0.0        # (the block done again with its maxima)
            x[::89][np.arange(len(x[::89])), y[::89]] = -39.0
            x[5::211, :] = 0.0
            x[5::211][np.arange(len(x[5::211])), y[5::211]] = -45.0
        elif confident:
            for r in range(0, n, 997):  # U far below 2^-29 in some blocks
                x[r] = -60.0
                x[r, y[r]] = 40.0
            y[[100, 5000]] = -100

        def run():
            return [cece.cross_entropy(x, y, reduction="mean"),
                    cece.cross_entropy(x, y, reduction="sum"),
                    cece.cross_entropy(x, y, reduction="sum", num_threads=1)]

        with _label_exp(table=False):
            got = {level: _at_level(level, run) for level in ("avx2", "avx512")}
        for a, b in zip(got["avx512"], got["avx2"]):
            assert _same_bits(a, b), C
        table = _at_level("avx512", run)
        want = [ref.cross_entropy(x.astype(np.float64), y, reduction=r)
                for r in ("mean", "sum", "sum")]
        assert _same_bits(table[1], table[2]), C  # whatever the thread count
        for t, a, w in zip(table, got["avx2"], want):
            assert abs(float(t) - w) <= max(abs(float(a) - w), 3e-7 * abs(w)), (C, t, a, w)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("shape, axis", [((37, 1000), -1), ((5, 3000), -1), ((3, 2100), -1),
                                         ((4, 300, 8, 8), 1), ((3, 40, 64), 1),
                                         ((2, 17, 130), 1)],
                         ids=["rows-1000", "rows-3000", "rows-2100", "tiles-full",
                              "tiles-40", "tiles-partial"])
def test_avx512_rows_and_tiles_same_bits_as_avx2(rng, dtype, shape, axis):
    """The row kernel's chunk loop and the tile kernel's class loop at AVX-512 (intrinsics,
    cece_avx512.h) against AVX2's portable loops: losses and gradients to the bit, with
    ties at the max, -inf, NaN, exps far below the max, and a later chunk raising the max."""
    _fma_levels()
    x = make_logits(rng, shape, dtype, scale=30.0)
    x[rng.random(x.shape) < 0.05] = -np.inf
    moved = np.moveaxis(x, axis, -1)  # a view: (..., C)
    rows = int(np.prod(moved.shape[:-1]))
    C = shape[axis]
    for r, fix in ((0, lambda v: v.fill(0.0)),                   # all ties
                   (1, lambda v: v.__setitem__(0, np.nan)),
                   (2, lambda v: v.__isub__(200.0)),             # exps of 0 and subnormals
                   (3, lambda v: v.__setitem__(C - 1, 500.0))):  # the max in the last chunk
        if r < rows:
            idx = np.unravel_index(r, moved.shape[:-1])
            fix(moved[idx])
    batch = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    y = make_labels(rng, batch, C, ignore_index=-100, ignore_frac=0.1)

    def run():
        with np.errstate(all="ignore"):
            return [cece.cross_entropy(x, y, axis=axis, reduction="none"),
                    *cece.cross_entropy_with_grad(x, y, axis=axis, reduction="sum")]

    got = {level: _at_level(level, run) for level in ("avx2", "avx512")}
    for a, b in zip(got["avx512"], got["avx2"]):
        assert _same_bits(a, b)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_shifted_exp_every_length(simd_level, rng, dtype):
    """The shifted exp's vector bodies and tails: lengths 0..40, every position written."""
    for n in range(41):
        x = -rng.exponential(5.0, n).astype(dtype)
        out = np.full_like(x, 123.0)
        cece._core.exp_array(x, out, shifted=True)
        err, _ = _ulp_error(out, x, dtype)
        assert err.size == 0 or err.max() <= 2.0, (n, err.max())


def test_select_simd_rejects_unknown_levels():
    original = cece.show_config(mode="dicts")["simd_selected"]
    compiled = cece._core.build_info()["simd_compiled"]
    supported = cece._core.build_info()["simd_supported"]
    try:
        with pytest.raises(ValueError):
            cece._core.select_simd("sse9")
        for level in compiled:
            if level not in supported:
                with pytest.raises(ValueError, match=level):
                    cece._core.select_simd(level)
        assert cece.show_config(mode="dicts")["simd_selected"] == original
    finally:
        cece._core.select_simd(original)


def test_simd_fixture_restores_the_level():
    """Runs after the parametrized tests above: the level is again the one selected when this
    module was imported."""
    info = cece._core.build_info()
    assert info["simd_selected"] == LEVEL_AT_IMPORT
    assert info["simd_selected"] in info["simd_supported"]


# ---- the kernels' exp ----------------------------------------------------------------------


def _ulp_error(result, x, dtype):
    """|result - exp(x)| in units in the last place of the exact value (subnormal ulps below
    the normal range), exp computed in long double (float64 if that is all there is)."""
    wide = np.longdouble if np.finfo(np.longdouble).nmant >= 63 else np.float64
    exact = np.exp(x.astype(wide))
    nmant = np.finfo(dtype).nmant
    tiny_ulp = wide(np.finfo(dtype).smallest_subnormal)
    _, k = np.frexp(exact)
    ulp = np.maximum(np.ldexp(wide(1), k - (nmant + 1)), tiny_ulp)
    return np.abs(result.astype(wide) - exact) / ulp, exact


# (id, float32 range, float64 range): together the whole range where exp is finite and not 0
RANGES = {
    "normal_results": ((-87.33, 88.0), (-708.39, 709.0)),
    "subnormal_results": ((-103.97, -87.34), (-745.13, -708.40)),
    "near_overflow": ((88.0, 88.7228), (709.0, 709.7827)),
}


def _samples(lo, hi, dtype, rng, n):
    x = np.concatenate([rng.uniform(lo, hi, n), np.linspace(lo, hi, n // 4)]).astype(dtype)
    return x[(x >= lo) & (x <= hi)]


@pytest.mark.parametrize("part", list(RANGES))
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_exp_ulp_error(simd_level, rng, dtype, part):
    lo, hi = RANGES[part][0 if dtype == np.float32 else 1]
    x = _samples(lo, hi, dtype, rng, 400_000)
    out = np.empty_like(x)
    assert cece._core.exp_array(x, out) is out
    err, exact = _ulp_error(out, x, dtype)
    worst = int(np.argmax(err))
    assert err[worst] <= 2.0, (
        f"{simd_level} {np.dtype(dtype).name} {part}: {err[worst]:.3g} ulp at x={x[worst]!r}: "
        f"got {out[worst]!r}, exp(x) = {float(exact[worst])!r}")
    if dtype == np.float64:
        # against NumPy's own exp (itself within 1 ulp of the exact value)
        _, k = np.frexp(np.exp(x))
        ulp = np.maximum(np.ldexp(1.0, k - 53), np.finfo(np.float64).smallest_subnormal)
        err_np = np.abs(out - np.exp(x)) / ulp
        assert err_np.max() <= 3.0, (simd_level, part, err_np.max(), x[np.argmax(err_np)])


# The kernels' sums use a cheaper exp for max-shifted arguments, x <= 0 (one scaling, and a
# select instead of clamps): the same accuracy over its range, subnormal results included.
SHIFTED_RANGES = {
    "normal_results": ((-87.33, 0.0), (-708.39, 0.0)),
    "subnormal_results": ((-103.97, -87.34), (-745.13, -708.40)),
    "near_zero": ((-1e-3, 0.0), (-1e-3, 0.0)),
}


@pytest.mark.parametrize("part", list(SHIFTED_RANGES))
@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_shifted_exp_ulp_error(simd_level, rng, dtype, part):
    lo, hi = SHIFTED_RANGES[part][0 if dtype == np.float32 else 1]
    x = _samples(lo, hi, dtype, rng, 400_000)
    out = cece._core.exp_array(x, np.empty_like(x), shifted=True)
    err, exact = _ulp_error(out, x, dtype)
    worst = int(np.argmax(err))
    assert err[worst] <= 2.0, (
        f"{simd_level} {np.dtype(dtype).name} {part}: {err[worst]:.3g} ulp at x={x[worst]!r}: "
        f"got {out[worst]!r}, exp(x) = {float(exact[worst])!r}")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_shifted_exp_special_values(simd_level, dtype):
    low = -104.0 if dtype == np.float32 else -746.0
    x = np.array([-np.inf, np.nan, -np.nan, 0.0, -0.0, -1.0, low, low - 1, -1e30,
                  -np.finfo(dtype).max, -np.finfo(dtype).smallest_subnormal], dtype=dtype)
    out = cece._core.exp_array(x, np.empty_like(x), shifted=True)
    expected = np.array([0.0, np.nan, np.nan, 1.0, 1.0, 1 / np.e, 0.0, 0.0, 0.0, 0.0, 1.0],
                        dtype=dtype)
    close = np.isclose(out, expected, rtol=4 * np.finfo(dtype).eps, atol=0, equal_nan=True)
    assert close.all(), list(zip(x[~close], out[~close], expected[~close]))
    assert np.array_equal(np.isnan(out), np.isnan(expected))
    assert out[3] == 1.0 and out[4] == 1.0  # exactly: the sums count the maxima's 1s


# The float32 label-shifted forward's table exp (cece_math.h, cece_exp_label_f32): the
# AVX-512 kernel's vector form, and its scalar model at the other levels.
LABEL_RANGES = {
    "normal_results": (-87.33, 88.0),
    "subnormal_results": (-103.97, -87.34),
    "near_overflow": (88.0, 88.7228),
    "near_zero": (-1e-3, 1e-3),
}


@pytest.mark.parametrize("part", list(LABEL_RANGES))
def test_label_exp_ulp_error(simd_level, rng, part):
    """Within 1.75 ulp (every float32 in [-104, 88.72]: 1.736 at most,
    benchmarks/exp_accuracy.py); the polynomial forms stay within 1.2."""
    lo, hi = LABEL_RANGES[part]
    x = _samples(lo, hi, np.float32, rng, 400_000)
    out = cece._core.exp_array(x, np.empty_like(x), label=True)
    err, exact = _ulp_error(out, x, np.float32)
    worst = int(np.argmax(err))
    assert err[worst] <= 1.75, (
        f"{simd_level} {part}: {err[worst]:.3g} ulp at x={x[worst]!r}: got {out[worst]!r}, "
        f"exp(x) = {float(exact[worst])!r}")


def test_label_exp_special_values(simd_level):
    """0 from -104 down and for -inf, inf from 88.73 up: also where the reduced argument is
    garbage (x beyond about 1.8e5; the forward redoes such a block), never 0 or a negative."""
    x = np.array([-np.inf, np.nan, 0.0, -0.0, 1.0, -1.0, 89.0, 2e5, 1e7, 3.3e7, 7.7e7,
                  1e30, np.finfo(np.float32).max, -104.0, -1e30, -np.finfo(np.float32).max],
                 dtype=np.float32)
    out = cece._core.exp_array(x, np.empty_like(x), label=True)
    expected = np.array([0.0, np.nan, 1.0, 1.0, np.e, 1 / np.e] + [np.inf] * 7 +
                        [0.0] * 3, dtype=np.float32)
    close = np.isclose(out, expected, rtol=2e-7, atol=0, equal_nan=True)
    assert close.all(), list(zip(x[~close], out[~close], expected[~close]))
    assert out[2] == 1.0 and out[3] == 1.0  # the label's own term is exactly 1
    # +inf: r is inf - inf, and vscalef(NaN, +inf) is +inf on Intel's AVX-512, NaN in the
    # scalar model; either sends the forward's block to be done again with its maxima
    inf = np.array([np.inf], np.float32)
    assert np.isinf(cece._core.exp_array(inf, np.empty_like(inf), label=True)[0]) or \
        np.isnan(cece._core.exp_array(inf, np.empty_like(inf), label=True)[0])
    big = np.float32(2.0) ** np.arange(17, 128, dtype=np.float32)  # k far past its 32nds
    big = np.concatenate([big, np.nextafter(big, np.float32(np.inf)),
                          np.linspace(1.8e5, 3e8, 100_001, dtype=np.float32)])
    assert np.all(cece._core.exp_array(big, np.empty_like(big), label=True) == np.inf)


def test_avx512_label_exp_same_bits_as_its_model(rng):
    """The AVX-512 vector form (vpermt2ps, vscalef) against its scalar model in C, which the
    AVX2 level runs: the same bits over the range, subnormal results and specials included
    (but +inf: test_label_exp_special_values)."""
    _fma_levels()
    x = np.concatenate([rng.uniform(-106, 90, 600_000), np.linspace(-106, 90, 200_001),
                        rng.uniform(-1e-3, 1e-3, 10_000),
                        [0.0, -0.0, -np.inf, np.nan, -104.0, 88.72, 1e30, -1e30]])
    x = x.astype(np.float32)
    exps = {level: _at_level(level, lambda: cece._core.exp_array(x, np.empty_like(x),
                                                                  label=True))
            for level in ("avx2", "avx512")}
    assert _same_bits(exps["avx512"], exps["avx2"])


def test_label_exp_every_length(simd_level, rng):
    for n in range(71):
        x = rng.uniform(-20, 20, n).astype(np.float32)
        out = np.full_like(x, 123.0)
        cece._core.exp_array(x, out, label=True)
        err, _ = _ulp_error(out, x, np.float32)
        assert err.size == 0 or err.max() <= 1.75, (n, err.max())
    with pytest.raises(TypeError, match="float32"):
        cece._core.exp_array(np.zeros(3), np.zeros(3), label=True)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_exp_special_values(simd_level, dtype):
    big = 89.0 if dtype == np.float32 else 710.0
    low = -104.0 if dtype == np.float32 else -746.0
    x = np.array([-np.inf, np.inf, np.nan, 0.0, -0.0, 1.0, -1.0, big, 1e30, -1e30, low,
                  np.finfo(dtype).max, -np.finfo(dtype).max, np.finfo(dtype).smallest_subnormal,
                  -np.finfo(dtype).smallest_subnormal, -np.nan], dtype=dtype)
    out = cece._core.exp_array(x, np.empty_like(x))
    expected = np.array([0.0, np.inf, np.nan, 1.0, 1.0, np.e, 1 / np.e, np.inf, np.inf, 0.0, 0.0,
                         np.inf, 0.0, 1.0, 1.0, np.nan]).astype(dtype)
    close = np.isclose(out, expected, rtol=4 * np.finfo(dtype).eps, atol=0, equal_nan=True)
    assert close.all(), list(zip(x[~close], out[~close], expected[~close]))
    assert np.array_equal(np.isnan(out), np.isnan(expected))
    assert np.array_equal(np.isinf(out), np.isinf(expected))
    assert np.all(out[~np.isnan(out)] >= 0)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
def test_exp_every_length(simd_level, rng, dtype):
    """Vector bodies and scalar tails: lengths 0..70, values at every position."""
    for n in range(71):
        x = rng.uniform(-20, 20, n).astype(dtype)
        if n > 3:
            x[-1] = np.nan
            x[n // 2] = -np.inf
        out = np.full_like(x, 123.0)
        cece._core.exp_array(x, out)
        err, _ = _ulp_error(out[np.isfinite(x)], x[np.isfinite(x)], dtype)
        assert err.size == 0 or err.max() <= 2.0, (n, err.max())
        if n > 3:
            assert np.isnan(out[-1]) and out[n // 2] == 0.0
    # in place
    x = rng.uniform(-5, 5, 33).astype(dtype)
    expected = cece._core.exp_array(x, np.empty_like(x))
    cece._core.exp_array(x, x)
    assert np.array_equal(x, expected)


@pytest.mark.parametrize("dtype,gap", [(np.float32, 95.0), (np.float64, 720.0)],
                         ids=["f32", "f64"])
def test_subnormal_probabilities_not_flushed(simd_level, dtype, gap):
    """Softmax entries (and gradient entries) whose value is subnormal: IEEE arithmetic gives
    the subnormal, not 0 (the reference rounds its float64 value to the dtype)."""
    x = np.array([[0.0, -gap, 1.0]], dtype=dtype)
    y = np.array([2])
    expected = ref.softmax(x)
    assert 0 < expected[0, 1] < np.finfo(dtype).smallest_normal
    got = cece.softmax(x)
    assert np.isclose(got[0, 1], expected[0, 1], rtol=0.01, atol=0), (got, expected)
    grad = cece.cross_entropy_grad(x, y, reduction="sum")
    assert np.isclose(grad[0, 1], expected[0, 1], rtol=0.01, atol=0), grad
