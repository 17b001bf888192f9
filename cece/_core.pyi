"""Type stubs for the compiled module cece._core (private: cece._api is its only caller)."""

from typing import Any, Optional

import numpy as np

LOG_SOFTMAX: int
SOFTMAX: int
LOGSUMEXP: int

def cross_entropy(
    logits: np.ndarray, outer: int, classes: int, inner: int,
    labels: Optional[np.ndarray], probs: Optional[np.ndarray],
    weight: Optional[np.ndarray], sample_weight: Optional[np.ndarray],
    ignore_index: int, label_smoothing: float, z_loss: float, softcap: float,
    from_logits: bool, losses: Optional[np.ndarray], grad: Optional[np.ndarray],
    grad_scale: float, num_threads: int,
) -> tuple[float, float, int]: ...
def denominator(
    logits: np.ndarray, outer: int, classes: int, inner: int,
    labels: Optional[np.ndarray], probs: Optional[np.ndarray],
    weight: Optional[np.ndarray], sample_weight: Optional[np.ndarray],
    ignore_index: int, num_threads: int,
) -> tuple[float, int]: ...
def normalize(
    op: int, x: np.ndarray, outer: int, classes: int, inner: int, out: np.ndarray,
    num_threads: int,
) -> np.ndarray: ...
def exp_array(x: np.ndarray, out: np.ndarray) -> np.ndarray: ...
def select_simd(name: Optional[str] = ...) -> None: ...
def build_info() -> dict[str, Any]: ...
