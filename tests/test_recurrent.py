"""RNN, LSTM and GRU layers, forward and backward, checked three ways on fresh random data:
against the plain NumPy reference (naive.py), against float64 finite differences, and against
PyTorch (skipped where torch is absent). Every output and every gradient is compared, using
loss = sum(out * dout) + sum(h_n * dh_n) [+ sum(c_n * dc_n)] with random upstream gradients."""

import os

import numpy as np
import pytest
from finite_diff import check_grads, rel_err

import naive
import numrnn

CELLS = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("GRU", {}), ("LSTM", {}), ("LSTM", {"proj_size": 2})]
SHAPES = [
    dict(T=4, B=3),
    dict(T=3, B=2, num_layers=2, bidirectional=True),
    dict(T=3, B=2, num_layers=3, bias=False),
    dict(T=4, B=2, batch_first=True, bidirectional=True),
    dict(T=5, B=3, num_layers=2, bidirectional=True, lengths=[5, 2, 4]),
    dict(T=4, B=3, batch_first=True, lengths=[1, 4, 3]),
    dict(T=1, B=1),
    dict(T=1, B=1, num_layers=2, bidirectional=True),
]
CASES = [(cell, opts, shape) for cell, opts in CELLS for shape in SHAPES]
I, H = 3, 4
TOL = {np.float64: 1e-10, np.float32: 1e-5}


def case_id(case):
    cell, opts, shape = case
    return "-".join([cell] + [f"{k}{v}" for k, v in {**opts, **shape}.items()])


def make(cell, opts, shape, dtype, seed):
    """Layer, inputs and upstream gradients, all drawn fresh from `seed`."""
    shape = dict(shape)
    T, B = shape.pop("T"), shape.pop("B")
    lengths = shape.pop("lengths", None)
    layer = getattr(numrnn, cell)(I, H, dtype=dtype, seed=seed, **opts, **shape)
    rng = np.random.default_rng(seed + 1000)
    L, D, P = layer.num_layers, layer.num_directions, layer.out_size
    bf = layer.batch_first
    data = dict(
        x=rng.standard_normal((B, T, I) if bf else (T, B, I)),
        h0=rng.standard_normal((L * D, B, P)),
        c0=rng.standard_normal((L * D, B, H)) if cell == "LSTM" else None,
        lengths=None if lengths is None else np.array(lengths),
        dout=rng.standard_normal((B, T, D * P) if bf else (T, B, D * P)),
        dh_n=rng.standard_normal((L * D, B, P)),
        dc_n=rng.standard_normal((L * D, B, H)) if cell == "LSTM" else None)
    return layer, {k: None if v is None else (v.astype(dtype) if v.dtype.kind == "f" else v) for k, v in data.items()}


def run(layer, d):
    """Forward then backward through the numrnn layer: ({name: output}, {name: gradient})."""
    layer.zero_grad()
    if layer.cell == "LSTM":
        out, (h_n, c_n) = layer(d["x"], (d["h0"], d["c0"]), d["lengths"])
        dx, (dh0, dc0) = layer.backward(d["dout"], (d["dh_n"], d["dc_n"]))
        outs, grads = dict(out=out, h_n=h_n, c_n=c_n), dict(x=dx, h0=dh0, c0=dc0)
    else:
        out, h_n = layer(d["x"], d["h0"], d["lengths"])
        dx, dh0 = layer.backward(d["dout"], d["dh_n"])
        outs, grads = dict(out=out, h_n=h_n), dict(x=dx, h0=dh0)
    grads.update({k: v.copy() for k, v in layer.grads.items()})
    return outs, grads


def loss_of(layer, d):
    outs, _ = run(layer, d)
    total = (outs["out"] * d["dout"]).sum() + (outs["h_n"] * d["dh_n"]).sum()
    return total + ((outs["c_n"] * d["dc_n"]).sum() if "c_n" in outs else 0.0)


