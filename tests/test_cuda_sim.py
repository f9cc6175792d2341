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
    with pytest.raises(RuntimeError, match="device='cuda'.*(numba-cuda|NUMBA_ENABLE_CUDASIM)"):
        numrnn.LSTM(2, 3, device="cuda")
