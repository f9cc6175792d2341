"""RNNCell / LSTMCell / GRUCell: a loop of cell calls plus backward calls on the tape, against
torch.nn.*Cell with autograd, float64 finite differences, and the sequence layers on the same
weights; the tape's rules (reverse order, reset, empty tape) and weights files."""
import numpy as np
import pytest
from finite_diff import check_grads, rel_err

import numrnn

CASES = [("RNNCell", {}), ("RNNCell", dict(nonlinearity="relu")), ("RNNCell", dict(bias=False)),
         ("GRUCell", {}), ("GRUCell", dict(bias=False)), ("LSTMCell", {}), ("LSTMCell", dict(bias=False))]
VARIANTS = [dict(peephole=True), dict(coupled=True), dict(peephole=True, coupled=True)]
T, B, I, H = 3, 2, 3, 4


def case_id(case):
    return case[0] + "".join(f"-{k}{v}" for k, v in case[1].items())


def is_lstm(cell):
    return isinstance(cell, numrnn.LSTMCell)


def data(cell, seed=1):
    """Fresh random inputs for T steps, a start state, and an upstream gradient for every output."""
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    c0 = rng.standard_normal((B, H)) if is_lstm(cell) else None
    dhs = rng.standard_normal((T, B, H))
    dcn = rng.standard_normal((B, H)) if is_lstm(cell) else None
    return xs, h0, c0, dhs, dcn


def run(cell, xs, h0, c0):
    """The hand-written loop: h (and c) after each step."""
    state = (h0, c0) if is_lstm(cell) else h0
    hs, cs = [], []
    for x in xs:
        state = cell(x, state)
        hs.append(state[0] if is_lstm(cell) else state)
        cs.append(state[1] if is_lstm(cell) else None)
    return np.stack(hs), cs[-1]


def unroll(cell, dhs, dcn):
    """T backward calls in reverse order: loss = sum(h_t * dhs[t]) + sum(c_T * dcn).
    Returns dxs [T, B, I], dh0, dc0."""
    dh, dc = np.zeros((B, H)), dcn
    dxs = []
    for t in range(T - 1, -1, -1):
        if is_lstm(cell):
            dx, (dh, dc) = cell.backward((dh + dhs[t], dc))
        else:
            dx, dh = cell.backward(dh + dhs[t])
        dxs.append(dx)
    return np.stack(dxs[::-1]), dh, dc


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_cell_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    name, kw = case
    cell = getattr(numrnn, name)(I, H, dtype=dtype, seed=3, **kw)
    tcell = getattr(torch.nn, name)(I, H, **kw).to(torch.float64 if dtype == np.float64 else torch.float32)
    tcell.load_state_dict({k: torch.tensor(v) for k, v in cell.params.items()})
    xs, h0, c0, dhs, dcn = (None if a is None else a.astype(dtype) for a in data(cell))
    txs = torch.tensor(xs, requires_grad=True)
    th0 = torch.tensor(h0, requires_grad=True)
    tc0 = torch.tensor(c0, requires_grad=True) if c0 is not None else None
    state, loss, ths = ((th0, tc0) if tc0 is not None else th0), 0, []
    for t in range(T):
        state = tcell(txs[t], state)
        ths.append(state[0] if tc0 is not None else state)
        loss = loss + (ths[-1] * torch.tensor(dhs[t])).sum()
    if tc0 is not None:
        loss = loss + (state[1] * torch.tensor(dcn)).sum()
    loss.backward()

    hs, c_last = run(cell, xs, h0, c0)
    assert hs.dtype == dtype
    dxs, dh0, dc0 = unroll(cell, dhs, dcn)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert rel_err(hs, torch.stack(ths).detach().numpy()) < tol
    if tc0 is not None:
        assert rel_err(c_last, state[1].detach().numpy()) < tol
        assert rel_err(dc0, tc0.grad.numpy()) < tol
    assert rel_err(dxs, txs.grad.numpy()) < tol
    assert rel_err(dh0, th0.grad.numpy()) < tol
    for k, p in tcell.named_parameters():
        assert rel_err(cell.grads[k], p.grad.numpy()) < tol, k


@pytest.mark.parametrize("case", CASES + [("LSTMCell", v) for v in VARIANTS],
                         ids=[case_id(c) for c in CASES + [("LSTMCell", v) for v in VARIANTS]])
def test_cell_backward_matches_finite_differences(case):
    name, kw = case
    cell = getattr(numrnn, name)(I, H, dtype=np.float64, seed=4, **kw)
    xs, h0, c0, dhs, dcn = data(cell, seed=5)

    def loss():
        cell.reset()
        hs, c_last = run(cell, xs, h0, c0)
        return (hs * dhs).sum() + ((c_last * dcn).sum() if dcn is not None else 0.0)

    loss()
    cell.zero_grad()
    dxs, dh0, dc0 = unroll(cell, dhs, dcn)
    named = [(k, cell.params[k], cell.grads[k]) for k in cell.params] + [("x", xs, dxs), ("h0", h0, dh0)]
    if c0 is not None:
        named.append(("c0", c0, dc0))
    check_grads(loss, named, tol=1e-6)


