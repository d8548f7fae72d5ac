#!/usr/bin/env bash
# v7 run 2: correctness, then base vs new (prefetch auto / off / on) with the mixed-tile fix.
set -uo pipefail
st=$PWD/.gpu-cuda7
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/base
export LD_LIBRARY_PATH=$st/lib
for b in rk-bench cuda_latency; do
    xz -dc "$st/base/$b.xz" >/tmp/base/$b; chmod +x /tmp/base/$b
done
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,driver_version --format=csv | tee "$out/info.txt"
echo "=== check $(date +%T)"
RK_GPU_STAGE=$st OUT=$out bash "$st/src/cuda_run.sh" run check conf 2>&1 | grep -E "checks passed|FAIL|summary|exit"
RK_GPU_STAGE=$st OUT=$out bash "$st/src/cuda_run.sh" run sanitize 2>&1 | grep -E "SUMMARY|exit"
echo "=== latency $(date +%T)"
{
for cfg in "28 4 1 4096" "28 4 1 16384" "28 4 8 16384" "32 32 1 4096"; do
    set -- $cfg
    for v in base pf0 pf1; do
        bin=$st/bin/cuda_latency; env=""
        case $v in base) bin=/tmp/base/cuda_latency;; pf0) env="RK_CUDA_PREFETCH=0";; pf1) env="RK_CUDA_PREFETCH=1";; esac
        echo "## $1/$2 B$3 T$4 $v"; env $env $bin --hq $1 --hkv $2 --batch $3 --tokens $4 | tail -2
    done
done
} 2>&1 | tee "$out/latency.txt"
echo "=== bench B1 $(date +%T)"
B="--hq 28 --hkv 4 --r 32 --full-tokens 80 --probe-mb 0 --json"
: >"$out/b1.jsonl"
run_v() { # variant, then rk-bench flags
    local v=$1; shift
    local bin=$st/bin/rk-bench env=""
    case $v in base*) bin=/tmp/base/rk-bench;; pf0*) env="RK_CUDA_PREFETCH=0";; pf1*) env="RK_CUDA_PREFETCH=1";; esac
    env $env $bin --backend cuda "$@" | sed "s/^{/{\"variant\":\"$v\",/"
}
for rep in 1 2 3; do
    for v in pf0 pf1 auto; do run_v $v $B --batch 1 --tokens 4096 --dtype f16 --warmup 3 --iters 15 >>"$out/b1.jsonl"; done
    [ $rep -le 2 ] && run_v base $B --batch 1 --tokens 4096 --dtype f16 --warmup 3 --iters 15 --rotate-mb 100 >>"$out/b1.jsonl"
done
for v in base_l2 pf0_l2 pf1_l2; do run_v $v $B --batch 1 --tokens 4096 --dtype f16 --warmup 3 --iters 15 --rotate-mb 1 >>"$out/b1.jsonl"; done
run_v auto_bf16 $B --batch 1 --tokens 4096 --dtype bf16 --warmup 3 --iters 15 >>"$out/b1.jsonl"
run_v auto_r64 --hq 28 --hkv 4 --r 64 --full-tokens 80 --probe-mb 0 --json --batch 1 --tokens 4096 --dtype f16 --warmup 3 --iters 15 >>"$out/b1.jsonl"
echo "=== bench mid/large $(date +%T)"
: >"$out/large.jsonl"
for cfg in "1 16384" "1 65536" "8 4096" "8 16384" "8 65536" "32 65536"; do
    set -- $cfg
    for v in base pf0 pf1; do
        run_v $v $B --batch $1 --tokens $2 --dtype f16 --warmup 3 --iters 11 >>"$out/large.jsonl"
    done
done
python3 - "$out" <<'PY'
import json, sys
o = sys.argv[1]
for f in ("b1.jsonl", "large.jsonl"):
    for l in open(o + "/" + f):
        r = json.loads(l)
        print(f"{r['variant']:10} {r['dtype']} r{r['r']} B{r['batch']} T{r['tokens']}: sparse {r['sparse_us']:8.1f} dense {r['dense_us']:8.1f}")
PY
echo "=== ncu $(date +%T)"
n=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
for v in pf1 pf0 base; do
    bin=$st/bin/cuda_latency; env="RK_CUDA_PREFETCH=${v#pf}"
    [ $v = base ] && { bin=/tmp/base/cuda_latency; env="X=1"; }
    echo "== $v B1 T4096"
    env $env "$n" --clock-control none --cache-control none --kernel-name regex:rk_decode \
        --launch-skip 60 --launch-count 4 --metrics gpu__time_duration.sum,smsp__inst_executed.sum,launch__registers_per_thread,launch__grid_size \
        $bin --hq 28 --hkv 4 --batch 1 --tokens 4096 2>&1 | grep -E 'rk_decode|gpu__time|smsp__|launch__' | sed -E 's/, Context.*//; s/ +/ /g'
done 2>&1 | tee "$out/ncu.txt"
echo "=== done $(date +%T)"
