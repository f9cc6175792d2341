"""The inference path: what a layer, cell or LanguageModel on the CPU runs in eval mode
(block.eval()), and the description of a model that the C interface hands to compiled code.

The block has already checked and copied its inputs (the same checks as in training); this
module runs the whole model in one compiled call (numrnn.engine.infer) on a workspace the block
keeps and grows to the largest shape seen, so once a shape has been seen the compiled call
allocates nothing; the one allocation per call is the output array handed back (a reused
buffer would be overwritten under the caller's earlier results). The transposed weight copies
of the small-batch product (engine/matvec.py) are made at the first eval-mode call and kept on
the block until train(), eval() or load_state_dict: weights edited in place in eval mode need
another eval(). Not for training, not for "cuda" (those blocks take the training path's forward
in eval mode too), and not safe for two threads on one block at once (the workspace is the
block's).
A layer in eval(threads=N) runs a call on N threads (engine/infer_split.py): its Team of helper
threads, its per-part weight copies (split) and its workspace are kept on the block like the
rest; the C interface's states keep their own (capi.py).
"""
import os
import weakref

import numpy as np

from numrnn.engine import infer, infer_split, threads
from numrnn.engine.gates import num_gates
from numrnn.engine.matvec import SMALL_ROWS

CELLS = {"RNN": infer.CELL_RNN, "LSTM": infer.CELL_LSTM, "GRU": infer.CELL_GRU}
SPEC_NAMES = ((infer.S_IH, "weight_ih"), (infer.S_HH, "weight_hh"), (infer.S_BIH, "bias_ih"),
              (infer.S_BHH, "bias_hh"), (infer.S_HR, "weight_hr"), (infer.S_PEEP, "weight_ci"))
_spec = infer.spec_of.py_func   # a layer/direction's S_* fields (a view: describe() writes them)


def describe(rnn, vocab_size=0, embedding_dim=0, head_offsets=(0, 0, 0)):
    """meta [META + L * D * SPEC] int64 (engine/infer.py) of a layer or cell; for a LanguageModel
    also its vocabulary size, embedding size and where emb, head_w and head_b start in the
    weights buffer the C interface builds, which then holds flat_t (M_TRANS) and the head's
    transpose (M_HEAD_WT) after head_b."""
    L, D, H, P = rnn.num_layers, rnn.num_directions, rnn.hidden_size, rnn.out_size
    G = num_gates(rnn.cell, rnn.coupled) * H
    meta = np.full(infer.META + L * D * infer.SPEC, -1, np.int64)
    meta[infer.M_CELL] = CELLS[rnn.cell]
    meta[infer.M_L], meta[infer.M_D], meta[infer.M_H], meta[infer.M_P] = L, D, H, P
    meta[infer.M_I] = embedding_dim or rnn.input_size
    meta[infer.M_G] = G
    meta[infer.M_ACT], meta[infer.M_COUPLED] = rnn._act, rnn.coupled
    meta[infer.M_NPEEP] = (2 if rnn.coupled else 3) if rnn.peephole else 0
    meta[infer.M_V] = vocab_size
    meta[infer.M_EMB], meta[infer.M_HEAD_W], meta[infer.M_HEAD_B] = head_offsets
    n_trans = 0
    for idx, sfx in enumerate(rnn._suffixes()):
        spec = _spec(meta, idx)
        for field, name in SPEC_NAMES:
            spec[field] = rnn.offsets.get(name + sfx, -1)
        spec[infer.S_IN] = meta[infer.M_I] if idx < D else D * P
        spec[infer.S_IHT], spec[infer.S_HHT] = n_trans, n_trans + spec[infer.S_IN] * G
        n_trans += (spec[infer.S_IN] + P) * G
    meta[infer.M_TRANS] = rnn.flat_params.size if not vocab_size else head_offsets[2] + vocab_size
    meta[infer.M_HEAD_WT] = meta[infer.M_TRANS] + n_trans
    meta[infer.M_NPARAMS] = meta[infer.M_HEAD_WT] + (vocab_size * D * P if vocab_size else 0)
    return meta


def transposed(block, meta):
    """flat_t: the transposes of each layer and direction's weight_ih and weight_hh at meta's
    S_IHT and S_HHT, made once and kept on the block (dropped by train(), eval() and
    load_state_dict: Module._forget_derived)."""
    flat_t = block.__dict__.get("_infer_t")
    if flat_t is None:
        flat_t = np.empty(meta[infer.M_HEAD_WT] - meta[infer.M_TRANS], block.dtype)
        G = meta[infer.M_G]
        for idx in range(meta[infer.M_L] * meta[infer.M_D]):
            spec = _spec(meta, idx)
            for w, wt, cols in ((infer.S_IH, infer.S_IHT, spec[infer.S_IN]), (infer.S_HH, infer.S_HHT, meta[infer.M_P])):
                weight = block.flat_params[spec[w]:spec[w] + G * cols].reshape(G, cols)
                flat_t[spec[wt]:spec[wt] + G * cols].reshape(cols, G)[...] = weight.T
        block._infer_t = flat_t
    return flat_t


