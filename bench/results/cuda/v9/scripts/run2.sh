#!/usr/bin/env bash
# v9 run 2: q·R pre-kernel (rk_dec_qproj) correctness + A/B against base e97095e, policy variants
set -uo pipefail
st=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/rk/lib
tar -xJf "$st/lib.tar.xz" -C /tmp/rk/lib
for f in "$st"/xz/*.xz; do n=$(basename "$f" .xz); xz -dc "$f" >/tmp/rk/$n; chmod +x /tmp/rk/$n; done
export LD_LIBRARY_PATH=/tmp/rk/lib
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv | tee "$out/info.txt"
checks() {
for env in "$@"; do
    echo "## cuda_check $env $(date +%T)"; env $env /tmp/rk/cuda_check-new --backend cuda >/tmp/chk.txt 2>&1; echo "exit $?"
    grep -E 'FAIL|checks passed' /tmp/chk.txt | head -8
done
}
echo "=== check $(date +%T)"
{
checks "RK_NONE=1" "RK_CUDA_QPROJ=1"
for env in "RK_NONE=1" "RK_CUDA_QPROJ=1"; do
echo "## conformance $env $(date +%T)"; env $env /tmp/rk/rk-conformance-new --backend cuda --vectors tests/vectors/cases >/tmp/conf.txt 2>&1; echo "exit $?"; tail -1 /tmp/conf.txt
done
} 2>&1 | tee "$out/check.txt"
echo "=== sweep $(date +%T)"
B="--backend cuda --full-tokens 80 --probe-mb 0 --warmup 2 --iters 9 --json"
: >"$out/ab.jsonl"
run() { # tag bin "env" args...
    local tag=$1 bin=$2 envs=$3; shift 3
    env $envs /tmp/rk/rk-bench-$bin $B "$@" | sed "s/^{/{\"variant\":\"$tag\",/" | tee -a "$out/ab.jsonl" |
        python3 -c "import json,sys; r=json.loads(sys.stdin.read()); print(f\"{r['variant']:26} {r['hq']}/{r['hkv']} B{r['batch']:>2} T{r['tokens']:>6} r{r['r']} {r['dtype']:4} sparse {r['sparse_us']:8.2f} dense {r['dense_us']:8.2f}\")"
}
S="--hq 28 --hkv 4 --batch 8 --tokens 4096 --r 64 --dtype f16"
run base base "RK_NONE=1" $S
run new new "RK_NONE=1" $S
run new-q0 new "RK_CUDA_QPROJ=0" $S
run new-nt256 new "RK_CUDA_DEC_NT=256" $S
run new-q1-nt256 new "RK_CUDA_QPROJ=1 RK_CUDA_DEC_NT=256" $S
run new-pf0 new "RK_CUDA_PREFETCH=0" $S
run new-s6 new "RK_NONE=1" $S --split 6
run new-pf0-s8 new "RK_CUDA_PREFETCH=0" $S --split 8
run new-h2 new "RK_CUDA_L2_HEAD=2" $S
run base base "RK_NONE=1" $S
run new new "RK_NONE=1" $S
S="--hq 28 --hkv 4 --batch 8 --tokens 4096 --r 64 --dtype bf16"
run base base "RK_NONE=1" $S
run new new "RK_NONE=1" $S
run new-pf0 new "RK_CUDA_PREFETCH=0" $S
S="--hq 28 --hkv 4 --batch 32 --tokens 4096 --r 64 --dtype f16"
run base base "RK_NONE=1" $S
run base-pf1 base "RK_CUDA_PREFETCH=1" $S
run new new "RK_NONE=1" $S
run new-pf1 new "RK_CUDA_PREFETCH=1" $S
run new-s4 new "RK_NONE=1" $S --split 4
run base base "RK_NONE=1" $S
run new new "RK_NONE=1" $S
for dt in bf16; do
S="--hq 28 --hkv 4 --batch 32 --tokens 4096 --r 64 --dtype $dt"
run base base "RK_NONE=1" $S; run new new "RK_NONE=1" $S; run new-pf1 new "RK_CUDA_PREFETCH=1" $S
done
for cfg in "8 4096 32" "32 4096 32"; do
    set -- $cfg
    S="--hq 28 --hkv 4 --batch $1 --tokens $2 --r $3 --dtype f16"
    run base base "RK_NONE=1" $S; run new new "RK_NONE=1" $S; run new-pf1 new "RK_CUDA_PREFETCH=1" $S
done
echo "=== grid $(date +%T)"
for cfg in "28 4 1 4096 32" "28 4 1 4096 64" "28 4 1 16384 64" "28 4 1 65536 64" "28 4 8 16384 32" "28 4 8 16384 64" "28 4 8 65536 64" "28 4 32 16384 64" "28 4 32 65536 32" "28 4 32 65536 64" "32 32 1 4096 64" "32 32 8 4096 32" "32 32 8 16384 64" "32 32 32 4096 32"; do
    set -- $cfg
    S="--hq $1 --hkv $2 --batch $3 --tokens $4 --r $5 --dtype f16"
    run base base "RK_NONE=1" $S; run new new "RK_NONE=1" $S
    [ $3 -ge 8 ] && [ $1 = 28 ] && run new-pf1 new "RK_CUDA_PREFETCH=1" $S
done
echo "=== sanitize $(date +%T)"
cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck racecheck; do
    echo "## $tool RK_CUDA_QPROJ=1"
    RK_CUDA_QPROJ=1 timeout 45 "$cs" --tool $tool --error-exitcode 9 /tmp/rk/cuda_check-new --backend cuda --quick | grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|checks passed|FAIL|========= [A-Z]' | head -8
    echo "exit ${PIPESTATUS[0]}"
done 2>&1 | tee "$out/sanitizer.txt"
echo "=== done $(date +%T)"
