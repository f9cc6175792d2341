"""Elman RNN forward and BPTT for one layer and one direction on the GPU (Numba CUDA); sibling of
engine/rnn.py with the same signatures, every array a device array.

Per direction: one tiled matrix product for W_ih x over all steps, then one fused launch per step
(engine/cuda_fused.py: each thread forms its own row of W_hh h and applies the activation).
Backward: one launch per step (the gradient entering h_t, dg_{t+1} @ W_hh, is formed by the thread
that uses it), one for the gradient into h0, and the weight gradients as products after the loop
(engine/cuda_steps.py). Workspaces are allocated once per call, never inside the loop.
With cuda_config.PERSISTENT the time loop is one cooperative launch instead (engine/cuda_fused.py),
built from the same per-unit device functions.
"""
import math

from numba import cuda

from . import cuda_config
from .cuda_config import FASTMATH
from .cuda_fused import (grad_entering, grad_into_h0, launch_persistent, recurrent_row, time_at_device,
                         transposed)
from .cuda_steps import gemm, grid_1d, time_at, weight_grads
from .gates import TANH


@cuda.jit(device=True, inline=True, fastmath=FASTMATH)
def _forward_unit(h_t, pre_t, h_prev, w_hh_t, b_ih, b_hh, act, lengths, t, b, j):
    """Unit j of row b at step t. h_t [B, H] out; pre_t [B, H] W_ih x; h_prev [B, H];
    w_hh_t [H, H] W_hh transposed."""
    if t >= lengths[b]:
        h_t[b, j] = h_prev[b, j]
        return
    v = pre_t[b, j] + b_ih[j] + b_hh[j] + recurrent_row(w_hh_t, j, h_prev, b)
    if act == TANH:
        h_t[b, j] = math.tanh(v)
    else:
        zero = h_t.dtype.type(0)
        h_t[b, j] = v if v > zero else zero


