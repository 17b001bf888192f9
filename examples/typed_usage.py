"""A small, fully annotated use of cece: a softmax-regression training loop.

It doubles as the typing check of cece's public API: ``mypy --strict examples/typed_usage.py``
must pass against the installed package (cece ships ``py.typed`` and the stub
``cece/_core.pyi``); tests/test_packaging.py runs it when mypy is installed
(``pip install "cece[typing]"``). Run it as a script to train for a few steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import cece

Float32Array = npt.NDArray[np.float32]
LabelArray = npt.NDArray[np.int64]


def make_data(n: int, features: int, classes: int, seed: int = 0) -> tuple[Float32Array, LabelArray]:
    """Linearly separable-ish blobs: features (n, features) and labels (n,)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, features)).astype(np.float32) * 3
    labels = rng.integers(0, classes, size=n).astype(np.int64)
    x = centers[labels] + rng.normal(size=(n, features)).astype(np.float32)
    return x, labels


def train_step(weights: Float32Array, x: Float32Array, y: LabelArray, lr: float,
               num_threads: int | None = None) -> float:
    """One gradient-descent step on the mean cross-entropy; returns the loss before it."""
    logits: Float32Array = x @ weights
    loss, dlogits = cece.cross_entropy_with_grad(logits, y, grad_out=logits,
                                                 label_smoothing=0.05,
                                                 num_threads=num_threads)
    grad_w: Float32Array = x.T @ dlogits
    weights -= np.float32(lr) * grad_w
    return float(loss)


def per_sample_losses(weights: Float32Array, x: Float32Array, y: LabelArray) -> Float32Array:
    losses: Float32Array = cece.cross_entropy(x @ weights, y, reduction="none")
    return losses


def predict_proba(weights: Float32Array, x: Float32Array) -> Float32Array:
    probs: Float32Array = cece.softmax(x @ weights, axis=-1)
    return probs


def accuracy(weights: Float32Array, x: Float32Array, y: LabelArray) -> float:
    predicted = np.argmax(cece.log_softmax(x @ weights), axis=-1)
    return float(np.mean(predicted == y))


def build_summary() -> dict[str, Any]:
    config = cece.show_config(mode="dicts")
    assert config is not None  # mode="dicts" returns the dict (mode="stdout" prints: None)
    return config


def main() -> None:
    x, y = make_data(2048, 16, 5)
    weights: Float32Array = np.zeros((16, 5), np.float32)
    first = train_step(weights, x, y, lr=0.5)
    loss = first
    for _ in range(50):
        loss = train_step(weights, x, y, lr=0.5, num_threads=1)
    worst = float(per_sample_losses(weights, x, y).max())
    lse = float(np.max(cece.logsumexp(x @ weights)))
    rows = predict_proba(weights, x).sum(axis=-1)
    summary = build_summary()
    print(f"cece {cece.__version__} ({summary['simd_selected']}, OpenMP: {summary['openmp']})")
    print(f"loss {first:.4f} -> {loss:.4f}, worst sample {worst:.3f}, max logsumexp {lse:.2f}, "
          f"accuracy {accuracy(weights, x, y):.3f}, softmax rows sum to 1: "
          f"{bool(np.allclose(rows, 1, atol=1e-5))}")


if __name__ == "__main__":
    main()