def assert_close(got, want, tol, what):
    errors = {k: rel_err(got[k], want[k]) for k in want}
    bad = {k: f"{e:.2e}" for k, e in errors.items() if not e < tol}
    assert not bad, f"{what}: relative error above {tol:g}: {bad}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_matches_numpy_reference(case, dtype):
    cell, opts, shape = case
    layer, d = make(cell, opts, shape, dtype, seed=len(case_id(case)))
    outs, grads = run(layer, d)
    p = {k: v.astype(np.float64) for k, v in layer.params.items()}
    f64 = {k: None if v is None else v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in d.items()}
    bf = layer.batch_first
    tm = (lambda a: a.transpose(1, 0, 2)) if bf else (lambda a: a)
    T, B = tm(f64["x"]).shape[:2]
    lengths = np.full(B, T) if d["lengths"] is None else d["lengths"]
    kw = dict(num_layers=layer.num_layers, bidirectional=layer.bidirectional, nonlinearity=layer.nonlinearity)
    out, h_n, c_n, tape = naive.forward(cell, p, tm(f64["x"]), f64["h0"], f64["c0"], lengths=lengths, **kw)
    dx, dh0, dc0, g = naive.backward(cell, p, tape, tm(f64["dout"]), f64["dh_n"], f64["dc_n"], **kw)
    want_outs, want_grads = dict(out=tm(out), h_n=h_n), dict(x=tm(dx), h0=dh0, **g)
    if cell == "LSTM":
        want_outs["c_n"], want_grads["c0"] = c_n, dc0
    assert set(grads) == set(want_grads)
    assert_close(outs, want_outs, TOL[dtype], "outputs vs NumPy reference")
    assert_close(grads, want_grads, TOL[dtype], "gradients vs NumPy reference")


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_gradients_match_finite_differences(case):
    cell, opts, shape = case
    layer, d = make(cell, opts, shape, np.float64, seed=7 + len(case_id(case)))
    _, grads = run(layer, d)
    named = [(k, d[k], grads[k]) for k in ("x", "h0", "c0") if d[k] is not None]
    named += [(k, layer.params[k], grads[k]) for k in layer.params]
    check_grads(lambda: loss_of(layer, d), named, tol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_matches_pytorch(case, dtype):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    cell, opts, shape = case
    layer, d = make(cell, opts, shape, dtype, seed=3 + len(case_id(case)))
    outs, grads = run(layer, d)
    kw = dict(num_layers=layer.num_layers, bias=layer.bias, batch_first=layer.batch_first,
              bidirectional=layer.bidirectional, **opts)
    tm = getattr(torch.nn, cell)(I, H, **kw).to(torch.float64 if dtype == np.float64 else torch.float32)
    tm.load_state_dict({k: torch.tensor(v) for k, v in layer.params.items()})
    t = {k: None if v is None or v.dtype.kind != "f" else torch.tensor(v, requires_grad=k in ("x", "h0", "c0"))
         for k, v in d.items()}
    state = (t["h0"], t["c0"]) if cell == "LSTM" else t["h0"]
    inp = t["x"]
    if d["lengths"] is not None:
        inp = pack_padded_sequence(inp, torch.tensor(d["lengths"]), batch_first=layer.batch_first, enforce_sorted=False)
    out, st = tm(inp, state)
    if d["lengths"] is not None:
        out, _ = pad_packed_sequence(out, batch_first=layer.batch_first, total_length=d["x"].shape[1 if layer.batch_first else 0])
    h_n, c_n = st if cell == "LSTM" else (st, None)
    loss = (out * t["dout"]).sum() + (h_n * t["dh_n"]).sum() + (0 if c_n is None else (c_n * t["dc_n"]).sum())
    loss.backward()
    want_outs = dict(out=out.detach().numpy(), h_n=h_n.detach().numpy())
    want_grads = dict(x=t["x"].grad.numpy(), h0=t["h0"].grad.numpy())
    if cell == "LSTM":
        want_outs["c_n"], want_grads["c0"] = c_n.detach().numpy(), t["c0"].grad.numpy()
    want_grads.update({k: v.grad.numpy() for k, v in tm.named_parameters()})
    assert set(grads) == set(want_grads)
    tol = 1e-9 if dtype == np.float64 else 2e-5
    assert_close(outs, want_outs, tol, "outputs vs PyTorch")
    assert_close(grads, want_grads, tol, "gradients vs PyTorch")


# sizes at which the training kernels run each step's recurrent product in another order than
# OpenBLAS's plain h @ W.T (engine/step_product.py), with the orders of the forward and the backward
# product where OpenBLAS has its small-matrix kernels (without them: the left order for weights of
# 2^17 elements or more, else plain): packed bands at 4..24 rows, weights of 2^15 elements or more
# and 32 steps or more (forward), 16 or more (backward); else the left order (float32, 4..32 rows,
# weights of 2^17 elements or more), in bands at B <= 16 and B = 32
LEFT_CASES = [("LSTM", 256, dict(T=32, B=4, lengths=[32, 1, 9, 32]), "packed", "packed"),
              ("GRU", 256, dict(T=3, B=32), "left", "left"),
              ("RNN", 512, dict(T=16, B=5, bidirectional=True), "left", "packed"),
              ("LSTM", 256, dict(T=2, B=8, num_layers=2), "left", "left"),
              ("GRU", 256, dict(T=40, B=24, lengths=[40] * 20 + [1, 2, 39, 17]), "packed", "packed"),
              ("GRU", 128, dict(T=32, B=12), "packed", "packed")]


@pytest.mark.parametrize("cell,hidden,shape,forward_order,backward_order", LEFT_CASES,
                         ids=[f"{c[0]}-H{c[1]}-T{c[2]['T']}-B{c[2]['B']}" for c in LEFT_CASES])
def test_other_product_orders_match_the_reference(cell, hidden, shape, forward_order, backward_order):
    from numrnn.engine import step_product as sp
    shape = dict(shape)
    T, B, lengths = shape.pop("T"), shape.pop("B"), shape.pop("lengths", None)
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[cell] * hidden
    # the orders of the scratch the kernels make: forward h @ W_hh.T, W_hh [G, H]; backward dg @ W_hh
    x, w_hh = np.zeros((T, B, 1), np.float32), np.zeros((G, hidden), np.float32)
    orders = (sp.scratch_order(sp.forward_scratch(x, B, w_hh), B, hidden, G),
              sp.scratch_order(sp.backward_scratch(x, B, w_hh), B, G, hidden))
    named = {"packed": sp.PACKED, "left": sp.LEFT}
    if sp.SMALL_MNK:
        assert orders == (named[forward_order], named[backward_order])
    else:
        assert orders == (sp.LEFT, sp.LEFT) if G * hidden >= sp.LEFT_MIN_WEIGHTS else (sp.PLAIN, sp.PLAIN)
    layer = getattr(numrnn, cell)(I, hidden, dtype=np.float32, seed=B, **shape)
    rng = np.random.default_rng(B + hidden)
    LD = layer.num_layers * layer.num_directions
    d = dict(x=rng.standard_normal((T, B, I)), h0=rng.standard_normal((LD, B, hidden)),
             c0=rng.standard_normal((LD, B, hidden)) if cell == "LSTM" else None,
             lengths=None if lengths is None else np.array(lengths),
             dout=rng.standard_normal((T, B, layer.num_directions * hidden)), dh_n=rng.standard_normal((LD, B, hidden)),
             dc_n=rng.standard_normal((LD, B, hidden)) if cell == "LSTM" else None)
    outs, grads = run(layer, {k: v if v is None or v.dtype.kind != "f" else v.astype(np.float32) for k, v in d.items()})
    p = {k: v.astype(np.float64) for k, v in layer.params.items()}
    kw = dict(num_layers=layer.num_layers, bidirectional=layer.bidirectional, nonlinearity=layer.nonlinearity)
    out, h_n, c_n, tape = naive.forward(cell, p, d["x"], d["h0"], d["c0"],
                                        lengths=np.full(B, T) if lengths is None else d["lengths"], **kw)
    dx, dh0, dc0, g = naive.backward(cell, p, tape, d["dout"], d["dh_n"], d["dc_n"], **kw)
    want_outs, want_grads = dict(out=out, h_n=h_n), dict(x=dx, h0=dh0, **g)
    if cell == "LSTM":
        want_outs["c_n"], want_grads["c0"] = c_n, dc0
    assert set(grads) == set(want_grads)
    assert_close(outs, want_outs, TOL[np.float32], "outputs vs NumPy reference")
    assert_close(grads, want_grads, TOL[np.float32], "gradients vs NumPy reference")


@pytest.mark.parametrize("N,K,M,rows", [(1024, 256, 16, 240), (256, 1024, 32, 24), (100, 30, 5, 12), (50, 7, 3, 49)])
def test_the_left_product_in_bands_of_rows_equals_the_whole_product(N, K, M, rows):
    from numrnn.engine.step_product import left_product
    rng = np.random.default_rng()
    w, a_t = rng.standard_normal((N, K)).astype(np.float32), rng.standard_normal((K, M)).astype(np.float32)
    out_t = np.full((N, M), np.nan, np.float32)
    left_product(out_t, w, a_t, rows)
    want = w.astype(np.float64) @ a_t.astype(np.float64)
    assert np.linalg.norm(out_t - want) / np.linalg.norm(want) < 1e-6


def test_bands_are_taken_at_the_batch_sizes_and_weights_where_they_were_measured_faster():
    from numrnn.engine.step_product import left_rows, packed_rows
    limit = 10 ** 6
    assert left_rows(16, 256, 1024, limit) == 240       # LSTM H=256 forward: 16 * 240 * 256 <= 10^6
    assert left_rows(16, 1024, 256, limit) == 60        # and backward
    assert left_rows(32, 256, 1024, limit) == 120
    assert left_rows(24, 256, 1024, limit) == 1024      # B = 20..30: one call (slower in bands)
    assert left_rows(32, 4096, 1024, limit) == 1024     # a band under 12 rows: one call
    assert left_rows(16, 256, 1024, 0) == 1024          # no small-matrix kernels: one call
    assert packed_rows(16, 256, 1024, 4, limit) == 64   # LSTM H=256 forward: bands of 64 rows
    assert packed_rows(16, 1024, 256, 4, limit) == 32   # backward: 16 * 64 * 1024 > 10^6
    assert packed_rows(12, 1024, 256, 4, limit) == 64
    assert packed_rows(16, 2048, 512, 4, limit) == 0    # not even 32 rows fit: the left order
    assert packed_rows(32, 256, 1024, 4, limit) == 0    # B = 25..32: the left order
    assert packed_rows(3, 256, 1024, 4, limit) == 0     # B < 4: plain
    assert packed_rows(16, 256, 1024, 8, limit) == 0    # float64: plain
    assert packed_rows(16, 128, 512, 4, limit) == 64    # LSTM H=128: 2^16 elements
    assert packed_rows(16, 128, 128, 4, limit) == 0     # weights under 2^15 elements: plain
    assert packed_rows(16, 256, 1024, 4, 0) == 0        # no small-matrix kernels: the left order


@pytest.mark.parametrize("N,K,M,rows", [(1024, 256, 16, 64), (256, 1024, 8, 32), (100, 30, 5, 32), (50, 7, 3, 49)])
def test_the_packed_product_equals_the_whole_product(N, K, M, rows):
    from numrnn.engine.step_product import pack_bands, pack_column_bands, packed_matmul_t
    rng = np.random.default_rng()
    w, a = rng.standard_normal((N, K)).astype(np.float32), rng.standard_normal((M, K)).astype(np.float32)
    scratch = np.full(N * K + M * N + 1, np.nan, np.float32)
    pack_bands(scratch, w, rows)
    out = np.full((M, N), np.nan, np.float32)
    packed_matmul_t(out, a, scratch, rows)
    want = a.astype(np.float64) @ w.T.astype(np.float64)
    assert np.linalg.norm(out - want) / np.linalg.norm(want) < 1e-6
    scratch[:] = np.nan
    pack_column_bands(scratch, np.ascontiguousarray(w.T), rows)     # the backward packs W_hh.T
    out[:] = np.nan
    packed_matmul_t(out, a, scratch, rows)
    assert np.linalg.norm(out - want) / np.linalg.norm(want) < 1e-6


def test_the_small_kernel_limit_agrees_with_the_core_openblas_reports():
    """step_product.SMALL_MNK is read from the CPU's features; OpenBLAS says which kernels it runs."""
    import scipy.linalg.cython_blas  # noqa: F401  the kernels' BLAS, loaded so that threadpoolctl sees it
    from threadpoolctl import threadpool_info
    from numrnn.engine.step_product import SMALL_KERNEL_CORES, SMALL_MNK
    scipy_blas = [i for i in threadpool_info() if i["user_api"] == "blas"
                  and "scipy.libs" in i["filepath"].replace(os.sep, "/").split("/")]
    if not scipy_blas:
        pytest.skip("SciPy's BLAS is not the OpenBLAS of its PyPI wheel here")
    info = scipy_blas[0]
    small = info["internal_api"] == "openblas" and \
        (info.get("architecture") or "").lower() in SMALL_KERNEL_CORES
    assert (SMALL_MNK > 0) == small, info
