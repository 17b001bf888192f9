"""cece: softmax cross-entropy and its gradient for NumPy, in compiled, multithreaded C.

    >>> import numpy as np, cece
    >>> loss, grad = cece.cross_entropy_with_grad(logits, labels)

Functions: cross_entropy, cross_entropy_grad, cross_entropy_with_grad, log_softmax, softmax,
logsumexp, show_config. `cece.reference` is the same API in plain NumPy.

The instruction-set level of the kernels is the best this CPU runs, unless the environment
variable CECE_SIMD names one (baseline, avx2, avx512).
"""

import os as _os
import warnings as _warnings

from . import _core
from ._api import (
    cross_entropy,
    cross_entropy_grad,
    cross_entropy_with_grad,
    log_softmax,
    logsumexp,
    softmax,
)
from ._config import show_config
from ._version import __version__

__all__ = [
    "cross_entropy",
    "cross_entropy_grad",
    "cross_entropy_with_grad",
    "log_softmax",
    "softmax",
    "logsumexp",
    "show_config",
    "__version__",
]


def _select_simd_from_environment() -> None:
    forced = _os.environ.get("CECE_SIMD", "").strip().lower()
    try:
        _core.select_simd(forced or None)
    except ValueError as exc:
        _warnings.warn(f"CECE_SIMD={forced!r} ignored: {exc}", RuntimeWarning, stacklevel=2)
        _core.select_simd(None)


_select_simd_from_environment()
