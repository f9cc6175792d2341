"""LSTM forward and BPTT for one layer and one direction, compiled on the CPU (private kernels).

Gate rows i, f, g, o (engine/gates.py). With a projection (proj_size P > 0) the state is
h = W_hr (o * tanh(c)); without one, w_hr is an empty [0, 0] array and P = H.
  c_t = f * c_{t-1} + i * g,   h_t = [W_hr] (o * tanh(c_t))
Two variants share these kernels (the ONNX LSTM operator's semantics):
  peephole: w_peep [NP, H] rows i, f, o (gates.py): i and f add w_peep * c_{t-1} to their
            pre-activation, o adds w_peep * c_t; without peepholes w_peep is an empty [0, H] array.
  coupled:  f = 1 - i (CIFG); the gate blocks are i, g, o and no forget rows exist.
The wrapper (python/numrnn/recurrent.py) validates, allocates and loops over layers/directions.
"""
import numpy as np
from numba import njit

from .activations import sigmoid, tanh
from .gates import CIFG_G, CIFG_I, CIFG_O, LSTM_F, LSTM_G, LSTM_I, LSTM_O, PEEP_F, PEEP_I
from .step_product import backward_scratch, backward_weight, forward_scratch, step_matmul, step_matmul_t
from .steps import input_projection, time_at, weight_grads



@njit(cache=True, inline="always")
def gate_offsets(H, coupled):
    """Offsets of the i, f, g, o blocks in a row of G gate values (f unused when coupled)."""
    if coupled:
        return CIFG_I * H, 0, CIFG_G * H, CIFG_O * H
    return LSTM_I * H, LSTM_F * H, LSTM_G * H, LSTM_O * H


@njit(cache=True, error_model="numpy")
def lstm_forward(hs, cs, acts, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep, lengths, reverse, coupled):
    """hs [T, B, P] out: h after each step; cs [T, B, H] out: c after each step;
    acts [T, B, G] out: gate activations, saved for backward (G = 4H, or 3H when coupled);
    x [T, B, I]; h0 [B, P]; c0 [B, H]; w_ih [G, I]; w_hh [G, P]; b_ih, b_hh [G];
    w_hr [P, H] or [0, 0]; w_peep [NP, H] or [0, H]; lengths [B] int64 in 1..T;
    reverse: walk t = T-1..0; coupled: f = 1 - i."""
    B, H = c0.shape
    G = w_ih.shape[0]
    no_t = w_ih[0:0]
    lstm_run(hs, cs, acts, x, h0.copy(), c0.copy(), np.empty((B, H), x.dtype), np.empty((B, G), x.dtype),
             np.empty_like(h0), b_ih + b_hh, w_ih, no_t, w_hh, no_t, forward_scratch(x, B, w_hh), w_hr,
             w_peep, lengths, reverse, coupled)


@njit(cache=True, error_model="numpy")
def lstm_row(a, ghb, bias, cb, rb, w_peep, po, peep, coupled):
    """One sequence's step over n units (all H of them, or a share when a call is split over
    threads, engine/infer_split.py): a [NG * n] input projection in, gate activations out, in
    gate blocks of n; ghb [NG * n] the recurrent product; bias [NG * n] = b_ih + b_hh;
    cb [n] c_{t-1} in, c_t out; rb [n] out: o * tanh(c_t); w_peep [NP, n] (peep: used)."""
    n = cb.shape[0]
    oi, of, og, oo = gate_offsets(n, coupled)
    # in short passes over contiguous rows, so that each one vectorises
    for k in range(a.shape[0]):
        a[k] = a[k] + bias[k] + ghb[k]
    if peep:
        for j in range(n):
            a[oi + j] += w_peep[PEEP_I, j] * cb[j]
        if not coupled:
            for j in range(n):
                a[of + j] += w_peep[PEEP_F, j] * cb[j]
    for j in range(n):
        a[oi + j] = sigmoid(a[oi + j])
    for j in range(n):
        a[og + j] = tanh(a[og + j])
    if coupled:
        for j in range(n):
            cb[j] = (1.0 - a[oi + j]) * cb[j] + a[oi + j] * a[og + j]
    else:
        for j in range(n):
            a[of + j] = sigmoid(a[of + j])
        for j in range(n):
            cb[j] = a[of + j] * cb[j] + a[oi + j] * a[og + j]
    if peep:
        for j in range(n):
            a[oo + j] += w_peep[po, j] * cb[j]
    for j in range(n):
        go = sigmoid(a[oo + j])
        a[oo + j] = go
        rb[j] = go * tanh(cb[j])


@njit(cache=True, error_model="numpy")
def lstm_run(hs, cs, acts, x, h, c, r, gh, hp, bias, w_ih, w_ih_t, w_hh, w_hh_t, scratch, w_hr, w_peep, lengths,
             reverse, coupled):
    """lstm_forward on caller-owned buffers, so that the inference path allocates nothing:
    h [B, P], c [B, H] the running state, h0 and c0 in (overwritten); r [B, H], gh [B, G],
    hp [B, P] scratch; bias [G] = b_ih + b_hh; w_ih_t [I, G], w_hh_t [P, G] the transposes for
    the small-batch product (engine/matvec.py), or [0, G] to use OpenBLAS; scratch: the scratch
    of engine/step_product.py, or [0] (the inference path); the rest as there."""
    T, B, _ = x.shape
    proj = w_hr.shape[0] > 0
    peep = w_peep.shape[0] > 0
    po = w_peep.shape[0] - 1        # the o row is the last one
    input_projection(acts, x, w_ih, w_ih_t)
    for s in range(T):
        t = time_at(s, T, reverse)
        step_matmul_t(gh, h, w_hh, w_hh_t, scratch)
        for b in range(B):
            if t < lengths[b]:
                lstm_row(acts[t, b], gh[b], bias, c[b], r[b], w_peep, po, peep, coupled)
        if proj:
            np.dot(r, w_hr.T, hp)
        for b in range(B):
            if t < lengths[b]:
                h[b] = hp[b] if proj else r[b]
        hs[t] = h
        cs[t] = c


