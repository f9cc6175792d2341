"""The small-batch product: engine/matvec.py's axpy form against OpenBLAS, per product
[B, H] x [H, 4H] (an LSTM step's recurrent product), float32, one BLAS thread; checks each result
against NumPy's first.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/matvec.py [H,...] [B,...]

Prints microseconds per product (best of 7 runs of many, alternating) and the ratio axpy / OpenBLAS.
"""
import sys
import time

import numpy as np
from numba import njit

from numrnn.blas import blas_pools
from numrnn.engine.matvec import matmul_t_axpy


@njit(cache=True)
def _blas(out, a, w, reps):
    for _ in range(reps):
        np.dot(a, w.T, out)


@njit(cache=True)
def _axpy(out, a, w_t, reps):
    for _ in range(reps):
        matmul_t_axpy(out, a, w_t)


def main():
    Hs = [int(v) for v in sys.argv[1].split(",")] if len(sys.argv) > 1 else [16, 32, 64, 128, 256]
    Bs = [int(v) for v in sys.argv[2].split(",")] if len(sys.argv) > 2 else [1, 2, 4, 8]
    blas_pools().limit(limits=1)
    print(f"{'H':>4s} {'B':>2s} {'OpenBLAS us':>12s} {'axpy us':>8s} {'ratio':>6s}")
    rng = np.random.default_rng(0)
    for H in Hs:
        for B in Bs:
            w = rng.standard_normal((4 * H, H)).astype(np.float32)
            w_t = np.ascontiguousarray(w.T)
            a = rng.standard_normal((B, H)).astype(np.float32)
            out = np.empty((B, 4 * H), np.float32)
            want = a.astype(np.float64) @ w.T.astype(np.float64)
            for fn, arg in ((_blas, w), (_axpy, w_t)):
                out[:] = np.nan
                fn(out, a, arg, 1)
                assert np.linalg.norm(out - want) <= 1e-5 * np.linalg.norm(want), fn
            reps = max(10, int(1e7 / (4 * H * H * B)))
            best = {}
            for _ in range(7):
                for fn, arg in ((_blas, w), (_axpy, w_t)):
                    t = time.perf_counter()
                    fn(out, a, arg, reps)
                    best[fn] = min(best.get(fn, np.inf), (time.perf_counter() - t) / reps * 1e6)
            print(f"{H:4d} {B:2d} {best[_blas]:12.2f} {best[_axpy]:8.2f} {best[_axpy] / best[_blas]:6.2f}", flush=True)


if __name__ == "__main__":
    main()
