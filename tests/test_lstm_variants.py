"""LSTM variants (peephole, coupled): forward against the plain NumPy reference (naive.py)
and ONNX Runtime's LSTM operator (onnx_lstm.py), backward against float64 finite differences,
float32 against float64, layouts, weights files and the PyTorch-incompatibility messages."""
import json

import numpy as np
import pytest
from finite_diff import check_grads, rel_err

import naive

import numrnn

VARIANTS = [dict(peephole=True), dict(coupled=True), dict(peephole=True, coupled=True)]
SHAPES = [dict(num_layers=1), dict(num_layers=1, bidirectional=True, lengths=True),
          dict(num_layers=2, bidirectional=True, lengths=True),
          dict(num_layers=2, proj_size=2, lengths=True)]
T, B, I, H = 4, 3, 2, 3


def ids(cases):
    return ["-".join(k if v is True else f"{k}{v}" for k, v in c.items()) for c in cases]


def setup(variant, shape, dtype=np.float64, seed=0):
    """A layer and fresh random data: x, (h0, c0), lengths, and upstream gradients."""
    shape = dict(shape)
    use_lengths = shape.pop("lengths", False)
    layer = numrnn.LSTM(I, H, dtype=dtype, seed=seed, **shape, **variant)
    rng = np.random.default_rng(seed + 1)
    L, D, P = layer.num_layers, layer.num_directions, layer.out_size
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L * D, B, P))
    c0 = rng.standard_normal((L * D, B, H))
    lengths = np.array([T, 2, 3]) if use_lengths else None
    douts = (rng.standard_normal((T, B, D * P)), rng.standard_normal((L * D, B, P)),
             rng.standard_normal((L * D, B, H)))
    return layer, x, h0, c0, lengths, douts


@pytest.mark.parametrize("shape", SHAPES, ids=ids(SHAPES))
@pytest.mark.parametrize("variant", VARIANTS, ids=ids(VARIANTS))
def test_forward_matches_numpy_reference(variant, shape):
    layer, x, h0, c0, lengths, _ = setup(variant, shape)
    out, (h_n, c_n) = layer(x, (h0, c0), lengths)
    ref = naive.forward("LSTM", layer.params, x, h0, c0, layer.num_layers, layer.bidirectional,
                        np.full(B, T) if lengths is None else lengths, coupled=layer.coupled)[:3]
    for got, want in zip((out, h_n, c_n), ref):
        assert rel_err(got, want) < 1e-12


@pytest.mark.parametrize("shape", SHAPES, ids=ids(SHAPES))
@pytest.mark.parametrize("variant", VARIANTS, ids=ids(VARIANTS))
def test_backward_matches_finite_differences(variant, shape):
    layer, x, h0, c0, lengths, (dout, dh_n, dc_n) = setup(variant, shape)

    def loss():
        out, (h_n, c_n) = layer(x, (h0, c0), lengths)
        return (out * dout).sum() + (h_n * dh_n).sum() + (c_n * dc_n).sum()

    loss()
    layer.zero_grad()
    dx, (dh0, dc0) = layer.backward(dout, (dh_n, dc_n))
    named = [(k, layer.params[k], layer.grads[k]) for k in layer.params]
    check_grads(loss, named + [("x", x, dx), ("h0", h0, dh0), ("c0", c0, dc0)], tol=1e-6)


@pytest.mark.parametrize("shape", SHAPES, ids=ids(SHAPES))
@pytest.mark.parametrize("variant", VARIANTS, ids=ids(VARIANTS))
def test_backward_matches_numpy_reference(variant, shape):
    layer, x, h0, c0, lengths, (dout, dh_n, dc_n) = setup(variant, shape)
    layer(x, (h0, c0), lengths)
    dx, (dh0, dc0) = layer.backward(dout, (dh_n, dc_n))
    kw = dict(num_layers=layer.num_layers, bidirectional=layer.bidirectional, coupled=layer.coupled)
    *_, tape = naive.forward("LSTM", layer.params, x, h0, c0, lengths=np.full(B, T) if lengths is None else lengths, **kw)
    want_dx, want_dh0, want_dc0, want = naive.backward("LSTM", layer.params, tape, dout, dh_n, dc_n, **kw)
    want.update(x=want_dx, h0=want_dh0, c0=want_dc0)
    got = dict(layer.grads, x=dx, h0=dh0, c0=dc0)
    errors = {k: rel_err(got[k], want[k]) for k in want}
    assert max(errors.values()) < 1e-12, errors


