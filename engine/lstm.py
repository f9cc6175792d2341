"""LSTM forward and BPTT for one layer and one direction, compiled on the CPU (private kernels).

Gate rows i, f, g, o (engine/gates.py). With a projection (proj_size P > 0) the state is
h = W_hr (o * tanh(c)); without one, w_hr is an empty [0, 0] array and P = H.
  c_t = f * c_{t-1} + i * g,   h_t = [W_hr] (o * tanh(c_t))
The wrapper (python/numrnn/recurrent.py) validates, allocates and loops over layers/directions.
"""
import math

import numpy as np
from numba import njit

from .gates import LSTM_F, LSTM_G, LSTM_I, LSTM_O
from .steps import input_projection, states_before, time_at, weight_grads


@njit(cache=True, inline="always")
def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


@njit(cache=True)
def lstm_forward(hs, cs, acts, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse):
    """hs [T, B, P] out: h after each step; cs [T, B, H] out: c after each step;
    acts [T, B, 4H] out: gate activations, saved for backward;
    x [T, B, I]; h0 [B, P]; c0 [B, H]; w_ih [4H, I]; w_hh [4H, P]; b_ih, b_hh [4H];
    w_hr [P, H] or [0, 0]; lengths [B] int64 in 1..T; reverse: walk t = T-1..0."""
    T, B, _ = x.shape
    H = c0.shape[1]
    proj = w_hr.shape[0] > 0
    input_projection(acts, x, w_ih)
    bias = b_ih + b_hh
    h = h0.copy()                   # [B, P] running state
    c = c0.copy()                   # [B, H]
    r = np.empty((B, H), x.dtype)   # o * tanh(c), the state before projection
    gh = np.empty((B, 4 * H), x.dtype)
    for s in range(T):
        t = time_at(s, T, reverse)
        np.dot(h, w_hh.T, gh)
        for b in range(B):
            if t >= lengths[b]:
                continue
            a = acts[t, b]
            for j in range(H):
                gi = sigmoid(a[LSTM_I * H + j] + bias[LSTM_I * H + j] + gh[b, LSTM_I * H + j])
                gf = sigmoid(a[LSTM_F * H + j] + bias[LSTM_F * H + j] + gh[b, LSTM_F * H + j])
                gg = math.tanh(a[LSTM_G * H + j] + bias[LSTM_G * H + j] + gh[b, LSTM_G * H + j])
                go = sigmoid(a[LSTM_O * H + j] + bias[LSTM_O * H + j] + gh[b, LSTM_O * H + j])
                a[LSTM_I * H + j] = gi
                a[LSTM_F * H + j] = gf
                a[LSTM_G * H + j] = gg
                a[LSTM_O * H + j] = go
                c[b, j] = gf * c[b, j] + gi * gg
                r[b, j] = go * math.tanh(c[b, j])
        if proj:
            hp = np.dot(r, w_hr.T)
        else:
            hp = r
        for b in range(B):
            if t < lengths[b]:
                h[b] = hp[b]
        hs[t] = h
        cs[t] = c


@njit(cache=True)
def lstm_backward(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr,
                  dhs, dhn, dcn, x, h0, c0, w_ih, w_hh, w_hr, hs, cs, acts, lengths, reverse):
    """dx [T, B, I] out; dh0 [B, P], dc0 [B, H] out;
    dw_ih [4H, I], dw_hh [4H, P], db_ih, db_hh [4H], dw_hr [P, H] or [0, 0]: accumulated;
    dhs [T, B, P] gradient on the outputs; dhn [B, P], dcn [B, H] gradient on the final state;
    the rest is the forward's inputs and saved hs, cs, acts."""
    T, B, _ = x.shape
    H = c0.shape[1]
    proj = w_hr.shape[0] > 0
    dg = np.zeros((T, B, 4 * H), x.dtype)   # gradient of the gate pre-activations
    dh = dhn.copy()                           # [B, P] gradient flowing into h_t
    dc = dcn.copy()                           # [B, H]
    Tp = T if proj else 0
    P = hs.shape[2]
    dh_steps = np.zeros((Tp, B, P), x.dtype)  # [T, B, P] total gradient on each step's h (proj only)
    rs = np.zeros((Tp, B, H), x.dtype)         # [T, B, H] o * tanh(c) of each step (proj only)
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
            a = acts[t, b]
            for j in range(H):
                gi = a[LSTM_I * H + j]
                gf = a[LSTM_F * H + j]
                gg = a[LSTM_G * H + j]
                go = a[LSTM_O * H + j]
                if s == 0:
                    cprev = c0[b, j]
                else:
                    cprev = cs[time_at(s - 1, T, reverse), b, j]
                tc = math.tanh(cs[t, b, j])
                if proj:
                    rs[t, b, j] = go * tc
                dcj = dc[b, j] + dr[b, j] * go * (1.0 - tc * tc)
                dg[t, b, LSTM_I * H + j] = dcj * gg * gi * (1.0 - gi)
                dg[t, b, LSTM_F * H + j] = dcj * cprev * gf * (1.0 - gf)
                dg[t, b, LSTM_G * H + j] = dcj * gi * (1.0 - gg * gg)
                dg[t, b, LSTM_O * H + j] = dr[b, j] * tc * go * (1.0 - go)
                dc[b, j] = dcj * gf
        dprev = np.dot(dg[t], w_hh)
        for b in range(B):
            if t < lengths[b]:
                dh[b] = dprev[b]
    dh0[:] = dh
    dc0[:] = dc
    weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dg, dg, x, states_before(hs, h0, reverse), w_ih)
    if proj:
        dw_hr += np.dot(dh_steps.reshape((T * B, P)).T, rs.reshape((T * B, H)))
