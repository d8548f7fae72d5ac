#!/usr/bin/env bash
# v7 run 1: correctness of the new binaries, then base vs new (prefetch auto / off / forced) on
# small and large shapes, ncu kernel durations. Run from the repo root with .gpu-cuda7 carried.
set -uo pipefail
st=$PWD/.gpu-cuda7
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/base
export LD_LIBRARY_PATH=$st/lib
for b in rk-bench cuda_latency; do
    xz -dc "$st/base/$b.xz" >/tmp/base/$b 2>/dev/null || python3 -c "import lzma,sys;sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())" "$st/base/$b.xz" >/tmp/base/$b
    chmod +x /tmp/base/$b
done
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,persistence_mode,driver_version --format=csv | tee "$out/info.txt"
echo "=== check $(date +%T)"
RK_GPU_STAGE=$st OUT=$out bash "$st/src/cuda_run.sh" run check conf 2>&1 | tail -8
echo "=== sanitize $(date +%T)"
RK_GPU_STAGE=$st OUT=$out bash "$st/src/cuda_run.sh" run sanitize 2>&1 | grep -E "==|exit" | tail -12
echo "=== latency $(date +%T)"
{
for cfg in "1 4096" "1 16384" "8 16384"; do
    set -- $cfg
    echo "## B$1 T$2 base"; /tmp/base/cuda_latency --hq 28 --hkv 4 --batch $1 --tokens $2 | tail -2
    echo "## B$1 T$2 new auto"; $st/bin/cuda_latency --hq 28 --hkv 4 --batch $1 --tokens $2 | tail -2
    echo "## B$1 T$2 new prefetch 0"; RK_CUDA_PREFETCH=0 $st/bin/cuda_latency --hq 28 --hkv 4 --batch $1 --tokens $2 | tail -2
    echo "## B$1 T$2 new prefetch 1"; RK_CUDA_PREFETCH=1 $st/bin/cuda_latency --hq 28 --hkv 4 --batch $1 --tokens $2 | tail -2
done
} 2>&1 | tee "$out/latency.txt"
echo "=== bench small $(date +%T)"
B="--hq 28 --hkv 4 --r 32 --full-tokens 80 --probe-mb 0 --json"
: >"$out/b1.jsonl"
for rep in 1 2 3; do
  for wu in 3 40; do
    for v in base auto pf0 pf1 pf1s64 pf1s16; do
        bin=$st/bin/rk-bench; env=""; extra=""
        case $v in base) bin=/tmp/base/rk-bench;; pf0) env="RK_CUDA_PREFETCH=0";; pf1) env="RK_CUDA_PREFETCH=1";;
                   pf1s64) env="RK_CUDA_PREFETCH=1"; extra="--split 64";; pf1s16) env="RK_CUDA_PREFETCH=1"; extra="--split 16";; esac
        env $env $bin --backend cuda $B --batch 1 --tokens 4096 --dtype f16 --warmup $wu --iters 15 $extra |
            sed "s/^{/{\"variant\":\"$v\",\"rep\":$rep,\"warmup\":$wu,/" >>"$out/b1.jsonl"
    done
  done
done
echo "=== bench mid/large $(date +%T)"
: >"$out/large.jsonl"
for cfg in "1 16384" "1 65536" "8 4096" "8 16384" "8 65536" "32 65536"; do
    set -- $cfg
    for v in base auto pf0 pf1; do
        bin=$st/bin/rk-bench; env=""
        case $v in base) bin=/tmp/base/rk-bench;; pf0) env="RK_CUDA_PREFETCH=0";; pf1) env="RK_CUDA_PREFETCH=1";; esac
        env $env $bin --backend cuda $B --batch $1 --tokens $2 --dtype f16 --warmup 3 --iters 11 |
            sed "s/^{/{\"variant\":\"$v\",/" >>"$out/large.jsonl"
    done
done
python3 - "$out" <<'PY'
import json, sys, statistics as st, collections
o = sys.argv[1]
d = collections.defaultdict(list)
for l in open(o + "/b1.jsonl"):
    r = json.loads(l); d[(r["variant"], r["warmup"])].append((r["sparse_us"], r["dense_us"]))
for k, v in d.items():
    print("B1 T4096", k, "sparse", [round(x[0], 1) for x in v], "dense", [round(x[1], 1) for x in v])
for l in open(o + "/large.jsonl"):
    r = json.loads(l)
    print(f"B{r['batch']} T{r['tokens']} {r['variant']:6} sparse {r['sparse_us']:8.1f} dense {r['dense_us']:8.1f}")
PY
echo "=== ncu $(date +%T)"
n=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
for env in "RK_CUDA_PREFETCH=1" "RK_CUDA_PREFETCH=0"; do
  for bin in $st/bin/cuda_latency /tmp/base/cuda_latency; do
    [ "$bin" = /tmp/base/cuda_latency ] && [ "$env" = "RK_CUDA_PREFETCH=0" ] && continue
    echo "== $env $bin B1 T4096"
    env $env "$n" --clock-control none --cache-control none --kernel-name regex:rk_decode \
        --launch-skip 60 --launch-count 4 --metrics gpu__time_duration.sum,smsp__inst_executed.sum,launch__registers_per_thread,launch__grid_size,launch__occupancy_limit_registers \
        $bin --hq 28 --hkv 4 --batch 1 --tokens 4096 2>&1 | grep -E 'rk_decode|gpu__time|smsp__|launch__' | sed -E 's/, Context.*//; s/ +/ /g'
  done
done 2>&1 | tee "$out/ncu.txt"
echo "=== done $(date +%T)"
