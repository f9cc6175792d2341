"""LSTM forward and BPTT for one layer and one direction on the GPU (Numba CUDA); sibling of
engine/lstm.py with the same signatures, every array a device array.

Per direction: one tiled matrix product for W_ih x over all steps, then one fused launch per step
(engine/cuda_fused.py: the thread of (b, j) forms its rows i, f, g, o of W_hh h itself and updates
c and h). Backward: one launch per step (the gradient entering h_t, dg_{t+1} @ W_hh, is formed by
the thread that uses it), one for the gradient into h0, and the weight gradients as products
after the loop (engine/cuda_steps.py). With a projection (P < H) each step needs all of
r = o * tanh(c) before h = W_hr r, and the gradient on r needs all of dh, so forward and backward
take two launches per step then: gates, then projection (forward); gradient into h, then gates
(backward). Workspaces are allocated once per call, never inside the loop.
With cuda_config.PERSISTENT and no projection the time loop is one cooperative launch instead
(engine/cuda_fused.py), built from the same per-unit device functions.
The peephole and coupled variants are engine/lstm.py's (the ONNX LSTM operator's semantics): with
peepholes w_peep [NP, H] holds rows i, (f,) o; coupled has gate blocks i, g, o and f = 1 - i. The
peephole gradient of each (t, b, j) goes to a workspace that is summed after the loop, so no two
threads add into one element.
"""
import math

from numba import cuda

from . import cuda_config
from .cuda_config import FASTMATH
from .cuda_fused import (grad_entering, grad_into_h0, launch_persistent, recurrent_row, sigmoid, time_at_device,
                         transposed)
from .cuda_steps import col_sums, gemm, grid_1d, time_at, weight_grads
from .gates import CIFG_G, CIFG_I, CIFG_O, LSTM_F, LSTM_G, LSTM_I, LSTM_O, PEEP_F, PEEP_I


@cuda.jit(device=True, inline=True)
def _offsets(H, coupled):
    """Offsets of the i, f, g, o blocks in a row of gate values (f unused when coupled)."""
    if coupled:
        return CIFG_I * H, 0, CIFG_G * H, CIFG_O * H
    return LSTM_I * H, LSTM_F * H, LSTM_G * H, LSTM_O * H


