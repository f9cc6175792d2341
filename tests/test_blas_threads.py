"""numrnn's BLAS thread count (python/numrnn/blas.py): one thread inside its own products by
default, the caller's setting everywhere else, and the user's choice when they made one."""
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import numrnn
from numrnn import blas
from numrnn.device import CPU


def blas_threads_now():
    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


@pytest.fixture
def seen(monkeypatch):
    """The BLAS thread counts at each matrix product numrnn's Linear makes."""
    counts, real = [], CPU.matmul
    monkeypatch.setattr(CPU, "matmul", lambda *a, **k: (counts.append(blas_threads_now()), real(*a, **k))[1])
    yield counts
    numrnn.set_blas_threads(blas._from_environment())


needs_two_cores = pytest.mark.skipif((__import__("os").cpu_count() or 1) < 2, reason="BLAS caps threads at the cores")


@needs_two_cores
def test_products_run_on_one_thread_and_the_rest_keeps_its_own(seen):
    lin = numrnn.Linear(3, 4, seed=0)
    with threadpool_limits(limits=2, user_api="blas"):      # the script's own setting
        numrnn.set_blas_threads(1)
        lin(np.ones((5, 3), np.float32))
        lin.backward(np.ones((5, 4), np.float32))
        assert set(blas_threads_now().values()) == {2}
    assert len(seen) == 3 and all(set(c.values()) == {1} for c in seen)


@needs_two_cores
def test_none_leaves_blas_as_configured(seen):
    numrnn.set_blas_threads(None)
    with threadpool_limits(limits=2, user_api="blas"):
        numrnn.Linear(3, 4, seed=0)(np.ones((5, 3), np.float32))
    assert set(seen[0].values()) == {2}
    with pytest.raises(ValueError, match="set_blas_threads\\(n\\) must be an integer >= 1 or None"):
        numrnn.set_blas_threads(0)


@pytest.mark.parametrize("env,expected", [({}, 1), ({"OMP_NUM_THREADS": "2"}, None),
                                          ({"OPENBLAS_NUM_THREADS": "2", "NUMRNN_BLAS_THREADS": "3"}, 3),
                                          ({"NUMRNN_BLAS_THREADS": "default"}, None)])
def test_default_from_the_environment(monkeypatch, env, expected):
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMRNN_BLAS_THREADS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert blas._from_environment() == expected
    monkeypatch.setenv("NUMRNN_BLAS_THREADS", "many")
    with pytest.raises(ValueError, match="NUMRNN_BLAS_THREADS must be an integer >= 1 or 'default', got 'many'"):
        blas._from_environment()


@needs_two_cores
@pytest.mark.parametrize("make", [lambda: numrnn.LSTM(3, 4, seed=0), lambda: numrnn.LSTMCell(3, 4, seed=0)])
def test_the_recurrent_kernels_run_on_one_thread(monkeypatch, make):
    from numrnn import engine
    counts = []
    for name in ("lstm_forward", "lstm_backward"):
        real = getattr(engine, name)
        monkeypatch.setattr(engine, name, lambda *a, real=real: (counts.append(blas_threads_now()), real(*a))[1])
    layer = make()
    numrnn.set_blas_threads(1)
    with threadpool_limits(limits=2, user_api="blas"):
        if isinstance(layer, numrnn.LSTMCell):
            h, c = layer(np.ones((2, 3), np.float32))
            layer.backward((np.ones_like(h), np.ones_like(c)))
        else:
            out, _ = layer(np.ones((1, 2, 3), np.float32))
            layer.backward(np.ones_like(out))
    assert len(counts) == 2 and all(set(c.values()) == {1} for c in counts)
