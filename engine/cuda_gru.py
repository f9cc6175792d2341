"""GRU forward and BPTT for one layer and one direction on the GPU (Numba CUDA); sibling of
engine/gru.py with the same signatures, every array a device array.

Per direction: one tiled matrix product for W_ih x over all steps, then one fused launch per step
(engine/cuda_fused.py): the thread of unit j forms its rows r, z, n of W_hh h itself, so
b_hn + W_hn h stays apart from W_ih x until it is multiplied by r. Backward: one launch per step
(the gradient entering h_t, dgh_{t+1} @ W_hh, is formed by the thread that uses it), one for the
gradient into h0, and the weight gradients as products after the loop (engine/cuda_steps.py).
Workspaces are allocated once per call, never inside the loop.
"""
import math

from numba import cuda

from .cuda_config import FASTMATH
from .cuda_fused import grad_entering, grad_into_h0, recurrent_row, sigmoid, transposed
from .cuda_steps import gemm, grid_1d, time_at, weight_grads
from .gates import GRU_N, GRU_R, GRU_Z


@cuda.jit(cache=True, fastmath=FASTMATH)
def _step_forward(h_t, a_t, hn_t, h_prev, w_hh_t, b_ih, b_hh, lengths, t):
    """h_t [B, H] out; a_t [B, 3H] in: W_ih x, out: r, z, n; hn_t [B, H] out: W_hn h + b_hn;
    h_prev [B, H]; w_hh_t [H, 3H] W_hh transposed."""
    i = cuda.grid(1)
    B, H = h_t.shape
    if i >= B * H:
        return
    b = i // H
    j = i - b * H
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


def gru_forward(hs, acts, hn_pre, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse):
    """hs [T, B, H] out; acts [T, B, 3H] out: r, z, n; hn_pre [T, B, H] out: W_hn h + b_hn;
    x [T, B, I]; h0 [B, H]; w_ih [3H, I]; w_hh [3H, H]; b_ih, b_hh [3H];
    lengths [B] int64 in 1..T; reverse: walk t = T-1..0."""
    T, B, I = x.shape
    H = h0.shape[1]
    gemm(acts.reshape(T * B, 3 * H), x.reshape(T * B, I), w_ih, trans_b=True)
    w_hh_t = transposed(w_hh)
    blocks, threads = grid_1d(B * H)
    for s in range(T):
        t = time_at(s, T, reverse)
        h_prev = h0 if s == 0 else hs[time_at(s - 1, T, reverse)]
        _step_forward[blocks, threads](hs[t], acts[t], hn_pre[t], h_prev, w_hh_t, b_ih, b_hh, lengths, t)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _step_backward(dgx_t, dgh, carry, dhs_t, a_t, hn_t, h_prev, w_hh, lengths, t, t_next):
    """dgx_t [B, 3H] out: gradient of the input-side pre-activations; dgh [T, B, 3H]: writes dgh[t],
    the recurrent side's (both zero past a sequence's end), reads dgh[t_next]; carry [B, H]:
    gradient left for h_t by the step walked before, replaced by this step's direct part for
    h_{t-1}; dhs_t [B, H] gradient on this step's output; a_t [B, 3H]; hn_t, h_prev [B, H];
    w_hh [3H, H]."""
    i = cuda.grid(1)
    B, H = carry.shape
    if i >= B * H:
        return
    b = i // H
    j = i - b * H
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
    blocks, threads = grid_1d(B * H)
    for s in range(T - 1, -1, -1):
        t = time_at(s, T, reverse)
        t_next = time_at(s + 1, T, reverse) if s < T - 1 else -1
        h_prev = h0 if s == 0 else hs[time_at(s - 1, T, reverse)]
        _step_backward[blocks, threads](dgx[t], dgh, dh0, dhs[t], acts[t], hn_pre[t], h_prev, w_hh,
                                        lengths, t, t_next)
    grad_into_h0(dh0, dgh, w_hh, lengths, time_at(0, T, reverse))
    weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dgx, dgh, x, hs, h0, w_ih, reverse)
