#!/usr/bin/env bash
# v7 run 3: why rk-bench's batch-1 sparse decode (24 us) is slower than cuda_latency's stream (14 us)
set -uo pipefail
st=$PWD/.gpu-cuda7
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/base
export LD_LIBRARY_PATH=$st/lib
xz -dc "$st/base/rk-bench.xz" >/tmp/base/rk-bench; chmod +x /tmp/base/rk-bench
echo "=== check $(date +%T)"
RK_GPU_STAGE=$st OUT=$out bash "$st/src/cuda_run.sh" run check conf 2>&1 | grep -E "checks passed|FAIL|summary|exit"
echo "=== latency $(date +%T)"
{
for rnd in 0 1; do
    echo "## random $rnd"; $st/bin/cuda_latency --hq 28 --hkv 4 --batch 1 --tokens 4096 --random $rnd | tail -2
done
} 2>&1 | tee "$out/latency.txt"
echo "=== bench B1 $(date +%T)"
B="--hq 28 --hkv 4 --r 32 --full-tokens 80 --probe-mb 0 --json --batch 1 --tokens 4096 --dtype f16 --iters 15"
: >"$out/b1.jsonl"
for rep in 1 2; do
    $st/bin/rk-bench --backend cuda $B --warmup 3 | sed 's/^{/{"variant":"new",/' >>"$out/b1.jsonl"
    $st/bin/rk-bench --backend cuda $B --warmup 3 --dense-first | sed 's/^{/{"variant":"new_dense_first",/' >>"$out/b1.jsonl"
    $st/bin/rk-bench --backend cuda $B --warmup 3 --inner 1 | sed 's/^{/{"variant":"new_inner1",/' >>"$out/b1.jsonl"
    $st/bin/rk-bench --backend cuda $B --warmup 3 --inner 200 | sed 's/^{/{"variant":"new_inner200",/' >>"$out/b1.jsonl"
done
/tmp/base/rk-bench --backend cuda $B --warmup 3 --rotate-mb 100 | sed 's/^{/{"variant":"base",/' >>"$out/b1.jsonl"
echo "=== bench large $(date +%T)"
: >"$out/large.jsonl"
for cfg in "8 16384" "32 65536"; do
    set -- $cfg
    $st/bin/rk-bench --backend cuda --hq 28 --hkv 4 --r 32 --full-tokens 80 --probe-mb 0 --json --batch $1 --tokens $2 --dtype f16 --warmup 3 --iters 11 | sed 's/^{/{"variant":"auto",/' >>"$out/large.jsonl"
done
python3 - "$out" <<'PY'
import json, sys
o = sys.argv[1]
for f in ("b1.jsonl", "large.jsonl"):
    for l in open(o + "/" + f):
        r = json.loads(l)
        print(f"{r['variant']:16} {r['dtype']} r{r['r']} B{r['batch']} T{r['tokens']}: sparse {r['sparse_us']:8.1f} dense {r['dense_us']:8.1f}")
PY
echo "=== ncu rk-bench $(date +%T)"
n=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
"$n" --clock-control none --cache-control none --kernel-name regex:rk_decode --launch-skip 100 --launch-count 4 \
    --metrics gpu__time_duration.sum,smsp__inst_executed.sum,launch__grid_size \
    $st/bin/rk-bench --backend cuda $B --warmup 2 --iters 3 --inner 20 2>&1 | grep -E 'rk_decode|gpu__time|smsp__|launch__' | sed -E 's/, Context.*//; s/ +/ /g' | tee "$out/ncu_bench.txt"
if command -v nsys >/dev/null; then
    echo "=== nsys $(date +%T)"
    nsys profile -o /tmp/rkb --force-overwrite true $st/bin/rk-bench --backend cuda $B --warmup 2 --iters 3 --inner 50 >/dev/null 2>&1
    nsys stats --report cuda_gpu_trace --format csv /tmp/rkb.nsys-rep 2>/dev/null | grep -E "rk_decode" | head -400 | tail -12 | tee "$out/nsys_trace.txt"
    nsys stats --report cuda_api_sum /tmp/rkb.nsys-rep 2>/dev/null | head -20 | tee -a "$out/nsys_trace.txt"
fi
echo "=== done $(date +%T)"
