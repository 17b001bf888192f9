#!/usr/bin/env bash
# valgrind memcheck over a short script that exercises every public function of cece (every
# kernel layout, dtype, option, SIMD level the CPU has, in place, OpenMP, error paths).
#
#   tools/valgrind_check.sh          # builds cece from this checkout into a fresh venv
#   PYTHON=/path/to/python tools/valgrind_check.sh   # use a Python where cece is installed
#
# CPython and NumPy are not valgrind-clean, so only errors with a frame in cece's compiled
# module (cece/_core*.so) count: valgrind writes XML, and the errors whose stacks touch
# _core are printed and make the script exit 1 (leak checking is off: module-lifetime
# allocations are not leaks; tests/test_leaks.py watches growth). PYTHONMALLOC=malloc sends Python's small
# objects through malloc, where memcheck can see them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

command -v valgrind >/dev/null || { echo "valgrind_check.sh: valgrind is not installed" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/cece-valgrind.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "${PYTHON:-}" ]; then
    py=$PYTHON
else
    echo "== valgrind: building cece into a fresh venv"
    mkdir -p "$work/src"
    tar -C "$root" --exclude=./build --exclude=./dist --exclude=./.git --exclude='*.egg-info' \
        --exclude='__pycache__' --exclude='*.so' --exclude=./.hypothesis --exclude='./.venv*' \
        --exclude=./cece/_core.c -cf - . | tar -C "$work/src" -xf -
    python3 -m venv "$work/venv"
    "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$work/src"
    py="$work/venv/bin/python"
fi

cat > "$work/exercise.py" <<'EOF'
import numpy as np
import cece
import cece._core as core

rng = np.random.default_rng(0)
print("cece from", core.__file__, flush=True)


def bad(fn):
    try:
        fn()
    except (TypeError, ValueError, IndexError):
        return
    raise AssertionError("expected an error")


def exercise(dtype):
    compute = np.float32 if dtype == np.float16 else dtype
    for shape, axis in [((7, 5), -1), ((3, 40), 1), ((2, 3, 70), 1), ((65, 3), 0), ((1, 1), -1),
                        ((0, 4), -1), ((5,), 0), ((2, 17, 3, 2), 1), ((300, 256), -1), ((4, 300, 70), 1)]:
        x = rng.standard_normal(shape).astype(dtype) * 3
        C = shape[axis]
        batch = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
        y = rng.integers(0, C, batch)
        if y.size:
            y.flat[0] = -100
        p = rng.random(shape).astype(dtype)
        w = rng.random(C) + 0.1
        sw = rng.random(batch)
        for nt in (None, 1, 2):
            cece.cross_entropy(x, y, axis=axis, num_threads=nt)
            cece.cross_entropy(x, y, axis=axis, reduction="none", weight=w, sample_weight=sw,
                               label_smoothing=0.1, num_threads=nt)
            cece.cross_entropy(x, p, axis=axis, reduction="sum", z_loss=1e-3, softcap=4.0, num_threads=nt)
            cece.cross_entropy(p, y, axis=axis, from_logits=False, reduction="none", num_threads=nt)
            cece.cross_entropy_grad(x, y, axis=axis, weight=w, softcap=2.0, num_threads=nt)
            cece.cross_entropy_grad(x, p, axis=axis, reduction="none", sample_weight=sw, num_threads=nt)
            cece.cross_entropy_grad(p, p, axis=axis, from_logits=False, label_smoothing=0.2, num_threads=nt)
            cece.cross_entropy_with_grad(x, y, axis=axis, z_loss=1e-4, num_threads=nt)
            buf = x.astype(compute)
            cece.cross_entropy_with_grad(buf, y, axis=axis, grad_out=buf, reduction="sum", num_threads=nt)
            buf = p.astype(compute)
            cece.cross_entropy_with_grad(buf, y, axis=axis, grad_out=buf, from_logits=False, num_threads=nt)
            out = np.empty(x.shape, compute)
            cece.cross_entropy_grad(x, p, axis=axis, out=out, num_threads=nt)
            cece.log_softmax(x, axis=axis, num_threads=nt)
            cece.softmax(x, axis=axis, out=out, num_threads=nt)
            buf = x.astype(compute)
            cece.softmax(buf, axis=axis, out=buf, num_threads=nt)
            cece.logsumexp(x, axis=axis, num_threads=nt)
        # special values and error paths
        z = x.copy()
        if z.size:
            z.flat[0] = np.nan
            z.flat[-1] = np.inf
        cece.cross_entropy_with_grad(z, y, axis=axis, reduction="none")
        cece.logsumexp(z, axis=axis)
        if y.size:
            yb = y.copy()
            yb.flat[-1] = C
            bad(lambda: cece.cross_entropy(x, yb, axis=axis, reduction="sum"))
            bad(lambda: cece.cross_entropy_grad(x, yb, axis=axis))
            buf = x.astype(compute)
            bad(lambda: cece.cross_entropy_with_grad(buf, yb, axis=axis, grad_out=buf, reduction="none"))
    bad(lambda: cece.cross_entropy(x.astype(complex), y))
    bad(lambda: cece.softmax(x, out=np.empty(3)))


