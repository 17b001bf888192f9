"""The main job: ``python -m cece`` (or ``cece-bench``).

Times cece against its pure-NumPy twin ``cece.reference`` on a few default shapes, checks
that the two agree, and prints a table. Exits 1 if any row disagrees beyond the dtype's
tolerance or if cece is slower than NumPy on any row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable

import numpy as np

import cece
import cece.reference as reference

SHAPES = [(65536, 10), (8192, 1000), (1024, 32000)]
DTYPES = [np.float32, np.float64]
TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def median_time(fn: Callable[[], object], budget: float, min_reps: int = 3) -> float:
    """Median seconds of `fn` over as many calls as fit in `budget` seconds (at least
    `min_reps`). The agreement check has already called it once: that was the warm-up."""
    times = []
    deadline = time.perf_counter() + budget
    while len(times) < min_reps or (time.perf_counter() < deadline and len(times) < 50):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def max_rel_diff(actual, expected) -> float:
    """Normwise relative difference: max |a - e| / max |e|."""
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    scale = np.max(np.abs(e)) if e.size else 0.0
    return float(np.max(np.abs(a - e)) / scale) if scale > 0 else float(np.max(np.abs(a - e), initial=0.0))


def run(quick: bool, threads: int | None) -> list[dict]:
    rng = np.random.default_rng(0)
    budget = 0.15 if quick else 0.5
    rows = []
    for n, c in SHAPES:
        for dtype in DTYPES:
            logits = (rng.standard_normal((n, c)) * 3).astype(dtype)
            labels = rng.integers(0, c, size=n)
            ours = lambda: cece.cross_entropy(logits, labels, num_threads=threads)  # noqa: E731
            theirs = lambda: reference.cross_entropy(logits, labels)  # noqa: E731
            ours_g = lambda: cece.cross_entropy_with_grad(logits, labels, num_threads=threads)  # noqa: E731
            theirs_g = lambda: reference.cross_entropy_with_grad(logits, labels)  # noqa: E731
            loss, grad = ours_g()
            ref_loss, ref_grad = theirs_g()
            theirs()  # the warm-ups, for the timings below
            diff = max(max_rel_diff(ours(), ref_loss), max_rel_diff(loss, ref_loss),
                       max_rel_diff(grad, ref_grad))
            row = {
                "shape": f"{n}x{c}",
                "dtype": np.dtype(dtype).name,
                # NumPy takes seconds on the largest shape: one timed call is enough there
                # to keep the whole job under a minute.
                "numpy_ms": 1e3 * median_time(theirs, budget, min_reps=1),
                "cece_ms": 1e3 * median_time(ours, budget),
                "numpy_grad_ms": 1e3 * median_time(theirs_g, budget, min_reps=1),
                "cece_grad_ms": 1e3 * median_time(ours_g, budget),
                "max_rel_diff": diff,
            }
            row["speedup"] = row["numpy_ms"] / row["cece_ms"]
            row["speedup_grad"] = row["numpy_grad_ms"] / row["cece_grad_ms"]
            row["agrees"] = diff <= TOLERANCE[np.dtype(dtype)]
            rows.append(row)
            print_row(row)
    return rows


HEADER = (f"{'shape':>11} {'dtype':>7} | {'forward: NumPy ms':>17} {'cece ms':>8} {'speed-up':>8} | "
          f"{'fwd+grad: NumPy ms':>18} {'cece ms':>8} {'speed-up':>8} | {'max rel diff':>12}")


def print_row(row: dict) -> None:
    verdict = "PASS" if row["agrees"] else "FAIL"
    print(f"{row['shape']:>11} {row['dtype']:>7} | {row['numpy_ms']:17.2f} {row['cece_ms']:8.2f} "
          f"{row['speedup']:7.1f}x | {row['numpy_grad_ms']:18.2f} {row['cece_grad_ms']:8.2f} "
          f"{row['speedup_grad']:7.1f}x | {row['max_rel_diff']:12.2e} {verdict}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cece", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--threads", type=int, default=None, help="num_threads for cece")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)

    cece.show_config()
    print()
    print("cece vs pure NumPy (cece.reference), integer labels, reduction='mean', "
          "median times")
    print(HEADER)
    print("-" * len(HEADER))
    rows = run(args.quick, args.threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)

    failures = [r for r in rows if not r["agrees"]]
    slower = [r for r in rows if r["speedup"] < 1 or r["speedup_grad"] < 1]
    for r in failures:
        print(f"DISAGREES: {r['shape']} {r['dtype']}: max rel diff {r['max_rel_diff']:.2e} "
              f"> {TOLERANCE[np.dtype(r['dtype'])]:.0e}")
    for r in slower:
        print(f"SLOWER THAN NUMPY: {r['shape']} {r['dtype']}")
    if not failures and not slower:
        print(f"all {len(rows)} rows agree and cece is faster than NumPy on every row")
    return 1 if failures or slower else 0


if __name__ == "__main__":
    sys.exit(main())
