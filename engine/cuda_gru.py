"""GRU forward and BPTT for one layer and one direction on the GPU (Numba CUDA); sibling of
engine/gru.py with the same signatures, every array a device array.

Per direction: one tiled matrix product for W_ih x over all steps, then one fused launch per step
(engine/cuda_fused.py): the thread of unit j forms its rows r, z, n of W_hh h itself, so
b_hn + W_hn h stays apart from W_ih x until it is multiplied by r. Backward: one launch per step
(the gradient entering h_t, dgh_{t+1} @ W_hh, is formed by the thread that uses it), one for the
gradient into h0, and the weight gradients as products after the loop (engine/cuda_steps.py).
Workspaces are allocated once per call, never inside the loop.
With cuda_config.PERSISTENT the time loop is one cooperative launch instead (engine/cuda_fused.py),
built from the same per-unit device functions.
"""
import math

from numba import cuda

from . import cuda_config
from .cuda_config import FASTMATH
from .cuda_fused import (grad_entering, grad_into_h0, launch_persistent, recurrent_row, sigmoid, time_at_device,
                         transposed)
from .cuda_steps import gemm, grid_1d, time_at, weight_grads
from .gates import GRU_N, GRU_R, GRU_Z


@cuda.jit(device=True, inline=True, fastmath=FASTMATH)
def _forward_unit(h_t, a_t, hn_t, h_prev, w_hh_t, b_ih, b_hh, lengths, t, b, j):
    """Unit j of row b at step t. h_t [B, H] out; a_t [B, 3H] in: W_ih x, out: r, z, n; hn_t [B, H] out: W_hn h + b_hn;
    h_prev [B, H]; w_hh_t [H, 3H] W_hh transposed."""
    H = h_t.shape[1]
    if t >= lengths[b]:
        h_t[b, j] = h_prev[b, j]
        return
    one = h_t.dtype.type(1)
    r, z, n = GRU_R * H + j, GRU_Z * H + j, GRU_N * H + j
    rj = sigmoid(a_t[b, r] + b_ih[r] + b_hh[r] + recurrent_row(w_hh_t, r, h_prev, b), one)
    zj = sigmoid(a_t[b, z] + b_ih[z] + b_hh[z] + recurrent_row(w_hh_t, z, h_prev, b), one)
    hn = recurrent_row(w_hh_t, n, h_prev, b) + b_hh[n]
    nj = math.tanh(a_t[b, n] + b_ih[n] + rj * hn)
    a_t[b, r] = rj
    a_t[b, z] = zj
    a_t[b, n] = nj
    hn_t[b, j] = hn
    h_t[b, j] = (one - zj) * nj + zj * h_prev[b, j]


