"""Peak extra memory of the forward and forward+gradient calls: cece, pure NumPy, PyTorch.

    python benchmarks/bench_memory.py [--rows 4096] [--classes 32000] [--dtype float32]
                                      [--threads 2] [--json PATH]

"Extra" is memory on top of the inputs (logits and integer labels), which exist before the
call: the result arrays count (the gradient is an N x C array unless it is written in place),
and so do all temporaries. Every measurement runs in a fresh child process (so that no
allocator cache or earlier peak leaks from one measurement into the next), which creates the
inputs, warms the library up on a 64-row slice (lazy imports, first-call setup), and then
measures one full call two ways:

  tracemalloc   peak of tracemalloc's traced memory during the call, minus what was traced
                before it. NumPy reports its array buffers to tracemalloc, so this sees every
                NumPy array the call creates (cece's gradient array is a NumPy array too); it
                does not see plain C malloc (cece's kernels allocate nothing per call on the
                heap beyond small per-thread blocks, which this would miss) nor PyTorch's
                tensors (its CPU allocator is plain malloc/posix_memalign): "-" for torch.
  RSS           the process's peak resident set (VmHWM in /proc/self/status) during the call,
                minus the resident set just before it; the peak is reset right before the
                call by writing 5 to /proc/self/clear_refs (Linux). This sees every page any
                library touches, C allocations included, so it is the number compared
                across libraries; it has page granularity and includes a few MiB of noise
                (code pages touched for the first time, thread stacks). If clear_refs is not
                available, ru_maxrss is used (valid in a fresh process whose peak so far is
                its current size).

Rows measured (each for the forward `cross_entropy` and `cross_entropy_with_grad`, integer
labels, reduction "mean"):

  cece              cece.cross_entropy / cece.cross_entropy_with_grad
  cece in place     cece.cross_entropy_with_grad(logits, y, grad_out=logits): no N x C array
  numpy             cece.reference (float64 inside, with whole-array temporaries)
  torch             F.cross_entropy under no_grad for the forward; for fwd+grad a leaf tensor
                    sharing the logits' memory (torch.from_numpy), autograd.grad

The default size, 4096 x 32000 float32 (500 MiB of logits), keeps the NumPy reference's peak
(about 16x the float32 logits: it works in float64 with many temporaries) near 8 GiB, which
fits comfortably in 24 GiB; the script skips NumPy with a note if MemAvailable is short.

Acceptance (issue 3): for each of cece's forward, fwd+grad and in-place fwd+grad, the extra
memory beyond what the call returns (nothing, the N x C gradient, nothing) - the larger of
the RSS and tracemalloc measures - must be at most 1% of the logits' size plus 64 bytes per
row (the O(N) of per-row values). PASS / FAIL is printed with NumPy's and PyTorch's numbers
on the same measure beside it, and written to the JSON ("acceptance"); a row that did not
run is "not measured". Use a large --rows x --classes: RSS's noise (page granularity,
first-touched code pages, thread stacks) would swamp 1% of a small array.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = [
    ("cece", "fwd"), ("cece", "grad"),
    ("cece in place", "grad"),
    ("numpy", "fwd"), ("numpy", "grad"),
    ("torch", "fwd"), ("torch", "grad"),
]
NUMPY_PEAK_FACTOR = 17  # the reference's peak / float32 logits bytes, plus the logits

# Issue 3's memory criterion: beyond what a call must return (nothing for the forward, the
# gradient for fwd+grad, nothing with grad_out=logits), peak extra memory below 1% of the
# logits' size plus O(N). O(N) is taken as PER_ROW_BYTES per row: room for eight float64
# per row (per-row losses, maxima, sums of exps), which no kernel needs more of.
LOGITS_FRACTION = 0.01
PER_ROW_BYTES = 64
# (criterion, cece row, op, whether the call returns an N x C gradient)
CRITERIA = [
    ("forward allocates no N x C temporary", "cece", "fwd", False),
    ("fwd+grad allocates only the gradient", "cece", "grad", True),
    ("grad_out=logits allocates nothing N x C", "cece in place", "grad", False),
]


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(lib: str, op: str, rows: int, classes: int, dtype: str, threads: int) -> dict:
    import gc
    import tracemalloc

    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, classes), dtype=np.float64 if dtype == "float64" else
                            np.float32) * 3
    y = rng.integers(0, classes, size=rows)
    small_x, small_y = x[:64].copy(), y[:64].copy()

    if lib in ("cece", "cece in place"):
        import cece

        def run(a, b):
            if op == "fwd":
                return cece.cross_entropy(a, b, num_threads=threads)
            if lib == "cece in place":
                return cece.cross_entropy_with_grad(a, b, num_threads=threads, grad_out=a)
            return cece.cross_entropy_with_grad(a, b, num_threads=threads)
    elif lib == "numpy":
        import cece.reference as ref

        def run(a, b):
            if op == "fwd":
                return ref.cross_entropy(a, b)
            return ref.cross_entropy_with_grad(a, b)
    elif lib == "torch":
        import torch

        torch.set_num_threads(threads)
        F = torch.nn.functional

        def run(a, b):
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            if op == "fwd":
                with torch.no_grad():
                    return F.cross_entropy(ta, tb)
            leaf = ta.requires_grad_(True)
            loss = F.cross_entropy(leaf, tb)
            (g,) = torch.autograd.grad(loss, leaf)
            return loss.detach(), g
    else:
        raise ValueError(lib)

    run(small_x, small_y)  # warm-up on a slice
    gc.collect()
    traced = lib != "torch"
    if traced:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    have_clear = reset_peak_rss()
    rss0 = status_kb("VmRSS")
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run(x, y)
    if have_clear:
        rss_peak_kb = status_kb("VmHWM") - rss0
    else:
        rss_peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - max(rss0, maxrss0)
    tm_peak = None
    if traced:
        tm_peak = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.stop()
    del result
    return {"lib": lib, "op": op, "tracemalloc_bytes": tm_peak,
            "rss_bytes": rss_peak_kb * 1024, "logits_bytes": int(x.nbytes),
            "rss_method": "VmHWM after clear_refs" if have_clear else "ru_maxrss"}


def mem_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def fmt_bytes(b: Optional[int]) -> str:
    if b is None:
        return "-"
    if abs(b) >= 2**30:
        return f"{b / 2**30:.2f} GiB"
    if abs(b) >= 2**20:
        return f"{b / 2**20:.1f} MiB"
    return f"{b / 2**10:.1f} KiB"


def fmt_exact(b: Optional[int]) -> str:
    return "-" if b is None else f"{b:,} ({fmt_bytes(b)})"


def extra_bytes(res: dict[str, Any]) -> int:
    """The larger of the two measures (tracemalloc is absent for torch)."""
    return max(res["rss_bytes"], res["tracemalloc_bytes"] or 0)


def beyond_returned(res: Optional[dict[str, Any]], returned: int) -> Optional[int]:
    """Extra bytes a measured row used beyond what its call returns; None if not run."""
    return None if res is None else extra_bytes(res) - returned


def evaluate_memory(results: list[dict[str, Any]], rows: int,
                    logits_bytes: int) -> dict[str, Any]:
    """PASS / FAIL per criterion for cece, with NumPy's and PyTorch's same numbers beside
    it; "not measured" if cece's row did not run."""
    allowance = int(LOGITS_FRACTION * logits_bytes) + PER_ROW_BYTES * rows
    by_row = {(r["lib"], r["op"]): r for r in results}
    checks = []
    for criterion, lib, op, returns_grad in CRITERIA:
        returned = logits_bytes if returns_grad else 0  # the gradient has the logits' size
        cece = beyond_returned(by_row.get((lib, op)), returned)
        peers = {peer: beyond_returned(by_row.get((peer, op)), returned)
                 for peer in ("numpy", "torch")}
        status = ("not measured" if cece is None else
                  "PASS" if cece <= allowance else "FAIL")
        checks.append({"criterion": criterion, "row": lib, "op": op, "status": status,
                       "returned_bytes": returned, "extra_beyond_returned_bytes": cece,
                       "allowance_bytes": allowance,
                       "peers_extra_beyond_returned_bytes": peers})
    return {"allowance_bytes": allowance, "checks": checks,
            "all_pass": all(c["status"] == "PASS" for c in checks)}


