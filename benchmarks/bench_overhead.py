"""Per-call cost of small calls (32x10 float32, int64 labels, all defaults) next to PyTorch.

At this size the cross-entropy kernel takes well under a microsecond, so its numbers are
mostly the Python layer: argument checks, conversions and the call into the compiled module.
(The normalisation kernel of log_softmax, softmax and logsumexp is slower at this shape:
most of their time is the kernel's.)

    python benchmarks/bench_overhead.py [--rows 32] [--classes 10] [--torch-threads 2]

Each line is the best of 7 repeats of a timeit loop, in microseconds per call (the minimum,
because other processes only ever add time). Run against an installed or in-place-built cece.
"""

import argparse
import timeit

import numpy as np

import cece


def _per_call_us(fn, number):
    return min(timeit.repeat(fn, number=number, repeat=7)) / number * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--torch-threads", type=int, default=2,
                        help="torch.set_num_threads (default 2; on a busy 2-core machine "
                             "a 2-thread torch call is much slower than a 1-thread one)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.rows, args.classes)).astype(np.float32)
    y = rng.integers(0, args.classes, size=args.rows)
    calls = {
        "cross_entropy": lambda: cece.cross_entropy(x, y),
        "cross_entropy_with_grad": lambda: cece.cross_entropy_with_grad(x, y),
        "cross_entropy_grad": lambda: cece.cross_entropy_grad(x, y),
        "log_softmax": lambda: cece.log_softmax(x),
        "softmax": lambda: cece.softmax(x),
        "logsumexp": lambda: cece.logsumexp(x),
    }
    try:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(args.torch_threads)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        calls[f"torch F.cross_entropy ({args.torch_threads}t)"] = lambda: F.cross_entropy(tx, ty)
    except ImportError:
        print("(PyTorch not installed: no torch row)")
    print(f"{args.rows}x{args.classes} float32, us per call (min of 7 x {args.number}):")
    for name, fn in calls.items():
        fn()
        print(f"  {name:26s} {_per_call_us(fn, args.number):7.2f}")


if __name__ == "__main__":
    main()
