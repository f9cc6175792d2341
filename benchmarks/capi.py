"""Cost of the C interface: one T=1, B=1 step of a 2-layer LSTM through libnumrnn.so against the
same call in Python (H=256, the figure asked for, and H=16, where the kernel is so cheap that the
interface's own cost shows), and a new host process's time to its first output.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/capi.py [BUILD_FOLDER]

BUILD_FOLDER (default build/) holds libnumrnn.so, numrnn-bench and numrnn-run from `cmake --build`.
The machine is shared and the kernel's own time drifts with the load, so the overhead is measured
inside one process, call by call: this script loads libnumrnn.so with cffi (the library then runs
in this interpreter), alternates one Python call and one C call, and reports the median of the
differences of adjacent calls (the C figure includes cffi's own call, ~0.3 us). numrnn-bench, a
separate C host, gives the C call's time as a check. Start-up is the median of 5 runs of
`env -i numrnn-run` with a warm Numba cache.
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
L = 2
DECLARATIONS = """
typedef struct numrnn_model numrnn_model;
typedef struct numrnn_state numrnn_state;
int numrnn_model_open(const char *path, const char *device, numrnn_model **model);
int numrnn_state_new(numrnn_model *model, int64_t batch, numrnn_state **state);
int numrnn_forward(numrnn_model *model, numrnn_state *state, const float *x, int64_t seq_len,
                   int64_t batch, float *y, int64_t y_len);
"""


def paired_us(layer, lib, ffi, model, pairs=3000, skip=300):
    """Medians over adjacent pairs: (Python call, C call, C - Python), in microseconds."""
    H = layer.hidden_size
    m, s = ffi.new("numrnn_model **"), ffi.new("numrnn_state **")
    assert lib.numrnn_model_open(model.encode(), b"cpu", m) == 0
    assert lib.numrnn_state_new(m[0], 1, s) == 0
    x = np.random.default_rng(0).standard_normal((1, 1, layer.input_size)).astype(np.float32)
    y = np.empty(H, np.float32)
    xp, yp = ffi.cast("float *", x.ctypes.data), ffi.cast("float *", y.ctypes.data)
    state, clock, py, c = None, time.perf_counter_ns, [], []
    for i in range(pairs):
        t0 = clock()
        _, state = layer(x, state)
        t1 = clock()
        lib.numrnn_forward(m[0], s[0], xp, 1, 1, yp, H)
        t2 = clock()
        if i >= skip:
            py.append(t1 - t0)
            c.append(t2 - t1)
    diff = [b - a for a, b in zip(py, c)]
    return tuple(statistics.median(v) / 1e3 for v in (py, c, diff))


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
            model = os.path.join(folder, f"lstm{H}.safetensors")
            numrnn.save(numrnn.LSTM(H, H, num_layers=L, seed=0), model)
            layer = numrnn.load(model).eval()
            py, c, adds = paired_us(layer, lib, ffi, model)
            c_host = float(subprocess.run([os.path.join(build, "numrnn-bench"), model, "2000"], check=True,
                                          capture_output=True, text=True).stdout)
            print(f"{H:5d} {py:9.1f} {c:9.1f} {adds:9.1f} {c_host:9.1f}")
        first = first_output_s(os.path.join(build, "numrnn-run"), model, H, folder)
    print("(Python, via C, C adds: medians over 2700 adjacent pairs of calls in this process;")
    print(" C host: numrnn-bench, a separate C program, best of 5 x 2000 calls)")
    print(f"new host process (env -i numrnn-run, H=16) to first output: {first:.2f} s (median of 5, "
          f"warm Numba cache)")


if __name__ == "__main__":
    main()
