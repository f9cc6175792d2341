"""Runs tests/cuda_sim in a child process under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM must
be set before numba.cuda is first imported, which this process cannot promise), and checks that
device='cuda' without a usable GPU is a clear error at construction."""
import importlib.util
import os
import subprocess
import sys

import pytest

import numrnn

HERE = os.path.dirname(os.path.abspath(__file__))
needs_numba_cuda = pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                                      reason="numba-cuda is not installed (pip install 'numrnn[cuda]')")


@needs_numba_cuda
@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
                    reason="already under the simulator: pytest collects tests/cuda_sim directly")
def test_cuda_engine_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        os.path.join(HERE, "cuda_sim")], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]


def test_cuda_without_gpu_is_a_clear_error():
    from numrnn.device import cuda_problem
    if cuda_problem() is None:
        pytest.skip("a usable GPU (or the simulator) is present")
    with pytest.raises(RuntimeError, match=r"^device='cuda': (pip install|needs an NVIDIA GPU).*; or use device='cpu'$") as e:
        numrnn.LSTM(2, 3, device="cuda")
    assert len(str(e.value)) < 200 and ".." not in str(e.value), str(e.value)   # one short line


def test_cuda_without_gpu_exits_2_from_the_cli(capsys):
    from numrnn.cli import main
    from numrnn.device import cuda_problem
    if cuda_problem() is None:
        pytest.skip("a usable GPU (or the simulator) is present")
    assert main(["generate", "model.safetensors", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "device='cuda': " in err and "SIM" not in err, err


@needs_numba_cuda
@pytest.mark.parametrize("error,start", [
    ("libNVVM cannot be found. Do `conda install cudatoolkit`", "pip install 'numrnn[cuda]' (the CUDA compiler is missing"),
    ("CUDA_ERROR_UNSUPPORTED_PTX_VERSION: the provided PTX was compiled with an unsupported toolchain",
     "update the NVIDIA driver to >= 525.60.13"),
    ("out of memory", "a test kernel did not run: out of memory"),
])
def test_a_failing_test_kernel_names_the_fix_first(monkeypatch, error, start):
    from numba import cuda

    from numrnn import device

    def fail(*args, **kwargs):
        raise RuntimeError(error)
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "device_array", fail)
    device.cuda_problem.cache_clear()
    try:
        problem = device.cuda_problem()
    finally:
        device.cuda_problem.cache_clear()
    assert problem.startswith(start) and len(problem) < 200, problem
