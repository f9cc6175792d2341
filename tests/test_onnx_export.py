"""ONNX export (numrnn.onnx_export, `numrnn export`): ONNX Runtime run on the exported graph against
numrnn's own forward (outputs and final states, float32, relative error < 1e-5) for every
supported configuration at several (T, B) through one session (dynamic axes), and the refusals."""
import json
import sys

import numpy as np
import pytest
from finite_diff import rel_err

import numrnn
from numrnn import onnx_export
from numrnn.cli import main

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

I, H = 3, 4
SHAPES = [(1, 1), (5, 3), (9, 2)]    # (T, B), all through the same session
LAYERS = [
    ("RNN", dict()),
    ("RNN", dict(nonlinearity="relu", num_layers=2, bidirectional=True)),
    ("RNN", dict(batch_first=True, bias=False)),
    ("GRU", dict()),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("GRU", dict(bias=False, num_layers=2)),
    ("LSTM", dict()),
    ("LSTM", dict(num_layers=3, bidirectional=True)),
    ("LSTM", dict(batch_first=True, bias=False)),
    ("LSTM", dict(peephole=True, num_layers=2)),
    ("LSTM", dict(coupled=True, bidirectional=True, batch_first=True)),
    ("LSTM", dict(peephole=True, coupled=True, num_layers=2, bidirectional=True, bias=False)),
    ("GRU", dict(dtype=np.float64, num_layers=2)),
]


def case_id(case):
    cell, kw = case
    return cell + "".join(f"-{k}" if v is True else f"-{k}={getattr(v, '__name__', v)}" for k, v in kw.items())


def session(obj, **kw):
    return onnxruntime.InferenceSession(onnx_export.to_onnx(obj, **kw).SerializeToString(),
                                        providers=["CPUExecutionProvider"])


def random_state(rng, layer, B):
    LD = layer.num_layers * layer.num_directions
    h0 = rng.standard_normal((LD, B, layer.out_size)).astype(np.float32)
    c0 = rng.standard_normal((LD, B, layer.hidden_size)).astype(np.float32) if layer.cell == "LSTM" else None
    return h0, c0


def numrnn_forward(layer, x, h0, c0, lengths=None):
    """[y, h_n] or [y, h_n, c_n], numrnn's own forward."""
    if c0 is None:
        return list(layer(x, h0, lengths))
    y, (h_n, c_n) = layer(x, (h0, c0), lengths)
    return [y, h_n, c_n]


def assert_close(got, want):
    for name, g, w in zip(("y", "h_n", "c_n"), got, want):
        assert g.shape == w.shape, name
        assert np.linalg.norm(w) > 0 and rel_err(g, w) < 1e-5, (name, rel_err(g, w))


@pytest.mark.parametrize("case", LAYERS, ids=[case_id(c) for c in LAYERS])
def test_layer_matches_numrnn(case):
    cell, kw = case
    layer = getattr(numrnn, cell)(I, H, seed=1, **kw).eval()
    sess = session(layer)
    rng = np.random.default_rng(2)
    for T, B in SHAPES:
        x = rng.standard_normal((B, T, I) if layer.batch_first else (T, B, I)).astype(np.float32)
        h0, c0 = random_state(rng, layer, B)
        feeds = {"x": x, "h0": h0} if c0 is None else {"x": x, "h0": h0, "c0": c0}
        assert_close(sess.run(None, feeds), numrnn_forward(layer, x, h0, c0))


@pytest.mark.parametrize("case", [c for c in LAYERS if c[1].get("num_layers", 1) > 1 or c[1].get("bidirectional")],
                         ids=[case_id(c) for c in LAYERS if c[1].get("num_layers", 1) > 1 or c[1].get("bidirectional")])
