"""Thread control: ``num_threads=`` per call, ``OMP_NUM_THREADS``, and threadpoolctl.

How many threads a call really used is observed without timing: OpenMP (libgomp, and LLVM's
libomp alike) keeps the worker threads of a team alive after the parallel region, so a fresh
interpreter that makes one large call has exactly ``team size - 1`` more OS threads
(/proc/self/task) afterwards than before. Each check runs in a child interpreter started for
it (importing the same cece as this process), so nothing else has created a team there.

The threadpoolctl tests skip when threadpoolctl is not installed; the OpenMP tests skip on a
build without OpenMP (CECE_DISABLE_OPENMP=1), which has tests of its own here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cece

OPENMP = bool(cece._core.build_info()["openmp"])
needs_openmp = pytest.mark.skipif(not OPENMP, reason="cece was built without OpenMP")
needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/task"),
                                reason="counting threads needs Linux's /proc/self/task")

# The child: count OS threads around one large call (2M logits: above the size at which cece
# starts a team, and 256 work items, so up to 256 threads could be used).
CHILD = r"""
import json, os, sys
import numpy as np
import cece

args = json.loads(sys.argv[1])

def threads():
    return len(os.listdir("/proc/self/task"))

def big_call(num_threads):
    x = np.zeros((4096, 512))
    y = np.zeros(4096, np.int64)
    before = threads()
    cece.cross_entropy_with_grad(x, y, num_threads=num_threads)
    return threads() - before

def short_rows_call(num_threads):
    # 2.6M logits in rows of 10: the small-C kernels' items (80 of them)
    x = np.zeros((262144, 10), np.float32)
    y = np.zeros(262144, np.int64)
    before = threads()
    cece.cross_entropy(x, y, num_threads=num_threads)
    return threads() - before

def small_call(num_threads):
    before = threads()
    cece.cross_entropy_with_grad(np.zeros((64, 10)), np.zeros(64, np.int64), num_threads=num_threads)
    return threads() - before

out = {"default_threads": cece._core.build_info()["default_threads"]}
if args.get("limit") is not None:
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=args["limit"], user_api="openmp"):
        out["limited_default"] = cece._core.build_info()["default_threads"]
        out["limited_new"] = big_call(None)
    out["restored_default"] = cece._core.build_info()["default_threads"]
if args.get("small"):
    out["small_new"] = small_call(args.get("num_threads"))
