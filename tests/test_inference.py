"""The inference path (eval mode on the CPU, numrnn.inference / engine/infer.py) against the training
path's forward: every cell, option, dtype and ragged lengths; streaming in halves; cells and
LanguageModels; backward after an eval-mode call is an error; workspaces are reused."""
import numpy as np
import pytest

import numrnn

TOL = {np.float32: 1e-6, np.float64: 1e-13}

CASES = [
    (numrnn.LSTM, dict()),
    (numrnn.LSTM, dict(num_layers=2, bidirectional=True)),
    (numrnn.LSTM, dict(proj_size=3, num_layers=2)),
    (numrnn.LSTM, dict(peephole=True, coupled=True, bias=False)),
    (numrnn.LSTM, dict(peephole=True, bidirectional=True, batch_first=True)),
    (numrnn.GRU, dict(num_layers=3, bidirectional=True)),
    (numrnn.GRU, dict(bias=False, batch_first=True)),
    (numrnn.RNN, dict(nonlinearity="relu", num_layers=2, bidirectional=True)),
    (numrnn.RNN, dict(dropout=0.5, num_layers=2)),
]


def outputs(result):
    out, state = result
    return [out] + (list(state) if isinstance(state, tuple) else [state])


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, options", CASES)
def test_layer_equals_training_forward(cls, options, dtype):
    rng = np.random.default_rng(7)
    layer = cls(5, 6, dtype=dtype, seed=3, **options)
    T, B = 7, 4
    shape = (B, T, 5) if layer.batch_first else (T, B, 5)
    x = rng.standard_normal(shape)
    LD = layer.num_layers * layer.num_directions
    h0 = rng.standard_normal((LD, B, layer.out_size))
    state = (h0, rng.standard_normal((LD, B, 6))) if cls is numrnn.LSTM else h0
    lengths = np.array([7, 3, 1, 5])
    layer.train()
    if layer.dropout:       # the training path in train mode draws masks; eval must match no dropout
        layer.dropout = 0.0
    want = outputs(layer(x, state, lengths=lengths))
    layer.eval()
    layer.dropout = options.get("dropout", 0.0)
    got = outputs(layer(x, state, lengths=lengths))
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        assert rel(g, w) <= TOL[dtype], (g, w)
    with pytest.raises(RuntimeError, match="eval mode"):
        layer.backward(np.ones_like(got[0]))


@pytest.mark.parametrize("cls", [numrnn.LSTM, numrnn.GRU, numrnn.RNN])
def test_streaming_halves_equal_whole(cls):
    layer = cls(3, 5, num_layers=2, seed=1).eval()
    x = np.random.default_rng(2).standard_normal((8, 2, 3)).astype(np.float32)
    whole = outputs(layer(x))
    first, state = layer(x[:3])
    second = outputs(layer(x[3:], state))
    assert rel(np.concatenate([first, second[0]]), whole[0]) < 1e-6
    for g, w in zip(second[1:], whole[1:]):
        assert rel(g, w) < 1e-6


@pytest.mark.parametrize("cls, options", [(numrnn.LSTMCell, dict(peephole=True)), (numrnn.GRUCell, {}),
                                          (numrnn.RNNCell, dict(nonlinearity="relu"))])
def test_cell_step_equals_training_step(cls, options):
    rng = np.random.default_rng(4)
    cell = cls(4, 6, seed=2, **options)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    state = (rng.standard_normal((3, 6)), rng.standard_normal((3, 6))) if cls is numrnn.LSTMCell \
        else rng.standard_normal((3, 6))
    want = cell(x, state)
    cell.reset()
    cell.eval()
    got = cell(x, state)
    for g, w in zip(*(((v,) if not isinstance(v, tuple) else v) for v in (got, want))):
        assert rel(g, w) < 1e-6
    with pytest.raises(RuntimeError, match="eval mode"):
        cell.backward(want if not isinstance(want, tuple) else want)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_language_model_equals_training_forward(cell):
    lm = numrnn.LanguageModel(11, 4, cell=cell, hidden_size=6, num_layers=2,
                              proj_size=3 if cell == "lstm" else 0, seed=5)
    tokens = np.random.default_rng(1).integers(0, 11, (6, 3))
    want_logits, want_state = lm(tokens)
    lm.eval()
    got_logits, got_state = lm(tokens)
    assert rel(got_logits, want_logits) < 1e-6
    for g, w in zip(*((s if isinstance(s, tuple) else (s,)) for s in (got_state, want_state))):
        assert rel(g, w) < 1e-6
    # carried state: two halves equal the whole
    first, state = lm(tokens[:2])
    second, _ = lm(tokens[2:], state)
    assert rel(np.concatenate([first, second]), want_logits) < 1e-6
    with pytest.raises(ValueError, match="ids must be in 0..10"):
        lm(np.array([[11]]))
    with pytest.raises(RuntimeError):
        lm.backward(np.ones_like(got_logits))
    lm.train()
    lm(tokens)
    lm.backward(np.ones_like(got_logits))


