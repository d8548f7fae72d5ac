#!/usr/bin/env bash
# v10 run 2: checks of the policy build (new) and of policy + 8-byte q-fragment loads (k);
# base / new / k alternating, order reversed in pass 2.
set -uo pipefail
st=$(cd "$(dirname "$0")" && pwd)
bs=$st/../.gpu-v10base
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/rk/lib
tar -xJf "$bs/lib.tar.xz" -C /tmp/rk/lib
for f in "$st"/xz/*.xz "$bs"/xz/rk-bench-base.xz; do n=$(basename "$f" .xz); xz -dc "$f" >/tmp/rk/$n & done; wait; chmod +x /tmp/rk/*-*
export LD_LIBRARY_PATH=/tmp/rk/lib
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv | tee "$out/info.txt"
{
for v in new k; do
echo "## cuda_check ($v) $(date +%T)"; /tmp/rk/cuda_check-$v --backend cuda >/tmp/chk.txt 2>&1; echo "exit $?"; grep -E 'FAIL|checks passed' /tmp/chk.txt | head
echo "## conformance ($v) $(date +%T)"; /tmp/rk/rk-conformance-$v --backend cuda --vectors tests/vectors/cases >/tmp/conf.txt 2>&1; echo "exit $?"; tail -1 /tmp/conf.txt
done
} 2>&1 | tee "$out/check.txt"
B="--backend cuda --full-tokens 80 --probe-mb 0 --warmup 2 --iters 9 --json"
: >"$out/ab.jsonl"
run() { # tag bin args...
    local tag=$1 bin=$2; shift 2
    /tmp/rk/rk-bench-$bin $B "$@" | sed "s/^{/{\"variant\":\"$tag\",/" | tee -a "$out/ab.jsonl" |
        python3 -c "import json,sys; r=json.loads(sys.stdin.read()); print(f\"{r['variant']:5} {r['hq']}/{r['hkv']} B{r['batch']:>2} T{r['tokens']:>6} r{r['r']} {r['dtype']:4} sparse {r['sparse_us']:8.2f} dense {r['dense_us']:8.2f}\")"
}
echo "=== ab $(date +%T)"
for pass in 1 2; do
for cfg in "8 4096 32 f16" "8 4096 32 bf16" "8 16384 32 f16" "8 16384 32 bf16" "8 65536 32 f16" \
           "32 4096 32 f16" "32 4096 32 bf16" "32 16384 32 f16" "32 65536 32 f16" \
           "1 4096 32 f16" "1 4096 64 f16" "8 4096 64 f16" "32 4096 64 f16"; do
    set -- $cfg
    S="--hq 28 --hkv 4 --batch $1 --tokens $2 --r $3 --dtype $4"
    if [ $pass = 1 ]; then run base base $S; run new new $S; run k k $S
    else run k k $S; run new new $S; run base base $S; fi
done
done
python3 "$st/table.py" "$out/ab.jsonl" | tee "$out/ab_table.txt"
echo "=== done $(date +%T)"
