"""Sampling text from a character LanguageModel, one character at a time with the state carried:
the one sampling implementation behind LanguageModel.generate and `numrnn generate`.
Deterministic for a given seed. Not here: loading the model or printing (cli.py).

How a next character is drawn from the logits z [V]:
  temperature 0    greedy: argmax(z) (the first one on a tie); top_k and top_p play no part
  temperature t>0  p = softmax(z / t), then
  top_k k > 0      keep the k likeliest (ties with the k-th kept too), renormalise
  top_p p < 1      nucleus: keep the smallest set of likeliest tokens whose mass is >= p, renormalise
"""
import numpy as np

from numrnn.device import as_numpy

DEFAULT_TEMPERATURE = 0.8     # the same default as the CLI and the C example host


def check_options(temperature, top_k, top_p):
    """ValueError naming the first option out of range."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 = all), got {top_k!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be a number > 0 and <= 1 (1 = all), got {top_p!r}")


def probabilities(logits, temperature=DEFAULT_TEMPERATURE, top_k=0, top_p=1.0):
    """The distribution the next token is drawn from: logits [V] -> probabilities [V] (float64,
    summing to 1; zero outside the kept tokens). Temperature 0 gives the one-hot of the argmax."""
    z = np.asarray(logits, np.float64)                # [V]
    if temperature == 0:
        p = np.zeros(z.size)
        p[int(np.argmax(z))] = 1.0
        return p
    z = z / temperature
    if 0 < top_k < z.size:
        z[z < np.partition(z, -top_k)[-top_k]] = -np.inf
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p < 1:
        order = np.argsort(-p, kind="stable")          # likeliest first
        mass = np.cumsum(p[order])
        keep = int(np.searchsorted(mass, top_p)) + 1   # the first prefix whose mass reaches top_p
        p[order[keep:]] = 0.0
        p /= p.sum()
    return p


def pick(logits, temperature, top_k, top_p, rng):
    """One token id drawn from probabilities(logits, ...) with `rng` (a numpy Generator); greedy
    (temperature 0) draws nothing from rng."""
    p = probabilities(logits, temperature, top_k, top_p)
    return int(np.argmax(p)) if temperature == 0 else int(rng.choice(p.size, p=p))


def sample(model, vocab, prompt, length, temperature=DEFAULT_TEMPERATURE, top_k=0, top_p=1.0, seed=None):
    """Yield `length` characters following `prompt` (a non-empty string of vocabulary characters).
    `vocab` is a numrnn.data.Vocabulary (the model's own: model.vocabulary); the options are those
    of probabilities()."""
    if not prompt:
        raise ValueError("prompt must hold at least one character")
    check_options(temperature, top_k, top_p)
    ids = vocab.encode(prompt)
    rng = np.random.default_rng(seed)
    model.eval()
    logits, state = model(ids[:, None], None)         # [T, 1, V]
    for _ in range(length):
        nxt = pick(as_numpy(logits[-1, 0]), temperature, top_k, top_p, rng)
        yield vocab.chars[nxt]
        logits, state = model(np.array([[nxt]]), state)
