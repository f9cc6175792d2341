"""device='cuda' layers equal the CPU engine, forward and backward: every cell (LSTM with and
without proj_size, GRU, RNN tanh and relu) with each option on its own, in float64, some options
combined in float32, and the LSTM variants; every output and gradient is compared."""
import numpy as np
import pytest

import numrnn
from numrnn.engine.cuda_steps import gemm

TOL = {np.float64: 1e-10, np.float32: 1e-5}

CELLS = [("LSTM", dict()), ("LSTM", dict(proj_size=2)), ("GRU", dict()),
         ("RNN", dict()), ("RNN", dict(nonlinearity="relu"))]
OPTIONS = [(dict(), None), (dict(num_layers=2, dropout=0.5), None), (dict(bidirectional=True), None),
           (dict(batch_first=True), None), (dict(bias=False), None), (dict(), [3, 1])]
CASES = [(cell, dict(ckw, **okw), np.float64, lengths) for cell, ckw in CELLS for okw, lengths in OPTIONS] + [
    ("LSTM", dict(num_layers=2, bidirectional=True, batch_first=True), np.float32, [2, 1]),
    ("LSTM", dict(proj_size=2, bidirectional=True, bias=False), np.float32, [1, 3]),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True, dropout=0.5), np.float32, [2, 1]),
    ("RNN", dict(nonlinearity="relu", num_layers=2, bidirectional=True), np.float32, [1, 3]),
    # the LSTM variants (peephole connections, coupled input-forget gate)
    ("LSTM", dict(peephole=True), np.float64, None),
    ("LSTM", dict(coupled=True), np.float64, None),
    ("LSTM", dict(peephole=True, coupled=True, num_layers=2, bidirectional=True), np.float64, [3, 1]),
    ("LSTM", dict(peephole=True, proj_size=2, bidirectional=True, batch_first=True), np.float32, [1, 3]),
]


def rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize("cell,kw,dtype,lengths", CASES)
def test_layer_equals_cpu(cell, kw, dtype, lengths):
    rng = np.random.default_rng(7)
    T, B, I, H = 3, 2, 2, 3
    L, D = kw.get("num_layers", 1), 2 if kw.get("bidirectional") else 1
    P = kw.get("proj_size", 0) or H
    cpu = getattr(numrnn, cell)(I, H, dtype=dtype, seed=3, **kw)
    gpu = getattr(numrnn, cell)(I, H, dtype=dtype, seed=3, device="cuda", **kw)
    x = rng.standard_normal((B, T, I) if kw.get("batch_first") else (T, B, I)).astype(dtype)
    h0 = rng.standard_normal((L * D, B, P)).astype(dtype)
    dout = rng.standard_normal((B, T, D * P) if kw.get("batch_first") else (T, B, D * P)).astype(dtype)
    dhn = rng.standard_normal((L * D, B, P)).astype(dtype)
    res = {}
    for name, m in (("cpu", cpu), ("gpu", gpu)):
        if cell == "LSTM":
            c0 = rng.standard_normal((L * D, B, H)).astype(dtype) if name == "cpu" else res["c0"]
            res["c0"], dcn = c0, (res.get("dcn") if name == "gpu" else rng.standard_normal((L * D, B, H)).astype(dtype))
            res["dcn"] = dcn
            out, (hn, cn) = m(x, (h0, c0), lengths=lengths)
            dx, (dh0, dc0) = m.backward(dout, (dhn, dcn))
            got = dict(out=out, hn=hn, cn=cn, dx=dx, dh0=dh0, dc0=dc0)
        else:
            out, hn = m(x, h0, lengths=lengths)
            dx, dh0 = m.backward(dout, dhn)
            got = dict(out=out, hn=hn, dx=dx, dh0=dh0)
        got.update({"grad " + k: np.array(m._xp.to_host(g)) for k, g in m.grads.items()})
        res[name] = got
    for k, ref in res["cpu"].items():
        assert isinstance(res["gpu"][k], np.ndarray), k   # numpy in, numpy out
        assert rel(res["gpu"][k], ref) < TOL[dtype], (k, rel(res["gpu"][k], ref))


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True)])
def test_gemm_real_tile(ta, tb):
    """The simulator's engine uses TILE=4; this checks the GPU's tile of 16 over several tiles."""
    from numba import cuda
    rng = np.random.default_rng(1)
    M, N, K = 18, 17, 20
    a = rng.standard_normal((K, M) if ta else (M, K))
    b = rng.standard_normal((N, K) if tb else (K, N))
    c0 = rng.standard_normal((M, N))
    c = cuda.to_device(c0)
    gemm(c, cuda.to_device(a), cuda.to_device(b), ta, tb, accumulate=True, tile=16)
    ref = c0 + (a.T if ta else a) @ (b.T if tb else b)
    assert rel(c.copy_to_host(), ref) < 1e-12


