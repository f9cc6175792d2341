"""Inference on the CPU: a whole model's forward in one compiled call (the C interface's entry
points around it are in infer_c.py).

Not training: nothing is kept for backward. Each layer and direction runs the training kernels'
bodies themselves (lstm_run, gru_run, rnn_run), so the gates are written once; what this module
adds is the walk over layers and directions (and, for a LanguageModel, the embedding lookup and
the head) inside compiled code, on a caller-owned workspace, so a call allocates nothing.
The one difference from training: products with at most matvec.SMALL_ROWS rows (a step at small
batch) take the axpy form over transposed weight copies (engine/matvec.py), so results equal the
training path's to rounding, not to the bit; larger ones use OpenBLAS as training does.

A model is described by `meta` [META + L * D * SPEC] int64: a header (the M_* fields) and, per
layer and direction idx = layer * D + direction, the offsets in the flat parameter buffer of
weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, the peephole block (-1 when absent), the
layer's input size, and the offsets of weight_ih's and weight_hh's transposes in a second
buffer flat_t (M_HEAD_WT: the LanguageModel head's; M_TRANS: where flat_t starts in the C
interface's one weights buffer). python/numrnn/inference.py builds both from a block.
"""
from numba import njit

from .gru import gru_run
from .lstm import lstm_run
from .matvec import matmul_t
from .rnn import rnn_run
from .views import view

CELL_RNN, CELL_LSTM, CELL_GRU = 0, 1, 2
# header fields of meta
(M_CELL, M_L, M_D, M_I, M_H, M_P, M_G, M_ACT, M_COUPLED, M_NPEEP, M_V, M_EMB, M_HEAD_W, M_HEAD_B, M_NPARAMS,
 M_TRANS, M_HEAD_WT) = range(17)
META = 18
# per layer/direction fields, after the header
S_IH, S_HH, S_BIH, S_BHH, S_HR, S_PEEP, S_IN, S_IHT, S_HHT = range(9)
SPEC = 10


@njit(cache=True)
def stack_size(meta, T, B):
    """Floats of workspace stack_forward needs for T steps and B sequences: two ping-pong layer
    outputs [T, B, D * P], one direction's hs [T, B, P], cs [T, B, H], acts [T, B, G] and
    hn_pre [T, B, H], the running state h [B, P] and c [B, H], the scratch r [B, H], gh [B, G]
    and hp [B, P], and the biases b_ih, b_hh and their sum [G] each."""
    D, H, P, G = meta[M_D], meta[M_H], meta[M_P], meta[M_G]
    TB = T * B
    return 2 * TB * D * P + TB * (P + 2 * H + G) + B * (2 * P + 2 * H + G) + 3 * G


@njit(cache=True)
def workspace_size(meta, T, B):
    """Floats of workspace a C call needs: stack_forward's, then (LanguageModel) the embedded
    input [T, B, I] and the last layer's output [T, B, D * P], then c's stand-in [L * D, B, H]."""
    LD, I, H, P = meta[M_L] * meta[M_D], meta[M_I], meta[M_H], meta[M_P]
    extra = T * B * (I + meta[M_D] * P) if meta[M_V] > 0 else 0
    return stack_size(meta, T, B) + extra + LD * B * H


@njit(cache=True)
def spec_of(meta, idx):
    """The fields of layer/direction idx = layer * D + direction (the S_* offsets)."""
    return meta[META + idx * SPEC:META + (idx + 1) * SPEC]


@njit(cache=True)
def _take(ws, start, n):
    """ws[start:start + n] and the next start (workspace carving)."""
    return ws[start:start + n], start + n


@njit(cache=True)
def _zero_past_lengths(y, lengths):
    """y [T, B, F]: rows past each sequence's length are zero, as the training path leaves them."""
    T, B, _ = y.shape
    for t in range(T):
        for b in range(B):
            if t >= lengths[b]:
                y[t, b, :] = 0


@njit(cache=True)
def _matrix(flat, start, rows, cols):
    """flat[start:] as a [rows, cols] matrix; [0, cols] when start is -1 (absent)."""
    if start < 0:
        return view(flat, 0, (0, cols))
    return view(flat, start, (rows, cols))


