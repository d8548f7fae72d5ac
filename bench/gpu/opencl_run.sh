#!/usr/bin/env bash
# The OpenCL backend's run on the GPU machine: rk-conformance first, then a sweep of kernel
# parameters (RK_OPENCL_TUNE, one at a time) on a 1 GB and a 34 MB cache, rk-bench over a grid of
# shapes (f16 mostly; caches from 8 MB to 2 GB) with the device's parameter row and again with
# the sweep's best, the backend's own tests, and the compiled kernels (PTX on NVIDIA).
#
#   build machine:  bench/gpu/opencl_run.sh stage
#       builds the tree (cpu + opencl backends) and copies the tools plus the shared libraries the
#       GPU image lacks (CLBlast, the LAPACK stack) into .gpu-ocl/ (git-ignored); name .gpu-ocl in
#       the device call's carry.
#   GPU machine:    bench/gpu/opencl_run.sh run [info conf sweep conf_tuned bench tests kernels]
#       (sweep_mid, fixed: not by default)
#       default: every step. Logs and results packed into $OUT/results.tgz (or
#       .gpu-ocl-out/results.tgz). BENCH_GRID=quick
#       runs one small shape (a smoke test of this script on any OpenCL device);
#       REQUIRE_NVIDIA=0 lets it run on whatever device 0 is.
# The image registers only PoCL in /etc/OpenCL/vendors: RK_OPENCL_PLATFORM=NVIDIA (see step_info)
# makes the GPU device 0.
set -uo pipefail
# RK_ROOT: the checkout to run in, where this script is called from a copy (e.g. inside .gpu-ocl)
root=${RK_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"
# RK_STAGE: the staged tools, where they were copied under another name
stage=${RK_STAGE:-$root/.gpu-ocl}
# Work files live in $work; after every step they are packed into $dest/results.tgz (the device
# tool returns at most 8 files, and a step cut short still leaves the earlier ones).
dest=${OUT:-$root/.gpu-ocl-out}
work=${WORK_DIR:-/tmp/rk-ocl-gpu-work}
out=$work
helpers=$root/bench/gpu/opencl_summary.py

stage_build() {
    local build=${BUILD_DIR:-/tmp/build-ocl-gpu}
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRK_OPENCL=ON \
        -DRK_VULKAN=OFF -DRK_HIP=OFF -DRK_CUDA=OFF >/dev/null || exit 1
    cmake --build "$build" -j2 --target rk-bench rk-conformance test_opencl_ops \
        test_opencl_lifecycle || exit 1
    rm -rf "$stage"
    mkdir -p "$stage/bin" "$stage/lib"
    cp "$build/bench/rk-bench" "$build/tests/conformance/rk-conformance" \
        "$build/tests/opencl/test_opencl_ops" "$build/tests/opencl/test_opencl_lifecycle" "$stage/bin/"
    for b in "$stage"/bin/*; do ldd "$b"; done | awk '/=> \// {print $3}' | sort -u |
        grep -E 'clblast|lapack|blas|tmglib|gfortran|quadmath|gomp|cjson' |
        while read -r lib; do cp -L "$lib" "$stage/lib/"; done
    # the ICD loader only as a fallback: used when the image has none
    cp -L "$(ldconfig -p | awk '/libOpenCL.so.1 / {print $NF; exit}')" "$stage/lib-fallback-libOpenCL.so.1"
    local excl # worktrees share the main checkout's exclude file
    excl=$(git -C "$root" rev-parse --git-common-dir)/info/exclude
    grep -qx '/.gpu-ocl/' "$excl" 2>/dev/null || echo '/.gpu-ocl/' >>"$excl"
    grep -qx '/.gpu-ocl-out/' "$excl" 2>/dev/null || echo '/.gpu-ocl-out/' >>"$excl"
    du -sh "$stage"
}

setup_env() {
    export LD_LIBRARY_PATH="$stage/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    if ! ldconfig -p | grep -q 'libOpenCL.so.1 '; then use_bundled_loader; fi
    export RK_OPENCL_CACHE_DIR=/tmp/rk-ocl-cache
    mkdir -p "$out" "$dest"
}

use_bundled_loader() {
    mkdir -p /tmp/ocl-loader && cp "$stage/lib-fallback-libOpenCL.so.1" /tmp/ocl-loader/libOpenCL.so.1
    export LD_LIBRARY_PATH="/tmp/ocl-loader:$LD_LIBRARY_PATH"
}

pack() { tar czf "$dest/results.tgz" -C "$work" . 2>/dev/null; }

nvidia_listed() { "$stage/bin/test_opencl_lifecycle" --list | tee -a "$out/devices.txt" | grep -q NVIDIA; }

# The image registers only PoCL in /etc/OpenCL/vendors. The backend's RK_OPENCL_PLATFORM filter
# picks the NVIDIA platform whatever the loader; if no loader sees it, the bundled ocl-icd with
# a vendor directory, then with OCL_ICD_FILENAMES, naming the NVIDIA driver.
step_info() {
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv
    env | grep -E '^OCL|^OPENCL|^POCL' || true
    ldconfig -p | grep -iE 'libOpenCL|nvidia-opencl' || true
    echo "--- every device the system loader shows"
    RK_OPENCL_PLATFORM= "$stage/bin/test_opencl_lifecycle" --list | tee "$out/devices.txt"
    export RK_OPENCL_PLATFORM=NVIDIA
    local nv
    nv=$(ldconfig -p | awk '/libnvidia-opencl.so.1 / {print $NF; exit}')
    [ -n "$nv" ] || nv=$(ls /usr/local/nvidia/lib64/libnvidia-opencl.so.1 2>/dev/null | head -1)
    if ! nvidia_listed; then
        echo "--- NVIDIA not listed: bundled ocl-icd loader, vendor directory naming $nv"
        use_bundled_loader
        mkdir -p /tmp/ocl-vendors && echo "$nv" >/tmp/ocl-vendors/nvidia.icd
        export OCL_ICD_VENDORS=/tmp/ocl-vendors
        if ! nvidia_listed; then
            echo "--- still not: OCL_ICD_FILENAMES=$nv"
            export OCL_ICD_FILENAMES=$nv
            if ! nvidia_listed; then
                [ "${REQUIRE_NVIDIA:-1}" = 1 ] && { echo "no NVIDIA OpenCL device reachable: stopping"; exit 3; }
                unset RK_OPENCL_PLATFORM OCL_ICD_VENDORS OCL_ICD_FILENAMES # whatever device 0 is
            fi
        fi
    fi
    "$stage/bin/test_opencl_lifecycle" --list
}

step_conf() {
    timeout 150 "$stage/bin/rk-conformance" --backend opencl --vectors tests/vectors/cases \
        >"$out/conformance.txt" 2>&1
    echo "rk-conformance exit $?"
    grep -E 'FAIL' "$out/conformance.txt" | head -10
    tail -1 "$out/conformance.txt"
}

bench_one() { # hq hkv d r batch tokens dtype [extra rk-bench flags]
    local hq=$1 hkv=$2 d=$3 r=$4 b=$5 t=$6 dt=$7
    shift 7
    timeout 60 "$stage/bin/rk-bench" --backend opencl --hq "$hq" --hkv "$hkv" --d "$d" --r "$r" \
        --batch "$b" --tokens "$t" --full-tokens 80 --dtype "$dt" --probe-mb "${PROBE_MB:-1024}" \
        --warmup 3 --iters 15 --json "$@" || echo "{\"failed\":\"$hq $hkv $d $r $b $t $dt\"}"
}

bench_grid() { # file; BENCH_GRID=large: only the caches of 256 MB and more
    local g bt bts="1,4096 1,16384 8,16384 8,65536 32,16384"
    [ "${BENCH_GRID:-full}" = large ] && bts="8,16384 8,65536 32,16384"
    for g in 28,4,128 32,8,128; do
        IFS=, read -r hq hkv d <<<"$g"
        for bt in $bts; do
            IFS=, read -r b t <<<"$bt"
            bench_one "$hq" "$hkv" "$d" 64 "$b" "$t" f16 >>"$1"
        done
        bench_one "$hq" "$hkv" "$d" 32 8 65536 f16 >>"$1"
    done
    bench_one 28 4 128 64 8 65536 bf16 >>"$1"
    bench_one 28 4 128 64 8 16384 f32 >>"$1"
}

# Around the device's row, on a 1 GB cache (G = 7) and a 2 GB one (G = 4); the best total (sparse +
# dense) time on the large cache is kept in $out/best_tune. Build logs with the compiler's
# register report (RK_OPENCL_VERBOSE) go to $out/buildlog.txt.
step_sweep() {
    : >"$out/sweep.jsonl"
    local tune
    for tune in "" mma=0 pref=1 wg=64 wg=64,pref=1 wg=256 groups=16,pref=1; do
        printf '{"tune":"%s"}\n' "$tune" >>"$out/sweep.jsonl"
        echo "=== tune '$tune'" >>"$out/buildlog.txt"
        RK_OPENCL_VERBOSE=1 RK_OPENCL_TUNE=$tune bench_one 28 4 128 64 8 65536 f16 --probe-mb 0 \
            >>"$out/sweep.jsonl" 2>>"$out/buildlog.txt"
    done
    : >"$out/sweep_g4.jsonl" # G = 4 (2 GB), kept out of the choice of best_tune
    for tune in "" pref=1 wg=64,pref=1; do
        printf '{"tune":"%s"}\n' "$tune" >>"$out/sweep_g4.jsonl"
        RK_OPENCL_TUNE=$tune bench_one 32 8 128 64 8 65536 f16 --probe-mb 0 >>"$out/sweep_g4.jsonl"
    done
    python3 "$helpers" table "$out/sweep_g4.jsonl"
    python3 "$helpers" table "$out/sweep.jsonl"
    python3 "$helpers" best "$out/sweep.jsonl" >"$out/best_tune"
    echo "best tune: '$(cat "$out/best_tune")'"
    grep -E "^=== tune|rk_decode_part|Used [0-9]+ registers" "$out/buildlog.txt" | grep -B1 -A1 "rk_decode_part" | head -60
}

# Splits and prefetch on the smallest cache of the large grid (270 MB, G = 7: two waves of
# work-groups at the default row); informational, no best_tune.
step_sweep_mid() {
    : >"$out/sweep_mid.jsonl"
    local tune
    for tune in "" groups=4 groups=6 groups=16 pref=1 wg=64,pref=1; do
        printf '{"tune":"%s"}\n' "$tune" >>"$out/sweep_mid.jsonl"
        RK_OPENCL_TUNE=$tune bench_one 28 4 128 64 8 16384 f16 --probe-mb 0 >>"$out/sweep_mid.jsonl"
    done
    python3 "$helpers" table "$out/sweep_mid.jsonl"
}

# Where a decode's time goes (RK_OPENCL_PROFILE: device time and launch gaps per command) on a
# small and a mid-size cache, for each RK_OPENCL_TUNE of FIXED_TUNES (default: the sequence
# table uploaded against passed by value); informational. FIXED_SHAPES (hq,hkv,d,r,batch,
# tokens,dtype), FIXED_REPS (rounds over the tunes, interleaved), FIXED_PROFILE=0 (no events).
step_fixed() {
    : >"$out/fixed.jsonl"
    local tune shape rep prof=${FIXED_PROFILE:-1}
    for shape in ${FIXED_SHAPES:-"28,4,128,64,1,4096,f16" "28,4,128,64,8,16384,f16" \
        "32,8,128,64,8,16384,f16" "28,4,128,64,8,16384,f32"}; do
        for rep in $(seq "${FIXED_REPS:-1}"); do
            for tune in ${FIXED_TUNES:-seqinl=0 seqinl=16}; do
                printf '{"tune":"%s"}\n' "$tune" >>"$out/fixed.jsonl"
                echo "=== $shape $tune" >>"$out/profile.txt"
                # shellcheck disable=SC2086
                RK_OPENCL_PROFILE=$prof RK_OPENCL_TUNE=$tune bench_one ${shape//,/ } --probe-mb 0 \
                    >>"$out/fixed.jsonl" 2>>"$out/profile.txt"
            done
        done
    done
    python3 "$helpers" table "$out/fixed.jsonl"
    [ "$prof" = 0 ] || cat "$out/profile.txt"
}

step_conf_tuned() { # rk-conformance again with the sweep's best parameters
    local best
    best=$(cat "$out/best_tune" 2>/dev/null)
    [ -n "$best" ] || return 0
    RK_OPENCL_TUNE=$best timeout 150 "$stage/bin/rk-conformance" --backend opencl \
        --vectors tests/vectors/cases >"$out/conformance_tuned.txt" 2>&1
    echo "rk-conformance ($best) exit $?"
    grep -E 'FAIL' "$out/conformance_tuned.txt" | head -10
    tail -1 "$out/conformance_tuned.txt"
}

step_bench() {
    : >"$out/bench.jsonl"
    if [ "${BENCH_GRID:-full}" = quick ]; then
        bench_one 28 4 128 64 1 2048 f16 --iters 3 >>"$out/bench.jsonl"
        python3 "$helpers" table "$out/bench.jsonl"
        return
    fi
    bench_grid "$out/bench.jsonl"
    python3 "$helpers" table "$out/bench.jsonl"
    local best
    best=$(cat "$out/best_tune" 2>/dev/null)
    if [ -n "$best" ]; then
        printf '{"tune":"%s"}\n' "$best" >"$out/bench_tuned.jsonl"
        RK_OPENCL_TUNE=$best bench_grid "$out/bench_tuned.jsonl"
        python3 "$helpers" table "$out/bench_tuned.jsonl"
    fi
}

step_tests() {
    timeout 150 "$stage/bin/test_opencl_ops" >"$out/test_ops.txt" 2>&1
    echo "test_opencl_ops exit $?"
    grep -E '^(device|params|read probe|test_opencl)' "$out/test_ops.txt"
    grep -m5 'CHECK' "$out/test_ops.txt"
    timeout 200 "$stage/bin/test_opencl_lifecycle" /tmp/rk-ocl-lifecycle "${LIFECYCLE_ROUNDS:-200}" \
        >"$out/test_lifecycle.txt" 2>&1
    echo "test_opencl_lifecycle exit $?"
    grep -m5 'CHECK' "$out/test_lifecycle.txt"
    tail -1 "$out/test_lifecycle.txt"
}

step_kernels() { # the compiled programs: PTX text on NVIDIA, for reading the generated code
    tar czf "$out/kernel-cache.tgz" -C /tmp rk-ocl-cache 2>/dev/null
    ls /tmp/rk-ocl-cache | wc -l
}

case "${1:-run}" in
stage) stage_build ;;
run)
    shift || true
    setup_env
    for s in ${*:-info conf sweep conf_tuned bench tests kernels}; do
        echo "=== $s"
        "step_$s"
        pack
    done
    ;;
*) echo "usage: $0 stage | run [info conf sweep conf_tuned bench tests kernels]" >&2; exit 2 ;;
esac
