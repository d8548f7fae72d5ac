#!/usr/bin/env bash
# The README's main job: install what is missing, build, run rk-demo (a VLM-shaped layer on the
# CPU backends present: prefill PCA, prune Keys to 32 of 128 channels, decode, compare with dense).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/install-deps.sh"
bash "$here/scripts/build.sh"
build="${RK_BUILD_DIR:-$here/build}"
export POCL_CACHE_DIR="$build/.pocl-cache" RK_OPENCL_CACHE_DIR="$build/.rk-opencl-cache"
"$build/bench/rk-demo" "$@"
