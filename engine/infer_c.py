"""The C interface's entry points: @cfunc wrappers of engine/infer.py's whole-model forward, whose
addresses capi/numrnn.c receives before a model's first forward call and then calls with no
interpreter and no GIL.

Each is compiled (or loaded from Numba's cache) on first request by entry(), which only the C
interface makes: a Python program never pays for them, and a host opening only layers never
loads the LanguageModel's. Only float32 models: a float64 model keeps the interpreter path
(python/numrnn/capi.py), so there is one specialisation of each.
"""
from numba import carray, cfunc, njit, types

from .infer import (CELL_LSTM, M_CELL, M_D, M_EMB, M_H, M_HEAD_B, M_HEAD_W, M_HEAD_WT, M_I, M_L, M_NPARAMS, M_P,
                    M_TRANS, M_V, META, SPEC, lm_forward, stack_forward, workspace_size)
from .infer_split import NARGS, QS, split_forward, split_workspace_size
from .threads import TEAM_SIZE, pointer
from .views import view

# what a cfunc returns on success: anything else (0 is what Numba returns when a cfunc raises) is a failure
DONE = 1

# (meta, weights, h, c, work, lengths, inputs, T, B, y) -> DONE
#   meta     int64 [META + L * D * SPEC] as in infer.py
#   weights  float32 [meta[M_NPARAMS]]: the layer's flat buffer, then (LanguageModel) emb [V, E],
#            head_w [V, P], head_b [V] at meta's M_EMB, M_HEAD_W, M_HEAD_B, then flat_t (the
#            transposed weights) at M_TRANS and (LanguageModel) head_w's transpose at M_HEAD_WT
#   h, c     float32 [L * D, B, P] and [L * D, B, H]: the state, read and overwritten with the
#            final one (c unused by RNN/GRU: NULL will do)
#   work     float32 [workspace_size(meta, T, B)], the caller's per state (or per call)
#   lengths  int64 [B], every one T (the caller's, per state, so that nothing here allocates)
#   inputs   float32 [T, B, I] features, or int32 [T, B] token ids
#   y        float32 [T, B, O] out
# The C half has checked every size and token id before the call, so nothing here can raise
# (a cfunc that raises prints to stderr, leaks its temporaries, and returns 0).
# The kernels read h0/c0 once, into copies, before writing h_n/c_n of the same layer and
# direction, so the state's own memory serves as both.
F32P, I32P, I64P = types.CPointer(types.float32), types.CPointer(types.int32), types.CPointer(types.int64)
FEATURES = types.int64(I64P, F32P, F32P, F32P, F32P, I64P, F32P, types.int64, types.int64, F32P)
TOKENS = types.int64(I64P, F32P, F32P, F32P, F32P, I64P, I32P, types.int64, types.int64, F32P)


@njit(cache=True)
def _views(meta_p, weights_p, h_p, c_p, work_p, lengths_p, T, B):
    """numpy views of the C arrays: meta, weights, flat_t, h, c (a zeroed stand-in in work for
    RNN/GRU), work, and lengths."""
    LD = carray(meta_p, META)[M_L] * carray(meta_p, META)[M_D]
    meta = carray(meta_p, META + LD * SPEC)
    weights = carray(weights_p, meta[M_NPARAMS])
    H, P = meta[M_H], meta[M_P]
    n = workspace_size(meta, T, B)
    work = carray(work_p, n)
    h = carray(h_p, (LD, B, P))
    if meta[M_CELL] == CELL_LSTM:
        c = carray(c_p, (LD, B, H))
    else:
        c = view(work, n - LD * B * H, (LD, B, H))
        c[:] = 0
    flat_t = weights[meta[M_TRANS]:meta[M_HEAD_WT]]
    return meta, weights, flat_t, h, c, work[:n - LD * B * H], carray(lengths_p, B)


def c_forward(meta_p, weights_p, h_p, c_p, work_p, lengths_p, x_p, T, B, y_p):
    meta, weights, flat_t, h, c, work, lengths = _views(meta_p, weights_p, h_p, c_p, work_p, lengths_p, T, B)
    x = carray(x_p, (T, B, meta[M_I]))
    y = carray(y_p, (T, B, meta[M_D] * meta[M_P]))
    stack_forward(y, h, c, x, h, c, lengths, weights, flat_t, meta, work)
    return DONE


