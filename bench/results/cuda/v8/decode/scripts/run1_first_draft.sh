#!/usr/bin/env bash
# v8 run 1: correctness of the variants, base vs new A/B (rk-bench, cuda_latency), phase traces,
# ncu instruction counts, SDPA at the target shapes.
set -uo pipefail
st=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/rk
export LD_LIBRARY_PATH=$st/lib
for f in "$st"/xz/*.xz; do n=$(basename "$f" .xz); xz -dc "$f" >/tmp/rk/$n; chmod +x /tmp/rk/$n; done
ls /tmp/rk
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv | tee "$out/info.txt"
echo "=== check $(date +%T)"
{
for env in "RK_CUDA_EARLY=0" "RK_CUDA_DEC_NT=256" "RK_CUDA_EARLY=1 RK_CUDA_DEC_NT=256"; do
    echo "## $env"; env $env /tmp/rk/cuda_check-new --backend cuda | grep -E 'FAIL|checks passed' | head -20
done
} 2>&1 | tee "$out/check.txt"
echo "=== latency $(date +%T)"
{
for cfg in "1 4096 32" "1 16384 32"; do
    set -- $cfg
    echo "## B$1 T$2 r$3 base"; /tmp/rk/cuda_latency-base --hq 28 --hkv 4 --batch $1 --tokens $2 --r $3 | tail -2
    for env in "RK_CUDA_EARLY=0" "RK_CUDA_EARLY=1" "RK_CUDA_DEC_NT=256" "RK_CUDA_EARLY=1 RK_CUDA_DEC_NT=256"; do
        echo "## B$1 T$2 r$3 $env"; env $env /tmp/rk/cuda_latency-new --hq 28 --hkv 4 --batch $1 --tokens $2 --r $3 | tail -2
    done
done
} 2>&1 | tee "$out/latency.txt"
echo "=== bench $(date +%T)"
B="--backend cuda --hq 28 --hkv 4 --full-tokens 80 --dtype f16 --probe-mb 0 --warmup 3 --iters 11 --json"
tag() { sed "s/^{/{\"variant\":\"$1\",/"; }
: >"$out/ab.jsonl"
for cfg in "1 4096 32" "1 16384 32" "1 16384 64" "1 65536 64" "8 4096 64" "8 4096 32"; do
    set -- $cfg
    /tmp/rk/rk-bench-base $B --batch $1 --tokens $2 --r $3 | tag base >>"$out/ab.jsonl"
    RK_CUDA_EARLY=0 /tmp/rk/rk-bench-new $B --batch $1 --tokens $2 --r $3 | tag new >>"$out/ab.jsonl"
    RK_CUDA_EARLY=1 /tmp/rk/rk-bench-new $B --batch $1 --tokens $2 --r $3 | tag E >>"$out/ab.jsonl"
    RK_CUDA_DEC_NT=256 /tmp/rk/rk-bench-new $B --batch $1 --tokens $2 --r $3 | tag W >>"$out/ab.jsonl"
    RK_CUDA_EARLY=1 RK_CUDA_DEC_NT=256 /tmp/rk/rk-bench-new $B --batch $1 --tokens $2 --r $3 | tag EW >>"$out/ab.jsonl"
done
for cfg in "1 16384 32" "1 65536 64"; do
    set -- $cfg
    for s in 66 99; do
        RK_CUDA_EARLY=1 /tmp/rk/rk-bench-new $B --batch $1 --tokens $2 --r $3 --split $s | tag E_s$s >>"$out/ab.jsonl"
        RK_CUDA_EARLY=1 RK_CUDA_DEC_NT=256 /tmp/rk/rk-bench-new $B --batch $1 --tokens $2 --r $3 --split $s | tag EW_s$s >>"$out/ab.jsonl"
    done
done
/tmp/rk/rk-bench-base $B --batch 32 --tokens 65536 --r 32 | tag base >>"$out/ab.jsonl"
RK_CUDA_EARLY=0 /tmp/rk/rk-bench-new $B --batch 32 --tokens 65536 --r 32 | tag new >>"$out/ab.jsonl"
RK_CUDA_EARLY=1 /tmp/rk/rk-bench-new $B --batch 32 --tokens 65536 --r 32 | tag E >>"$out/ab.jsonl"
python3 - "$out/ab.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(f"{r['variant']:8} B{r['batch']:>2} T{r['tokens']:>6} r{r['r']}: sparse {r['sparse_us']:8.1f} dense {r['dense_us']:8.1f}")
PY
echo "=== trace $(date +%T)"
for cfg in "1 4096 32" "1 16384 32" "8 4096 64"; do
    set -- $cfg
    for env in "RK_CUDA_EARLY=0" "RK_CUDA_EARLY=1" "RK_CUDA_DEC_NT=256" "RK_CUDA_EARLY=1 RK_CUDA_DEC_NT=256"; do
        tg=$(echo "$env" | tr -d ' =_' | sed 's/RKCUDA//g')
        env $env RK_CUDA_DEC_TRACE=120 RK_CUDA_DEC_TRACE_FILE=$out/trace_B$1_T$2_r$3_$tg.txt /tmp/rk/cuda_latency-trace --hq 28 --hkv 4 --batch $1 --tokens $2 --r $3 | tail -2
    done
done
echo "=== ncu $(date +%T)"
n=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
for env in "RK_CUDA_EARLY=0" "RK_CUDA_DEC_NT=256"; do
    echo "## $env"
    env $env "$n" --clock-control none --cache-control none --kernel-name regex:rk_decode --launch-skip 60 --launch-count 2 \
        --metrics gpu__time_duration.sum,smsp__inst_executed.sum,smsp__warps_launched.sum,launch__registers_per_thread \
        /tmp/rk/cuda_latency-new --hq 28 --hkv 4 --batch 1 --tokens 4096 2>&1 | grep -E 'rk_decode|gpu__time|smsp__|launch__' | sed -E 's/, Context.*//; s/ +/ /g'
done 2>&1 | tee "$out/ncu.txt"
echo "=== sdpa $(date +%T)"
python3 "$st/scripts/sdpa_pts.py" "$out/sdpa.jsonl" 28,4,1,4096,f16 28,4,1,16384,f16 28,4,1,65536,f16 28,4,8,4096,f16 28,4,32,65536,f16 2>&1 | tail -6
echo "=== done $(date +%T)"
