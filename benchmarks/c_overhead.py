"""What the C half adds to the compiled call: numrnn_forward on a state against the same compiled
entry point (engine/infer_c.py's c_forward, by its address) called directly on arrays of the same
sizes, in one process, in alternating blocks of calls; benchmarks/capi.py runs it.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/c_overhead.py BUILD_FOLDER MODEL

Both are called through cffi (ABI mode, the GIL released as for any C call), so the call's own
cost from Python is in both and drops out of the difference. Not run under pytest; no PyTorch
in this process (loading libnumrnn.so after PyTorch aborted in numrnn_model_open).
Prints microseconds per call: the medians over alternating blocks through numrnn_forward and
direct, the median of the blocks' paired differences, then the same three from each's fastest
block (the least disturbed by the machine's other load).
"""
import os
import statistics
import sys
import time

import cffi
import numpy as np

import numrnn
from numrnn import inference
from numrnn.engine import infer, infer_c

CDEF = """typedef struct numrnn_model numrnn_model;
typedef struct numrnn_state numrnn_state;
int numrnn_model_open(const char *path, const char *device, numrnn_model **model);
int numrnn_state_new(numrnn_model *model, int64_t batch, numrnn_state **state);
int numrnn_forward(numrnn_model *model, numrnn_state *state, const float *x, int64_t seq_len,
                   int64_t batch, float *y, int64_t y_len);
void numrnn_state_free(numrnn_state *state);
void numrnn_model_close(numrnn_model *model);
const char *numrnn_last_error(void);"""
FEATURES = "int64_t(*)(int64_t *, float *, float *, float *, float *, int64_t *, float *, int64_t, int64_t, float *)"


def main(build, path, blocks=301, calls=300):
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    lib = ffi.dlopen(os.path.join(build, "libnumrnn.so"))
    m, s = ffi.new("numrnn_model **"), ffi.new("numrnn_state **")
    block = numrnn.load(path).eval()
    if lib.numrnn_model_open(path.encode(), b"cpu", m) or lib.numrnn_state_new(m[0], 1, s):
        sys.exit("c_overhead: " + ffi.string(lib.numrnn_last_error()).decode())
    LD, H, P, I = block.num_layers * block.num_directions, block.hidden_size, block.out_size, block.input_size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, I)).astype(np.float32)
    y = np.empty((1, 1, block.num_directions * P), np.float32)
    # the direct call's own arrays, made as the Python half makes the C half's
    meta = inference.describe(block)
    weights = np.concatenate([block.flat_params, inference.transposed(block, meta)])
    h, c = np.zeros((LD, 1, P), np.float32), np.zeros((LD, 1, H), np.float32)
    work = np.empty(infer.workspace_size(meta, 1, 1), np.float32)
    lengths = np.ones(1, np.int64)

    def ptr(kind, a):
        return ffi.cast(kind + " *", a.ctypes.data)
    xp, yp = ptr("float", x), ptr("float", y)
    direct = ffi.cast(FEATURES, infer_c.entry(infer_c.c_forward).address)
    dargs = (ptr("int64_t", meta), ptr("float", weights), ptr("float", h), ptr("float", c), ptr("float", work),
             ptr("int64_t", lengths), xp, 1, 1, yp)
    forward, model, state = lib.numrnn_forward, m[0], s[0]
    if forward(model, state, xp, 1, 1, yp, y.size) or direct(*dargs) != infer_c.DONE:
        sys.exit("c_overhead: " + ffi.string(lib.numrnn_last_error()).decode())
    def timed(fn, args):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(*args)
        return (time.perf_counter() - t0) / calls * 1e6
    through_args = (model, state, xp, 1, 1, yp, y.size)
    through, bare = [], []
    for i in range(blocks):     # the pair's order alternates, so a drift in load favours neither
        if i % 2:
            through.append(timed(forward, through_args))
            bare.append(timed(direct, dargs))
        else:
            bare.append(timed(direct, dargs))
            through.append(timed(forward, through_args))
    diffs = [t - d for t, d in zip(through, bare)]
    print(f"{statistics.median(through):.3f} {statistics.median(bare):.3f} {statistics.median(diffs):.3f} "
          f"{min(through):.3f} {min(bare):.3f} {min(through) - min(bare):.3f}")
    lib.numrnn_state_free(state)
    lib.numrnn_model_close(model)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
