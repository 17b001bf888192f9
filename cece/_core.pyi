"""Type stubs for the compiled module cece._core (private: cece._api is its only caller)."""

from typing import Any, Optional

import numpy as np

LOG_SOFTMAX: int
SOFTMAX: int
LOGSUMEXP: int

LOSS: int
GRAD: int
LOSS_AND_GRAD: int

def cross_entropy(
    call: Any, want: int, grad_out: Optional[np.ndarray], in_place: bool,
) -> Any: ...
def normalize(
    op: int, x: np.ndarray, axis: int, outer: int, classes: int, inner: int,
    out: Optional[np.ndarray], num_threads: int,
) -> Any: ...
def exp_array(x: np.ndarray, out: np.ndarray) -> np.ndarray: ...
def select_simd(name: Optional[str] = ...) -> None: ...
def build_info() -> dict[str, Any]: ...
