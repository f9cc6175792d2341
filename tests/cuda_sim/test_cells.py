"""device='cuda' cells equal the CPU cells: a hand-written loop of T calls and T backward calls
(the tape), for every cell and the LSTM variants; every output and gradient is compared."""
import numpy as np
import pytest
from numba import cuda

import numrnn

CASES = [("RNNCell", dict(nonlinearity="relu")), ("GRUCell", dict()), ("LSTMCell", dict()),
         ("LSTMCell", dict(peephole=True, coupled=True))]


def rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30)


def run(cell, xs, dhs, on_device):
    """T steps then T backward calls; returns the outputs and input gradients, in order."""
    lstm = isinstance(cell, numrnn.LSTMCell)
    put = cuda.to_device if on_device else (lambda a: a)
    state, outs = None, []
    for x in xs:
        state = cell(put(x), state)
        outs.append(state)
    grads, dnext = [], None
    for dh in reversed(dhs):
        if lstm:
            dnext = (put(dh), None) if dnext is None else (put(dh + host(dnext[0])), dnext[1])
            dx, dnext = cell.backward(dnext)
        else:
            dnext = put(dh) if dnext is None else put(dh + host(dnext))
            dx, dnext = cell.backward(dnext)
        grads.append(dx)
    flat = [a for o in outs for a in (o if lstm else [o])] + grads + list(dnext if lstm else [dnext])
    assert all(hasattr(a, "copy_to_host") == on_device for a in flat)   # host in, host out; device in, device out
    return [host(a) for a in flat]


def host(a):
    return a.copy_to_host() if hasattr(a, "copy_to_host") else a


@pytest.mark.parametrize("name,kw", CASES)
def test_cell_loop_equals_cpu(name, kw):
    rng = np.random.default_rng(5)
    T, B, I, H = 3, 2, 2, 3
    xs = [rng.standard_normal((B, I)) for _ in range(T)]
    dhs = [rng.standard_normal((B, H)) for _ in range(T)]
    cpu = getattr(numrnn, name)(I, H, dtype=np.float64, seed=4, **kw)
    gpu = getattr(numrnn, name)(I, H, dtype=np.float64, seed=4, device="cuda", **kw)
    ref = run(cpu, xs, dhs, on_device=False)
    for got in (run(gpu, xs, dhs, on_device=False), run(gpu, xs, dhs, on_device=True)):
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            assert rel(g, r) < 1e-10
    for k, r in cpu.grads.items():             # two GPU runs accumulated: twice the CPU's gradient
        assert rel(gpu._xp.to_host(gpu.grads[k]), 2 * r) < 1e-10, k
