"""Elman RNN forward and BPTT for one layer and one direction, compiled on the CPU (private kernels).

  h' = act(W_ih x + b_ih + W_hh h + b_hh),   act = tanh or relu (codes in engine/gates.py)
The wrapper (python/numrnn/recurrent.py) validates, allocates and loops over layers/directions.
"""
import numpy as np
from numba import njit

from .activations import tanh
from .gates import TANH
from .step_product import backward_scratch, backward_weight, forward_scratch, step_matmul, step_matmul_t
from .steps import input_projection, time_at, weight_grads


@njit(cache=True, error_model="numpy")
def rnn_forward(hs, x, h0, w_ih, w_hh, b_ih, b_hh, act, lengths, reverse):
    """hs [T, B, H] out: h after each step (also what backward needs);
    x [T, B, I]; h0 [B, H]; w_ih [H, I]; w_hh [H, H]; b_ih, b_hh [H];
    act TANH or RELU; lengths [B] int64 in 1..T; reverse: walk t = T-1..0."""
    T, B, _ = x.shape
    H = h0.shape[1]
    no_t = w_ih[0:0]
    rnn_run(hs, np.empty((T, B, H), x.dtype), x, h0.copy(), np.empty((B, H), x.dtype), b_ih + b_hh, w_ih, no_t,
            w_hh, no_t, forward_scratch(x, B, w_hh), act, lengths, reverse)


@njit(cache=True, error_model="numpy")
def rnn_row(pre, ghb, bias, hout, act):
    """One sequence's step over n units (all H of them, or a share when a call is split over
    threads, engine/infer_split.py): pre [n] input projection, ghb [n] W_hh h, bias [n] =
    b_ih + b_hh; hout [n] out: h_t."""
    for j in range(hout.shape[0]):
        v = pre[j] + bias[j] + ghb[j]
        if act == TANH:
            hout[j] = tanh(v)
        else:
            hout[j] = v if v > 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def rnn_run(hs, pre, x, h, gh, bias, w_ih, w_ih_t, w_hh, w_hh_t, scratch, act, lengths, reverse):
    """rnn_forward on caller-owned buffers, so that the inference path allocates nothing:
    pre [T, B, H], gh [B, H] scratch; h [B, H] the running state, h0 in (overwritten);
    bias [H] = b_ih + b_hh; w_ih_t [I, H], w_hh_t [H, H] the transposes for the small-batch
    product (engine/matvec.py), or [0, H] to use OpenBLAS; scratch: the scratch of
    engine/step_product.py, or [0] (the inference path); the rest as there."""
    T, B, _ = x.shape
    input_projection(pre, x, w_ih, w_ih_t)
    for s in range(T):
        t = time_at(s, T, reverse)
        step_matmul_t(gh, h, w_hh, w_hh_t, scratch)
        for b in range(B):
            if t < lengths[b]:
                rnn_row(pre[t, b], gh[b], bias, h[b], act)
        hs[t] = h


@njit(cache=True, error_model="numpy")
def rnn_backward(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dhs, dhn, x, h0, w_ih, w_hh, hs, act, lengths, reverse):
    """dx [T, B, I] out; dh0 [B, H] out; dw_ih [H, I], dw_hh [H, H], db_ih, db_hh [H]: accumulated;
    dhs [T, B, H] gradient on the outputs; dhn [B, H] gradient on the final state;
    the rest is the forward's inputs and saved hs."""
    T, B, _ = x.shape
    H = h0.shape[1]
    dg = np.zeros((T, B, H), x.dtype)   # gradient of the pre-activation
    dh = dhn.copy()                      # [B, H] gradient flowing into h_t
    dprev = np.empty_like(dh)            # [B, H] its part through W_hh, one buffer for all steps
    scratch = backward_scratch(x, B, w_hh)   # the step's product order (engine/step_product.py)
    w_hh_t = backward_weight(w_hh, scratch, B)
    for s in range(T - 1, -1, -1):
        t = time_at(s, T, reverse)
        for b in range(B):
            if t >= lengths[b]:
                continue
            for j in range(H):
                hj = hs[t, b, j]
                dhj = dh[b, j] + dhs[t, b, j]
                if act == TANH:
                    dg[t, b, j] = dhj * (1.0 - hj * hj)
                else:
                    dg[t, b, j] = dhj if hj > 0.0 else 0.0
        step_matmul(dprev, dg[t], w_hh, w_hh_t, scratch)
        for b in range(B):
            if t < lengths[b]:
                dh[b] = dprev[b]
    dh0[:] = dh
    weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dg, x, hs, h0, w_ih, reverse)
