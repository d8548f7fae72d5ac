#!/usr/bin/env bash
# The README's test command: install what is missing, build, run every test (unit tests and
# rk-conformance on each backend present; backends without a device report SKIPPED).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/install-deps.sh"
bash "$here/scripts/build.sh"
build="${RK_BUILD_DIR:-$here/build}"
export POCL_CACHE_DIR="$build/.pocl-cache" RK_OPENCL_CACHE_DIR="$build/.rk-opencl-cache"
cd "$build"
ctest --output-on-failure -j"$(nproc)"
