#!/usr/bin/env bash
# The CUDA backend's run on the GPU machine: correctness first (cuda_check, rk-conformance,
# compute-sanitizer), then rk-bench over the issue's grid, the PyTorch SDPA baseline on the same
# shapes, the rotation-step benchmark, and a summary table printed last.
#
#   build machine:  bench/gpu/cuda_run.sh stage
#       builds the tree (CUDA only) and copies the tools plus the non-system shared libraries they
#       need into .gpu/ (git-ignored); name .gpu in the device call's carry.
#   GPU machine:    bench/gpu/cuda_run.sh run [info check conf sanitize latency bench sdpa rotation
#                                              summary]   (also: ncu tune splits)
#       default: every step. Writes under $OUT (or .gpu-out/). BENCH_GRID=quick for a small grid.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
stage=${RK_GPU_STAGE:-$root/.gpu} # RK_GPU_STAGE: another stage folder (one per concurrent worker)
out=${OUT:-$root/.gpu-out}

stage_build() {
    local build=${BUILD_DIR:-/tmp/build-cuda-gpu}
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRK_OPENCL=OFF \
        -DRK_VULKAN=OFF -DRK_HIP=OFF -DRK_CUDA=ON \
        -DRK_CUDA_ARCHITECTURES=${STAGE_ARCHS:-90a} >/dev/null || exit 1
    cmake --build "$build" -j2 --target rk-bench rk-conformance || exit 1
    local libs="$build/bench/librk_bench_util.a $build/librotatek.a $build/backends/cuda/librotatek_cuda.a"
    local link="-L/usr/local/cuda/lib -L/usr/local/cuda/lib64 -lcudart -llapacke -fopenmp -lm"
    mkdir -p "$stage/bin" "$stage/lib"
    for tool in cuda_check cuda_rotation_bench cuda_latency; do
        [ -f "bench/gpu/$tool.c" ] || continue
        cc -std=c11 -O2 -Wall -Wextra "bench/gpu/$tool.c" -Iinclude -Icore -Ibench -o "$stage/bin/$tool" \
            $libs $link || exit 1
    done
    cp "$build/bench/rk-bench" "$build/tests/conformance/rk-conformance" "$stage/bin/"
    # libraries the GPU machine's image may lack (LAPACK stack, OpenMP, the CUDA runtime)
    for b in "$stage"/bin/*; do ldd "$b"; done | awk '/=> \// {print $3}' | sort -u |
        grep -E 'lapack|blas|tmglib|gfortran|quadmath|gomp|cudart|cjson' |
        while read -r lib; do cp -L "$lib" "$stage/lib/"; done
    local rel=/${stage#"$root"/}/
    grep -qxF "$rel" "$root/.git/info/exclude" 2>/dev/null || echo "$rel" >>"$root/.git/info/exclude"
    du -sh "$stage"
}

step_info() {
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv
    "$stage/bin/rk-bench" --backend cuda --tokens 4096 --iters 3 --warmup 1 --probe-mb 4096 | head -3
}

step_check() {
    "$stage/bin/cuda_check" --backend cuda | tee "$out/check.txt" | grep -E 'FAIL|checks passed|backend'
}

step_conf() {
    "$stage/bin/rk-conformance" --backend cuda --vectors tests/vectors/cases >"$out/conformance.txt" 2>&1
    echo "rk-conformance exit $?"
    tail -5 "$out/conformance.txt"
}

step_sanitize() {
    local cs
    cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    {
        for tool in memcheck racecheck synccheck initcheck; do
            echo "== compute-sanitizer --tool $tool"
            "$cs" --tool $tool --error-exitcode 9 "$stage/bin/cuda_check" --backend cuda --quick \
                | grep -E 'ERROR SUMMARY|checks passed|FAIL|========= [A-Z]' | head -20
            echo "exit ${PIPESTATUS[0]}"
        done
    } | tee "$out/sanitizer.txt"
}

step_bench() {
    local geoms=${BENCH_GEOMS:-"28,4,128 32,32,128"} batches="1 8 32" tokens="4096 16384 65536"
    local ranks=${BENCH_RANKS:-"32 64"} dts="f16 bf16"
    if [ "${BENCH_GRID:-full}" = quick ]; then
        geoms="28,4,128 32,32,128"; batches="1 32"; tokens="4096 65536"; ranks="32"; dts="f16"
    fi
    [ -n "${BENCH_APPEND:-}" ] || : >"$out/bench.jsonl"
    local probe=4096
    for g in $geoms; do
        IFS=, read -r hq hkv d <<<"$g"
        for b in $batches; do for t in $tokens; do for r in $ranks; do for dt in $dts; do
            "$stage/bin/rk-bench" --backend cuda --hq "$hq" --hkv "$hkv" --d "$d" --r "$r" \
                --batch "$b" --tokens "$t" --full-tokens 80 --dtype "$dt" --probe-mb $probe \
                --warmup 3 --iters 15 --json >>"$out/bench.jsonl" || echo "rk-bench failed: $g $b $t $r $dt"
        done; done; done; done
    done
    wc -l <"$out/bench.jsonl"
}

# Host overhead vs device time of small decodes (cuda_latency), then Nsight Compute durations of
# the kernels of small decodes and of the rotation step.
step_latency() {
    {
        "$stage/bin/cuda_latency" --hq 28 --hkv 4 --batch 1 --tokens 4096
        "$stage/bin/cuda_latency" --hq 28 --hkv 4 --batch 1 --tokens 65536
        "$stage/bin/cuda_latency" --hq 32 --hkv 32 --batch 1 --tokens 4096
    } | tee "$out/latency.txt"
}

# Small and mid-size decodes after a change: host / stream / single latency with programmatic
# dependent launch on and off, kernel durations under ncu (no clock or cache control, so the
# figures are the kernels' own at boost clocks), and a sweep of the token split count.
step_tune() {
    local n
    n=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
    {
        for env in "RK_CUDA_PDL=1" "RK_CUDA_PDL=0"; do
            echo "== $env"
            for cfg in "28 4 1 4096" "28 4 8 16384" "32 32 1 4096"; do
                set -- $cfg
                env $env "$stage/bin/cuda_latency" --hq "$1" --hkv "$2" --batch "$3" --tokens "$4"
            done
        done
    } | tee "$out/tune_latency.txt"
    for cfg in "28 4 1 4096" "28 4 8 16384" "28 4 32 65536"; do
        set -- $cfg
        echo "== ncu, heads $1/$2 batch $3 tokens $4 (sparse decodes)"
        "$n" --clock-control none --cache-control none --kernel-name regex:rk_decode \
            --launch-skip 60 --launch-count 2 --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed.sum,smsp__average_warp_latency_per_inst_issued.ratio,launch__registers_per_thread,launch__occupancy_limit_registers \
            "$stage/bin/cuda_latency" --hq "$1" --hkv "$2" --batch "$3" --tokens "$4" 2>&1 |
            grep -E 'rk_decode|gpu__time|dram__|smsp__|launch__' | sed -E 's/, Context.*//; s/ +/ /g'
    done | tee "$out/tune_ncu.txt"
}

