"""The package as installed: where it was imported from, its version, its typing files
(py.typed, complete stubs, ``mypy --strict`` on examples/typed_usage.py), its docstrings as
help() shows them, and its free-threading declaration.

With CECE_TEST_INSTALLED=1 (set by tools/test_installed.sh, which runs the suite against a
wheel or the sdist installed in a fresh venv) cece must come from site-packages, not from a
source tree.
"""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import os
import pydoc
import re
import runpy
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import cece

PACKAGE = Path(cece.__file__).resolve().parent
REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "typed_usage.py"
KERNEL_RATIO = REPO / "benchmarks" / "kernel_ratio.c"
PUBLIC_FUNCTIONS = ["cross_entropy", "cross_entropy_grad", "cross_entropy_with_grad",
                    "log_softmax", "softmax", "logsumexp", "show_config"]


@pytest.mark.skipif(os.environ.get("CECE_TEST_INSTALLED") != "1",
                    reason="CECE_TEST_INSTALLED=1 is set by tools/test_installed.sh only")
def test_imported_from_site_packages():
    site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    assert PACKAGE.parent in site, f"cece imported from {PACKAGE}, not from {site}"
    assert Path(cece._core.__file__).resolve().parent == PACKAGE


def test_extension_belongs_to_the_package():
    assert Path(cece._core.__file__).resolve().parent == PACKAGE


def test_version_has_one_source():
    namespace = runpy.run_path(str(PACKAGE / "_version.py"))
    assert cece.__version__ == namespace["__version__"]
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", cece.__version__)
    try:
        installed = importlib.metadata.version("cece")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("cece has no installed metadata (not pip-installed)")
    if os.environ.get("CECE_TEST_INSTALLED") == "1" or PACKAGE.parent != REPO:
        assert installed == cece.__version__


def test_typing_files_are_installed():
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_core.pyi").is_file()


def test_stub_covers_the_extension():
    """cece/_core.pyi names every public name of the compiled module, and nothing else."""
    tree = ast.parse((PACKAGE / "_core.pyi").read_text())
    stubbed = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            stubbed.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stubbed.add(node.target.id)
    runtime = {name for name in vars(cece._core) if not name.startswith("_")}
    runtime -= {"np", "cnp"}  # module objects a Cython module may leave in its namespace
    runtime = {name for name in runtime if not inspect.ismodule(getattr(cece._core, name))}
    assert stubbed == runtime


def test_public_functions_are_annotated():
    assert set(PUBLIC_FUNCTIONS) <= set(cece.__all__)
    for name in PUBLIC_FUNCTIONS:
        signature = inspect.signature(getattr(cece, name))
        missing = [p for p, param in signature.parameters.items()
                   if param.annotation is inspect.Parameter.empty]
        assert not missing, f"cece.{name}: parameters without annotation: {missing}"


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_docstrings_render_in_help(name):
    func = getattr(cece, name)
    text = pydoc.render_doc(func, renderer=pydoc.plaintext)
    assert name in text
    assert len(inspect.getdoc(func) or "") > 80
    assert "Examples" in text
    if name != "show_config":
        assert "num_threads" in text


def test_module_docstring_renders():
    text = pydoc.render_doc(cece, renderer=pydoc.plaintext)
    assert "cross_entropy_with_grad" in text


@pytest.mark.skipif(not EXAMPLE.is_file(), reason="examples/typed_usage.py is not in this tree")
def test_typed_example_runs(capsys):
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert "softmax rows sum to 1: True" in capsys.readouterr().out


@pytest.mark.skipif(not EXAMPLE.is_file(), reason="examples/typed_usage.py is not in this tree")
def test_typed_example_passes_mypy_strict(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed (pip install 'cece[typing]')")
    # From an empty folder, so that mypy reads the installed cece (its py.typed and stubs), not
    # a source tree in the working directory.
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", os.devnull, str(EXAMPLE)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
        | {"PYTHONPATH": str(PACKAGE.parent)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(not KERNEL_RATIO.is_file() or not (REPO / "csrc" / "cece.h").is_file()
                    or not sys.platform.startswith("linux"),
                    reason="benchmarks/kernel_ratio.c needs a Linux source tree")
def test_kernel_ratio_compiles_against_the_kernels(tmp_path):
    """The C timing tool calls csrc/cece.h directly: it must keep compiling as that changes."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    proc = subprocess.run(
        [cc, "-c", "-Wall", "-Wextra", "-Werror", f"-I{REPO / 'csrc'}", str(KERNEL_RATIO),
         "-o", str(tmp_path / "kernel_ratio.o")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# ---- free-threaded CPython -----------------------------------------------------------------


def _free_threaded_build() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


@pytest.mark.skipif(not _free_threaded_build(), reason="not a free-threaded CPython (3.13t)")
def test_import_keeps_the_gil_disabled(tmp_path):
    """A free-threaded CPython re-enables the GIL (with a RuntimeWarning) when it imports an
    extension that does not declare Py_mod_gil = Py_MOD_GIL_NOT_USED. cece declares it (the
    Cython directive freethreading_compatible=True in cece/_core.pyx)."""
    code = ("import sys, warnings; warnings.simplefilter('error'); import cece; "
            "cece.softmax([[1.0, 2.0]]); print(sys._is_gil_enabled())")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    env["PYTHONPATH"] = str(PACKAGE.parent)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
