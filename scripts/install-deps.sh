#!/usr/bin/env bash
# Install the Debian 12 packages RotateK builds and tests with (skips what is already there).
# The CUDA toolkit is not a Debian package here: the CUDA backend is built when nvcc is found.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  liblapacke-dev libcjson-dev                                   # core: eigensolver, manifests
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo libclblast-dev   # OpenCL (+ PoCL on the CPU)
  hipcc libamdhip64-dev rocm-device-libs                         # HIP (compile only without an AMD GPU)
  python3 valgrind                                               # vector checks, leak tests
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
