"""Weights files: numrnn.save / numrnn.load round trips, and the same file in PyTorch both ways
(safetensors.torch.load_file into torch.nn.*, and a torch state_dict into numrnn)."""
import os

import numpy as np
import pytest
from finite_diff import rel_err

import numrnn
from numrnn import serialize

LAYERS = [("RNN", dict(nonlinearity="relu", num_layers=2)), ("GRU", dict(bidirectional=True, bias=False)),
          ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=2, batch_first=True))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell,kw", LAYERS, ids=[c for c, _ in LAYERS])
def test_round_trip_keeps_configuration_and_weights(tmp_path, cell, kw, dtype):
    layer = getattr(numrnn, cell)(3, 4, dtype=dtype, seed=1, **kw)
    path = tmp_path / "layer.safetensors"
    numrnn.save(layer, path)
    back = numrnn.load(path)
    assert type(back) is type(layer) and back.config() == layer.config() and back.dtype == dtype
    np.testing.assert_array_equal(back.flat_params, layer.flat_params)
    x = np.random.default_rng(2).standard_normal((2, 5, 3)).astype(dtype)
    np.testing.assert_array_equal(back(x)[0], layer(x)[0])


@pytest.mark.parametrize("cell,kw", LAYERS, ids=[c for c, _ in LAYERS])
def test_numrnn_file_runs_in_pytorch_and_back(tmp_path, cell, kw):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file
    layer = getattr(numrnn, cell)(3, 4, seed=3, **kw)
    path = tmp_path / "numrnn.safetensors"
    numrnn.save(layer, path)
    tm = getattr(torch.nn, cell)(3, 4, **kw)
    tm.load_state_dict(load_file(path))                      # numrnn -> PyTorch
    x = np.random.default_rng(4).standard_normal((2, 5, 3)).astype(np.float32)
    want = tm(torch.tensor(x))[0].detach().numpy()
    assert rel_err(layer(x)[0], want) < 1e-5

    with torch.no_grad():                                    # PyTorch -> numrnn, through a file too
        for p in tm.parameters():
            p.uniform_(-0.5, 0.5)
    fresh = getattr(numrnn, cell)(3, 4, seed=5, **kw)
    fresh.load_state_dict(tm.state_dict())
    assert rel_err(fresh(x)[0], tm(torch.tensor(x))[0].detach().numpy()) < 1e-5
    save_file(tm.state_dict(), tmp_path / "torch.safetensors")
    fresh.load_state_dict(load_file(tmp_path / "torch.safetensors"))
    assert rel_err(fresh(x)[0], tm(torch.tensor(x))[0].detach().numpy()) < 1e-5


def test_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "layer.safetensors"
    first = numrnn.GRU(2, 3, seed=1)
    numrnn.save(first, path)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        numrnn.save(numrnn.GRU(2, 3, seed=2), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["layer.safetensors"]    # no temporary file left behind
    monkeypatch.undo()
    np.testing.assert_array_equal(numrnn.load(path).flat_params, first.flat_params)


def test_file_metadata_names_the_format(tmp_path):
    from safetensors import safe_open
    numrnn.save(numrnn.LSTM(2, 3), tmp_path / "m.safetensors")
    with safe_open(tmp_path / "m.safetensors", framework="np") as f:
        meta = f.metadata()
    assert meta["format"] == serialize.FORMAT == "numrnn/1" and meta["type"] == "LSTM"
