"""The training blocks' GPU kernels (Numba CUDA): Linear's bias, Embedding's lookup and its
gradient, the cross-entropy and mean-squared-error losses, and the SGD and Adam updates with
gradient clipping. The Python blocks (python/numrnn/linear.py, embedding.py, losses.py, optim.py)
validate and call these; their CPU versions are NumPy lines there, and these do the same
arithmetic in the same order. Host functions here launch kernels; the only values that come
back to the host are the scalars they return (a sum, a count of bad ids).

N rows (tokens), V vocabulary, E embedding width, F features; flat buffers are 1-D.
"""
import math

import numpy as np
from numba import cuda, float64

from .cuda_config import FASTMATH, THREADS
from .cuda_steps import grid_1d


# -- sums over the device, read back as one number -----------------------------------------------
@cuda.jit(device=True, inline=True)
def _block_reduce(part, tid, maximum):
    """part [blockDim.x] float64 in shared memory, one value per thread (blockDim.x a power of two)
    -> the sum (or the max) of them all, by a tree in a fixed order. Every thread of the block must
    call it, and sync before writing part again."""
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if tid < step:
            part[tid] = max(part[tid], part[tid + step]) if maximum else part[tid] + part[tid + step]
        cuda.syncthreads()
        step //= 2
    return part[0]


@cuda.jit(cache=True, fastmath=FASTMATH)
def _partial_sums(out, a, squares):
    """out [blocks] float64: block k's share of sum(a) (or sum(a * a)) over a [n]; a grid-stride
    loop, then a tree in shared memory, so the order of the additions is fixed (same every run)."""
    part = cuda.shared.array(THREADS, float64)
    tid = cuda.threadIdx.x
    i = cuda.grid(1)
    acc = 0.0
    while i < a.size:
        v = float64(a[i])
        acc += v * v if squares else v
        i += cuda.gridDim.x * cuda.blockDim.x
    part[tid] = acc
    s = _block_reduce(part, tid, False)
    if tid == 0:
        out[cuda.blockIdx.x] = s


def _pow2_at_least(n):
    return 1 << max(0, int(n) - 1).bit_length()


