#!/usr/bin/env bash
# CI for the distributed form: build one repaired wheel (OpenMP runtime bundled) with
# $PYTHON, install it into a fresh venv with --no-index and run the test suite against it.
#
#   tools/ci_wheel.sh               # PYTHON=python3
#   PYTHON=python3.12 tools/ci_wheel.sh -x -q
#   CECE_CI_SDIST=1 tools/ci_wheel.sh   # also: pip install the sdist in a fresh venv, its tests
#
# Arguments are passed to pytest. Needs PyPI (build dependencies and the test tools).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
wheelhouse=$(mktemp -d "${TMPDIR:-/tmp}/cece-ci-wheel.XXXXXX")
trap 'rm -rf "$wheelhouse"' EXIT

echo "== tools/build_wheels.sh $python"
start=$SECONDS
WHEELHOUSE=$wheelhouse tools/build_wheels.sh "$python"
echo "== sdist and wheel built in $((SECONDS - start)) s"
wheel=$(ls "$wheelhouse"/cece-*.whl)
start=$SECONDS
tools/test_installed.sh "$python" "$wheel" "$@"
echo "== wheel installed and tested in $((SECONDS - start)) s"
if [ "${CECE_CI_SDIST:-0}" = 1 ]; then
    tools/test_installed.sh "$python" "$(ls "$wheelhouse"/cece-*.tar.gz)" "$@"
fi
