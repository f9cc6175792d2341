"""LSTM forward and BPTT for one layer and one direction on the GPU (Numba CUDA); sibling of
engine/lstm.py with the same signatures, every array a device array.

Per direction: one tiled matrix product for W_ih x over all steps; then per step, the recurrent
product W_hh h accumulated onto that step's slice, one fused gate kernel (one thread per (b, j)),
and with a projection one more product and a masked copy. Backward mirrors it, and the weight
gradients are large products after the loop (engine/cuda_steps.py).
The peephole and coupled variants are engine/lstm.py's (the ONNX LSTM operator's semantics): with
peepholes w_peep [NP, H] holds rows i, (f,) o; coupled has gate blocks i, g, o and f = 1 - i. The
peephole gradient of each (t, b, j) goes to a workspace that is summed after the loop, so no two
threads add into one element.
"""
import math

from numba import cuda

from .cuda_config import FASTMATH
from .cuda_steps import col_sums, copy_of, gemm, grid_1d, sigmoid, time_at, update_rows, weight_grads
from .gates import CIFG_G, CIFG_I, CIFG_O, LSTM_F, LSTM_G, LSTM_I, LSTM_O, PEEP_F, PEEP_I


@cuda.jit(device=True, inline=True)
def _offsets(H, coupled):
    """Offsets of the i, f, g, o blocks in a row of gate values (f unused when coupled)."""
    if coupled:
        return CIFG_I * H, 0, CIFG_G * H, CIFG_O * H
    return LSTM_I * H, LSTM_F * H, LSTM_G * H, LSTM_O * H


@cuda.jit(cache=True, fastmath=FASTMATH)
def _gates_forward(h_t, c_t, a_t, h_prev, c_prev, b_ih, b_hh, w_peep, lengths, t, proj, coupled):
    """h_t [B, H] out: o * tanh(c), the state itself without projection; c_t [B, H] out;
    a_t [B, G] in: W_ih x + W_hh h, out: gate activations; h_prev [B, P], c_prev [B, H];
    w_peep [NP, H] or [0, H]."""
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
    oi, of, og, oo = _offsets(H, coupled)
    peep = w_peep.shape[0] > 0
    cp = c_prev[b, j]
    zi = a_t[b, oi + j] + b_ih[oi + j] + b_hh[oi + j]
    if peep:
        zi += w_peep[PEEP_I, j] * cp
    gi = sigmoid(zi)
    if coupled:
        gf = 1.0 - gi
    else:
        zf = a_t[b, of + j] + b_ih[of + j] + b_hh[of + j]
        if peep:
            zf += w_peep[PEEP_F, j] * cp
        gf = sigmoid(zf)
        a_t[b, of + j] = gf
    gg = math.tanh(a_t[b, og + j] + b_ih[og + j] + b_hh[og + j])
    c = gf * cp + gi * gg
    zo = a_t[b, oo + j] + b_ih[oo + j] + b_hh[oo + j]
    if peep:
        zo += w_peep[w_peep.shape[0] - 1, j] * c
    go = sigmoid(zo)
    a_t[b, oi + j] = gi
    a_t[b, og + j] = gg
    a_t[b, oo + j] = go
    c_t[b, j] = c
    h_t[b, j] = go * math.tanh(c)