def c_forward_tokens(meta_p, weights_p, h_p, c_p, work_p, lengths_p, tokens_p, T, B, y_p):
    meta, weights, flat_t, h, c, work, lengths = _views(meta_p, weights_p, h_p, c_p, work_p, lengths_p, T, B)
    V, E, DP = meta[M_V], meta[M_I], meta[M_D] * meta[M_P]
    tokens = carray(tokens_p, (T, B))
    emb = view(weights, meta[M_EMB], (V, E))
    head_w = view(weights, meta[M_HEAD_W], (V, DP))
    head_w_t = view(weights, meta[M_HEAD_WT], (DP, V))
    head_b = weights[meta[M_HEAD_B]:meta[M_HEAD_B] + V]
    y = carray(y_p, (T, B, V))
    lm_forward(y, h, c, tokens, h, c, lengths, weights, flat_t, emb, head_w, head_w_t, head_b, meta, work)
    return DONE


# A state's split description (python/numrnn/capi.py's state_threads, kept by the state): the
# two entry points below, then the addresses of the team (engine/threads.py), the helpers'
# argument rows [nparts, NARGS], the split weights flat_s and meta_s (engine/infer_split.py),
# flat_s's size, and nparts.
(SP_FORWARD, SP_SIZE, SP_TEAM, SP_ARGS, SP_FLATS, SP_METAS, SP_NFLATS, SP_NPARTS) = range(8)
SPLIT_FIELDS = 8


def c_forward_split(meta_p, weights_p, h_p, c_p, work_p, lengths_p, x_p, T, B, y_p, split_p):
    """c_forward on the state's team of threads (a layer, B <= 8, no proj_size: the C half checked);
    work [c_split_workspace_size]."""
    LD = carray(meta_p, META)[M_L] * carray(meta_p, META)[M_D]
    meta = carray(meta_p, META + LD * SPEC)
    sp = carray(split_p, SPLIT_FIELDS)
    nparts = sp[SP_NPARTS]
    H, D = meta[M_H], meta[M_D]
    n = split_workspace_size(meta, T, B, nparts)
    work = carray(work_p, n + LD * B * H)
    h = carray(h_p, (LD, B, H))
    if meta[M_CELL] == CELL_LSTM:
        c = carray(c_p, (LD, B, H))
    else:
        c = view(work, n, (LD, B, H))
        c[:] = 0
    weights = carray(weights_p, meta[M_NPARAMS])
    split_forward(carray(y_p, (T, B, D * H)), h, c, carray(x_p, (T, B, meta[M_I])), h, c, carray(lengths_p, B),
                  weights, carray(pointer(sp[SP_FLATS], weights), sp[SP_NFLATS]), meta,
                  carray(pointer(sp[SP_METAS], sp), LD * nparts * QS), work[:n],
                  carray(pointer(sp[SP_TEAM], sp), TEAM_SIZE), carray(pointer(sp[SP_ARGS], sp), (nparts, NARGS)),
                  nparts)
    return DONE


def c_split_workspace_size(meta_p, T, B, nparts):
    LD = carray(meta_p, META)[M_L] * carray(meta_p, META)[M_D]
    meta = carray(meta_p, META + LD * SPEC)
    return split_workspace_size(meta, T, B, nparts) + LD * B * meta[M_H]


def c_workspace_size(meta_p, T, B):
    LD = carray(meta_p, META)[M_L] * carray(meta_p, META)[M_D]
    return workspace_size(carray(meta_p, META + LD * SPEC), T, B)


SIGNATURES = {c_forward: FEATURES, c_forward_tokens: TOKENS,
              c_workspace_size: types.int64(I64P, types.int64, types.int64),
              c_forward_split: types.int64(I64P, F32P, F32P, F32P, F32P, I64P, F32P, types.int64, types.int64, F32P,
                                           I64P),
              c_split_workspace_size: types.int64(I64P, types.int64, types.int64, types.int64)}
_compiled = {}


def entry(fn):
    """The compiled cfunc of one of the functions above (its .address is what C calls)."""
    if fn not in _compiled:
        _compiled[fn] = cfunc(SIGNATURES[fn], cache=True, error_model="numpy")(fn)
    return _compiled[fn]
