"""Inference on several threads: one call of a whole model (engine/infer.py's stack_forward) split
over nparts threads by hidden units (private).

Part p owns the units j0..j1 of every layer and direction (unit_range): it computes the gate
columns of those units (its own transposed copies of the weights' rows, `split` below, so each
product reads only its share of the weights, from its own core's cache), their gate updates
(the cells' row functions, the arithmetic of one thread) and writes their h into a ping-pong
pair of [B, H] rows that every part reads for the next step's product; the parts meet at a
barrier after each step (engine/threads.py). So each step exchanges only h, and the weights
a call streams are split between the cores' caches.

Only the small-batch form: B <= matvec.SMALL_ROWS (each step's product is the axpy form), no
proj_size (h = W_hr r needs all of r); peepholes and coupled gates work. Results equal the
one-thread call's to the bit when the input projection takes the same kernel (T * B <= 8) and
to rounding otherwise (OpenBLAS on a column share of the weights).

Layout `split` (python/numrnn/inference.py builds it): for part p of layer/direction idx,
meta_s[(idx * nparts + p) * QS + Q_*] are offsets in flat_s of w_ih_t [n_in, NG * n] and
w_hh_t [H, NG * n] (the gate blocks of the part's n units side by side, in gate order), bias
[NG * n] (b_ih + b_hh; GRU: b_ih) and (GRU) b_hh [NG * n].
"""
import numpy as np
from numba import carray, cfunc, njit, types

from .gru import gru_row
from .infer import (CELL_GRU, CELL_LSTM, M_ACT, M_CELL, M_COUPLED, M_D, M_G, M_H, M_I, M_L, M_NPEEP, META, S_IN,
                    S_PEEP, SPEC, _matrix, spec_of)
from .lstm import lstm_row
from .matvec import SMALL_ROWS, matmul_t_axpy
from .rnn import rnn_row
from .steps import time_at
from .threads import ARGS, TEAM_SIZE, address, barrier, job_done, next_job, pointer, post_job, wait_done
from .views import view

Q_IH, Q_HH, Q_B1, Q_B2 = range(4)
QS = 4
ALIGN = 16      # part boundaries at multiples of 16 units where H allows: no cache line of h is written by two parts

# a helper's arguments: one int64 row per part (addresses, and the sizes to rebuild the arrays)
(A_PART, A_NPARTS, A_T, A_B, A_Y, A_HN, A_CN, A_X, A_H0, A_C0, A_LEN, A_FLAT, A_NFLAT, A_FLATS, A_NFLATS,
 A_META, A_METAS, A_WS, A_NWS) = range(19)
NARGS = 19


@njit(cache=True)
def unit_range(H, part, nparts):
    """The hidden units j0..j1 - 1 part `part` of nparts owns."""
    step = ALIGN if H >= ALIGN * nparts else 1
    units = H // step
    j0 = units * part // nparts * step
    j1 = H if part == nparts - 1 else units * (part + 1) // nparts * step
    return j0, j1


@njit(cache=True)
def split_workspace_size(meta, T, B, nparts):
    """Floats of workspace split_forward needs: shared, two ping-pong layer outputs [T, B, D * H]
    and the state rows [2, B, H]; per part, pre [T, B, NG * n], gh [B, NG * n], c, r and
    hn_pre scratch [B, n] each (n its number of units)."""
    D, H, G = meta[M_D], meta[M_H], meta[M_G]
    NG = G // H
    _, n = unit_range(H, nparts - 1, nparts)
    n = max(n, unit_range(H, 0, nparts)[1])
    return _shared_size(T, B, D, H) + nparts * _part_size(T, B, NG, n)


@njit(cache=True)
def _shared_size(T, B, D, H):
    """The shared floats (layer outputs and state rows), rounded up to whole 64-byte lines."""
    return (2 * T * B * D * H + 2 * B * H + 15) // 16 * 16


@njit(cache=True)
def _part_size(T, B, NG, n):
    """A part's floats, rounded up to whole 64-byte lines (16 float32 values) so that no two
    parts write one line."""
    size = T * B * NG * n + B * NG * n + 3 * B * n
    return (size + 15) // 16 * 16


