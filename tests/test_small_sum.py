"""The float32 forward of a mean or a sum over rows of fewer than 256 classes (no weights,
smoothing, z-loss or softcap): csrc/cece_kernel_small.h sums each lane's losses as the log of
a product of 1 + U (the sum of a row's exps but the max's, U = S - 1), tiny U apart, instead of
one log per row. These tests hold it to the float64 reference, to its own per-row losses, and
to the special values the per-row form gives, at every SIMD level.
"""

from __future__ import annotations

import numpy as np
import pytest

import cece
import cece.reference as ref
from cece_testing import make_labels, make_logits


def _ref64(x, y, reduction, **kw):
    return float(ref.cross_entropy(x.astype(np.float64), y, reduction=reduction, **kw))


@pytest.mark.parametrize("C", [1, 2, 3, 7, 10, 15, 16, 31, 100, 255])
@pytest.mark.parametrize("n", [1, 31, 32, 33, 1000, 4099])
def test_mean_and_sum_match_float64(simd_level, rng, C, n):
    """Ordinary rows, some ignored, partial blocks: within a few float32 ulps of float64."""
    x = make_logits(rng, (n, C), np.float32, scale=3.0)
    y = make_labels(rng, (n,), C, ignore_index=-100, ignore_frac=0.1)
    for reduction in ("mean", "sum"):
        got = float(cece.cross_entropy(x, y, reduction=reduction))
        want = _ref64(x, y, reduction)
        if np.isnan(want):  # every row ignored: the mean is nan
            assert np.isnan(got)
            continue
        assert abs(got - want) <= 4e-7 * abs(want) + 1e-30, (reduction, got, want)


def test_agrees_with_its_own_per_row_losses(simd_level, rng):
    """The mean equals the per-row losses' mean (taken in float64) to float32 rounding."""
    for C in (2, 10, 50):
        x = make_logits(rng, (20_000, C), np.float32, scale=4.0)
        y = make_labels(rng, (20_000,), C, ignore_index=-100, ignore_frac=0.05)
        losses = cece.cross_entropy(x, y, reduction="none").astype(np.float64)
        kept = y != -100
        mean = float(cece.cross_entropy(x, y))
        assert mean == pytest.approx(losses[kept].mean(), rel=3e-7, abs=0)


@pytest.mark.parametrize("margin", [5.0, 15.0, 21.0, 25.0, 40.0, 90.0])
def test_confident_rows_keep_their_relative_accuracy(simd_level, rng, margin):
    """Losses of 1e-2 down to 1e-39: U on both sides of 2^-29 (where 1 + U stops being exact
    in a double and U is summed instead), the mean still right to float32 precision."""
    n, C = 5000, 10
    x = rng.standard_normal((n, C)).astype(np.float32)
    y = rng.integers(0, C, n)
    x[np.arange(n), y] += np.float32(margin)
    got = float(cece.cross_entropy(x, y))
    want = _ref64(x, y, "mean")
    assert want > 0
    assert got == pytest.approx(want, rel=1e-6, abs=0)


def test_many_blocks_in_an_item_scale_the_product(simd_level):
    """Two classes of equal logits: each row's 1 + U is 2, so a lane's product doubles every
    block, and an item of 4096 rows (128 blocks) passes the point where it is scaled back."""
    for n in (4096, 70_000):
        x = np.zeros((n, 2), np.float32)
        y = np.zeros(n, np.int64)
        assert float(cece.cross_entropy(x, y)) == pytest.approx(np.log(2.0), rel=1e-7, abs=0)
        assert float(cece.cross_entropy(x, y, reduction="sum")) == pytest.approx(
            n * np.log(2.0), rel=1e-7)


def test_special_values_as_the_per_row_form(simd_level):
    """NaN in a kept row makes the mean NaN; a label on a -inf logit makes it inf; NaN or inf
    in an ignored row changes nothing; ties at the max are exact."""
    x = np.zeros((100, 10), np.float32)
    y = np.zeros(100, np.int64)
    with np.errstate(all="ignore"):
        nan_row = x.copy()
        nan_row[40, 3] = np.nan
        assert np.isnan(cece.cross_entropy(nan_row, y))
        minus_inf = x.copy()
        minus_inf[41, 0] = -np.inf
        assert cece.cross_entropy(minus_inf, y) == np.inf
        ignored = nan_row.copy()
        ignored[42] = np.inf
        y_ign = y.copy()
        y_ign[[40, 42]] = -100
        assert cece.cross_entropy(ignored, y_ign) == pytest.approx(np.log(10.0), rel=1e-7, abs=0)
    # all ten classes tied: every loss is log(10), U = 9 exactly
    assert float(cece.cross_entropy(x, y, reduction="sum")) == pytest.approx(
        100 * np.log(10.0), rel=1e-7)


