"""Speed of the C interface: numrnn's compiled inference path called from a C host (numrnn-bench),
from Python in eval mode, and as the bare compiled call, against ONNX Runtime on the same model;
what the C half adds to the compiled call (benchmarks/c_overhead.py); calls per second of 2 host
threads on 2 states against 1; a new host process's time to its first output with a cold and a
warm Numba cache.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/capi.py [BUILD_FOLDER]

BUILD_FOLDER (default build/) holds libnumrnn.so, numrnn-bench and numrnn-run from `cmake --build`.
Every contender runs in its own process and is asked in turn for blocks of calls with a pause
between blocks (benchmarks/interleave.py), so the machine's drifting load is shared and no
library's spinning thread pool slows another's calls. B=1, float32, inputs I = 64 (T=100 rows) or
I = H (the streaming steps, which carry the state from call to call). numrnn runs with BLAS on one
thread (as the C interface sets it, and the CLI); its C host and Python calls are split over 2
threads (numrnn_state_set_threads, eval(threads=2)) and also timed on one (C 1 thread, and the
bare compiled call), ONNX Runtime runs with 2 intra-op threads.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

import numrnn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from interleave import interleaved, python_worker  # noqa: E402

# name, cell, T, I, H, layers, goal (numrnn / ONNX Runtime)
ROWS = [
    ("LSTM T=100 H=128", "LSTM", 100, 64, 128, 1, 0.8),
    ("GRU T=100 H=128", "GRU", 100, 64, 128, 1, 0.8),
    ("2-layer LSTM step H=256", "LSTM", 1, 256, 256, 2, 0.8),
    ("2-layer LSTM step H=16", "LSTM", 1, 16, 16, 2, None),
]


def model_path(folder, cell, I, H, L):
    return os.path.join(folder, f"{cell}_{I}_{H}_{L}.safetensors")


def contender(who, path, T):
    """A zero-argument call for a worker process: one forward of T steps, B=1.
    python: the block in eval mode (carrying the state when T=1); compiled: engine.infer's
    stack_forward on preallocated arrays, the call the C host makes through its function pointer
    (here with Numba's dispatch from Python on top, a few microseconds);
    onnxruntime: the same weights as an ONNX graph (tests/onnx_lstm.py for LSTM)."""
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba calls: loaded, so that the limit reaches it)
    threadpool_limits(limits=1, user_api="blas")    # what the C interface runs with
    block = numrnn.load(path).eval(threads=2 if who == "python" else 1)
    x = np.random.default_rng(0).standard_normal((T, 1, block.input_size)).astype(np.float32)
    if who == "python":
        state = [None]

        def run():
            _, s = block(x, state[0])
            if T == 1:
                state[0] = s
        return run
    if who == "compiled":
        from numrnn import inference
        from numrnn.engine import infer
        LD, H, P = block.num_layers * block.num_directions, block.hidden_size, block.out_size
        meta = inference.describe(block)
        ws = np.empty(infer.workspace_size(meta, T, 1), np.float32)
        h, c, y = np.zeros((LD, 1, P), np.float32), np.zeros((LD, 1, H), np.float32), np.empty((T, 1, P), np.float32)
        lengths = np.full(1, T, np.int64)
        stack = ws[:infer.stack_size(meta, T, 1)]
        flat_t = inference.transposed(block, meta)
        return lambda: infer.stack_forward(y, h, c, x, h, c, lengths, block.flat_params, flat_t, meta, stack)
    import onnxruntime
    from onnx.numpy_helper import from_array
    from onnx import TensorProto, helper
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 2, 1
    if block.cell == "LSTM":
        import onnx_lstm
        model = onnx_lstm.lstm_model(block)
        feeds = {"X": x, "sequence_lens": np.full(1, T, np.int32)}
        for k in range(block.num_layers):
            feeds[f"h0_{k}"] = np.zeros((1, 1, block.hidden_size), np.float32)
            feeds[f"c0_{k}"] = feeds[f"h0_{k}"]
    else:
        p = block.params
        r, z, n = np.split(np.arange(3 * block.hidden_size), 3)
        zrn = np.concatenate([z, r, n])       # ONNX's gate order is z, r, h
        W, R = p["weight_ih_l0"][zrn][None], p["weight_hh_l0"][zrn][None]
        Bias = np.concatenate([p["bias_ih_l0"][zrn], p["bias_hh_l0"][zrn]])[None]
        f32 = TensorProto.FLOAT
        node = helper.make_node("GRU", ["X", "W", "R", "B"], ["Y"], hidden_size=block.hidden_size,
                                linear_before_reset=1)
        graph = helper.make_graph([node], "gru", [helper.make_tensor_value_info("X", f32, None)],
                                  [helper.make_tensor_value_info("Y", f32, None)],
                                  [from_array(a, k) for a, k in ((W, "W"), (R, "R"), (Bias, "B"))])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
        feeds = {"X": x}
    sess = onnxruntime.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, feeds)


def first_output_s(host, model, size, folder, env=()):
    """Seconds from starting `env -i [env] numrnn-run` until its first output line arrives."""
    np.savetxt(os.path.join(folder, "x.txt"), np.ones((1, size)))
    start = time.perf_counter()
    proc = subprocess.Popen(["env", "-i", *env, host, model, "--input", os.path.join(folder, "x.txt")],
                            stdout=subprocess.PIPE)
    proc.stdout.readline()
    seconds = time.perf_counter() - start
    proc.wait()
    return seconds


def us(seconds):
    return f"{seconds * 1e6:10.1f}"


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    bench = os.path.join(build, "numrnn-bench")
    print("B=1, float32, microseconds per call (medians of interleaved blocks, each contender in its "
          "own process)")
    print("C host, Python: 2 threads a call (numrnn_state_set_threads, eval(threads=2)), as ONNX Runtime "
          "has; C 1 thread and compiled: the caller's thread alone")
    print(f"{'workload':26s} {'C host':>10s} {'Python':>10s} {'C 1 thr':>10s} {'compiled':>10s} "
          f"{'onnxrt':>10s} {'C/ORT':>6s} {'Py/ORT':>6s} {'goal':>5s}")
    with tempfile.TemporaryDirectory() as folder:
        for name, cell, T, I, H, L, goal in ROWS:
            path = model_path(folder, cell, I, H, L)
            numrnn.save(getattr(numrnn, cell)(I, H, num_layers=L, seed=0), path)
            workers = {"C": [bench, path, "serve", str(T), "1", "2"],
                       "C1": [bench, path, "serve", str(T), "1" if T == 1 else "0"]}
            for who in ("python", "compiled", "onnxruntime"):
                workers[who] = python_worker("capi", "contender", who, path, T)
            t = interleaved(workers, pause_s=0.2)
            print(f"{name:26s} {us(t['C'])} {us(t['python'])} {us(t['C1'])} {us(t['compiled'])} "
                  f"{us(t['onnxruntime'])} {t['C'] / t['onnxruntime']:6.2f} {t['python'] / t['onnxruntime']:6.2f} "
                  f"{'' if goal is None else goal:>5}", flush=True)

        print("\nthreads through C, one state per thread, T=1 B=1 (medians of 5 alternating 1 s runs); "
              "CPU: the CPU seconds the threads got per second; per CPU s: calls per CPU second, equal "
              "for 1 and 2 threads when nothing shared (a lock, a cache line) slows them")
        print(f"{'workload':26s} {'1 thread/s':>11s} {'2 threads/s':>11s} {'ratio':>6s} {'goal':>5s} {'CPU 1':>6s} "
              f"{'CPU 2':>6s} {'per CPU s 2/1':>14s}")
        for name, cell, T, I, H, L, goal in ROWS:
            if T != 1:
                continue
            path = model_path(folder, cell, I, H, L)
            runs = {1: [], 2: []}
            for _ in range(5):
                for k in (1, 2):
                    time.sleep(0.1)
                    out = subprocess.run([bench, path, "threads", str(k), "1.0"], check=True, capture_output=True,
                                         text=True).stdout
                    runs[k].append([float(v) for v in out.split()])
            # per CPU second from the medians shown, so that the columns agree with each other
            (one, cpu1), (two, cpu2) = ([statistics.median(r[i] for r in runs[k]) for i in range(2)] for k in (1, 2))
            print(f"{name:26s} {one:11.0f} {two:11.0f} {two / one:6.2f} {1.7:5.1f} {cpu1:6.2f} {cpu2:6.2f} "
                  f"{(two / cpu2) / (one / cpu1):14.2f}", flush=True)

        host = os.path.join(build, "numrnn-run")
        path = model_path(folder, "LSTM", 16, 16, 2)
        out = subprocess.run([sys.executable, os.path.join(HERE, "c_overhead.py"), build, path], check=True,
                             capture_output=True, text=True).stdout.split()
        through, direct, diff, through_min, direct_min, diff_min = (float(v) for v in out)
        print(f"\nwhat C adds, 2-layer LSTM step H=16: numrnn_forward on a state against its compiled entry point "
              f"called directly, both through cffi in one process, 301 alternating blocks of 300 calls:\n"
              f"  medians {through:.2f} us against {direct:.2f} us, paired difference {diff:+.2f} us; fastest blocks "
              f"{through_min:.2f} against {direct_min:.2f} us ({diff_min:+.2f} us); goal <= 2 us")
        cold = first_output_s(host, path, 16, folder, ["NUMBA_CACHE_DIR=" + os.path.join(folder, "cold-cache")])
        warm = statistics.median(first_output_s(host, path, 16, folder) for _ in range(5))
        print(f"\nnew host process (env -i numrnn-run, 2-layer LSTM H=16) to first output: cold Numba cache "
              f"{cold:.1f} s (one run), warm {warm:.2f} s (median of 5)")


if __name__ == "__main__":
    main()
