"""Export to ONNX: an RNN/LSTM/GRU layer or a LanguageModel as a graph of standard ONNX operators
(RNN, LSTM, GRU, one node per layer; Gather for the embedding; MatMul + Add for the head), for
ONNX Runtime or any other ONNX consumer. Inference only: dropout is left out, as in eval mode.
Not here: training, importing ONNX files, numrnn's own forward (the graph uses the ONNX ops).

The exported graph (float32 whatever the block's dtype; T and B are dynamic axes):
  layer           inputs  x [T, B, I] ([B, T, I] when batch_first), h0 [L*D, B, P],
                          c0 [L*D, B, H] (LSTM only), lengths [B] int32 (only with lengths=True)
                  outputs y [T, B, D*P] ([B, T, D*P] when batch_first), h_n [L*D, B, P], c_n (LSTM)
  LanguageModel   inputs  ids [T, B] int64, h0, c0 (LSTM) as above
                  outputs logits [T, B, V], h_n, c_n (LSTM)
Pass zeros as h0/c0 to start fresh. These are the names and layouts numrnn's own calls use.

Layouts (the gate orders of both sides are written down in engine/gates.py and the ONNX spec):
  ONNX LSTM gates i, o, f, c (numrnn i, f, g, o; c is numrnn's g); P rows i, o, f
  ONNX GRU gates z, r, h (numrnn r, z, n), with linear_before_reset=1 (b_hn inside the reset product)
  B is [Wb; Rb]; directions stack on a leading axis; Y is [T, D, B, H], so each layer's Y goes
  through Transpose [T, B, D, H] and Reshape [T, B, D*H] before the next layer.
LSTM variants: peephole weights go to P (no weight_cf when coupled: a zero row), coupled=True to
input_forget=1 (f = 1 - i) with zero forget rows, which the operator ignores. proj_size has no
place in the ONNX LSTM operator and is refused.
"""
import numpy as np

from numrnn.cells import Cell
from numrnn.device import as_numpy
from numrnn.engine.gates import GRU_N, GRU_R, GRU_Z, LSTM_F, LSTM_G, LSTM_I, LSTM_O, layer_suffixes
from numrnn.language_model import LanguageModel
from numrnn.recurrent import Recurrent
from numrnn.serialize import atomic_write

OPSET = 14
IR_VERSION = 8     # ONNX Runtime 1.17 and later read it


class NotExportable(ValueError):
    """The block has something the ONNX operators cannot express."""


