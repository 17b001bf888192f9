"""Accuracy of cece's vectorised exp against an exact reference, in ulps, at every SIMD level.

    python benchmarks/exp_accuracy.py [--f64-points N] [--levels baseline,avx2,avx512]

The functions, as the kernels use them (csrc/cece_math.h):
  exp          the general one (softmax outputs), over the whole range where exp(x) is
               finite and not 0: [-103.97, 88.72] in float32, [-745.13, 709.78] in float64;
  exp shifted  the one the sums of exps use, for max-shifted arguments x <= 0;
  exp label    float32 only: the table form of the label-shifted forward (its exps of
               z_c - z_y, either sign), over the general one's range; the AVX-512 kernel's
               vector form at that level, its scalar model (the same bits) at AVX2 (not at
               the baseline level, where the model's fused multiply-adds are libm calls).

float32: every float32 in the range (about 2.2e9 values, in chunks). float64: N random points
plus N/4 evenly spaced ones (default N = 20 million). The reference is NumPy's exp in long
double (64-bit mantissa on x86-64), rounded to nothing: the error is |result - exp(x)| over
the ulp of exp(x) in the tested dtype (the subnormal ulp below the normal range). libm's own
float64 exp is within 1 ulp of that reference, so these figures are also "against libm" to
within one ulp. Takes a few minutes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import cece
from cece import _core

CHUNK = 1 << 24
WIDE = np.longdouble


def ulp_errors(result: np.ndarray, x: np.ndarray, dtype) -> np.ndarray:
    exact = np.exp(x.astype(WIDE))
    nmant = np.finfo(dtype).nmant
    tiny = WIDE(np.finfo(dtype).smallest_subnormal)
    _, k = np.frexp(exact)
    ulp = np.maximum(np.ldexp(WIDE(1), k - (nmant + 1)), tiny)
    return np.abs(result.astype(WIDE) - exact) / ulp


def float32_chunks(lo: float, hi: float):
    """Every float32 in [lo, hi] (lo < 0 <= hi), in chunks, by walking the bit patterns."""
    for sign, end in ((-1, -lo), (1, hi)):
        last = int(np.float32(end).view(np.uint32))
        for start in range(0 if sign > 0 else 1, last + 1, CHUNK):
            bits = np.arange(start, min(start + CHUNK, last + 1), dtype=np.uint32)
            yield sign * bits.view(np.float32)


def float64_chunks(lo: float, hi: float, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK):
        yield rng.uniform(lo, hi, min(CHUNK, n - start))
    yield np.linspace(lo, hi, n // 4)


def worst(chunks, form: str, dtype):
    top, at, count = 0.0, None, 0
    for x in chunks:
        x = x.astype(dtype)
        if form == "exp shifted":
            x = x[x <= 0]
        out = _core.exp_array(x, np.empty_like(x), shifted=form == "exp shifted",
                              label=form == "exp label")
        err = ulp_errors(out, x, dtype)
        i = int(np.argmax(err))
        if err[i] > top:
            top, at = float(err[i]), x[i]
        count += x.size
    return top, at, count


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--f64-points", type=int, default=20_000_000)
    ap.add_argument("--levels", default=",".join(cece.show_config(mode="dicts")["simd_supported"]))
    args = ap.parse_args(argv)
    if np.finfo(WIDE).nmant < 63:
        print("note: long double is float64 here; the reference is NumPy's float64 exp")
    before = cece.show_config(mode="dicts")["simd_selected"]
    print(f"{'level':9s} {'dtype':8s} {'function':12s} {'max ulp':>8s}  {'at x':>14s}  points")
    try:
        for level in args.levels.split(","):
            _core.select_simd(level)
            for dtype in (np.float32, np.float64):
                # the label form's scalar model is the same bits at every level; the baseline
                # level has no FMA instruction and runs it through libm's fmaf (hours)
                label = dtype == np.float32 and level != "baseline"
                forms = ["exp", "exp shifted"] + (["exp label"] if label else [])
                for name in forms:
                    shifted = name == "exp shifted"
                    start = time.perf_counter()
                    if dtype == np.float32:
                        chunks = float32_chunks(-103.97, 0.0 if shifted else 88.72)
                    else:
                        chunks = float64_chunks(-745.13, 0.0 if shifted else 709.78,
                                                args.f64_points)
                    top, at, count = worst(chunks, name, dtype)
                    print(f"{level:9s} {np.dtype(dtype).name:8s} {name:12s} {top:8.3f}  "
                          f"{float(at):14.7g}  {count} ({time.perf_counter() - start:.0f} s)",
                          flush=True)
    finally:
        _core.select_simd(before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
