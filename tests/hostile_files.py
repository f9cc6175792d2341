"""Damaged and hostile weights files, for the fuzz tests of loading from Python
(tests/test_hostile_files.py) and from C (tests/c/make_fixtures.py writes them, tests/c/fuzz_open.c
opens them through libnumrnn.so).

originals(folder) saves one file of every kind numrnn writes; cases(originals, seed) yields
(name, bytes) mutations of them: truncations, flipped bytes, rewritten header fields (length,
dtype, shape, offsets, entries), rewritten configuration values (huge, negative, zero, wrong
type, NaN, strings, nested), other metadata (format, type, vocabulary, training data), and
contradictory shapes in otherwise valid files. Deterministic for a given seed.
"""
import json
import os
import struct

import numpy as np
from safetensors.numpy import save as safetensors_bytes

import numrnn
from numrnn.checkpoint import save_checkpoint

I, H = 3, 4


def blocks():
    """name -> a block of every kind numrnn saves (layers with each option, cells, Linear,
    Embedding, LanguageModel, Tagger)."""
    lm = numrnn.LanguageModel(6, 3, cell="lstm", hidden_size=H, num_layers=2, proj_size=2, seed=7)
    lm.metadata["vocabulary"] = json.dumps(list("abcdef"))
    tagger = numrnn.Tagger(5, 3, embedding_dim=2, hidden_size=H, num_layers=2, seed=11)
    tagger.metadata.update(vocabulary=json.dumps(list("<vwxy")), labels=json.dumps(["B-X", "I-X", "O"]))
    return {
        "rnn": numrnn.RNN(I, H, num_layers=2, nonlinearity="relu", seed=1),
        "gru_bi": numrnn.GRU(I, H, bidirectional=True, bias=False, seed=2),
        "lstm_proj_bi": numrnn.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=2, batch_first=True, seed=3),
        "lstm_variants_f64": numrnn.LSTM(I, H, peephole=True, coupled=True, dtype=np.float64, seed=4),
        "rnn_cell": numrnn.RNNCell(I, H, seed=5),
        "gru_cell": numrnn.GRUCell(I, H, bias=False, seed=5),
        "lstm_cell": numrnn.LSTMCell(I, H, peephole=True, seed=6),
        "linear": numrnn.Linear(I, H, seed=8),
        "embedding": numrnn.Embedding(5, I, seed=9),
        "lm": lm,
        "tagger": tagger,
    }


def originals(folder):
    """Save every kind of file into `folder` (a training checkpoint too); returns name -> path."""
    paths = {}
    for name, block in blocks().items():
        paths[name] = os.path.join(folder, name + ".safetensors")
        numrnn.save(block, paths[name])
    lm = numrnn.LanguageModel(6, 3, cell="gru", hidden_size=H, seed=10)
    lm.metadata["vocabulary"] = json.dumps(list("abcdef"))
    optimizer = numrnn.optim.Adam(lm.blocks)
    optimizer.step()                       # gives the optimizer state that a checkpoint carries
    config = dict(data="corpus.txt", cell="gru", hidden_size=H, num_layers=1, embedding_dim=3, dropout=0.0,
                  proj_size=0, seq_len=8, batch_size=2, steps=10, lr=3e-3, optimizer="adam", clip=1.0,
                  sampling="random", eval_every=5, seed=0, fingerprint="0" * 64)
    progress = dict(step=5, loss_sum=1.0, loss_count=5, elapsed_s=0.5, val_loss=1.7)
    paths["checkpoint"] = os.path.join(folder, "checkpoint.safetensors")
    save_checkpoint(paths["checkpoint"], lm, optimizer, np.zeros((1, 2, H), np.float32), progress, config)
    return paths