def print_memory_acceptance(acceptance: dict[str, Any], rows: int, logits_bytes: int) -> None:
    allowance = acceptance["allowance_bytes"]
    print(f"\nAcceptance (issue 3, memory): peak extra memory beyond what the call returns "
          f"(the larger of RSS and tracemalloc) <= {LOGITS_FRACTION:.0%} of the logits "
          f"({fmt_bytes(int(LOGITS_FRACTION * logits_bytes))}) + {PER_ROW_BYTES} B x "
          f"{rows} rows = {fmt_bytes(allowance)}")
    for c in acceptance["checks"]:
        peers = "" if c["row"] == "cece in place" else ", ".join(  # no in-place peer
            f"{peer} {fmt_bytes(v)}" for peer, v in c["peers_extra_beyond_returned_bytes"].items())
        returned = (f" beyond the {fmt_bytes(c['returned_bytes'])} gradient"
                    if c["returned_bytes"] else "")
        print(f"  {c['status']:<12} {c['criterion']:<40} {c['row']}: "
              f"{fmt_bytes(c['extra_beyond_returned_bytes'])}{returned}"
              + (f"  [same measure: {peers}]" if peers else ""))
    print("  " + ("every memory criterion passes" if acceptance["all_pass"]
                  else "memory acceptance NOT shown"))


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--classes", type=int, default=32000)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=os.path.join(HERE, "results", "memory.json"))
    ap.add_argument("--child", nargs=2, metavar=("LIB", "OP"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        out = child(args.child[0], args.child[1], args.rows, args.classes, args.dtype,
                    args.threads)
        print(json.dumps(out))
        return 0

    itemsize = 4 if args.dtype == "float32" else 8
    logits_bytes = args.rows * args.classes * itemsize
    print(f"peak extra memory, {args.rows} x {args.classes} {args.dtype} logits "
          f"({fmt_bytes(logits_bytes)}), integer labels, reduction='mean', "
          f"{args.threads} threads; each row in a fresh process")
    avail = mem_available()
    results: list[dict[str, Any]] = []
    header = (f"  {'library':<14} {'op':<9} {'RSS peak extra bytes':>28} {'% logits':>9} "
              f"{'tracemalloc peak bytes':>28} {'% logits':>9}")
    print(header)
    for lib, op in ROWS:
        label = "fwd+grad" if op == "grad" else "forward"
        if lib == "numpy" and avail is not None and \
                NUMPY_PEAK_FACTOR * args.rows * args.classes * 4 > 0.8 * avail:
            print(f"  {lib:<14} {label:<9} skipped: needs about "
                  f"{fmt_bytes(NUMPY_PEAK_FACTOR * args.rows * args.classes * 4)}, "
                  f"{fmt_bytes(avail)} available")
            continue
        cmd = [sys.executable, os.path.abspath(__file__), "--child", lib, op,
               "--rows", str(args.rows), "--classes", str(args.classes),
               "--dtype", args.dtype, "--threads", str(args.threads)]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            if lib == "torch" and "No module named 'torch'" in proc.stderr:
                print(f"  {lib:<14} {label:<9} skipped: torch is not installed")
            else:
                print(f"  {lib:<14} {label:<9} failed: {last}")
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(res)
        tm = res["tracemalloc_bytes"]
        print(f"  {lib:<14} {label:<9} {fmt_exact(res['rss_bytes']):>28} "
              f"{100 * res['rss_bytes'] / logits_bytes:8.1f}% {fmt_exact(tm):>28} "
              + (f"{100 * tm / logits_bytes:8.1f}%" if tm is not None else f"{'-':>9}"),
              flush=True)
    if results:
        print(f"RSS: {results[0]['rss_method']}; tracemalloc: NumPy-visible allocations only "
              f"(torch tensors are invisible to it)")
    acceptance = evaluate_memory(results, args.rows, logits_bytes)
    print_memory_acceptance(acceptance, args.rows, logits_bytes)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"rows": args.rows, "classes": args.classes, "dtype": args.dtype,
                       "threads": args.threads, "logits_bytes": logits_bytes,
                       "results": results, "acceptance": acceptance}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
