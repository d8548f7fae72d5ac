#!/usr/bin/env python3
"""Summarize RK_DEC_TRACE files (see decode.cuh): phases per warp in cycles, timeline in ns."""
import sys, statistics as st

def ana(path):
    hdr = None; W = []; C = []
    for line in open(path):
        t = line.split()
        if t[0] == '#':
            hdr = dict(zip(t[1::2], map(int, t[2::2])))
        elif t[0] == 'W':
            W.append(list(map(int, t[2:])))
        elif t[0] == 'C':
            C.append(list(map(int, t[2:])))
    nt = hdr['nt']; nw = nt // 32
    W = [w for w in W if w[1]]
    if not W:
        print(path, 'empty'); return
    g0 = min(w[0] for w in W)
    def q(v):
        v = sorted(v); return f"med {st.median(v):7.0f} p90 {v[int(0.9*(len(v)-1))]:7.0f} max {v[-1]:7.0f}"
    print(f"== {path.split('/')[-1]}: S {hdr['S']} gy {hdr['gy']} B {hdr['B']} nt {nt}, {len(W)} warps")
    wait = [w[2]-w[1] for w in W]; pro = [w[3]-w[2] for w in W if w[3]]
    loop = [w[4]-w[3] for w in W if w[3]]; ew = [w[13]-w[4] for w in W if w[13] and w[4]]
    fin = [w[5]-w[13] for w in W if w[13]]; tot = [w[5]-w[1] for w in W]
    print("  cycles  wait      ", q(wait)); print("  cycles  prologue  ", q(pro)); print("  cycles  tile loop ", q(loop))
    print("  cycles  wait2     ", q(ew)); print("  cycles  finish    ", q(fin)); print("  cycles  total     ", q(tot))
    nh = sum(w[7] for w in W); nm = sum(w[11] for w in W)
    if nh: print(f"  hot tiles {nh}: load+kdot {sum(w[8] for w in W)/nh:6.0f}  softmax {sum(w[9] for w in W)/(nh+nm):6.0f}  pv {sum(w[10] for w in W)/(nh+nm):6.0f} (per tile, cycles)")
    if nm: print(f"  mixed tiles {nm}: logits {sum(w[12] for w in W)/nm:6.0f} cycles")
    ends = [w[6]-g0 for w in W]; ents = [w[0]-g0 for w in W]
    print(f"  ns: decode entries {min(ents)}..{max(ents)}, ends med {st.median(ends):.0f} max {max(ends)}")
    # critical warp
    cw = max(range(len(W)), key=lambda i: W[i][6])
    w = W[cw]; blk = cw // nw
    print(f"  last warp {cw} (block {blk}, split {blk % hdr['S']}): wait {w[2]-w[1]} pro {w[3]-w[2]} loop {w[4]-w[3]} wait2 {w[13]-w[4]} fin {w[5]-w[13]} tiles {w[7]}+{w[11]}m")
    # per-split loop cycles (max over warps)
    per = {}
    for i, w in enumerate(W):
        s = (i // nw) % hdr['S']; per.setdefault(s, []).append(w[4]-w[3])
    sl = sorted(((max(v), s) for s, v in per.items()), reverse=True)[:4]
    print("  slowest splits (loop cycles):", sl)
    if C:
        C = [c for c in C if c[0]]
        print(f"  ns: combine entries {min(c[0] for c in C)-g0}..{max(c[0] for c in C)-g0}, "
              f"released {min(c[1] for c in C)-g0}..{max(c[1] for c in C)-g0}, ends max {max(c[2] for c in C)-g0}; "
              f"combine body cycles {q([c[5]-c[4] for c in C])}")

for p in sys.argv[1:]:
    ana(p)
