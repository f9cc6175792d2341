"""CPU speed of numrnn against PyTorch and ONNX Runtime.

Each row times numrnn, PyTorch (and ONNX Runtime for inference rows) on the same sizes, float32,
2 threads each, interleaved round by round (the machine's load drifts, so the contenders share
it), and prints medians, the ratio numrnn / peer and the goal from the CPU-speed issue.
The rows with an ONNX Runtime goal (B=1 inference, numrnn in eval mode: the compiled inference
path, split over 2 threads with eval(threads=2) like its peers' 2) run each contender in its own process (benchmarks/interleave.py): in one process the
libraries' spinning thread pools slow each other's millisecond calls several-fold.
Training = forward + backward with random upstream gradients (PyTorch: autograd backward).
The rows timed in this process run numrnn's products on 2 BLAS threads (set_blas_threads(2)),
as PyTorch runs on 2; numrnn's own default is one (numrnn/blas.py).

usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/cpu.py [--quick] [--rows N,...]
(this machine's env forces a slow OpenBLAS kernel through those two variables)
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

import numrnn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# name, cell, mode, T, B, I, H, layers, bidirectional, goal vs torch, goal vs ORT
ROWS = [
    ("LSTM train", "LSTM", "train", 100, 64, 256, 256, 1, False, 1.0, None),
    ("GRU train", "GRU", "train", 100, 64, 256, 256, 1, False, 0.8, None),
    ("RNN tanh train", "RNN", "train", 100, 64, 256, 256, 1, False, 0.8, None),
    ("2-layer LSTM train H=512", "LSTM", "train", 50, 32, 128, 512, 2, False, 1.0, None),
    ("bidir 2-layer LSTM train", "LSTM", "train", 100, 32, 256, 256, 2, True, 1.0, None),
    ("LSTM inference B=1", "LSTM", "infer", 100, 1, 64, 128, 1, False, 0.5, 0.8),
    ("GRU inference B=1", "GRU", "infer", 100, 1, 64, 128, 1, False, 0.5, 0.8),
    ("2-layer LSTM step T=1 B=1", "LSTM", "infer", 1, 1, 256, 256, 2, False, 0.5, 0.8),
    ("LSTM forward", "LSTM", "infer", 100, 64, 256, 256, 1, False, None, None),
    ("GRU forward", "GRU", "infer", 100, 64, 256, 256, 1, False, None, None),
    ("RNN tanh forward", "RNN", "infer", 100, 64, 256, 256, 1, False, None, None),
]


def onnx_gru_session(T, B, I, H):
    """ONNX Runtime GRU (linear_before_reset=1, PyTorch's form) with random weights."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    k = 1 / np.sqrt(H)
    W = rng.uniform(-k, k, (1, 3 * H, I)).astype(np.float32)
    R = rng.uniform(-k, k, (1, 3 * H, H)).astype(np.float32)
    Bias = rng.uniform(-k, k, (1, 6 * H)).astype(np.float32)
    f32 = TensorProto.FLOAT
    node = helper.make_node("GRU", ["X", "W", "R", "B", "", "h0"], ["Y", "Yh"], hidden_size=H, linear_before_reset=1)
    graph = helper.make_graph([node], "gru", [helper.make_tensor_value_info("X", f32, None),
                                              helper.make_tensor_value_info("h0", f32, None)],
                              [helper.make_tensor_value_info("Y", f32, None), helper.make_tensor_value_info("Yh", f32, None)],
                              [numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (Bias, "B"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    return onnxruntime.InferenceSession(model.SerializeToString(), ort_options(), providers=["CPUExecutionProvider"])


def ort_options():
    import onnxruntime
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    return opts


def contenders(row):
    """{name: zero-argument callable that runs the workload once}."""
    _, cell, mode, T, B, I, H, L, bi, _, goal_ort = row
    D = 2 if bi else 1
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dout = rng.standard_normal((T, B, D * H)).astype(np.float32)
    nm = getattr(numrnn, cell)(I, H, num_layers=L, bidirectional=bi, seed=0)
    tm = getattr(torch.nn, cell)(I, H, num_layers=L, bidirectional=bi)
    tx, tdout = torch.tensor(x), torch.tensor(dout)
    runs = {}
    if mode == "train":
        def numrnn_train():
            out, _ = nm(x)
            nm.backward(dout)

        def torch_train():
            tm.zero_grad(set_to_none=False)
            xr = tx.clone().requires_grad_(True)
            out, _ = tm(xr)
            out.backward(tdout)
        runs["numrnn"], runs["torch"] = numrnn_train, torch_train
    else:
        nm.eval(threads=2)      # 2 threads, as its peers have (only calls of B <= 8 split)

        def torch_infer():
            with torch.no_grad():
                tm(tx)
        runs["numrnn"], runs["torch"] = (lambda: nm(x)), torch_infer
    if goal_ort is not None:
        h0 = np.zeros((D, B, H), np.float32)
        if cell == "LSTM":
            import onnx_lstm
            import onnxruntime
            sess = onnxruntime.InferenceSession(onnx_lstm.lstm_model(nm).SerializeToString(), ort_options(),
                                                providers=["CPUExecutionProvider"])
            feeds = {"X": x, "sequence_lens": np.full(B, T, np.int32)}
            for k in range(L):
                feeds[f"h0_{k}"] = feeds[f"c0_{k}"] = h0
        else:
            sess = onnx_gru_session(T, B, I, H)
            feeds = {"X": x, "h0": h0}
        runs["onnxruntime"] = lambda: sess.run(None, feeds)
    return runs


def contender(row_index, who):
    """One contender of a row, for a worker process (benchmarks/interleave.py). numrnn runs with
    BLAS on one thread, as the CLI and the C interface do."""
    if who == "numrnn":
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba calls: loaded, so that the limit reaches it)
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=1, user_api="blas")
    return contenders(ROWS[row_index])[who]


def measure(runs, rounds, min_time):
    """Median seconds per call of each contender, timed round-robin. Each sample repeats the call
    until it lasts at least min_time, so microsecond calls are not lost in timer noise."""
    for f in runs.values():   # warm-up: compile, allocate, plan
        f()
        f()
    reps = {}
    for name, f in runs.items():
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < min_time:
            f()
            n += 1
        reps[name] = max(1, n)
    samples = {name: [] for name in runs}
    for _ in range(rounds):
        for name, f in runs.items():
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                f()
            samples[name].append((time.perf_counter() - t0) / reps[name])
    return {name: statistics.median(s) for name, s in samples.items()}


# Peak memory of one training step, in a fresh process per contender: after a warm-up step (compile,
# allocator pools), reset the kernel's peak-RSS mark (/proc/self/clear_refs "5") and report how far
# one more step raises RSS above where it started. RSS counts every allocator alike (NumPy's,
# PyTorch's, oneDNN's scratch), which tracemalloc or torch's profiler alone would not. glibc's mmap
# threshold is pinned at 128 KiB so big arrays go back to the OS when freed; otherwise a freed
# buffer's pages stay resident, are reused next step, and the rise would read as near zero.
MEMORY_STEP = r"""
import sys, numpy as np
cell, who = sys.argv[1], sys.argv[2]
T, B, I, H = 100, 64, 256, 256
rng = np.random.default_rng(1)
x = rng.standard_normal((T, B, I)).astype(np.float32)
dout = rng.standard_normal((T, B, H)).astype(np.float32)
if who == "numrnn":
    import numrnn
    m = getattr(numrnn, cell)(I, H, seed=0)
    def step():
        m(x)
        m.backward(dout)
else:
    import torch
    torch.set_num_threads(2)
    m = getattr(torch.nn, cell)(I, H)
    tx, td = torch.tensor(x), torch.tensor(dout)
    def step():
        m.zero_grad(set_to_none=False)
        out, _ = m(tx.clone().requires_grad_(True))
        out.backward(td)
def kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
step()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = kib("VmRSS")
step()
print((kib("VmHWM") - base) / 1024)
"""

# Warm start: a fresh interpreter imports numrnn and runs a first forward (kernels from the disk cache).
WARM_START = r"""
import time
t0 = time.perf_counter()
import numpy as np
import numrnn
m = numrnn.LSTM(64, 128, seed=0)
m(np.ones((10, 1, 64), np.float32))
print(time.perf_counter() - t0)
"""


def in_fresh_process(code, *args):
    import subprocess
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, env=env)
    return float(out.stdout.split()[-1])


def memory_and_start(rounds):
    """Peak-RSS rise of a training step (numrnn vs PyTorch, T=100 B=64 I=256 H=256) and warm start."""
    print("\npeak RSS rise of one training step (fresh process each, median of "
          f"{rounds}), T=100 B=64 I=256 H=256:")
    for cell in ("LSTM", "GRU", "RNN"):
        mib = {who: statistics.median(in_fresh_process(MEMORY_STEP, cell, who) for _ in range(rounds))
               for who in ("numrnn", "torch")}
        print(f"  {cell:4s}  numrnn {mib['numrnn']:7.1f} MiB   torch {mib['torch']:7.1f} MiB   "
              f"ratio {mib['numrnn'] / mib['torch']:5.2f}   goal  1.0")
    in_fresh_process(WARM_START)   # fills the compile cache if it is cold
    warm = statistics.median(in_fresh_process(WARM_START) for _ in range(rounds))
    print(f"warm start (import numrnn + first LSTM forward, fresh process): {warm:.2f} s   goal < 1.5 s")


def fmt_time(s):
    return f"{s * 1e3:9.3f} ms" if s >= 1e-3 else f"{s * 1e6:9.1f} us"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a rough table in about a minute)")
    ap.add_argument("--rows", default="", help="comma-separated row numbers to run (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    numrnn.set_blas_threads(2)      # its products on 2 threads as PyTorch's (numrnn's default is one: blas.py)
    rounds, min_time = (3, 0.05) if args.quick else (9, 0.2)
    rows = [ROWS[int(i)] for i in args.rows.split(",")] if args.rows else ROWS
    from threadpoolctl import threadpool_info
    blas = sorted({f"{i['internal_api']} {i.get('architecture')} x{i['num_threads']}" for i in threadpool_info()
                   if i["user_api"] == "blas"})
    print(f"numrnn {numrnn.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"BLAS: {', '.join(blas)}; {rounds} interleaved rounds, medians, float32")
    head = f"{'workload':28s} {'T':>4s} {'B':>3s} {'I':>4s} {'H':>4s} {'numrnn':>12s} {'torch':>12s} {'ratio':>6s} {'goal':>5s}"
    print(head + f" {'onnxrt':>12s} {'ratio':>6s} {'goal':>5s}")
    for row in rows:
        name, cell, mode, T, B, I, H, L, bi, goal_torch, goal_ort = row
        if goal_ort is not None:
            from interleave import interleaved, python_worker
            t = interleaved({who: python_worker("cpu", "contender", ROWS.index(row), who)
                             for who in ("numrnn", "torch", "onnxruntime")}, rounds=2 * rounds)
        else:
            t = measure(contenders(row), rounds, min_time)
        r = t["numrnn"] / t["torch"]
        line = (f"{name:28s} {T:4d} {B:3d} {I:4d} {H:4d} {fmt_time(t['numrnn'])} {fmt_time(t['torch'])} {r:6.2f} "
                f"{'' if goal_torch is None else f'{goal_torch:.1f}':>5s}")
        if "onnxruntime" in t:
            line += f" {fmt_time(t['onnxruntime'])} {t['numrnn'] / t['onnxruntime']:6.2f} {goal_ort:5.1f}"
        print(line, flush=True)
    if not args.rows:
        memory_and_start(rounds)


if __name__ == "__main__":
    main()
