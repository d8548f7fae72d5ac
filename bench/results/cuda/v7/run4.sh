#!/usr/bin/env bash
# v7 run 4 (final binaries): correctness, latency, rk-bench with the fixed calibration (base vs v7),
# split sweep at small shapes, large shapes, quick grid + SDPA + summary.
set -uo pipefail
st=$PWD/.gpu-cuda7
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/base
export LD_LIBRARY_PATH=$st/lib
for b in rk-bench cuda_latency; do xz -dc "$st/base/$b.xz" >/tmp/base/$b; chmod +x /tmp/base/$b; done
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv | tee "$out/info.txt"
echo "=== check $(date +%T)"
RK_GPU_STAGE=$st OUT=$out bash "$st/src/cuda_run.sh" run check conf sanitize 2>&1 | grep -E "checks passed|FAIL|summary|SUMMARY|exit"
echo "=== latency $(date +%T)"
{
for cfg in "28 4 1 4096" "28 4 8 16384" "32 32 1 4096"; do
    set -- $cfg
    echo "## $1/$2 B$3 T$4 base"; /tmp/base/cuda_latency --hq $1 --hkv $2 --batch $3 --tokens $4 | tail -2
    echo "## $1/$2 B$3 T$4 v7"; $st/bin/cuda_latency --hq $1 --hkv $2 --batch $3 --tokens $4 | tail -2
done
} 2>&1 | tee "$out/latency.txt"
B="--hq 28 --hkv 4 --r 32 --full-tokens 80 --probe-mb 0 --json --dtype f16"
tag() { sed "s/^{/{\"variant\":\"$1\",/"; }
echo "=== B1 $(date +%T)"
: >"$out/b1.jsonl"
for rep in 1 2 3; do
    $st/bin/rk-bench --backend cuda $B --batch 1 --tokens 4096 --warmup 3 --iters 15 | tag v7 >>"$out/b1.jsonl"
    /tmp/base/rk-bench --backend cuda $B --batch 1 --tokens 4096 --warmup 3 --iters 15 --inner 150 --rotate-mb 100 | tag base_inner150 >>"$out/b1.jsonl"
    $st/bin/rk-bench --backend cuda $B --batch 1 --tokens 4096 --warmup 3 --iters 15 --inner 150 | tag v7_inner150 >>"$out/b1.jsonl"
done
echo "=== splits $(date +%T)"
: >"$out/splits.jsonl"
for cfg in "1 4096" "1 16384" "1 65536" "8 4096"; do
    set -- $cfg
    for s in 0 48 66 99 132; do
        $st/bin/rk-bench --backend cuda $B --batch $1 --tokens $2 --warmup 3 --iters 11 --split $s | tag "split$s" >>"$out/splits.jsonl"
    done
    RK_CUDA_PREFETCH=1 $st/bin/rk-bench --backend cuda $B --batch $1 --tokens $2 --warmup 3 --iters 11 --split 66 | tag "pf1_split66" >>"$out/splits.jsonl"
done
echo "=== large $(date +%T)"
: >"$out/large.jsonl"
for cfg in "1 65536" "8 16384" "8 65536" "32 65536"; do
    set -- $cfg
    /tmp/base/rk-bench --backend cuda $B --batch $1 --tokens $2 --warmup 3 --iters 11 | tag base >>"$out/large.jsonl"
    $st/bin/rk-bench --backend cuda $B --batch $1 --tokens $2 --warmup 3 --iters 11 | tag v7 >>"$out/large.jsonl"
done
python3 - "$out" <<'PY'
import json, sys
o = sys.argv[1]
for f in ("b1.jsonl", "splits.jsonl", "large.jsonl"):
    for l in open(o + "/" + f):
        r = json.loads(l)
        print(f"{r['variant']:14} B{r['batch']} T{r['tokens']}: sparse {r['sparse_us']:8.1f} dense {r['dense_us']:8.1f}")
PY
echo "=== grid $(date +%T)"
BENCH_GRID=quick RK_GPU_STAGE=$st OUT=$out bash "$st/src/cuda_run.sh" run bench sdpa summary 2>&1 | tail -14
echo "=== done $(date +%T)"
