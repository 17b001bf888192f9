"""cece.show_config(): how this copy of cece was built and what it runs on this CPU."""

from __future__ import annotations

import sys
from typing import Any, Optional

import numpy as np

from . import _core
from ._version import __version__


def show_config(mode: str = "stdout") -> Optional[dict[str, Any]]:
    """Print (mode="stdout") or return (mode="dicts") the build and runtime configuration.

    Reports the compiler, whether OpenMP is compiled in and its default thread count, the
    SIMD levels compiled into the extension, those this CPU supports and the one selected
    (``CECE_SIMD`` forces one), and the Python and NumPy versions.

    Examples
    --------
    >>> import cece
    >>> cece.show_config(mode="dicts")["openmp"] in (True, False)
    True
    """
    info = _core.build_info()
    config = {
        "version": __version__,
        "compiler": info["compiler"],
        "openmp": info["openmp"],
        "threads": info["default_threads"],
        "simd_compiled": info["simd_compiled"],
        "simd_supported": info["simd_supported"],
        "simd_selected": info["simd_selected"],
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }
    if mode == "dicts":
        return config
    if mode != "stdout":
        raise ValueError(f"mode must be 'stdout' or 'dicts', got {mode!r}")
    print(f"cece {config['version']}")
    print(f"  compiler:       {config['compiler']}")
    print(f"  OpenMP:         {'yes' if config['openmp'] else 'no'}")
    print(f"  threads:        {config['threads']} (default)")
    print(f"  SIMD compiled:  {' '.join(config['simd_compiled'])}")
    print(f"  SIMD supported: {' '.join(config['simd_supported'])}")
    print(f"  SIMD selected:  {config['simd_selected']}")
    print(f"  Python {config['python']}, NumPy {config['numpy']}")
    return None
