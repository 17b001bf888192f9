"""Speed of cece against pure NumPy, PyTorch, JAX/optax and scikit-learn, and a roofline.

    python benchmarks/bench_speed.py [--threads N] [--quick] [--json PATH] [--plot PATH]
                                     [--markdown PATH] [--libs ...] [--cases ...]

For every case (shape, class axis) in float32 and float64, with integer labels and
reduction "mean", it times two operations:

  forward   the loss alone
  fwd+grad  the loss and its gradient with respect to the logits

for each library (peers are optional: one that cannot be imported is skipped with a note):

  cece        cece.cross_entropy / cece.cross_entropy_with_grad (num_threads=N)
  cece[out]   cece.cross_entropy_with_grad(..., grad_out=buf): the gradient written into a
              preallocated array (no fresh N x C allocation and its page faults)
  numpy       cece.reference, the pure-NumPy twin (NumPy is single-threaded here)
  torch       torch.nn.functional.cross_entropy, under no_grad for the forward; the gradient
              by torch.autograd.grad on a leaf tensor made once (torch.set_num_threads(N))
  jax         optax.softmax_cross_entropy_with_integer_labels(...).mean(), jax.jit; the
              gradient by jax.jit(jax.value_and_grad(...)); block_until_ready; inputs are
              put on the device before timing
  sklearn     sklearn._loss.loss.HalfMultinomialLoss().loss(...).mean() and
              .loss_gradient(...) with n_threads=N. Its gradient is that of the *sum* of the
              per-sample losses (the 1/N of the mean is not applied: that would be one more
              pass which we do not charge to it); it needs (n, C) rows, so it sits out the
              class-axis-1 case.

and three streaming rooflines on the same logits array, measured in the same run:

  read        the fastest of several ways to read the logits once: x.max(), x.sum(),
              x2d @ ones (OpenBLAS gemv, threadpoolctl-limited to N threads), and x.max()
              over N row blocks on N Python threads (NumPy releases the GIL); the table says
              which one won
  copy        the fastest of np.copyto(dst, x) and the same split over N threads, into a
              preallocated dst: read the logits once and write an array of the same size
  fresh copy  the fastest of x.copy() and np.empty_like(x) filled by N threads: the same,
              into a new array each call, whose pages the kernel zeroes on first touch

The forward cannot beat `read`. Plain fwd+grad returns a fresh gradient array, so it cannot
beat `fresh copy`; cece[out] writes into warm preallocated pages and cannot beat `copy`.
The ratios reported are those like-for-like pairs: cece / read, cece / fresh copy,
cece[out] / copy.

Per-call cost (case "32x10"): a 32 x 10 batch, where the time is the Python call's
overhead. cece.cross_entropy against F.cross_entropy under no_grad, and
cece.cross_entropy_with_grad against F.cross_entropy + torch.autograd.grad, on inputs and
tensors made once; timeit loops of up to 1000 calls (fewer if a call is slow) divided by
their number, the (library, op) loops alternating over 11 rounds (5 with --quick); the
median over rounds. PyTorch is timed with N threads (the criterion's setting) and, for
reference, with one.

Timing: each library is called once for the agreement check (and JAX's compilation), then
again as warm-up; then R rounds (7, or 3 with --quick) in which every (library, operation)
runs in turn, in an order that rotates from round to round so that the libraries share the
machine's noise; within a round each runs as many calls as fit in about 0.1 s (0.03 s with
--quick), at least one. A library whose single call takes longer than 0.5 s (pure NumPy on
the large shapes) is timed 3 times in all (1 with --quick), the estimating call after its
warm-up included. The time reported is the median of all the timed calls
(time.perf_counter). The ratios in the tables compare numbers from the same run.

Threads: --threads N (default 2) is given to every library that takes a count (cece's
num_threads, torch.set_num_threads, sklearn's n_threads, threadpoolctl for OpenBLAS). JAX has
no thread-count setting: XLA_FLAGS is set to "--xla_cpu_multi_thread_eigen=true
intra_op_parallelism_threads=N" before jax is imported (as commonly suggested; the second
word is not an XLA flag and XLA ignores it), and - what actually limits XLA's CPU thread
pool, which is sized from the process's CPU affinity - when N is smaller than the number of
CPUs this process may use, the process is pinned to N CPUs (os.sched_setaffinity) before
anything is imported; that applies to every library alike. To check, the script measures
for every library and operation the CPU time the process used during its timed calls
divided by their wall time ("cpu/wall"), which is about the number of busy threads; it is
printed in the tables and summarised per library at the end.

Agreement: the first result of every library is compared with cece.reference on the same
inputs (max|a - b| / max|b|, the larger of loss and gradient), so that a peer that computes
something else would show.

Acceptance: at the end, issue 3's criteria evaluated on this run's numbers, one line each:
PASS / FAIL with the measured ratio, "not measured" when a case, dtype or library it needs
did not run (never PASS), "info" for a dtype outside a criterion's scope; notes say when
the run cannot settle them (threads other than 2, --quick, a loaded machine).

Writes a JSON file (--json, default benchmarks/results/speed.json) with every number and
the acceptance checks; if matplotlib is installed, a PNG (--plot, default
benchmarks/results/speed.png): per case, each library's time relative to cece (log scale),
forward and fwd+grad, with the rooflines as horizontal lines; with --markdown PATH, the
summary tables as Markdown for README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import timeit
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))

# (label, shape, class axis)
CASES = [
    ("65536x10", (65536, 10), -1),
    ("8192x1000", (8192, 1000), -1),
    ("1024x32000", (1024, 32000), -1),
    ("128x128256", (128, 128256), -1),
    ("64x1000x8x8/ax1", (64, 1000, 8, 8), 1),
]
CASE_BY_LABEL = {label: (shape, axis) for label, shape, axis in CASES}
DTYPES = ["float32", "float64"]
OPS = ("fwd", "grad")
ROOFLINES = ("read", "copy", "copy_fresh")
OP_NAMES = {"fwd": "forward", "grad": "fwd+grad"}

# The per-call cost case: a tiny batch, where the time is the Python call's overhead.
OVERHEAD_LABEL = "32x10"
OVERHEAD_SHAPE = (32, 10)
OVERHEAD_CALLS, OVERHEAD_CALLS_QUICK = 1000, 200  # calls per measurement, at most
OVERHEAD_BUDGET_S = 0.1  # ... fewer if they would take longer than this
TORCH_ONE_THREAD = "torch 1 thread"
OVERHEAD_ROUNDS, OVERHEAD_ROUNDS_QUICK = 11, 5
SLOW_CALL_S = 0.5


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="threads for every library (2)")
    ap.add_argument("--quick", action="store_true", help="a short run: fewer, shorter rounds")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 7, quick 3)")
    ap.add_argument("--round-budget", type=float, default=None,
                    help="seconds per (library, op) per round (default 0.1, quick 0.03)")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "speed.json"))
    ap.add_argument("--plot", default=os.path.join(HERE, "results", "speed.png"),
                    help="PNG path ('' for none); needs matplotlib")
    ap.add_argument("--markdown", default="", metavar="PATH",
                    help="also write the summary tables as Markdown (for README.md)")
    ap.add_argument("--libs", default="cece,cece[out],numpy,torch,jax,sklearn",
                    help="comma-separated subset of libraries")
    ap.add_argument("--cases", default=None,
                    help="comma-separated subset of case labels, e.g. 65536x10,8192x1000; "
                         f"{OVERHEAD_LABEL} is the per-call cost case")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    if args.rounds is None:
        args.rounds = 3 if args.quick else 7
    if args.round_budget is None:
        args.round_budget = 0.03 if args.quick else 0.1
    return args


def configure_threads(n: int) -> dict[str, Any]:
    """Environment and affinity for n threads; must run before numpy/torch/jax import."""
    notes = {}
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_cpu_multi_thread_eigen=true"
                               f" intra_op_parallelism_threads={n}").strip()
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    notes["XLA_FLAGS"] = os.environ["XLA_FLAGS"]
    notes["OMP_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"]
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    notes["cpus_available"] = len(cpus) if cpus else os.cpu_count()
    if cpus and n < len(cpus):
        os.sched_setaffinity(0, cpus[:n])
        notes["affinity"] = f"pinned to CPUs {cpus[:n]}"
    else:
        notes["affinity"] = "not changed" + (
            f" (warning: {n} threads on {len(cpus)} CPUs oversubscribes)"
            if cpus and n > len(cpus) else "")
    return notes


# ---------------------------------------------------------------------------------------
# Libraries: each returns {"fwd": callable, "grad": callable} for one (logits, labels, axis)
# and a function turning a call's result into (loss as float, gradient as ndarray or None)
# scaled like the mean's gradient, for the agreement check.


class Peers:
    def __init__(self, wanted: set[str], threads: int):
        import numpy as np

        import cece
        import cece.reference

        self.np = np
        self.threads = threads
        self.cece = cece
        self.reference = cece.reference
        self.notes: dict[str, str] = {}
        self.versions: dict[str, str] = {"numpy": np.__version__, "cece": cece.__version__}
        self.available = [lib for lib in ("cece", "cece[out]", "numpy") if lib in wanted]
        self.torch = self.jax = self.jnp = self.optax = self.skl_loss = None
        if "torch" in wanted:
            try:
                import torch

                torch.set_num_threads(threads)
                self.torch = torch
                self.versions["torch"] = torch.__version__
                self.available.append("torch")
            except ImportError as exc:
                self.notes["torch"] = f"skipped: cannot import torch ({exc})"
        if "jax" in wanted:
            try:
                import jax

                jax.config.update("jax_enable_x64", True)  # for the float64 rows
                import jax.numpy as jnp
                import optax

                self.jax, self.jnp, self.optax = jax, jnp, optax
                self.versions["jax"] = jax.__version__
                self.versions["optax"] = optax.__version__
                self.available.append("jax")
            except ImportError as exc:
                self.notes["jax"] = f"skipped: cannot import jax/optax ({exc})"
        if "sklearn" in wanted:
            try:
                import sklearn
                from sklearn._loss.loss import HalfMultinomialLoss

                self.skl_loss = HalfMultinomialLoss
                self.versions["sklearn"] = sklearn.__version__
                self.available.append("sklearn")
            except ImportError as exc:
                self.notes["sklearn"] = f"skipped: cannot import scikit-learn ({exc})"
        try:
            from threadpoolctl import threadpool_info, threadpool_limits

            self.threadpool_limits = threadpool_limits
            self.versions["threadpoolctl"] = __import__("threadpoolctl").__version__
            self.blas = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
                         for i in threadpool_info() if i["user_api"] == "blas"]
        except ImportError:
            self.threadpool_limits = None
            self.blas = []
            self.notes["threadpoolctl"] = ("not installed: the gemv read of the roofline "
                                           "uses BLAS's own thread count")

    def set_torch_threads(self, threads: int) -> None:
        if self.torch is not None and self.torch.get_num_threads() != threads:
            self.torch.set_num_threads(threads)

    def make(self, lib: str, x, y, axis: int):
        """(callables by op, result -> (loss, grad) converter), or None if not applicable."""
        np, n = self.np, self.threads
        if lib == "cece":
            ce = self.cece
            return ({"fwd": lambda: ce.cross_entropy(x, y, axis=axis, num_threads=n),
                     "grad": lambda: ce.cross_entropy_with_grad(x, y, axis=axis, num_threads=n)},
                    _pair)
        if lib == "cece[out]":
            ce = self.cece
            buf = np.empty_like(x)
            return ({"grad": lambda: ce.cross_entropy_with_grad(
                        x, y, axis=axis, num_threads=n, grad_out=buf)}, _pair)
        if lib == "numpy":
            ref = self.reference
            return ({"fwd": lambda: ref.cross_entropy(x, y, axis=axis),
                     "grad": lambda: ref.cross_entropy_with_grad(x, y, axis=axis)}, _pair)
        if lib == "torch":
            torch = self.torch
            F = torch.nn.functional
            tx = torch.from_numpy(x)  # shares memory with x
            ty = torch.from_numpy(y.astype(np.int64))
            if axis not in (1, -1) or (axis == -1 and x.ndim > 2):
                return None  # torch wants the class dim at 1 (or (N, C) input)

            def fwd():
                with torch.no_grad():
                    return F.cross_entropy(tx, ty)

            leaf = tx.detach().requires_grad_(True)  # made once, as a training loop would

            def grad():
                loss = F.cross_entropy(leaf, ty)
                (g,) = torch.autograd.grad(loss, leaf)
                return loss.detach(), g

            def convert(r):
                if isinstance(r, tuple):
                    return float(r[0]), r[1].numpy()
                return float(r), None

            return {"fwd": fwd, "grad": grad}, convert
        if lib == "jax":
            jax, jnp, optax = self.jax, self.jnp, self.optax
            jx = jax.device_put(jnp.asarray(x))
            jy = jax.device_put(jnp.asarray(y.astype(np.int32)))
            jx.block_until_ready()

            def mean_loss(z, labels):
                return optax.softmax_cross_entropy_with_integer_labels(z, labels, axis=axis).mean()

            f = jax.jit(mean_loss)
            fg = jax.jit(jax.value_and_grad(mean_loss))

            def fwd():
                return f(jx, jy).block_until_ready()

            def grad():
                loss, g = fg(jx, jy)
                g.block_until_ready()
                return loss, g

            def convert(r):
                if isinstance(r, tuple):
                    return float(r[0]), np.asarray(r[1])
                return float(r), None

            return {"fwd": fwd, "grad": grad}, convert
        if lib == "sklearn":
            if x.ndim != 2 or axis not in (1, -1):
                return None
            loss_obj = self.skl_loss(n_classes=x.shape[1])
            yt = y.astype(x.dtype)  # HalfMultinomialLoss wants y_true in the logits' dtype
            rows = x.shape[0]

            def fwd():
                return loss_obj.loss(yt, x, n_threads=n).mean()

            def grad():
                loss, g = loss_obj.loss_gradient(yt, x, n_threads=n)
                return loss.mean(), g

            def convert(r):
                if isinstance(r, tuple):  # gradient of the sum: scale to the mean's
                    return float(r[0]), r[1] / rows
                return float(r), None

            return {"fwd": fwd, "grad": grad}, convert
        raise ValueError(lib)

    def roofline(self, x) -> dict[str, dict[str, Callable[[], Any]]]:
        """Candidates for the three streaming rooflines on the array x, by kind.

        read        read x once (the forward's bound)
        copy        read x, write a preallocated array of its size (cece[out]'s bound)
        copy_fresh  read x, write a freshly allocated array of its size (plain cece's
                    bound: a new gradient array pays the kernel's zeroing of its pages on
                    first touch, which a copy into warm preallocated pages does not)
        """
        return {"read": self._read_candidates(x), "copy": self._copy_candidates(x),
                "copy_fresh": self._fresh_copy_candidates(x)}

    def _read_candidates(self, x) -> dict[str, Callable[[], Any]]:
        np, n = self.np, self.threads
        flat = x.reshape(-1)
        k = next(d for d in (4096, 2048, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1)
                 if flat.size % d == 0)
        x2d = flat.reshape(-1, k)
        ones = np.ones(k, x.dtype)
        limits = self.threadpool_limits

        def gemv():
            if limits is None:
                return x2d @ ones
            with limits(n, user_api="blas"):
                return x2d @ ones

        read = {"x.max()": x.max, "x.sum()": x.sum, "gemv x@1": gemv}
        if n > 1:
            read[f"max on {n} threads"] = lambda: self._on_threads(np.max, flat)
        return read

    def _copy_candidates(self, x) -> dict[str, Callable[[], Any]]:
        np, n = self.np, self.threads
        dst = np.empty_like(x)
        np.copyto(dst, x)  # fault its pages in now: the timed copies write warm pages
        copy = {"np.copyto": lambda: np.copyto(dst, x)}
        if n > 1:
            copy[f"copyto on {n} threads"] = lambda: self._on_threads(
                np.copyto, dst.reshape(-1), x.reshape(-1))
        return copy

    def _fresh_copy_candidates(self, x) -> dict[str, Callable[[], Any]]:
        np, n = self.np, self.threads

        def split_copy():
            dst = np.empty_like(x)  # new pages each call, first touched by the threads
            self._on_threads(np.copyto, dst.reshape(-1), x.reshape(-1))
            return dst

        fresh = {"x.copy()": x.copy}
        if n > 1:
            fresh[f"empty_like + copyto on {n} threads"] = split_copy
        return fresh

    def _on_threads(self, fn: Callable[..., Any], *flats) -> list:
        """fn over N contiguous blocks of the 1-d arrays, one block per pool thread
        (NumPy releases the GIL for max and copyto)."""
        n = self.threads
        size = flats[-1].size
        bounds = [size * i // n for i in range(n + 1)]
        futures = [self._pool().submit(fn, *(a[bounds[i]:bounds[i + 1]] for a in flats))
                   for i in range(n)]
        return [f.result() for f in futures]

    _executor: Optional[ThreadPoolExecutor] = None

    def _pool(self) -> ThreadPoolExecutor:
        if Peers._executor is None:
            Peers._executor = ThreadPoolExecutor(max(1, self.threads))
        return Peers._executor


def _pair(r):
    import numpy as np

    if isinstance(r, tuple):
        return float(r[0]), np.asarray(r[1])
    return float(r), None


def rel_diff(a, b) -> float:
    import numpy as np

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    err = float(np.max(np.abs(a - b), initial=0.0))
    scale = float(np.max(np.abs(b), initial=0.0))
    return err / scale if scale > 0 else err


def agreement(fn: Callable[[], Any], convert, ref_loss: float, ref_grad) -> float:
    """Call fn once; the relative difference of its loss (and gradient) from the reference's."""
    loss, grad = convert(fn())
    d = rel_diff(loss, ref_loss)
    if grad is not None:
        d = max(d, rel_diff(grad, ref_grad))
    return d


# ---------------------------------------------------------------------------------------


class Timer:
    """Per-call wall times and the process CPU time used during them.

    Created after the function's first call (the warm-up); it calls it once more to
    estimate its time. A call slower than SLOW_CALL_S keeps that estimate as its first
    sample (repeating such calls many times would take minutes)."""

    def __init__(self, fn: Callable[[], Any]):
        self.fn = fn
        self.samples: list[float] = []
        self.wall = 0.0
        self.cpu = 0.0
        self.run(1)
        self.est = self.samples[0]
        if self.est <= SLOW_CALL_S:
            self.samples, self.wall, self.cpu = [], 0.0, 0.0

    def run(self, calls: int) -> None:
        pc, cpu = time.perf_counter, time.process_time
        for _ in range(calls):
            c0 = cpu()
            t0 = pc()
            self.fn()
            t1 = pc()
            c1 = cpu()
            self.samples.append(t1 - t0)
            self.wall += t1 - t0
            self.cpu += c1 - c0

    def median(self) -> float:
        import numpy as np

        return float(np.median(self.samples))


def run_case(peers: Peers, libs: list[str], label: str, shape: tuple, axis: int, dtype: str,
             args: argparse.Namespace, rng) -> dict[str, Any]:
    np = peers.np
    classes = shape[axis]
    batch = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    y = rng.integers(0, classes, size=batch)
    result: dict[str, Any] = {"case": label, "shape": list(shape), "axis": axis, "dtype": dtype,
                              "bytes": int(x.nbytes), "libs": {}, "roofline": {}, "skipped": {}}

    # Oracle: the reference's results (its first calls are also its warm-up).
    ref_loss, ref_grad = peers.reference.cross_entropy_with_grad(x, y, axis=axis)
    ref_loss = float(ref_loss)

    timers: dict[tuple[str, str], Timer] = {}
    for lib in libs:
        made = peers.make(lib, x, y, axis)
        if made is None:
            result["skipped"][lib] = "not applicable to this layout"
            continue
        fns, convert = made
        info: dict[str, Any] = {}
        for op, fn in fns.items():
            if lib == "numpy":
                info[f"{op}_rel_diff"] = 0.0  # it is the oracle; its call above warmed it up
            else:  # its first call, the agreement check, is its warm-up (JAX compiles here)
                info[f"{op}_rel_diff"] = agreement(fn, convert, ref_loss, ref_grad)
            timers[(lib, op)] = Timer(fn)  # its first call: warm-up and time estimate
        result["libs"][lib] = info
    del ref_grad
    for kind, cands in peers.roofline(x).items():
        for name, fn in cands.items():
            fn()
            timers[(f"roof:{kind}", name)] = Timer(fn)
    gc.collect()

    keys = list(timers)
    slow_calls = 1 if args.quick else 3
    for r in range(args.rounds):
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            t = timers[key]
            if t.est > SLOW_CALL_S:
                if len(t.samples) < slow_calls:
                    t.run(1)
                continue
            t.run(max(1, min(200, round(args.round_budget / max(t.est, 1e-7)))))

    for (lib, op), t in timers.items():
        if lib.startswith("roof:"):
            result["roofline"].setdefault(lib[5:], {})[op] = {
                "ms": 1e3 * t.median(), "calls": len(t.samples)}
        else:
            result["libs"][lib][f"{op}_ms"] = 1e3 * t.median()
            result["libs"][lib][f"{op}_calls"] = len(t.samples)
            result["libs"][lib][f"{op}_cpu_per_wall"] = t.cpu / t.wall if t.wall else math.nan
    for kind in ROOFLINES:
        cands = result["roofline"][kind]
        best = min(cands, key=lambda name: cands[name]["ms"])
        result["roofline"][f"{kind}_ms"] = cands[best]["ms"]
        result["roofline"][f"{kind}_best"] = best
    add_ratios(result)
    return result


def add_ratios(result: dict[str, Any]) -> None:
    """Every library's time / cece's, and cece's time / the roofline it is bound by:
    forward / read, fwd+grad (fresh gradient) / fresh copy, cece[out] / preallocated copy."""
    cece_info = result["libs"].get("cece")
    if not cece_info:
        return
    for info in result["libs"].values():
        for op in OPS:
            if f"{op}_ms" in info and f"{op}_ms" in cece_info:
                info[f"{op}_vs_cece"] = info[f"{op}_ms"] / cece_info[f"{op}_ms"]
    roof = result["roofline"]
    result["cece_fwd_vs_read"] = cece_info["fwd_ms"] / roof["read_ms"]
    result["cece_grad_vs_copy_fresh"] = cece_info["grad_ms"] / roof["copy_fresh_ms"]
    if "cece[out]" in result["libs"]:
        result["cece_out_grad_vs_copy"] = (result["libs"]["cece[out]"]["grad_ms"]
                                           / roof["copy_ms"])


def run_overhead_case(peers: Peers, dtype: str, args: argparse.Namespace,
                      rng) -> dict[str, Any]:
    """Per-call cost on a tiny batch (OVERHEAD_SHAPE): cece against PyTorch.

    Inputs (and torch's tensors) are made once. Each measurement is a timeit loop of many
    calls (GC off, as timeit does) divided by their number: one call is a few microseconds,
    too short to time alone. The measurements of all (library, op) pairs alternate, in an
    order rotating each round; reported: the median over rounds of the time per call.
    PyTorch runs with N threads (the criterion's setting) and, for reference, with one:
    at N > 1 it may fork a parallel region even for 32 rows, which a busy machine makes
    very slow."""
    x = (rng.standard_normal(OVERHEAD_SHAPE) * 3).astype(dtype)
    y = rng.integers(0, OVERHEAD_SHAPE[1], size=OVERHEAD_SHAPE[0])
    ref_loss, ref_grad = peers.reference.cross_entropy_with_grad(x, y)
    rounds = OVERHEAD_ROUNDS_QUICK if args.quick else OVERHEAD_ROUNDS
    result: dict[str, Any] = {"shape": list(OVERHEAD_SHAPE), "dtype": dtype, "rounds": rounds,
                              "max_calls": OVERHEAD_CALLS_QUICK if args.quick else OVERHEAD_CALLS,
                              "libs": {}}
    loops: dict[tuple[str, str], tuple[timeit.Timer, int, int]] = {}  # loop, calls, threads
    for lib, base, threads in overhead_libs(peers):
        fns, convert = peers.make(base, x, y, -1)
        info = result["libs"][lib] = {"threads": threads}
        for op, fn in fns.items():
            peers.set_torch_threads(threads)
            info[f"{op}_rel_diff"] = agreement(fn, convert, float(ref_loss), ref_grad)
            loop = timeit.Timer(fn)
            calls = calls_per_measurement(loop, args.quick)
            info[f"{op}_calls_per_measurement"] = calls
            loops[(lib, op)] = (loop, calls, threads)
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in loops}
    keys = list(loops)
    for r in range(rounds):
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            loop, calls, threads = loops[key]
            peers.set_torch_threads(threads)
            samples[key].append(loop.timeit(calls) / calls)
    peers.set_torch_threads(peers.threads)
    for (lib, op), per_call in samples.items():
        result["libs"][lib][f"{op}_us"] = 1e6 * statistics.median(per_call)
        result["libs"][lib][f"{op}_us_min"] = 1e6 * min(per_call)  # for a loaded machine
    add_overhead_ratios(result)
    return result


def overhead_libs(peers: Peers) -> list[tuple[str, str, int]]:
    """(name, library, threads) of the per-call case's rows."""
    rows = [("cece", "cece", peers.threads)]
    if "torch" in peers.available:
        rows.append(("torch", "torch", peers.threads))
        if peers.threads > 1:
            rows.append((TORCH_ONE_THREAD, "torch", 1))
    return rows


def calls_per_measurement(loop: timeit.Timer, quick: bool) -> int:
    """Warm the loop up and size it: up to OVERHEAD_CALLS calls, fewer when a call is so
    slow that they would take longer than OVERHEAD_BUDGET_S."""
    warm = 20
    per_call = loop.timeit(warm) / warm
    most = OVERHEAD_CALLS_QUICK if quick else OVERHEAD_CALLS
    return max(warm, min(most, round(OVERHEAD_BUDGET_S / max(per_call, 1e-9))))


def add_overhead_ratios(result: dict[str, Any]) -> None:
    """cece's time per call / PyTorch's, at N threads (the criterion) and at one."""
    libs = result["libs"]
    for torch_row, key in (("torch", "cece_vs_torch"), (TORCH_ONE_THREAD, "cece_vs_torch_1t")):
        if "cece" in libs and torch_row in libs:
            result[key] = {op: libs["cece"][f"{op}_us"] / libs[torch_row][f"{op}_us"]
                           for op in OPS}


def print_overhead(overhead: list[dict[str, Any]]) -> None:
    if not overhead:
        return
    first = overhead[0]
    shape = "x".join(map(str, first["shape"]))
    rows = list(first["libs"])
    print(f"\nPer-call cost, {shape}: microseconds per call (timeit loops of up to "
          f"{first['max_calls']} calls, median of {first['rounds']} rounds); inputs and "
          f"torch tensors made once")
    print(f"  {'dtype':<8} {'op':<9} " + " ".join(f"{lib + ' us':>17}" for lib in rows)
          + f" {'cece/torch':>10} {'cece/torch 1t':>13} {'max rel diff':>12}")
    for res in overhead:
        for op in OPS:
            cells = [fmt_us(res["libs"][lib].get(f"{op}_us")) for lib in rows]
            diff = max(info[f"{op}_rel_diff"] for info in res["libs"].values())
            print(f"  {res['dtype']:<8} {OP_NAMES[op]:<9} "
                  + " ".join(f"{c:>17}" for c in cells)
                  + f" {fmt_ratio(res.get('cece_vs_torch', {}).get(op)):>10}"
                  f" {fmt_ratio(res.get('cece_vs_torch_1t', {}).get(op)):>13} {diff:12.1e}")
    if "torch" not in first["libs"]:
        print("  torch not measured (not installed or not in --libs)")


def fmt_us(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}"


def fmt_diff(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.1e}"


def fmt_ms(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def fmt_ratio(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}x" if v < 0.1 else f"{v:.2f}x" if v < 10 else f"{v:.1f}x"


def print_case(res: dict[str, Any]) -> None:
    roof = res["roofline"]
    mb = res["bytes"] / 2**20
    print(f"\n{res['case']} {res['dtype']} ({mb:.1f} MiB of logits)")
    head = (f"  {'library':<10} {'fwd ms':>9} {'vs cece':>8} {'cpu/wall':>8} {'rel diff':>9} |"
            f" {'fwd+grad ms':>11} {'vs cece':>8} {'cpu/wall':>8} {'rel diff':>9}")
    print(head)
    for lib, info in res["libs"].items():
        cols = []
        for op in OPS:
            if f"{op}_ms" in info:
                cols.append(f"{fmt_ms(info[f'{op}_ms']):>{9 if op == 'fwd' else 11}} "
                            f"{fmt_ratio(info.get(f'{op}_vs_cece')):>8} "
                            f"{info[f'{op}_cpu_per_wall']:8.2f} "
                            f"{info[f'{op}_rel_diff']:9.1e}")
            else:
                cols.append(f"{'-':>{9 if op == 'fwd' else 11}} {'':>8} {'':>8} {'':>9}")
        print(f"  {lib:<10} {cols[0]} | {cols[1]}")
    for lib, why in res["skipped"].items():
        print(f"  {lib:<10} {why}")
    print(f"  roofline: read {fmt_ms(roof['read_ms'])} ms ({roof['read_best']}); "
          f"copy {fmt_ms(roof['copy_ms'])} ms ({roof['copy_best']}); "
          f"fresh copy {fmt_ms(roof['copy_fresh_ms'])} ms ({roof['copy_fresh_best']})")
    print(f"  cece fwd / read = {fmt_ratio(res.get('cece_fwd_vs_read'))}; "
          f"cece fwd+grad / fresh copy = {fmt_ratio(res.get('cece_grad_vs_copy_fresh'))}"
          + (f"; cece[out] fwd+grad / copy = {fmt_ratio(res['cece_out_grad_vs_copy'])}"
             if "cece_out_grad_vs_copy" in res else ""), flush=True)


# Roofline ratio columns of the summary tables: (header, result key) per operation.
ROOF_COLUMNS = {
    "fwd": [("cece/read", "cece_fwd_vs_read")],
    "grad": [("cece/fresh", "cece_grad_vs_copy_fresh"), ("out/copy", "cece_out_grad_vs_copy")],
}


def print_summary(results: list[dict[str, Any]], libs: list[str]) -> None:
    peers = [lib for lib in libs if lib not in ("cece", "cece[out]")]
    for op, title in (("fwd", "forward"), ("grad", "forward+gradient")):
        print(f"\nSummary, {title}: cece ms; peer time / cece time (> 1: cece faster); "
              + ("cece / read roofline" if op == "fwd" else
                 "cece / fresh-copy roofline, cece[out] / preallocated-copy roofline"))
        head = (f"  {'case':<18} {'dtype':<7} {'cece ms':>8} "
                + " ".join(f"{lib:>8}" for lib in peers)
                + "".join(f" {name:>10}" for name, _ in ROOF_COLUMNS[op]))
        print(head)
        for res in results:
            ce = res["libs"].get("cece", {})
            cells = [fmt_ratio(res["libs"].get(lib, {}).get(f"{op}_vs_cece")) for lib in peers]
            print(f"  {res['case']:<18} {res['dtype']:<7} {fmt_ms(ce.get(f'{op}_ms')):>8} "
                  + " ".join(f"{c:>8}" for c in cells)
                  + "".join(f" {fmt_ratio(res.get(key)):>10}" for _, key in ROOF_COLUMNS[op]))


def thread_summary(results: list[dict[str, Any]], libs: list[str]) -> dict[str, Any]:
    import numpy as np

    summary = {}
    print("\nThreads actually busy: CPU time / wall time during the timed calls "
          "(median over cases; the machine's other load lowers it)")
    for lib in libs:
        for op in OPS:
            vals = [r["libs"][lib][f"{op}_cpu_per_wall"] for r in results
                    if lib in r["libs"] and f"{op}_cpu_per_wall" in r["libs"][lib]]
            if vals:
                summary[f"{lib}/{op}"] = float(np.median(vals))
                print(f"  {lib:<10} {op:<5} {np.median(vals):5.2f}  "
                      f"(min {min(vals):.2f}, max {max(vals):.2f})")
    return summary


# ---------------------------------------------------------------------------------------
# Acceptance: issue 3's criteria, evaluated on this run's numbers. Every check is one
# line with a status: PASS / FAIL; "not measured" when a case, dtype or library it needs
# was not run (never PASS); "info" for a dtype outside the criterion's scope (the issue
# says float32 unless it says otherwise), shown with the same limit for reference.

ROOF_FWD_MAX = 2.0      # forward / read roofline, C >= 32000
ROOF_GRAD_MAX = 1.5     # fwd+grad / read+write roofline, C >= 32000
NUMPY_MIN_LARGE = 8.0   # numpy time / cece time at C >= 1000
NUMPY_MIN_SMALL = 4.0   # ... at C = 10
JAX_MIN_SMALL = 2.0     # jax time / cece time at C = 10
PER_ELEMENT_MAX = 1.5   # ns per logit, small C or axis=1 / large-C rows
OVERHEAD_MAX = 0.5      # cece / torch per call at 32x10
ACCEPTANCE_THREADS = 2
BOTH_DTYPES = ("float32", "float64")
FLOAT32_ONLY = ("float32",)
PEER_LIBS = ("torch", "jax", "sklearn")
NOT_RUN = "case not run"


def case_classes(label: str) -> int:
    shape, axis = CASE_BY_LABEL[label]
    return shape[axis]


def large_c_row_cases() -> list[str]:
    return [label for label, (shape, axis) in CASE_BY_LABEL.items()
            if axis == -1 and shape[axis] >= 32000]


def new_check(criterion: str, subject: str, status: str, value: Optional[float] = None,
              limit: Optional[str] = None, detail: str = "") -> dict[str, Any]:
    return {"criterion": criterion, "subject": subject, "status": status, "value": value,
            "limit": limit, "detail": detail}


def judged(criterion: str, subject: str, value: float, passed: bool, limit: str,
           detail: str, in_scope: bool) -> dict[str, Any]:
    """PASS/FAIL for a measured value, or "info" (with the verdict it would get in the
    detail) when the dtype is outside the criterion's scope."""
    if in_scope:
        return new_check(criterion, subject, "PASS" if passed else "FAIL", value, limit, detail)
    note = f"outside the criterion's dtype scope; would {'pass' if passed else 'fail'}"
    return new_check(criterion, subject, "info", value, limit,
                     f"{detail}; {note}" if detail else note)


class Measured:
    """Look-ups into one run's results: None where a case/dtype/library was not measured."""

    def __init__(self, results: list[dict[str, Any]], overhead: list[dict[str, Any]]):
        self.by_case = {(r["case"], r["dtype"]): r for r in results}
        self.overhead = {r["dtype"]: r for r in overhead}

    def case(self, label: str, dtype: str) -> Optional[dict[str, Any]]:
        return self.by_case.get((label, dtype))

    def ms(self, label: str, dtype: str, lib: str, op: str) -> Optional[float]:
        res = self.case(label, dtype)
        return None if res is None else res["libs"].get(lib, {}).get(f"{op}_ms")

    def ns_per_logit(self, label: str, dtype: str, op: str) -> Optional[float]:
        ms = self.ms(label, dtype, "cece", op)
        return None if ms is None else 1e6 * ms / math.prod(CASE_BY_LABEL[label][0])


def roofline_checks(m: Measured) -> list[dict[str, Any]]:
    """C >= 32000: forward <= 2x read; fwd+grad <= 1.5x read+write, judged twice: the
    plain call (fresh gradient) against a copy into a fresh array, and cece[out] against
    a copy into a preallocated one."""
    specs = [("fwd", "cece", "read", ROOF_FWD_MAX, "forward / read roofline"),
             ("grad", "cece", "copy_fresh", ROOF_GRAD_MAX, "fwd+grad / fresh-copy roofline"),
             ("grad", "cece[out]", "copy", ROOF_GRAD_MAX, "cece[out] fwd+grad / copy roofline")]
    checks = []
    for label in large_c_row_cases():
        for dtype in BOTH_DTYPES:
            for op, lib, roof, limit, what in specs:
                subject = f"{label} {dtype}"
                res, ms = m.case(label, dtype), m.ms(label, dtype, lib, op)
                if ms is None:
                    checks.append(new_check(what, subject, "not measured", limit=f"<= {limit}x",
                                            detail=NOT_RUN if res is None
                                            else f"{lib} not measured"))
                    continue
                roof_ms = res["roofline"][f"{roof}_ms"]
                ratio = ms / roof_ms
                checks.append(judged(what, subject, ratio, ratio <= limit, f"<= {limit}x",
                                     f"{lib} {fmt_ms(ms)} ms, {roof} {fmt_ms(roof_ms)} ms",
                                     in_scope=True))
    return checks


def numpy_checks(m: Measured) -> list[dict[str, Any]]:
    """cece >= 8x faster than pure NumPy at C >= 1000, >= 4x at C = 10 (float32)."""
    checks = []
    for label in CASE_BY_LABEL:
        classes = case_classes(label)
        limit = NUMPY_MIN_LARGE if classes >= 1000 else NUMPY_MIN_SMALL if classes == 10 else None
        if limit is None:
            continue
        for dtype in BOTH_DTYPES:
            for op in OPS:
                checks.append(speedup_check(m, f"{OP_NAMES[op]}: NumPy / cece", label, dtype,
                                            op, ("numpy",), limit, dtype in FLOAT32_ONLY))
    return checks


def peer_checks(m: Measured) -> list[dict[str, Any]]:
    """cece faster than the fastest of PyTorch, JAX, scikit-learn on every case (> 1x)."""
    return [speedup_check(m, f"{OP_NAMES[op]}: fastest peer / cece", label, dtype, op,
                          PEER_LIBS, 1.0, True, strictly=True)
            for label in CASE_BY_LABEL for dtype in BOTH_DTYPES for op in OPS]


def jax_checks(m: Measured) -> list[dict[str, Any]]:
    """At C = 10, cece at least 2x faster than JAX."""
    return [speedup_check(m, f"{OP_NAMES[op]}: JAX / cece", label, dtype, op, ("jax",),
                          JAX_MIN_SMALL, True)
            for label in CASE_BY_LABEL if case_classes(label) == 10
            for dtype in BOTH_DTYPES for op in OPS]


def speedup_check(m: Measured, what: str, label: str, dtype: str, op: str,
                  others: tuple[str, ...], limit: float, in_scope: bool,
                  strictly: bool = False) -> dict[str, Any]:
    """(fastest of `others`) time / cece time >= limit (> limit if strictly). A library
    that does not apply to the case (sklearn on axis=1) is left out; one that applies
    but was not measured makes the check "not measured"."""
    subject = f"{label} {dtype}"
    limit_text = f"{'>' if strictly else '>='} {limit:g}x"
    res = m.case(label, dtype)
    cece_ms = m.ms(label, dtype, "cece", op)
    if res is None or cece_ms is None:
        return new_check(what, subject, "not measured", limit=limit_text, detail=NOT_RUN)
    applicable = [lib for lib in others if lib not in res["skipped"]]
    times = {lib: m.ms(label, dtype, lib, op) for lib in applicable}
    missing = [lib for lib, ms in times.items() if ms is None]
    if missing:
        return new_check(what, subject, "not measured", limit=limit_text,
                         detail=f"{', '.join(missing)} not measured")
    fastest = min(times, key=times.get)
    ratio = times[fastest] / cece_ms
    passed = ratio > limit if strictly else ratio >= limit
    detail = f"cece {fmt_ms(cece_ms)} ms, {fastest} {fmt_ms(times[fastest])} ms"
    left_out = [lib for lib in others if lib in res["skipped"]]
    if left_out:
        detail += f"; {', '.join(left_out)} not applicable"
    return judged(what, subject, ratio, passed, limit_text, detail, in_scope)


def per_element_checks(m: Measured) -> list[dict[str, Any]]:
    """Small C (< 16) and class axis in the middle: ns per logit at most 1.5x that of the
    large-C row cases of the same dtype and op (the faster of them: slower than neither)."""
    slow_layouts = [label for label, (shape, axis) in CASE_BY_LABEL.items()
                    if shape[axis] < 16 or axis != -1]
    references = large_c_row_cases()
    checks = []
    for label in slow_layouts:
        for dtype in BOTH_DTYPES:
            for op in OPS:
                what = f"{OP_NAMES[op]}: ns/logit vs large-C rows"
                subject = f"{label} {dtype}"
                ns = m.ns_per_logit(label, dtype, op)
                ref_ns = {ref: m.ns_per_logit(ref, dtype, op) for ref in references}
                missing = [ref for ref, v in ref_ns.items() if v is None]
                if ns is None or missing:
                    checks.append(new_check(what, subject, "not measured",
                                            limit=f"<= {PER_ELEMENT_MAX}x",
                                            detail=NOT_RUN if ns is None else
                                            f"{', '.join(missing)} {dtype} not run"))
                    continue
                best = min(ref_ns, key=ref_ns.get)
                ratio = ns / ref_ns[best]
                checks.append(judged(what, subject, ratio, ratio <= PER_ELEMENT_MAX,
                                     f"<= {PER_ELEMENT_MAX}x",
                                     f"{ns:.3f} ns/logit, {best} {ref_ns[best]:.3f}",
                                     in_scope=True))
    return checks


def overhead_checks(m: Measured) -> list[dict[str, Any]]:
    """A 32x10 call costs at most half of PyTorch's on the same arrays (float32)."""
    checks = []
    for dtype in BOTH_DTYPES:
        for op in OPS:
            what = f"{OP_NAMES[op]}: per-call cece / torch"
            subject = f"{OVERHEAD_LABEL} {dtype}"
            res = m.overhead.get(dtype)
            ratio = None if res is None else res.get("cece_vs_torch", {}).get(op)
            if ratio is None:
                checks.append(new_check(what, subject, "not measured",
                                        limit=f"<= {OVERHEAD_MAX}x",
                                        detail=NOT_RUN if res is None
                                        else "torch not measured"))
                continue
            detail = (f"cece {fmt_us(res['libs']['cece'][f'{op}_us'])} us, "
                      f"torch {fmt_us(res['libs']['torch'][f'{op}_us'])} us")
            if TORCH_ONE_THREAD in res["libs"]:  # for reference: not the criterion's setting
                detail += (f"; torch on 1 thread "
                           f"{fmt_us(res['libs'][TORCH_ONE_THREAD][f'{op}_us'])} us")
            checks.append(judged(what, subject, ratio, ratio <= OVERHEAD_MAX,
                                 f"<= {OVERHEAD_MAX}x", detail, dtype in FLOAT32_ONLY))
    return checks


def check_line(c: dict[str, Any]) -> str:
    value = "" if c["value"] is None else f"{fmt_ratio(c['value'])} "
    detail = f" ({c['detail']})" if c["detail"] else ""
    return (f"{c['status']:<12} {c['criterion']:<36} {c['subject']:<26} "
            f"{value}[{c['limit']}]{detail}")


def evaluate_acceptance(results: list[dict[str, Any]], overhead: list[dict[str, Any]],
                        args: argparse.Namespace, threads_busy: dict[str, float]
                        ) -> dict[str, Any]:
    m = Measured(results, overhead)
    sections = {
        "roofline at C >= 32000": roofline_checks(m),
        "speed-up over pure NumPy": numpy_checks(m),
        "faster than the fastest peer": peer_checks(m),
        "JAX at C = 10": jax_checks(m),
        "per element: small C and axis=1 vs large-C rows": per_element_checks(m),
        "per-call cost at 32x10 vs PyTorch": overhead_checks(m),
    }
    checks = [dict(c, section=name) for name, cs in sections.items() for c in cs]
    counts = {s: sum(c["status"] == s for c in checks)
              for s in ("PASS", "FAIL", "not measured", "info")}
    return {"checks": checks, "counts": counts,
            "all_pass": counts["FAIL"] == 0 and counts["not measured"] == 0,
            "notes": acceptance_notes(args, threads_busy)}


def acceptance_notes(args: argparse.Namespace, threads_busy: dict[str, float]) -> list[str]:
    """What limits how far this run's verdicts can be trusted."""
    notes = []
    if args.threads != ACCEPTANCE_THREADS:
        notes.append(f"the issue's criteria are for {ACCEPTANCE_THREADS} threads; "
                     f"this run used {args.threads}")
    if args.quick:
        notes.append("--quick: fewer and shorter rounds, noisier medians")
    busy = [v for k, v in threads_busy.items() if k.startswith("cece/")]
    if busy and args.threads > 1 and min(busy) < 0.8 * args.threads:
        notes.append(f"cece kept only {min(busy):.2f} of {args.threads} threads busy "
                     f"(cpu/wall): the machine was probably loaded, which slows "
                     f"multithreaded calls most; rerun on a quiet machine before trusting a FAIL")
    if hasattr(os, "getloadavg"):
        notes.append("load average at the end: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    return notes


def print_acceptance(acceptance: dict[str, Any]) -> None:
    """One line per check; checks on cases this run left out (--cases, --dtypes) are
    counted per section rather than listed (the JSON lists them)."""
    print("\nAcceptance (issue 3): PASS / FAIL per criterion, from this run's numbers")
    sections: dict[str, list[dict[str, Any]]] = {}
    for c in acceptance["checks"]:
        sections.setdefault(c["section"], []).append(c)
    for section, checks in sections.items():
        print(f"  {section}:")
        for c in checks:
            if c["detail"] != NOT_RUN:
                print("    " + check_line(c))
        left_out = sum(c["detail"] == NOT_RUN for c in checks)
        if left_out:
            print(f"    {'not measured':<12} {left_out} more: their case or dtype was not run")
    counts = acceptance["counts"]
    print(f"  {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['not measured']} not "
          f"measured ({counts['info']} info lines outside the criteria's dtype scope): "
          + ("every criterion passes" if acceptance["all_pass"] else "acceptance NOT shown"))
    for note in acceptance["notes"]:
        print(f"  note: {note}")


# ---------------------------------------------------------------------------------------
# Plot and Markdown

PLOT_COLORS = {"cece[out]": "#1f77b4", "numpy": "#8c8c8c", "torch": "#d62728",
               "jax": "#2ca02c", "sklearn": "#ff7f0e"}
# The roofline(s) an operation is bound by: (kind, legend label, line style, colour).
PLOT_ROOFLINES = {
    "fwd": [("read", "roofline: read once", "-", "black")],
    "grad": [("copy_fresh", "roofline: copy into a fresh array (bound for cece)", "-", "black"),
             ("copy", "roofline: copy into a preallocated array (bound for cece[out])", "--",
              PLOT_COLORS["cece[out]"])],
}


def plot(results: list[dict[str, Any]], libs: list[str], path: str) -> Optional[str]:
    """Per case, every library's time / cece's on a log scale (bars from 1: up = slower
    than cece), forward above and fwd+grad below, the rooflines as horizontal lines across
    each case's group (how far below cece the memory bound lies)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no plot"
    results = [r for r in results if "cece" in r["libs"]]
    if not results:
        return "no cece results: no plot"
    fig, axes = plt.subplots(2, 1, figsize=(max(11, 1.5 * len(results)), 11), sharex=True)
    for ax, op in zip(axes, OPS):
        plot_operation(ax, results, libs, op)
    axes[1].set_xticks(range(len(results)))
    axes[1].set_xticklabels([f"{r['case']}\n{r['dtype']}" for r in results], fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def plot_number(v: float) -> str:
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def plot_operation(ax, results: list[dict[str, Any]], libs: list[str], op: str) -> None:
    import numpy as np
    from matplotlib.ticker import FuncFormatter

    series = [lib for lib in libs if lib != "cece"
              and any(f"{op}_vs_cece" in r["libs"].get(lib, {}) for r in results)]
    pos = np.arange(len(results))
    width = 0.8 / max(1, len(series))
    for i, lib in enumerate(series):
        xs = pos + (i - (len(series) - 1) / 2) * width
        vals = np.array([r["libs"].get(lib, {}).get(f"{op}_vs_cece", np.nan) for r in results])
        ax.bar(xs, vals - 1.0, width, bottom=1.0, label=lib, color=PLOT_COLORS.get(lib))
        for x, v in zip(xs, vals):
            if np.isfinite(v):  # the ratio on the bar's end, so no one reads a log axis
                ax.text(x, v, plot_number(v), ha="center", va="bottom" if v >= 1 else "top",
                        fontsize=6)
    for kind, label, style, colour in PLOT_ROOFLINES[op]:
        for j, r in enumerate(results):
            level = r["roofline"][f"{kind}_ms"] / r["libs"]["cece"][f"{op}_ms"]
            ax.hlines(level, j - 0.45, j + 0.45, colors=colour, linestyles=style, lw=1.6,
                      label=label if j == 0 else None)
    ax.axhline(1.0, color="black", lw=0.8, label="cece (= 1)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_ylabel("time / cece time (log scale)")
    ax.set_title(f"{OP_NAMES[op]}: each library's time relative to cece "
                 f"(above 1: slower than cece; horizontal lines: rooflines)", fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.02)
              if op == "fwd" else (0.5, -0.12))


MARKDOWN_PEERS = [("numpy", "NumPy"), ("torch", "PyTorch"), ("jax", "JAX"),
                  ("sklearn", "scikit-learn")]


def markdown_report(results: list[dict[str, Any]], overhead: list[dict[str, Any]],
                    libs: list[str], context: str) -> str:
    """The summary tables as Markdown, for pasting into README.md."""
    peers = [(lib, name) for lib, name in MARKDOWN_PEERS if lib in libs]
    parts = [
        f"Measured by `benchmarks/bench_speed.py`: {context}. Speed-up columns: the "
        "library's time / cece's (above 1: cece is faster). Roofline columns: cece's time / "
        "the time to read the logits once (forward), or to read them and write an array "
        "of their size, fresh for cece and preallocated for cece[out] (`grad_out=`) "
        "(1.0 would be as fast as memory allows).",
        "",
        "**Forward (loss)**",
        "",
        markdown_table(
            ["case", "dtype", "cece ms"] + [f"vs {name}" for _, name in peers]
            + ["cece / read"],
            [[r["case"], r["dtype"], md_ms(r, "cece", "fwd")]
             + [md_speedup(r, lib, "fwd") for lib, _ in peers]
             + [md_ratio(r.get("cece_fwd_vs_read"))] for r in results]),
        "",
        "**Forward + gradient**",
        "",
        markdown_table(
            ["case", "dtype", "cece ms", "cece[out] ms"] + [f"vs {name}" for _, name in peers]
            + ["cece / fresh copy", "cece[out] / copy"],
            [[r["case"], r["dtype"], md_ms(r, "cece", "grad"), md_ms(r, "cece[out]", "grad")]
             + [md_speedup(r, lib, "grad") for lib, _ in peers]
             + [md_ratio(r.get("cece_grad_vs_copy_fresh")),
                md_ratio(r.get("cece_out_grad_vs_copy"))] for r in results]),
    ]
    if overhead:
        shape = "x".join(map(str, OVERHEAD_SHAPE))
        parts += ["", f"**Per-call cost, {shape}** (microseconds per call)", "",
                  markdown_table(
                      ["dtype", "op", "cece µs", "PyTorch µs", "cece / PyTorch",
                       "PyTorch 1 thread µs"],
                      [[r["dtype"], OP_NAMES[op],
                        md_us(r, "cece", op), md_us(r, "torch", op),
                        md_ratio(r.get("cece_vs_torch", {}).get(op)),
                        md_us(r, TORCH_ONE_THREAD, op)]
                       for r in overhead for op in OPS])]
    return "\n".join(parts) + "\n"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def md_ms(res: dict[str, Any], lib: str, op: str) -> str:
    ms = res["libs"].get(lib, {}).get(f"{op}_ms")
    return "—" if ms is None else fmt_ms(ms)


def md_us(res: dict[str, Any], lib: str, op: str) -> str:
    us = res["libs"].get(lib, {}).get(f"{op}_us")
    return "—" if us is None else fmt_us(us)


def md_speedup(res: dict[str, Any], lib: str, op: str) -> str:
    if lib in res["skipped"]:
        return "n/a"
    return md_ratio(res["libs"].get(lib, {}).get(f"{op}_vs_cece"))


def md_ratio(v: Optional[float]) -> str:
    return "—" if v is None else fmt_ratio(v)


# ---------------------------------------------------------------------------------------


def print_header(peers: Peers, args: argparse.Namespace, env_notes: dict[str, Any]) -> None:
    print("cece:")
    peers.cece.show_config()
    print(f"\nplatform: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in peers.versions.items()))
    if peers.blas:
        print("BLAS: " + "; ".join(peers.blas))
    print(f"threads: {args.threads} for every library; CPUs available "
          f"{env_notes['cpus_available']}, affinity {env_notes['affinity']}; "
          f"XLA_FLAGS={env_notes['XLA_FLAGS']!r}")
    for lib, note in peers.notes.items():
        print(f"note: {lib}: {note}")
    print(f"rounds {args.rounds}, ~{args.round_budget:g} s per library and op per round; "
          f"a call over {SLOW_CALL_S} s is timed {1 if args.quick else 3} time(s) in all")


def chosen_cases(args: argparse.Namespace) -> tuple[list[tuple], bool]:
    """The grid cases to run, and whether to run the per-call cost case."""
    if not args.cases:
        return CASES, True
    chosen = {c.strip() for c in args.cases.split(",") if c.strip()}
    unknown = chosen - set(CASE_BY_LABEL) - {OVERHEAD_LABEL}
    if unknown:  # a typo would otherwise run nothing and say nothing
        sys.exit(f"unknown --cases {', '.join(sorted(unknown))}; known: "
                 f"{', '.join(list(CASE_BY_LABEL) + [OVERHEAD_LABEL])}")
    return [c for c in CASES if c[0] in chosen], OVERHEAD_LABEL in chosen


def run_context(peers: Peers, args: argparse.Namespace) -> str:
    """One line saying where and how the numbers were measured (for the Markdown)."""
    versions = ", ".join(f"{k} {v}" for k, v in peers.versions.items()
                         if k not in ("threadpoolctl",))
    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
            f"{args.threads} threads for every library; {versions}"
            + ("; --quick" if args.quick else ""))


def write_outputs(args: argparse.Namespace, payload: dict[str, Any], markdown: str,
                  libs: list[str]) -> None:
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)
        print(f"wrote {args.json}")
    if args.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(markdown)
        print(f"wrote {args.markdown}")
    if args.plot:
        why = plot(payload["results"], libs, args.plot)
        print(why or f"wrote {args.plot}")


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    cases, with_overhead = chosen_cases(args)
    env_notes = configure_threads(args.threads)  # before numpy / torch / jax are imported
    import numpy as np

    wanted = {s.strip() for s in args.libs.split(",") if s.strip()}
    if "cece" not in wanted:
        print("--libs must include cece (the ratios are relative to it)")
        return 2
    peers = Peers(wanted, args.threads)
    libs = peers.available
    print_header(peers, args, env_notes)

    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    rng = np.random.default_rng(args.seed)
    results, overhead = [], []
    start = time.perf_counter()
    for label, shape, axis in cases:
        for dtype in dtypes:
            res = run_case(peers, libs, label, shape, axis, dtype, args, rng)
            results.append(res)
            print_case(res)
    if with_overhead:
        overhead = [run_overhead_case(peers, dtype, args, rng) for dtype in dtypes]
    elapsed = time.perf_counter() - start

    print_summary(results, libs)
    print_overhead(overhead)
    threads_used = thread_summary(results, libs)
    acceptance = evaluate_acceptance(results, overhead, args, threads_used)
    print_acceptance(acceptance)
    print(f"\n({elapsed:.0f} s)")

    payload = {
        "config": peers.cece.show_config(mode="dicts"),
        "versions": peers.versions,
        "blas": peers.blas,
        "notes": peers.notes,
        "threads": args.threads,
        "environment": env_notes,
        "platform": platform.platform(),
        "rounds": args.rounds,
        "round_budget_s": args.round_budget,
        "quick": args.quick,
        "seed": args.seed,
        "elapsed_s": elapsed,
        "threads_busy": threads_used,
        "results": results,
        "overhead": overhead,
        "acceptance": acceptance,
    }
    write_outputs(args, payload, markdown_report(results, overhead, libs,
                                                 run_context(peers, args)), libs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
