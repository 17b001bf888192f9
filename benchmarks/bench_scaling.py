"""Thread scaling of cece, beside streaming rooflines and PyTorch at the same thread counts.

    python benchmarks/bench_scaling.py [--threads 1,2,4,8,16] [--cases 1024x32000:float32,...]
                                       [--rounds 7] [--no-torch] [--json PATH]

For each case (rows x classes, dtype; integer labels, reduction "mean") and each thread count
N it times, in the same run:

  fwd         cece.cross_entropy(..., num_threads=N)
  grad        cece.cross_entropy_with_grad(..., num_threads=N): a fresh gradient array
  grad[out]   the same with grad_out= a preallocated array
  read        the logits read once by N Python threads, each np.max over a contiguous block
              of them (NumPy releases the GIL): the forward's memory bound at N threads
  copy        np.copyto of the logits into a preallocated array by N threads: grad[out]'s
  fresh copy  np.empty_like + copyto by N threads: plain grad's (new pages, zeroed by the
              kernel on first touch)
              The table's bound at N threads is the fastest of these at any count up to N
              (on a small array the pool's dispatch costs more than extra threads save).
  torch fwd / torch grad   F.cross_entropy under no_grad / + torch.autograd.grad, with
              torch.set_num_threads(N) (optional; --no-torch skips it)

Timing: one warm-up call each, then R rounds (default 7); in each round every (N, op) runs in
turn, the order rotating from round to round, as many calls as fit in --budget seconds (at
least one); the figure is the median of all timed calls. Speed-up is time at the first
thread count over time at N; efficiency is speed-up over N / first N.

Bitwise identity: the loss and the gradient at every N are compared byte for byte with those
at the first N (the kernels' partition and summation order do not depend on N).

The process is not pinned; thread counts above the CPUs this process may use are skipped.
Prints one table per case and writes every number to --json
(default benchmarks/results/scaling.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CASES = "1024x32000:float32,1024x32000:float64,65536x10:float32,8192x1000:float32"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2,4,8,16",
                    help="comma-separated thread counts (default 1,2,4,8,16)")
    ap.add_argument("--cases", default=DEFAULT_CASES,
                    help=f"comma-separated ROWSxCLASSES:DTYPE (default {DEFAULT_CASES})")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--budget", type=float, default=0.1, help="seconds per (N, op) per round")
    ap.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "scaling.json"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.thread_counts = [int(t) for t in args.threads.split(",")]
    if any(t < 1 for t in args.thread_counts):
        ap.error("--threads: counts must be >= 1")
    args.case_list = []
    for spec in args.cases.split(","):
        shape, _, dtype = spec.partition(":")
        rows, _, classes = shape.partition("x")
        args.case_list.append((int(rows), int(classes), dtype or "float32"))
    return args


class Blocks:
    """fn over N contiguous blocks of 1-d arrays, one block per pool thread."""

    def __init__(self, max_threads: int):
        self.pool = ThreadPoolExecutor(max_threads)

    def run(self, n: int, fn: Callable[..., Any], *flats) -> None:
        if n == 1:
            fn(*flats)
            return
        size = flats[-1].size
        bounds = [size * i // n for i in range(n + 1)]
        futures = [self.pool.submit(fn, *(a[bounds[i]:bounds[i + 1]] for a in flats))
                   for i in range(n)]
        for f in futures:
            f.result()


def calls_for(n: int, x, y, buf, dst, blocks: Blocks, torch) -> dict[str, Callable[[], Any]]:
    import numpy as np

    import cece

    flat, dflat = x.reshape(-1), dst.reshape(-1)

    def fresh_copy():
        out = np.empty_like(x)
        blocks.run(n, np.copyto, out.reshape(-1), flat)
        return out

    calls = {
        "fwd": lambda: cece.cross_entropy(x, y, num_threads=n),
        "grad": lambda: cece.cross_entropy_with_grad(x, y, num_threads=n),
        "grad[out]": lambda: cece.cross_entropy_with_grad(x, y, num_threads=n, grad_out=buf),
        "read": lambda: blocks.run(n, np.max, flat),
        "copy": lambda: blocks.run(n, np.copyto, dflat, flat),
        "fresh copy": fresh_copy,
    }
    if torch is not None:
        F = torch.nn.functional
        tx, ty = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
        leaf = tx.detach().requires_grad_(True)

        def torch_fwd():
            torch.set_num_threads(n)
            with torch.no_grad():
                return F.cross_entropy(tx, ty)

        def torch_grad():
            torch.set_num_threads(n)
            return torch.autograd.grad(F.cross_entropy(leaf, ty), leaf)

        calls["torch fwd"] = torch_fwd
        calls["torch grad"] = torch_grad
    return calls


def time_calls(fn: Callable[[], Any], budget: float) -> list[float]:
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 - start >= budget:
            return times


def bitwise_check(x, y, counts: list[int]) -> dict[str, Any]:
    import numpy as np

    import cece

    first = None
    mismatched = []
    for n in counts:
        loss_f = cece.cross_entropy(x, y, num_threads=n)
        loss_g, grad = cece.cross_entropy_with_grad(x, y, num_threads=n)
        got = (np.asarray(loss_f).tobytes(), np.asarray(loss_g).tobytes(), grad.tobytes())
        if first is None:
            first = got
        elif got != first:
            mismatched.append(n)
    return {"threads": counts, "identical": not mismatched, "mismatched_threads": mismatched}


def run_case(rows: int, classes: int, dtype: str, counts: list[int], args, blocks, torch):
    import numpy as np

    rng = np.random.default_rng(args.seed)
    x = (rng.standard_normal((rows, classes)) * 3).astype(dtype)
    y = rng.integers(0, classes, rows).astype(np.int64)
    buf, dst = np.empty_like(x), np.empty_like(x)
    np.copyto(buf, x)  # fault the preallocated pages in before timing
    np.copyto(dst, x)
    table = {n: calls_for(n, x, y, buf, dst, blocks, torch) for n in counts}
    keys = [(n, op) for n in counts for op in table[n]]
    for n, op in keys:
        table[n][op]()  # warm-up
    samples: dict[tuple[int, str], list[float]] = {k: [] for k in keys}
    for r in range(args.rounds):
        shift = (r * 5) % len(keys)
        for n, op in keys[shift:] + keys[:shift]:
            samples[(n, op)].extend(time_calls(table[n][op], args.budget))
    medians = {f"{n}|{op}": statistics.median(v) for (n, op), v in samples.items()}
    calls = {f"{n}|{op}": len(v) for (n, op), v in samples.items()}
    return {"rows": rows, "classes": classes, "dtype": dtype, "logits_bytes": x.nbytes,
            "median_s": medians, "calls": calls, "bitwise": bitwise_check(x, y, counts)}


def print_case(res: dict, counts: list[int], with_torch: bool) -> None:
    med = res["median_s"]
    base = counts[0]
    gb = res["logits_bytes"] / 1e9
    print(f"\n{res['rows']}x{res['classes']} {res['dtype']} ({gb * 1e3:.0f} MB of logits); "
          f"bitwise identical across {counts}: {res['bitwise']['identical']}")
    head = ["threads", "fwd ms", "speed-up", "eff.", "fwd/read", "read GB/s",
            "grad ms", "speed-up", "grad/fresh copy", "grad[out] ms", "grad[out]/copy"]
    if with_torch:
        head += ["torch fwd / cece", "torch grad / cece"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for n in counts:
        m = {op: med[f"{n}|{op}"] for op in ("fwd", "grad", "grad[out]")}
        # The bound at n threads: the fastest way with up to n threads (a pool's dispatch
        # costs more than a small array's read at high counts).
        for op in ("read", "copy", "fresh copy"):
            m[op] = min(med[f"{k}|{op}"] for k in counts if k <= n)
        sf = med[f"{base}|fwd"] / m["fwd"]
        sg = med[f"{base}|grad"] / m["grad"]
        row = [str(n), f"{m['fwd'] * 1e3:.3f}", f"{sf:.2f}x", f"{sf / (n / base):.0%}",
               f"{m['fwd'] / m['read']:.2f}x", f"{gb / m['read']:.1f}",
               f"{m['grad'] * 1e3:.3f}", f"{sg:.2f}x", f"{m['grad'] / m['fresh copy']:.2f}x",
               f"{m['grad[out]'] * 1e3:.3f}", f"{m['grad[out]'] / m['copy']:.2f}x"]
        if with_torch:
            row += [f"{med[f'{n}|torch fwd'] / m['fwd']:.2f}x",
                    f"{med[f'{n}|torch grad'] / m['grad']:.2f}x"]
        print("| " + " | ".join(row) + " |")


def main(argv=None) -> int:
    args = parse_args(argv)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    counts = [n for n in args.thread_counts if n <= cpus]
    skipped = [n for n in args.thread_counts if n > cpus]
    import numpy as np

    import cece

    cfg = cece.show_config(mode="dicts")
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError as exc:
            print(f"torch skipped: {exc}")
    print(f"cece {cece.__version__}, NumPy {np.__version__}"
          + (f", PyTorch {torch.__version__}" if torch is not None else "")
          + f", Python {platform.python_version()}; {cpus} CPUs available; "
          f"thread counts {counts}; SIMD {cfg['simd_selected']}" + (f" (skipped, more than the CPUs: {skipped})"
                                       if skipped else ""))
    blocks = Blocks(max(counts))
    results = []
    for rows, classes, dtype in args.case_list:
        res = run_case(rows, classes, dtype, counts, args, blocks, torch)
        print_case(res, counts, torch is not None)
        results.append(res)
    out = {"machine": {"platform": platform.platform(), "processor": _cpu_model(),
                       "cpus_available": cpus},
           "versions": {"cece": cece.__version__, "numpy": np.__version__,
                        "torch": getattr(torch, "__version__", None),
                        "python": platform.python_version()},
           "config": cfg, "rounds": args.rounds, "budget_s": args.budget,
           "thread_counts": counts, "skipped_thread_counts": skipped, "cases": results}
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
        print(f"\nwrote {args.json}")
    identical = all(r["bitwise"]["identical"] for r in results)
    print(f"bitwise identical across thread counts in every case: {identical}")
    return 0 if identical else 1


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
