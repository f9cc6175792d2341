"""Labelled sequences for a Tagger: CoNLL files, the built-in labelled corpus, word and label
vocabularies, padded batches with their lengths, and the scores (token accuracy, and the CoNLL
entity-level precision, recall and F1 for BIO/IOBES labels, per label type too).

A sentence is a pair (tokens, labels) of equal-length lists of strings. Not here: the model
(tagger.py) and the training loop (tag_trainer.py).
"""
import io
import json
import keyword
import os
import tokenize

import numpy as np

from numrnn import data
from numrnn.data import DataError

UNK = "<unk>"               # word id 0: every word seen fewer than min_count times, and unseen words
DOCSTART = "-DOCSTART-"
BUILTIN_TAG_CAP = 400_000   # characters of the built-in corpus a tagger trains on
BUILTIN_LINE_CAP = 120      # a built-in sentence: whole source lines, at most this many characters


def read_conll(path, labelled=True):
    """Sentences of a CoNLL-style file (see parse_conll)."""
    if not os.path.isfile(path):
        raise DataError(f"no such file: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text ({e})") from None
    return parse_conll(text, path, labelled)


def parse_conll(text, where, labelled=True):
    """Sentences of CoNLL-style text: one token per line (first column), its label in the last
    column, a blank line between sentences, -DOCSTART- lines skipped. labelled=False reads text
    whose lines may hold the token only: a sentence's labels are then None."""
    sentences, tokens, labels = [], [], []
    for number, line in enumerate(text.splitlines() + [""], 1):
        columns = line.split()
        if columns and columns[0] == DOCSTART:
            columns = []
        if not columns:
            if tokens:
                sentences.append((tokens, labels))
                tokens, labels = [], []
            continue
        if len(columns) < 2 and labelled:
            raise DataError(f"{where} line {number}: expected a token and its label (whitespace-separated), "
                            f"got {line.strip()[:60]!r}")
        tokens.append(columns[0])
        labels.append(columns[-1] if len(columns) > 1 else None)
    if not sentences:
        raise DataError(f"{where} holds no sentences (one token per line, a blank line between sentences)")
    for i, (tokens, labels) in enumerate(sentences):
        if None in labels:
            if any(x is not None for x in labels):
                raise DataError(f"{where}: sentence {i + 1} has some tokens with a label and some without")
            sentences[i] = (tokens, None)
    return sentences


def builtin_sentences(cap=BUILTIN_TAG_CAP):
    """The language model's built-in corpus (data.builtin_corpus) as a character tagging task (see
    character_labels), cut into sentences by text_sentences."""
    text = data.builtin_corpus(cap)
    return text_sentences(text, character_labels(text))


def text_sentences(text, labels=None):
    """Characters of `text` (and their labels, or None) as sentences: runs of whole lines of at most
    BUILTIN_LINE_CAP characters (a longer line is cut)."""
    pieces, start, end = [], 0, 0      # a piece: (start, end) of one sentence in `text`
    for line_end in [i + 1 for i, c in enumerate(text) if c == "\n"] + [len(text)]:
        if line_end - start > BUILTIN_LINE_CAP and end > start:
            pieces.append((start, end))
            start = end
        while line_end - start > BUILTIN_LINE_CAP:
            pieces.append((start, start + BUILTIN_LINE_CAP))
            start += BUILTIN_LINE_CAP
        end = line_end
    if end > start:
        pieces.append((start, end))
    return [(list(text[a:b]), None if labels is None else labels[a:b]) for a, b in pieces]


def token_class(tok):
    """The class of a tokenize token, or None for the layout tokens (newlines, indentation)."""
    if tok.type == tokenize.NAME:
        return "keyword" if keyword.iskeyword(tok.string) else "name"
    if tok.type == tokenize.NUMBER:
        return "number"
    if tok.type == tokenize.STRING or tokenize.tok_name[tok.type].startswith("FSTRING"):
        return "string"
    if tok.type == tokenize.COMMENT:
        return "comment"
    if tok.type in (tokenize.OP, tokenize.ERRORTOKEN) and tok.string.strip():
        return "operator"
    return None


def character_labels(text, strict=True):
    """One label per character of Python source `text`: the class of the token it belongs to
    (token_class) in BIO form, B-<class> on a token's first character, I-<class> on the rest, O on
    whitespace, newlines and indentation. Text that does not tokenize as Python raises DataError,
    or gives None when not strict."""
    line_starts = np.concatenate([[0], np.cumsum([len(line) for line in text.splitlines(keepends=True)])])
    labels = ["O"] * len(text)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            kind = token_class(tok)
            if kind is None:
                continue
            start = line_starts[tok.start[0] - 1] + tok.start[1]
            end = line_starts[tok.end[0] - 1] + tok.end[1]
            labels[start] = "B-" + kind
            labels[start + 1:end] = ["I-" + kind] * (end - start - 1)
    except (tokenize.TokenError, SyntaxError) as e:
        if not strict:
            return None
        raise DataError(f"the text does not tokenize as Python ({e})") from None
    return labels


