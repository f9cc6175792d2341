"""GPU benchmark: numrnn's CUDA engine against PyTorch's cuDNN path on the same GPU.

Times forward and forward+backward for LSTM/GRU/RNN at batch 64, hidden 512 and at batch 8, and
prints numrnn's time over cuDNN's (goals: <= 1.0x at batch 64, <= 0.5x at batch <= 8).
Needs a CUDA GPU, numba-cuda and a CUDA build of torch; otherwise it says what is missing and exits 2.
usage: python benchmarks/gpu.py [--T 100] [--repeat 10]
"""
import argparse
import sys
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    from numrnn.device import cuda_problem
    problem = cuda_problem()
    try:
        import torch
        if problem is None and not torch.cuda.is_available():
            problem = "torch has no CUDA device (a CUDA build of torch is needed for the cuDNN reference)"
    except ImportError:
        problem = problem or "torch is not installed"
    if problem:
        print(f"benchmarks/gpu.py: not run: {problem}")
        return 2
    from numba import cuda

    import numrnn
    for cell in ("LSTM", "GRU", "RNN"):
        for B, H in ((64, 512), (8, 512)):
            T, I = args.T, H
            ours = getattr(numrnn, cell)(I, H, device="cuda", dtype=np.float32, seed=0)
            ref = getattr(torch.nn, cell)(I, H).cuda()
            ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
            x = torch.randn(T, B, I, device="cuda")
            dout = torch.randn(T, B, H, device="cuda")

            def run_ours(backward):
                ours(x)
                if backward:
                    ours.backward(dout)
                cuda.synchronize()

            def run_ref(backward):
                xr = x.requires_grad_(backward)
                out = ref(xr)[0]
                if backward:
                    out.backward(dout)
                torch.cuda.synchronize()

            for backward in (False, True):
                times = []
                for fn in (run_ours, run_ref):
                    fn(backward)
                    t0 = time.perf_counter()
                    for _ in range(args.repeat):
                        fn(backward)
                    times.append((time.perf_counter() - t0) / args.repeat)
                print(f"{cell:4s} B={B:3d} H={H} T={T} {'fwd+bwd' if backward else 'fwd    '}  "
                      f"numrnn {times[0] * 1e3:8.2f} ms  cuDNN {times[1] * 1e3:8.2f} ms  "
                      f"ratio {times[0] / times[1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
