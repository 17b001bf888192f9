#!/usr/bin/env bash
# Install one built cece (a wheel or the sdist) into a fresh venv and run the test suite
# against the installed copy, never the source tree.
#
#   tools/test_installed.sh PYTHON wheelhouse/cece-0.1.0-cp311-cp311-manylinux_2_34_x86_64.whl [pytest args]
#   tools/test_installed.sh PYTHON wheelhouse/cece-0.1.0.tar.gz [pytest args]
#
# A wheel: the test tools (NumPy, pytest, hypothesis, threadpoolctl, mypy) come from PyPI
# first, as wheels; then the wheel with `pip install --no-index --no-deps FILE` (nothing but
# that file), then `pip check`; the extension's libgomp must resolve (ldd) into the wheel's
# cece.libs/. The tests are this checkout's tests/.
# An sdist: `pip install FILE` (a compile, build dependencies from PyPI); the tests are the
# ones the sdist ships, run from the unpacked sdist.
# pytest runs as the venv's `pytest` script with CECE_TEST_INSTALLED=1, so no folder holding
# a ./cece is on sys.path and tests/test_packaging.py checks where cece was imported from.
# Environment: CECE_TEST_PEERS=1 also installs torch (the interop tests against PyTorch).
set -euo pipefail
[ "$#" -ge 2 ] || { sed -n '2,6p' "$0"; exit 2; }
cd "$(dirname "$0")/.."
root=$(pwd)
python=$1
artifact=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
shift 2

work=$(mktemp -d "${TMPDIR:-/tmp}/cece-installed.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
venv_python="$work/venv/bin/python"
"$venv_python" -m pip install --quiet --upgrade pip
# Wheels only (--only-binary): the newest release of each that has a wheel for this Python,
# never a compile (NumPy >= 2.5 and recent hypothesis and mypy have none for 3.13t, say).
echo "== test tools from PyPI"
"$venv_python" -m pip install --quiet --only-binary=:all: "numpy>=1.25" "pytest>=7" "hypothesis>=6"
for optional in threadpoolctl mypy; do  # their tests skip, saying why, without them
    "$venv_python" -m pip install --quiet --only-binary=:all: "$optional" \
        || echo "test_installed: $optional could not be installed here; its tests will skip"
done
if [ "${CECE_TEST_PEERS:-0}" = 1 ]; then
    "$venv_python" -m pip install --quiet "torch==2.13.0" || echo "torch could not be installed here: the PyTorch tests will skip"
fi

case "$artifact" in
*.whl)
    echo "== pip install --no-index --no-deps $(basename "$artifact")"
    "$venv_python" -m pip install --no-index --no-deps "$artifact"
    "$venv_python" -m pip check
    testroot=$root
    ;;
*.tar.gz)
    echo "== pip install $(basename "$artifact") (builds from source)"
    "$venv_python" -m pip install "$artifact"
    tar -xzf "$artifact" -C "$work"
    testroot=$(ls -d "$work"/cece-*/)
    ;;
*)
    echo "test_installed: $artifact is neither a wheel nor an sdist" >&2
    exit 2
    ;;
esac

# From an empty folder: the import must find the installed cece.
cd "$work"
"$venv_python" - <<'PY'
import os, sys, sysconfig
import cece, cece._core
purelib = os.path.realpath(sysconfig.get_paths()["purelib"])
where = os.path.realpath(cece._core.__file__)
print("cece", cece.__version__, "imported from", where)
if not where.startswith(purelib + os.sep):
    sys.exit(f"cece was imported from {where}, not from the venv's {purelib}")
cece.show_config()
PY

core=$("$venv_python" -c "import cece._core; print(cece._core.__file__)")
openmp=$("$venv_python" -c "import cece; print(int(cece.show_config(mode='dicts')['openmp']))")
echo "== ldd $(basename "$core")"
ldd "$core" | sed 's/^/   /'
gomp=$(ldd "$core" | awk '/libgomp/ {print $3}')
if [ "$artifact" != "${artifact%.whl}" ] && [ "$openmp" = 1 ]; then
    site=$(dirname "$(dirname "$core")")
    case "$(readlink -f "${gomp:-/nonexistent}")" in
    "$(readlink -f "$site")"/cece.libs/*) echo "   libgomp comes from the wheel: ${gomp#"$site"/}" ;;
    *) echo "test_installed: libgomp resolves to '${gomp}', not to the wheel's cece.libs/" >&2; exit 1 ;;
    esac
fi

echo "== pytest (tests of $testroot, cece installed in the venv)"
cd "$testroot"
CECE_TEST_INSTALLED=1 "$work/venv/bin/pytest" -p no:cacheprovider "$@"