@pytest.mark.parametrize("variant", VARIANTS, ids=ids(VARIANTS))
def test_float32_matches_float64(variant):
    shape = dict(num_layers=2, bidirectional=True, proj_size=2, lengths=True)
    results = []
    for dtype in (np.float64, np.float32):
        layer, x, h0, c0, lengths, (dout, dh_n, dc_n) = setup(variant, shape, dtype)
        out, (h_n, c_n) = layer(x, (h0, c0), lengths)
        assert out.dtype == dtype and layer.grads["weight_ci_l1" if layer.peephole else "weight_ih_l1"].dtype == dtype
        dx, (dh0, dc0) = layer.backward(dout, (dh_n, dc_n))
        results.append([out, h_n, c_n, dx, dh0, dc0] + [layer.grads[k] for k in layer.grads])
    for want, got in zip(*results):
        assert rel_err(got, want) < 1e-5


@pytest.mark.parametrize("shape", SHAPES[:3], ids=ids(SHAPES[:3]))
@pytest.mark.parametrize("variant", VARIANTS + [{}], ids=ids(VARIANTS) + ["plain"])
def test_forward_matches_onnxruntime(variant, shape):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import onnx_lstm
    layer, x, h0, c0, lengths, _ = setup(variant, shape, np.float32)
    lengths = np.full(B, T) if lengths is None else lengths
    out, (h_n, c_n) = layer(x, (h0, c0), lengths)
    for got, want in zip((out, h_n, c_n), onnx_lstm.run(layer, x, h0, c0, lengths)):
        assert rel_err(got, want) < 1e-5


def test_parameter_layout():
    both = numrnn.LSTM(I, H, num_layers=2, bidirectional=True, peephole=True, coupled=True)
    assert both.params["weight_ih_l0"].shape == (3 * H, I)
    assert both.params["weight_hh_l1_reverse"].shape == (3 * H, H)
    assert both.params["bias_ih_l1"].shape == (3 * H,)
    assert both.params["weight_ci_l1_reverse"].shape == (H,) and both.params["weight_co_l0"].shape == (H,)
    assert "weight_cf_l0" not in both.params   # no forget gate, so no forget peephole
    peep = numrnn.LSTM(I, H, peephole=True)
    assert list(peep.params) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                 "weight_ci_l0", "weight_cf_l0", "weight_co_l0"]
    assert peep.params["weight_ih_l0"].shape == (4 * H, I)
    assert "peephole" not in numrnn.LSTM(I, H).config()   # plain layers keep PyTorch's arguments


@pytest.mark.parametrize("variant", VARIANTS, ids=ids(VARIANTS))
def test_save_load_keeps_the_variant(tmp_path, variant):
    from safetensors import safe_open
    layer, x, h0, c0, lengths, _ = setup(variant, dict(num_layers=2, bidirectional=True, lengths=True))
    path = tmp_path / "lstm.safetensors"
    numrnn.save(layer, path)
    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    assert {k: v for k, v in json.loads(meta["config"]).items() if k in variant} == variant
    assert meta["pytorch"].startswith("cannot load into PyTorch:")
    back = numrnn.load(path)
    assert type(back) is numrnn.LSTM and back.peephole == layer.peephole and back.coupled == layer.coupled
    assert "pytorch" not in back.metadata
    want, (wh, wc) = layer(x, (h0, c0), lengths)
    got, (gh, gc) = back(x, (h0, c0), lengths)
    assert np.array_equal(got, want) and np.array_equal(gh, wh) and np.array_equal(gc, wc)


def test_plain_file_has_no_pytorch_note(tmp_path):
    from safetensors import safe_open
    numrnn.save(numrnn.LSTM(I, H), tmp_path / "plain.safetensors")
    with safe_open(str(tmp_path / "plain.safetensors"), framework="np") as f:
        assert "pytorch" not in f.metadata()


@pytest.mark.parametrize("variant", VARIANTS, ids=ids(VARIANTS))
def test_pytorch_state_dict_is_refused_with_the_reason(variant):
    torch_style = numrnn.LSTM(I, H).state_dict()   # PyTorch's names and shapes
    layer = numrnn.LSTM(I, H, **variant)
    before = layer.flat_params.copy()
    with pytest.raises(ValueError, match="cannot take a PyTorch state dict") as e:
        layer.load_state_dict(torch_style)
    for k in variant:
        assert f"{k}=True" in str(e.value)
    assert np.array_equal(layer.flat_params, before)
