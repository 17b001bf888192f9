#!/usr/bin/env bash
# Memory safety: build cece with CECE_SANITIZE=1 (-fsanitize=address,undefined) into a fresh
# virtual environment and run the reliability tests under AddressSanitizer + UBSan.
#
#   tools/sanitize.sh                 # the default test files (below)
#   tools/sanitize.sh --quick -x      # pytest options, with the default test files
#   tools/sanitize.sh tests/test_x.py # any pytest arguments naming a path: these instead
#
# Exits non-zero when a test fails or when any sanitizer report was written, by this
# interpreter or by a child process (the bad-input matrix runs in one): reports go to files
# under a log directory, which are printed at the end.
#
# Notes
# - The build happens in a copy of the source tree, so that the instrumented object files
#   never land in the checkout's build/ (a later ordinary build would link them).
# - Python itself is not instrumented, so libasan is LD_PRELOADed into it (found with
#   `$CC -print-file-name=libasan.so`); detect_leaks=0 because CPython "leaks" at exit.
# - tests/test_leaks.py is left out: ASan's quarantine holds freed memory back on purpose,
#   so RSS growth means nothing under it (valgrind_check.sh covers invalid accesses too).
# - PyTorch is not installed here: the peer comparisons skip.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

python=${PYTHON:-python3}
cc=${CC:-gcc}
work=$(mktemp -d "${TMPDIR:-/tmp}/cece-sanitize.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

libasan=$("$cc" -print-file-name=libasan.so)
if [ ! -e "$libasan" ]; then
    echo "sanitize.sh: $cc has no libasan.so ($libasan)" >&2
    exit 2
fi

echo "== sanitize: copying the source tree to $work/src"
mkdir -p "$work/src"
tar -C "$root" --exclude=./build --exclude=./dist --exclude=./.git --exclude='*.egg-info' \
    --exclude='__pycache__' --exclude='*.so' --exclude=./.hypothesis --exclude='./.venv*' \
    --exclude=./cece/_core.c -cf - . | tar -C "$work/src" -xf -

echo "== sanitize: fresh venv, build with CECE_SANITIZE=1"
"$python" -m venv "$work/venv"
vpy="$work/venv/bin/python"
"$vpy" -m pip install --quiet --disable-pip-version-check "setuptools>=77" "Cython>=3.0" "numpy>=2.0" \
    pytest hypothesis
CECE_SANITIZE=1 "$vpy" -m pip install --quiet --disable-pip-version-check --no-build-isolation \
    --no-deps --no-cache-dir "$work/src"
build_done=$(date +%s)
echo "   built in $((build_done - start)) s"

names_a_path=0
for arg in "$@"; do
    if [ -e "$arg" ]; then names_a_path=1; fi
done
if [ $names_a_path = 0 ]; then
    set -- "$@" tests/test_bad_input_matrix.py tests/test_hypothesis.py tests/test_extremes.py \
        tests/test_concurrency.py
    # the main suite's files, where they exist (the peers need PyTorch, absent here)
    for f in tests/test_agreement.py tests/test_errors.py tests/test_gradcheck.py \
        tests/test_properties.py tests/test_shapes.py tests/test_threads.py tests/test_simd.py \
        tests/test_config.py; do
        if [ -e "$f" ]; then set -- "$@" "$f"; fi
    done
fi

logs="$work/logs"
mkdir -p "$logs"
export LD_PRELOAD="$libasan${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:log_path=$logs/asan:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"
export PYTHONFAULTHANDLER=1

echo "== sanitize: $(LD_PRELOAD= "$vpy" -c 'import sys; print(sys.version.split()[0])') with $libasan"
# the instrumented module must be the one imported (from outside the checkout, whose cece/
# has no compiled _core), and it must load
so=$(cd "$work" && "$vpy" -c "import cece, cece._core as c; cece.show_config(); print(c.__file__)" | tee /dev/stderr | tail -1)
ldd "$so" | grep -E "asan|ubsan" || {
    echo "sanitize.sh: $so is not linked against the sanitizer runtimes" >&2
    exit 2
}

echo "== sanitize: pytest $*"
status=0
"$work/venv/bin/pytest" -p no:cacheprovider -q "$@" || status=$?

reports=$(find "$logs" -type f | sort)
if [ -n "$reports" ]; then
    echo "== sanitize: SANITIZER REPORTS"
    for r in $reports; do
        echo "---- $r"
        cat "$r"
    done
    [ $status -ne 0 ] || status=1
else
    echo "== sanitize: no sanitizer reports"
fi
echo "== sanitize: pytest exit $status, total $(($(date +%s) - start)) s"
exit $status