@cuda.jit(device=True, inline=True, fastmath=FASTMATH)
def _forward_unit(h_t, c_t, a_t, h_prev, c_prev, w_hh_t, b_ih, b_hh, w_peep, lengths, t, proj, coupled, b, j):
    """Unit j of row b at step t. h_t [B, H] out: o * tanh(c), the state itself without projection; c_t [B, H] out;
    a_t [B, G] in: W_ih x, out: gate activations; h_prev [B, P], c_prev [B, H];
    w_hh_t [P, G] W_hh transposed; w_peep [NP, H] or [0, H]."""
    H = c_t.shape[1]
    if t >= lengths[b]:
        c_t[b, j] = c_prev[b, j]
        if not proj:                         # with a projection the frozen h is copied by _project
            h_t[b, j] = h_prev[b, j]
        return
    one = c_t.dtype.type(1)
    oi, of, og, oo = _offsets(H, coupled)
    peep = w_peep.shape[0] > 0
    cp = c_prev[b, j]
    zi = a_t[b, oi + j] + b_ih[oi + j] + b_hh[oi + j] + recurrent_row(w_hh_t, oi + j, h_prev, b)
    if peep:
        zi += w_peep[PEEP_I, j] * cp
    gi = sigmoid(zi, one)
    if coupled:
        gf = one - gi
    else:
        zf = a_t[b, of + j] + b_ih[of + j] + b_hh[of + j] + recurrent_row(w_hh_t, of + j, h_prev, b)
        if peep:
            zf += w_peep[PEEP_F, j] * cp
        gf = sigmoid(zf, one)
        a_t[b, of + j] = gf
    gg = math.tanh(a_t[b, og + j] + b_ih[og + j] + b_hh[og + j] + recurrent_row(w_hh_t, og + j, h_prev, b))
    c = gf * cp + gi * gg
    zo = a_t[b, oo + j] + b_ih[oo + j] + b_hh[oo + j] + recurrent_row(w_hh_t, oo + j, h_prev, b)
    if peep:
        zo += w_peep[w_peep.shape[0] - 1, j] * c
    go = sigmoid(zo, one)
    a_t[b, oi + j] = gi
    a_t[b, og + j] = gg
    a_t[b, oo + j] = go
    c_t[b, j] = c
    h_t[b, j] = go * math.tanh(c)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _step_forward(h_t, c_t, a_t, h_prev, c_prev, w_hh_t, b_ih, b_hh, w_peep, lengths, t, proj, coupled):
    i = cuda.grid(1)
    B, H = c_t.shape
    if i < B * H:
        _forward_unit(h_t, c_t, a_t, h_prev, c_prev, w_hh_t, b_ih, b_hh, w_peep, lengths, t, proj, coupled,
                      i // H, i % H)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _all_steps_forward(hs, cs, acts, h0, c0, w_hh_t, b_ih, b_hh, w_peep, lengths, reverse, coupled):
    """The persistent kernel: every step of lstm_forward without projection in one launch."""
    grid = cuda.cg.this_grid()
    T, B, H = cs.shape
    for s in range(T):
        t = time_at_device(s, T, reverse)
        for i in range(cuda.grid(1), B * H, cuda.gridsize(1)):
            if s == 0:
                _forward_unit(hs[t], cs[t], acts[t], h0, c0, w_hh_t, b_ih, b_hh, w_peep, lengths, t, False,
                              coupled, i // H, i % H)
            else:
                prev = time_at_device(s - 1, T, reverse)
                _forward_unit(hs[t], cs[t], acts[t], hs[prev], cs[prev], w_hh_t, b_ih, b_hh, w_peep, lengths, t,
                              False, coupled, i // H, i % H)
        grid.sync()


@cuda.jit(cache=True, fastmath=FASTMATH)
def _project(h_t, r, h_prev, w_hr, lengths, t):
    """h_t [B, P] out: W_hr r, or h_prev [B, P] past a sequence's end; r [B, H]; w_hr [P, H]."""
    i = cuda.grid(1)
    B, P = h_t.shape
    if i >= B * P:
        return
    b = i // P
    p = i - b * P
    if t >= lengths[b]:
        h_t[b, p] = h_prev[b, p]
        return
    acc = h_t.dtype.type(0)
    for j in range(r.shape[1]):
        acc += w_hr[p, j] * r[b, j]
    h_t[b, p] = acc


def lstm_forward(hs, cs, acts, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep, lengths, reverse, coupled):
    """hs [T, B, P] out; cs [T, B, H] out; acts [T, B, G] out: gate activations (G = 4H, or 3H
    when coupled); x [T, B, I]; h0 [B, P]; c0 [B, H]; w_ih [G, I]; w_hh [G, P]; b_ih, b_hh [G];
    w_hr [P, H] or [0, 0]; w_peep [NP, H] or [0, H]; lengths [B] int64 in 1..T;
    reverse: walk t = T-1..0; coupled: f = 1 - i."""
    T, B, I = x.shape
    H = c0.shape[1]
    P = h0.shape[1]
    G = w_ih.shape[0]
    proj = w_hr.shape[0] > 0
    gemm(acts.reshape(T * B, G), x.reshape(T * B, I), w_ih, trans_b=True)
    w_hh_t = transposed(w_hh)
    r = cuda.device_array((B, H), x.dtype) if proj else None   # o * tanh(c) before projection
    if cuda_config.PERSISTENT and not proj:
        launch_persistent(_all_steps_forward, B * H, hs, cs, acts, h0, c0, w_hh_t, b_ih, b_hh, w_peep, lengths,
                          reverse, coupled)
    else:
        blocks, threads = grid_1d(B * H)
        blocks_p, threads_p = grid_1d(B * P)
        for s in range(T):
            t = time_at(s, T, reverse)
            h_prev = h0 if s == 0 else hs[time_at(s - 1, T, reverse)]
            c_prev = c0 if s == 0 else cs[time_at(s - 1, T, reverse)]
            _step_forward[blocks, threads](r if proj else hs[t], cs[t], acts[t], h_prev, c_prev, w_hh_t,
                                           b_ih, b_hh, w_peep, lengths, t, proj, coupled)
            if proj:
                _project[blocks_p, threads_p](hs[t], r, h_prev, w_hr, lengths, t)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _grad_step(dh_t, carry, dhs_t, dg, w_hh, lengths, t, t_next):
    """Projection only, before the gates: dh_t [B, P] out: total gradient on h_t (zero past a
    sequence's end); carry [B, P] as in _step_backward; dhs_t [B, P]; dg [T, B, G] (reads
    dg[t_next]); w_hh [G, P]."""
    i = cuda.grid(1)
    B, P = carry.shape
    if i >= B * P:
        return
    b = i // P
    p = i - b * P
    v = grad_entering(carry, dg, t_next, w_hh, lengths, b, p)
    zero = carry.dtype.type(0)
    if t >= lengths[b]:
        dh_t[b, p] = zero
        carry[b, p] = v
    else:
        dh_t[b, p] = v + dhs_t[b, p]
        carry[b, p] = zero


@cuda.jit(device=True, inline=True, fastmath=FASTMATH)
def _backward_unit(dg, dc, carry, dhs_t, dh_t, r_t, dpeep_t, a_t, c_t, c_prev, w_hh, w_hr, w_peep,
                   lengths, t, t_next, coupled, b, j):
    """Unit j of row b at step t. dg [T, B, G]: writes dg[t], the gradient of the gate pre-activations (zero past a
    sequence's end), reads dg[t_next]; dc [B, H] gradient on c, updated in place;
    carry [B, H] (no projection): gradient left for h_t by the step walked before, replaced by
    what this step leaves for h_{t-1} besides dg[t] @ W_hh; dhs_t [B, H] gradient on this step's
    output (no projection); dh_t [B, P] total gradient on h_t (projection: from _grad_step);
    r_t [B, H] out (projection only): o * tanh(c); dpeep_t [B, NP, H] out (peephole only): this
    step's peephole-weight gradient; a_t [B, G] activations; c_t, c_prev [B, H]; w_hh [G, H];
    w_hr [P, H] or [0, 0]; w_peep [NP, H]."""
    H = dc.shape[1]
    NP = w_peep.shape[0]
    proj = w_hr.shape[0] > 0
    zero = dc.dtype.type(0)
    one = dc.dtype.type(1)
    valid = t < lengths[b]
    if proj:
        dr = zero
        if valid:
            for p in range(w_hr.shape[0]):
                dr += dh_t[b, p] * w_hr[p, j]
    else:
        dr = grad_entering(carry, dg, t_next, w_hh, lengths, b, j)
        carry[b, j] = zero if valid else dr
        dr += dhs_t[b, j]
    if not valid:
        for gate in range(a_t.shape[1] // H):
            dg[t, b, gate * H + j] = zero
        for row in range(NP):
            dpeep_t[b, row, j] = zero
        if proj:
            r_t[b, j] = zero
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
    dzo = dr * tc * go * (one - go)
    dcj = dc[b, j] + dr * go * (one - tc * tc)
    if NP > 0:
        dcj += dzo * w_peep[NP - 1, j]
    if coupled:                 # f = 1 - i: i's gradient also takes -(gradient on f)
        gf = one - gi
        dzi = (dcj * gg - dcj * cp) * gi * (one - gi)
        dzf = zero
    else:
        gf = a_t[b, of + j]
        dzi = dcj * gg * gi * (one - gi)
        dzf = dcj * cp * gf * (one - gf)
        dg[t, b, of + j] = dzf
    dg[t, b, oi + j] = dzi
    dg[t, b, og + j] = dcj * gi * (one - gg * gg)
    dg[t, b, oo + j] = dzo
    dcp = dcj * gf
    if NP > 0:
        dcp += dzi * w_peep[PEEP_I, j]
        dpeep_t[b, PEEP_I, j] = dzi * cp
        dpeep_t[b, NP - 1, j] = dzo * cn
        if not coupled:
            dcp += dzf * w_peep[PEEP_F, j]
            dpeep_t[b, PEEP_F, j] = dzf * cp
    dc[b, j] = dcp


@cuda.jit(cache=True, fastmath=FASTMATH)
def _step_backward(dg, dc, carry, dhs_t, dh_t, r_t, dpeep_t, a_t, c_t, c_prev, w_hh, w_hr, w_peep,
                   lengths, t, t_next, coupled):
    i = cuda.grid(1)
    B, H = dc.shape
    if i < B * H:
        _backward_unit(dg, dc, carry, dhs_t, dh_t, r_t, dpeep_t, a_t, c_t, c_prev, w_hh, w_hr, w_peep,
                       lengths, t, t_next, coupled, i // H, i % H)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _all_steps_backward(dg, dc0, dh0, dhs, rs, dpeep, acts, cs, c0, w_hh, w_hr, w_peep, lengths, reverse, coupled):
    """The persistent kernel: every step of lstm_backward without projection and the gradient into
    h0 in one launch; rs [1, B, H] and, without peepholes, dpeep [1, B, 0, H] are stand-ins."""
    grid = cuda.cg.this_grid()
    T, B, H = cs.shape
    NP = w_peep.shape[0]
    for s in range(T - 1, -1, -1):
        t = time_at_device(s, T, reverse)
        t_next = time_at_device(s + 1, T, reverse) if s < T - 1 else -1
        tp = t if NP > 0 else 0
        for i in range(cuda.grid(1), B * H, cuda.gridsize(1)):
            if s == 0:
                _backward_unit(dg, dc0, dh0, dhs[t], dh0, rs[0], dpeep[tp], acts[t], cs[t], c0, w_hh, w_hr,
                               w_peep, lengths, t, t_next, coupled, i // H, i % H)
            else:
                _backward_unit(dg, dc0, dh0, dhs[t], dh0, rs[0], dpeep[tp], acts[t], cs[t],
                               cs[time_at_device(s - 1, T, reverse)], w_hh, w_hr, w_peep, lengths, t, t_next,
                               coupled, i // H, i % H)
        grid.sync()
    for i in range(cuda.grid(1), B * H, cuda.gridsize(1)):
        dh0[i // H, i % H] = grad_entering(dh0, dg, time_at_device(0, T, reverse), w_hh, lengths, i // H, i % H)


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
    dh0.copy_to_device(dhn)                 # dh0 is the carry workspace until the last product
    dc0.copy_to_device(dcn)                 # dc0 is the gradient on c, updated step by step
    Tp = T if proj else 1                   # projection workspaces, [1, ...] stand-ins without one
    dh_steps = cuda.device_array((Tp, B, P), x.dtype)   # total gradient on each step's h
    rs = cuda.device_array((Tp, B, H), x.dtype)         # o * tanh(c) of each step
    dpeep = cuda.device_array((T if NP else 1, B, NP, H), x.dtype)   # peephole gradient of each step
    if cuda_config.PERSISTENT and not proj:
        launch_persistent(_all_steps_backward, B * H, dg, dc0, dh0, dhs, rs, dpeep, acts, cs, c0, w_hh, w_hr,
                          w_peep, lengths, reverse, coupled)
    else:
        blocks, threads = grid_1d(B * H)
        blocks_p, threads_p = grid_1d(B * P)
        for s in range(T - 1, -1, -1):
            t = time_at(s, T, reverse)
            t_next = time_at(s + 1, T, reverse) if s < T - 1 else -1
            c_prev = c0 if s == 0 else cs[time_at(s - 1, T, reverse)]
            if proj:
                _grad_step[blocks_p, threads_p](dh_steps[t], dh0, dhs[t], dg, w_hh, lengths, t, t_next)
            _step_backward[blocks, threads](dg, dc0, dh0, dhs[t], dh_steps[t if proj else 0], rs[t if proj else 0],
                                            dpeep[t if NP else 0], acts[t], cs[t], c_prev, w_hh, w_hr, w_peep,
                                            lengths, t, t_next, coupled)
        grad_into_h0(dh0, dg, w_hh, lengths, time_at(0, T, reverse))
    weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dg, dg, x, hs, h0, w_ih, reverse)
    if proj:
        gemm(dw_hr, dh_steps.reshape(T * B, P), rs.reshape(T * B, H), trans_a=True, accumulate=True)
    if NP:
        col_sums(dw_peep.reshape(NP * H), dpeep.reshape(T * B, NP * H))
