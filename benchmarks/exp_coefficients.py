"""Fit the float32 exp polynomial of csrc/cece_math.h (cece_exp_poly_f32), and the quadratic
and table of its label-shifted table form (cece_exp_label_f32).

    python benchmarks/exp_coefficients.py

e^r on |r| <= ln2/2 (and a little beyond: the range reduction's r can pass ln2/2 by an ulp)
as 1 + r + r^2 * q(r), q of degree 4, minimax for the relative error by Lawson's iteration
(least squares reweighted by the error, on a dense grid). Prints the coefficients rounded to
float32, exact in decimal as the header writes them, and the error of the float32 evaluation by
Horner's rule with fused multiply-adds on random points, next to the degree-7 polynomial by
Estrin's scheme it replaced. The full accuracy of the exp is measured by exp_accuracy.py.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

WIDE = np.longdouble
HALF_RANGE = float(np.log(2.0) / 2) + 2e-4
PREVIOUS = [0.5, 0.166666671633720397949219, 0.0416664853692054748535156,
            0.00833336077630519866943359, 0.00139304355252534151077271,
            0.000198527617612853646278381]


def lawson(half_range: float, target, weight, degree: int, points: int = 200_001,
           rounds: int = 300) -> tuple[np.ndarray, float]:
    """c minimising max |weight(r) * (sum_k c_k r^k - target(r))| over 0 < |r| <= half_range:
    least squares reweighted by the error (Lawson's iteration) on a dense grid, in long double.
    Returns c and that maximum."""
    r = np.linspace(-half_range, half_range, points).astype(WIDE)
    r = r[r != 0]
    t, wgt = target(r), weight(r)
    powers = np.stack([r**k for k in range(degree + 1)], axis=1)
    lawson_w = np.ones_like(r)
    for _ in range(rounds):
        w = wgt * np.sqrt(lawson_w)
        c, *_ = np.linalg.lstsq((powers * w[:, None]).astype(np.float64),
                                (t * w).astype(np.float64), rcond=None)
        err = np.abs(wgt * (powers @ c.astype(WIDE) - t))
        lawson_w = lawson_w * err
        lawson_w /= lawson_w.sum()
    return c, float(err.max())


def fit(degree: int = 4) -> np.ndarray:
    # q's error times r^2 / e^r is the relative error of e^r = 1 + r + r^2 q(r)
    c, err = lawson(HALF_RANGE, lambda r: (np.exp(r) - 1 - r) / r**2,
                    lambda r: r**2 / np.exp(r), degree)
    print(f"max relative error of the polynomial (unrounded coefficients): {err:.3g}")
    return c.astype(np.float32)


def fma32(x, y, z):
    """A float32 fused multiply-add: the product is exact in long double, one rounding."""
    return (np.asarray(x, WIDE) * np.asarray(y, WIDE) + np.asarray(z, WIDE)).astype(np.float32)


def horner(c: np.ndarray, r: np.ndarray) -> np.ndarray:
    t = fma32(c[-1], r, c[-2])
    for k in range(len(c) - 3, -1, -1):
        t = fma32(t, r, c[k])
    return fma32(fma32(t, r, np.float32(1)), r, np.float32(1))


def estrin7(r: np.ndarray) -> np.ndarray:
    c = [np.float32(x) for x in PREVIOUS]
    r2 = (r.astype(WIDE) * r).astype(np.float32)
    a, b, d = fma32(c[1], r, c[0]), fma32(c[3], r, c[2]), fma32(c[5], r, c[4])
    u = fma32(fma32(d, r2, b), r2, a)
    return fma32(r2, u, (r.astype(WIDE) + 1).astype(np.float32))


def ulps(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    exact = np.exp(r.astype(WIDE))
    _, k = np.frexp(exact)
    return np.abs(p.astype(WIDE) - exact) / np.ldexp(WIDE(1), k - 24)


LABEL_HALF_RANGE = float(np.log(2.0) / 64) + 2e-6  # |r| after the reduction to 32nds of ln2


def fit_label() -> np.ndarray:
    """e^r = 1 + (c1 + c2 r) r on |r| <= ln2/64, minimax for the relative error."""
    c, err = lawson(LABEL_HALF_RANGE, lambda r: (np.exp(r) - 1) / r,
                    lambda r: np.abs(r) / np.exp(r), 1)
    print(f"label quadratic: max relative error {err:.3g} (unrounded)")
    return c.astype(np.float32)


def exp2_32nds() -> list[np.float32]:
    """2^(j/32) rounded to the nearest float32 (exactly: by comparing the two candidates in
    long double, whose 64 bits leave the comparison undecided only at a tie, which a power of
    two's root never is)."""
    table = []
    for j in range(32):
        exact = np.exp2(WIDE(j) / 32)
        f = np.float32(exact)
        cands = [np.nextafter(f, np.float32(0)), f, np.nextafter(f, np.float32(4))]
        table.append(min(cands, key=lambda v: abs(WIDE(v) - exact)))
    return table


def main() -> None:
    c = fit()
    for k, x in enumerate(c, start=2):
        print(f"#define CECE_EXPF_C{k} {Decimal(float(x))}f")
    r = np.random.default_rng(0).uniform(-HALF_RANGE, HALF_RANGE, 4_000_000).astype(np.float32)
    for name, p in (("degree 6, Horner", horner(c, r)), ("degree 7, Estrin", estrin7(r))):
        e = ulps(p, r)
        print(f"{name}: max {float(e.max()):.3f} ulp, mean {float(e.mean()):.3f} ulp "
              f"(e^r alone, {r.size:,} random r)")
    c1, c2 = fit_label()
    print(f"#define CECE_LABEL_EXP_C1 {Decimal(float(c1))}f")
    print(f"#define CECE_LABEL_EXP_C2 {Decimal(float(c2))}f")
    print("2^(j/32):", ", ".join(float(t).hex() for t in exp2_32nds()))


if __name__ == "__main__":
    main()
