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
def ready_cross_entropy(
    want: int, logits: Any, target: Any, axis: Any, weight: Any, sample_weight: Any,
    ignore_index: Any, label_smoothing: Any, reduction: Any, from_logits: Any, z_loss: Any,
    softcap: Any, num_threads: Any, grad_out: Any,
) -> Any: ...
def ready_normalize(op: int, x: Any, axis: Any, out: Any, num_threads: Any) -> Any: ...
def exp_array(
    x: np.ndarray, out: np.ndarray, shifted: bool = ..., label: bool = ...,
) -> np.ndarray: ...
def label_exp_table(on: bool) -> bool: ...
def select_simd(name: Optional[str] = ...) -> None: ...
def build_info() -> dict[str, Any]: ...