@cuda.jit(cache=True, fastmath=FASTMATH)
def _step_forward(h_t, pre_t, h_prev, w_hh_t, b_ih, b_hh, act, lengths, t):
    i = cuda.grid(1)
    B, H = h_t.shape
    if i < B * H:
        _forward_unit(h_t, pre_t, h_prev, w_hh_t, b_ih, b_hh, act, lengths, t, i // H, i % H)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _all_steps_forward(hs, pre, h0, w_hh_t, b_ih, b_hh, act, lengths, reverse):
    """The persistent kernel: every step of rnn_forward in one launch."""
    grid = cuda.cg.this_grid()
    T, B, H = hs.shape
    for s in range(T):
        t = time_at_device(s, T, reverse)
        for i in range(cuda.grid(1), B * H, cuda.gridsize(1)):
            if s == 0:
                _forward_unit(hs[t], pre[t], h0, w_hh_t, b_ih, b_hh, act, lengths, t, i // H, i % H)
            else:
                _forward_unit(hs[t], pre[t], hs[time_at_device(s - 1, T, reverse)], w_hh_t, b_ih, b_hh, act,
                              lengths, t, i // H, i % H)
        grid.sync()


def rnn_forward(hs, x, h0, w_ih, w_hh, b_ih, b_hh, act, lengths, reverse):
    """hs [T, B, H] out; x [T, B, I]; h0 [B, H]; w_ih [H, I]; w_hh [H, H]; b_ih, b_hh [H];
    act TANH or RELU; lengths [B] int64 in 1..T; reverse: walk t = T-1..0."""
    T, B, I = x.shape
    H = h0.shape[1]
    pre = cuda.device_array((T, B, H), x.dtype)
    gemm(pre.reshape(T * B, H), x.reshape(T * B, I), w_ih, trans_b=True)
    w_hh_t = transposed(w_hh)
    if cuda_config.PERSISTENT:
        launch_persistent(_all_steps_forward, B * H, hs, pre, h0, w_hh_t, b_ih, b_hh, act, lengths, reverse)
    else:
        blocks, threads = grid_1d(B * H)
        for s in range(T):
            t = time_at(s, T, reverse)
            h_prev = h0 if s == 0 else hs[time_at(s - 1, T, reverse)]
            _step_forward[blocks, threads](hs[t], pre[t], h_prev, w_hh_t, b_ih, b_hh, act, lengths, t)


@cuda.jit(device=True, inline=True, fastmath=FASTMATH)
def _backward_unit(dg, carry, dhs_t, h_t, w_hh, act, lengths, t, t_next, b, j):
    """Unit j of row b at step t. dg [T, B, H]: writes dg[t], the gradient of the pre-activation
    (zero past a sequence's end), reads dg[t_next]; carry [B, H]: gradient left for h_t by the step
    walked before, replaced by what this step leaves for h_{t-1} besides dg[t] @ W_hh;
    dhs_t [B, H] gradient on this step's output; h_t [B, H]; w_hh [H, H]."""
    dhj = grad_entering(carry, dg, t_next, w_hh, lengths, b, j)
    zero = carry.dtype.type(0)
    if t >= lengths[b]:
        dg[t, b, j] = zero
        carry[b, j] = dhj
        return
    dhj += dhs_t[b, j]
    hj = h_t[b, j]
    if act == TANH:
        dg[t, b, j] = dhj * (carry.dtype.type(1) - hj * hj)
    else:
        dg[t, b, j] = dhj if hj > zero else zero
    carry[b, j] = zero


@cuda.jit(cache=True, fastmath=FASTMATH)
def _step_backward(dg, carry, dhs_t, h_t, w_hh, act, lengths, t, t_next):
    i = cuda.grid(1)
    B, H = carry.shape
    if i < B * H:
        _backward_unit(dg, carry, dhs_t, h_t, w_hh, act, lengths, t, t_next, i // H, i % H)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _all_steps_backward(dg, dh0, dhs, hs, w_hh, act, lengths, reverse):
    """The persistent kernel: every step of rnn_backward and the gradient into h0 in one launch."""
    grid = cuda.cg.this_grid()
    T, B, H = hs.shape
    for s in range(T - 1, -1, -1):
        t = time_at_device(s, T, reverse)
        t_next = time_at_device(s + 1, T, reverse) if s < T - 1 else -1
        for i in range(cuda.grid(1), B * H, cuda.gridsize(1)):
            _backward_unit(dg, dh0, dhs[t], hs[t], w_hh, act, lengths, t, t_next, i // H, i % H)
        grid.sync()
    for i in range(cuda.grid(1), B * H, cuda.gridsize(1)):
        dh0[i // H, i % H] = grad_entering(dh0, dg, time_at_device(0, T, reverse), w_hh, lengths, i // H, i % H)


def rnn_backward(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dhs, dhn, x, h0, w_ih, w_hh, hs, act, lengths, reverse):
    """dx [T, B, I] out; dh0 [B, H] out; dw_ih [H, I], dw_hh [H, H], db_ih, db_hh [H]: accumulated;
    dhs [T, B, H] gradient on the outputs; dhn [B, H] gradient on the final state;
    the rest is the forward's inputs and saved hs."""
    T, B, _ = x.shape
    H = h0.shape[1]
    dg = cuda.device_array((T, B, H), x.dtype)
    dh0.copy_to_device(dhn)                 # dh0 is the carry workspace until the last product
    if cuda_config.PERSISTENT:
        launch_persistent(_all_steps_backward, B * H, dg, dh0, dhs, hs, w_hh, act, lengths, reverse)
    else:
        blocks, threads = grid_1d(B * H)
        for s in range(T - 1, -1, -1):
            t = time_at(s, T, reverse)
            t_next = time_at(s + 1, T, reverse) if s < T - 1 else -1
            _step_backward[blocks, threads](dg, dh0, dhs[t], hs[t], w_hh, act, lengths, t, t_next)
        grad_into_h0(dh0, dg, w_hh, lengths, time_at(0, T, reverse))
    weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dg, dg, x, hs, h0, w_ih, reverse)