out["new"] = (short_rows_call if args.get("short_rows") else big_call)(args.get("num_threads"))
print(json.dumps(out))
"""


def run_child(tmp_path: Path, omp_num_threads: str | None, **args) -> dict:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OMP_THREAD_LIMIT", "OMP_DYNAMIC", "GOMP_CPU_AFFINITY",
                 "OMP_NESTED", "OMP_MAX_ACTIVE_LEVELS"):
        env.pop(name, None)
    if omp_num_threads is not None:
        env["OMP_NUM_THREADS"] = omp_num_threads
    env["OMP_DYNAMIC"] = "false"  # no shrinking of teams to the number of cores
    env["OPENBLAS_NUM_THREADS"] = "1"  # NumPy's BLAS starts no threads of its own
    # the child imports the very cece this process runs, from an empty working directory
    # (never a source tree's ./cece)
    package_parent = str(Path(cece.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + [p for p in
                                         env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _inputs():
    rng = np.random.default_rng(7)
    return rng.standard_normal((3000, 300)), rng.integers(0, 300, 3000)


# ---- num_threads= and OMP_NUM_THREADS ------------------------------------------------------


@needs_openmp
@needs_proc
@pytest.mark.parametrize("omp", ["1", "2", "3"])
def test_omp_num_threads_is_the_default(tmp_path, omp):
    out = run_child(tmp_path, omp)
    assert out["default_threads"] == int(omp)
    assert out["new"] == int(omp) - 1, out


@needs_openmp
@needs_proc
@pytest.mark.parametrize("omp, requested", [("1", 3), ("3", 1), ("3", 2), (None, 4)])
def test_num_threads_overrides_the_environment(tmp_path, omp, requested):
    out = run_child(tmp_path, omp, num_threads=requested)
    assert out["new"] == requested - 1, out


@needs_openmp
@needs_proc
def test_short_rows_use_more_than_16_threads(tmp_path):
    """A large call of short rows has work items for every thread asked for (up to a few
    per thread), not a fixed 16."""
    out = run_child(tmp_path, "1", num_threads=24, short_rows=True)
    assert out["new"] == 23, out


@needs_openmp
@needs_proc
def test_small_inputs_stay_on_the_calling_thread(tmp_path):
    out = run_child(tmp_path, "3", num_threads=3, small=True)
    assert out["small_new"] == 0, out
    assert out["new"] == 2, out


@pytest.mark.parametrize("num_threads", [None, 1, 2, 3, 8])
def test_results_do_not_depend_on_the_thread_count(num_threads):
    x, y = _inputs()
    loss1, grad1 = cece.cross_entropy_with_grad(x, y, num_threads=1)
    loss, grad = cece.cross_entropy_with_grad(x, y, num_threads=num_threads)
    assert loss.tobytes() == loss1.tobytes()
    assert grad.tobytes() == grad1.tobytes()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_num_threads_is_an_error(bad):
    with pytest.raises((TypeError, ValueError), match="num_threads"):
        cece.softmax(np.zeros((2, 3)), num_threads=bad)


# ---- threadpoolctl -------------------------------------------------------------------------


def _threadpoolctl():
    return pytest.importorskip(
        "threadpoolctl", reason="threadpoolctl is not installed (pip install threadpoolctl)")


def _cece_openmp_entries(info):
    """threadpoolctl entries of the OpenMP runtime cece's extension is linked to: in a
    repaired wheel the copy in cece.libs/; otherwise every OpenMP runtime in the process (a
    source build links the system's libgomp, which torch or others may have loaded too)."""
    openmp = [e for e in info if e["internal_api"] == "openmp"]
    libs = Path(cece.__file__).resolve().parent.parent / "cece.libs"
    if libs.is_dir():
        return [e for e in openmp if Path(e["filepath"]).resolve().parent == libs.resolve()]
    return openmp


@needs_openmp
def test_threadpoolctl_sees_cece_openmp_runtime():
    threadpoolctl = _threadpoolctl()
    info = threadpoolctl.threadpool_info()
    entries = _cece_openmp_entries(info)
    assert entries, f"no OpenMP runtime of cece in threadpool_info(): {info}"
    default = cece._core.build_info()["default_threads"]
    assert any(e["num_threads"] == default for e in entries), (entries, default)


@needs_openmp
def test_threadpool_limits_sets_cece_default():
    threadpoolctl = _threadpoolctl()
    before = cece._core.build_info()["default_threads"]
    with threadpoolctl.threadpool_limits(limits=1):
        assert cece._core.build_info()["default_threads"] == 1
        assert cece.show_config(mode="dicts")["threads"] == 1
        x, y = _inputs()
        cece.cross_entropy_with_grad(x, y)  # runs, on one thread
    assert cece._core.build_info()["default_threads"] == before


@needs_openmp
@needs_proc
def test_threadpool_limits_makes_cece_use_one_thread(tmp_path):
    _threadpoolctl()
    out = run_child(tmp_path, "3", limit=1)
    assert out["default_threads"] == 3
    assert out["limited_default"] == 1
    assert out["limited_new"] == 0, out  # one thread inside the limit
    assert out["restored_default"] == 3
    assert out["new"] == 2, out  # and three again after it


# ---- a build without OpenMP ----------------------------------------------------------------


@pytest.mark.skipif(OPENMP, reason="cece was built with OpenMP")
def test_serial_build_reports_one_thread(capsys):
    assert cece._core.build_info()["default_threads"] == 1
    cece.show_config()
    assert "OpenMP:         no" in capsys.readouterr().out


@pytest.mark.skipif(OPENMP, reason="cece was built with OpenMP")
@needs_proc
def test_serial_build_starts_no_thread(tmp_path):
    out = run_child(tmp_path, "3", num_threads=3)
    assert out["default_threads"] == 1
    assert out["new"] == 0, out
