"""Time-loop helpers shared by the three cells' kernels (compiled, private).

A direction walks t = 0..T-1 (forward) or t = T-1..0 (reverse). With `lengths`, sequence b only
takes steps t < lengths[b]; at any other step its state is carried unchanged (frozen), so the
forward direction ends with each sequence's state at its own last step and the reverse direction
starts from h0 at each sequence's own end, the semantics of PyTorch's packed sequences.
Because frozen states are stored too, "the state before step t" is always the stored state of the
previous step in walking order (or h0), and backward needs no special case for lengths.
"""
import numpy as np
from numba import njit

from .matvec import matmul_t
from .views import reshaped


@njit(cache=True)
def time_at(s, T, reverse):
    """Time index of walking step s."""
    return T - 1 - s if reverse else s


@njit(cache=True)
def input_projection(pre, x, w_ih, w_ih_t):
    """pre[t, b] = W_ih x[t, b] for all steps in one matrix product.
    pre [T, B, G] out, x [T, B, I], w_ih [G, I]; w_ih_t [I, G] its transpose for the small-batch
    product (matvec.py), or [0, G] to always use OpenBLAS (training)"""
    T, B, I = x.shape
    G = w_ih.shape[0]
    matmul_t(reshaped(pre, (T * B, G)), reshaped(x, (T * B, I)), w_ih, w_ih_t)


@njit(cache=True)
def input_grads(dx, dw_ih, db_ih, dgx, x, w_ih):
    """Input-side products after the backward loop, over all steps at once.
    dx [T, B, I] out; dw_ih [G, I], db_ih [G] accumulated;
    dgx [T, B, G] grad of the input-side pre-activations, x [T, B, I], w_ih [G, I]"""
    T, B, I = x.shape
    G = w_ih.shape[0]
    dgx2 = dgx.reshape((T * B, G))
    np.dot(dgx2, w_ih, dx.reshape((T * B, I)))
    dw_ih += np.dot(dgx2.T, x.reshape((T * B, I)))
    add_col_sums(db_ih, dgx2)


@njit(cache=True)
def recurrent_grads(dw_hh, dgh, hs, h0, reverse):
    """Recurrent-side product after the backward loop: dw_hh += sum over t of dgh[t]^T times the
    state entering step t. dw_hh [G, K] accumulated; dgh [T, B, G] grad of W_hh h + b_hh,
    hs [T, B, K] state after each step, h0 [B, K]. (Its bias gradient is the caller's: for
    LSTM and RNN it equals the input side's.)
    The entering state is h0 at the first step walked and else the state stored at the
    neighbouring time index: two contiguous blocks, so no [T, B, K] stack of them is built."""
    T, B, G = dgh.shape
    K = h0.shape[1]
    first = T - 1 if reverse else 0
    dw_hh += np.dot(dgh[first].T, h0)
    if T > 1:
        if reverse:
            steps, states = dgh[0:T - 1], hs[1:T]
        else:
            steps, states = dgh[1:T], hs[0:T - 1]
        dw_hh += np.dot(steps.reshape(((T - 1) * B, G)).T, states.reshape(((T - 1) * B, K)))


@njit(cache=True)
def weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dg, x, hs, h0, w_ih, reverse):
    """Both sides' products, for cells whose input-side and recurrent-side pre-activation
    gradients are the same dg [T, B, G] (LSTM, RNN); shapes as in the two above. The bias
    gradients are then equal too: summed once, added to both."""
    db = np.zeros_like(db_ih)
    input_grads(dx, dw_ih, db, dg, x, w_ih)
    db_ih += db
    db_hh += db
    recurrent_grads(dw_hh, dg, hs, h0, reverse)


@njit(cache=True)
def add_col_sums(out, a):
    """out [N] += the sum over the rows of a [M, N], row after row (the order NumPy's a.sum(axis=0)
    adds in, at a fifth of the time Numba's a.sum(axis=0) took for [6400, 1024])."""
    M, N = a.shape
    for m in range(M):
        for n in range(N):
            out[n] += a[m, n]
