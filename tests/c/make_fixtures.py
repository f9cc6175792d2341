"""Writes the files the C tests (tests/c/test_capi.c) read: small models saved with numrnn.save,
inputs, and the outputs numrnn computes for them in Python, plus broken files for the error
cases. Run by ctest (see CMakeLists.txt): python tests/c/make_fixtures.py FOLDER

FOLDER/manifest.txt has one line per model:  name kind T B I O V streams
(kind: features or tokens; streams: 1 if a state can carry it, 0 for bidirectional models), and
name.safetensors, name.in ([T][B][I] float32 or [T][B] int32), name.out ([T][B][O] float32).
FOLDER/hostile/ holds the damaged and hostile files of tests/hostile_files.py for fuzz_open.c,
with what numrnn does with each in Python (see hostile()).
"""
import json
import os
import shutil
import sys

import numpy as np
from safetensors.numpy import save_file

import numrnn
from numrnn.capi import open_model
from numrnn.serialize import WeightsFileError

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hostile_files import cases, originals  # noqa: E402  (tests/, shared with test_hostile_files.py)

T, B, I, H = 6, 2, 3, 5


def layers():
    """name -> layer: every cell, bidirectional, proj_size, relu without bias, batch_first, float64,
    and numrnn's LSTM variants."""
    return {
        "lstm": numrnn.LSTM(I, H, num_layers=2, seed=1),
        "gru": numrnn.GRU(I, H, seed=2),
        "rnn_relu": numrnn.RNN(I, H, nonlinearity="relu", bias=False, seed=3),
        "lstm_bi": numrnn.LSTM(I, H, num_layers=2, bidirectional=True, seed=4),
        "gru_bi": numrnn.GRU(I, H, bidirectional=True, seed=5),
        "rnn_bi": numrnn.RNN(I, H, bidirectional=True, seed=6),
        "lstm_proj": numrnn.LSTM(I, H, proj_size=2, num_layers=2, seed=7),
        "gru_batch_first": numrnn.GRU(I, H, batch_first=True, seed=8),
        "lstm_f64": numrnn.LSTM(I, H, dtype=np.float64, seed=9),
        "lstm_peephole_coupled": numrnn.LSTM(I, H, num_layers=2, peephole=True, coupled=True, seed=12),
    }


def cells():
    """name -> cell; the C interface runs a cell over a whole sequence."""
    return {"lstm_cell": numrnn.LSTMCell(I, H, peephole=True, seed=13),
            "gru_cell": numrnn.GRUCell(I, H, seed=14),
            "rnn_cell": numrnn.RNNCell(I, H, nonlinearity="relu", seed=15)}


def language_models():
    """name -> a tiny character LanguageModel with its vocabulary, as `numrnn train` saves it."""
    vocab = sorted(set("def main():\n    return 0\n"))
    models = {"lm": numrnn.LanguageModel(len(vocab), 4, cell="lstm", hidden_size=H, num_layers=2, seed=10),
              "lm_gru": numrnn.LanguageModel(len(vocab), 4, cell="gru", hidden_size=H, seed=11)}
    for lm in models.values():
        lm.metadata["vocabulary"] = json.dumps(vocab)
    return models


def taggers():
    """name -> a tiny Tagger with its vocabulary and labels, as `numrnn tag-train` saves it: per-step
    label scores from token ids; the unidirectional one streams, the bidirectional one cannot."""
    words, labels = ["<unk>", "Ada", "visited", "Oslo", "."], ["B-LOC", "B-PER", "O"]
    models = {"tagger_bi": numrnn.Tagger(len(words), len(labels), embedding_dim=4, hidden_size=H, seed=16),
              "tagger_uni": numrnn.Tagger(len(words), len(labels), embedding_dim=4, cell="gru", hidden_size=H,
                                          bidirectional=False, seed=17)}
    for tagger in models.values():
        tagger.metadata.update(vocabulary=json.dumps(words), labels=json.dumps(labels))
    return models


