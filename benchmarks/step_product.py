"""The training kernels' per-step recurrent product in its two orders (engine/step_product.py):
out = h @ W.T as OpenBLAS gets it (plain) against out.T = W @ h.T with both transposes (left),
for the forward's [B, H] x [H, G] and the backward's [B, G] x [G, H], one BLAS thread,
alternating block by block in one process; microseconds per product (medians) and left / plain.
A * marks the sizes where the kernels take the left order.

usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python benchmarks/step_product.py [--rounds 11]
(this machine's env forces a slow OpenBLAS kernel through the first two variables)
"""
import argparse
import time

import numpy as np
from numba import njit

from numrnn.engine.step_product import backward_weight, left_scratch, step_matmul, step_matmul_t

SIZES = [(128, 4), (256, 4), (512, 4)]          # hidden size, gates (G = gates * H)
ROWS = [1, 4, 16, 32, 64, 128]
REPS = 32


@njit
def forward_products(out, h, w, left, reps):
    for _ in range(reps):
        step_matmul_t(out, h, w, w[:0], left)


@njit
def backward_products(out, dg, w, w_t, left, reps):
    for _ in range(reps):
        step_matmul(out, dg, w, w_t, left)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = p.parse_args()
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    none = np.empty(0, dtype)
    print(f"{args.dtype}, {REPS} products a block, medians of {args.rounds} alternating blocks, microseconds")
    print(f"{'H':>5}{'G':>6}{'B':>5}{'fwd plain':>11}{'fwd left':>10}{'ratio':>7}{'bwd plain':>11}{'bwd left':>10}{'ratio':>7}")
    for H, gates in SIZES:
        G = gates * H
        w = (rng.standard_normal((G, H)) * 0.05).astype(dtype)     # [G, H] W_hh
        for B in ROWS:
            h = rng.standard_normal((B, H)).astype(dtype)           # [B, H]
            dg = rng.standard_normal((B, G)).astype(dtype)          # [B, G]
            gh, dh = np.empty((B, G), dtype), np.empty((B, H), dtype)
            fwd_left = np.empty(H * B + G * B, dtype)
            bwd_left = np.empty(G * B + H * B, dtype)
            w_t = backward_weight(w, bwd_left)                       # [H, G]
            runs = {"fwd plain": lambda: forward_products(gh, h, w, none, REPS),
                    "fwd left": lambda: forward_products(gh, h, w, fwd_left, REPS),
                    "bwd plain": lambda: backward_products(dh, dg, w, w_t, none, REPS),
                    "bwd left": lambda: backward_products(dh, dg, w, w_t, bwd_left, REPS)}
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
            print(f"{H:>5}{G:>6}{B:>5}{m['fwd plain']:>11.1f}{m['fwd left']:>10.1f}{m['fwd left'] / m['fwd plain']:>7.2f}"
                  f"{m['bwd plain']:>11.1f}{m['bwd left']:>10.1f}{m['bwd left'] / m['bwd plain']:>7.2f} {taken}", flush=True)


if __name__ == "__main__":
    main()
