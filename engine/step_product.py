"""A time step's recurrent product in the training kernels, out [B, N] = h [B, K] @ w.T for the
recurrent weight w [N, K] (backward: dg @ W_hh, the same with w = W_hh.T), in one of three orders
(chosen by forward_scratch and backward_scratch; private):
  PLAIN   h @ w.T as OpenBLAS gets it;
  LEFT    out.T = w @ h.T through OpenBLAS, h and out transposed through scratch memory;
  PACKED  w copied once per kernel call into bands of its rows, each band transposed ([K, rows]),
          and out = h @ band one BLAS call a band, through scratch.

Why LEFT: OpenBLAS runs the two orders of the same product at different speeds. Measured per
product on this project's 2-core machine, float32, one BLAS thread, same process, alternating
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

Why PACKED: in the left order the small kernel runs its vector lanes along the batch (at B=16 one
512-bit register) and loads each element of w once per 16 multiply-adds; h @ band with the band
stored [K, rows] puts the lanes along w's rows and the batch in the broadcast operand, which the
kernel blocks in registers. Bands are 64 rows (32 where 64 do not fit under the small kernels'
limit; none where 32 do not either). Measured against the left order in bands (same process,
alternating, paired medians, one thread): LSTM H=256 forward [1024, 256] 0.62-0.85 of its time at
B = 4..16 and 0.60-0.74 at B = 20..24, backward [256, 1024] 0.52-0.89; at B=32 0.90-1.2, so
B = 25..32 keep the left order. Against the plain order at weights under 2^17 elements (LSTM and
GRU H=128, RNN H=256): 0.27-0.73 forward, 0.43-0.92 backward at B = 4..24, except the GRU H=128
backward at B = 4, 8 (1.09-1.14 of 6-18 us), so it is taken from 2^15 elements. Packing costs a
transpose of w for the forward (0.3-0.6 ms for [1024, 256]) and a copy for the backward (0.12 ms),
so it is taken for 32 steps or more (forward) and 16 or more (backward): LSTM H=256 B=16 over 16
steps, forward 4.15 against 3.79-4.14 ms, over 64 steps 16.1-17.2 against 13.5-15.0 ms.

On other BLAS cores (OPENBLAS_CORETYPE=Haswell on the same machine) the bands ran 1.0-1.4x slower
than one call, so bands and packing are only taken where OpenBLAS picks the SkylakeX-family
kernels (SMALL_MNK). Banded and packed results differ from one call's in rounding (the kernels sum
in another order).
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
PACKED_MAX_ROWS, PACKED_MIN_WEIGHTS = 24, 1 << 15
# steps that pay for packing W_hh once a call: the forward's is a transpose, the backward's a copy
FORWARD_PACKED_STEPS, BACKWARD_PACKED_STEPS = 32, 16
PLAIN, LEFT, PACKED = 0, 1, 2       # the orders (scratch_order)
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
def packed_rows(M, K, N, itemsize, limit):
    """Rows of w [N, K] per band of the packed order against M rows of a, or 0 where it is not
    taken: float32, 4..24 rows, weights of at least 2^15 elements, and bands of 64 (else 32) rows
    small enough for OpenBLAS's small-matrix kernels (M * rows * K <= limit)."""
    if itemsize != 4 or limit == 0 or not (LEFT_MIN_ROWS <= M <= PACKED_MAX_ROWS) or N * K < PACKED_MIN_WEIGHTS:
        return 0
    if M * 64 * K <= limit:
        return min(64, N)
    if M * 32 * K <= limit:
        return min(32, N)
    return 0


@njit(cache=True)
def scratch_order(scratch, M, K, N):
    """The order a scratch of forward_scratch's was made for, told by its size: PACKED
    [N * K + M * N + 1], LEFT [K * M + N * M] (the two never equal), else PLAIN ([0])."""
    if scratch.size == N * K + M * N + 1:
        return PACKED
    return LEFT if scratch.size > 0 else PLAIN


@njit(cache=True)
def forward_scratch(x, M, w):
    """The scratch (x's dtype) of step_matmul_t's products of M rows against w [N, K] (the
    forward's W_hh) over x's T steps, for the order the rules above pick (scratch_for); PACKED
    from 32 steps (to pay for packing w), w packed in bands."""
    N, K = w.shape
    scratch, rows = scratch_for(x, M, K, N, x.shape[0] >= FORWARD_PACKED_STEPS)
    if rows:
        pack_bands(scratch, w, rows)
    return scratch


