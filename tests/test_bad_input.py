"""Bad input to the layers and the weights files: each is a clear error that names what was
expected and what came, and a failed call changes nothing."""
import json

import numpy as np
import pytest

import numrnn
from numrnn.serialize import WeightsFileError

T, B, I, H = 4, 2, 3, 5


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)


@pytest.mark.parametrize("make,error,match", [
    (lambda: numrnn.RNN(3, 4, nonlinearity="sigmoid"), ValueError, "nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"),
    (lambda: numrnn.GRU(3, 4, proj_size=2), ValueError, "proj_size is only supported by LSTM, not GRU"),
    (lambda: numrnn.RNN(3, 4, proj_size=2), ValueError, "proj_size is only supported by LSTM, not RNN"),
    (lambda: numrnn.LSTM(3, 4, proj_size=4), ValueError, "proj_size must be smaller than hidden_size, got proj_size=4, hidden_size=4"),
    (lambda: numrnn.LSTM(3, 4, proj_size=-1), ValueError, "proj_size must be an integer >= 0, got -1"),
    (lambda: numrnn.LSTM(3, 0), ValueError, "hidden_size must be an integer >= 1, got 0"),
    (lambda: numrnn.GRU(-3, 4), ValueError, "input_size must be an integer >= 1, got -3"),
    (lambda: numrnn.GRU(3, 4, num_layers=0), ValueError, "num_layers must be an integer >= 1, got 0"),
    (lambda: numrnn.GRU(3, 4.5), ValueError, "hidden_size must be an integer >= 1, got 4.5"),
    (lambda: numrnn.GRU(3, 4, dropout=1.0), ValueError, r"dropout must be a number in \[0, 1\), got 1.0"),
    (lambda: numrnn.GRU(3, 4, dtype=np.int32), TypeError, "dtype must be numpy.float32 or numpy.float64"),
    (lambda: numrnn.GRU(3, 4, device="tpu"), ValueError, "device must be 'cpu' or 'cuda', got 'tpu'"),
])
def test_bad_constructor_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("cell", ["RNN", "GRU", "LSTM"])
def test_bad_forward_input(cell, x):
    layer = getattr(numrnn, cell)(I, H)
    call = (lambda x, s=None, lengths=None: layer(x, s, lengths))
    with pytest.raises(ValueError, match=r"x must be 3-D \[T, B, features\], got shape \(4, 3\)"):
        call(x[:, 0])
    with pytest.raises(ValueError, match=r"x must have 3 features in its last dimension, got shape \(4, 2, 2\)"):
        call(x[:, :, :2])
    with pytest.raises(TypeError, match="x must be a floating-point array, got dtype int64"):
        call(np.ones((T, B, I), np.int64))
    with pytest.raises(ValueError, match=r"lengths must be in 1..4 \(T\), got min 0, max 4"):
        call(x, None, np.array([4, 0]))
    with pytest.raises(ValueError, match=r"lengths must be in 1..4 \(T\), got min 2, max 5"):
        call(x, None, np.array([5, 2]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\) \(one per sequence\), got \(3,\)"):
        call(x, None, np.array([4, 2, 1]))
    with pytest.raises(TypeError, match="lengths must be integers, got dtype float64"):
        call(x, None, np.array([4.0, 2.0]))
    bad_h = np.zeros((1, 3, H), np.float32)
    state = (bad_h, np.zeros((1, B, H), np.float32)) if cell == "LSTM" else bad_h
    with pytest.raises(ValueError, match=r"h0 must have shape \(1, 2, 5\) .*got \(1, 3, 5\)"):
        call(x, state)
    if cell == "LSTM":
        with pytest.raises(ValueError, match=r"c0 must have shape \(1, 2, 5\) .*got \(2, 2, 5\)"):
            call(x, (np.zeros((1, B, H), np.float32), np.zeros((2, B, H), np.float32)))
        with pytest.raises(TypeError, match=r"state must be a pair \(h, c\) or None, got ndarray"):
            call(x, np.zeros((1, B, H), np.float32))


@pytest.mark.parametrize("cell", ["GRU", "LSTM"])
def test_bad_backward_calls(cell, x):
    layer = getattr(numrnn, cell)(I, H, bidirectional=True)
    with pytest.raises(RuntimeError, match=r"backward\(\) called before any forward\(\)"):
        layer.backward(np.ones((T, B, 2 * H), np.float32))
    layer(x)
    with pytest.raises(ValueError, match=r"dout must have 10 features in its last dimension, got shape \(4, 2, 5\)"):
        layer.backward(np.ones((T, B, H), np.float32))
    with pytest.raises(ValueError, match=r"dout must match the last forward's output \(T=4, B=2\), got shape \(3, 2, 10\)"):
        layer.backward(np.ones((3, B, 2 * H), np.float32))
    assert not layer.flat_grads.any()


def test_bad_state_dict_lists_the_names_and_changes_nothing():
    layer = numrnn.LSTM(I, H, num_layers=2)
    before = layer.flat_params.copy()
    state = layer.state_dict()
    del state["bias_hh_l1"]
    state["weight_ih_l0"] = np.zeros((4 * H, I + 1))
    state["weight_xx_l9"] = np.zeros(3)
    with pytest.raises(ValueError) as info:
        layer.load_state_dict(state)
    message = str(info.value)
    assert "missing: bias_hh_l1" in message and "unexpected: weight_xx_l9" in message
    assert "weight_ih_l0: expected (20, 3), got (20, 4)" in message
    np.testing.assert_array_equal(layer.flat_params, before)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file: .*absent.safetensors"):
        numrnn.load(tmp_path / "absent.safetensors")
    good = tmp_path / "good.safetensors"
    numrnn.save(numrnn.GRU(I, H), good)
    data = good.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "text": b"this is not a weights file at all",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(WeightsFileError, match="is not a readable safetensors file"):
            numrnn.load(tmp_path / name)

    from safetensors.numpy import save_file
    save_file({"w": np.ones(3, np.float32)}, tmp_path / "foreign.safetensors")
    with pytest.raises(WeightsFileError, match="without numrnn's format tag"):
        numrnn.load(tmp_path / "foreign.safetensors")
    save_file({"w": np.ones(3, np.float32)}, tmp_path / "future.safetensors",
              metadata={"format": "numrnn/2", "type": "GRU", "config": json.dumps({})})
    with pytest.raises(WeightsFileError, match="has format 'numrnn/2', this numrnn reads 'numrnn/1'"):
        numrnn.load(tmp_path / "future.safetensors")
    save_file({"w": np.ones(3, np.float32)}, tmp_path / "wrong.safetensors",
              metadata={"format": "numrnn/1", "type": "GRU", "config": json.dumps(dict(input_size=3, hidden_size=5))})
    with pytest.raises(WeightsFileError, match=r"GRU configuration \(.*\) and its tensors do not fit together: .*missing weight_ih_l0"):
        numrnn.load(tmp_path / "wrong.safetensors")
