"""The main job: ``python -m cece`` (or ``cece-bench``).

Times cece against its pure-NumPy twin ``cece.reference`` on the default shapes (65536x10,
8192x1000, 1024x32000; float32 and float64; integer labels; reduction="mean"), for the
forward loss (``cross_entropy``) and for loss + gradient (``cross_entropy_with_grad``),
checks that the two agree, and prints one table row per shape and dtype.

Timing: ``time.perf_counter`` around single calls; the number shown is the median of the
repetitions. The first full call of each function is the one whose result the agreement
check uses; it is also the warm-up. The repeat count is adaptive: as many calls as fit in
about 0.3 s per measurement (0.1 s with --quick), at least 3 - except that a function whose
single call already takes longer than that budget (pure NumPy on the large shapes) counts
its first call (made after a warm-up on a 64-row slice of the same data, so lazy imports and
first-call setup are not counted) as a timed one, and is timed 3 times in all if a call takes
at most 1 s, once otherwise (once with --quick), which keeps the whole job well under a
minute.

Agreement: max |a - b| / max |b| (normwise relative difference) against the reference run
on the same inputs; "forward" compares the loss of ``cross_entropy``, "fwd+grad" the larger
of the loss and gradient differences of ``cross_entropy_with_grad``. Tolerance: 1e-5 for
float32, 1e-12 for float64.

Exit status 1 if any row disagrees beyond its tolerance or cece is slower than NumPy on any
row (forward or fwd+grad), with a line saying which; 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Callable

import numpy as np

import cece
import cece.reference as reference

SHAPES = [(65536, 10), (8192, 1000), (1024, 32000)]
DTYPES = [np.float32, np.float64]
TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
SEED = 0
MIN_REPS = 3
MAX_REPS = 1000
SLOW_CALL_S = 1.0  # calls longer than the budget but shorter than this are timed 3 times


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(fn: Callable[[], Any], first_call_s: float, budget_s: float,
            slow_reps: int) -> tuple[float, int]:
    """(median seconds, number of timed calls) of `fn`, whose first call (already made, the
    warm-up) took `first_call_s`. Repeats as many calls as fit in `budget_s`, at least
    MIN_REPS. When that first call alone took longer than the budget (the caller warmed up
    on a slice before it), it counts as the first of `slow_reps` timed calls if it took at
    most SLOW_CALL_S, else as the only one."""
    if first_call_s > budget_s:
        times = [first_call_s]
        if first_call_s <= SLOW_CALL_S:
            for _ in range(slow_reps - 1):
                times.append(timed(fn)[0])
        return float(np.median(times)), len(times)
    reps = min(MAX_REPS, max(MIN_REPS, math.ceil(budget_s / max(first_call_s, 1e-9))))
    times = []
    for _ in range(reps):
        times.append(timed(fn)[0])
    return float(np.median(times)), reps


def max_rel_diff(actual: Any, expected: Any) -> float:
    """Normwise relative difference max|a - e| / max|e| (NaN if either holds a NaN)."""
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    err = float(np.max(np.abs(a - e), initial=0.0))
    scale = float(np.max(np.abs(e), initial=0.0))
    if math.isnan(err) or math.isnan(scale):
        return math.nan
    return err / scale if scale > 0 else err


def bench_row(n: int, c: int, dtype: type, rng: np.random.Generator, threads: int | None,
              budget_s: float, slow_reps: int) -> dict[str, Any]:
    logits = (rng.standard_normal((n, c)) * 3).astype(dtype)
    labels = rng.integers(0, c, size=n)
    tol = TOLERANCE[np.dtype(dtype)]

    def cece_fwd() -> Any:
        return cece.cross_entropy(logits, labels, num_threads=threads)

    def cece_grad() -> Any:
        return cece.cross_entropy_with_grad(logits, labels, num_threads=threads)

    def numpy_fwd() -> Any:
        return reference.cross_entropy(logits, labels)

    def numpy_grad() -> Any:
        return reference.cross_entropy_with_grad(logits, labels)

    # Warm-ups on a slice (first-call costs, cheap); the full first calls below are the
    # agreement runs and the full-size warm-ups.
    for module in (reference, cece):
        module.cross_entropy_with_grad(logits[:64], labels[:64])
        module.cross_entropy(logits[:64], labels[:64])

    t_np_grad, (ref_loss_g, ref_grad) = timed(numpy_grad)
    t_np_fwd, ref_loss = timed(numpy_fwd)
    t_ce_grad, (loss_g, grad) = timed(cece_grad)
    t_ce_fwd, loss = timed(cece_fwd)

    diff_fwd = max_rel_diff(loss, ref_loss)
    diff_loss_g = max_rel_diff(loss_g, ref_loss_g)
    diff_grad = max_rel_diff(grad, ref_grad)
    diff_fwd_grad = max(diff_loss_g, diff_grad) if not (
        math.isnan(diff_loss_g) or math.isnan(diff_grad)) else math.nan
    del grad, ref_grad

    np_fwd_s, np_fwd_reps = measure(numpy_fwd, t_np_fwd, budget_s, slow_reps)
    ce_fwd_s, ce_fwd_reps = measure(cece_fwd, t_ce_fwd, budget_s, slow_reps)
    np_grad_s, np_grad_reps = measure(numpy_grad, t_np_grad, budget_s, slow_reps)
    ce_grad_s, ce_grad_reps = measure(cece_grad, t_ce_grad, budget_s, slow_reps)

    agrees = (diff_fwd <= tol) and (diff_fwd_grad <= tol)  # False on NaN
    return {
        "shape": f"{n}x{c}",
        "dtype": np.dtype(dtype).name,
        "numpy_fwd_ms": 1e3 * np_fwd_s,
        "cece_fwd_ms": 1e3 * ce_fwd_s,
        "speedup_fwd": np_fwd_s / ce_fwd_s,
        "numpy_grad_ms": 1e3 * np_grad_s,
        "cece_grad_ms": 1e3 * ce_grad_s,
        "speedup_grad": np_grad_s / ce_grad_s,
        "reps": {"numpy_fwd": np_fwd_reps, "cece_fwd": ce_fwd_reps,
                 "numpy_grad": np_grad_reps, "cece_grad": ce_grad_reps},
        "max_rel_diff_fwd": diff_fwd,
        "max_rel_diff_fwd_grad": diff_fwd_grad,
        "max_rel_diff_grad_loss": diff_loss_g,
        "max_rel_diff_grad": diff_grad,
        "tolerance": tol,
        "agrees": bool(agrees),
        "slower": bool(np_fwd_s < ce_fwd_s or np_grad_s < ce_grad_s),
    }


HEADER = (
    f"{'shape':>11} {'dtype':>7} |{'forward: NumPy ms':>18} {'cece ms':>8} {'speed-up':>8}"
    f" {'rel diff':>8} |{'fwd+grad: NumPy ms':>19} {'cece ms':>8} {'speed-up':>8}"
    f" {'rel diff':>8} | agree"
)


def format_row(row: dict[str, Any]) -> str:
    return (
        f"{row['shape']:>11} {row['dtype']:>7} |{row['numpy_fwd_ms']:18.2f}"
        f" {row['cece_fwd_ms']:8.2f} {row['speedup_fwd']:7.1f}x {row['max_rel_diff_fwd']:8.1e}"
        f" |{row['numpy_grad_ms']:19.2f} {row['cece_grad_ms']:8.2f}"
        f" {row['speedup_grad']:7.1f}x {row['max_rel_diff_fwd_grad']:8.1e}"
        f" | {'PASS' if row['agrees'] else 'FAIL'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cece",
        description="Time cece against pure NumPy (cece.reference) and check agreement.")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions (about 0.1 s per measurement instead of 0.3 s)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="num_threads for cece (default: OpenMP's default)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")

    budget_s = 0.1 if args.quick else 0.3
    cece.show_config()
    config = cece.show_config(mode="dicts")
    threads_text = (f"num_threads={args.threads}" if args.threads is not None
                    else f"num_threads=None (OpenMP default, {config['threads']})")
    print()
    print(f"cece vs pure NumPy (cece.reference): integer labels, reduction='mean', "
          f"logits = normal*3 (seed {SEED}), cece {threads_text}")
    print(f"median of repeated calls (~{budget_s:g} s per measurement, >= {MIN_REPS} calls; "
          f"a call longer than that: {1 if args.quick else 3} calls, 1 if over "
          f"{SLOW_CALL_S:g} s); rel diff = max|cece-ref|/max|ref|, "
          f"tolerance float32 {TOLERANCE[np.dtype(np.float32)]:.0e}, "
          f"float64 {TOLERANCE[np.dtype(np.float64)]:.0e}")
    print(HEADER)
    print("-" * len(HEADER), flush=True)

    start = time.perf_counter()
    rng = np.random.default_rng(SEED)
    rows = []
    for n, c in SHAPES:
        for dtype in DTYPES:
            row = bench_row(n, c, dtype, rng, args.threads, budget_s, 1 if args.quick else 3)
            rows.append(row)
            print(format_row(row), flush=True)
    elapsed = time.perf_counter() - start
    print(f"({elapsed:.1f} s)")

    failures = [r for r in rows if not r["agrees"]]
    slower = [r for r in rows if r["slower"]]
    for r in failures:
        print(f"DISAGREES: {r['shape']} {r['dtype']}: max rel diff forward "
              f"{r['max_rel_diff_fwd']:.2e}, fwd+grad {r['max_rel_diff_fwd_grad']:.2e} "
              f"(tolerance {r['tolerance']:.0e})")
    for r in slower:
        print(f"SLOWER THAN NUMPY: {r['shape']} {r['dtype']}: forward "
              f"{r['cece_fwd_ms']:.2f} ms vs {r['numpy_fwd_ms']:.2f} ms, fwd+grad "
              f"{r['cece_grad_ms']:.2f} ms vs {r['numpy_grad_ms']:.2f} ms")
    ok = not failures and not slower
    if ok:
        print(f"all {len(rows)} rows agree and cece is faster than NumPy on every row")

    if args.json:
        payload = {
            "config": config,
            "threads": args.threads,
            "quick": args.quick,
            "seed": SEED,
            "cpu_count": os.cpu_count(),
            "elapsed_s": elapsed,
            "ok": ok,
            "rows": rows,
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
        print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