@njit(cache=True, error_model="numpy")
def split_part(part, nparts, y, hn, cn, x, h0, c0, lengths, flat, flat_s, meta, meta_s, ws, team):
    """Part `part`'s share of a whole model's forward (stack_forward's arguments, plus flat_s
    and meta_s as in the header, ws [split_workspace_size] shared by the parts, team the
    engine/threads team whose job this is). Every part must run at the same time."""
    T, B, _ = x.shape
    cell, L, D, H, G = meta[M_CELL], meta[M_L], meta[M_D], meta[M_H], meta[M_G]
    act, coupled, npeep = meta[M_ACT], meta[M_COUPLED] != 0, meta[M_NPEEP]
    NG = G // H
    j0, j1 = unit_range(H, part, nparts)
    n = j1 - j0
    Gp = NG * n
    TB = T * B
    bufs = (view(ws, 0, (T, B, D * H)), view(ws, TB * D * H, (T, B, D * H)))
    hbuf = view(ws, 2 * TB * D * H, (2, B, H))
    _, nmax = unit_range(H, nparts - 1, nparts)
    nmax = max(nmax, unit_range(H, 0, nparts)[1])
    mine = _shared_size(T, B, D, H) + part * _part_size(T, B, NG, nmax)
    pre = view(ws, mine, (T, B, Gp))
    gh = view(ws, mine + TB * NG * nmax, (B, Gp))
    s = mine + TB * NG * nmax + B * NG * nmax
    c = view(ws, s, (B, n))
    r = view(ws, s + B * nmax, (B, n))
    hnp = view(ws, s + 2 * B * nmax, (B, n))
    k = 0
    inp = x
    for layer in range(L):
        out = y if layer == L - 1 else bufs[layer % 2]
        for d in range(D):
            idx = layer * D + d
            q = meta_s[(idx * nparts + part) * QS:(idx * nparts + part + 1) * QS]     # this part's offsets
            spec = spec_of(meta, idx)
            n_in = spec[S_IN]
            w_ih_t = view(flat_s, q[Q_IH], (n_in, Gp))
            w_hh_t = view(flat_s, q[Q_HH], (H, Gp))
            b1 = view(flat_s, q[Q_B1], (Gp,))
            b2 = view(flat_s, q[Q_B2] if q[Q_B2] >= 0 else q[Q_B1], (Gp,))
            w_peep = _matrix(flat, spec[S_PEEP], npeep, H)[:, j0:j1]
            po = npeep - 1
            inp2 = view(inp, 0, (TB, n_in))
            pre2 = view(pre, 0, (TB, Gp))
            if TB <= SMALL_ROWS:
                matmul_t_axpy(pre2, inp2, w_ih_t)
            else:
                np.dot(inp2, w_ih_t, pre2)
            for b in range(B):
                hbuf[0, b, j0:j1] = h0[idx, b, j0:j1]
                if cell == CELL_LSTM:
                    c[b] = c0[idx, b, j0:j1]
            k += 1
            barrier(team, part, nparts, k)
            reverse = d == 1
            cols = d * H
            for st in range(T):
                t = time_at(st, T, reverse)
                src = st % 2
                matmul_t_axpy(gh, hbuf[src], w_hh_t)
                for b in range(B):
                    hout = hbuf[1 - src, b, j0:j1]
                    o = out[t, b, cols + j0:cols + j1]
                    if t < lengths[b]:
                        if cell == CELL_LSTM:
                            lstm_row(pre[t, b], gh[b], b1, c[b], r[b], w_peep, po, npeep > 0, coupled)
                            hout[:] = r[b]
                        elif cell == CELL_GRU:
                            gru_row(pre[t, b], gh[b], b1, b2, hbuf[src, b, j0:j1], hout, hnp[b])
                        else:
                            rnn_row(pre[t, b], gh[b], b1, hout, act)
                        o[:] = hout
                    else:           # frozen: the state carries, the output row is zero
                        hout[:] = hbuf[src, b, j0:j1]
                        o[:] = 0
                k += 1
                barrier(team, part, nparts, k)
            last = T % 2        # the row the final step wrote
            for b in range(B):
                hn[idx, b, j0:j1] = hbuf[last, b, j0:j1]
                if cell == CELL_LSTM:
                    cn[idx, b, j0:j1] = c[b]
        inp = out


