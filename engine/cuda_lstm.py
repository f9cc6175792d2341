"""LSTM forward and BPTT for one layer and one direction on the GPU (Numba CUDA); sibling of
engine/lstm.py with the same signatures, every array a device array.

Per direction: one tiled matrix product for W_ih x over all steps; then per step, the recurrent
product W_hh h accumulated onto that step's slice, one fused gate kernel (one thread per (b, j)),
and with a projection one more product and a masked copy. Backward mirrors it, and the weight
gradients are large products after the loop (engine/cuda_steps.py).
The peephole and coupled variants of engine/lstm.py are not implemented here: the arguments are
taken so that the signatures match, and must be the stand-ins (w_peep [0, H], coupled False).
"""
import math

from numba import cuda

from .cuda_config import FASTMATH
from .cuda_steps import copy_of, gemm, grid_1d, sigmoid, time_at, update_rows, weight_grads
from .gates import LSTM_F, LSTM_G, LSTM_I, LSTM_O


def _plain_lstm_only(w_peep, coupled):
    if w_peep.shape[0] > 0 or coupled:
        raise NotImplementedError("the CUDA LSTM engine has no peephole or coupled variant; use device='cpu'")


@cuda.jit(cache=True, fastmath=FASTMATH)
def _gates_forward(h_t, c_t, a_t, h_prev, c_prev, b_ih, b_hh, lengths, t, proj):
    """h_t [B, H] out: o * tanh(c), the state itself without projection; c_t [B, H] out;
    a_t [B, 4H] in: W_ih x + W_hh h, out: gate activations; h_prev [B, P], c_prev [B, H]."""
    i = cuda.grid(1)
    B, H = c_t.shape
    if i >= B * H:
        return
    b = i // H
    j = i - b * H
    if t >= lengths[b]:
        c_t[b, j] = c_prev[b, j]
        h_t[b, j] = 0.0 if proj else h_prev[b, j]   # with a projection the frozen h is copied later
        return
    gi = sigmoid(a_t[b, LSTM_I * H + j] + b_ih[LSTM_I * H + j] + b_hh[LSTM_I * H + j])
    gf = sigmoid(a_t[b, LSTM_F * H + j] + b_ih[LSTM_F * H + j] + b_hh[LSTM_F * H + j])
    gg = math.tanh(a_t[b, LSTM_G * H + j] + b_ih[LSTM_G * H + j] + b_hh[LSTM_G * H + j])
    go = sigmoid(a_t[b, LSTM_O * H + j] + b_ih[LSTM_O * H + j] + b_hh[LSTM_O * H + j])
    a_t[b, LSTM_I * H + j] = gi
    a_t[b, LSTM_F * H + j] = gf
    a_t[b, LSTM_G * H + j] = gg
    a_t[b, LSTM_O * H + j] = go
    c = gf * c_prev[b, j] + gi * gg
    c_t[b, j] = c
    h_t[b, j] = go * math.tanh(c)


