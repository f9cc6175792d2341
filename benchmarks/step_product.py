"""The training kernels' per-step recurrent product in its orders (engine/step_product.py):
out = h @ W.T as OpenBLAS gets it (plain) against out.T = W @ h.T with both transposes (left), in
one BLAS call and in the bands of rows the kernels use where OpenBLAS has its small-matrix kernels
(left_rows), for the forward's [B, H] x [H, G] and the backward's [B, G] x [G, H], one BLAS
thread, alternating block by block in one process; microseconds per product (medians) and each
left form / plain. A * marks the sizes where the kernels take the left order, a b where they take
it in bands ("-" in the bands columns: one call is what they take there).

usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python benchmarks/step_product.py [--rounds 11]
(this machine's env forces a slow OpenBLAS kernel through the first two variables)
"""
import argparse
import time

import numpy as np
from numba import njit

from numrnn.engine.step_product import SMALL_MNK, left_matmul_t, left_rows, left_scratch, step_matmul, step_matmul_t

SIZES = [(128, 4), (256, 4), (512, 4)]          # hidden size, gates (G = gates * H)
ROWS = [1, 4, 16, 32, 64, 128]
REPS = 32


@njit
def products(out, a, w, w_plain, scratch, rows, reps):
    """reps times out [M, N] = a [M, K] @ w.T for w [N, K]: plain as the kernels run it (rows == 0:
    step_matmul_t on w for the forward, step_matmul on w_plain = w.T for the backward, given when
    not empty), else in the left order, `rows` rows of w per BLAS call."""
    for _ in range(reps):
        if rows == 0 and w_plain.size == 0:
            step_matmul_t(out, a, w, w[:0], scratch[:0])
        elif rows == 0:
            step_matmul(out, a, w_plain, w, scratch[:0])
        else:
            left_matmul_t(out, a, w, scratch, rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = p.parse_args()
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    print(f"{args.dtype}, {REPS} products a block, medians of {args.rounds} alternating blocks, microseconds; "
          f"bands where OpenBLAS has small-matrix kernels: {'yes' if SMALL_MNK else 'no'}")
    print(f"{'H':>5}{'G':>6}{'B':>5}{'fwd plain':>11}{'left':>8}{'bands':>8}{'bwd plain':>11}{'left':>8}{'bands':>8}"
          f"   (left and bands: / plain)")
    for H, gates in SIZES:
        G = gates * H
        w = (rng.standard_normal((G, H)) * 0.05).astype(dtype)     # [G, H] W_hh
        w_t = np.ascontiguousarray(w.T)                             # [H, G] the backward's weight
        for B in ROWS:
            h = rng.standard_normal((B, H)).astype(dtype)           # [B, H]
            dg = rng.standard_normal((B, G)).astype(dtype)          # [B, G]
            gh, dh = np.empty((B, G), dtype), np.empty((B, H), dtype)
            scratch = np.empty(H * B + G * B, dtype)
            bands = {"fwd": left_rows(B, H, G, SMALL_MNK), "bwd": left_rows(B, G, H, SMALL_MNK)}
            none = w[:0, :0]
            runs = {"fwd plain": lambda: products(gh, h, w, none, scratch, 0, REPS),
                    "fwd left": lambda: products(gh, h, w, none, scratch, G, REPS),
                    "fwd bands": lambda: products(gh, h, w, none, scratch, bands["fwd"], REPS),
                    "bwd plain": lambda: products(dh, dg, w_t, w, scratch, 0, REPS),
                    "bwd left": lambda: products(dh, dg, w_t, w, scratch, H, REPS),
                    "bwd bands": lambda: products(dh, dg, w_t, w, scratch, bands["bwd"], REPS)}
            times = {k: [] for k in runs}
            for f in runs.values():
                f()
            for _ in range(args.rounds):
                for k, f in runs.items():
                    t0 = time.perf_counter()
                    f()
                    times[k].append((time.perf_counter() - t0) / REPS * 1e6)
            m = {k: float(np.median(v)) for k, v in times.items()}
            taken = "*" if left_scratch(h, B, H, G).size else " "
            taken += "b" if taken == "*" and (bands["fwd"] < G or bands["bwd"] < H) else " "
            row = f"{H:>5}{G:>6}{B:>5}"
            for d, full in (("fwd", G), ("bwd", H)):
                band = f"{m[d + ' bands'] / m[d + ' plain']:>8.2f}" if bands[d] < full else f"{'-':>8}"
                row += f"{m[d + ' plain']:>11.1f}{m[d + ' left'] / m[d + ' plain']:>8.2f}{band}"
            print(row + f" {taken}", flush=True)


if __name__ == "__main__":
    main()
