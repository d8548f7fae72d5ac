#!/usr/bin/env bash
# v8 run 4 (final, the committed kernels): correctness (default and forced variants), sanitizers,
# base (main eaef110) vs new rk-bench at the target shapes with SDPA in the same run, latency.
set -uo pipefail
st=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/rk
export LD_LIBRARY_PATH=$st/lib
for f in "$st"/xz/*.xz; do n=$(basename "$f" .xz); xz -dc "$f" >/tmp/rk/$n; chmod +x /tmp/rk/$n; done
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv | tee "$out/info.txt"
echo "=== check $(date +%T)"
{
for env in "RK_CUDA_EARLY=-1" "RK_CUDA_DEC_NT=256" "RK_CUDA_DEC_NT=128" "RK_CUDA_PREFETCH=1" "RK_CUDA_EARLY=0"; do
    echo "## cuda_check $env"; env $env /tmp/rk/cuda_check-fin --backend cuda > /tmp/chk.txt; grep -E 'FAIL|checks passed' /tmp/chk.txt | head -20
    [ "$env" = "RK_CUDA_EARLY=-1" ] && cp /tmp/chk.txt "$out/check_full.txt"
done
for env in "RK_CUDA_EARLY=-1" "RK_CUDA_DEC_NT=256"; do
    echo "## conformance $env"; env $env /tmp/rk/rk-conformance-fin --backend cuda --vectors "$st/vectors/cases" > /tmp/conf.txt 2>&1; echo "exit $?"; tail -1 /tmp/conf.txt
done
cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for env in "RK_CUDA_EARLY=-1" "RK_CUDA_DEC_NT=256 RK_CUDA_PREFETCH=1"; do
    for tool in memcheck racecheck synccheck initcheck; do
        [ "$env" != "RK_CUDA_EARLY=-1" ] && [ $tool = synccheck -o $tool = initcheck ] && continue
        echo "## $tool $env"
        env $env "$cs" --tool $tool --error-exitcode 9 /tmp/rk/cuda_check-fin --backend cuda --quick | grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|checks passed|FAIL|========= [A-Z]' | head -8
        echo "exit ${PIPESTATUS[0]}"
    done
done
} 2>&1 | tee "$out/check.txt"
echo "=== bench $(date +%T)"
B="--backend cuda --hq 28 --hkv 4 --full-tokens 80 --probe-mb 0 --warmup 2 --iters 7 --json"
tag() { sed "s/^{/{\"variant\":\"$1\",/"; }
: >"$out/ab.jsonl"
for cfg in "1 4096 32 f16" "1 4096 32 bf16" "1 4096 64 f16" "1 16384 32 f16" "1 16384 32 bf16" "1 16384 64 f16" "1 65536 32 f16" "1 65536 64 f16" "8 4096 32 f16" "8 4096 64 f16" "8 16384 32 f16" "32 4096 32 f16" "32 65536 32 f16"; do
    set -- $cfg
    /tmp/rk/rk-bench-base $B --batch $1 --tokens $2 --r $3 --dtype $4 | tag base >>"$out/ab.jsonl"
    /tmp/rk/rk-bench-fin $B --batch $1 --tokens $2 --r $3 --dtype $4 | tag new >>"$out/ab.jsonl"
done
/tmp/rk/rk-bench-base $B --batch 1 --tokens 4096 --r 32 --dtype f16 | tag base >>"$out/ab.jsonl"
/tmp/rk/rk-bench-fin $B --batch 1 --tokens 4096 --r 32 --dtype f16 | tag new >>"$out/ab.jsonl"
/tmp/rk/rk-bench-base $B --batch 8 --tokens 4096 --r 64 --dtype f16 | tag base >>"$out/ab.jsonl"
/tmp/rk/rk-bench-fin $B --batch 8 --tokens 4096 --r 64 --dtype f16 | tag new >>"$out/ab.jsonl"
echo "=== sdpa $(date +%T)"
python3 "$st/scripts/sdpa_pts.py" "$out/sdpa.jsonl" 28,4,1,4096,f16 28,4,1,4096,bf16 28,4,1,16384,f16 28,4,1,16384,bf16 28,4,1,65536,f16 28,4,8,4096,f16 28,4,8,16384,f16 28,4,32,4096,f16 28,4,32,65536,f16 >/dev/null 2>&1
python3 - "$out/ab.jsonl" "$out/sdpa.jsonl" <<'PY'
import json, sys
sd = {}
for l in open(sys.argv[2]):
    r = json.loads(l); sd[(r['batch'], r['tokens'], r['dtype'])] = r['sdpa_us']
for l in open(sys.argv[1]):
    r = json.loads(l)
    s = sd.get((r['batch'], r['tokens'], r['dtype']))
    print(f"{r['variant']:8} B{r['batch']:>2} T{r['tokens']:>6} r{r['r']} {r['dtype']:4}: sparse {r['sparse_us']:8.1f} dense {r['dense_us']:8.1f}" + (f"  sdpa {s:8.1f}  x{s / r['sparse_us']:.2f}" if s else ""))
PY
echo "=== latency $(date +%T)"
{
for cfg in "1 4096" "1 16384"; do
    set -- $cfg
    echo "## B$1 T$2 base"; /tmp/rk/cuda_latency-base --hq 28 --hkv 4 --batch $1 --tokens $2 | tail -2
    echo "## B$1 T$2 v3"; /tmp/rk/cuda_latency-fin --hq 28 --hkv 4 --batch $1 --tokens $2 | tail -2
done
} 2>&1 | tee "$out/latency.txt"
echo "=== done $(date +%T)"
