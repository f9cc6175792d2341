"""A time step's recurrent product in the training kernels, out [B, N] = h [B, K] @ w.T for the
recurrent weight w [N, K] (backward: dg @ W_hh, the same with w = W_hh.T copied once per call),
with the weight on the left when that is faster: out.T = w @ h.T through OpenBLAS, h and out
transposed through scratch memory (private).

Why: OpenBLAS runs the two orders of the same product at different speeds. Measured per product
on this project's 2-core machine, float32, one BLAS thread, same process, alternating
(benchmarks/step_product.py; its table is in the README, "Data-parallel training (MPI)"):
[16, 256] x [256, 1024] took 150-284 us as h @ w.T and 120-198 us as w @ h.T with both
transposes included; [32, 256] x [256, 1024] 212-286 against 190-262 us; [16, 512] x [512, 2048]
675-823 against 505-597 us. It loses at small weights (H=128 LSTM: even at B=16, 1.11-1.17x
slower at B=32), at B >= 64 (H=256: 1.04-1.23x slower) and in float64 (1.0-1.3x slower), so it is taken only for float32, 4..32 rows and weights of at least 2^17
elements (512 KiB): where it was measured faster. The results were equal to the bit in every
measured case of that range (OpenBLAS sums over K in the same order); the tests allow rounding.
"""
import numpy as np
from numba import njit

from .matvec import matmul_t
from .views import view

LEFT_MIN_ROWS, LEFT_MAX_ROWS = 4, 32
LEFT_MIN_WEIGHTS = 1 << 17


@njit(cache=True)
def left_scratch(x, M, K, N):
    """Scratch for products of M rows against an [N, K] weight with x's dtype: [K * M + N * M]
    when the weight-on-the-left order is taken (the rule above), else [0] (the plain product)."""
    left = x.itemsize == 4 and LEFT_MIN_ROWS <= M <= LEFT_MAX_ROWS and N * K >= LEFT_MIN_WEIGHTS
    return np.empty((K * M + N * M) if left else 0, x.dtype)


@njit(cache=True)
def transpose_into(dst, src):
    """dst [C, R] = src [R, C].T, in strips of 8 rows so both sides stay in cache lines."""
    R, C = src.shape
    for r0 in range(0, R, 8):
        r1 = min(r0 + 8, R)
        for c in range(C):
            for r in range(r0, r1):
                dst[c, r] = src[r, c]


@njit(cache=True)
def step_matmul_t(out, a, w, w_t, left):
    """out [M, N] = a [M, K] @ w.T for w [N, K] C-contiguous: with left scratch (left_scratch,
    size > 0) as out.T = w @ a.T, else matmul_t (w_t: its small-batch transpose, or [0, N])."""
    M, K = a.shape
    N = w.shape[0]
    if left.size == 0:
        matmul_t(out, a, w, w_t)
        return
    a_t = view(left, 0, (K, M))
    out_t = view(left, K * M, (N, M))
    transpose_into(a_t, a)
    np.dot(w, a_t, out_t)
    transpose_into(out, out_t)


@njit(cache=True)
def step_matmul(out, a, w, w_t, left):
    """out [M, N] = a [M, K] @ w for w [K, N] (backward's dg @ W_hh): with left scratch as
    step_matmul_t over w_t = w.T made C-contiguous by the caller, else OpenBLAS on w."""
    if left.size == 0:
        np.dot(a, w, out)
    else:
        step_matmul_t(out, a, w_t, w_t[:0], left)


@njit(cache=True)
def backward_weight(w, left):
    """What step_matmul needs besides w [K, N]: w.T copied C-contiguous when left scratch is
    used, else an empty [0, K] array."""
    if left.size == 0:
        return w.T[:0].copy()
    return np.ascontiguousarray(w.T)
