#!/usr/bin/env bash
# v9 run 3 (final): policy change (sparse prefetch variant for 128-byte K rows at any grid size;
# 256-thread blocks for 28/4 batch 5-8 r64 <= 8192 tokens). Checks, then base e97095e vs final
# alternating in one call.
set -uo pipefail
st=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/rk/lib
tar -xJf "$st/lib.tar.xz" -C /tmp/rk/lib
for f in "$st"/xz/*.xz; do n=$(basename "$f" .xz); xz -dc "$f" >/tmp/rk/$n; chmod +x /tmp/rk/$n; done
export LD_LIBRARY_PATH=/tmp/rk/lib
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv | tee "$out/info.txt"
echo "=== check $(date +%T)"
{
echo "## cuda_check (final, default)"; /tmp/rk/cuda_check-fin --backend cuda >"$out/check_full.txt" 2>&1; echo "exit $?"; grep -E 'FAIL|checks passed' "$out/check_full.txt" | head
echo "## conformance (final, default)"; /tmp/rk/rk-conformance-fin --backend cuda --vectors tests/vectors/cases >/tmp/conf.txt 2>&1; echo "exit $?"; tail -1 /tmp/conf.txt
} 2>&1 | tee "$out/check.txt"
B="--backend cuda --full-tokens 80 --probe-mb 0 --warmup 2 --iters 9 --json"
: >"$out/ab.jsonl"
run() { # tag bin "env" args...
    local tag=$1 bin=$2 envs=$3; shift 3
    env $envs /tmp/rk/rk-bench-$bin $B "$@" | sed "s/^{/{\"variant\":\"$tag\",/" | tee -a "$out/ab.jsonl" |
        python3 -c "import json,sys; r=json.loads(sys.stdin.read()); print(f\"{r['variant']:14} {r['hq']}/{r['hkv']} B{r['batch']:>2} T{r['tokens']:>6} r{r['r']} {r['dtype']:4} sparse {r['sparse_us']:8.2f} dense {r['dense_us']:8.2f}\")"
}
echo "=== ab $(date +%T)"
for cfg in "28 4 8 4096 64 f16" "28 4 32 4096 64 f16" "28 4 8 4096 64 bf16" "28 4 32 4096 64 bf16" \
           "28 4 1 4096 32 f16" "28 4 1 4096 64 f16" "28 4 1 16384 32 f16" "28 4 1 16384 64 f16" "28 4 1 65536 32 f16" "28 4 1 65536 64 f16" \
           "28 4 8 4096 32 f16" "28 4 8 16384 32 f16" "28 4 8 16384 64 f16" "28 4 8 65536 32 f16" "28 4 8 65536 64 f16" \
           "28 4 32 4096 32 f16" "28 4 32 16384 32 f16" "28 4 32 16384 64 f16" "28 4 32 65536 32 f16" "28 4 32 65536 64 f16" \
           "32 32 1 4096 64 f16" "32 32 8 4096 32 f16" "32 32 32 4096 64 f16" "28 4 8 4096 64 f16" "28 4 32 4096 64 f16"; do
    set -- $cfg
    S="--hq $1 --hkv $2 --batch $3 --tokens $4 --r $5 --dtype $6"
    run base base "RK_NONE=1" $S; run final fin "RK_NONE=1" $S
done
echo "=== base variants $(date +%T)"
run base-nt256 base "RK_CUDA_DEC_NT=256" --hq 28 --hkv 4 --batch 8 --tokens 4096 --r 32 --dtype f16
run base-nt256 base "RK_CUDA_DEC_NT=256" --hq 28 --hkv 4 --batch 8 --tokens 16384 --r 64 --dtype f16
run base-pf1 base "RK_CUDA_PREFETCH=1" --hq 28 --hkv 4 --batch 32 --tokens 4096 --r 32 --dtype f16
python3 - "$out/ab.jsonl" <<'PY' | tee "$out/ab_table.txt"
import json, sys, statistics as st
rows = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    k = (r['hq'], r['hkv'], r['batch'], r['tokens'], r['r'], r['dtype'])
    rows.setdefault(k, {}).setdefault(r['variant'], []).append(r['sparse_us'])
print("| heads | B | tokens | r | dtype | base us | final us | final/base |")
print("|---|---|---|---|---|---|---|---|")
for k, v in rows.items():
    if 'base' in v and 'final' in v:
        b, f = st.median(v['base']), st.median(v['final'])
        print(f"| {k[0]}/{k[1]} | {k[2]} | {k[3]} | {k[4]} | {k[5]} | {b:.1f} | {f:.1f} | {f/b:.3f} |")
PY
echo "=== done $(date +%T)"