def test_ignore_index_inside_the_classes(simd_level, rng):
    """ignore_index in [0, C): a block's labels are classified one by one (the fast check,
    labels below C as unsigned, would take the ignored class for a class)."""
    C = 10
    x = make_logits(rng, (3000, C), np.float32)
    y = rng.integers(0, C, 3000)
    for reduction in ("mean", "sum"):
        got = float(cece.cross_entropy(x, y, ignore_index=4, reduction=reduction))
        want = _ref64(x, y, reduction, ignore_index=4)
        assert got == pytest.approx(want, rel=4e-7, abs=0)


def test_out_of_range_label_is_an_error(rng):
    x = make_logits(rng, (1000, 10), np.float32)
    y = rng.integers(0, 10, 1000)
    y[777] = 10
    with pytest.raises(IndexError, match="777"):
        cece.cross_entropy(x, y)
    y[777] = -3
    with pytest.raises(IndexError, match="777"):
        cece.cross_entropy(x, y)


@pytest.mark.parametrize("margin", [18.0, 22.5, 26.0, 28.5, 31.0, 34.0])
def test_identical_confident_rows(simd_level, margin):
    """Every row alike, U = 9 e^-margin from 1e-7 down to 1e-14 (across 2^-29): a rounding
    of 1 + U would repeat in every row instead of averaging out."""
    n, C = 4000, 10
    x = np.zeros((n, C), np.float32)
    y = np.arange(n) % C
    x[np.arange(n), y] = np.float32(margin)
    got = float(cece.cross_entropy(x, y))
    want = _ref64(x, y, "mean")
    assert got == pytest.approx(want, rel=1e-6, abs=0)


@pytest.mark.parametrize("margin", [30.0, 37.0, 39.0, 43.5, 60.0, 100.0])
def test_wrong_predictions_by_a_wide_margin(simd_level, rng, margin):
    """The label's logit below the others by 30 to 100. The kernel shifts a full block by its
    labels' logits, so that a row's 1 + U = 1 + 9 e^margin reaches e^40 (up to 37 here: the
    lane's product is rescaled before it can overflow), and does a block again shifted by
    its maxima when a row's U passes e^40 (from 39 here)."""
    n, C = 4096, 10
    x = np.zeros((n, C), np.float32)
    y = rng.integers(0, C, n)
    x[np.arange(n), y] = -np.float32(margin)
    want = _ref64(x, y, "mean")
    assert float(cece.cross_entropy(x, y)) == pytest.approx(want, rel=1e-6, abs=0)
    # the same rows among ordinary ones: some blocks shifted by the label, some redone
    x2 = make_logits(rng, (n, C), np.float32, scale=3.0)
    x2[::37] = x[::37]
    y2 = make_labels(rng, (n,), C)
    y2[::37] = y[::37]
    for reduction in ("mean", "sum"):
        want = _ref64(x2, y2, reduction)
        assert float(cece.cross_entropy(x2, y2, reduction=reduction)) == pytest.approx(
            want, rel=1e-6, abs=0)


def test_infinite_label_logits(simd_level):
    """A label on +inf gives NaN (the row holds inf - inf), as the per-row form; on -inf, inf;
    another class on +inf, NaN."""
    x = np.zeros((100, 10), np.float32)
    y = np.zeros(100, np.int64)
    with np.errstate(all="ignore"):
        for value, col, check in ((np.inf, 0, np.isnan), (-np.inf, 0, np.isposinf),
                                  (np.inf, 5, np.isnan)):
            z = x.copy()
            z[70, col] = value
            for reduction in ("mean", "sum"):
                assert check(cece.cross_entropy(z, y, reduction=reduction)), (value, col)
            assert check(cece.cross_entropy(z, y, reduction="none")[70]), (value, col)