@njit(cache=True)
def split_forward(y, hn, cn, x, h0, c0, lengths, flat, flat_s, meta, meta_s, ws, team, args, nparts):
    """stack_forward on nparts threads: this one runs part 0, the team's started helpers
    (engine/threads.start_team with team_loop(dtype)) the others. args [nparts, NARGS] int64 is
    scratch for the helpers' arguments."""
    T, B, _ = x.shape
    for p in range(1, nparts):
        a = args[p]
        a[A_PART], a[A_NPARTS], a[A_T], a[A_B] = p, nparts, T, B
        a[A_Y], a[A_HN], a[A_CN], a[A_X] = address(y), address(hn), address(cn), address(x)
        a[A_H0], a[A_C0], a[A_LEN] = address(h0), address(c0), address(lengths)
        a[A_FLAT], a[A_NFLAT], a[A_FLATS], a[A_NFLATS] = address(flat), flat.size, address(flat_s), flat_s.size
        a[A_META], a[A_METAS], a[A_WS], a[A_NWS] = address(meta), address(meta_s), address(ws), ws.size
    team[ARGS] = address(args)
    job = post_job(team)
    split_part(0, nparts, y, hn, cn, x, h0, c0, lengths, flat, flat_s, meta, meta_s, ws, team)
    wait_done(team, nparts, job)


@njit(cache=True)
def _team_loop(start_p, like):
    """A helper thread's life: wait for a job, rebuild its arrays from its argument row, run its
    part, say done; until the team stops. like: np.float32 or np.float64, the model's dtype."""
    start = carray(start_p, 2)
    team = carray(pointer(start[0], start), TEAM_SIZE)
    part = start[1]
    seen = 0
    while True:
        job = next_job(team, seen)
        if job < 0:
            return 0
        seen = job
        a = carray(pointer(team[ARGS], team), (part + 1, NARGS))[part]
        T, B = a[A_T], a[A_B]
        LD = carray(pointer(a[A_META], a), META)[M_L] * carray(pointer(a[A_META], a), META)[M_D]
        meta = carray(pointer(a[A_META], a), META + LD * SPEC)
        nparts = a[A_NPARTS]
        H, D = meta[M_H], meta[M_D]
        split_part(part, nparts,
                   carray(pointer(a[A_Y], like), (T, B, D * H)), carray(pointer(a[A_HN], like), (LD, B, H)),
                   carray(pointer(a[A_CN], like), (LD, B, H)), carray(pointer(a[A_X], like), (T, B, meta[M_I])),
                   carray(pointer(a[A_H0], like), (LD, B, H)), carray(pointer(a[A_C0], like), (LD, B, H)),
                   carray(pointer(a[A_LEN], a), B), carray(pointer(a[A_FLAT], like), a[A_NFLAT]),
                   carray(pointer(a[A_FLATS], like), a[A_NFLATS]), meta,
                   carray(pointer(a[A_METAS], a), LD * nparts * QS), carray(pointer(a[A_WS], like), a[A_NWS]),
                   team)
        job_done(team, part, job)


def _team_loop_float32(start_p):
    return _team_loop(start_p, np.float32)


def _team_loop_float64(start_p):
    return _team_loop(start_p, np.float64)


_LOOPS = {"float32": _team_loop_float32, "float64": _team_loop_float64}
_compiled = {}


def team_loop(dtype):
    """The address of the @cfunc helper loop for float32 or float64 models (compiled, or loaded
    from Numba's cache, on first request: a program that never splits a call never pays for it)."""
    key = np.dtype(dtype).name
    if key not in _compiled:
        _compiled[key] = cfunc(types.int64(types.CPointer(types.int64)), cache=True)(_LOOPS[key])
    return _compiled[key].address
