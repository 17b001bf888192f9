"""Speed of cece against pure NumPy, PyTorch, JAX/optax and scikit-learn, and a roofline.

    python benchmarks/bench_speed.py [--threads N] [--quick] [--json PATH] [--plot PATH]

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
              by torch.autograd.grad (torch.set_num_threads(N))
  jax         optax.softmax_cross_entropy_with_integer_labels(...).mean(), jax.jit; the
              gradient by jax.jit(jax.value_and_grad(...)); block_until_ready; inputs are
              put on the device before timing
  sklearn     sklearn._loss.loss.HalfMultinomialLoss().loss(...).mean() and
              .loss_gradient(...) with n_threads=N. Its gradient is that of the *sum* of the
              per-sample losses (the 1/N of the mean is not applied: that would be one more
              pass which we do not charge to it); it needs (n, C) rows, so it sits out the
              class-axis-1 case.

and a streaming roofline on the same logits array, measured in the same run:

  read        the fastest of several ways to read the logits once: x.max(), x.sum(),
              x2d @ ones (OpenBLAS gemv, threadpoolctl-limited to N threads), and x.max()
              over N row blocks on N Python threads (NumPy releases the GIL); the table says
              which one won
  copy        the fastest of np.copyto(dst, x) and the same split over N threads, into a
              preallocated dst: read the logits once and write an array of the same size

The forward cannot beat `read`; the gradient cannot beat `copy` (a fresh gradient array also
pays its page faults, which `copy` into a preallocated array does not: compare cece[out]).

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

Writes a JSON file (--json, default benchmarks/results/speed.json) and, if matplotlib is
installed, a PNG (--plot, default benchmarks/results/speed.png): per case, each library's
time relative to cece (log scale), forward and fwd+grad.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import sys
import time
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
DTYPES = ["float32", "float64"]
OPS = ("fwd", "grad")
ROOFLINES = ("read", "copy", "copy_fresh")
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
    ap.add_argument("--libs", default="cece,cece[out],numpy,torch,jax,sklearn",
                    help="comma-separated subset of libraries")
    ap.add_argument("--cases", default=None,
                    help="comma-separated subset of case labels, e.g. 65536x10,8192x1000")
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

            def grad():
                leaf = tx.detach().requires_grad_(True)
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
            else:
                first = fn()  # the agreement check; JAX compiles here
                loss, grad = convert(first)
                d = rel_diff(loss, ref_loss)
                if grad is not None:
                    d = max(d, rel_diff(grad, ref_grad))
                info[f"{op}_rel_diff"] = d
                del first, grad
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


def fmt_ms(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def fmt_ratio(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}x" if v < 10 else f"{v:.1f}x"


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


def plot(results: list[dict[str, Any]], libs: list[str], path: str) -> Optional[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no plot"
    import numpy as np

    series = [lib for lib in libs if lib != "cece"] + ["roofline"]
    fig, axes = plt.subplots(2, 1, figsize=(max(10, 1.3 * len(results)), 9), sharex=True)
    labels = [f"{r['case']}\n{r['dtype']}" for r in results]
    pos = np.arange(len(results))
    width = 0.8 / len(series)
    for ax, op, title in zip(axes, OPS, ("forward", "forward + gradient")):
        for i, lib in enumerate(series):
            vals = []
            for r in results:
                if lib == "roofline":
                    roof = r["roofline"]["read_ms" if op == "fwd" else "copy_ms"]
                    vals.append(roof / r["libs"]["cece"][f"{op}_ms"])
                else:
                    vals.append(r["libs"].get(lib, {}).get(f"{op}_vs_cece", np.nan))
            vals = np.asarray(vals, dtype=float)
            # Bars grow from 1 (cece): up = slower than cece, down = faster.
            ax.bar(pos + (i - (len(series) - 1) / 2) * width, vals - 1.0, width, bottom=1.0,
                   label=lib if lib != "roofline" else
                   "roofline (read once / read+write)")
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_yscale("log")
        ax.set_ylabel("time / cece time")
        ax.set_title(f"{title}: time relative to cece (up = slower than cece, down = faster)")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].legend(ncol=len(series), fontsize=8, loc="lower center",
                   bbox_to_anchor=(0.5, 1.08))
    axes[1].set_xticks(pos)
    axes[1].set_xticklabels(labels, fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    env_notes = configure_threads(args.threads)  # before numpy / torch / jax are imported
    import numpy as np

    wanted = {s.strip() for s in args.libs.split(",") if s.strip()}
    if "cece" not in wanted:
        print("--libs must include cece (the ratios are relative to it)")
        return 2
    peers = Peers(wanted, args.threads)
    libs = peers.available

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

    cases = CASES
    if args.cases:
        chosen = [c.strip() for c in args.cases.split(",")]
        cases = [c for c in CASES if c[0] in chosen or c[0].split()[0] in chosen]
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    rng = np.random.default_rng(args.seed)
    results = []
    start = time.perf_counter()
    for label, shape, axis in cases:
        for dtype in dtypes:
            res = run_case(peers, libs, label, shape, axis, dtype, args, rng)
            results.append(res)
            print_case(res)
    elapsed = time.perf_counter() - start

    print_summary(results, libs)
    threads_used = thread_summary(results, libs)
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
    }
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        why = plot(results, libs, args.plot)
        print(why or f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
