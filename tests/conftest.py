"""Shared fixtures of cece's test suite.

The plain helpers (tolerance check, data makers) live in tests/cece_testing.py; this file puts
tests/ on sys.path so that the test modules can import them under pytest's importlib mode.

Fixtures:
- ``rng``: a NumPy Generator seeded from the test's id (reproducible, different per test);
- ``simd_level``: parametrized over every SIMD level this CPU runs
  (``cece._core.build_info()["simd_supported"]``); selects it for the test and restores the
  level that was selected before.
"""

from __future__ import annotations

import importlib.util
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import cece  # noqa: E402


def _register_hypothesis_profiles() -> None:
    """Register the "ci"/"long" profiles of tests/conftest_hypothesis.py (if present), so that
    ``--hypothesis-profile=long`` works for the whole suite."""
    path = _HERE / "conftest_hypothesis.py"
    if not path.exists() or importlib.util.find_spec("hypothesis") is None:
        return
    spec = importlib.util.spec_from_file_location("conftest_hypothesis", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception:  # pragma: no cover - a broken sibling file must not hide our tests
        return
    sys.modules.setdefault("conftest_hypothesis", module)


_register_hypothesis_profiles()


def _supported_levels():
    return list(cece._core.build_info()["simd_supported"])


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(params=_supported_levels())
def simd_level(request):
    original = cece.show_config(mode="dicts")["simd_selected"]
    cece._core.select_simd(request.param)
    assert cece.show_config(mode="dicts")["simd_selected"] == request.param
    try:
        yield request.param
    finally:
        cece._core.select_simd(original)
        assert cece.show_config(mode="dicts")["simd_selected"] == original


# Known failures at the far ends of the float range, found by tests/test_extremes.py and not
# fixed yet (open work of the reliability issue). Strict: a fix makes them fail loudly until
# they are taken off this list.
KNOWN_FAILURES = {
    "test_mean_gradient_with_tiny_denominator[weight-float32-cece]":
        "mean with D ~ 1e-300: the gradient scale 1/D overflows before it meets the tiny "
        "weights (needs s/D folded into the coefficients)",
    "test_mean_gradient_with_tiny_denominator[weight-float64-cece]": "as above",
    "test_mean_gradient_with_tiny_denominator[weight-float64-reference]": "as above",
    "test_mean_gradient_with_tiny_denominator[sample_weight-float64-cece]": "as above",
    "test_probability_inputs_gradient_scaled_back_into_range[reference]":
        "the reference divides by a tiny row sum before scaling",
    "test_label_smoothing_with_logits_spanning_the_float64_range":
        "sum of a_j * d_j overflows float64 when logits span 1e308",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        reason = KNOWN_FAILURES.get(item.name)
        if reason is not None and item.module.__name__.endswith("test_extremes"):
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