def test_layer_with_lengths_matches_numrnn(case):
    cell, kw = case
    layer = getattr(numrnn, cell)(I, H, seed=3, **kw)
    sess = session(layer, lengths=True)
    rng = np.random.default_rng(4)
    T, B = 6, 4
    x = rng.standard_normal((B, T, I) if layer.batch_first else (T, B, I)).astype(np.float32)
    h0, c0 = random_state(rng, layer, B)
    lengths = np.array([6, 2, 5, 1])
    feeds = {"x": x, "h0": h0, "lengths": lengths.astype(np.int32)}
    if c0 is not None:
        feeds["c0"] = c0
    assert_close(sess.run(None, feeds), numrnn_forward(layer, x, h0, c0, lengths))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_language_model_matches_numrnn(cell):
    lm = numrnn.LanguageModel(11, 5, cell=cell, hidden_size=H, num_layers=2, dropout=0.3, seed=5).eval()
    sess = session(lm)
    assert [i.name for i in sess.get_inputs()] == ["ids", "h0"] + (["c0"] if cell == "lstm" else [])
    assert [o.name for o in sess.get_outputs()] == ["logits", "h_n"] + (["c_n"] if cell == "lstm" else [])
    rng = np.random.default_rng(6)
    for T, B in SHAPES:
        ids = rng.integers(0, 11, (T, B))
        h0, c0 = random_state(rng, lm.rnn, B)
        feeds = {"ids": ids, "h0": h0} if c0 is None else {"ids": ids, "h0": h0, "c0": c0}
        logits, state = lm(ids, h0 if c0 is None else (h0, c0))
        want = [logits] + (list(state) if isinstance(state, tuple) else [state])
        assert_close(sess.run(None, feeds), want)


def test_axes_are_named_and_dynamic():
    model = onnx_export.to_onnx(numrnn.LSTM(I, H, num_layers=2, batch_first=True))
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(model.graph.input) + list(model.graph.output)}
    assert dims == {"x": ["B", "T", I], "h0": [2, "B", H], "c0": [2, "B", H],
                    "y": ["B", "T", H], "h_n": [2, "B", H], "c_n": [2, "B", H]}


@pytest.mark.parametrize("obj, message", [
    (numrnn.LSTM(I, H, proj_size=2), "proj_size=2 cannot be exported: the ONNX LSTM operator has no projection"),
    (numrnn.LanguageModel(7, 3, hidden_size=H, proj_size=2), "LanguageModel.rnn: LSTM with proj_size=2"),
    (numrnn.GRUCell(I, H), "GRUCell is a single step; export the layer"),
    (numrnn.Linear(I, H), "cannot export a Linear"),
])
def test_refusals(obj, message):
    with pytest.raises(onnx_export.NotExportable, match=message):
        onnx_export.to_onnx(obj)


def test_cli_export_runs_in_onnxruntime(tmp_path, capsys):
    lm = numrnn.LanguageModel(6, 3, cell="gru", hidden_size=H, seed=0)
    lm.metadata["vocabulary"] = json.dumps(list("abcdef"))
    numrnn.save(lm, str(tmp_path / "lm.safetensors"))
    assert main(["export", str(tmp_path / "lm.safetensors"), str(tmp_path / "lm.onnx")]) == 0
    assert capsys.readouterr().out == (f"wrote {tmp_path / 'lm.onnx'}: LanguageModel, inputs ids [T, B], h0 [1, B, {H}] "
                                       f"-> outputs logits [T, B, 6], h_n [1, B, {H}]\n")
    sess = onnxruntime.InferenceSession(str(tmp_path / "lm.onnx"), providers=["CPUExecutionProvider"])
    ids = np.array([[0], [3], [5]])
    h0 = np.zeros((1, 1, H), np.float32)
    logits, _ = lm(ids)
    assert rel_err(sess.run(["logits"], {"ids": ids, "h0": h0})[0], logits) < 1e-5


@pytest.mark.parametrize("what, message", [
    ("proj", "no projection"),
    ("no onnx", "pip install 'numrnn[onnx]'"),
    ("not a weights file", "junk.safetensors"),
    ("out is a folder", "is a folder; name a file"),
    ("out in a missing folder", "does not exist"),
    ("out is the model", "is the model file itself"),
])
def test_cli_export_errors_exit_2(what, message, tmp_path, capsys, monkeypatch):
    path = str(tmp_path / "m.safetensors")
    numrnn.save(numrnn.LSTM(I, H, proj_size=2 if what == "proj" else 0), path)
    before = open(path, "rb").read()
    out = str({"out is a folder": tmp_path, "out in a missing folder": tmp_path / "no" / "m.onnx",
               "out is the model": path}.get(what, tmp_path / "m.onnx"))
    if what == "no onnx":
        monkeypatch.setitem(sys.modules, "onnx", None)     # import onnx raises ImportError
    if what == "not a weights file":
        path = str(tmp_path / "junk.safetensors")
        (tmp_path / "junk.safetensors").write_bytes(b"junk")
    assert main(["export", path, out]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("numrnn export: error: ") and message in err, err
    assert not (tmp_path / "m.onnx").exists() and open(str(tmp_path / "m.safetensors"), "rb").read() == before