def total(a, squares=False):
    """sum(a) or sum(a * a) over a 1-D device array, accumulated in float64, as a Python float."""
    if a.size == 0:
        return 0.0
    threads = min(THREADS, _pow2_at_least(a.size))
    blocks = min(THREADS, (a.size + threads - 1) // threads)
    parts = cuda.device_array(blocks, np.float64)
    _partial_sums[blocks, threads](parts, a, squares)
    if blocks > 1:
        whole = cuda.device_array(1, np.float64)
        _partial_sums[1, _pow2_at_least(blocks)](whole, parts, False)
        parts = whole
    return float(parts[:1].copy_to_host()[0])


# -- elementwise -----------------------------------------------------------------------------------
@cuda.jit(cache=True, fastmath=FASTMATH)
def _set_or_scale(a, value, multiply):
    """a [n] = value, or a *= value when multiply."""
    i = cuda.grid(1)
    if i < a.size:
        a[i] = a[i] * value if multiply else value


def _launch_set_or_scale(a, value, multiply):
    if a.size:
        blocks, threads = grid_1d(a.size)
        _set_or_scale[blocks, threads](a, a.dtype.type(value), multiply)


def fill(a, value):
    """a [n] = value, in place."""
    _launch_set_or_scale(a, value, False)


def scale(a, coef):
    """a [n] *= coef, in place (coef rounded to a's dtype first, like NumPy's a *= dtype(coef))."""
    _launch_set_or_scale(a, coef, True)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _add_rows(y, b):
    """y [N, F] += b [F] on every row."""
    i = cuda.grid(1)
    N, F = y.shape
    if i < N * F:
        y[i // F, i % F] += b[i % F]


def add_rows(y, b):
    if y.size:
        blocks, threads = grid_1d(y.size)
        _add_rows[blocks, threads](y, b)


# -- Embedding -------------------------------------------------------------------------------------
@cuda.jit(cache=True, fastmath=FASTMATH)
def _gather_rows(out, w, ids, bad):
    """out [N, E] = w [V, E] rows ids [N]; an id outside 0..V-1 gives a zero row and sets bad[0]."""
    i = cuda.grid(1)
    N, E = out.shape
    if i >= N * E:
        return
    n = i // E
    k = i - n * E
    r = ids[n]
    if r < 0 or r >= w.shape[0]:
        bad[0] = 1
        out[n, k] = 0.0
    else:
        out[n, k] = w[r, k]


def gather_rows(w, ids):
    """w [V, E], ids [N] int device array -> (a new [N, E] device array, True when every id was in
    0..V-1)."""
    out = cuda.device_array((ids.size, w.shape[1]), w.dtype)
    bad = cuda.to_device(np.zeros(1, np.int32))
    if out.size:
        blocks, threads = grid_1d(out.size)
        _gather_rows[blocks, threads](out, w, ids, bad)
    return out, not bad.copy_to_host()[0]


@cuda.jit(cache=True, fastmath=FASTMATH)
def _scatter_add_rows(dw, ids, de):
    """dw [V, E] row ids[n] += de [N, E] row n. Atomic, since an id may repeat: the additions to
    one element land in any order, so float results vary in the last bits from run to run."""
    i = cuda.grid(1)
    N, E = de.shape
    if i >= N * E:
        return
    n = i // E
    k = i - n * E
    cuda.atomic.add(dw, (ids[n], k), de[n, k])


def scatter_add_rows(dw, ids, de):
    if de.size:
        blocks, threads = grid_1d(de.size)
        _scatter_add_rows[blocks, threads](dw, ids, de)


# -- losses ----------------------------------------------------------------------------------------
@cuda.jit(cache=True, fastmath=FASTMATH)
def _cross_entropy_rows(dz, row_loss, z, targets, bad):
    """Block n owns row n of z [N, V], its threads every blockDim.x-th column:
    row_loss [N] float64 = log sum exp(z[n]) - z[n, t], dz [N, V] = (softmax(z[n]) - onehot(t)) / N,
    t = targets[n]; a target outside 0..V-1 sets bad[0] and gives a zero row. The row's max and
    sum of exponentials are float64 trees in shared memory (a fixed order)."""
    part = cuda.shared.array(THREADS, float64)
    tid = cuda.threadIdx.x
    threads = cuda.blockDim.x
    n = cuda.blockIdx.x
    N, V = z.shape
    t = targets[n]
    if t < 0 or t >= V:                # the same for every thread of the block
        if tid == 0:
            bad[0] = 1
            row_loss[n] = 0.0
        for j in range(tid, V, threads):
            dz[n, j] = 0.0
        return
    top = -math.inf
    for j in range(tid, V, threads):
        top = max(top, float64(z[n, j]))
    part[tid] = top
    top = _block_reduce(part, tid, True)
    cuda.syncthreads()                 # every thread has read the max before part is reused
    s = 0.0
    for j in range(tid, V, threads):
        e = math.exp(z[n, j] - top)    # softmax is shift-invariant; this keeps exp finite
        dz[n, j] = e
        s += e
    part[tid] = s
    s = _block_reduce(part, tid, False)
    if tid == 0:
        row_loss[n] = math.log(s) - (z[n, t] - top)
    for j in range(tid, V, threads):
        d = dz[n, j] / s
        if j == t:
            d -= 1.0
        dz[n, j] = d / N


def cross_entropy(z, targets):
    """z [N, V] logits, targets [N] int device arrays -> (mean loss over rows as a Python float,
    dz [N, V] device array, True when every target was in 0..V-1)."""
    N = z.shape[0]
    dz = cuda.device_array(z.shape, z.dtype)
    row_loss = cuda.device_array(N, np.float64)
    bad = cuda.to_device(np.zeros(1, np.int32))
    _cross_entropy_rows[N, min(THREADS, _pow2_at_least(z.shape[1]))](dz, row_loss, z, targets, bad)
    ok = not bad.copy_to_host()[0]
    return total(row_loss) / N, dz, ok


@cuda.jit(cache=True, fastmath=FASTMATH)
def _difference(out, a, b):
    """out [n] = a [n] - b [n]."""
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a[i] - b[i]


def mse(pred, target):
    """pred, target [n] device arrays of one dtype -> (mean squared difference as a Python float,
    dpred [n] device array)."""
    dpred = cuda.device_array(pred.shape, pred.dtype)
    blocks, threads = grid_1d(pred.size)
    _difference[blocks, threads](dpred, pred, target)
    loss = total(dpred, squares=True) / pred.size
    scale(dpred, 2.0 / pred.size)
    return loss, dpred


# -- optimisers ------------------------------------------------------------------------------------
@cuda.jit(cache=True, fastmath=FASTMATH)
def _sgd(p, g, buf, lr, momentum, weight_decay, first):
    """torch.optim.SGD on p, g, buf [n]: g' = g + wd p; buf = g' (first) or momentum buf + g'
    (when momentum); p -= lr * (buf or g')."""
    i = cuda.grid(1)
    if i >= p.size:
        return
    gi = g[i] + weight_decay * p[i] if weight_decay != 0.0 else g[i]
    if momentum != 0.0:
        if first:
            buf[i] = gi
        else:
            buf[i] = buf[i] * momentum + gi
        gi = buf[i]
    p[i] -= lr * gi


def sgd(p, g, buf, lr, momentum, weight_decay, first):
    """buf: a device array like p (ignored when momentum is 0); first: buf holds nothing yet."""
    t = p.dtype.type
    blocks, threads = grid_1d(p.size)
    _sgd[blocks, threads](p, g, buf, t(lr), t(momentum), t(weight_decay), first)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _adam(p, g, m, v, one_minus_beta1, beta2, one_minus_beta2, weight_decay, step_size, bias2_sqrt, eps):
    """torch.optim.Adam on p, g, m, v [n]: m, v moving averages of g' and g'^2 (g' = g + wd p),
    p -= step_size * m / (sqrt(v) / bias2_sqrt + eps), the last two in float64 as NumPy does."""
    i = cuda.grid(1)
    if i >= p.size:
        return
    gi = g[i] + weight_decay * p[i] if weight_decay != 0.0 else g[i]
    m[i] += one_minus_beta1 * (gi - m[i])
    v[i] = v[i] * beta2
    v[i] += one_minus_beta2 * gi * gi
    denom = math.sqrt(float64(v[i])) / bias2_sqrt + eps
    p[i] -= step_size * (float64(m[i]) / denom)


def adam(p, g, m, v, beta1, beta2, weight_decay, step_size, bias2_sqrt, eps):
    """step_size = lr / (1 - beta1^step), bias2_sqrt = sqrt(1 - beta2^step)."""
    t = p.dtype.type
    blocks, threads = grid_1d(p.size)
    _adam[blocks, threads](p, g, m, v, t(1 - beta1), t(beta2), t(1 - beta2), t(weight_decay),
                           float(step_size), float(bias2_sqrt), float(eps))
