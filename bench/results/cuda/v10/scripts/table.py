import json, sys, statistics as st
rows = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    k = (r['hq'], r['hkv'], r['batch'], r['tokens'], r['r'], r['dtype'])
    rows.setdefault(k, {}).setdefault(r['variant'], []).append(r['sparse_us'])
vs = []
for v in rows.values():
    for n in v:
        if n not in vs: vs.append(n)
print("| heads | B | tokens | r | dtype | " + " | ".join(f"{n} us" for n in vs) + " | vs base |")
print("|---|---|---|---|---|" + "---|" * (len(vs) + 1))
for k, v in rows.items():
    b = st.median(v['base']) if 'base' in v else None
    cells = [(" / ".join(f"{x:.1f}" for x in v[n]) if n in v else "") for n in vs]
    rel = " ".join(f"{n} {st.median(v[n]) / b:.3f}" for n in vs if n in v and n != 'base' and b)
    print(f"| {k[0]}/{k[1]} | {k[2]} | {k[3]} | {k[4]} | {k[5]} | " + " | ".join(cells) + f" | {rel} |")