def split(block, meta, nparts):
    """(flat_s, meta_s) of engine/infer_split.py for nparts threads: each part's rows of every
    layer and direction's weights, transposed, and its biases (b_ih + b_hh; GRU keeps both),
    made once per thread count and kept on the block like transposed()'s copies."""
    kept = block.__dict__.get("_infer_split")
    if kept is not None and kept[0] == nparts:
        return kept[1], kept[2]
    G, H, LD = meta[infer.M_G], meta[infer.M_H], meta[infer.M_L] * meta[infer.M_D]
    NG, gru = G // H, meta[infer.M_CELL] == infer.CELL_GRU
    flat = block.flat_params
    meta_s = np.full(LD * nparts * infer_split.QS, -1, np.int64)
    chunks, used = [], 0
    for idx in range(LD):
        spec = _spec(meta, idx)
        n_in = spec[infer.S_IN]
        w_ih = flat[spec[infer.S_IH]:spec[infer.S_IH] + G * n_in].reshape(G, n_in)
        w_hh = flat[spec[infer.S_HH]:spec[infer.S_HH] + G * H].reshape(G, H)
        b_ih, b_hh = (flat[spec[f]:spec[f] + G] if spec[f] >= 0 else np.zeros(G, flat.dtype)
                      for f in (infer.S_BIH, infer.S_BHH))
        for p in range(nparts):
            j0, j1 = infer_split.unit_range(H, p, nparts)
            rows = np.concatenate([np.arange(g * H + j0, g * H + j1) for g in range(NG)])
            q = meta_s[(idx * nparts + p) * infer_split.QS:(idx * nparts + p + 1) * infer_split.QS]
            pieces = [(infer_split.Q_IH, w_ih[rows].T), (infer_split.Q_HH, w_hh[rows].T)]
            pieces += [(infer_split.Q_B1, b_ih[rows]), (infer_split.Q_B2, b_hh[rows])] if gru else \
                [(infer_split.Q_B1, b_ih[rows] + b_hh[rows])]
            for field, a in pieces:
                q[field] = used
                chunks.append(np.ascontiguousarray(a).ravel())
                used += a.size
    flat_s = np.concatenate(chunks).astype(flat.dtype, copy=False)
    block._infer_split = (nparts, flat_s, meta_s)
    return flat_s, meta_s


def can_split(rnn, B, nparts):
    """Whether a call of B sequences can run split over nparts threads (engine/infer_split.py)."""
    return rnn.out_size == rnn.hidden_size and B <= SMALL_ROWS and rnn.hidden_size >= nparts


class Team:
    """Helper threads for split calls (engine/threads.py): nparts - 1 POSIX threads started once
    and kept until the block changes its thread count, is collected, or the program ends (they
    sleep when idle). `ok` is False when the system refused a thread (calls then run on one)."""

    def __init__(self, nparts, dtype):
        self.nparts, self.dtype, self.pid = nparts, np.dtype(dtype), os.getpid()
        self.team = threads.new_team()
        self.args = np.zeros((nparts, infer_split.NARGS), np.int64)
        started = threads.start_team(self.team, nparts, infer_split.team_loop(dtype))
        self._stop = weakref.finalize(self, _stop_team, self.team, started, self.pid)
        self.ok = started == nparts - 1
        if not self.ok:
            self.stop()

    def stop(self):
        self._stop()


def _stop_team(team, started, pid):
    """Stop and join a team's helpers; nothing in a child process after fork, where they do not
    exist (only the forking thread is copied) and joining them would wait forever."""
    if os.getpid() == pid:
        threads.stop_team(team, started)


def _team(rnn, nparts):
    """The block's team for nparts threads (a new one after a fork: threads do not survive it)."""
    team = rnn.__dict__.get("_infer_team")
    if team is None or team.nparts != nparts or team.dtype != rnn.dtype or team.pid != os.getpid():
        if team is not None:
            team.stop()
        team = rnn._infer_team = Team(nparts, rnn.dtype)
    return team


