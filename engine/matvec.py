"""The small-batch product out = a @ w.T, as an axpy over w's transposed copy, for the inference
path (engine/infer.py); training keeps OpenBLAS for every product.

Why not a dot-product loop: a reduction does not vectorise in Numba without reassociation, and
it took 1.5-2x OpenBLAS's time. The axpy form `out[b] += a[b, k] * w_t[k]` over the rows of
w_t [K, N] (w transposed once, when the model is made ready) has a contiguous inner loop with no
reduction; four rows per pass keep out's loads and stores to a quarter, and adding them one
after another (not as a tree) keeps k's order and makes each a single FMA. Compiled with
contraction only (fastmath={"contract"}: a * b + c may become one FMA, nothing is reordered),
so results equal OpenBLAS's to rounding, not to the bit.
Measured per product [B, H] x [H, 4H], float32, one thread (benchmarks/matvec.py, README
"Small-batch product"): faster than OpenBLAS for B <= 8 at H = 16..256 except B=2 H=128
(OpenBLAS 3.6 us, axpy 8.0 us), so inference takes it for every product of <= SMALL_ROWS rows.
"""
import numpy as np
from numba import njit

SMALL_ROWS = 8   # a product with at most this many rows of a takes the axpy form


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def matmul_t_axpy(out, a, w_t):
    """out [M, N] = a [M, K] @ w_t [K, N], four rows of w_t per pass over out."""
    M, K = a.shape
    N = w_t.shape[1]
    for m in range(M):
        o = out[m]
        for n in range(N):
            o[n] = 0
    k = 0
    while k + 4 <= K:
        r0, r1, r2, r3 = w_t[k], w_t[k + 1], w_t[k + 2], w_t[k + 3]    # [N] each
        for m in range(M):
            a0, a1, a2, a3 = a[m, k], a[m, k + 1], a[m, k + 2], a[m, k + 3]
            o = out[m]
            for n in range(N):
                o[n] = (((o[n] + a0 * r0[n]) + a1 * r1[n]) + a2 * r2[n]) + a3 * r3[n]
        k += 4
    while k < K:
        r0 = w_t[k]
        for m in range(M):
            a0 = a[m, k]
            o = out[m]
            for n in range(N):
                o[n] += a0 * r0[n]
        k += 1


@njit(cache=True)
def matmul_t(out, a, w, w_t):
    """out [M, N] = a [M, K] @ w.T for w [N, K]: the axpy form over w_t [K, N] when there are few
    rows and w_t is given (it has K rows), else OpenBLAS (w_t [0, N] or [0, 0] when not given)."""
    if a.shape[0] <= SMALL_ROWS and w_t.shape[0] == a.shape[1] and a.shape[1] > 0:
        matmul_t_axpy(out, a, w_t)
    else:
        np.dot(a, w.T, out)
