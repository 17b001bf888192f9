"""Leaks: 100,000 calls across every public function (error paths included) grow the
resident set by less than 2 MiB, leave every input's reference count as it was, and leave
nothing behind for tracemalloc or the garbage collector.
"""

from __future__ import annotations

import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import cece

CALLS = 100_000
MiB = 1 << 20


def _rss() -> int:
    """Current resident set size in bytes (Linux), else the peak (which only grows)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _inputs():
    rng = np.random.default_rng(0)
    d = {
        "x": rng.standard_normal((4, 5)),
        "x32": rng.standard_normal((4, 5)).astype(np.float32),
        "x3": rng.standard_normal((2, 5, 3)),
        "y": np.array([0, 1, 4, 2]),
        "y3": np.array([[0, 1, 4], [2, -100, 3]]),
        "ybad": np.array([0, 1, 9, 2]),
        "p": rng.random((4, 5)),
        "w": np.linspace(0.5, 2, 5),
        "sw": np.array([1.0, 0.5, 2.0, 0.0]),
        "out": np.empty((4, 5)),
        "buf": np.empty((4, 5)),
        "xs": np.asfortranarray(rng.standard_normal((4, 5))),  # copied on every call
    }
    return d


def _bad(fn):
    try:
        fn()
    except (TypeError, ValueError, IndexError):
        return
    raise AssertionError("expected an error")


def _workload(d):
    """A list of zero-argument calls covering every public function and code path."""
    x, x32, x3, y, y3, ybad, p, w, sw, out, buf, xs = (d[k] for k in (
        "x", "x32", "x3", "y", "y3", "ybad", "p", "w", "sw", "out", "buf", "xs"))
    return [
        lambda: cece.cross_entropy(x, y),
        lambda: cece.cross_entropy(x32, y, reduction="none", label_smoothing=0.1, weight=w),
        lambda: cece.cross_entropy(x3, y3, axis=1, reduction="sum", sample_weight=np.ones((2, 3))),
        lambda: cece.cross_entropy(p, y, from_logits=False, reduction="none"),
        lambda: cece.cross_entropy(xs, p, z_loss=1e-3, softcap=5.0),
        lambda: cece.cross_entropy_grad(x, y, weight=w, sample_weight=sw),
        lambda: cece.cross_entropy_grad(x, p, out=out, reduction="sum"),
        lambda: cece.cross_entropy_grad(x3, y3, axis=1, softcap=3.0),
        lambda: cece.cross_entropy_with_grad(x32, y, z_loss=1e-4),
        lambda: cece.cross_entropy_with_grad(p, p, from_logits=False, reduction="none"),
        lambda: (np.copyto(buf, x), cece.cross_entropy_with_grad(buf, y, grad_out=buf)),
        lambda: cece.log_softmax(x),
        lambda: cece.log_softmax(x3, axis=1, out=np.empty_like(x3)),
        lambda: cece.softmax(x32, num_threads=1),
        lambda: cece.softmax(xs, axis=0),
        lambda: cece.logsumexp(x),
        lambda: cece.logsumexp(x3, axis=1),
        lambda: cece.logsumexp([1.0, 2.0, 3.0]),
        # error paths: in validation, after the kernel, in the denominator pre-pass
        lambda: _bad(lambda: cece.cross_entropy(x, ybad, reduction="sum")),
        lambda: _bad(lambda: cece.cross_entropy_grad(x, ybad)),
        lambda: _bad(lambda: cece.cross_entropy_with_grad(x, ybad, reduction="none")),
        lambda: _bad(lambda: cece.cross_entropy(x, y, weight=-w)),
        lambda: _bad(lambda: cece.cross_entropy_grad(x, y, out=x32)),
        lambda: _bad(lambda: cece.softmax(x, out=x32)),
        lambda: _bad(lambda: cece.logsumexp(x.astype(complex))),
    ]


def _run(calls, n):
    k = len(calls)
    for i in range(n):
        calls[i % k]()


def test_no_leaks_over_100k_calls():
    d = _inputs()
    calls = _workload(d)
    _run(calls, 10_000)  # warm up: caches, first-touch pages, allocator arenas
    gc.collect()
    refs_before = {k: sys.getrefcount(v) for k, v in d.items()}
    objects_before = len(gc.get_objects())
    rss_before = _rss()
    _run(calls, CALLS)
    gc.collect()
    rss_after = _rss()
    refs_after = {k: sys.getrefcount(v) for k, v in d.items()}
    objects_after = len(gc.get_objects())
    growth = rss_after - rss_before
    print(f"RSS growth over {CALLS} calls: {growth / MiB:.3f} MiB "
          f"({rss_before / MiB:.1f} -> {rss_after / MiB:.1f} MiB); "
          f"gc objects {objects_before} -> {objects_after}")
    assert growth < 2 * MiB, f"RSS grew by {growth / MiB:.2f} MiB over {CALLS} calls"
    assert refs_after == refs_before, {k: (refs_before[k], refs_after[k]) for k in d
                                       if refs_before[k] != refs_after[k]}
    assert objects_after - objects_before < 100


def test_tracemalloc_sees_nothing_left():
    """Every NumPy buffer and Python object made by a call is freed (tracemalloc traces
    NumPy's data allocations too)."""
    d = _inputs()
    calls = _workload(d)
    _run(calls, 2_000)
    gc.collect()
    tracemalloc.start()
    try:
        _run(calls, 500)
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot()
        _run(calls, 10_000)
        gc.collect()
        second, _ = tracemalloc.get_traced_memory()
        top = tracemalloc.take_snapshot().compare_to(snapshot, "lineno")[:5]
    finally:
        tracemalloc.stop()
    assert second - first < 64 * 1024, "traced memory grew by %d bytes:\n%s" % (
        second - first, "\n".join(map(str, top)))


@pytest.mark.parametrize("name", ["cross_entropy_with_grad", "softmax", "logsumexp"])
def test_refcounts_of_inputs_and_outputs(name):
    """A call leaves no reference behind on its inputs, its out= array, or on the dtype
    and option objects it was given."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 7))
    y = np.arange(6) % 7
    w = np.ones(7)
    out = np.empty_like(x)
    reduction = "sum"
    fn = getattr(cece, name)
    if name == "cross_entropy_with_grad":
        call = lambda: fn(x, y, weight=w, reduction=reduction, grad_out=out)
    else:
        call = lambda: fn(x, num_threads=1)
    call()
    before = [sys.getrefcount(o) for o in (x, y, w, out, reduction, x.dtype)]
    for _ in range(1000):
        call()
    after = [sys.getrefcount(o) for o in (x, y, w, out, reduction, x.dtype)]
    assert after == before
