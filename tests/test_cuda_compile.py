"""Every CUDA kernel the engine launches compiles for real GPUs (compute capability 7.5, 8.0, 9.0)
with NVVM, no GPU needed; float32 kernels hold no float64 instruction; launches fit the hardware's
grid limits and warn nothing.

The workloads are the simulator tests' cases (tests/cuda_sim: every layer case and cell case, and
the training blocks), run in compile-only mode (tests/cuda_compile_only.py): the signatures compiled
are those the engine really launches, found by recording launches, not by listing kernels.
Needs NVVM from the `nvidia-cuda-nvcc-cu12` wheel (the test extra installs it through numba-cuda[cu12]).
"""
import contextlib
import importlib.util
import os
import pkgutil
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("numba_cuda")
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("compile-only mode needs the real numba.cuda, not the simulator", allow_module_level=True)

from numba import cuda  # noqa: E402
from numba.cuda.dispatcher import CUDADispatcher  # noqa: E402

import cuda_compile_only as cco  # noqa: E402
import numrnn  # noqa: E402
import numrnn.engine  # noqa: E402

CCS = [(7, 5), (8, 0), (9, 0)]
HERE = os.path.dirname(os.path.abspath(__file__))

# Kernels that compute in float64 on float32 data on purpose, so the PTX check skips them:
F64_ON_PURPOSE = {
    # sums read back to the host (loss, gradient norm): float64 partial sums, as the CPU's float(np.dot)
    "_partial_sums": "float64 partial sums of a loss or a squared norm",
    # the row's sum of exponentials and its log, matching the CPU loss to float64 rounding
    "_cross_entropy_rows": "float64 log-sum-exp per row",
    # Adam's denominator and step in float64, as NumPy computes them with Python-float scalars on the CPU
    "_adam": "float64 denominator and step, as on the CPU",
}
def _sim_module(name):
    """tests/cuda_sim/<name>.py, imported for its case lists (its tests run only under the simulator)."""
    spec = importlib.util.spec_from_file_location(f"cuda_sim_{name}", os.path.join(HERE, "cuda_sim", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _layer_cases(rng):
    for cell, kw, dtype, lengths in _sim_module("test_layers").CASES:
        L, D = kw.get("num_layers", 1), 2 if kw.get("bidirectional") else 1
        T, B, I, H = 3, 2, 2, 3
        P = kw.get("proj_size", 0) or H
        m = getattr(numrnn, cell)(I, H, dtype=dtype, seed=3, device="cuda", **kw)
        shape = (B, T, I) if kw.get("batch_first") else (T, B, I)
        states = [rng.standard_normal((L * D, B, P))] + ([rng.standard_normal((L * D, B, H))] if cell == "LSTM" else [])
        douts = [rng.standard_normal(shape[:2] + (D * P,))] + [rng.standard_normal(s.shape) for s in states]
        # host input; device input of the layer's dtype; float64 device input given a strided view
        for x in (rng.standard_normal(shape).astype(dtype), cuda.to_device(rng.standard_normal(shape).astype(dtype)),
                  cuda.to_device(rng.standard_normal(shape[:2] + (2 * I,)))[:, :, ::2]):
            state = tuple(states) if cell == "LSTM" else states[0]
            dstate = tuple(douts[1:]) if cell == "LSTM" else douts[1]
            m(x, state, lengths=lengths)
            m.backward(douts[0], dstate)


def _cell_cases(rng):
    for name, kw in _sim_module("test_cells").CASES:
        for dtype in (np.float64, np.float32):
            c = getattr(numrnn, name)(2, 3, dtype=dtype, seed=4, device="cuda", **kw)
            state = None
            for _ in range(2):
                state = c(rng.standard_normal((2, 2)), state)
            for _ in range(2):
                dh = rng.standard_normal((2, 3))
                c.backward((dh, None) if name == "LSTMCell" else dh)


def _block_cases(rng, tmp_path):
    for dtype in (np.float64, np.float32):
        for bias in (True, False):
            lin = numrnn.Linear(3, 5, bias=bias, dtype=dtype, device="cuda")
            lin(rng.standard_normal((2, 4, 3)))
            lin.backward(rng.standard_normal((2, 4, 5)))
        emb = numrnn.Embedding(6, 3, dtype=dtype, device="cuda")
        emb(cuda.to_device(np.array([[0, 5], [2, 2]])))
        emb.backward(cuda.to_device(rng.standard_normal((2, 2, 3)).astype(dtype)))
        z = cuda.to_device(rng.standard_normal((4, 2, 7)).astype(dtype))
        numrnn.losses.cross_entropy(z, cuda.to_device(rng.integers(0, 7, (4, 2))))
        p = cuda.to_device(rng.standard_normal((3, 5)).astype(dtype))
        numrnn.losses.mse(p, rng.standard_normal((3, 5)).astype(dtype))
        for make in (lambda ms: numrnn.optim.SGD(ms, lr=0.1),
                     lambda ms: numrnn.optim.SGD(ms, lr=0.1, momentum=0.9, weight_decay=0.01),
                     lambda ms: numrnn.optim.Adam(ms, lr=0.01, weight_decay=0.1)):
            blocks = [numrnn.Linear(3, 4, dtype=dtype, device="cuda"), numrnn.Embedding(5, 2, dtype=dtype, device="cuda")]
            opt = make(blocks)
            numrnn.optim.clip_grad_norm(blocks, 1.0)
            opt.step()
            opt.step()
        for cell, kw in (("lstm", dict(proj_size=2)), ("gru", dict(num_layers=2, dropout=0.5))):
            lm = numrnn.LanguageModel(6, 2, cell=cell, hidden_size=3, dtype=dtype, device="cuda", **kw)
            logits, _ = lm(cuda.to_device(rng.integers(0, 6, (3, 2))))
            _, dz = numrnn.losses.cross_entropy(logits, cuda.to_device(rng.integers(0, 6, (3, 2))))
            lm.backward(dz)
        numrnn.engine.cuda_blocks.total(cuda.to_device(rng.standard_normal(100000).astype(dtype)), squares=True)
    # more rows than a grid's y dimension holds blocks (65535): arrays are zeros, and nothing runs
    rows = 16 * 70000
    lin = numrnn.Linear(2, 3, dtype=np.float32, device="cuda")
    lin(cuda.to_device(np.zeros((rows, 2), np.float32)))
    lin.backward(cuda.to_device(np.zeros((rows, 3), np.float32)))
    numrnn.losses.cross_entropy(cuda.to_device(np.zeros((rows, 3), np.float32)),
                                cuda.to_device(np.zeros(rows, np.int64)))
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat; the dog sat on the log.\n" * 12)
    out = str(tmp_path / "m.safetensors")
    from numrnn.cli import main
    assert main(["train", "--data", str(text), "--cell", "gru", "--hidden-size", "4", "--embedding-dim", "3",
                 "--seq-len", "5", "--batch-size", "2", "--steps", "2", "--eval-every", "2",
                 "--device", "cuda", "--out", out]) == 0
    assert main(["generate", out, "--length", "5", "--prompt", "the ", "--device", "cuda"]) == 0


@contextlib.contextmanager
def _persistent():
    from numrnn.engine import cuda_config
    cuda_config.PERSISTENT = True
    try:
        yield
    finally:
        cuda_config.PERSISTENT = False


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    rng = np.random.default_rng(0)
    with warnings.catch_warnings(record=True) as caught, cco.recording() as launches:
        warnings.simplefilter("always")
        _layer_cases(rng)
        with _persistent():         # the opt-in whole-time-loop kernels (cuda_config.PERSISTENT)
            _layer_cases(rng)
        _cell_cases(rng)
        _block_cases(rng, tmp_path_factory.mktemp("cli"))
    return launches, caught


@pytest.fixture(scope="module")
def compiled(recorded):
    launches, _ = recorded
    t0 = time.perf_counter()
    ptx, errors = cco.compile_all(launches, CCS)
    n_sigs = sum(len(s) for s in launches.signatures.values())
    print(f"\ncompiled {len(launches.signatures)} kernels, {n_sigs} signatures, {len(CCS)} ccs "
          f"({len(ptx)} PTX, {len(errors)} failures) in {time.perf_counter() - t0:.1f} s")
    return ptx, errors


def _engine_kernels():
    """Every kernel defined at module level in numrnn.engine's cuda_* modules."""
    found = []
    for info in pkgutil.iter_modules(numrnn.engine.__path__):
        if info.name.startswith("cuda_"):
            module = importlib.import_module(f"numrnn.engine.{info.name}")
            found += [v for v in vars(module).values()
                      if isinstance(v, CUDADispatcher) and not v.targetoptions.get("device")
                      and v.py_func.__module__ == module.__name__]
    return found


def test_workloads_launch_every_engine_kernel(recorded):
    launches, _ = recorded
    missed = [k.py_func.__qualname__ for k in _engine_kernels() if k.py_func not in launches.signatures]
    assert not missed, f"kernels no workload launches (add a workload, or the compile check misses them): {missed}"


def test_launches_fit_the_grid_and_warn_nothing(recorded):
    launches, caught = recorded
    assert not launches.too_large, launches.too_large
    assert not [str(w.message) for w in caught if "Numba" in type(w.message).__name__], \
        sorted({str(w.message) for w in caught})


@pytest.mark.parametrize("cc", CCS)
def test_every_launched_kernel_compiles(compiled, cc):
    _, errors = compiled
    mine = [e for e in errors if f" cc {cc}:" in e]
    assert not mine, "\n".join(mine)


def test_float32_kernels_have_no_float64_instructions(recorded, compiled):
    """A float32 kernel (one that takes a float32 array) computes in float32: a Python float
    constant or `1.0 - x` would promote to float64, which consumer GPUs run at 1/32-1/64 rate.
    Conversions between float64 and float32 arrays are not float32 kernels (they take both)."""
    launches, _ = recorded
    ptx, _ = compiled
    found = {}
    for fn, signatures in launches.signatures.items():
        for argtypes in signatures:
            dtypes = {str(t.dtype) for t in argtypes if hasattr(t, "dtype") and hasattr(t, "ndim")}
            if "float32" not in dtypes or "float64" in dtypes or fn.__name__ in F64_ON_PURPOSE:
                continue
            code = ptx.get((fn, argtypes, CCS[-1]))
            if code is not None:          # a kernel that does not compile fails the test above
                name = f"{fn.__module__}.{fn.__qualname__}"
                n = len(cco.f64_instructions(code))
                if n:
                    found[name] = max(n, found.get(name, 0))
    assert not found, f"float64 instructions in float32 kernels: {found}"


def test_a_kernel_that_cannot_compile_fails_the_check():
    """The tiled product's old shared-array shape (tile + 1 is not a compile-time constant on a
    GPU; the simulator accepts it) is reported, with its kernel."""
    from numba import float32

    def make(tile):
        @cuda.jit
        def broken(c):
            s = cuda.shared.array((tile, tile + 1), float32)
            s[0, 0] = c[0]
            c[0] = s[0, 0]
        return broken

    with cco.recording() as launches:
        make(16)[1, 1](cuda.device_array(1, np.float32))
    _, errors = cco.compile_all(launches, CCS[:1])
    assert len(errors) == 1 and "make.<locals>.broken" in errors[0] and "shared.array" in errors[0], errors
