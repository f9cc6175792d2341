"""Gate orders and parameter naming, written down once (PyTorch's conventions).

Glossary used across engine/ and python/:
  T time steps, B batch, I input features, H hidden size, P projection size (LSTM proj_size;
  P = H when there is none), G gate rows (G = NG * H), D directions (1 or 2), L layers.
  Arrays are time-major [T, B, ...]; the rightmost dimension changes fastest.

Gate rows inside weight_ih [G, I], weight_hh [G, P], bias_ih [G], bias_hh [G]:
  LSTM: i, f, g, o     (input, forget, cell candidate, output)
  GRU:  r, z, n        (reset, update, new); n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
  RNN:  one block      (h = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu)
"""

LSTM_I, LSTM_F, LSTM_G, LSTM_O = 0, 1, 2, 3
GRU_R, GRU_Z, GRU_N = 0, 1, 2

NUM_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}

# RNN nonlinearity codes passed to the kernels
TANH, RELU = 0, 1
NONLINEARITIES = {"tanh": TANH, "relu": RELU}


def param_names(cell, num_layers, bidirectional, bias, proj_size):
    """PyTorch's parameter names in PyTorch's order: per layer, per direction,
    weight_ih, weight_hh, bias_ih, bias_hh, weight_hr."""
    names = []
    for layer in range(num_layers):
        for direction in range(2 if bidirectional else 1):
            sfx = "_l%d%s" % (layer, "_reverse" if direction else "")
            names += ["weight_ih" + sfx, "weight_hh" + sfx]
            if bias:
                names += ["bias_ih" + sfx, "bias_hh" + sfx]
            if cell == "LSTM" and proj_size > 0:
                names += ["weight_hr" + sfx]
    return names
