#!/usr/bin/env python3
"""Summary of a cuda_run.sh output folder: rk-bench rows joined with the SDPA baseline.

Columns: sparse and dense decode time, SDPA time, sparse GB/s and its fraction of the probed read
bandwidth, sparse/dense time over the byte ratio (r+d)/(2d) -- 1.00 means the sparse decode
saves exactly its byte share --, and the speed-up over SDPA. Markdown on stdout.
"""
import json
import os
import sys


def load(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    return rows


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    bench = load(os.path.join(out, "bench.jsonl"))
    sdpa = {(r["hq"], r["hkv"], r["d"], r["batch"], r["tokens"], r["dtype"]): r
            for r in load(os.path.join(out, "sdpa.jsonl"))}
    if not bench:
        print("no rk-bench rows")
        return
    dev = bench[0]["device"]
    bw = max(r["device_read_gbps"] for r in bench)
    print(f"## CUDA backend decode, {dev}\n")
    print(f"probed read bandwidth {bw:.0f} GB/s; times are medians per decode (us)\n")
    print("| heads | B | tokens | r | dtype | sparse us | dense us | SDPA us | sparse GB/s | of bw |"
          " dense of bw | t/byte ratio | vs SDPA | pruned MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    goals = {"bw85": [], "ratio10": [], "sdpa": [], "sdpa_b1": []}
    for r in bench:
        key = (r["hq"], r["hkv"], r["d"], r["batch"], r["tokens"], r["dtype"])
        s = sdpa.get(key)
        sd_us = s["sdpa_us"] if s else float("nan")
        speed = sd_us / r["sparse_us"] if s else float("nan")
        rel = r["time_ratio"] / r["byte_ratio"]
        print(f"| {r['hq']}/{r['hkv']} | {r['batch']} | {r['tokens']} | {r['r']} | {r['dtype']} |"
              f" {r['sparse_us']:.1f} | {r['dense_us']:.1f} | {sd_us:.1f} | {r['sparse_gbps']:.0f} |"
              f" {100 * r['sparse_bw_fraction']:.0f}% | {100 * r['dense_bw_fraction']:.0f}% |"
              f" {rel:.2f} | {speed:.2f}x | {r['pruned_cache_mb']:.0f} |")
        if r["pruned_cache_mb"] >= 256:
            goals["bw85"].append(r["sparse_bw_fraction"])
        goals["ratio10"].append(rel)
        if s:
            goals["sdpa"].append(speed)
            if r["batch"] == 1:
                goals["sdpa_b1"].append(speed)
    print()
    if goals["bw85"]:
        print(f"- sparse decode, pruned caches >= 256 MB: {100 * min(goals['bw85']):.0f}%"
              f"..{100 * max(goals['bw85']):.0f}% of probed read bandwidth (goal >= 85%)")
    print(f"- sparse/dense time over byte ratio: {min(goals['ratio10']):.2f}..{max(goals['ratio10']):.2f}"
          " (goal within 1.10)")
    if goals["sdpa"]:
        print(f"- speed-up over SDPA: {min(goals['sdpa']):.2f}x..{max(goals['sdpa']):.2f}x"
              f" (batch 1: {min(goals['sdpa_b1']):.2f}x..{max(goals['sdpa_b1']):.2f}x; goal > 1, >= 2 at batch 1)")


if __name__ == "__main__":
    main()