def check_onnx():
    """ImportError with the install command when the onnx package is missing."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ImportError("exporting to ONNX needs the onnx package: pip install 'numrnn[onnx]' "
                          "(or pip install onnx)") from None


def export(obj, path, lengths=False):
    """Write `obj` (an RNN, LSTM or GRU layer, or a LanguageModel, on any device) to `path` as an
    ONNX model checked by onnx.checker; returns the onnx.ModelProto. lengths=True adds a `lengths`
    [B] int32 input to a layer (ONNX's sequence_lens: outputs past a sequence's length are zero and
    h_n is taken at its last step, as numrnn's `lengths` argument does).

    >>> model = numrnn.onnx_export.export(numrnn.GRU(8, 16, num_layers=2), "gru.onnx")
    >>> onnxruntime.InferenceSession("gru.onnx").run(["y", "h_n"], {"x": x, "h0": h0})"""
    import onnx
    model = to_onnx(obj, lengths)
    onnx.checker.check_model(model, full_check=True)
    atomic_write(path, model.SerializeToString())
    return model


def to_onnx(obj, lengths=False):
    """The onnx.ModelProto export() writes."""
    check_onnx()
    from onnx import TensorProto, helper

    g = _Graph()
    if isinstance(obj, Cell):
        raise NotExportable(f"{type(obj).__name__} is a single step; export the layer it is a step of "
                            f"(numrnn.{type(obj).__name__[:-4]} with num_layers=1 and the same weights)")
    if isinstance(obj, LanguageModel):
        if lengths:
            raise NotExportable("lengths=True applies to layers; a LanguageModel's graph takes whole sequences")
        rnn = obj.rnn
        _check(rnn, "LanguageModel.rnn: ")
        g.input("ids", TensorProto.INT64, ["T", "B"])
        x = g.node("Gather", [g.const("embedding.weight", obj.embedding.params["weight"]), "ids"], axis=0)
        y, h_n, c_n = _recurrent(g, rnn, x, None)
        head = obj.head
        logits = g.node("MatMul", [y, g.const("head.weight_t", as_numpy(head.params["weight"]).T)])
        if head.bias:
            logits = g.node("Add", [logits, g.const("head.bias", head.params["bias"])])
        g.output(logits, "logits", ["T", "B", obj.vocab_size])
        name = "numrnn_language_model"
    elif isinstance(obj, Recurrent):
        rnn = obj
        _check(rnn, "")
        g.input("x", TensorProto.FLOAT, ["B", "T", rnn.input_size] if rnn.batch_first else ["T", "B", rnn.input_size])
        x = g.node("Transpose", ["x"], perm=[1, 0, 2]) if rnn.batch_first else "x"
        seq_lens = None
        if lengths:
            g.input("lengths", TensorProto.INT32, ["B"])
            seq_lens = "lengths"
        y, h_n, c_n = _recurrent(g, rnn, x, seq_lens)
        out_size = rnn.num_directions * rnn.out_size
        if rnn.batch_first:
            y = g.node("Transpose", [y], perm=[1, 0, 2])
        g.output(y, "y", ["B", "T", out_size] if rnn.batch_first else ["T", "B", out_size])
        name = f"numrnn_{rnn.cell.lower()}"
    else:
        raise NotExportable(f"cannot export a {type(obj).__name__}: ONNX export takes an RNN, LSTM or GRU "
                            f"layer or a LanguageModel")
    LD = rnn.num_layers * rnn.num_directions
    g.output(h_n, "h_n", [LD, "B", rnn.out_size])
    if c_n is not None:
        g.output(c_n, "c_n", [LD, "B", rnn.hidden_size])
    graph = helper.make_graph(g.nodes, name, g.inputs, g.outputs, g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                             producer_name="numrnn", doc_string=repr(obj))


def describe(model):
    """One line naming an onnx.ModelProto's inputs and outputs with their shapes."""
    def values(infos):
        return ", ".join(v.name + " [" + ", ".join(d.dim_param or str(d.dim_value) for d in
                                                   v.type.tensor_type.shape.dim) + "]" for v in infos)
    return f"inputs {values(model.graph.input)} -> outputs {values(model.graph.output)}"


def _check(rnn, where):
    if rnn.proj_size:
        raise NotExportable(f"{where}LSTM with proj_size={rnn.proj_size} cannot be exported: the ONNX LSTM "
                            f"operator has no projection (weight_hr)")


class _Graph:
    """Nodes, initializers and graph inputs/outputs under construction, with fresh value names."""

    def __init__(self):
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self._count = 0

    def fresh(self, stem):
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, name, array, dtype=np.float32):
        from onnx import numpy_helper
        self.inits.append(numpy_helper.from_array(np.asarray(as_numpy(array), dtype), name))
        return name

    def node(self, op, inputs, n_outputs=1, **attrs):
        """Add one node; its output name (or names when n_outputs > 1)."""
        from onnx import helper
        outs = [self.fresh(op.lower()) for _ in range(n_outputs)]
        self.nodes.append(helper.make_node(op, inputs, outs, **attrs))
        return outs[0] if n_outputs == 1 else outs

    def input(self, name, elem_type, dims):
        from onnx import helper
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, dims))

    def output(self, value, name, dims):
        from onnx import TensorProto, helper
        self.nodes.append(helper.make_node("Identity", [value], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))