def lstm_forward(hs, cs, acts, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep, lengths, reverse, coupled):
    """hs [T, B, P] out; cs [T, B, H] out; acts [T, B, 4H] out: gate activations;
    x [T, B, I]; h0 [B, P]; c0 [B, H]; w_ih [4H, I]; w_hh [4H, P]; b_ih, b_hh [4H];
    w_hr [P, H] or [0, 0]; w_peep [0, H]; lengths [B] int64 in 1..T; reverse: walk t = T-1..0;
    coupled False."""
    _plain_lstm_only(w_peep, coupled)
    T, B, I = x.shape
    H = c0.shape[1]
    proj = w_hr.shape[0] > 0
    gemm(acts.reshape(T * B, 4 * H), x.reshape(T * B, I), w_ih, trans_b=True)
    r = cuda.device_array((B, H), x.dtype) if proj else None   # o * tanh(c) before projection
    blocks, threads = grid_1d(B * H)
    for s in range(T):
        t = time_at(s, T, reverse)
        h_prev = h0 if s == 0 else hs[time_at(s - 1, T, reverse)]
        c_prev = c0 if s == 0 else cs[time_at(s - 1, T, reverse)]
        gemm(acts[t], h_prev, w_hh, trans_b=True, accumulate=True)
        _gates_forward[blocks, threads](r if proj else hs[t], cs[t], acts[t], h_prev, c_prev,
                                        b_ih, b_hh, lengths, t, proj)
        if proj:
            gemm(hs[t], r, w_hr, trans_b=True)
            update_rows(hs[t], h_prev, lengths, t, valid=False)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _gates_backward(dg_t, dc, r_t, dr, a_t, c_t, c_prev, lengths, t, proj):
    """dg_t [B, 4H] out: gradient of the gate pre-activations (zero past a sequence's end);
    dc [B, H] gradient on c, updated in place; r_t [B, H] out (proj only): o * tanh(c);
    dr [B, H] gradient on o * tanh(c); a_t [B, 4H] activations; c_t, c_prev [B, H]."""
    i = cuda.grid(1)
    B, H = dc.shape
    if i >= B * H:
        return
    b = i // H
    j = i - b * H
    if t >= lengths[b]:
        for gate in range(4):
            dg_t[b, gate * H + j] = 0.0
        if proj:
            r_t[b, j] = 0.0
        return
    gi = a_t[b, LSTM_I * H + j]
    gf = a_t[b, LSTM_F * H + j]
    gg = a_t[b, LSTM_G * H + j]
    go = a_t[b, LSTM_O * H + j]
    tc = math.tanh(c_t[b, j])
    if proj:
        r_t[b, j] = go * tc
    dcj = dc[b, j] + dr[b, j] * go * (1.0 - tc * tc)
    dg_t[b, LSTM_I * H + j] = dcj * gg * gi * (1.0 - gi)
    dg_t[b, LSTM_F * H + j] = dcj * c_prev[b, j] * gf * (1.0 - gf)
    dg_t[b, LSTM_G * H + j] = dcj * gi * (1.0 - gg * gg)
    dg_t[b, LSTM_O * H + j] = dr[b, j] * tc * go * (1.0 - go)
    dc[b, j] = dcj * gf


def lstm_backward(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, dw_peep,
                  dhs, dhn, dcn, x, h0, c0, w_ih, w_hh, w_hr, w_peep, hs, cs, acts, lengths, reverse, coupled):
    """dx [T, B, I] out; dh0 [B, P], dc0 [B, H] out;
    dw_ih [4H, I], dw_hh [4H, P], db_ih, db_hh [4H], dw_hr [P, H] or [0, 0]: accumulated;
    dw_peep, w_peep [0, H] and coupled False (no variants on the GPU);
    dhs [T, B, P] gradient on the outputs; dhn [B, P], dcn [B, H] gradient on the final state;
    the rest is the forward's inputs and saved hs, cs, acts."""
    _plain_lstm_only(w_peep, coupled)
    T, B, I = x.shape
    H = c0.shape[1]
    P = hs.shape[2]
    proj = w_hr.shape[0] > 0
    dg = cuda.device_array((T, B, 4 * H), x.dtype)
    dh = copy_of(dhn)                       # [B, P] gradient flowing into h_t
    dc = copy_of(dcn)                       # [B, H]
    dprev = cuda.device_array((B, P), x.dtype)
    Tp = T if proj else 1                   # projection workspaces, [1, ...] stand-ins without one
    dh_steps = cuda.device_array((Tp, B, P), x.dtype)   # total gradient on each step's h
    rs = cuda.device_array((Tp, B, H), x.dtype)         # o * tanh(c) of each step
    dr = cuda.device_array((B, H), x.dtype) if proj else dh
    blocks, threads = grid_1d(B * H)
    for s in range(T - 1, -1, -1):
        t = time_at(s, T, reverse)
        update_rows(dh, dhs[t], lengths, t, add=True)
        if proj:
            dh_steps[t].copy_to_device(dh)
            gemm(dr, dh, w_hr)
        c_prev = c0 if s == 0 else cs[time_at(s - 1, T, reverse)]
        _gates_backward[blocks, threads](dg[t], dc, rs[t if proj else 0], dr, acts[t], cs[t], c_prev,
                                         lengths, t, proj)
        gemm(dprev, dg[t], w_hh)
        update_rows(dh, dprev, lengths, t)
    dh0.copy_to_device(dh)
    dc0.copy_to_device(dc)
    weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dg, dg, x, hs, h0, w_ih, reverse)
    if proj:
        gemm(dw_hr, dh_steps.reshape(T * B, P), rs.reshape(T * B, H), trans_a=True, accumulate=True)
