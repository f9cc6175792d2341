"""The fused step kernels (engine/cuda_fused.py and the cells) at sizes where B * H spans several
thread blocks (cuda_config.THREADS is 16 under the simulator) and the last block is partly idle,
with ragged lengths and both directions: device='cuda' equals the CPU engine. The persistent
kernels (cuda_config.PERSISTENT, no projection) likewise: the simulator runs them in one block of
16 threads, so the grid-stride loop takes each thread over two units."""
import numpy as np
import pytest

import numrnn
from numrnn.engine import cuda_config

CASES = [("LSTM", dict(peephole=True, proj_size=4)), ("LSTM", dict(coupled=True)), ("GRU", dict()),
         ("RNN", dict(nonlinearity="relu"))]


def rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize("cell,kw,persistent", [(c, kw, False) for c, kw in CASES] +
                         [(c, kw, True) for c, kw in CASES if "proj_size" not in kw])
def test_several_blocks_equal_cpu(monkeypatch, cell, kw, persistent):
    monkeypatch.setattr(cuda_config, "PERSISTENT", persistent)
    rng = np.random.default_rng(11)
    T, B, I, H = 4, 3, 2, 7               # B * H = 21 threads: two blocks of 16
    kw = dict(kw, bidirectional=True)
    P = kw.get("proj_size", 0) or H
    lengths = [4, 1, 3]
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, 2 * P))
    dhn, dcn = rng.standard_normal((2, B, P)), rng.standard_normal((2, B, H))   # L * D = 2
    res = {}
    for device in ("cpu", "cuda"):
        m = getattr(numrnn, cell)(I, H, dtype=np.float64, seed=2, device=device, **kw)
        out, state = m(x, lengths=lengths)
        dx, dstate = m.backward(dout, (dhn, dcn) if cell == "LSTM" else dhn)
        got = dict(out=out, dx=dx, **{k: np.array(m._xp.to_host(g)) for k, g in m.grads.items()})
        pairs = (state, dstate) if cell == "LSTM" else ((state,), (dstate,))
        got.update(zip(("h_n", "c_n"), pairs[0]), **dict(zip(("dh0", "dc0"), pairs[1])))
        res[device] = got
    for k, ref in res["cpu"].items():
        assert rel(res["cuda"][k], ref) < 1e-10, (k, rel(res["cuda"][k], ref))