def lstm_forward(hs, cs, acts, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep, lengths, reverse, coupled):
    """hs [T, B, P] out; cs [T, B, H] out; acts [T, B, G] out: gate activations (G = 4H, or 3H
    when coupled); x [T, B, I]; h0 [B, P]; c0 [B, H]; w_ih [G, I]; w_hh [G, P]; b_ih, b_hh [G];
    w_hr [P, H] or [0, 0]; w_peep [NP, H] or [0, H]; lengths [B] int64 in 1..T;
    reverse: walk t = T-1..0; coupled: f = 1 - i."""
    T, B, I = x.shape
    H = c0.shape[1]
    G = w_ih.shape[0]
    proj = w_hr.shape[0] > 0
    gemm(acts.reshape(T * B, G), x.reshape(T * B, I), w_ih, trans_b=True)
    r = cuda.device_array((B, H), x.dtype) if proj else None   # o * tanh(c) before projection
    blocks, threads = grid_1d(B * H)
    for s in range(T):
        t = time_at(s, T, reverse)
        h_prev = h0 if s == 0 else hs[time_at(s - 1, T, reverse)]
        c_prev = c0 if s == 0 else cs[time_at(s - 1, T, reverse)]
        gemm(acts[t], h_prev, w_hh, trans_b=True, accumulate=True)
        _gates_forward[blocks, threads](r if proj else hs[t], cs[t], acts[t], h_prev, c_prev,
                                        b_ih, b_hh, w_peep, lengths, t, proj, coupled)
        if proj:
            gemm(hs[t], r, w_hr, trans_b=True)
            update_rows(hs[t], h_prev, lengths, t, valid=False)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _gates_backward(dg_t, dc, r_t, dpeep_t, dr, a_t, c_t, c_prev, w_peep, lengths, t, proj, coupled):
    """dg_t [B, G] out: gradient of the gate pre-activations (zero past a sequence's end);
    dc [B, H] gradient on c, updated in place; r_t [B, H] out (proj only): o * tanh(c);
    dpeep_t [B, NP, H] out (peephole only): this step's peephole-weight gradient;
    dr [B, H] gradient on o * tanh(c); a_t [B, G] activations; c_t, c_prev [B, H]; w_peep [NP, H]."""
    i = cuda.grid(1)
    B, H = dc.shape
    if i >= B * H:
        return
    b = i // H
    j = i - b * H
    NP = w_peep.shape[0]
    if t >= lengths[b]:
        for gate in range(a_t.shape[1] // H):
            dg_t[b, gate * H + j] = 0.0
        for row in range(NP):
            dpeep_t[b, row, j] = 0.0
        if proj:
            r_t[b, j] = 0.0
        return
    oi, of, og, oo = _offsets(H, coupled)
    gi = a_t[b, oi + j]
    gg = a_t[b, og + j]
    go = a_t[b, oo + j]
    cp = c_prev[b, j]
    cn = c_t[b, j]
    tc = math.tanh(cn)
    if proj:
        r_t[b, j] = go * tc
    dzo = dr[b, j] * tc * go * (1.0 - go)
    dcj = dc[b, j] + dr[b, j] * go * (1.0 - tc * tc)
    if NP > 0:
        dcj += dzo * w_peep[NP - 1, j]
    if coupled:                 # f = 1 - i: i's gradient also takes -(gradient on f)
        gf = 1.0 - gi
        dzi = (dcj * gg - dcj * cp) * gi * (1.0 - gi)
        dzf = 0.0
    else:
        gf = a_t[b, of + j]
        dzi = dcj * gg * gi * (1.0 - gi)
        dzf = dcj * cp * gf * (1.0 - gf)
        dg_t[b, of + j] = dzf
    dg_t[b, oi + j] = dzi
    dg_t[b, og + j] = dcj * gi * (1.0 - gg * gg)
    dg_t[b, oo + j] = dzo
    dcp = dcj * gf
    if NP > 0:
        dcp += dzi * w_peep[PEEP_I, j]
        dpeep_t[b, PEEP_I, j] = dzi * cp
        dpeep_t[b, NP - 1, j] = dzo * cn
        if not coupled:
            dcp += dzf * w_peep[PEEP_F, j]
            dpeep_t[b, PEEP_F, j] = dzf * cp
    dc[b, j] = dcp


def lstm_backward(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, dw_peep,
                  dhs, dhn, dcn, x, h0, c0, w_ih, w_hh, w_hr, w_peep, hs, cs, acts, lengths, reverse, coupled):
    """dx [T, B, I] out; dh0 [B, P], dc0 [B, H] out;
    dw_ih [G, I], dw_hh [G, P], db_ih, db_hh [G], dw_hr [P, H] or [0, 0], dw_peep [NP, H] or
    [0, H]: accumulated; dhs [T, B, P] gradient on the outputs; dhn [B, P], dcn [B, H] gradient on
    the final state; the rest is the forward's inputs and saved hs, cs, acts."""
    T, B, I = x.shape
    H = c0.shape[1]
    G = w_ih.shape[0]
    P = hs.shape[2]
    NP = w_peep.shape[0]
    proj = w_hr.shape[0] > 0
    dg = cuda.device_array((T, B, G), x.dtype)
    dh = copy_of(dhn)                       # [B, P] gradient flowing into h_t
    dc = copy_of(dcn)                       # [B, H]
    dprev = cuda.device_array((B, P), x.dtype)
    Tp = T if proj else 1                   # projection workspaces, [1, ...] stand-ins without one
    dh_steps = cuda.device_array((Tp, B, P), x.dtype)   # total gradient on each step's h
    rs = cuda.device_array((Tp, B, H), x.dtype)         # o * tanh(c) of each step
    dpeep = cuda.device_array((T if NP else 1, B, NP, H), x.dtype)   # peephole gradient of each step
    dr = cuda.device_array((B, H), x.dtype) if proj else dh
    blocks, threads = grid_1d(B * H)
    for s in range(T - 1, -1, -1):
        t = time_at(s, T, reverse)
        update_rows(dh, dhs[t], lengths, t, add=True)
        if proj:
            dh_steps[t].copy_to_device(dh)
            gemm(dr, dh, w_hr)
        c_prev = c0 if s == 0 else cs[time_at(s - 1, T, reverse)]
        _gates_backward[blocks, threads](dg[t], dc, rs[t if proj else 0], dpeep[t if NP else 0], dr, acts[t],
                                         cs[t], c_prev, w_peep, lengths, t, proj, coupled)
        gemm(dprev, dg[t], w_hh)
        update_rows(dh, dprev, lengths, t)
    dh0.copy_to_device(dh)
    dc0.copy_to_device(dc)
    weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dg, dg, x, hs, h0, w_ih, reverse)
    if proj:
        gemm(dw_hr, dh_steps.reshape(T * B, P), rs.reshape(T * B, H), trans_a=True, accumulate=True)
    if NP:
        col_sums(dw_peep.reshape(NP * H), dpeep.reshape(T * B, NP * H))