def split(data):
    """(header dict, data bytes) of a safetensors file."""
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header, data, length=None):
    """A safetensors file from a header dict (or raw JSON bytes) and the data bytes; `length`
    overrides the header length field."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


# configuration values a file can hold: huge, negative, zero, of every wrong JSON type
HOSTILE_VALUES = [10**12, 100000, 30000, 10**6, 10**8, 2**63, 10**400, -1, 0, 1.5, float("nan"), float("inf"),
                  "4", "", None, True, [], [4], {"a": 1}, "x" * 2000]


def _with_meta(original, **changes):
    """The file with metadata entries replaced (None deletes one); raw JSON text goes in as is."""
    header, data = split(original)
    meta = dict(header.get("__metadata__", {}))
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    header["__metadata__"] = meta
    return join(header, data)


def _tensor_names(header):
    return sorted(k for k in header if k != "__metadata__")


def cases(paths, seed=0):
    """Yield (case name, file bytes) for every original in `paths` (name -> path)."""
    rng = np.random.default_rng(seed)
    for kind, path in sorted(paths.items()):
        with open(path, "rb") as f:
            original = f.read()
        header, data = split(original)
        header_end = 8 + struct.unpack("<Q", original[:8])[0]
        meta = header["__metadata__"]
        config = json.loads(meta["config"])
        names = _tensor_names(header)

        # truncations: inside the length field, the header and the data, and one byte short
        for n in sorted({0, 5, 8, header_end // 2, header_end - 1, header_end, len(original) - 1,
                         int(rng.integers(header_end, len(original)))}):
            yield f"{kind}/truncated_{n}", original[:n]
        yield f"{kind}/extra_byte", original + b"\0"
        # flipped bytes: anywhere in the file (header bytes break its JSON or change a value)
        for _ in range(4):
            damaged = bytearray(original)
            at = int(rng.integers(0, len(original)))
            damaged[at] ^= int(rng.integers(1, 256))
            yield f"{kind}/flip_{at}", bytes(damaged)
        # the header length field
        for length in (0, 1, header_end, len(original), 2**32, 2**63, 2**64 - 1):
            yield f"{kind}/header_length_{length}", join(original[8:header_end], data, length)
        # one tensor entry rewritten
        victim = names[int(rng.integers(0, len(names)))]
        entry = header[victim]
        rewrites = {
            "dtype_f16": dict(entry, dtype="F16"), "dtype_i32": dict(entry, dtype="I32"),
            "dtype_bool": dict(entry, dtype="BOOL"), "dtype_bf16": dict(entry, dtype="BF16"),
            "dtype_unknown": dict(entry, dtype="Q7"),
            "shape_huge": dict(entry, shape=[2**40, 2**40]), "shape_negative": dict(entry, shape=[-1]),
            "shape_flat": dict(entry, shape=[int(np.prod(entry["shape"]))]),
            "shape_string": dict(entry, shape="4"),
            "offsets_past_end": dict(entry, data_offsets=[0, len(data) + 4]),
            "offsets_reversed": dict(entry, data_offsets=entry["data_offsets"][::-1]),
            "offsets_overlap": dict(entry, data_offsets=[0, entry["data_offsets"][1] - entry["data_offsets"][0]]),
            "offsets_float": dict(entry, data_offsets=[float(v) for v in entry["data_offsets"]]),
            "not_an_object": [1, 2, 3],
        }
        for what, value in rewrites.items():
            yield f"{kind}/{victim}_{what}", join(dict(header, **{victim: value}), data)
        yield f"{kind}/{victim}_removed", join({k: v for k, v in header.items() if k != victim}, data)
        yield f"{kind}/header_not_an_object", join(b"[" + json.dumps(header).encode() + b"]", data)
        yield f"{kind}/header_deeply_nested", join(b"[" * 100000 + b"]" * 100000, data)
        yield f"{kind}/metadata_not_strings", join(dict(header, __metadata__={"format": 1}), data)

        # configuration values, one field at a time, plus unknown, missing and malformed ones
        for field in sorted(config):
            for value in HOSTILE_VALUES:
                text = json.dumps(dict(config, **{field: value}))
                yield f"{kind}/config_{field}={str(value)[:12]}", _with_meta(original, config=text)
        yield f"{kind}/config_unknown_field", _with_meta(original, config=json.dumps(dict(config, device="cuda")))
        for what, text in {"empty_object": "{}", "list": "[1, 2]", "number": "4", "invalid": "{input_size: 3", "empty": "",
                           "nested": "[" * 100000 + "]" * 100000, "long_int": "9" * 5000,
                           "nan": json.dumps(dict(config, **{sorted(config)[0]: float("nan")}))}.items():
            yield f"{kind}/config_{what}", _with_meta(original, config=text)
        yield f"{kind}/config_removed", _with_meta(original, config=None)

        # the other metadata
        for fmt in ("pt", "numrnn/2", "", None):
            yield f"{kind}/format_{fmt}", _with_meta(original, format=fmt)
        for typ in ("LSTM", "GRU", "LanguageModel", "Linear", "Module", "", None):
            yield f"{kind}/type_{typ}", _with_meta(original, type=typ)
        if "vocabulary" in meta:
            for what, text in {"short": json.dumps(list("abc")), "numbers": json.dumps(list(range(6))),
                               "repeated": json.dumps(list("aabcde")), "invalid": "[\"a\"",
                               "object": "{}"}.items():
                yield f"{kind}/vocabulary_{what}", _with_meta(original, vocabulary=text)
        if "training_config" in meta:
            tc = json.loads(meta["training_config"])
            for field, value in (("hidden_size", 10**6), ("num_layers", 10**12), ("cell", "lstm"),
                                 ("embedding_dim", -1), ("hidden_size", "4")):
                yield f"{kind}/training_config_{field}={value}", _with_meta(
                    original, training_config=json.dumps(dict(tc, **{field: value})))
            yield f"{kind}/training_config_invalid", _with_meta(original, training_config="{")
            ts = json.loads(meta["trainer_state"])
            for what, value in {"step": dict(ts, step=-1), "optimizer_state": dict(ts, optimizer_state="x"),
                                "dropout_rng": dict(ts, dropout_rng=[1]), "list": [ts],
                                "rng_state": dict(ts, dropout_rng=dict(ts["dropout_rng"], state="x")),
                                "rng_kind": dict(ts, dropout_rng=dict(ts["dropout_rng"], bit_generator="MT19937"))}.items():
                yield f"{kind}/trainer_state_{what}", _with_meta(original, trainer_state=json.dumps(value))

        # contradictory shapes in a valid file: one tensor replaced by one of another shape
        tensors = {k: np.frombuffer(data[header[k]["data_offsets"][0]:header[k]["data_offsets"][1]],
                                    {"F32": np.float32, "F64": np.float64}[header[k]["dtype"]]).reshape(header[k]["shape"])
                   for k in names}
        for what, array in {"bigger": np.zeros(tuple(s + 1 for s in tensors[victim].shape), tensors[victim].dtype),
                            "transposed": tensors[victim].T.copy(), "empty": tensors[victim][:0],
                            "float16": tensors[victim].astype(np.float16)}.items():
            yield f"{kind}/{victim}_{what}", safetensors_bytes(dict(tensors, **{victim: array}), metadata=meta)
        # a harmless change: the same file written again with the tensors in another order
        yield f"{kind}/rewritten", safetensors_bytes(dict(reversed(list(tensors.items()))), metadata=meta)
