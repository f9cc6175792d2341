"""GRU forward and BPTT for one layer and one direction on the GPU (Numba CUDA); sibling of
engine/gru.py with the same signatures, every array a device array.

Per direction: one tiled matrix product for W_ih x over all steps; per step the recurrent product
W_hh h into a [B, 3H] workspace (kept apart from W_ih x because b_hn + W_hn h is multiplied by r)
and one fused gate kernel. Weight gradients are products after the loop (engine/cuda_steps.py).
"""
import math

from numba import cuda

from .cuda_config import FASTMATH
from .cuda_steps import copy_of, gemm, grid_1d, sigmoid, time_at, update_rows, weight_grads
from .gates import GRU_N, GRU_R, GRU_Z


@cuda.jit(cache=True, fastmath=FASTMATH)
def _gates_forward(h_t, a_t, hn_t, gh, h_prev, b_ih, b_hh, lengths, t):
    """h_t [B, H] out; a_t [B, 3H] in: W_ih x, out: r, z, n; hn_t [B, H] out: W_hn h + b_hn;
    gh [B, 3H] W_hh h; h_prev [B, H]."""
    i = cuda.grid(1)
    B, H = h_t.shape
    if i >= B * H:
        return
    b = i // H
    j = i - b * H
    if t >= lengths[b]:
        h_t[b, j] = h_prev[b, j]
        return
    rj = sigmoid(a_t[b, GRU_R * H + j] + b_ih[GRU_R * H + j] + b_hh[GRU_R * H + j] + gh[b, GRU_R * H + j])
    zj = sigmoid(a_t[b, GRU_Z * H + j] + b_ih[GRU_Z * H + j] + b_hh[GRU_Z * H + j] + gh[b, GRU_Z * H + j])
    hn = gh[b, GRU_N * H + j] + b_hh[GRU_N * H + j]
    nj = math.tanh(a_t[b, GRU_N * H + j] + b_ih[GRU_N * H + j] + rj * hn)
    a_t[b, GRU_R * H + j] = rj
    a_t[b, GRU_Z * H + j] = zj
    a_t[b, GRU_N * H + j] = nj
    hn_t[b, j] = hn
    h_t[b, j] = (1.0 - zj) * nj + zj * h_prev[b, j]


def gru_forward(hs, acts, hn_pre, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse):
    """hs [T, B, H] out; acts [T, B, 3H] out: r, z, n; hn_pre [T, B, H] out: W_hn h + b_hn;
    x [T, B, I]; h0 [B, H]; w_ih [3H, I]; w_hh [3H, H]; b_ih, b_hh [3H];
    lengths [B] int64 in 1..T; reverse: walk t = T-1..0."""
    T, B, I = x.shape
    H = h0.shape[1]
    gemm(acts.reshape(T * B, 3 * H), x.reshape(T * B, I), w_ih, trans_b=True)
    gh = cuda.device_array((B, 3 * H), x.dtype)
    blocks, threads = grid_1d(B * H)
    for s in range(T):
        t = time_at(s, T, reverse)
        h_prev = h0 if s == 0 else hs[time_at(s - 1, T, reverse)]
        gemm(gh, h_prev, w_hh, trans_b=True)
        _gates_forward[blocks, threads](hs[t], acts[t], hn_pre[t], gh, h_prev, b_ih, b_hh, lengths, t)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _gates_backward(dgx_t, dgh_t, dh, dhs_t, a_t, hn_t, h_prev, lengths, t):
    """dgx_t, dgh_t [B, 3H] out: gradients of the input-side and recurrent-side pre-activations
    (zero past a sequence's end); dh [B, H] gradient into h_t, replaced by its direct part;
    dhs_t [B, H] gradient on this step's output; a_t [B, 3H]; hn_t, h_prev [B, H]."""
    i = cuda.grid(1)
    B, H = dh.shape
    if i >= B * H:
        return
    b = i // H
    j = i - b * H
    if t >= lengths[b]:
        for gate in range(3):
            dgx_t[b, gate * H + j] = 0.0
            dgh_t[b, gate * H + j] = 0.0
        return
    rj = a_t[b, GRU_R * H + j]
    zj = a_t[b, GRU_Z * H + j]
    nj = a_t[b, GRU_N * H + j]
    dhj = dh[b, j] + dhs_t[b, j]
    dn = dhj * (1.0 - zj) * (1.0 - nj * nj)
    dr = dn * hn_t[b, j] * rj * (1.0 - rj)
    dz = dhj * (h_prev[b, j] - nj) * zj * (1.0 - zj)
    dgx_t[b, GRU_R * H + j] = dr
    dgx_t[b, GRU_Z * H + j] = dz
    dgx_t[b, GRU_N * H + j] = dn
    dgh_t[b, GRU_R * H + j] = dr
    dgh_t[b, GRU_Z * H + j] = dz
    dgh_t[b, GRU_N * H + j] = dn * rj
    dh[b, j] = dhj * zj


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
    dh = copy_of(dhn)                       # [B, H] gradient flowing into h_t
    dprev = cuda.device_array((B, H), x.dtype)
    blocks, threads = grid_1d(B * H)
    for s in range(T - 1, -1, -1):
        t = time_at(s, T, reverse)
        h_prev = h0 if s == 0 else hs[time_at(s - 1, T, reverse)]
        _gates_backward[blocks, threads](dgx[t], dgh[t], dh, dhs[t], acts[t], hn_pre[t], h_prev, lengths, t)
        gemm(dprev, dgh[t], w_hh)
        update_rows(dh, dprev, lengths, t, add=True)
    dh0.copy_to_device(dh)
    weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dgx, dgh, x, hs, h0, w_ih, reverse)