class Vocab:
    """Strings <-> ids; id = index in `items`."""

    def __init__(self, items):
        self.items = list(items)
        self.index = {w: i for i, w in enumerate(self.items)}

    @classmethod
    def of_words(cls, sentences, min_count=1):
        """UNK first, then the words seen at least min_count times, most frequent first (ties in
        first-seen order)."""
        counts = {}
        for tokens, _ in sentences:
            for w in tokens:
                counts[w] = counts.get(w, 0) + 1
        return cls([UNK] + [w for w, n in sorted(counts.items(), key=lambda kv: -kv[1])
                            if n >= min_count and w != UNK])

    @classmethod
    def of_labels(cls, sentences):
        return cls(sorted({label for _, labels in sentences for label in labels}))

    @classmethod
    def from_json(cls, text):
        return cls(json.loads(text))

    def to_json(self):
        return json.dumps(self.items)

    def __len__(self):
        return len(self.items)

    def words(self, tokens):
        """Word ids, UNK (0) for words not in the vocabulary."""
        return [self.index.get(w, 0) for w in tokens]

    def labels(self, labels, where):
        unknown = sorted(set(labels) - self.index.keys())
        if unknown:
            raise DataError(f"{where}: label(s) not in the model's label set {self.items}: "
                            + ", ".join(unknown[:5]))
        return [self.index[x] for x in labels]


def encode(sentences, words, labels, where):
    """[(word ids [n], label ids [n] or None)] for a list of sentences."""
    return [(np.array(words.words(toks), np.int64),
             None if labs is None else np.array(labels.labels(labs, where), np.int64)) for toks, labs in sentences]


def pad(encoded):
    """Sentences of different lengths as one batch: (ids [T, B], label ids [T, B] (or None),
    lengths [B]); padding is 0 and never read by the model past each length."""
    lengths = np.array([len(w) for w, _ in encoded], np.int64)
    T, B = int(lengths.max()), len(encoded)
    ids = np.zeros((T, B), np.int64)
    targets = np.zeros((T, B), np.int64) if all(y is not None for _, y in encoded) else None
    for b, (w, y) in enumerate(encoded):
        ids[:len(w), b] = w
        if targets is not None:
            targets[:len(w), b] = y
    return ids, targets, lengths


def _split(label):
    """(prefix, type) of a BIO/IOBES label: "B-PER" -> ("B", "PER"), "O" -> ("O", "")."""
    if label == "O":
        return "O", ""
    prefix, _, kind = label.partition("-")
    return prefix, kind


def is_chunk_scheme(labels):
    """Whether every label is O or <B|I|E|S>-<type>, so that entity scores apply."""
    return all(x == "O" or (x[:2] in ("B-", "I-", "E-", "S-") and len(x) > 2) for x in labels)


def chunks(labels):
    """The entities of one sentence's labels as a set of (type, start, end), end exclusive, read as
    conlleval reads BIO and IOBES: an entity starts at B or S, or at I/E after O, after an entity
    that ended, or after a different type; it ends before B, S, O, or a different type, and after E or S."""
    found, start, prev, prev_kind = set(), None, "O", ""
    for i, label in enumerate(list(labels) + ["O"]):
        tag, kind = _split(label)
        ended = prev in ("E", "S") or (prev in ("B", "I") and (tag in ("B", "S", "O") or kind != prev_kind))
        if start is not None and ended:
            found.add((prev_kind, start, i))
            start = None
        begins = tag in ("B", "S") or (tag in ("I", "E") and (prev in ("E", "S", "O") or kind != prev_kind))
        if begins:
            start = i
        prev, prev_kind = tag, kind
    return found


def _prf(correct, predicted, gold):
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    return dict(precision=p, recall=r, f1=2 * p * r / (p + r) if p + r else 0.0,
                predicted=predicted, gold=gold, correct=correct)


def score(gold, predicted):
    """gold, predicted: lists of label sequences (strings). Returns dict(accuracy, tokens) and, when
    every gold label is O or B/I/E/S-<type>, the CoNLL entity scores: "entities" (overall
    precision, recall, f1 and counts) and "per_type" (type -> the same)."""
    pairs = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
    result = dict(tokens=len(pairs), accuracy=sum(g == p for g, p in pairs) / len(pairs) if pairs else 0.0)
    if not is_chunk_scheme([g for g, _ in pairs]):
        return result
    counts = {}     # type -> [correct, predicted, gold]
    for gs, ps in zip(gold, predicted):
        g, p = chunks(gs), chunks(ps)
        for kind, *_ in g:
            counts.setdefault(kind, [0, 0, 0])[2] += 1
        for kind, *_ in p:
            counts.setdefault(kind, [0, 0, 0])[1] += 1
        for kind, *_ in g & p:
            counts[kind][0] += 1
    result["per_type"] = {k: _prf(*counts[k]) for k in sorted(counts)}
    result["entities"] = _prf(*(sum(c[i] for c in counts.values()) for i in range(3)))
    return result


def report(result):
    """The scores as text lines, per label type sorted by name (conlleval's layout)."""
    lines = [f"accuracy {100 * result['accuracy']:.2f}% over {result['tokens']} tokens"]
    if "entities" in result:
        e = result["entities"]
        lines.append(f"entities: precision {100 * e['precision']:.2f}%  recall {100 * e['recall']:.2f}%  "
                     f"F1 {100 * e['f1']:.2f}  ({e['gold']} in the reference, {e['predicted']} found, "
                     f"{e['correct']} correct)")
        width = max(len(k) for k in result["per_type"]) if result["per_type"] else 0
        for kind, s in result["per_type"].items():
            lines.append(f"  {kind:<{width}}  precision {100 * s['precision']:6.2f}%  recall "
                         f"{100 * s['recall']:6.2f}%  F1 {100 * s['f1']:6.2f}  ({s['gold']} / {s['predicted']} "
                         f"/ {s['correct']})")
    return lines
