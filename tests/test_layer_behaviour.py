"""What a layer does beyond one forward/backward: gradients accumulate until zero_grad, dropout
(train vs eval, seeded, differentiated through its mask), initialisation range and seeding,
and every constructor argument readable back."""
import copy

import numpy as np
import pytest
from finite_diff import check_grads, rel_err

import numrnn


@pytest.mark.parametrize("cell", ["RNN", "GRU", "LSTM"])
def test_backward_accumulates_until_zero_grad(cell):
    rng = np.random.default_rng(1)
    layer = getattr(numrnn, cell)(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=2)
    x, dout = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 8))
    layer(x)
    layer.backward(dout)
    once = {k: v.copy() for k, v in layer.grads.items()}
    assert all(np.abs(v).sum() > 0 for v in once.values())
    layer.backward(dout)
    for k, v in layer.grads.items():
        assert rel_err(v, 2 * once[k]) < 1e-14, k
    layer.zero_grad()
    assert all(not v.any() for v in layer.grads.values())


@pytest.mark.parametrize("cell", ["RNN", "GRU", "LSTM"])
def test_dropout_train_eval_and_seed(cell):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 2))

    def make():
        return getattr(numrnn, cell)(2, 5, num_layers=3, dropout=0.5, dtype=np.float64, seed=11)

    a, b = make(), make()
    out_a, out_b = a(x)[0], b(x)[0]
    np.testing.assert_array_equal(out_a, out_b)          # same seed, same masks
    assert rel_err(a(x)[0], out_a) > 1e-3                 # the next call draws new masks
    out_eval = a.eval()(x)[0]
    np.testing.assert_array_equal(out_eval, a(x)[0])      # eval: deterministic, no dropout
    no_dropout = getattr(numrnn, cell)(2, 5, num_layers=3, dtype=np.float64, seed=11).eval()
    np.testing.assert_allclose(out_eval, no_dropout(x)[0], rtol=1e-14)
    assert rel_err(out_a, out_eval) > 1e-3


@pytest.mark.parametrize("cell", ["GRU", "LSTM"])
def test_dropout_backward_matches_finite_differences(cell):
    rng = np.random.default_rng(4)
    base = getattr(numrnn, cell)(2, 3, num_layers=2, bidirectional=True, dropout=0.4, dtype=np.float64, seed=5)
    x, dout = rng.standard_normal((3, 2, 2)), rng.standard_normal((3, 2, 6))

    def loss():
        # a copy of the layer taken before any draw: every evaluation uses the same dropout mask
        return (copy.deepcopy(base)(x)[0] * dout).sum()

    probe = copy.deepcopy(base)
    probe(x)
    dx, _ = probe.backward(dout)
    named = [("x", x, dx)] + [(k, base.params[k], probe.grads[k]) for k in base.params]
    check_grads(loss, named, tol=1e-6)


@pytest.mark.parametrize("cell", ["RNN", "GRU", "LSTM"])
def test_initialisation_range_and_seed(cell):
    H = 16
    a = getattr(numrnn, cell)(5, H, num_layers=2, seed=42)
    b = getattr(numrnn, cell)(5, H, num_layers=2, seed=42)
    c = getattr(numrnn, cell)(5, H, num_layers=2, seed=43)
    k = 1 / np.sqrt(H)
    assert np.abs(a.flat_params).max() <= k and np.abs(a.flat_params).max() > 0.9 * k
    assert abs(a.flat_params.mean()) < 0.1 * k
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert not np.array_equal(a.flat_params, c.flat_params)


@pytest.mark.parametrize("cell", ["GRU", "LSTM"])
def test_copies_keep_parameters_tied_to_the_flat_buffer(cell):
    import pickle
    layer = getattr(numrnn, cell)(2, 3, num_layers=2, seed=1)
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        np.testing.assert_array_equal(clone.flat_params, layer.flat_params)
        clone.flat_params += 1.0
        assert all(np.shares_memory(v, clone.flat_params) for v in clone.params.values())
        assert all(np.shares_memory(v, clone.flat_grads) for v in clone.grads.values())
        assert not np.shares_memory(clone.flat_params, layer.flat_params)
        np.testing.assert_array_equal(clone.params["weight_hh_l1"], layer.params["weight_hh_l1"] + 1.0)


def test_constructor_arguments_are_readable():
    layer = numrnn.LSTM(3, 6, num_layers=2, bias=False, batch_first=True, dropout=0.25, bidirectional=True,
                        proj_size=2, dtype=np.float64, seed=9)
    got = dict(input_size=layer.input_size, hidden_size=layer.hidden_size, num_layers=layer.num_layers,
               bias=layer.bias, batch_first=layer.batch_first, dropout=layer.dropout,
               bidirectional=layer.bidirectional, proj_size=layer.proj_size, device=layer.device,
               dtype=layer.dtype, seed=layer.seed)
    assert got == dict(input_size=3, hidden_size=6, num_layers=2, bias=False, batch_first=True, dropout=0.25,
                       bidirectional=True, proj_size=2, device="cpu", dtype=np.float64, seed=9)
    assert numrnn.RNN(2, 3, nonlinearity="relu").nonlinearity == "relu"
    out, (h_n, c_n) = layer(np.ones((4, 5, 3)))
    assert out.shape == (4, 5, 4) and h_n.shape == (4, 4, 2) and c_n.shape == (4, 4, 6)
