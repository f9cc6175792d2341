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
from .step_product import backward_scratch, backward_weight, forward_scratch, step_matmul, step_matmul_t
from .steps import add_col_sums, input_grads, input_projection, recurrent_grads, time_at


@njit(cache=True, error_model="numpy")
def gru_forward(hs, acts, hn_pre, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse):
    """hs [T, B, H] out: h after each step; acts [T, B, 3H] out: r, z, n activations;
    hn_pre [T, B, H] out: W_hn h + b_hn of each step (saved for backward);
    x [T, B, I]; h0 [B, H]; w_ih [3H, I]; w_hh [3H, H]; b_ih, b_hh [3H];
    lengths [B] int64 in 1..T; reverse: walk t = T-1..0."""
    B, H = h0.shape
    no_t = w_ih[0:0]
    gru_run(hs, acts, hn_pre, x, h0.copy(), np.empty((B, 3 * H), x.dtype), w_ih, no_t, w_hh, no_t,
            forward_scratch(x, B, w_hh), b_ih, b_hh, lengths, reverse)


@njit(cache=True, error_model="numpy")
def gru_row(a, ghb, b_ih, b_hh, hprev, hout, hnp):
    """One sequence's step over n units (all H of them, or a share when a call is split over
    threads, engine/infer_split.py): a [3n] input projection in, r, z, n out (gate blocks of n);
    ghb [3n] W_hh h; b_ih, b_hh [3n]; hprev [n] h_{t-1}; hout [n] out: h_t (may be hprev's memory);
    hnp [n] out: W_hn h + b_hn."""
    n = hnp.shape[0]
    # in short passes over contiguous rows, so that each one vectorises
    for j in range(n):
        k = GRU_R * n + j
        a[k] = sigmoid(a[k] + b_ih[k] + b_hh[k] + ghb[k])
    for j in range(n):
        k = GRU_Z * n + j
        a[k] = sigmoid(a[k] + b_ih[k] + b_hh[k] + ghb[k])
    for j in range(n):
        k = GRU_N * n + j
        hnp[j] = ghb[k] + b_hh[k]
        a[k] = tanh(a[k] + b_ih[k] + a[GRU_R * n + j] * hnp[j])
    for j in range(n):
        zj = a[GRU_Z * n + j]
        hout[j] = (1.0 - zj) * a[GRU_N * n + j] + zj * hprev[j]


@njit(cache=True, error_model="numpy")
def gru_run(hs, acts, hn_pre, x, h, gh, w_ih, w_ih_t, w_hh, w_hh_t, scratch, b_ih, b_hh, lengths, reverse):
    """gru_forward on caller-owned buffers, so that the inference path allocates nothing:
    h [B, H] the running state, h0 in (overwritten); gh [B, 3H] scratch; w_ih_t [I, 3H],
    w_hh_t [H, 3H] the transposes for the small-batch product (engine/matvec.py), or [0, 3H] to
    use OpenBLAS; scratch: that of engine/step_product.py, or [0] (the inference path); the
    rest as there."""
    T, B, _ = x.shape
    input_projection(acts, x, w_ih, w_ih_t)
    for s in range(T):
        t = time_at(s, T, reverse)
        step_matmul_t(gh, h, w_hh, w_hh_t, scratch)
        for b in range(B):
            if t < lengths[b]:
                gru_row(acts[t, b], gh[b], b_ih, b_hh, h[b], h[b], hn_pre[t, b])
        hs[t] = h


@njit(cache=True, error_model="numpy")
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
    scratch = backward_scratch(x, B, w_hh)   # the step's product order (engine/step_product.py)
    w_hh_t = backward_weight(w_hh, scratch, B)
    for s in range(T - 1, -1, -1):
        t = time_at(s, T, reverse)
        for b in range(B):
            if t >= lengths[b]:
                continue
            # in short passes over contiguous rows, so that each one vectorises
            a = acts[t, b]          # [3H] r, z, n
            dhb = dh[b]             # [H] gradient on h_t (then on h_{t-1} through z)
            dgxb = dgx[t, b]        # [3H] out
            dghb = dgh[b]           # [3H] out
            hp = h0[b] if s == 0 else hs[time_at(s - 1, T, reverse), b]    # [H] h_{t-1}
            dhsb = dhs[t, b]        # [H] gradient on the output at t
            for j in range(H):
                dhb[j] += dhsb[j]
            for j in range(H):
                zj = a[GRU_Z * H + j]
                nj = a[GRU_N * H + j]
                dgxb[GRU_N * H + j] = dhb[j] * (1.0 - zj) * (1.0 - nj * nj)
                dgxb[GRU_Z * H + j] = dhb[j] * (hp[j] - nj) * zj * (1.0 - zj)
            hnp = hn_pre[t, b]
            for j in range(H):
                rj = a[GRU_R * H + j]
                dgxb[GRU_R * H + j] = dgxb[GRU_N * H + j] * hnp[j] * rj * (1.0 - rj)
            for j in range(H):
                dghb[GRU_R * H + j] = dgxb[GRU_R * H + j]
                dghb[GRU_Z * H + j] = dgxb[GRU_Z * H + j]
                dghb[GRU_N * H + j] = dgxb[GRU_N * H + j] * a[GRU_R * H + j]
            for j in range(H):
                dhb[j] *= a[GRU_Z * H + j]
        step_matmul(dprev, dgh, w_hh, w_hh_t, scratch)       # rows of finished sequences hold stale values; unused
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
    recurrent_grads(dw_hh, dgx, hs, h0, reverse)
    add_col_sums(db_hh, dgx.reshape((T * B, 3 * H)))
