"""Building blocks shared by the three cells' CUDA engines (engine/cuda_*.py): the tiled matrix
product, bias sums, and the products after the backward loop. Siblings of engine/steps.py; host
functions here launch kernels, they never copy data to or from the host.

All arrays are C-contiguous Numba device arrays; every launch goes to the default stream, so
launches run in order and workspaces can be reused from one step to the next.
"""
import functools

import numpy as np
from numba import cuda, from_dtype

from .cuda_config import FASTMATH, SUM_COLS, THREADS, TILE
from .steps import time_at as _time_at

time_at = _time_at.py_func   # the same rule as the CPU engine, called from the host loop


def grid_1d(n):
    """(blocks, threads) covering n elements, one thread each."""
    threads = max(1, min(THREADS, n))
    return (n + threads - 1) // threads, threads


@functools.lru_cache(maxsize=None)
def gemm_kernel(dtype, tile):
    """The tiled matrix product for one element type and tile edge (shared memory needs both
    at compile time)."""
    nbtype = from_dtype(np.dtype(dtype))
    shape = (tile, tile + 1)   # a tuple made here is a compile-time constant in the kernel

    @cuda.jit(cache=True, fastmath=FASTMATH)
    def kernel(c, a, b, trans_a, trans_b, accumulate):
        """c [M, N] = (c if accumulate) + op(a) [M, K] @ op(b) [K, N], op = transpose when asked.
        One thread per element of c; block k owns tile (k // tiles across N, k % tiles across N)
        of c (a 1-D grid, so any M fits) and stages tile x tile tiles of op(a) and op(b) in shared
        memory, loaded so that neighbouring threads read neighbouring addresses of the stored
        (untransposed) array."""
        a_tile = cuda.shared.array(shape, nbtype)   # [m, k]; the extra column avoids bank conflicts
        b_tile = cuda.shared.array(shape, nbtype)   # [k, n]
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        M, N = c.shape
        tiles_n = (N + tile - 1) // tile
        m0 = (cuda.blockIdx.x // tiles_n) * tile
        n0 = (cuda.blockIdx.x % tiles_n) * tile
        K = a.shape[0] if trans_a else a.shape[1]
        zero = nbtype(0)
        acc = zero
        for k0 in range(0, K, tile):
            if trans_a:                      # a stored [K, M]
                k, m = k0 + ty, m0 + tx
                a_tile[tx, ty] = a[k, m] if k < K and m < M else zero
            else:                            # a stored [M, K]
                m, k = m0 + ty, k0 + tx
                a_tile[ty, tx] = a[m, k] if k < K and m < M else zero
            if trans_b:                      # b stored [N, K]
                n, k = n0 + ty, k0 + tx
                b_tile[tx, ty] = b[n, k] if k < K and n < N else zero
            else:                            # b stored [K, N]
                k, n = k0 + ty, n0 + tx
                b_tile[ty, tx] = b[k, n] if k < K and n < N else zero
            cuda.syncthreads()
            for kk in range(tile):
                acc += a_tile[ty, kk] * b_tile[kk, tx]
            cuda.syncthreads()
        m = m0 + ty
        n = n0 + tx
        if m < M and n < N:
            if accumulate:
                c[m, n] += acc
            else:
                c[m, n] = acc

    return kernel


def gemm(c, a, b, trans_a=False, trans_b=False, accumulate=False, tile=TILE):
    """c [M, N] (+)= op(a) [M, K] @ op(b) [K, N] on the device."""
    M, N = c.shape
    K = a.shape[0] if trans_a else a.shape[1]
    assert (a.shape[1] if trans_a else a.shape[0]) == M and (b.shape[1] if trans_b else b.shape[0]) == K \
        and (b.shape[0] if trans_b else b.shape[1]) == N, "gemm: shapes do not fit"
    if M == 0 or N == 0:
        return
    blocks = ((M + tile - 1) // tile) * ((N + tile - 1) // tile)
    gemm_kernel(c.dtype, tile)[blocks, (tile, tile)](c, a, b, trans_a, trans_b, accumulate)


@functools.lru_cache(maxsize=None)
def col_sums_kernel(dtype):
    """The column sum for one element type (its shared memory and its zero are of that type)."""
    nbtype = from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)
    shape = (THREADS // SUM_COLS, SUM_COLS)

    @cuda.jit(cache=True, fastmath=FASTMATH)
    def kernel(out, a):
        """out [N] += sum over rows of a [M, N]. A block owns SUM_COLS neighbouring columns
        (threads along x read neighbouring addresses); each row of threads (y) sums every
        blockDim.y-th row, then a tree in shared memory adds those partial sums in a fixed order."""
        part = cuda.shared.array(shape, nbtype)   # [rows of threads, columns]
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        M, N = a.shape
        n = cuda.blockIdx.x * cuda.blockDim.x + tx
        acc = zero
        if n < N:
            for m in range(ty, M, cuda.blockDim.y):
                acc += a[m, n]
        part[ty, tx] = acc
        cuda.syncthreads()
        step = cuda.blockDim.y // 2
        while step > 0:
            if ty < step:
                part[ty, tx] += part[ty + step, tx]
            cuda.syncthreads()
            step //= 2
        if ty == 0 and n < N:
            out[n] += part[0, tx]

    return kernel


def col_sums(out, a):
    """out [N] += sum over the rows of a [M, N], on the device."""
    N = a.shape[1]
    if N:
        col_sums_kernel(a.dtype)[(N + SUM_COLS - 1) // SUM_COLS, (SUM_COLS, THREADS // SUM_COLS)](out, a)


def weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dgx, dgh, x, hs, h0, w_ih, reverse):
    """Products after the backward loop, over all steps at once (sibling of steps.weight_grads).
    dx [T, B, I] out; dw_ih [G, I], dw_hh [G, K], db_ih [G], db_hh [G] accumulated;
    dgx [T, B, G] grad of the input-side pre-activations, dgh [T, B, G] of the recurrent side;
    x [T, B, I]; hs [T, B, K] state after each step; h0 [B, K]; w_ih [G, I]."""
    T, B, I = x.shape
    G = w_ih.shape[0]
    K = h0.shape[1]
    dgx2 = dgx.reshape(T * B, G)
    dgh2 = dgh.reshape(T * B, G)
    gemm(dx.reshape(T * B, I), dgx2, w_ih)
    gemm(dw_ih, dgx2, x.reshape(T * B, I), trans_a=True, accumulate=True)
    # W_hh meets the state entering each step: h0 at the first step walked, else the state stored
    # at the neighbouring time index; both are contiguous blocks, so no [T, B, K] copy is made.
    first = T - 1 if reverse else 0
    gemm(dw_hh, dgh[first], h0, trans_a=True, accumulate=True)
    if T > 1:
        steps, states = (dgh[0:T - 1], hs[1:T]) if reverse else (dgh[1:T], hs[0:T - 1])
        gemm(dw_hh, steps.reshape((T - 1) * B, G), states.reshape((T - 1) * B, K),
             trans_a=True, accumulate=True)
    col_sums(db_ih, dgx2)
    col_sums(db_hh, dgh2)
