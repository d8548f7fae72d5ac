#!/usr/bin/env python3
"""SDPA (PyTorch) at chosen shapes: argv = out.jsonl then hq,hkv,batch,tokens,dtype items."""
import json, sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from sdpa_baseline import time_sdpa
out = open(sys.argv[1], "a")
for item in sys.argv[2:]:
    hq, hkv, b, t, dt = item.split(",")
    dtype = torch.float16 if dt == "f16" else torch.bfloat16
    us, _ = time_sdpa(int(hq), int(hkv), 128, int(b), int(t), dtype)
    rec = {"hq": int(hq), "hkv": int(hkv), "batch": int(b), "tokens": int(t), "dtype": dt, "sdpa_us": us}
    print(json.dumps(rec), flush=True)
    out.write(json.dumps(rec) + "\n")
