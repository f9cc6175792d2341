"""Cost of the C interface: one T=1, B=1 step of a 2-layer LSTM through libnumrnn.so against the
same call in Python (H=256, the figure asked for, and H=16, where the kernel is so cheap that the
interface's own cost shows), and a new host process's time to its first output.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/capi.py [BUILD_FOLDER]

BUILD_FOLDER (default build/) holds libnumrnn.so, numrnn-bench and numrnn-run from `cmake --build`.
The machine is shared, so the overhead is measured inside one process, where Python's call and
the C call alternate in blocks of 1000 calls (long enough that switching between the two copies
of the weights, which do not fit in L2 at H=256, costs little) and each keeps its best block: this script loads
libnumrnn.so with cffi (the library then runs in this interpreter) and subtracts the cost of a
cffi call of an empty C function. numrnn-bench, a C host, gives the same call from C as a check.
Start-up is the median of 5 runs of `env -i numrnn-run` with a warm Numba cache.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

import cffi
import numpy as np

import numrnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
L, BLOCK, ROUNDS = 2, 1000, 10
DECLARATIONS = """
typedef struct numrnn_model numrnn_model;
typedef struct numrnn_state numrnn_state;
int numrnn_model_open(const char *path, const char *device, numrnn_model **model);
int numrnn_state_new(numrnn_model *model, int64_t batch, numrnn_state **state);
int numrnn_forward(numrnn_model *model, numrnn_state *state, const float *x, int64_t seq_len,
                   int64_t batch, float *y, int64_t y_len);
const char *numrnn_version(void);
"""


def best_per_call_us(calls):
    """{name: best microseconds per call} of functions run in alternating blocks."""
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(ROUNDS):
        for name, fn in calls.items():
            start = time.perf_counter()
            for _ in range(BLOCK):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / BLOCK * 1e6)
    return best


def overhead(lib, ffi, model, layer):
    H = layer.hidden_size
    m, s = ffi.new("numrnn_model **"), ffi.new("numrnn_state **")
    assert lib.numrnn_model_open(model.encode(), b"cpu", m) == 0
    assert lib.numrnn_state_new(m[0], 1, s) == 0
    x = np.random.default_rng(0).standard_normal((1, 1, layer.input_size)).astype(np.float32)
    y = np.empty(H, np.float32)
    xp, yp = ffi.cast("float *", x.ctypes.data), ffi.cast("float *", y.ctypes.data)
    state = [None]

    def python():
        _, state[0] = layer(x, state[0])

    return best_per_call_us({
        "python": python,
        "c": lambda: lib.numrnn_forward(m[0], s[0], xp, 1, 1, yp, H),
        "empty": lib.numrnn_version,
    })


def first_output_s(host, model, size, folder):
    """Seconds from starting `env -i numrnn-run` until its first output line arrives."""
    np.savetxt(os.path.join(folder, "x.txt"), np.ones((1, size)))
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        proc = subprocess.Popen(["env", "-i", host, model, "--input", os.path.join(folder, "x.txt")],
                                stdout=subprocess.PIPE)
        proc.stdout.readline()
        runs.append(time.perf_counter() - start)
        proc.wait()
    return statistics.median(runs)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    ffi = cffi.FFI()
    ffi.cdef(DECLARATIONS)
    lib = ffi.dlopen(os.path.join(build, "libnumrnn.so"))
    print(f"LSTM, {L} layers, input = hidden = H, T=1 B=1, one call carrying the state; "
          f"microseconds per call")
    print(f"{'H':>5} {'Python':>9} {'via C':>9} {'C adds':>9} {'C host':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for H in (256, 16):
            layer = numrnn.LSTM(H, H, num_layers=L, seed=0).eval()
            model = os.path.join(folder, f"lstm{H}.safetensors")
            numrnn.save(layer, model)
            t = overhead(lib, ffi, model, layer)
            c_host = float(subprocess.run([os.path.join(build, "numrnn-bench"), model, "2000"], check=True,
                                          capture_output=True, text=True).stdout)
            adds = t["c"] - t["empty"] - t["python"]
            print(f"{H:5d} {t['python']:9.1f} {t['c']:9.1f} {adds:9.1f} {c_host:9.1f}")
        first = first_output_s(os.path.join(build, "numrnn-run"), model, H, folder)
    print("(via C: numrnn_forward called in this process; C adds: via C - Python - an empty cffi call;")
    print(" C host: numrnn-bench, a separate C program, best of 5 x 2000 calls)")
    print(f"new host process (env -i numrnn-run, H=16) to first output: {first:.2f} s (median of 5, "
          f"warm Numba cache)")


if __name__ == "__main__":
    main()
