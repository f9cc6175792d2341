"""Launches and device allocations of one forward and one backward call per cell, counted under the
simulator: the per-step part must be at most one launch forward and one backward (two each with
an LSTM projection, which needs all of r before h = W_hr r), and nothing may be allocated inside
the time loop; with the persistent kernels (no projection) the count does not grow with T at all. Every kernel launch is counted, the tiled products of engine/cuda_steps.py too."""
import numpy as np
import pytest
from numba import cuda
from numba.cuda.simulator.kernel import FakeCUDAKernel

from numrnn.engine import cuda_config, cuda_gru, cuda_lstm, cuda_rnn
from numrnn.engine.gates import RELU, TANH


@pytest.fixture
def counts(monkeypatch):
    """Counts kernel launches (a launch is kernel[grid, block]) and cuda.device_array calls."""
    n = dict(launches=0, allocations=0)
    configure = FakeCUDAKernel.__getitem__
    allocate = cuda.device_array

    def counted_configure(self, configuration):
        n["launches"] += 1
        return configure(self, configuration)

    def counted_allocate(*args, **kw):
        n["allocations"] += 1
        return allocate(*args, **kw)

    monkeypatch.setattr(FakeCUDAKernel, "__getitem__", counted_configure)
    monkeypatch.setattr(cuda, "device_array", counted_allocate)
    return n


def arrays(rng, *shapes):
    return [cuda.to_device(rng.standard_normal(s)) for s in shapes]


def rnn_calls(T, B, I, H, act):
    rng = np.random.default_rng(0)
    x, h0, w_ih, w_hh, b_ih, b_hh, dhs, dhn = arrays(rng, (T, B, I), (B, H), (H, I), (H, H), (H,), (H,),
                                                     (T, B, H), (B, H))
    hs, dx, dh0, dw_ih, dw_hh, db_ih, db_hh = arrays(rng, (T, B, H), (T, B, I), (B, H), (H, I), (H, H), (H,), (H,))
    lengths = cuda.to_device(np.full(B, T, np.int64))
    return (lambda: cuda_rnn.rnn_forward(hs, x, h0, w_ih, w_hh, b_ih, b_hh, act, lengths, False),
            lambda: cuda_rnn.rnn_backward(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dhs, dhn, x, h0, w_ih, w_hh, hs,
                                          act, lengths, False))


def gru_calls(T, B, I, H):
    rng = np.random.default_rng(0)
    G = 3 * H
    x, h0, w_ih, w_hh, b_ih, b_hh, dhs, dhn = arrays(rng, (T, B, I), (B, H), (G, I), (G, H), (G,), (G,),
                                                     (T, B, H), (B, H))
    hs, acts, hn_pre, dx, dh0 = arrays(rng, (T, B, H), (T, B, G), (T, B, H), (T, B, I), (B, H))
    dw_ih, dw_hh, db_ih, db_hh = arrays(rng, (G, I), (G, H), (G,), (G,))
    lengths = cuda.to_device(np.full(B, T, np.int64))
    return (lambda: cuda_gru.gru_forward(hs, acts, hn_pre, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, False),
            lambda: cuda_gru.gru_backward(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dhs, dhn, x, h0, w_ih, w_hh,
                                          hs, acts, hn_pre, lengths, False))


def lstm_calls(T, B, I, H, P=0, peephole=False, coupled=False):
    rng = np.random.default_rng(0)
    G = (3 if coupled else 4) * H
    NP = (2 if coupled else 3) if peephole else 0
    K = P or H
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, dhs, dhn, dcn = arrays(
        rng, (T, B, I), (B, K), (B, H), (G, I), (G, K), (G,), (G,), (T, B, K), (B, K), (B, H))
    w_hr, w_peep, dw_hr, dw_peep = arrays(rng, (P, H) if P else (0, 0), (NP, H), (P, H) if P else (0, 0), (NP, H))
    hs, cs, acts, dx, dh0, dc0 = arrays(rng, (T, B, K), (T, B, H), (T, B, G), (T, B, I), (B, K), (B, H))
    dw_ih, dw_hh, db_ih, db_hh = arrays(rng, (G, I), (G, K), (G,), (G,))
    lengths = cuda.to_device(np.full(B, T, np.int64))
    return (lambda: cuda_lstm.lstm_forward(hs, cs, acts, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep,
                                           lengths, False, coupled),
            lambda: cuda_lstm.lstm_backward(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, dw_peep, dhs, dhn,
                                            dcn, x, h0, c0, w_ih, w_hh, w_hr, w_peep, hs, cs, acts, lengths,
                                            False, coupled))


CASES = [("RNN tanh", lambda T: rnn_calls(T, 2, 3, 5, TANH), 1),
         ("RNN relu", lambda T: rnn_calls(T, 2, 3, 5, RELU), 1),
         ("GRU", lambda T: gru_calls(T, 2, 3, 5), 1),
         ("LSTM", lambda T: lstm_calls(T, 2, 3, 5), 1),
         ("LSTM peephole coupled", lambda T: lstm_calls(T, 2, 3, 5, peephole=True, coupled=True), 1),
         ("LSTM proj", lambda T: lstm_calls(T, 2, 3, 5, P=4, peephole=True), 2)]


def measure(counts, calls):
    """(launches, allocations) of each call in calls, in order."""
    out = []
    for call in calls:
        counts.update(launches=0, allocations=0)
        call()
        out.append((counts["launches"], counts["allocations"]))
    return out


@pytest.mark.parametrize("name,make,per_step", CASES, ids=[c[0] for c in CASES])
def test_launches_per_step(counts, name, make, per_step):
    T1, T2 = 2, 6   # from T = 2 on, weight_grads makes the same products whatever T is
    short = measure(counts, make(T1))
    long = measure(counts, make(T2))
    for what, (l1, a1), (l2, a2) in zip(("forward", "backward"), short, long):
        assert l2 - l1 <= per_step * (T2 - T1), f"{name} {what}: {l1} launches at T={T1}, {l2} at T={T2}"
        assert a2 == a1, f"{name} {what}: {a1} allocations at T={T1}, {a2} at T={T2}"


@pytest.mark.parametrize("name,make,per_step", CASES[:-1], ids=[c[0] for c in CASES[:-1]])
def test_persistent_launches_do_not_grow_with_T(counts, monkeypatch, name, make, per_step):
    monkeypatch.setattr(cuda_config, "PERSISTENT", True)
    short = measure(counts, make(2))
    long = measure(counts, make(6))
    assert short == long, f"{name}: (launches, allocations) forward, backward at T=2 {short}, at T=6 {long}"
