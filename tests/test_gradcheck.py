"""Gradients against central finite differences of the loss itself (float64), every option.

The gradient is of the reduced loss; for reduction="none" it is of the sum of the returned
per-position losses (which already carry the sample weights). Step h = 1e-6; the check is
normwise: max|g - fd| <= 1e-6 * max|fd|. The reference's gradient is checked the same way, so
the oracle of tests/test_agreement.py is itself independently verified.
"""

from __future__ import annotations

import numpy as np
import pytest

import cece
import cece.reference as ref
from cece_testing import (
    REDUCTIONS,
    assert_close,
    batch_shape_of,
    finite_difference_grad,
    make_labels,
    make_logits,
    make_positive,
    make_probs,
    make_sample_weight,
    make_weight,
)

FD_RTOL = 1e-6

# (id, options): every option alone, then together
OPTIONS = [
    ("plain", {}),
    ("softcap", {"softcap": 2.0}),
    ("z_loss", {"z_loss": 0.1}),
    ("label_smoothing", {"label_smoothing": 0.2}),
    ("weight", {"weight": "w"}),
    ("sample_weight", {"sample_weight": "sw"}),
    ("ignored_positions", {"ignore": True}),
    ("probability_target", {"probs": True}),
    ("from_logits_false", {"from_logits": False}),
    ("from_logits_false_probs", {"from_logits": False, "probs": True}),
    ("everything_logits", {"softcap": 2.5, "z_loss": 0.05, "label_smoothing": 0.15,
                           "weight": "w", "sample_weight": "sw", "ignore": True}),
    ("everything_logits_probs", {"softcap": 2.5, "z_loss": 0.05, "label_smoothing": 0.15,
                                 "weight": "w", "sample_weight": "sw", "probs": True}),
    ("everything_probabilities_in", {"from_logits": False, "label_smoothing": 0.15,
                                     "weight": "w", "sample_weight": "sw", "ignore": True}),
]
GEOMETRIES = [((3, 4), -1), ((2, 3, 2), 1), ((2, 3), 0)]


def _build(rng, shape, axis, options):
    C = shape[axis]
    batch = batch_shape_of(shape, axis)
    from_logits = options.get("from_logits", True)
    x = make_logits(rng, shape) if from_logits else make_positive(rng, shape, low=0.2)
    if options.get("probs"):
        target = make_probs(rng, shape, axis)
    else:
        target = make_labels(rng, batch, C)
        if options.get("ignore"):
            target.reshape(-1)[0] = -100
    kwargs = {"axis": axis, "from_logits": from_logits}
    for key in ("softcap", "z_loss", "label_smoothing"):
        if key in options:
            kwargs[key] = options[key]
    if options.get("weight"):
        kwargs["weight"] = make_weight(rng, C)
    if options.get("sample_weight"):
        kwargs["sample_weight"] = make_sample_weight(rng, batch)
    return x, target, kwargs


@pytest.mark.parametrize("impl", [cece, ref], ids=["cece", "reference"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,axis", GEOMETRIES, ids=["rows", "axis1", "axis0"])
@pytest.mark.parametrize("opt_id,options", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_gradient_matches_finite_differences(rng, impl, opt_id, options, shape, axis, reduction):
    x, target, kwargs = _build(rng, shape, axis, options)
    kwargs["reduction"] = reduction

    def f(z):
        return np.sum(impl.cross_entropy(z, target, **kwargs), dtype=np.float64)

    fd = finite_difference_grad(f, x, h=1e-6)
    grad = impl.cross_entropy_grad(x, target, **kwargs)
    assert_close(grad, fd, FD_RTOL, f"{opt_id} {reduction}", check_dtype=False)
    _, grad2 = impl.cross_entropy_with_grad(x, target, **kwargs)
    assert_close(grad2, fd, FD_RTOL, f"with_grad {opt_id} {reduction}", check_dtype=False)


@pytest.mark.parametrize("impl", [cece, ref], ids=["cece", "reference"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_normalizers_consistent_with_gradient(rng, impl, name):
    """Derivative identities tie the normalizers to the loss: d logsumexp / dx = softmax, and
    the gradient of sum(t * log_softmax) is t - softmax * sum(t)."""
    x = make_logits(rng, (3, 5))
    p = impl.softmax(x)
    if name == "logsumexp":
        fd = finite_difference_grad(lambda z: np.sum(impl.logsumexp(z)), x)
        assert_close(p, fd, FD_RTOL, "d lse / dx")
    elif name == "log_softmax":
        t = rng.random((3, 5))
        fd = finite_difference_grad(lambda z: np.sum(t * impl.log_softmax(z)), x)
        assert_close(t - p * t.sum(axis=-1, keepdims=True), fd, FD_RTOL, "d log_softmax")
    else:
        t = rng.random((3, 5))
        fd = finite_difference_grad(lambda z: np.sum(t * impl.softmax(z)), x)
        expected = p * (t - np.sum(t * p, axis=-1, keepdims=True))
        assert_close(expected, fd, FD_RTOL, "d softmax")


def test_one_dimensional_gradient(rng):
    """A single row (1-d logits, 0-d target)."""
    x = make_logits(rng, (6,))
    for target in (np.int64(2), 2, make_probs(rng, (6,))):
        for reduction in REDUCTIONS:
            kw = {"reduction": reduction, "softcap": 3.0, "z_loss": 0.02, "label_smoothing": 0.1}
            fd = finite_difference_grad(lambda z: np.sum(cece.cross_entropy(z, target, **kw)), x)
            assert_close(cece.cross_entropy_grad(x, target, **kw), fd, FD_RTOL, "1-d")