levels = cece.show_config(mode="dicts")["simd_supported"]
for level in levels:
    core.select_simd(level)
    for dtype in (np.float32, np.float64, np.float16):
        exercise(dtype)
    x = rng.standard_normal(1000).astype(np.float32)
    core.exp_array(x, np.empty_like(x))
    core.exp_array(x.astype(np.float64), np.empty(1000))
    print("level", level, "done", flush=True)
core.select_simd(None)
print("exercise done", flush=True)
EOF

echo "== valgrind: memcheck on $("$py" -c 'import sys; print(sys.version.split()[0])')"
start=$(date +%s)
status=0
(cd "$work" && PYTHONMALLOC=malloc OMP_NUM_THREADS=2 valgrind --tool=memcheck --error-exitcode=99 \
    --leak-check=no --track-origins=no --num-callers=40 --xml=yes --xml-file="$work/memcheck.xml" \
    --log-file="$work/valgrind.log" "$py" exercise.py > "$work/out.txt" 2>&1) || status=$?
cat "$work/out.txt"
echo "   valgrind ran $(($(date +%s) - start)) s, exit $status"
# 99: valgrind saw errors (judged below); anything else, or no "exercise done": the script broke
if { [ $status -ne 0 ] && [ $status -ne 99 ]; } || ! grep -q "exercise done" "$work/valgrind.log" "$work/out.txt" 2>/dev/null; then
    echo "valgrind_check.sh: the exercise itself failed (exit $status)" >&2
    tail -50 "$work/out.txt" >&2
    exit 1
fi

"$py" - "$work/memcheck.xml" <<'EOF'
import re
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
errors = root.findall("error")
ours, others = [], {}
for err in errors:
    kind = err.findtext("kind")
    if kind.startswith("Leak_"):  # leaks are tests/test_leaks.py's business
        others[kind] = others.get(kind, 0) + 1
        continue
    frames = [(f.findtext("obj") or "", f.findtext("fn") or "?", f.findtext("file") or "",
               f.findtext("line") or "") for f in err.iter("frame")]
    if any(re.search(r"cece/_core[^/]*\.so$", obj) for obj, *_ in frames):
        ours.append((kind, err.findtext("what") or err.findtext("xwhat/text") or "", frames))
    else:
        others[kind] = others.get(kind, 0) + 1
        if not kind.startswith("Uninit") or others[kind] <= 2:
            top = next(((fn, obj) for obj, fn, *_ in frames if "vgpreload" not in obj), ("?", "?"))
            print(f"   (ignored {kind} in {top[0]}, {top[1].rsplit('/', 1)[-1]})")
print(f"== valgrind: {len(errors)} error records, {len(ours)} with a frame in cece._core; "
      f"ignored (CPython, NumPy, libc): {others or 'none'}")
for kind, what, frames in ours:
    print(f"---- {kind}: {what}")
    for obj, fn, file, line in frames[:15]:
        print(f"     {fn}  {file}:{line}  ({obj})")
sys.exit(1 if ours else 0)
EOF