# Token split counts against the automatic choice (--split 0) on small and mid-size shapes.
step_splits() {
    : >"$out/splits.jsonl"
    for cfg in "1 4096" "1 16384" "1 65536" "8 4096" "8 16384"; do
        set -- $cfg
        for s in 0 16 32 64 128 192 256; do
            "$stage/bin/rk-bench" --backend cuda --hq 28 --hkv 4 --r 32 --batch "$1" --tokens "$2" \
                --full-tokens 80 --dtype f16 --probe-mb 0 --split $s --warmup 3 --iters 9 --json |
                sed "s/^{/{\"split\":$s,/" >>"$out/splits.jsonl"
        done
    done
    python3 - "$out/splits.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"B{r['batch']:>3} T{r['tokens']:>6} split {r['split']:>4}: sparse {r['sparse_us']:8.1f} us  dense {r['dense_us']:8.1f} us")
PY
}

step_ncu() {
    local n
    n=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
    : >"$out/ncu.txt"
    for cfg in "28 4 1 4096" "28 4 1 65536" "32 32 1 4096" "28 4 32 65536"; do
        set -- $cfg
        echo "== ncu decode heads $1/$2 batch $3 tokens $4" >>"$out/ncu.txt"
        "$n" --kernel-name regex:rk_decode --launch-skip 40 --launch-count 4 --section SpeedOfLight \
            --section Occupancy --section LaunchStats "$stage/bin/cuda_latency" --hq "$1" --hkv "$2" \
            --batch "$3" --tokens "$4" >>"$out/ncu.txt" 2>&1
    done
    echo "== ncu rotation step" >>"$out/ncu.txt"
    "$n" --kernel-name regex:"rk_moments|rk_fit|rk_compress" --launch-skip 8 --launch-count 5 \
        --section SpeedOfLight "$stage/bin/cuda_rotation_bench" --reps 2 >>"$out/ncu.txt" 2>&1
    grep -E '^==|  [a-z_]+<|  rk_|Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Grid Size' "$out/ncu.txt" | head -90
}

step_sdpa() {
    local grid="${BENCH_GRID:-full}"
    PYTHONUNBUFFERED=1 python3 bench/gpu/sdpa_baseline.py --grid "$grid" --out "$out/sdpa.jsonl" \
        ${BENCH_GEOMS:+--geoms "$BENCH_GEOMS"}
}

step_rotation() {
    [ -x "$stage/bin/cuda_rotation_bench" ] || { echo "no rotation bench staged"; return; }
    "$stage/bin/cuda_rotation_bench" --backend cuda | tee "$out/rotation.txt"
    RK_CUDA_FIT_PROFILE=1 "$stage/bin/cuda_rotation_bench" --backend cuda --reps 1 2>&1 | grep "^rk_fit" | tail -1 | tee -a "$out/rotation.txt"
}

step_summary() {
    python3 bench/gpu/cuda_summary.py "$out" | tee "$out/summary.md"
}

case "${1:-}" in
stage) stage_build ;;
run)
    shift
    mkdir -p "$out"
    export LD_LIBRARY_PATH="$stage/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    steps=${*:-info check conf sanitize latency bench sdpa rotation summary}
    for s in $steps; do
        echo "=== $s ($(date +%T))"
        "step_$s"
    done
    ;;
*)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