@cuda.jit(cache=True, fastmath=FASTMATH)
def _step_forward(h_t, a_t, hn_t, h_prev, w_hh_t, b_ih, b_hh, lengths, t):
    i = cuda.grid(1)
    B, H = h_t.shape
    if i < B * H:
        _forward_unit(h_t, a_t, hn_t, h_prev, w_hh_t, b_ih, b_hh, lengths, t, i // H, i % H)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _all_steps_forward(hs, acts, hn_pre, h0, w_hh_t, b_ih, b_hh, lengths, reverse):
    """The persistent kernel: every step of gru_forward in one launch."""
    grid = cuda.cg.this_grid()
    T, B, H = hs.shape
    for s in range(T):
        t = time_at_device(s, T, reverse)
        for i in range(cuda.grid(1), B * H, cuda.gridsize(1)):
            if s == 0:
                _forward_unit(hs[t], acts[t], hn_pre[t], h0, w_hh_t, b_ih, b_hh, lengths, t, i // H, i % H)
            else:
                _forward_unit(hs[t], acts[t], hn_pre[t], hs[time_at_device(s - 1, T, reverse)], w_hh_t,
                              b_ih, b_hh, lengths, t, i // H, i % H)
        grid.sync()


def gru_forward(hs, acts, hn_pre, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse):
    """hs [T, B, H] out; acts [T, B, 3H] out: r, z, n; hn_pre [T, B, H] out: W_hn h + b_hn;
    x [T, B, I]; h0 [B, H]; w_ih [3H, I]; w_hh [3H, H]; b_ih, b_hh [3H];
    lengths [B] int64 in 1..T; reverse: walk t = T-1..0."""
    T, B, I = x.shape
    H = h0.shape[1]
    gemm(acts.reshape(T * B, 3 * H), x.reshape(T * B, I), w_ih, trans_b=True)
    w_hh_t = transposed(w_hh)
    if cuda_config.PERSISTENT:
        launch_persistent(_all_steps_forward, B * H, hs, acts, hn_pre, h0, w_hh_t, b_ih, b_hh, lengths, reverse)
    else:
        blocks, threads = grid_1d(B * H)
        for s in range(T):
            t = time_at(s, T, reverse)
            h_prev = h0 if s == 0 else hs[time_at(s - 1, T, reverse)]
            _step_forward[blocks, threads](hs[t], acts[t], hn_pre[t], h_prev, w_hh_t, b_ih, b_hh, lengths, t)


@cuda.jit(device=True, inline=True, fastmath=FASTMATH)
def _backward_unit(dgx_t, dgh, carry, dhs_t, a_t, hn_t, h_prev, w_hh, lengths, t, t_next, b, j):
    """Unit j of row b at step t. dgx_t [B, 3H] out: gradient of the input-side pre-activations;
    dgh [T, B, 3H]: writes dgh[t], the recurrent side's (both zero past a sequence's end), reads
    dgh[t_next]; carry [B, H]: gradient left for h_t by the step walked before, replaced by this
    step's direct part for h_{t-1}; dhs_t [B, H] gradient on this step's output; a_t [B, 3H];
    hn_t, h_prev [B, H]; w_hh [3H, H]."""
    H = carry.shape[1]
    dhj = grad_entering(carry, dgh, t_next, w_hh, lengths, b, j)
    if t >= lengths[b]:
        zero = carry.dtype.type(0)
        for gate in range(3):
            dgx_t[b, gate * H + j] = zero
            dgh[t, b, gate * H + j] = zero
        carry[b, j] = dhj
        return
    one = carry.dtype.type(1)
    r, z, n = GRU_R * H + j, GRU_Z * H + j, GRU_N * H + j
    rj = a_t[b, r]
    zj = a_t[b, z]
    nj = a_t[b, n]
    dhj += dhs_t[b, j]
    dn = dhj * (one - zj) * (one - nj * nj)
    dr = dn * hn_t[b, j] * rj * (one - rj)
    dz = dhj * (h_prev[b, j] - nj) * zj * (one - zj)
    dgx_t[b, r] = dr
    dgx_t[b, z] = dz
    dgx_t[b, n] = dn
    dgh[t, b, r] = dr
    dgh[t, b, z] = dz
    dgh[t, b, n] = dn * rj
    carry[b, j] = dhj * zj


@cuda.jit(cache=True, fastmath=FASTMATH)
def _step_backward(dgx_t, dgh, carry, dhs_t, a_t, hn_t, h_prev, w_hh, lengths, t, t_next):
    i = cuda.grid(1)
    B, H = carry.shape
    if i < B * H:
        _backward_unit(dgx_t, dgh, carry, dhs_t, a_t, hn_t, h_prev, w_hh, lengths, t, t_next, i // H, i % H)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _all_steps_backward(dgx, dgh, dh0, dhs, acts, hn_pre, h0, hs, w_hh, lengths, reverse):
    """The persistent kernel: every step of gru_backward and the gradient into h0 in one launch."""
    grid = cuda.cg.this_grid()
    T, B, H = hs.shape
    for s in range(T - 1, -1, -1):
        t = time_at_device(s, T, reverse)
        t_next = time_at_device(s + 1, T, reverse) if s < T - 1 else -1
        for i in range(cuda.grid(1), B * H, cuda.gridsize(1)):
            if s == 0:
                _backward_unit(dgx[t], dgh, dh0, dhs[t], acts[t], hn_pre[t], h0, w_hh, lengths, t, t_next,
                               i // H, i % H)
            else:
                _backward_unit(dgx[t], dgh, dh0, dhs[t], acts[t], hn_pre[t], hs[time_at_device(s - 1, T, reverse)],
                               w_hh, lengths, t, t_next, i // H, i % H)
        grid.sync()
    for i in range(cuda.grid(1), B * H, cuda.gridsize(1)):
        dh0[i // H, i % H] = grad_entering(dh0, dgh, time_at_device(0, T, reverse), w_hh, lengths, i // H, i % H)


def gru_backward(dx, dh0, dw_ih, dw_hh, db_ih, db_hh,
                 dhs, dhn, x, h0, w_ih, w_hh, hs, acts, hn_pre, lengths, reverse):
    """dx [T, B, I] out; dh0 [B, H] out;
    dw_ih [3H, I], dw_hh [3H, H], db_ih, db_hh [3H]: accumulated;
    dhs [T, B, H] gradient on the outputs; dhn [B, H] gradient on the final state;
    the rest is the forward's inputs and saved hs, acts, hn_pre."""
    T, B, _ = x.shape
    H = h0.shape[1]
    dgx = cuda.device_array((T, B, 3 * H), x.dtype)
    dgh = cuda.device_array((T, B, 3 * H), x.dtype)
    dh0.copy_to_device(dhn)                 # dh0 is the carry workspace until the last product
    if cuda_config.PERSISTENT:
        launch_persistent(_all_steps_backward, B * H, dgx, dgh, dh0, dhs, acts, hn_pre, h0, hs, w_hh, lengths,
                          reverse)
    else:
        blocks, threads = grid_1d(B * H)
        for s in range(T - 1, -1, -1):
            t = time_at(s, T, reverse)
            t_next = time_at(s + 1, T, reverse) if s < T - 1 else -1
            h_prev = h0 if s == 0 else hs[time_at(s - 1, T, reverse)]
            _step_backward[blocks, threads](dgx[t], dgh, dh0, dhs[t], acts[t], hn_pre[t], h_prev, w_hh,
                                            lengths, t, t_next)
        grad_into_h0(dh0, dgh, w_hh, lengths, time_at(0, T, reverse))
    weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dgx, dgh, x, hs, h0, w_ih, reverse)