def test_device_in_device_out_and_state_dict(tmp_path):
    from numba import cuda
    rng = np.random.default_rng(2)
    m = numrnn.GRU(2, 3, dtype=np.float64, seed=1, device="cuda", batch_first=True)
    x = rng.standard_normal((2, 3, 2))
    out, hn = m(cuda.to_device(x))
    assert not isinstance(out, np.ndarray) and hasattr(out, "copy_to_host")
    ref, _ = numrnn.GRU(2, 3, dtype=np.float64, seed=1, batch_first=True)(x)
    assert rel(out.copy_to_host(), ref) < 1e-12
    dx, dh0 = m.backward(cuda.to_device(rng.standard_normal(out.shape)))
    assert hasattr(dx, "copy_to_host") and dx.shape == x.shape
    path = tmp_path / "g.safetensors"
    numrnn.save(m, path)
    back = numrnn.load(path, device="cuda")
    for k, v in m.state_dict().items():
        assert np.array_equal(back.state_dict()[k], v)


class FakeTorchCudaTensor:
    """The two ways a PyTorch CUDA tensor answers: is_cuda, and __cuda_array_interface__ raising
    RuntimeError (not AttributeError) while it requires grad, as torch does; detach() gives `inner`."""
    is_cuda = True

    def __init__(self, inner, requires_grad):
        self.inner, self.requires_grad = inner, requires_grad

    @property
    def __cuda_array_interface__(self):
        if self.requires_grad:
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad.")
        return self.inner.__cuda_array_interface__

    def detach(self):
        return self.inner


class FakeCupyArray:
    __cuda_array_interface__ = {"shape": (2,), "typestr": "<f8", "data": (0, False), "version": 3}


def test_gpu_arrays_from_other_libraries_count_as_device_arrays():
    import torch
    from numrnn.device import CUDA
    assert CUDA.is_device_array(FakeCupyArray())
    assert CUDA.is_device_array(FakeTorchCudaTensor(FakeCupyArray(), requires_grad=True))
    assert CUDA.is_device_array(FakeTorchCudaTensor(FakeCupyArray(), requires_grad=False))
    cpu_tensor = torch.ones(2, 3, requires_grad=True)     # a CPU tensor is host input, grad or not
    assert not CUDA.is_device_array(cpu_tensor)
    assert np.array_equal(CUDA.asarray(cpu_tensor), np.ones((2, 3), np.float32))



def test_layer_takes_a_torch_cuda_tensor_that_requires_grad():
    from numba import cuda
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 2))
    ref, _ = numrnn.GRU(2, 3, dtype=np.float64, seed=1)(x)
    out, _ = numrnn.GRU(2, 3, dtype=np.float64, seed=1, device="cuda")(
        FakeTorchCudaTensor(cuda.to_device(x), requires_grad=True))
    assert hasattr(out, "copy_to_host") and rel(out.copy_to_host(), ref) < 1e-12
