"""GRU forward and BPTT for one layer and one direction, compiled on the CPU (private kernels).

Gate rows r, z, n (engine/gates.py), PyTorch's form with b_hn inside the reset product:
  r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
  n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h
The wrapper (python/numrnn/recurrent.py) validates, allocates and loops over layers/directions.
"""
import numpy as np
from numba import njit

from .activations import sigmoid, tanh
from .gates import GRU_N, GRU_R, GRU_Z
from .steps import input_grads, input_projection, recurrent_grads, time_at


@njit(cache=True)
def gru_forward(hs, acts, hn_pre, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse):
    """hs [T, B, H] out: h after each step; acts [T, B, 3H] out: r, z, n activations;
    hn_pre [T, B, H] out: W_hn h + b_hn of each step (saved for backward);
    x [T, B, I]; h0 [B, H]; w_ih [3H, I]; w_hh [3H, H]; b_ih, b_hh [3H];
    lengths [B] int64 in 1..T; reverse: walk t = T-1..0."""
    T, B, _ = x.shape
    H = h0.shape[1]
    input_projection(acts, x, w_ih)
    h = h0.copy()                    # [B, H] running state
    gh = np.empty((B, 3 * H), x.dtype)
    for s in range(T):
        t = time_at(s, T, reverse)
        np.dot(h, w_hh.T, gh)
        for b in range(B):
            if t >= lengths[b]:
                continue
            a = acts[t, b]
            for j in range(H):
                rj = sigmoid(a[GRU_R * H + j] + b_ih[GRU_R * H + j] + b_hh[GRU_R * H + j] + gh[b, GRU_R * H + j])
                zj = sigmoid(a[GRU_Z * H + j] + b_ih[GRU_Z * H + j] + b_hh[GRU_Z * H + j] + gh[b, GRU_Z * H + j])
                hn = gh[b, GRU_N * H + j] + b_hh[GRU_N * H + j]
                nj = tanh(a[GRU_N * H + j] + b_ih[GRU_N * H + j] + rj * hn)
                a[GRU_R * H + j] = rj
                a[GRU_Z * H + j] = zj
                a[GRU_N * H + j] = nj
                hn_pre[t, b, j] = hn
                h[b, j] = (1.0 - zj) * nj + zj * h[b, j]
        hs[t] = h


@njit(cache=True)
def gru_backward(dx, dh0, dw_ih, dw_hh, db_ih, db_hh,
                 dhs, dhn, x, h0, w_ih, w_hh, hs, acts, hn_pre, lengths, reverse):
    """dx [T, B, I] out; dh0 [B, H] out;
    dw_ih [3H, I], dw_hh [3H, H], db_ih, db_hh [3H]: accumulated;
    dhs [T, B, H] gradient on the outputs; dhn [B, H] gradient on the final state;
    the rest is the forward's inputs and saved hs, acts, hn_pre."""
    T, B, _ = x.shape
    H = h0.shape[1]
    dgx = np.zeros((T, B, 3 * H), x.dtype)   # gradient of the input-side pre-activations
    dgh = np.zeros((B, 3 * H), x.dtype)      # gradient of W_hh h + b_hh at the current step
    dh = dhn.copy()                           # [B, H] gradient flowing into h_t
    dprev = np.empty_like(dh)                 # [B, H] its part through W_hh, one buffer for all steps
    for s in range(T - 1, -1, -1):
        t = time_at(s, T, reverse)
        for b in range(B):
            if t >= lengths[b]:
                continue
            a = acts[t, b]
            for j in range(H):
                hprev = h0[b, j] if s == 0 else hs[time_at(s - 1, T, reverse), b, j]
                rj = a[GRU_R * H + j]
                zj = a[GRU_Z * H + j]
                nj = a[GRU_N * H + j]
                dhj = dh[b, j] + dhs[t, b, j]
                dn = dhj * (1.0 - zj) * (1.0 - nj * nj)
                dr = dn * hn_pre[t, b, j] * rj * (1.0 - rj)
                dz = dhj * (hprev - nj) * zj * (1.0 - zj)
                dgx[t, b, GRU_R * H + j] = dr
                dgx[t, b, GRU_Z * H + j] = dz
                dgx[t, b, GRU_N * H + j] = dn
                dgh[b, GRU_R * H + j] = dr
                dgh[b, GRU_Z * H + j] = dz
                dgh[b, GRU_N * H + j] = dn * rj
                dh[b, j] = dhj * zj
        np.dot(dgh, w_hh, dprev)       # rows of finished sequences hold stale values; unused
        for b in range(B):
            if t < lengths[b]:
                dh[b] += dprev[b]
    dh0[:] = dh
    input_grads(dx, dw_ih, db_ih, dgx, x, w_ih)
    # the recurrent side's gradient differs from the input side's only in the n rows (dn * r):
    # rewrite them in place instead of keeping a second [T, B, 3H] buffer through the loop
    for t in range(T):
        for b in range(B):
            if t < lengths[b]:      # acts past a sequence's end were never written
                for j in range(H):
                    dgx[t, b, GRU_N * H + j] *= acts[t, b, GRU_R * H + j]
    recurrent_grads(dw_hh, db_hh, dgx, hs, h0, reverse)
