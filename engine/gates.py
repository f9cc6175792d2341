"""Gate orders and parameter naming, written down once (PyTorch's conventions, plus numrnn's LSTM
variants).

Glossary used across engine/ and python/:
  T time steps, B batch, I input features, H hidden size, P projection size (LSTM proj_size;
  P = H when there is none), G gate rows (G = NG * H), D directions (1 or 2), L layers.
  Arrays are time-major [T, B, ...]; the rightmost dimension changes fastest.

Gate rows inside weight_ih [G, I], weight_hh [G, P], bias_ih [G], bias_hh [G]:
  LSTM: i, f, g, o     (input, forget, cell candidate, output)
  LSTM coupled=True:   i, g, o (CIFG: f = 1 - i, so the forget rows do not exist)
  GRU:  r, z, n        (reset, update, new); n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
  RNN:  one block      (h = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu)

LSTM peephole=True adds diagonal weights weight_ci, weight_cf, weight_co [H] (ONNX LSTM's P):
i and f see c_{t-1}, o sees c_t. They sit back to back in the parameter buffer, so the kernels
get them as one [NP, H] array, rows i, f, o; with coupled=True there is no f row (NP = 2), so
the o row is always the last one.
"""

LSTM_I, LSTM_F, LSTM_G, LSTM_O = 0, 1, 2, 3
CIFG_I, CIFG_G, CIFG_O = 0, 1, 2
PEEP_I, PEEP_F = 0, 1
GRU_R, GRU_Z, GRU_N = 0, 1, 2

NUM_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}

# RNN nonlinearity codes passed to the kernels
TANH, RELU = 0, 1
NONLINEARITIES = {"tanh": TANH, "relu": RELU}


def num_gates(cell, coupled=False):
    return 3 if cell == "LSTM" and coupled else NUM_GATES[cell]


def suffix(layer, direction):
    """Name suffix of one layer and direction: _l0, _l0_reverse, _l1, ..."""
    return "_l%d%s" % (layer, "_reverse" if direction else "")


def layer_suffixes(num_layers, bidirectional):
    """Name suffix of each layer and direction, indexed layer * D + direction."""
    return [suffix(layer, direction) for layer in range(num_layers) for direction in range(2 if bidirectional else 1)]


def direction_param_names(cell, sfx, bias, proj_size, peephole=False, coupled=False):
    """Names of one layer and direction's tensors in PyTorch's order (weight_ih, weight_hh, bias_ih,
    bias_hh, weight_hr), then the peephole weights; a cell (RNNCell, ...) uses sfx = ""."""
    names = ["weight_ih" + sfx, "weight_hh" + sfx]
    if bias:
        names += ["bias_ih" + sfx, "bias_hh" + sfx]
    if cell == "LSTM" and proj_size > 0:
        names += ["weight_hr" + sfx]
    if cell == "LSTM" and peephole:
        names += ["weight_ci" + sfx] + ([] if coupled else ["weight_cf" + sfx]) + ["weight_co" + sfx]
    return names


def direction_param_shapes(cell, sfx, layer_input, hidden_size, bias, proj_size, peephole=False, coupled=False):
    """(name, shape) of one layer and direction's tensors, in direction_param_names' order:
    weight_ih [G, layer_input], weight_hh [G, P], bias_ih/bias_hh [G], weight_hr [P, H], peepholes [H]."""
    H, P = hidden_size, proj_size or hidden_size
    G = num_gates(cell, coupled) * H
    by_kind = {"weight_ih": (G, layer_input), "weight_hh": (G, P), "bias_ih": (G,), "bias_hh": (G,),
               "weight_hr": (P, H)}
    for name in direction_param_names(cell, sfx, bias, proj_size, peephole, coupled):
        yield name, by_kind.get(name[:len(name) - len(sfx)], (H,))   # the rest are peephole weights


def param_shapes(cell, input_size, hidden_size, num_layers, bidirectional, bias, proj_size, peephole=False,
                 coupled=False):
    """(name, shape) of every parameter of a layer, per layer and direction in PyTorch's order.
    A generator: a caller checking a file against a configuration stops after the file's own
    count, whatever num_layers says."""
    D = 2 if bidirectional else 1
    for layer in range(num_layers):
        for direction in range(D):
            layer_input = input_size if layer == 0 else D * (proj_size or hidden_size)
            yield from direction_param_shapes(cell, suffix(layer, direction), layer_input, hidden_size, bias,
                                              proj_size, peephole,
                                              coupled)
