"""ONNX Runtime's LSTM operator fed a numrnn LSTM's weights: the independent reference for the
peephole and coupled variants (ONNX's P input and input_forget=1), with one h0/c0 input per layer
and sequence_lens always given, as benchmarks/cpu.py feeds it. Test-only; float32 only, since
ONNX Runtime's CPU LSTM does not run float64. The weights are laid out by numrnn.onnx_export
(layer_weights), whose header explains ONNX's layouts; `numrnn export` writes the user-facing graph.
An ONNX LSTM node is one layer, so layers chain: Y [T, D, B, H] -> transpose [T, B, D, H] ->
reshape [T, B, D*H] -> the next node's X.
"""
import numpy as np
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

from numrnn.onnx_export import layer_weights


def lstm_model(lstm):
    """The ONNX graph of a numrnn LSTM (bias=True, no projection): inputs X [T, B, I],
    sequence_lens [B] int32, h0_k / c0_k [D, B, H] per layer k; outputs out [T, B, D*H], h_n, c_n."""
    D, L = lstm.num_directions, lstm.num_layers
    f32 = TensorProto.FLOAT
    nodes, inits, inputs = [], [], [helper.make_tensor_value_info("X", f32, None),
                                    helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, None)]
    inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "flat_shape"))
    x = "X"
    for k in range(L):
        names = []
        for tag, arr in zip("WRBP", layer_weights(lstm, k)):
            names.append("" if arr is None else f"{tag}{k}")
            if arr is not None:
                inits.append(numpy_helper.from_array(arr.astype(np.float32), f"{tag}{k}"))
        inputs += [helper.make_tensor_value_info(f"{s}0_{k}", f32, None) for s in "hc"]
        nodes.append(helper.make_node(
            "LSTM", [x] + names[:3] + ["sequence_lens", f"h0_{k}", f"c0_{k}", names[3]],
            [f"Y{k}", f"Yh{k}", f"Yc{k}"], hidden_size=lstm.hidden_size,
            direction="bidirectional" if D == 2 else "forward", input_forget=int(lstm.coupled)))
        nodes.append(helper.make_node("Transpose", [f"Y{k}"], [f"Yt{k}"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Reshape", [f"Yt{k}", "flat_shape"], [f"out{k}"]))
        x = f"out{k}"
    nodes.append(helper.make_node("Identity", [x], ["out"]))
    nodes.append(helper.make_node("Concat", [f"Yh{k}" for k in range(L)], ["h_n"], axis=0))
    nodes.append(helper.make_node("Concat", [f"Yc{k}" for k in range(L)], ["c_n"], axis=0))
    outputs = [helper.make_tensor_value_info(n, f32, None) for n in ("out", "h_n", "c_n")]
    graph = helper.make_graph(nodes, "numrnn_lstm", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)


def run(lstm, x, h0, c0, lengths):
    """out [T, B, D*H], h_n, c_n [L*D, B, H] from ONNX Runtime, for time-major float input."""
    session = onnxruntime.InferenceSession(lstm_model(lstm).SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    D = lstm.num_directions
    feeds = {"X": x.astype(np.float32), "sequence_lens": np.asarray(lengths, np.int32)}
    for k in range(lstm.num_layers):
        feeds[f"h0_{k}"] = h0[k * D:(k + 1) * D].astype(np.float32)
        feeds[f"c0_{k}"] = c0[k * D:(k + 1) * D].astype(np.float32)
    return session.run(["out", "h_n", "c_n"], feeds)
