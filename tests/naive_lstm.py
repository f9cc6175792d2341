"""Plain NumPy LSTM, slow and obviously correct: the reference for numrnn's LSTM variants
(peephole, coupled) with layers, directions, lengths and proj_size. Not used by the package.

Parameters come as a dict with numrnn's names (engine/gates.py); equations are the ONNX LSTM
operator's with peephole P and input_forget, written step by step."""
import numpy as np


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def lstm_direction(x, h0, c0, p, sfx, lengths, reverse, coupled):
    """x [T, B, I], h0 [B, P], c0 [B, H], p: name -> array; returns hs [T, B, P] (zero past each
    sequence's end), h_n [B, P], c_n [B, H]."""
    T, B, _ = x.shape
    H = c0.shape[1]
    zero = np.zeros(H)
    b = p.get("bias_ih" + sfx, 0.0) + p.get("bias_hh" + sfx, 0.0)
    pi, pf, po = (p.get(name + sfx, zero) for name in ("weight_ci", "weight_cf", "weight_co"))
    h, c = h0.copy(), c0.copy()
    hs = np.zeros((T, B, h0.shape[1]))
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        z = x[t] @ p["weight_ih" + sfx].T + h @ p["weight_hh" + sfx].T + b
        if coupled:
            zi, zg, zo = np.split(z, 3, axis=1)
            i = sigmoid(zi + pi * c)
            f = 1.0 - i
        else:
            zi, zf, zg, zo = np.split(z, 4, axis=1)
            i = sigmoid(zi + pi * c)
            f = sigmoid(zf + pf * c)
        c_new = f * c + i * np.tanh(zg)
        h_new = sigmoid(zo + po * c_new) * np.tanh(c_new)
        if "weight_hr" + sfx in p:
            h_new = h_new @ p["weight_hr" + sfx].T
        live = (t < lengths)[:, None]
        h = np.where(live, h_new, h)
        c = np.where(live, c_new, c)
        hs[t] = np.where(live, h, 0.0)
    return hs, h, c


def lstm(x, h0, c0, p, num_layers, bidirectional, lengths, coupled):
    """x [T, B, I] time-major; h0 [L*D, B, P], c0 [L*D, B, H] -> out [T, B, D*P], h_n, c_n."""
    D = 2 if bidirectional else 1
    h_n, c_n = [], []
    for layer in range(num_layers):
        ys = []
        for d in range(D):
            idx = layer * D + d
            sfx = "_l%d%s" % (layer, "_reverse" if d else "")
            hs, h, c = lstm_direction(x, h0[idx], c0[idx], p, sfx, lengths, bool(d), coupled)
            ys.append(hs)
            h_n.append(h)
            c_n.append(c)
        x = np.concatenate(ys, axis=2)
    return x, np.stack(h_n), np.stack(c_n)
