#!/usr/bin/env bash
# The rotation step's A/B on the GPU machine, one call (~3 minutes): correctness of the staged
# build (cuda_check, rk-conformance, compute-sanitizer on cuda_check --quick), the rotation
# bench of a base build against it (alternating, twice), the fit kernel's per-phase cycles of
# both (RK_CUDA_FIT_PROFILE=1) and the host breakdown (RK_ROTATION_PROFILE=1). (The f8 opt-in
# switches it also ran were removed after that A/B: backends/cuda/NOTES.md, f8.)
#   bench/gpu/cuda_rotation_ab.sh STAGE [BASE_BENCH]
# STAGE: a cuda_run.sh stage (bin/cuda_check, bin/cuda_rotation_bench, bin/rk-conformance, lib/;
# vectors/ or the tree's tests/vectors); BASE_BENCH: cuda_rotation_bench of the base, or its .xz.
# Writes under $OUT (or .gpu-out/).
set -u
st=$(cd "$1" && pwd)
base=${2:-}
out=${OUT:-$PWD/.gpu-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$st/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ -n "$base" ] && [ "${base%.xz}" != "$base" ]; then
    xz -dc "$base" >/tmp/base_rotation_bench && chmod +x /tmp/base_rotation_bench && base=/tmp/base_rotation_bench
fi
vec=$st/vectors/cases
[ -d "$vec" ] || vec=$(cd "$(dirname "$0")/../.." && pwd)/tests/vectors/cases
B=$st/bin
T="timeout 90"
cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
rot() { $T "$@" >"$out/$tag.txt" 2>&1; echo "== $tag (exit $?)"; grep -h -E "device subspace|host LAPACKE|distance" "$out/$tag.txt"; }
prof() { RK_CUDA_FIT_PROFILE=1 $T "$@" --reps 4 2>&1 | grep "^rk_fit" | tail -2 | tee "$out/profile_$tag.txt"; }
{ nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv; nproc; } | tee "$out/info.txt"
echo "=== check $(date +%T)"
$T $B/cuda_check --backend cuda >"$out/check.txt" 2>&1; echo "cuda_check exit $?"
grep -E "FAIL|checks passed|subspace fit" "$out/check.txt"
$T $B/rk-conformance --backend cuda --vectors "$vec" >"$out/conformance.txt" 2>&1; echo "rk-conformance exit $?"
tail -1 "$out/conformance.txt"
echo "=== rotation step $(date +%T)"
for rep in 1 2; do
    if [ -n "$base" ]; then tag=rotation_base_$rep; rot "$base" --backend cuda; fi
    tag=rotation_$rep; rot $B/cuda_rotation_bench --backend cuda
done
if [ -n "$base" ]; then tag=base; prof "$base" --backend cuda; fi
tag=new; prof $B/cuda_rotation_bench --backend cuda
RK_ROTATION_PROFILE=1 RK_CUDA_FIT_PROFILE=1 $T $B/cuda_rotation_bench --backend cuda --reps 8 2>&1 |
    grep -E "^rk_" | tail -25 >"$out/host_profile.txt"
tail -8 "$out/host_profile.txt"
echo "=== sanitize $(date +%T)"
for tool in memcheck racecheck synccheck initcheck; do
    echo "== compute-sanitizer --tool $tool"
    timeout 120 "$cs" --tool $tool --error-exitcode 9 $B/cuda_check --backend cuda --quick 2>&1 |
        grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|checks passed|FAIL|========= [A-Z]' | head -20
    echo "exit ${PIPESTATUS[0]}"
done | tee "$out/sanitizer.txt"
echo "=== done $(date +%T)"