def write(folder, name, kind, model, inputs, outputs, vocab_size, streams, manifest):
    numrnn.save(model, os.path.join(folder, name + ".safetensors"))
    inputs.tofile(os.path.join(folder, name + ".in"))
    outputs.astype(np.float32).tofile(os.path.join(folder, name + ".out"))
    in_size = inputs.shape[2] if kind == "features" else 0
    manifest.append(f"{name} {kind} {T} {B} {in_size} {outputs.shape[2]} {vocab_size} {int(streams)}")


def main(folder):
    shutil.rmtree(folder, ignore_errors=True)   # no stale model from an earlier numrnn
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    manifest = []
    for name, layer in layers().items():
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        out, _ = layer(x.transpose(1, 0, 2) if layer.batch_first else x)
        if layer.batch_first:
            out = out.transpose(1, 0, 2)
        write(folder, name, "features", layer, x, out, 0, not layer.bidirectional, manifest)
        if name == "lstm":   # the example host's input: one time step per line, batch 1
            np.savetxt(os.path.join(folder, "lstm.txt"), x[:, 0], fmt="%.7g")
    for name, cell in cells().items():
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        state, out = None, []
        for t in range(T):
            state = cell(x[t], state)
            out.append(state[0] if isinstance(state, tuple) else state)
        write(folder, name, "features", cell, x, np.stack(out), 0, True, manifest)
    for name, lm in language_models().items():
        tokens = rng.integers(0, lm.vocab_size, (T, B)).astype(np.int32)
        logits, _ = lm(tokens)
        write(folder, name, "tokens", lm, tokens, logits, lm.vocab_size, True, manifest)
    for name, tagger in taggers().items():
        tokens = rng.integers(0, tagger.vocab_size, (T, B)).astype(np.int32)
        scores, _ = tagger(tokens)
        write(folder, name, "tokens", tagger, tokens, scores, tagger.vocab_size, not tagger.bidirectional, manifest)
    with open(os.path.join(folder, "manifest.txt"), "w") as f:
        f.write("\n".join(manifest) + "\n")

    # files that are not models (NUMRNN_E_FORMAT) or not files (NUMRNN_E_IO)
    whole = open(os.path.join(folder, "lstm.safetensors"), "rb").read()
    broken = {"truncated": whole[:len(whole) // 2], "garbage": rng.bytes(300), "empty": b"",
              "text": b"this is not a weights file\n"}
    for name, data in broken.items():
        with open(os.path.join(folder, name + ".safetensors"), "wb") as f:
            f.write(data)
    save_file({"weight": np.ones((2, 2), np.float32)}, os.path.join(folder, "foreign.safetensors"))
    os.makedirs(os.path.join(folder, "a-folder.safetensors"), exist_ok=True)

    hostile(os.path.join(folder, "hostile"))

    # a numrnn that fails to import, for the broken start-up test (NUMRNN_PYTHONPATH points here)
    package = os.path.join(folder, "broken-numrnn", "numrnn")
    os.makedirs(package, exist_ok=True)
    with open(os.path.join(package, "__init__.py"), "w") as f:
        f.write('raise ImportError("this numrnn is broken on purpose (tests/c/make_fixtures.py)")\n')


def hostile(folder):
    """Every mutation of tests/hostile_files.py as FOLDER/case_N.safetensors, and manifest.txt
    with one line per file: the code the C interface must return (what Python's open_model, the
    Python half of numrnn_model_open, does: 0, or 3 for a WeightsFileError; anything else fails
    here) and, for a file that opens, its sizes I O V."""
    os.makedirs(folder)
    lines = []
    for n, (name, data) in enumerate(cases(originals(folder), seed=1)):
        file = f"case_{n:05d}.safetensors"
        path = os.path.join(folder, file)
        with open(path, "wb") as f:
            f.write(data)
        try:
            model = open_model(path, "cpu")
            code, sizes = 0, (model.input_size, model.output_size, model.vocab_size)
        except WeightsFileError:
            code, sizes = 3, (0, 0, 0)
        lines.append(f"{code} {sizes[0]} {sizes[1]} {sizes[2]} {file} {''.join(c if c.isalnum() or c in '/_=.-' else '_' for c in name)}")
    with open(os.path.join(folder, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/c/make_fixtures.py FOLDER")
    main(sys.argv[1])
