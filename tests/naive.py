"""Plain NumPy RNN, LSTM (with proj_size, peephole, coupled) and GRU, forward and hand-written BPTT:
slow, obviously correct references for the engine. Not used by the package.

One step function per cell and its backward, side by side (min-char-rnn style), and one driver
that runs them over layers, directions and lengths. A sequence's step past its own end leaves the
state unchanged and outputs zero (PyTorch's packed-sequence semantics). Parameters come as a
dict with numrnn's (PyTorch's) names; everything is computed in float64, time-major.
"""
from collections import defaultdict

import numpy as np


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def get(p, name, sfx, shape):
    return p.get(name + sfx, np.zeros(shape))


# -- Elman RNN --------------------------------------------------------------------------------
def rnn_step(x, h, c, p, sfx, nonlinearity="tanh", **_):
    """x [B, I], h [B, H] -> h' [B, H], None, cache"""
    H = h.shape[1]
    a = x @ p["weight_ih" + sfx].T + h @ p["weight_hh" + sfx].T + get(p, "bias_ih", sfx, H) + get(p, "bias_hh", sfx, H)
    hn = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
    return hn, None, (x, h, a, hn)


def rnn_step_back(dh, dc, cache, p, sfx, g, nonlinearity="tanh", **_):
    x, h, a, hn = cache
    da = dh * (1.0 - hn * hn) if nonlinearity == "tanh" else dh * (a > 0)
    g["weight_ih" + sfx] += da.T @ x
    g["weight_hh" + sfx] += da.T @ h
    g["bias_ih" + sfx] += da.sum(0)
    g["bias_hh" + sfx] += da.sum(0)
    return da @ p["weight_ih" + sfx], da @ p["weight_hh" + sfx], None


# -- GRU: r, z, n with b_hn inside the reset product -------------------------------------------
def gru_step(x, h, c, p, sfx, **_):
    H = h.shape[1]
    gx = x @ p["weight_ih" + sfx].T + get(p, "bias_ih", sfx, 3 * H)
    gh = h @ p["weight_hh" + sfx].T + get(p, "bias_hh", sfx, 3 * H)
    r = sigmoid(gx[:, :H] + gh[:, :H])
    z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1.0 - z) * n + z * h, None, (x, h, r, z, n, gh[:, 2 * H:])


def gru_step_back(dh, dc, cache, p, sfx, g, **_):
    x, h, r, z, n, ghn = cache
    dzn = dh * (1.0 - z) * (1.0 - n * n)
    dzr = dzn * ghn * r * (1.0 - r)
    dzz = dh * (h - n) * z * (1.0 - z)
    dgx = np.concatenate([dzr, dzz, dzn], axis=1)
    dgh = np.concatenate([dzr, dzz, dzn * r], axis=1)
    g["weight_ih" + sfx] += dgx.T @ x
    g["weight_hh" + sfx] += dgh.T @ h
    g["bias_ih" + sfx] += dgx.sum(0)
    g["bias_hh" + sfx] += dgh.sum(0)
    return dgx @ p["weight_ih" + sfx], dgh @ p["weight_hh" + sfx] + dh * z, None


# -- LSTM: i, f, g, o (coupled: i, g, o with f = 1 - i); peepholes as in ONNX's LSTM -------------
def lstm_step(x, h, c, p, sfx, coupled=False, **_):
    H = c.shape[1]
    NG = 3 if coupled else 4
    z = (x @ p["weight_ih" + sfx].T + h @ p["weight_hh" + sfx].T
         + get(p, "bias_ih", sfx, NG * H) + get(p, "bias_hh", sfx, NG * H))
    pi, pf, po = (get(p, name, sfx, H) for name in ("weight_ci", "weight_cf", "weight_co"))
    if coupled:
        zi, zg, zo = np.split(z, 3, axis=1)
        i = sigmoid(zi + pi * c)
        f = 1.0 - i
    else:
        zi, zf, zg, zo = np.split(z, 4, axis=1)
        i = sigmoid(zi + pi * c)
        f = sigmoid(zf + pf * c)
    gg = np.tanh(zg)
    cn = f * c + i * gg
    o = sigmoid(zo + po * cn)
    r = o * np.tanh(cn)
    hn = r @ p["weight_hr" + sfx].T if "weight_hr" + sfx in p else r
    return hn, cn, (x, h, c, i, f, gg, o, cn, r)


