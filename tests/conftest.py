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
