#!/usr/bin/env python3
"""Tables from rk-bench --json lines, as bench/gpu/opencl_run.sh writes them.

A line {"tune": "..."} names the RK_OPENCL_TUNE override of the runs after it.
  opencl_summary.py table FILE.jsonl...   aligned table (or markdown with --md)
  opencl_summary.py best FILE.jsonl       the tune string with the lowest sparse + dense time
                                          on the batch-8 shape (the 1 GB cache of the sweep)
"""
import json
import sys


def records(path):
    tune = ""
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        j = json.loads(line)
        if set(j) == {"tune"}:
            tune = j["tune"]
            continue
        j["tune"] = tune or "default"
        yield j


COLS = [("tune", "{:<16}"), ("dtype", "{:<5}"), ("heads", "{:>6}"), ("r", "{:>4}"),
        ("batch", "{:>5}"), ("tokens", "{:>7}"), ("dense MB", "{:>9.1f}"), ("sparse us", "{:>10.1f}"),
        ("dense us", "{:>10.1f}"), ("sparse GB/s", "{:>12.0f}"), ("dense GB/s", "{:>11.0f}"),
        ("sparse bw", "{:>10.2f}"), ("dense bw", "{:>9.2f}"), ("time ratio", "{:>11.3f}"),
        ("byte ratio", "{:>11.3f}")]


def row(j):
    return [j["tune"], j["dtype"], f"{j['hq']}/{j['hkv']}", j["r"], j["batch"], j["tokens"],
            j["dense_bytes"] / 1e6, j["sparse_us"], j["dense_us"], j["sparse_gbps"], j["dense_gbps"],
            j["sparse_bw_fraction"], j["dense_bw_fraction"], j["time_ratio"], j["byte_ratio"]]


def table(paths, md):
    names = [c[0] for c in COLS]
    if md:
        print("| " + " | ".join(names) + " |")
        print("|" + "---|" * len(names))
    else:
        print("".join(f"{n:>{max(len(n), 5) + 1}}" if i else f"{n:<16}" for i, n in enumerate(names)))
    probes = set()
    for path in paths:
        for j in records(path):
            if "failed" in j:
                print("FAILED:", j["failed"])
                continue
            probes.add(round(j["device_read_gbps"], 1))
            vals = row(j)
            if md:
                print("| " + " | ".join(fmt.format(v).strip() for (n, fmt), v in zip(COLS, vals)) + " |")
            else:
                print(" ".join(fmt.format(v) for (n, fmt), v in zip(COLS, vals)))
    print(f"device read bandwidth (probe), GB/s: {sorted(p for p in probes if p > 0)}")


def best(path):
    cand = [(j["sparse_us"] + j["dense_us"], j["tune"]) for j in records(path)
            if "failed" not in j and j.get("batch") == 8]
    if cand:
        t = min(cand)[1]
        print("" if t == "default" else t)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("table", "best"):
        sys.exit(__doc__)
    if sys.argv[1] == "best":
        best(sys.argv[2])
    else:
        md = "--md" in sys.argv
        table([p for p in sys.argv[2:] if p != "--md"], md)