def _split_forward(rnn, meta, y, x, h0, c, lengths):
    """layer_forward's call on rnn.inference_threads threads; False when the helper threads could
    not be started (nothing was computed then)."""
    nparts = rnn.inference_threads
    team = _team(rnn, nparts)
    if not team.ok:
        return False
    flat_s, meta_s = split(rnn, meta, nparts)
    T, B, _ = x.shape
    n = infer_split.split_workspace_size(meta, T, B, nparts)
    ws = rnn.__dict__.get("_infer_split_ws")
    if ws is None or ws.size < n or ws.dtype != rnn.dtype:
        ws = rnn._infer_split_ws = _aligned(n, rnn.dtype)
    infer_split.split_forward(y, h0, c, x, h0, c, lengths, rnn.flat_params, flat_s, meta, meta_s, ws[:n], team.team,
                              team.args, nparts)
    return True


def _aligned(n, dtype):
    """np.empty(n, dtype) starting on a 64-byte cache line (NumPy promises 16 bytes): the parts
    of a split call write neighbouring stretches of it, and a line two cores write is slow."""
    raw = np.empty(n * np.dtype(dtype).itemsize + 64, np.uint8)
    skip = -raw.ctypes.data % 64
    return raw[skip:skip + n * np.dtype(dtype).itemsize].view(dtype)


def _meta(rnn):
    """The block's meta, built once (a block's configuration does not change)."""
    meta = rnn.__dict__.get("_infer_meta")
    if meta is None:
        meta = rnn._infer_meta = describe(rnn)
    return meta


def _workspace(owner, meta, T, B, dtype, need_c):
    """The owner's workspace, grown (never shrunk) to fit T and B: the part stack_forward uses
    and, when need_c (no c0: RNN and GRU), c's stand-in [L * D, B, H] after it, zeroed.
    The views of the last shape are kept: carving them anew cost a few microseconds a call."""
    key = (T, B, dtype)
    last = owner.__dict__.get("_infer_views")
    if last is None or last[0] != key:
        n = infer.workspace_size(meta, T, B)
        ws = owner.__dict__.get("_infer_ws")
        if ws is None or ws.size < n or ws.dtype != dtype:
            ws = owner._infer_ws = np.empty(n, dtype)
        LD, H = meta[infer.M_L] * meta[infer.M_D], meta[infer.M_H]
        last = owner._infer_views = (key, ws, ws[:infer.stack_size(meta, T, B)],
                                     ws[n - LD * B * H:n].reshape(LD, B, H))
    _, ws, stack_ws, c_stub = last
    if need_c:
        c_stub[:] = 0
    return ws, stack_ws, c_stub


def layer_forward(rnn, x, h0, c0, lengths):
    """x [T, B, I] (time-major, the block's dtype, contiguous); h0 [L * D, B, P]; c0 [L * D, B, H]
    or None; lengths [B] int64; h0 and c0 are the block's own copies and become h_n and c_n.
    Returns y [T, B, D * P], h_n, c_n."""
    meta = _meta(rnn)
    T, B, _ = x.shape
    _, stack_ws, c_stub = _workspace(rnn, meta, T, B, rnn.dtype, c0 is None)
    c = c_stub if c0 is None else c0
    y = np.empty((T, B, rnn.num_directions * rnn.out_size), rnn.dtype)
    if not (rnn.inference_threads > 1 and can_split(rnn, B, rnn.inference_threads) and _split_forward(rnn, meta, y, x, h0, c, lengths)):
        infer.stack_forward(y, h0, c, x, h0, c, lengths, rnn.flat_params, transposed(rnn, meta), meta, stack_ws)
    rnn._cache = None
    return y, h0, c0


def lm_forward(lm, tokens, h0, c0):
    """tokens [T, B] checked ids; h0, c0 the rnn's state copies (become h_n, c_n).
    Returns logits [T, B, V]."""
    rnn = lm.rnn
    meta = lm.__dict__.get("_infer_meta")
    if meta is None:
        meta = lm._infer_meta = describe(rnn, lm.vocab_size, lm.embedding_dim)
    T, B = tokens.shape
    ws, _, c_stub = _workspace(lm, meta, T, B, lm.dtype, c0 is None)
    logits = np.empty((T, B, lm.vocab_size), lm.dtype)
    c = c_stub if c0 is None else c0
    head_w = lm.head.params["weight"]
    head_t = lm.head.__dict__.get("_infer_t")
    if head_t is None:
        head_t = lm.head._infer_t = np.ascontiguousarray(head_w.T)
    infer.lm_forward(logits, h0, c, np.ascontiguousarray(tokens, np.int32), h0, c, np.full(B, T, np.int64),
                     rnn.flat_params, transposed(rnn, meta), lm.embedding.params["weight"], head_w, head_t,
                     lm.head.params["bias"], meta, ws)
    rnn._cache = None
    lm.embedding._ids = lm.head._x = None
    return logits
