#!/usr/bin/env python3
"""Dense decode baseline: PyTorch scaled_dot_product_attention on the shapes rk-bench runs.

One query token per head, K/V of tokens + 80 full-width tokens, GQA through enable_gqa (no
repeated K/V). Timed with CUDA events around batches of calls, median of several batches,
rotating over enough cache copies that repeated calls do not read from L2. Writes JSON lines.
"""
import argparse
import json
import math
import statistics

import torch
import torch.nn.functional as F

GEOMETRIES = [(28, 4, 128), (32, 32, 128)]
FULL_TOKENS = 80


def grid(kind):
    if kind == "quick":
        return GEOMETRIES, [1, 32], [4096, 65536], ["f16"]
    return GEOMETRIES, [1, 8, 32], [4096, 16384, 65536], ["f16", "bf16"]


def time_sdpa(hq, hkv, d, batch, tokens, dtype, rotate_bytes=256e6, batches=15):
    dev = torch.device("cuda")
    t_all = tokens + FULL_TOKENS
    kv_bytes = 2 * batch * hkv * t_all * d * torch.finfo(dtype).bits // 8
    copies = max(1, min(8, math.ceil(rotate_bytes / kv_bytes)))
    q = torch.randn(batch, hq, 1, d, device=dev, dtype=dtype)
    caches = []
    for _ in range(copies):
        k = torch.randn(batch, hkv, t_all, d, device=dev, dtype=dtype)
        v = torch.randn(batch, hkv, t_all, d, device=dev, dtype=dtype)
        caches.append((k, v))

    def call(i):
        k, v = caches[i % copies]
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=(hq != hkv))

    ref = call(0)  # warm-up (kernel selection, workspace)
    torch.cuda.synchronize()
    # calls per timed batch: about 2 ms of work
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(5):
        call(i)
    end.record()
    torch.cuda.synchronize()
    per = start.elapsed_time(end) / 5 * 1e-3
    inner = max(1, min(2000, int(2e-3 / max(per, 1e-9))))
    times = []
    for _ in range(batches):
        start.record()
        for i in range(inner):
            call(i)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / inner)
    us = statistics.median(times)
    q_out_bytes = 2 * batch * hq * d * torch.finfo(dtype).bits // 8
    moved = kv_bytes + q_out_bytes
    del caches, ref
    torch.cuda.empty_cache()
    return us, moved


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", default="full", choices=["full", "quick"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--geoms", default="", help="space-separated hq,hkv,d triples (default: both)")
    args = ap.parse_args()
    geoms, batches, tokens_list, dts = grid(args.grid)
    if args.geoms:
        geoms = [tuple(int(x) for x in g.split(",")) for g in args.geoms.split()]
    name = torch.cuda.get_device_name()
    with open(args.out, "w") as f:
        for hq, hkv, d in geoms:
            for b in batches:
                for t in tokens_list:
                    for dt in dts:
                        dtype = torch.float16 if dt == "f16" else torch.bfloat16
                        us, moved = time_sdpa(hq, hkv, d, b, t, dtype)
                        row = {"device": name, "torch": torch.__version__, "hq": hq, "hkv": hkv,
                               "d": d, "batch": b, "tokens": t, "full_tokens": FULL_TOKENS,
                               "dtype": dt, "sdpa_us": round(us, 3), "bytes": moved,
                               "gbps": round(moved / (us * 1e-6) / 1e9, 2)}
                        f.write(json.dumps(row) + "\n")
                        f.flush()
                        print(f"sdpa {hq}/{hkv} d{d} B{b} T{t} {dt}: {us:9.2f} us  {row['gbps']:8.1f} GB/s")


if __name__ == "__main__":
    main()