@njit(cache=True, error_model="numpy")
def stack_forward(y, hn, cn, x, h0, c0, lengths, flat, flat_t, meta, ws):
    """All layers and directions of a layer in eval mode (no dropout, nothing saved).
    y [T, B, D * P] out; hn [L * D, B, P] out; cn [L * D, B, H] out (a stand-in for RNN/GRU);
    x [T, B, I]; h0 [L * D, B, P]; c0 [L * D, B, H] (hn and cn may be h0 and c0's memory);
    lengths [B] int64 in 1..T; flat [N] the layer's parameters; flat_t the transposed weights
    at meta's S_IHT, S_HHT (transposed() in python/numrnn/inference.py); meta as in the header;
    ws [stack_size(meta, T, B)]. Allocates nothing."""
    T, B, _ = x.shape
    cell, L, D, H, P, G = meta[M_CELL], meta[M_L], meta[M_D], meta[M_H], meta[M_P], meta[M_G]
    act, coupled, npeep = meta[M_ACT], meta[M_COUPLED] != 0, meta[M_NPEEP]
    TB = T * B
    a, s = _take(ws, 0, TB * D * P)
    b, s = _take(ws, s, TB * D * P)
    hsb, s = _take(ws, s, TB * P)
    csb, s = _take(ws, s, TB * H)
    actb, s = _take(ws, s, TB * G)
    hnpb, s = _take(ws, s, TB * H)
    hb, s = _take(ws, s, B * P)
    cb, s = _take(ws, s, B * H)
    rb, s = _take(ws, s, B * H)
    ghb, s = _take(ws, s, B * G)
    hpb, s = _take(ws, s, B * P)
    b_ih, s = _take(ws, s, G)
    b_hh, s = _take(ws, s, G)
    b_sum, s = _take(ws, s, G)
    bufs = (view(a, 0, (T, B, D * P)), view(b, 0, (T, B, D * P)))
    hs = view(hsb, 0, (T, B, P))
    cs = view(csb, 0, (T, B, H))
    acts = view(actb, 0, (T, B, G))
    hn_pre = view(hnpb, 0, (T, B, H))
    h = view(hb, 0, (B, P))
    c = view(cb, 0, (B, H))
    r = view(rb, 0, (B, H))
    gh = view(ghb, 0, (B, G))
    hp = view(hpb, 0, (B, P))
    no_left = b_sum[:0]     # the plain product order (engine/step_product.py is training's)
    ragged = False
    for bb in range(B):
        ragged = ragged or lengths[bb] < T
    inp = x
    for layer in range(L):
        out = y if layer == L - 1 else bufs[layer % 2]
        for d in range(D):
            idx = layer * D + d
            spec = spec_of(meta, idx)
            n_in = spec[S_IN]
            w_ih = _matrix(flat, spec[S_IH], G, n_in)
            w_hh = _matrix(flat, spec[S_HH], G, P)
            w_ih_t = _matrix(flat_t, spec[S_IHT], n_in, G)
            w_hh_t = _matrix(flat_t, spec[S_HHT], P, G)
            w_hr = _matrix(flat, spec[S_HR], P, H)
            w_peep = _matrix(flat, spec[S_PEEP], npeep, H)
            for k in range(G):      # GRU keeps the two apart; LSTM and RNN take their sum
                b_ih[k] = flat[spec[S_BIH] + k] if spec[S_BIH] >= 0 else 0
                b_hh[k] = flat[spec[S_BHH] + k] if spec[S_BHH] >= 0 else 0
                b_sum[k] = b_ih[k] + b_hh[k]
            reverse = d == 1
            h[:] = h0[idx]
            if cell == CELL_LSTM:
                c[:] = c0[idx]
                lstm_run(hs, cs, acts, inp, h, c, r, gh, hp, b_sum, w_ih, w_ih_t, w_hh, w_hh_t, no_left, w_hr,
                         w_peep, lengths, reverse, coupled)
                cn[idx] = cs[0 if reverse else T - 1]
            elif cell == CELL_GRU:
                gru_run(hs, acts, hn_pre, inp, h, gh, w_ih, w_ih_t, w_hh, w_hh_t, no_left, b_ih, b_hh, lengths,
                        reverse)
            else:
                rnn_run(hs, acts, inp, h, gh, b_sum, w_ih, w_ih_t, w_hh, w_hh_t, no_left, act, lengths, reverse)
            hn[idx] = hs[0 if reverse else T - 1]
            if D == 1:
                out[:] = hs
            else:
                out[:, :, d * P:(d + 1) * P] = hs
        if ragged:
            _zero_past_lengths(out, lengths)
        inp = out


@njit(cache=True, error_model="numpy")
def lm_forward(logits, hn, cn, tokens, h0, c0, lengths, flat, flat_t, emb, head_w, head_w_t, head_b, meta, ws):
    """A LanguageModel in eval mode: embedding rows, the layer stack, the head.
    logits [T, B, V] out; tokens [T, B] int32, already checked to be in 0..V-1;
    emb [V, E]; head_w [V, D * P]; head_w_t [D * P, V] its transpose; head_b [V];
    ws [at least stack_size + T * B * (E + D * P)]; the rest as for stack_forward.
    Allocates nothing."""
    T, B = tokens.shape
    E, D, P, V = meta[M_I], meta[M_D], meta[M_P], meta[M_V]
    TB = T * B
    used = stack_size(meta, T, B)
    xb, s = _take(ws, used, TB * E)
    yb, s = _take(ws, s, TB * D * P)
    x = view(xb, 0, (T, B, E))
    for t in range(T):
        for b in range(B):
            x[t, b] = emb[tokens[t, b]]
    y = view(yb, 0, (T, B, D * P))
    stack_forward(y, hn, cn, x, h0, c0, lengths, flat, flat_t, meta, ws[:used])
    out = view(logits, 0, (TB, V))
    matmul_t(out, view(y, 0, (TB, D * P)), head_w, head_w_t)
    for r in range(TB):
        for v in range(V):
            out[r, v] += head_b[v]
