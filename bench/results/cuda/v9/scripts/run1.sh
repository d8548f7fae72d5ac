#!/usr/bin/env bash
# v9 run 1 (B8 T4096 diagnosis): correctness of the new build, variant sweeps, base vs new, traces
set -uo pipefail
st=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/rk/lib
tar -xJf "$st/lib.tar.xz" -C /tmp/rk/lib
for f in "$st"/xz/*.xz; do n=$(basename "$f" .xz); xz -dc "$f" >/tmp/rk/$n; chmod +x /tmp/rk/$n; done
export LD_LIBRARY_PATH=/tmp/rk/lib
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm,driver_version --format=csv | tee "$out/info.txt"
QA="RK_CUDA_QASYNC=1 RK_CUDA_QCHUNK=8192"
ALL="$QA RK_CUDA_L2_HEAD=4 RK_CUDA_L2_DIST=2"
checks() {
for env in "$@"; do
    echo "## cuda_check $env $(date +%T)"; env $env /tmp/rk/cuda_check-new --backend cuda >/tmp/chk.txt 2>&1; echo "exit $?"
    grep -E 'FAIL|checks passed' /tmp/chk.txt | head -8
done
}
echo "=== check $(date +%T)"
{
checks "RK_NONE=1" "$ALL"
echo "## conformance $ALL $(date +%T)"; env $ALL /tmp/rk/rk-conformance-new --backend cuda --vectors tests/vectors/cases >/tmp/conf.txt 2>&1; echo "exit $?"; tail -1 /tmp/conf.txt
} 2>&1 | tee "$out/check.txt"
echo "=== sweep $(date +%T)"
B="--backend cuda --full-tokens 80 --probe-mb 0 --warmup 2 --iters 9 --json"
: >"$out/sweep.jsonl"
run() { # tag bin "env" args...
    local tag=$1 bin=$2 envs=$3; shift 3
    env $envs /tmp/rk/rk-bench-$bin $B "$@" | sed "s/^{/{\"variant\":\"$tag\",/" | tee -a "$out/sweep.jsonl" |
        python3 -c "import json,sys; r=json.loads(sys.stdin.read()); print(f\"{r['variant']:34} {r['hq']}/{r['hkv']} B{r['batch']:>2} T{r['tokens']:>6} r{r['r']} {r['dtype']:4} sparse {r['sparse_us']:8.2f} dense {r['dense_us']:8.2f}\")"
}
S="--hq 28 --hkv 4 --batch 8 --tokens 4096 --r 64 --dtype f16"
run base base "RK_NONE=1" $S
run new-default new "RK_NONE=1" $S
for s in 4 6 10 12 16; do run base-s$s base "RK_NONE=1" $S --split $s; done
run base-pf0 base "RK_CUDA_PREFETCH=0" $S
for s in 8 16 24; do run base-pf0-s$s base "RK_CUDA_PREFETCH=0" $S --split $s; done
run base-nt256 base "RK_CUDA_DEC_NT=256" $S
run base-nt256-s8 base "RK_CUDA_DEC_NT=256" $S --split 8
run new-qa new "RK_CUDA_QASYNC=1" $S
run new-qa8 new "$QA" $S
for h in 2 4 8; do run new-qa8-h$h new "$QA RK_CUDA_L2_HEAD=$h" $S; done
for dd in 1 2 3; do run new-qa8-h$((dd + 1))d$dd new "$QA RK_CUDA_L2_HEAD=$((dd + 1)) RK_CUDA_L2_DIST=$dd" $S; done
run new-all-pf0 new "$ALL RK_CUDA_PREFETCH=0" $S
run new-all-pf0-s16 new "$ALL RK_CUDA_PREFETCH=0" $S --split 16
run new-all-s12 new "$ALL" $S --split 12
run new-all-s16 new "$ALL" $S --split 16
run new-all-nt256 new "$ALL RK_CUDA_DEC_NT=256" $S
run new-h4d2 new "RK_CUDA_L2_HEAD=4 RK_CUDA_L2_DIST=2" $S
run base base "RK_NONE=1" $S
run new-all new "$ALL" $S
S="--hq 28 --hkv 4 --batch 32 --tokens 4096 --r 64 --dtype f16"
run base base "RK_NONE=1" $S
run base-pf1 base "RK_CUDA_PREFETCH=1" $S
for s in 4 6; do run base-s$s base "RK_NONE=1" $S --split $s; done
run new-qa8 new "$QA" $S
run new-all new "$ALL" $S
run new-qa8-h2d1 new "$QA RK_CUDA_L2_HEAD=2 RK_CUDA_L2_DIST=1" $S
run new-qa8-h4d3 new "$QA RK_CUDA_L2_HEAD=4 RK_CUDA_L2_DIST=3" $S
run new-all-pf1 new "$ALL RK_CUDA_PREFETCH=1" $S
run new-all-s6 new "$ALL" $S --split 6
echo "=== other shapes $(date +%T)"
for cfg in "28 4 1 4096 64" "28 4 1 16384 64" "28 4 1 65536 64" "28 4 8 16384 64" "28 4 8 4096 32" "28 4 32 16384 64" "28 4 32 65536 32" "32 32 1 4096 64" "32 32 8 4096 32"; do
    set -- $cfg
    S="--hq $1 --hkv $2 --batch $3 --tokens $4 --r $5 --dtype f16"
    run base base "RK_NONE=1" $S
    run new-qa8 new "$QA" $S
    run new-all new "$ALL" $S
done
echo "=== check2 $(date +%T)"
checks "$ALL RK_CUDA_PREFETCH=1" "$ALL RK_CUDA_DEC_NT=256" 2>&1 | tee -a "$out/check.txt"
echo "=== traces $(date +%T)"
cd /tmp
{
for v in "def RK_NONE=1" "all $ALL"; do
    set -- $v; tag=$1; shift
    for bt in "8 4096 64" "32 4096 64"; do
        set -- $bt
        env ${v#* } RK_CUDA_DEC_TRACE=120 RK_CUDA_DEC_TRACE_FILE=/tmp/tr_${tag}_B$1_T$2_r$3.txt /tmp/rk/cuda_latency-trace --hq 28 --hkv 4 --batch $1 --tokens $2 --r $3 | tail -2
    done
done
python3 "$st/trace_ana.py" /tmp/tr_*.txt
} 2>&1 | tee "$out/traces.txt"
tar -czf "$out/traces.tgz" -C /tmp $(cd /tmp && ls tr_*.txt) 2>/dev/null
echo "=== done $(date +%T)"
