"""Text data for character language models: the corpus, its vocabulary, the train/validation split
and the two minibatch schemes (random and sequential partitioning).

Batches are a pure function of (seed, step), so a resumed run needs only the step to read the same
data as a straight one. Not here: the training loop (trainer.py).
"""
import hashlib
import json
import os
import sysconfig

import numpy as np

BUILTIN = "builtin"
BUILTIN_CAP = 2_000_000      # characters; enough for a few minutes of training on 2 cores
VAL_FRACTION = 0.05
_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


class DataError(ValueError):
    """The text cannot be used for training (missing, empty, not UTF-8, too short)."""


def builtin_corpus(cap=BUILTIN_CAP):
    """The running interpreter's standard-library .py sources: test folders left out, ASCII files
    only (a small vocabulary), sorted by path, whole files until `cap` characters."""
    root = sysconfig.get_paths()["stdlib"]
    paths = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        paths += [os.path.join(folder, f) for f in files
                  if f.endswith(".py") and not f.startswith("_sysconfigdata")]   # machine-specific
    parts, size = [], 0
    for path in sorted(paths, key=lambda p: os.path.relpath(p, root)):
        with open(path, "rb") as f:
            raw = f.read()
        if not raw.isascii():
            continue
        parts.append(raw.decode("ascii"))
        size += len(raw)
        if size >= cap:
            break
    if not parts:
        raise DataError(f"no Python sources found under {root} for the built-in corpus; use --data PATH")
    return "".join(parts)


def read_text(path):
    """A UTF-8 text file, or the built-in corpus when path is "builtin"."""
    if path == BUILTIN:
        return builtin_corpus()
    if os.path.isdir(path):
        raise DataError(f"--data: {path} is a folder; give a UTF-8 text file")
    if not os.path.isfile(path):
        raise DataError(f"--data: no such file: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"--data: {path} is not UTF-8 text ({e})") from None
    if not text:
        raise DataError(f"--data: {path} is empty")
    return text


def fingerprint(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Vocabulary:
    """Characters <-> ids; ids follow the sorted order of the characters."""

    def __init__(self, chars):
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(text)))

    @classmethod
    def from_json(cls, s):
        return cls(json.loads(s))

    def to_json(self):
        return json.dumps(self.chars)

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        missing = sorted(set(text) - self.index.keys())
        if missing:
            raise DataError("characters not in the model's vocabulary: "
                            + ", ".join(repr(c) for c in missing[:10]) + (" ..." if len(missing) > 10 else ""))
        return np.array([self.index[c] for c in text], np.int64)

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


def split(ids, val_fraction=VAL_FRACTION):
    """(train ids, validation ids): the validation split is the tail of the text."""
    n_val = int(len(ids) * val_fraction)
    return ids[:len(ids) - n_val], ids[len(ids) - n_val:]


class Batches:
    """x, y [T, B] ids (y = x shifted by one), and whether the RNN state must start fresh, for any step."""

    def __init__(self, ids, seq_len, batch_size, seed):
        self.ids, self.T, self.B, self.seed = ids, seq_len, batch_size, seed
        if self.steps_per_epoch() < 1:
            raise DataError(f"the training text ({len(ids)} characters) is too short for one batch of "
                            f"--batch-size {batch_size} x --seq-len {seq_len}; use a longer text or smaller sizes")

    def _epoch(self, step):
        """(rng of the step's epoch, index of the step inside it)."""
        epoch, i = divmod(step, self.steps_per_epoch())
        return np.random.default_rng([self.seed, epoch]), i


class RandomBatches(Batches):
    """Random partitioning: each epoch cuts the text at a random offset into length-T pieces and
    shuffles them; the state starts fresh at every batch."""

    def steps_per_epoch(self):
        # pieces counted as for the largest offset (T - 1), so every epoch has the same length
        return (len(self.ids) - self.T) // self.T // self.B

    def batch(self, step):
        rng, i = self._epoch(step)
        offset = int(rng.integers(self.T))
        starts = offset + self.T * rng.permutation((len(self.ids) - self.T) // self.T)[i * self.B:(i + 1) * self.B]
        cols = starts[None, :] + np.arange(self.T)[:, None]      # [T, B]
        return self.ids[cols], self.ids[cols + 1], True


class SequentialBatches(Batches):
    """Sequential partitioning: each epoch splits the text (from a random offset) into B parallel
    streams read T at a time, so batch k+1 continues batch k and the state is carried across
    batches (cut from the graph: truncated BPTT); it starts fresh at each epoch."""

    def _columns(self):
        return (len(self.ids) - self.T) // self.B

    def steps_per_epoch(self):
        return self._columns() // self.T

    def batch(self, step):
        rng, i = self._epoch(step)
        offset = int(rng.integers(self.T))
        n = self._columns()
        streams = offset + n * np.arange(self.B)                  # [B] start of each stream
        cols = streams[None, :] + i * self.T + np.arange(self.T)[:, None]     # [T, B]
        return self.ids[cols], self.ids[cols + 1], i == 0


SAMPLING = {"random": RandomBatches, "sequential": SequentialBatches}
