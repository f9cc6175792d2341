"""Sampling text from a character LanguageModel, one character at a time with the state carried.
Deterministic for a given seed. Not here: loading the model or printing (cli.py)."""
import numpy as np

from numrnn.module import as_numpy


def sample(model, vocab, prompt, length, temperature=1.0, top_k=0, seed=None):
    """Yield `length` characters following `prompt` (a non-empty string of vocabulary characters).
    temperature > 0 divides the logits; top_k > 0 keeps only the k most likely characters."""
    if not prompt:
        raise ValueError("prompt must hold at least one character")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    rng = np.random.default_rng(seed)
    model.eval()
    ids = vocab.encode(prompt)
    logits, state = model(ids[:, None], None)         # [T, 1, V]
    for _ in range(length):
        z = as_numpy(logits[-1, 0]).astype(np.float64) / temperature     # [V]
        if 0 < top_k < z.size:
            z[z < np.partition(z, -top_k)[-top_k]] = -np.inf
        p = np.exp(z - z.max())
        nxt = int(rng.choice(z.size, p=p / p.sum()))
        yield vocab.chars[nxt]
        logits, state = model(np.array([[nxt]]), state)
