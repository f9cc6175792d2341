"""Elman RNN forward and BPTT for one layer and one direction on the GPU (Numba CUDA); sibling of
engine/rnn.py with the same signatures, every array a device array.

Per direction: one tiled matrix product for W_ih x over all steps; per step the recurrent product
accumulated onto that step's slice and one fused activation kernel. Weight gradients are products
after the loop (engine/cuda_steps.py).
"""
import math

from numba import cuda

from .cuda_config import FASTMATH
from .cuda_steps import copy_of, gemm, grid_1d, time_at, update_rows, weight_grads
from .gates import TANH


@cuda.jit(cache=True, fastmath=FASTMATH)
def _act_forward(h_t, pre_t, h_prev, b_ih, b_hh, act, lengths, t):
    """h_t [B, H] out; pre_t [B, H] W_ih x + W_hh h; h_prev [B, H]."""
    i = cuda.grid(1)
    B, H = h_t.shape
    if i >= B * H:
        return
    b = i // H
    j = i - b * H
    if t >= lengths[b]:
        h_t[b, j] = h_prev[b, j]
        return
    v = pre_t[b, j] + b_ih[j] + b_hh[j]
    if act == TANH:
        h_t[b, j] = math.tanh(v)
    else:
        h_t[b, j] = v if v > 0.0 else 0.0


def rnn_forward(hs, x, h0, w_ih, w_hh, b_ih, b_hh, act, lengths, reverse):
    """hs [T, B, H] out; x [T, B, I]; h0 [B, H]; w_ih [H, I]; w_hh [H, H]; b_ih, b_hh [H];
    act TANH or RELU; lengths [B] int64 in 1..T; reverse: walk t = T-1..0."""
    T, B, I = x.shape
    H = h0.shape[1]
    pre = cuda.device_array((T, B, H), x.dtype)
    gemm(pre.reshape(T * B, H), x.reshape(T * B, I), w_ih, trans_b=True)
    blocks, threads = grid_1d(B * H)
    for s in range(T):
        t = time_at(s, T, reverse)
        h_prev = h0 if s == 0 else hs[time_at(s - 1, T, reverse)]
        gemm(pre[t], h_prev, w_hh, trans_b=True, accumulate=True)
        _act_forward[blocks, threads](hs[t], pre[t], h_prev, b_ih, b_hh, act, lengths, t)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _act_backward(dg_t, dh, dhs_t, h_t, act, lengths, t):
    """dg_t [B, H] out: gradient of the pre-activation (zero past a sequence's end);
    dh [B, H] gradient into h_t; dhs_t [B, H] gradient on this step's output; h_t [B, H]."""
    i = cuda.grid(1)
    B, H = dh.shape
    if i >= B * H:
        return
    b = i // H
    j = i - b * H
    if t >= lengths[b]:
        dg_t[b, j] = 0.0
        return
    hj = h_t[b, j]
    dhj = dh[b, j] + dhs_t[b, j]
    if act == TANH:
        dg_t[b, j] = dhj * (1.0 - hj * hj)
    else:
        dg_t[b, j] = dhj if hj > 0.0 else 0.0


def rnn_backward(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dhs, dhn, x, h0, w_ih, w_hh, hs, act, lengths, reverse):
    """dx [T, B, I] out; dh0 [B, H] out; dw_ih [H, I], dw_hh [H, H], db_ih, db_hh [H]: accumulated;
    dhs [T, B, H] gradient on the outputs; dhn [B, H] gradient on the final state;
    the rest is the forward's inputs and saved hs."""
    T, B, _ = x.shape
    H = h0.shape[1]
    dg = cuda.device_array((T, B, H), x.dtype)
    dh = copy_of(dhn)                       # [B, H] gradient flowing into h_t
    dprev = cuda.device_array((B, H), x.dtype)
    blocks, threads = grid_1d(B * H)
    for s in range(T - 1, -1, -1):
        t = time_at(s, T, reverse)
        _act_backward[blocks, threads](dg[t], dh, dhs[t], hs[t], act, lengths, t)
        gemm(dprev, dg[t], w_hh)
        update_rows(dh, dprev, lengths, t)
    dh0.copy_to_device(dh)
    weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dg, dg, x, hs, h0, w_ih, reverse)
