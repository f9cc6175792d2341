"""Pieces shared by the fused step kernels of engine/cuda_lstm.py, cuda_gru.py and cuda_rnn.py:
the recurrent products one thread computes for its own unit, the typed sigmoid, the two small
launches each call makes outside its time loop (W_hh transposed, the gradient into h0), and the
launch of the persistent kernels.

The scheme (one launch per time step, forward and backward): a step's kernel has one thread per
(b, j) -- batch row, hidden unit -- and that thread computes every gate of unit j for row b. It
reads the previous step's state h_{t-1} [B, K] whole from global memory (the previous launch
wrote it; launches on the default stream run in order, so no grid-wide sync is needed) and forms
the recurrent rows of W_hh h itself, so no product launch precedes the gate update. Backward the
same: the gradient entering h_t is (dg_{t+1} @ W_hh)[b, j], read from the previous launch's dg.
Threads never write an element another thread of the same launch reads.

Persistent kernels (opt-in, cuda_config.PERSISTENT): each cell also has one kernel that walks the
whole time loop in a single cooperative launch, calling the same per-unit device functions as its
step kernels in a grid-stride loop and cuda.cg.this_grid().sync() between steps. Numba's simulator
syncs a grid of one block only, so they run there in one block; they have not run on a GPU yet.

Not here: the products over all steps (W_ih x before the loop, weight gradients after it) stay the
tiled products of engine/cuda_steps.py. Kernels stay in float32 for float32 arrays: constants are
typed from an array's dtype (`a.dtype.type(1)`), never Python floats.
"""
import math

import numba
from numba import cuda

from .cuda_config import FASTMATH, SIMULATOR
from .cuda_steps import grid_1d
from .steps import time_at

time_at_device = cuda.jit(device=True, inline=True)(time_at.py_func)   # the same rule on the device


@cuda.jit(device=True, inline=True, fastmath=FASTMATH)
def sigmoid(v, one):
    """one: 1 in v's type, so float32 stays float32."""
    return one / (one + math.exp(-v))


@cuda.jit(device=True, inline=True, fastmath=FASTMATH)
def recurrent_row(w_t, row, h, b):
    """(W h)[b, row] with w_t [K, G] = W transposed and h [B, K]: threads of neighbouring rows read
    neighbouring addresses of w_t, and a block's threads share the row h[b]."""
    acc = h.dtype.type(0)
    for k in range(h.shape[1]):
        acc += w_t[k, row] * h[b, k]
    return acc


@cuda.jit(device=True, inline=True, fastmath=FASTMATH)
def grad_entering(carry, dg, t_next, w, lengths, b, k):
    """Gradient flowing into h_t[b, k] from later steps: carry [B, K] (what the step walked before
    left for it) plus (dg[t_next] @ w)[b, k] when that step t_next was inside sequence b;
    dg [T, B, G], w [G, K]; t_next < 0 at the first step walked (carry then holds dh_n)."""
    v = carry[b, k]
    if t_next >= 0 and t_next < lengths[b]:   # dg is zero past the end anyway: this skips the loop
        for g in range(w.shape[0]):
            v += dg[t_next, b, g] * w[g, k]
    return v


@cuda.jit(cache=True, fastmath=FASTMATH)
def _transpose(out, a):
    """out [K, G] = a [G, K] transposed; one thread per element of out, so writes coalesce."""
    i = cuda.grid(1)
    K, G = out.shape
    if i >= K * G:
        return
    k = i // G
    g = i - k * G
    out[k, g] = a[g, k]


def transposed(w):
    """A new device array holding w [G, K] transposed, [K, G] (one launch per forward call)."""
    out = cuda.device_array((w.shape[1], w.shape[0]), w.dtype)
    blocks, threads = grid_1d(out.size)
    _transpose[blocks, threads](out, w)
    return out


@cuda.jit(cache=True, fastmath=FASTMATH)
def _grad_into_h0(dh0, dg, w, lengths, t_last):
    """dh0 [B, K] holds the carry left by the last step walked (t_last); adds its recurrent part."""
    i = cuda.grid(1)
    B, K = dh0.shape
    if i >= B * K:
        return
    b = i // K
    k = i - b * K
    dh0[b, k] = grad_entering(dh0, dg, t_last, w, lengths, b, k)


def grad_into_h0(dh0, dg, w_hh, lengths, t_last):
    """dh0 [B, K] (carry in, gradient on h0 out); dg [T, B, G] recurrent-side gate gradients;
    w_hh [G, K]; t_last: the time index the backward loop walked last."""
    blocks, threads = grid_1d(dh0.size)
    _grad_into_h0[blocks, threads](dh0, dg, w_hh, lengths, t_last)


def launch_persistent(kernel, units, *args):
    """Launches a kernel that loops over all time steps with grid syncs: one thread per unit as far
    as the cooperative grid allows (a grid-stride loop covers the rest), one block under the
    simulator, whose grid sync covers one block only."""
    blocks, threads = grid_1d(units)
    if SIMULATOR:
        blocks = 1
    else:
        compiled = kernel.compile(tuple(numba.typeof(a) for a in args))
        blocks = max(1, min(blocks, compiled.max_cooperative_grid_blocks(threads)))
    kernel[blocks, threads](*args)
