"""Hypothesis settings profiles for cece's property tests.

- "ci" (the default for tests/test_hypothesis.py): a few dozen examples per test,
  derandomised so that a CI run is reproducible, no example database.
- "long": 100,000 examples per test, for a soak run by hand.

pytest's hypothesis plugin loads the profile named by ``--hypothesis-profile=NAME`` while
pytest configures itself, before any test module is imported, so the profiles must be
registered by then. Either tests/conftest.py runs this file (see ``register()``), or the
plugin is named on the command line:

    PYTHONPATH=tests pytest -p conftest_hypothesis --hypothesis-profile=long tests/test_hypothesis.py

Without ``--hypothesis-profile`` tests/test_hypothesis.py uses "ci" on its own.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
    print_blob=True,
)


def register() -> None:
    """Register the "ci" and "long" profiles (idempotent; loads neither)."""
    settings.register_profile("ci", max_examples=60, derandomize=True, database=None, **_COMMON)
    settings.register_profile("long", max_examples=100_000, **_COMMON)


register()
