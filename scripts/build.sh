#!/usr/bin/env bash
# Configure and build RotateK into ${RK_BUILD_DIR:-build} with every backend whose toolchain exists.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${RK_BUILD_DIR:-$here/build}"
if [ -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null; then export PATH="/usr/local/cuda/bin:$PATH"; fi
# Kernel compilers cache inside the build tree so a CI run pays first-compile costs once.
export POCL_CACHE_DIR="$build/.pocl-cache" RK_OPENCL_CACHE_DIR="$build/.rk-opencl-cache"
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build" -j"$(nproc)"