def test_workspace_kept_across_calls():
    layer = numrnn.LSTM(3, 4, seed=0).eval()
    x = np.ones((5, 2, 3), np.float32)
    layer(x)
    ws = layer._infer_ws
    layer(x[:2])
    layer(x)
    assert layer._infer_ws is ws


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_batch_product_equals_blas(dtype):
    """matvec.matmul_t's axpy form against NumPy's product, for every row count it serves and a
    K that is not a multiple of its four rows per pass; more rows go to OpenBLAS."""
    from numrnn.engine.matvec import SMALL_ROWS, matmul_t
    rng = np.random.default_rng(3)
    w = rng.standard_normal((24, 7)).astype(dtype)
    for M in range(1, SMALL_ROWS + 3):
        a = rng.standard_normal((M, 7)).astype(dtype)
        out = np.full((M, 24), np.nan, dtype)
        matmul_t(out, a, w, np.ascontiguousarray(w.T))
        assert rel(out, a.astype(np.float64) @ w.T.astype(np.float64)) < (1e-6 if dtype == np.float32 else 1e-14)


def test_new_weights_reach_eval_mode():
    """The transposed copies are rebuilt after load_state_dict and train()/eval()."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 4)).astype(np.float32)
    a, b = numrnn.GRU(4, 5, seed=1), numrnn.GRU(4, 5, seed=2)
    want = b.eval()(x)[0]
    a.eval()(x)
    a.load_state_dict(b.state_dict())
    assert rel(a(x)[0], want) < 1e-6
    a.params["weight_hh_l0"][...] = 0       # edited in place: seen after the next eval()
    a.train()
    want = a(x)[0]
    assert rel(a.eval()(x)[0], want) < 1e-6


@pytest.mark.parametrize("cls, options", [(numrnn.LSTM, dict(proj_size=3, peephole=True)), (numrnn.GRU, {}),
                                          (numrnn.RNN, dict(bidirectional=True))])
@pytest.mark.parametrize("B", [1, 12])
def test_compiled_call_allocates_nothing(cls, options, B):
    """The C interface's compiled entry point, called with raw pointers as C does: once a shape has
    been seen, repeated calls make no Numba (NRT) allocation at all, on both the small-batch
    product (B=1) and OpenBLAS (B=12)."""
    import ctypes
    from numba.core.runtime import _nrt_python, rtsys
    from numrnn import inference
    from numrnn.engine import infer, infer_c
    _nrt_python.memsys_enable_stats()
    layer = cls(5, 6, num_layers=2, seed=0, **options).eval()
    meta = inference.describe(layer)
    weights = np.concatenate([layer.flat_params, inference.transposed(layer, meta)])
    T, LD, P = 4, layer.num_layers * layer.num_directions, layer.out_size
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, 5)).astype(np.float32)
    h, c = rng.standard_normal((LD, B, P)).astype(np.float32), rng.standard_normal((LD, B, 6)).astype(np.float32)
    want = outputs(layer(x, (h, c) if cls is numrnn.LSTM else h))
    y = np.empty((T, B, layer.num_directions * P), np.float32)
    work = np.empty(infer.workspace_size(meta, T, B), np.float32)
    lengths = np.full(B, T, np.int64)
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, *[ctypes.c_void_p] * 7, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)(
        infer_c.entry(infer_c.c_forward).address)
    args = [a.ctypes.data for a in (meta, weights, h, c, work, lengths, x)] + [T, B, y.ctypes.data]
    h0, c0 = h.copy(), c.copy()
    assert fn(*args) == infer_c.DONE
    got = [y.copy(), h.copy()] + ([c.copy()] if cls is numrnn.LSTM else [])
    for g, w in zip(got, want):
        assert rel(g, w) < 1e-6
    before = rtsys.get_allocation_stats()
    for _ in range(5):
        h[...], c[...] = h0, c0
        assert fn(*args) == infer_c.DONE
    after = rtsys.get_allocation_stats()
    assert (after.alloc, after.mi_alloc) == (before.alloc, before.mi_alloc)
    assert np.array_equal(y, got[0])