@njit(cache=True)
def backward_scratch(x, M, w):
    """The scratch of step_matmul's products of M rows against w [K, N] (the backward's W_hh; the
    product is against w.T), as forward_scratch's; PACKED from 16 steps, w.T packed in bands."""
    K, N = w.shape
    scratch, rows = scratch_for(x, M, K, N, x.shape[0] >= BACKWARD_PACKED_STEPS)
    if rows:
        pack_column_bands(scratch, w, rows)
    return scratch


@njit(cache=True)
def scratch_for(x, M, K, N, steps_pay):
    """(scratch, rows) for products of M rows against an [N, K] weight, rows > 0 when the weight
    is to be packed in bands of that many rows (packed_rows, where steps_pay: enough steps to pay
    for the packing): room for the packed weight, one product and one element that tells this
    scratch from the others [N * K + M * N + 1] (PACKED); else room for both transposes
    [K * M + N * M] where the left order is taken (LEFT), or [0] (PLAIN)."""
    rows = packed_rows(M, K, N, x.itemsize, SMALL_MNK) if steps_pay else 0
    if rows > 0:
        return np.empty(N * K + M * N + 1, x.dtype), rows
    left = x.itemsize == 4 and LEFT_MIN_ROWS <= M <= LEFT_MAX_ROWS and N * K >= LEFT_MIN_WEIGHTS
    return np.empty((K * M + N * M) if left else 0, x.dtype), 0


@njit(cache=True)
def pack_bands(dst, w, rows):
    """dst [N * K] = w [N, K] (C-contiguous) in bands of `rows` rows, each band transposed: the
    band from row r0 is a C-contiguous [K, rb] at dst[r0 * K:] (rb = rows, or what the last one
    holds). A transpose: 0.3-0.6 ms for the forward's [1024, 256] W_hh."""
    N, K = w.shape
    for r0 in range(0, N, rows):
        rb = min(rows, N - r0)
        transpose_into(view(dst, r0 * K, (K, rb)), w[r0:r0 + rb])


@njit(cache=True)
def pack_column_bands(dst, w, rows):
    """dst [N * K] = w.T [N, K] for w [K, N] (C-contiguous) as pack_bands packs it: the band from
    row r0 of w.T is w[:, r0:r0 + rb], copied piece by piece (0.12 ms for the backward's
    [1024, 256] W_hh)."""
    K, N = w.shape
    for r0 in range(0, N, rows):
        rb = min(rows, N - r0)
        band = view(dst, r0 * K, (K, rb))
        for k in range(K):
            for r in range(rb):
                band[k, r] = w[k, r0 + r]


@njit(cache=True)
def packed_matmul_t(out, a, scratch, rows):
    """out [M, N] = a [M, K] @ w.T from w packed in `scratch` by pack_bands (`rows` rows a band):
    one BLAS call a band, into the scratch behind the packed weight, then copied into out."""
    M, K = a.shape
    N = out.shape[1]
    for r0 in range(0, N, rows):
        rb = min(rows, N - r0)
        part = view(scratch, N * K + r0 * M, (M, rb))
        np.dot(a, view(scratch, r0 * K, (K, rb)), part)
        for m in range(M):          # loops, not a slice assignment: a third of the compile time
            for j in range(rb):
                out[m, r0 + j] = part[m, j]


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
def step_matmul_t(out, a, w, w_t, scratch):
    """out [M, N] = a [M, K] @ w.T for w [N, K] C-contiguous, in the order forward_scratch chose
    (its scratch; [0]: matmul_t, w_t being its small-batch transpose or [0, N]); w is not read in
    the PACKED order (the scratch holds it)."""
    M, K = a.shape
    N = out.shape[1]
    order = scratch_order(scratch, M, K, N)
    if order == PACKED:
        packed_matmul_t(out, a, scratch, packed_rows(M, K, N, a.itemsize, SMALL_MNK))
    elif order == LEFT:
        left_matmul_t(out, a, w, scratch, left_rows(M, K, N, SMALL_MNK))
    else:
        matmul_t(out, a, w, w_t)


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
def step_matmul(out, a, w, w_t, scratch):
    """out [M, N] = a [M, K] @ w for w [K, N] (backward's dg @ W_hh), in the order
    backward_scratch chose (its scratch): [0] OpenBLAS on w, else step_matmul_t on w.T (w_t: w.T
    made C-contiguous by backward_weight in the LEFT order)."""
    if scratch.size == 0:
        np.dot(a, w, out)
    else:
        step_matmul_t(out, a, w_t, w_t[:0], scratch)


@njit(cache=True)
def backward_weight(w, scratch, M):
    """What step_matmul needs besides w [K, N] and its scratch for M rows: w.T copied C-contiguous
    in the LEFT order, else an empty [0, K] array."""
    if scratch_order(scratch, M, w.shape[0], w.shape[1]) == LEFT:
        return np.ascontiguousarray(w.T)
    return w.T[:0].copy()