def _onnx_gates(cell, w, coupled):
    """numrnn gate blocks of w [G, ...] or [G] in ONNX's order. A coupled LSTM has no forget rows;
    it gets zeros, which input_forget=1 ignores."""
    if cell == "RNN":
        return w
    if cell == "GRU":
        blocks = np.split(w, 3)
        return np.concatenate([blocks[GRU_Z], blocks[GRU_R], blocks[GRU_N]])
    if coupled:
        i, g, o = np.split(w, 3)
        f = np.zeros_like(i)
    else:
        blocks = np.split(w, 4)
        i, f, g, o = blocks[LSTM_I], blocks[LSTM_F], blocks[LSTM_G], blocks[LSTM_O]
    return np.concatenate([i, o, f, g])


def layer_weights(rnn, layer):
    """ONNX's W [D, G, I], R [D, G, H], B [D, 2G] (None without bias) and P [D, 3H] (None
    without peepholes) of one layer."""
    p = {k: as_numpy(v) for k, v in rnn.params.items()}
    H, D = rnn.hidden_size, rnn.num_directions
    coupled = getattr(rnn, "coupled", False)
    W, R, B, P = [], [], [], []
    for sfx in layer_suffixes(rnn.num_layers, rnn.bidirectional)[layer * D:(layer + 1) * D]:
        W.append(_onnx_gates(rnn.cell, p["weight_ih" + sfx], coupled))
        R.append(_onnx_gates(rnn.cell, p["weight_hh" + sfx], coupled))
        if rnn.bias:
            B.append(np.concatenate([_onnx_gates(rnn.cell, p["bias_ih" + sfx], coupled),
                                     _onnx_gates(rnn.cell, p["bias_hh" + sfx], coupled)]))
        if getattr(rnn, "peephole", False):
            cf = np.zeros(H) if coupled else p["weight_cf" + sfx]
            P.append(np.concatenate([p["weight_ci" + sfx], p["weight_co" + sfx], cf]))
    return [np.stack(a) if a else None for a in (W, R, B, P)]


def _recurrent(g, rnn, x, seq_lens):
    """Add the layers of `rnn` on top of value x [T, B, I]: (y [T, B, D*P], h_n, c_n or None).
    h0 (and c0) become graph inputs, sliced per layer."""
    from onnx import TensorProto
    L, D, H = rnn.num_layers, rnn.num_directions, rnn.hidden_size
    lstm = rnn.cell == "LSTM"
    g.input("h0", TensorProto.FLOAT, [L * D, "B", rnn.out_size])
    if lstm:
        g.input("c0", TensorProto.FLOAT, [L * D, "B", H])
    flat = g.const("flat_shape", [0, 0, -1], np.int64)
    axis0 = g.const("axis0", [0], np.int64)
    attrs = dict(hidden_size=H, direction="bidirectional" if D == 2 else "forward")
    if rnn.cell == "RNN":
        attrs["activations"] = [rnn.nonlinearity.capitalize()] * D
    if rnn.cell == "GRU":
        attrs["linear_before_reset"] = 1
    if lstm:
        attrs["input_forget"] = int(rnn.coupled)
    finals = [[], []]
    for k in range(L):
        W, R, B, P = layer_weights(rnn, k)
        names = [g.const(f"{tag}_l{k}", a) if a is not None else "" for tag, a in zip("WRBP", (W, R, B, P))]
        start, end = g.const(f"start_l{k}", [k * D], np.int64), g.const(f"end_l{k}", [(k + 1) * D], np.int64)
        inputs = [x, names[0], names[1], names[2], seq_lens or "", g.node("Slice", ["h0", start, end, axis0])]
        if lstm:
            inputs += [g.node("Slice", ["c0", start, end, axis0]), names[3]]
        Y, Y_h, *Y_c = g.node(rnn.cell, inputs, n_outputs=3 if lstm else 2, **attrs)
        x = g.node("Reshape", [g.node("Transpose", [Y], perm=[0, 2, 1, 3]), flat])   # [T, B, D*H]
        finals[0].append(Y_h)
        finals[1] += Y_c
    h_n, c_n = (g.node("Concat", f, axis=0) if f else None for f in finals)
    return x, h_n, c_n
