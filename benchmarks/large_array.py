"""More than 2^31 logits in one float32 array: cece's 64-bit indexing, checked end to end.

Not part of CI (it needs ~9 GB of memory and some minutes). It makes a float32 array of
N x C = 2,200,000 x 1000 = 2.2e9 logits (8.8 GB; 52,517 rows lie wholly past element 2^31)
and checks, against cece.reference run on chunks of rows:

1. the forward loss for every reduction ("none" per row, "sum", "mean"), rows layout;
2. logsumexp, rows layout;
3. the same buffer viewed as (2, 1000, 1,100,000) with the class axis in the middle (the tile
   kernels; the second outer block starts at element 1.1e9 and ends at 2.2e9): "none" losses
   and logsumexp against cece and the reference on chunks of the inner axis;
4. the gradient, in place (grad_out=logits: there is no room for a second 8.8 GB array),
   last: the gradients of a few row chunks (the first, the one straddling element 2^31, the
   last) are computed beforehand on small copies by the reference, and compared after.

    python benchmarks/large_array.py [--rows N] [--classes C] [--threads T] [--sample K]

Prints what it checked and exits 1 on any mismatch. --sample K runs the reference on every
K-th chunk only (plus the first, the last and those past 2^31) to save time; the default 1
runs it on all chunks.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import cece
import cece.reference as ref

TWO31 = 2**31


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def relerr(a, b) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30), initial=0.0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_200_000)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--chunk", type=int, default=8192, help="rows per reference chunk")
    ap.add_argument("--sample", type=int, default=1, help="reference on every K-th chunk")
    ap.add_argument("--skip-gradient", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="allow a small array (tests the script)")
    args = ap.parse_args()
    N, C, nt = args.rows, args.classes, args.threads
    total = N * C
    failures: list[str] = []

    def check(name: str, err: float, tol: float) -> None:
        ok = err <= tol
        log(f"{'ok  ' if ok else 'FAIL'} {name}: max relative error {err:.3g} (tolerance {tol:g})")
        if not ok:
            failures.append(name)

    cece.show_config()
    if args.dry_run:
        global TWO31
        TWO31 = total * 2 // 3
    log(f"logits {N} x {C} float32 = {total:,} elements ({total * 4 / 2**30:.2f} GiB); "
        f"2^31 = {TWO31:,}; rows wholly past 2^31: {N - -(-TWO31 // C):,}")
    assert total > TWO31 or args.dry_run, "the point is more than 2^31 elements"

    t0 = time.perf_counter()
    x = np.empty((N, C), np.float32)
    rng = np.random.default_rng(2024)
    for r0 in range(0, N, 65536):
        r1 = min(N, r0 + 65536)
        x[r0:r1] = rng.standard_normal((r1 - r0, C), dtype=np.float32)
        x[r0:r1] *= 3
    y = rng.integers(0, C, N)
    # make the rows past 2^31 unlike the first rows, so an index that wrapped would show
    x[-1000:] += 5
    y[-1] = C - 1
    log(f"filled in {time.perf_counter() - t0:.1f} s")

    # ---- forward, rows layout ----------------------------------------------------------
    results = {}
    for reduction in ("none", "sum", "mean"):
        t0 = time.perf_counter()
        results[reduction] = cece.cross_entropy(x, y, reduction=reduction, num_threads=nt)
        log(f"cece.cross_entropy(reduction={reduction!r}): {time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    lse = cece.logsumexp(x, num_threads=nt)
    log(f"cece.logsumexp: {time.perf_counter() - t0:.2f} s")

    chunk = args.chunk
    starts = list(range(0, N, chunk))
    past = {s for s in starts if (s + chunk) * C > TWO31}  # chunks reaching past element 2^31
    chosen = [s for i, s in enumerate(starts)
              if i % args.sample == 0 or s in past or i == len(starts) - 1]
    t0 = time.perf_counter()
    ref_none = np.full(N, np.nan)
    ref_lse = np.full(N, np.nan)
    for k, s in enumerate(chosen):
        e = min(N, s + chunk)
        block = x[s:e].astype(np.float64)
        ref_none[s:e] = ref.cross_entropy(block, y[s:e], reduction="none")
        ref_lse[s:e] = ref.logsumexp(block)
        if k % 50 == 0:
            log(f"  reference chunk {k + 1}/{len(chosen)}")
    covered = ~np.isnan(ref_none)
    log(f"reference on {len(chosen)} of {len(starts)} chunks ({covered.sum():,} rows) in "
        f"{time.perf_counter() - t0:.1f} s")
    check("rows layout, reduction='none' (rows with a reference)",
          relerr(results["none"][covered], ref_none[covered]), 1e-6)
    check("rows layout, reduction='none', rows past element 2^31",
          relerr(results["none"][-(N - TWO31 // C - 1):], ref_none[-(N - TWO31 // C - 1):]), 1e-6)
    check("rows layout, logsumexp", relerr(lse[covered], ref_lse[covered]), 1e-6)
    # the reductions, against the float64 sum of the reference (or of cece's own "none"
    # where the reference was sampled)
    if covered.all():
        exact_sum = float(np.sum(ref_none))
    else:
        exact_sum = float(np.sum(np.where(covered, ref_none, results["none"].astype(np.float64))))
    check("rows layout, reduction='sum'", relerr(results["sum"], exact_sum), 1e-6)
    check("rows layout, reduction='mean'", relerr(results["mean"], exact_sum / N), 1e-6)
    check("rows layout, 'sum' equals the sum of 'none'",
          relerr(results["sum"], np.sum(results["none"], dtype=np.float64)), 1e-6)
    del ref_none, ref_lse, lse

    # ---- forward, tile layout: (2, C, inner), axis=1 -------------------------------------
    if total % (2 * C) == 0:
        inner = total // (2 * C)
        xt = x.reshape(2, C, inner)  # the same memory, read as class axis in the middle
        yt = rng.integers(0, C, (2, inner))
        t0 = time.perf_counter()
        none_t = cece.cross_entropy(xt, yt, axis=1, reduction="none", num_threads=nt)
        log(f"tile layout (2, {C}, {inner}) axis=1, reduction='none': {time.perf_counter() - t0:.2f} s")
        lse_t = cece.logsumexp(xt, axis=1, num_threads=nt)
        width = 4096
        istarts = list(range(0, inner, width))
        worst_cece = worst_lse = worst_ref = 0.0
        t0 = time.perf_counter()
        for k, i0 in enumerate(istarts):
            i1 = min(inner, i0 + width)
            part = np.ascontiguousarray(xt[:, :, i0:i1])
            mine = cece.cross_entropy(part, yt[:, i0:i1], axis=1, reduction="none")
            worst_cece = max(worst_cece, relerr(none_t[:, i0:i1], mine))
            worst_lse = max(worst_lse, relerr(lse_t[:, i0:i1], cece.logsumexp(part, axis=1)))
            if k % max(1, 16 * args.sample) == 0 or k == len(istarts) - 1:
                r = ref.cross_entropy(part.astype(np.float64), yt[:, i0:i1], axis=1, reduction="none")
                worst_ref = max(worst_ref, relerr(none_t[:, i0:i1], r))
        log(f"tile chunks checked in {time.perf_counter() - t0:.1f} s")
        check("tile layout, 'none' against cece on inner chunks", worst_cece, 1e-6)
        check("tile layout, logsumexp against cece on inner chunks", worst_lse, 1e-6)
        check("tile layout, 'none' against the reference (every 16th chunk and the last)",
              worst_ref, 1e-6)
        del none_t, lse_t, xt

    # ---- gradient, in place ---------------------------------------------------------------
    if not args.skip_gradient:
        straddle = (TWO31 // C) // chunk * chunk
        probes = sorted({0, straddle, starts[-1]})
        expected = {}
        mean_den = float(N)
        for s in probes:
            e = min(N, s + chunk)
            g = ref.cross_entropy_grad(x[s:e].astype(np.float64), y[s:e], reduction="sum")
            expected[s] = g / mean_den
        loss_before = results["mean"]
        t0 = time.perf_counter()
        loss, grad = cece.cross_entropy_with_grad(x, y, grad_out=x, num_threads=nt)
        log(f"cece.cross_entropy_with_grad(grad_out=logits) in place: {time.perf_counter() - t0:.2f} s")
        assert grad is x
        check("in-place run's loss equals the forward 'mean'", relerr(loss, loss_before), 1e-6)
        for s in probes:
            e = min(N, s + chunk)
            err = float(np.max(np.abs(grad[s:e] - expected[s])) / np.max(np.abs(expected[s])))
            check(f"gradient rows {s:,}..{e:,} (elements {s * C:,}..{e * C:,}) against the reference",
                  err, 1e-5)
        worst_row_sum = 0.0
        for r0 in range(0, N, 65536):
            sums = np.sum(grad[r0:r0 + 65536], axis=1, dtype=np.float64)
            worst_row_sum = max(worst_row_sum, float(np.max(np.abs(sums))))
        check("every gradient row sums to 0 (times N, relative to 1/N)", worst_row_sum * N, 1e-4)

    log("FAILED: " + ", ".join(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
