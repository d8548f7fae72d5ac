"""PNG plots from rk-accuracy --json output.

    python plot_accuracy.py STUDY.json OUT_PREFIX
        OUT_PREFIX_error_vs_bytes.png  attention-output error vs Key channels kept and vs kept
                                       KV bytes, one line per method
        OUT_PREFIX_kl_topk.png         KL and top-k overlap vs Key channels kept
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CHANNEL = ["rotatek-qw", "rotatek-qw-fast", "rotatek-plain", "rotatek-plain-fast", "think",
           "spark", "random"]
TOKENS = ["tokens-only", "tokens+rotatek"]
STYLE = {
    "rotatek-qw": ("tab:red", "-", "o"), "rotatek-qw-fast": ("tab:red", ":", "x"),
    "rotatek-plain": ("tab:orange", "-", "s"), "rotatek-plain-fast": ("tab:orange", ":", "+"),
    "think": ("tab:blue", "-", "^"), "spark": ("tab:green", "-", "v"),
    "random": ("tab:gray", "-", "d"), "tokens-only": ("tab:purple", "--", "<"),
    "tokens+rotatek": ("tab:brown", "--", ">"),
}


def series(study, method, x_key, y_key):
    pts = [p for p in study["points"] if p["method"] == method]
    pts.sort(key=lambda p: p[x_key])
    return [p[x_key] for p in pts], [p["mean"][y_key] for p in pts]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        study = json.load(f)
    prefix = sys.argv[2]
    title = "%s (%s cache, %d seq x %d layers x %d heads, %d tokens)" % (
        study["name"], study["dtype"], study["sequences"], study["layers"], study["heads"],
        study["tokens"])

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    # left: the same Key channel budget; right: the same KV-cache bytes (token methods too)
    for m in CHANNEL:
        c, ls, mk = STYLE[m]
        x, y = series(study, m, "key_ratio", "rel_err")
        axes[0].plot(x, y, color=c, linestyle=ls, marker=mk, label=m)
    for m in CHANNEL + TOKENS:
        x, y = series(study, m, "kv_bytes", "rel_err")
        if x:
            c, ls, mk = STYLE[m]
            axes[1].plot(x, y, color=c, linestyle=ls, marker=mk, label=m)
    axes[0].set_xlabel("Key channels kept (fraction of d)")
    axes[1].set_xlabel("KV-cache bytes kept per span token (fraction of dense;\n"
                       "SparK with int32 indices as the library stores them)")
    for a in axes:
        a.set_ylabel("attention-output relative error (mean)")
        a.set_yscale("log")
        a.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8)
    dense = [p for p in study["points"] if p["method"] == "dense"]
    floor = " - dense %s decode alone: %.1e" % (study["dtype"], dense[0]["mean"]["rel_err"]) if dense else ""
    fig.suptitle(title + floor, fontsize=9)
    fig.tight_layout()
    fig.savefig(prefix + "_error_vs_bytes.png", dpi=110)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for m in CHANNEL:
        c, ls, mk = STYLE[m]
        x, y = series(study, m, "key_ratio", "kl")
        axes[0].plot(x, y, color=c, linestyle=ls, marker=mk, label=m)
        x, y = series(study, m, "key_ratio", "topk")
        axes[1].plot(x, y, color=c, linestyle=ls, marker=mk, label=m)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("KL(p_dense || p_method)")
    axes[1].set_ylabel("top-%d overlap" % study["topk"])
    for a in axes:
        a.set_xlabel("Key channels kept (fraction of d)")
        a.grid(True, alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(prefix + "_kl_topk.png", dpi=110)


if __name__ == "__main__":
    main()
