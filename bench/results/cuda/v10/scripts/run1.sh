#!/usr/bin/env bash
# v10 run 1: checks of the new build, base vs new alternating (2 passes), policy sweep on the base
# binary with forced variants, ncu stall sampling of the B8 T4096 r64 decode (prologue).
set -uo pipefail
st=$(cd "$(dirname "$0")" && pwd)
bs=$st/../.gpu-v10base
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/rk/lib
tar -xJf "$bs/lib.tar.xz" -C /tmp/rk/lib
for f in "$st"/xz/*.xz "$bs"/xz/*.xz; do n=$(basename "$f" .xz); xz -dc "$f" >/tmp/rk/$n; chmod +x /tmp/rk/$n; done
export LD_LIBRARY_PATH=/tmp/rk/lib
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm,driver_version --format=csv | tee "$out/info.txt"
echo "=== check $(date +%T)"
{
echo "## cuda_check (new, default) $(date +%T)"; /tmp/rk/cuda_check-new --backend cuda >"$out/check_full.txt" 2>&1; echo "exit $?"; grep -E 'FAIL|checks passed' "$out/check_full.txt" | head
echo "## conformance (new, default) $(date +%T)"; /tmp/rk/rk-conformance-new --backend cuda --vectors tests/vectors/cases >/tmp/conf.txt 2>&1; echo "exit $?"; tail -1 /tmp/conf.txt
} 2>&1 | tee "$out/check.txt"
B="--backend cuda --full-tokens 80 --probe-mb 0 --warmup 2 --iters 9 --json"
: >"$out/ab.jsonl"
run() { # tag bin "env" args...
    local tag=$1 bin=$2 envs=$3; shift 3
    env $envs /tmp/rk/rk-bench-$bin $B "$@" | sed "s/^{/{\"variant\":\"$tag\",/" | tee -a "$out/ab.jsonl" |
        python3 -c "import json,sys; r=json.loads(sys.stdin.read()); print(f\"{r['variant']:12} {r['hq']}/{r['hkv']} B{r['batch']:>2} T{r['tokens']:>6} r{r['r']} {r['dtype']:4} sparse {r['sparse_us']:8.2f}\")"
}
echo "=== ab $(date +%T)"
for pass in 1 2; do
for cfg in "28 4 8 4096 32 f16" "28 4 32 4096 32 f16" "28 4 8 4096 32 bf16" "28 4 32 4096 32 bf16" \
           "28 4 1 4096 32 f16" "28 4 8 4096 64 f16" "28 4 32 4096 64 f16" "32 32 8 4096 32 f16"; do
    set -- $cfg
    S="--hq $1 --hkv $2 --batch $3 --tokens $4 --r $5 --dtype $6"
    run base base "RK_NONE=1" $S; run new new "RK_NONE=1" $S
done
done
echo "=== sweep $(date +%T)"
for cfg in "8 16384 32" "8 65536 32" "8 16384 64" "32 16384 32" "32 65536 32" "8 4096 32"; do
    set -- $cfg
    S="--hq 28 --hkv 4 --batch $1 --tokens $2 --r $3 --dtype f16"
    run base base "RK_NONE=1" $S
    [ "$1" = 8 ] && run base-nt256 base "RK_CUDA_DEC_NT=256" $S
    [ "$3" = 32 ] && run base-pf1 base "RK_CUDA_PREFETCH=1" $S
done
python3 "$st/table.py" "$out/ab.jsonl" | tee "$out/ab_table.txt"
echo "=== ncu $(date +%T)"
N=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
timeout 90 "$N" --clock-control none --cache-control none --kernel-name regex:rk_decode_vec --launch-skip 60 --launch-count 1 \
    --section WarpStateStats --section SourceCounters --section SpeedOfLight --section LaunchStats -f -o /tmp/p1 \
    /tmp/rk/cuda_latency-base --hq 28 --hkv 4 --batch 8 --tokens 4096 --r 64 >/tmp/ncu1.log 2>&1; echo "ncu exit $?"; tail -3 /tmp/ncu1.log
"$N" --import /tmp/p1.ncu-rep --page details >"$out/ncu_b8r64.txt" 2>&1; grep -E 'rk_decode|Duration|Registers|Block Size|Grid Size|Stall|stall' "$out/ncu_b8r64.txt" | head -30
"$N" --import /tmp/p1.ncu-rep --page source --print-source sass --csv 2>&1 | xz -T4 >"$out/sass_b8r64.csv.xz"; ls -la "$out"
echo "=== done $(date +%T)"