@njit(cache=True, error_model="numpy")
def lstm_backward(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, dw_peep,
                  dhs, dhn, dcn, x, h0, c0, w_ih, w_hh, w_hr, w_peep, hs, cs, acts, lengths, reverse, coupled):
    """dx [T, B, I] out; dh0 [B, P], dc0 [B, H] out;
    dw_ih [G, I], dw_hh [G, P], db_ih, db_hh [G], dw_hr [P, H] or [0, 0], dw_peep [NP, H] or [0, H]:
    accumulated; dhs [T, B, P] gradient on the outputs; dhn [B, P], dcn [B, H] gradient on the
    final state; the rest is the forward's inputs and saved hs, cs, acts."""
    T, B, _ = x.shape
    H = c0.shape[1]
    G = w_ih.shape[0]
    proj = w_hr.shape[0] > 0
    peep = w_peep.shape[0] > 0
    po = w_peep.shape[0] - 1
    oi, of, og, oo = gate_offsets(H, coupled)
    dg = np.zeros((T, B, G), x.dtype)       # gradient of the gate pre-activations
    dh = dhn.copy()                           # [B, P] gradient flowing into h_t
    dprev = np.empty_like(dh)                 # [B, P] its part through W_hh, one buffer for all steps
    dc = dcn.copy()                           # [B, H]
    Tp = T if proj else 0
    P = hs.shape[2]
    dh_steps = np.zeros((Tp, B, P), x.dtype)  # [T, B, P] total gradient on each step's h (proj only)
    rs = np.zeros((Tp, B, H), x.dtype)         # [T, B, H] o * tanh(c) of each step (proj only)
    tc = np.empty(H, x.dtype)                 # [H] tanh(c_t) of the current row
    scratch = backward_scratch(x, B, w_hh)    # the step's product order (engine/step_product.py)
    w_hh_t = backward_weight(w_hh, scratch, B)
    for s in range(T - 1, -1, -1):
        t = time_at(s, T, reverse)
        for b in range(B):
            if t < lengths[b]:
                dh[b] += dhs[t, b]
        if proj:
            dh_steps[t] = dh
            dr = np.dot(dh, w_hr)
        else:
            dr = dh
        for b in range(B):
            if t >= lengths[b]:
                continue
            # in short passes over contiguous rows, so that each one vectorises
            a = acts[t, b]          # [G] gate activations
            dgb = dg[t, b]          # [G] out: gradient of the gate pre-activations
            dcb = dc[b]             # [H] gradient on c_t in, on c_{t-1} out
            drb = dr[b]             # [H] gradient on o * tanh(c_t)
            cn = cs[t, b]           # [H] c_t
            cprev = c0[b] if s == 0 else cs[time_at(s - 1, T, reverse), b]    # [H] c_{t-1}
            for j in range(H):
                tc[j] = tanh(cn[j])
            if proj:
                for j in range(H):
                    rs[t, b, j] = a[oo + j] * tc[j]
            for j in range(H):
                go = a[oo + j]
                dgb[oo + j] = drb[j] * tc[j] * go * (1.0 - go)
                dcb[j] += drb[j] * go * (1.0 - tc[j] * tc[j])
            if peep:
                for j in range(H):
                    dcb[j] += dgb[oo + j] * w_peep[po, j]
            for j in range(H):
                gi = a[oi + j]
                gg = a[og + j]
                dgb[og + j] = dcb[j] * gi * (1.0 - gg * gg)
            if coupled:             # f = 1 - i: i's gradient also takes -(gradient on f)
                for j in range(H):
                    gi = a[oi + j]
                    dgb[oi + j] = dcb[j] * (a[og + j] - cprev[j]) * gi * (1.0 - gi)
                    dcb[j] = dcb[j] * (1.0 - gi)
            else:
                for j in range(H):
                    gi = a[oi + j]
                    gf = a[of + j]
                    dgb[oi + j] = dcb[j] * a[og + j] * gi * (1.0 - gi)
                    dgb[of + j] = dcb[j] * cprev[j] * gf * (1.0 - gf)
                    dcb[j] = dcb[j] * gf
            if peep:
                for j in range(H):
                    dcb[j] += dgb[oi + j] * w_peep[PEEP_I, j]
                    dw_peep[PEEP_I, j] += dgb[oi + j] * cprev[j]
                    dw_peep[po, j] += dgb[oo + j] * cn[j]
                if not coupled:
                    for j in range(H):
                        dcb[j] += dgb[of + j] * w_peep[PEEP_F, j]
                        dw_peep[PEEP_F, j] += dgb[of + j] * cprev[j]
        step_matmul(dprev, dg[t], w_hh, w_hh_t, scratch)
        for b in range(B):
            if t < lengths[b]:
                dh[b] = dprev[b]
    dh0[:] = dh
    dc0[:] = dc
    weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dg, x, hs, h0, w_ih, reverse)
    if proj:
        dw_hr += np.dot(dh_steps.reshape((T * B, P)).T, rs.reshape((T * B, H)))
