#!/usr/bin/env bash
# Build fit_emu against this tree's backends/cuda/subspace.cuh and run it on the shapes of
# cuda_check's fit checks and a few more (odd p, d not a multiple of 4).  VARIANTS="0 4" to
# include RK_CUDA_FIT_VARIANT bits.  Needs g++, gcc, LAPACKE.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# the device part of subspace.cuh (up to the host entry), with the dynamic shared memory as a buffer
awk '/^\/\* Seconds on a monotonic clock/{exit} {print}' "$root/backends/cuda/subspace.cuh" |
    sed -e 's/#include "common.cuh"//' -e 's/#if !defined(RK_HIP).*//' -e 's/#include <time.h>//' \
        -e 's/extern __shared__ __align__(16) unsigned char rk_fit_smem\[\];/unsigned char *rk_fit_smem = g_smem;/' \
        -e 's/^#ifndef RK_CUDA_SUBSPACE_CUH//' -e 's/^#define RK_CUDA_SUBSPACE_CUH//' >"$work/sub_dev.inc"
gcc -O2 -std=c11 -I"$root/core" -I"$root/include" -c "$root/core/pca.c" -o "$work/pca.o"
g++ -O1 -std=c++17 -I"$work" -I"$here" -I"$root/core" -I"$root/include" -Wno-unused "$here/emu.cpp" \
    "$work/pca.o" -o "$work/fit_emu" -llapacke -lpthread
for cfg in "128 32 4" "128 64 2" "64 16 2" "128 33 1" "100 20 1" "36 7 1" "128 120 1" "48 44 1"; do
    for v in ${VARIANTS:-0}; do "$work/fit_emu" $cfg "$v"; done
done
