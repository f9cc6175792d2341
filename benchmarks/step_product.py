"""The training kernels' per-step recurrent product in its orders (engine/step_product.py):
out = h @ W.T as OpenBLAS gets it (plain) against out.T = W @ h.T with both transposes (left), in
one BLAS call and in the bands of rows the kernels use where OpenBLAS has its small-matrix kernels
(left_rows), and against W packed in transposed bands, one BLAS call a band (packed, packed_rows),
for the forward's [B, H] x [H, G] and the backward's [B, G] x [G, H], one BLAS thread,
alternating block by block in one process; microseconds per product (medians) and each other
form / plain. The last column says which order the kernels take: p packed, b left in bands, l left
in one call, blank plain ("-": that form is not defined at this size).

usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python benchmarks/step_product.py [--rounds 11]
(this machine's env forces a slow OpenBLAS kernel through the first two variables)
"""
import argparse
import time

import numpy as np
from numba import njit

from numrnn.engine.step_product import (LEFT, PACKED, SMALL_MNK, backward_scratch, forward_scratch, left_matmul_t,
                                        left_rows, packed_matmul_t, packed_rows, scratch_order, step_matmul,
                                        step_matmul_t)

SIZES = [(128, 4), (256, 4), (512, 4)]          # hidden size, gates (G = gates * H)
ROWS = [1, 4, 8, 16, 24, 32, 64, 128]
REPS = 32
STEPS = 64      # the sequence length the last column's order is for (the default model's)


@njit
def products(out, a, w, w_plain, scratch, rows, packed, reps):
    """reps times out [M, N] = a [M, K] @ w.T for w [N, K]: plain as the kernels run it (rows == 0:
    step_matmul_t on w for the forward, step_matmul on w_plain = w.T for the backward, given when
    not empty), else in the left order, `rows` rows of w per BLAS call, or packed (w packed in
    the scratch the kernels make)."""
    for _ in range(reps):
        if rows == 0 and w_plain.size == 0:
            step_matmul_t(out, a, w, w[:0], scratch[:0])
        elif rows == 0:
            step_matmul(out, a, w_plain, w, scratch[:0])
        elif packed:
            packed_matmul_t(out, a, scratch, rows)
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
    print(f"{'H':>5}{'G':>6}{'B':>5}{'fwd plain':>11}{'left':>8}{'bands':>8}{'packed':>8}{'bwd plain':>11}{'left':>8}"
          f"{'bands':>8}{'packed':>8}   (others: / plain)")
    for H, gates in SIZES:
        G = gates * H
        w = (rng.standard_normal((G, H)) * 0.05).astype(dtype)     # [G, H] W_hh
        w_t = np.ascontiguousarray(w.T)                             # [H, G] the backward's weight
        for B in ROWS:
            h = rng.standard_normal((B, H)).astype(dtype)           # [B, H]
            dg = rng.standard_normal((B, G)).astype(dtype)          # [B, G]
            gh, dh = np.empty((B, G), dtype), np.empty((B, H), dtype)
            scratch = np.empty(H * B + G * B, dtype)
            forms = {}          # (direction, form) -> (weight as [N, K], the weight as [K, N] or empty, rows, packed)
            orders = {}         # direction -> the order the kernels take over STEPS steps
            none = w[:0, :0]
            x = np.zeros((STEPS, B, 1), dtype)
            for d, wd, plain, M, K, N, scratch_of in (("fwd", w, none, B, H, G, forward_scratch),
                                                      ("bwd", w_t, w, B, G, H, backward_scratch)):
                forms[d, "plain"] = (wd, plain, 0, None)
                forms[d, "left"] = (wd, plain, N, None)
                if left_rows(M, K, N, SMALL_MNK) < N:
                    forms[d, "bands"] = (wd, plain, left_rows(M, K, N, SMALL_MNK), None)
                kernels = scratch_of(x, M, w)
                orders[d] = scratch_order(kernels, M, K, N)
                if orders[d] == PACKED:
                    forms[d, "packed"] = (wd, plain, packed_rows(M, K, N, dtype.itemsize, SMALL_MNK), kernels)
            outs = {"fwd": (gh, h), "bwd": (dh, dg)}

            def runner(d, wd, plain, rows, packed):
                out, a = outs[d]
                return lambda: products(out, a, wd, plain, scratch if packed is None else packed, rows,
                                        packed is not None, REPS)
            runs = {key: runner(key[0], *form) for key, form in forms.items()}
            times = {k: [] for k in runs}
            for f in runs.values():
                f()
            for _ in range(args.rounds):
                for k, f in runs.items():
                    t0 = time.perf_counter()
                    f()
                    times[k].append((time.perf_counter() - t0) / REPS * 1e6)
            m = {k: float(np.median(v)) for k, v in times.items()}
            row = f"{H:>5}{G:>6}{B:>5}"
            taken = ""
            for d in ("fwd", "bwd"):
                row += f"{m[d, 'plain']:>11.1f}"
                for form in ("left", "bands", "packed"):
                    row += f"{m[d, form] / m[d, 'plain']:>8.2f}" if (d, form) in m else f"{'-':>8}"
                taken += {PACKED: "p", LEFT: "b" if (d, "bands") in m else "l"}.get(orders[d], " ")
            print(row + f" {taken}", flush=True)


if __name__ == "__main__":
    main()