LAYER_CASES = CASES + [("LSTMCell", v) for v in VARIANTS]


@pytest.mark.parametrize("case", LAYER_CASES, ids=[case_id(c) for c in LAYER_CASES])
def test_cell_loop_equals_sequence_layer(case):
    name, kw = case
    cell = getattr(numrnn, name)(I, H, dtype=np.float64, seed=6, **kw)
    layer = getattr(numrnn, name[:-4])(I, H, dtype=np.float64, **kw)
    layer.load_state_dict({k + "_l0": v for k, v in cell.params.items()})
    xs, h0, c0, dhs, dcn = data(cell, seed=7)

    hs, c_last = run(cell, xs, h0, c0)
    dxs, dh0, dc0 = unroll(cell, dhs, dcn)
    if is_lstm(cell):
        out, (_, c_n) = layer(xs, (h0[None], c0[None]))
        dx, (ldh0, ldc0) = layer.backward(dhs, (None, dcn[None]))
        assert rel_err(c_last, c_n[0]) < 1e-12
        assert rel_err(dc0, ldc0[0]) < 1e-12
    else:
        out, _ = layer(xs, h0[None])
        dx, ldh0 = layer.backward(dhs)
    assert rel_err(hs, out) < 1e-12
    assert rel_err(dxs, dx) < 1e-12
    assert rel_err(dh0, ldh0[0]) < 1e-12
    for k in cell.grads:
        assert rel_err(cell.grads[k], layer.grads[k + "_l0"]) < 1e-12, k


def test_tape_rules():
    cell = numrnn.GRUCell(I, H, dtype=np.float64, seed=8)
    rng = np.random.default_rng(9)
    x1, x2 = rng.standard_normal((B, I)), rng.standard_normal((1, I))
    with pytest.raises(RuntimeError, match="tape is empty"):
        cell.backward(np.ones((B, H)))
    h1 = cell(x1)                        # None state means zeros
    assert np.array_equal(h1, cell(x1, np.zeros((B, H))))
    cell.reset()
    with pytest.raises(RuntimeError, match="tape is empty"):
        cell.backward(np.ones((B, H)))
    h1 = cell(x1)
    cell(x2)                             # a step with another batch size
    x1_copy = x1.copy()
    x1 += 1.0                            # editing the caller's arrays does not change the tape
    with pytest.raises(ValueError, match=r"dh must have shape \(1, 4\)"):
        cell.backward(np.ones((B, H)))   # the most recent step had B = 1; the tape is unchanged
    dx2, _ = cell.backward(np.ones((1, H)))
    assert dx2.shape == (1, I)
    dx1, dh0 = cell.backward(np.ones((B, H)))
    assert dx1.shape == (B, I) and dh0.shape == (B, H)
    fresh = numrnn.GRUCell(I, H, dtype=np.float64, seed=8)
    fresh(x1_copy)
    fdx, _ = fresh.backward(np.ones((B, H)))
    assert np.array_equal(fdx, dx1)
    with pytest.raises(RuntimeError, match="tape is empty"):
        cell.backward(np.ones((B, H)))


def test_bad_input():
    cell = numrnn.LSTMCell(I, H)
    with pytest.raises(ValueError, match=r"x must be \[B, 3\]"):
        cell(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"x must be \[B, 3\]"):
        cell(np.ones((1, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"c must have shape \(2, 4\)"):
        cell(np.ones((2, 3)), (np.zeros((2, 4)), np.zeros((3, 4))))
    with pytest.raises(TypeError, match="pair"):
        cell(np.ones((2, 3)), np.zeros((2, 4)))
    with pytest.raises(TypeError, match="floating-point"):
        cell(np.ones((2, 3), np.int64))
    with pytest.raises(TypeError):
        numrnn.GRUCell(I, H, peephole=True)


@pytest.mark.parametrize("case", LAYER_CASES, ids=[case_id(c) for c in LAYER_CASES])
def test_cell_save_load(tmp_path, case):
    name, kw = case
    cell = getattr(numrnn, name)(I, H, seed=10, **kw)
    numrnn.save(cell, tmp_path / "cell.safetensors")
    back = numrnn.load(tmp_path / "cell.safetensors")
    assert type(back) is type(cell) and back.config() == cell.config()
    x = np.random.default_rng(11).standard_normal((B, I)).astype(np.float32)
    want, got = cell(x), back(x)
    for a, b in zip(want if is_lstm(cell) else [want], got if is_lstm(cell) else [got]):
        assert np.array_equal(a, b)
