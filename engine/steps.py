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


@njit(cache=True)
def time_at(s, T, reverse):
    """Time index of walking step s."""
    return T - 1 - s if reverse else s


@njit(cache=True)
def states_before(hs, h0, reverse):
    """Stack of the state entering every step.
    hs [T, B, K] state after each step, h0 [B, K] -> [T, B, K]"""
    T = hs.shape[0]
    prev = np.empty_like(hs)
    for t in range(T):
        if reverse:
            prev[t] = h0 if t == T - 1 else hs[t + 1]
        else:
            prev[t] = h0 if t == 0 else hs[t - 1]
    return prev


@njit(cache=True)
def input_projection(pre, x, w_ih):
    """pre[t, b] = W_ih x[t, b] for all steps in one matrix product.
    pre [T, B, G] out, x [T, B, I], w_ih [G, I]"""
    T, B, I = x.shape
    G = w_ih.shape[0]
    np.dot(x.reshape((T * B, I)), w_ih.T, pre.reshape((T * B, G)))


@njit(cache=True)
def weight_grads(dx, dw_ih, dw_hh, db_ih, db_hh, dgx, dgh, x, prev, w_ih):
    """Products after the backward loop, over all steps at once.
    dx [T, B, I] out; dw_ih [G, I], dw_hh [G, K], db_ih [G], db_hh [G] accumulated;
    dgx [T, B, G] grad of the input-side pre-activations, dgh [T, B, G] of the recurrent side,
    x [T, B, I], prev [T, B, K] state entering each step, w_ih [G, I]"""
    T, B, I = x.shape
    G = w_ih.shape[0]
    K = prev.shape[2]
    dgx2 = dgx.reshape((T * B, G))
    dgh2 = dgh.reshape((T * B, G))
    np.dot(dgx2, w_ih, dx.reshape((T * B, I)))
    dw_ih += np.dot(dgx2.T, x.reshape((T * B, I)))
    dw_hh += np.dot(dgh2.T, prev.reshape((T * B, K)))
    db_ih += dgx2.sum(axis=0)
    db_hh += dgh2.sum(axis=0)
