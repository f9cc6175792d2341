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
slower at B=32), at B >= 64 (H=256: 1.04-1.23x slower) and in float64 (1.0-1.3x slower), so it
is taken only for float32, 4..32 rows and weights of at least 2^17 elements (512 KiB): where it
was measured faster.

In the left order the product is also cut into bands of rows of w where that is faster
(left_rows): OpenBLAS's SkylakeX-family kernels (AVX-512 CPUs) run a product of M * N * K up to
10^6 through "small-matrix" kernels that read w where it lies, while a larger one first copies
(packs) the whole of w, which at these sizes costs as much as the arithmetic. Bands of w small
enough for the small kernels took (same process, alternating, one thread) [1024, 256] at B=16 from
107 to 71 us, at B=32 from 157 to 104 us, and [256, 1024] at B=16 from 108 to 79 us; over the
LSTM, GRU and RNN weights of H = 256..1024, 0.26-0.95 of the whole product's time at B <= 19 and
0.61-1.03 at B = 31, 32, but up to 1.56 at B = 20..30 (not explained; OpenBLAS's small kernel
runs the columns past a multiple of 16 through other paths), so bands are taken at B <= 16 and
B = 32. Bands are a multiple of 12 rows: bands of 8, 16 or 32 rows ran 1.3-2.2x slower than 12,
24 or 30 when w's rows are a multiple of 4 KiB apart.
On other BLAS cores (OPENBLAS_CORETYPE=Haswell on the same machine) the bands ran 1.0-1.4x slower
than one call, so they are only taken where OpenBLAS picks the SkylakeX-family kernels
(SMALL_MNK). Banded results differ from one call's in rounding (the kernels sum in another order).
"""
import os

import numpy as np
from llvmlite import binding
from numba import njit

from .matvec import matmul_t
from .views import view

LEFT_MIN_ROWS, LEFT_MAX_ROWS = 4, 32
LEFT_MIN_WEIGHTS = 1 << 17
BAND_MULTIPLE = 12
SMALL_KERNEL_CORES = ("skylakex", "cooperlake", "sapphirerapids")    # OpenBLAS's names, lower case


def small_kernel_limit():
    """The largest M * N * K that the BLAS the kernels call (SciPy's OpenBLAS) multiplies with its
    small-matrix kernels on this machine: 10^6 where OpenBLAS runs its SkylakeX-family kernels
    (SkylakeX, Cooperlake, SapphireRapids: the cores it picks on CPUs with AVX-512, or the one
    $OPENBLAS_CORETYPE names), else 0. Read from the CPU's features, without loading the BLAS;
    tests/test_recurrent.py checks it against what OpenBLAS reports."""
    core = os.environ.get("OPENBLAS_CORETYPE", "").strip().lower()
    if core:
        return 1_000_000 if core in SMALL_KERNEL_CORES else 0
    try:
        features = binding.get_host_cpu_features()
    except RuntimeError:        # LLVM cannot tell on this host: one call, as before the bands
        return 0
    avx512 = all(features.get(f, False) for f in ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"))
    return 1_000_000 if avx512 else 0


# a constant in the compiled kernels; engine/__init__.py recompiles them when it changes
SMALL_MNK = small_kernel_limit()


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
def left_rows(M, K, N, limit):
    """Rows of w [N, K] per BLAS call of the left-order product against M columns: bands of a
    multiple of 12 rows small enough for OpenBLAS's small-matrix kernels (M * rows * K <= limit)
    at M <= 16 or M == 32, else N (one call)."""
    if limit == 0 or not (M <= 16 or M == 32):
        return N
    rows = limit // (M * K) // BAND_MULTIPLE * BAND_MULTIPLE
    return rows if BAND_MULTIPLE <= rows < N else N


@njit(cache=True)
def left_product(out_t, w, a_t, rows):
    """out_t [N, M] = w [N, K] @ a_t [K, M], `rows` rows of w per BLAS call."""
    N = w.shape[0]
    for r0 in range(0, N, rows):
        r1 = min(r0 + rows, N)
        np.dot(w[r0:r1], a_t, out_t[r0:r1])


@njit(cache=True)
def step_matmul_t(out, a, w, w_t, left):
    """out [M, N] = a [M, K] @ w.T for w [N, K] C-contiguous: with left scratch (left_scratch,
    size > 0) as out.T = w @ a.T, else matmul_t (w_t: its small-batch transpose, or [0, N])."""
    M, K = a.shape
    N = w.shape[0]
    if left.size == 0:
        matmul_t(out, a, w, w_t)
    else:
        left_matmul_t(out, a, w, left, left_rows(M, K, N, SMALL_MNK))


@njit(cache=True)
def left_matmul_t(out, a, w, left, rows):
    """out [M, N] = a [M, K] @ w.T as out.T = w @ a.T, through the left scratch, `rows` rows of w
    per BLAS call."""
    M, K = a.shape
    N = w.shape[0]
    a_t = view(left, 0, (K, M))
    out_t = view(left, K * M, (N, M))
    transpose_into(a_t, a)
    left_product(out_t, w, a_t, rows)
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
