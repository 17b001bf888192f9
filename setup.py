"""Build of cece's one extension, cece._core: the Cython wrapper plus the C kernels in csrc/.

OpenMP is used when the compiler has it (probed by compiling a tiny program) unless
CECE_DISABLE_OPENMP=1; without it the build still succeeds and runs single-threaded, and
cece.show_config() says "OpenMP: no". Flags are portable: -O3, no -march=native, no
-ffast-math. Per-CPU speed comes from csrc/cece_level_*.c, each compiled for its own
instruction set and chosen at import.
"""

import os
import shutil
import sys
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNEL_SOURCES = [
    "csrc/cece_dispatch.c",
    "csrc/cece_level_baseline.c",
    "csrc/cece_level_avx2.c",
    "csrc/cece_level_avx512.c",
]


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _compiles_with(compiler, args):
    """Whether `compiler` builds and links a tiny OpenMP program with `args`."""
    tmp = tempfile.mkdtemp(prefix="cece-probe-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=args)
        compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=args)
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        # -fno-trapping-math only promises that no FP exception traps are enabled (clang's
        # default already); it changes no result, NaN and inf included, and lets GCC turn
        # the kernels' selects into vector blends. It is not -ffast-math.
        # -ffp-contract=off: a * b + c rounds alike in scalar and vector code; the kernels
        # ask for fused multiply-adds explicitly where they want them (csrc/cece_math.h).
        portable = ["-fno-trapping-math", "-ffp-contract=off"]
        compile_args = ["/O2"] if msvc else ["-O3"] + portable
        link_args = []
        if _flag("CECE_SANITIZE"):
            sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1"]
            compile_args = sanitize + portable
            link_args = ["-fsanitize=address,undefined"]
        openmp = []
        if not _flag("CECE_DISABLE_OPENMP"):
            candidate = ["/openmp"] if msvc else ["-fopenmp"]
            if _compiles_with(self.compiler, candidate):
                openmp = candidate
            else:
                print("cece: the compiler has no OpenMP; building single-threaded", file=sys.stderr)
        if not openmp and not msvc:
            compile_args.append("-fopenmp-simd")  # keep the `omp simd` vectorisation hints
        for ext in self.extensions:
            ext.extra_compile_args = compile_args + openmp
            ext.extra_link_args = link_args + (openmp if not msvc else [])
        super().build_extensions()


extension = Extension(
    "cece._core",
    sources=["cece/_core.pyx"] + KERNEL_SOURCES,
    include_dirs=["csrc", np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    depends=[os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".h")],
)

setup(
    ext_modules=cythonize([extension], compiler_directives={"language_level": "3"}),
    cmdclass={"build_ext": BuildExt},
)