def lstm_step_back(dh, dc, cache, p, sfx, g, coupled=False, **_):
    x, h, c, i, f, gg, o, cn, r = cache
    pi, pf, po = (get(p, name, sfx, c.shape[1]) for name in ("weight_ci", "weight_cf", "weight_co"))
    if "weight_hr" + sfx in p:
        g["weight_hr" + sfx] += dh.T @ r
        dr = dh @ p["weight_hr" + sfx]
    else:
        dr = dh
    tc = np.tanh(cn)
    dzo = dr * tc * o * (1.0 - o)
    dcn = dc + dr * o * (1.0 - tc * tc) + dzo * po
    di, df, dg = dcn * gg, dcn * c, dcn * i
    if coupled:
        di = di - df
    dzi = di * i * (1.0 - i)
    dzf = df * f * (1.0 - f)
    dzg = dg * (1.0 - gg * gg)
    dc_prev = dcn * f + dzi * pi + (0.0 if coupled else dzf * pf)
    g["weight_ci" + sfx] += (dzi * c).sum(0)
    g["weight_cf" + sfx] += (dzf * c).sum(0)
    g["weight_co" + sfx] += (dzo * cn).sum(0)
    dz = np.concatenate([dzi, dzg, dzo] if coupled else [dzi, dzf, dzg, dzo], axis=1)
    g["weight_ih" + sfx] += dz.T @ x
    g["weight_hh" + sfx] += dz.T @ h
    g["bias_ih" + sfx] += dz.sum(0)
    g["bias_hh" + sfx] += dz.sum(0)
    return dz @ p["weight_ih" + sfx], dz @ p["weight_hh" + sfx], dc_prev


STEPS = {"RNN": (rnn_step, rnn_step_back), "GRU": (gru_step, gru_step_back), "LSTM": (lstm_step, lstm_step_back)}


# -- driver over layers, directions and lengths --------------------------------------------------
def forward(cell, p, x, h0, c0, num_layers, bidirectional, lengths, **opts):
    """x [T, B, I]; h0 [L*D, B, P]; c0 [L*D, B, H] or None; lengths [B].
    Returns out [T, B, D*P], h_n, c_n (None for RNN/GRU), tape for backward."""
    step = STEPS[cell][0]
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    h_n, c_n, tape = [], [], []
    for layer in range(num_layers):
        ys = []
        for d in range(D):
            idx = layer * D + d
            sfx = "_l%d%s" % (layer, "_reverse" if d else "")
            h, c = h0[idx], None if c0 is None else c0[idx]
            hs = np.zeros((T, B, h.shape[1]))
            steps = []
            for t in (range(T - 1, -1, -1) if d else range(T)):
                hn, cn, cache = step(x[t], h, c, p, sfx, **opts)
                live = (t < lengths)[:, None]
                steps.append((t, live, cache))
                h = np.where(live, hn, h)
                c = None if c is None else np.where(live, cn, c)
                hs[t] = np.where(live, h, 0.0)
            ys.append(hs)
            h_n.append(h)
            c_n.append(c)
            tape.append((sfx, steps, x.shape))
        x = np.concatenate(ys, axis=2)
    return x, np.stack(h_n), None if c0 is None else np.stack(c_n), tape


def backward(cell, p, tape, dout, dh_n, dc_n, num_layers, bidirectional, **opts):
    """Gradients of sum(out*dout) + sum(h_n*dh_n) [+ sum(c_n*dc_n)]: dx, dh0, dc0, grads (dict)."""
    step_back = STEPS[cell][1]
    D = 2 if bidirectional else 1
    g = defaultdict(float)   # absent tensors (no bias, no peephole) collect gradients that are dropped
    g.update({k: np.zeros(v.shape) for k, v in p.items()})
    dh0, dc0 = np.zeros(dh_n.shape), None if dc_n is None else np.zeros(dc_n.shape)
    dy = dout
    for layer in range(num_layers - 1, -1, -1):
        dx = None
        for d in range(D):
            idx = layer * D + d
            sfx, steps, xshape = tape[idx]
            P = dh_n.shape[2]
            dhs = dy[:, :, d * P:(d + 1) * P]
            dh, dc = dh_n[idx], None if dc_n is None else dc_n[idx]
            dxd = np.zeros(xshape)
            for t, live, cache in reversed(steps):
                dht = dh + np.where(live, dhs[t], 0.0)
                dxt, dhp, dcp = step_back(np.where(live, dht, 0.0), None if dc is None else np.where(live, dc, 0.0),
                                          cache, p, sfx, g, **opts)
                dxd[t] = dxt
                dh = np.where(live, dhp, dht)
                dc = None if dc is None else np.where(live, dcp, dc)
            dh0[idx] = dh
            if dc0 is not None:
                dc0[idx] = dc
            dx = dxd if dx is None else dx + dxd
        dy = dx
    return dy, dh0, dc0, {k: g[k] for k in p}

