"""The gate nonlinearities of engine/activations.py (an exp built from arithmetic, so that the
gate loops vectorise) against NumPy in extended precision, over the whole range and at the edges."""
import numpy as np
import pytest
from numba import njit

from numrnn.engine.activations import exp, sigmoid, tanh


@njit(error_model="numpy")
def apply(x, out, which):
    for i in range(x.size):
        if which == 0:
            out[i] = exp(x[i])
        elif which == 1:
            out[i] = sigmoid(x[i])
        else:
            out[i] = tanh(x[i])


def run(x, which):
    out = np.empty_like(x)
    apply(x, out, which)
    return out


# largest errors allowed: exp relative (2 ulp), sigmoid and tanh absolute (float32: 4 ulp of 1,
# as their float32 arithmetic rounds three times)
LIMITS = {np.float32: (1.2e-7, 2.4e-7), np.float64: (4.5e-16, 4.5e-16)}
RANGES = {np.float32: (-87.0, 88.0), np.float64: (-708.0, 709.0)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_sigmoid_tanh_match_numpy(dtype):
    lo, hi = RANGES[dtype]
    rng = np.random.default_rng()
    x = np.concatenate([rng.uniform(lo, hi, 200_000), 6 * rng.standard_normal(200_000)]).astype(dtype)
    exact = x.astype(np.longdouble)
    e_lim, a_lim = LIMITS[dtype]
    assert np.max(np.abs(run(x, 0) - np.exp(exact)) / np.exp(exact)) < e_lim
    assert np.max(np.abs(run(x, 1) - 1 / (1 + np.exp(-exact)))) < a_lim
    assert np.max(np.abs(run(x, 2) - np.tanh(exact))) < a_lim


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_edges_saturate_and_nan_passes_through(dtype):
    x = np.array([-np.inf, -1e30, 1e30, np.inf, 0.0, np.nan], dtype)
    s, t = run(x, 1), run(x, 2)
    assert np.all(s[:2] < 1e-37) and np.all(s[2:4] == 1.0) and s[4] == 0.5
    assert np.all(t[:2] == -1.0) and np.all(t[2:4] == 1.0) and t[4] == 0.0
    assert np.isnan(run(x, 0)[5]) and np.isnan(s[5]) and np.isnan(t[5])

