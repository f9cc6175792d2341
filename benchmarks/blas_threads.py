"""numrnn's BLAS thread default under shared cores (python/numrnn/blas.py), timed against the
alternatives on one adding-problem training step: LSTM T=50, B=64, I=2, H=64, Linear head on the
last output, MSE, gradient norm clipped to 1, Adam (examples/adding_problem.py's recipe).

Contenders, each in its own process (thread settings are per process):
  numrnn          numrnn's default: one BLAS thread inside its own products
  numrnn-blas     set_blas_threads(None): OpenBLAS's default, one thread per core
  torch           PyTorch with its default torch.get_num_threads()
with 0, 1 and 3 other busy processes (pure-Python loops) on the machine. The contenders run in
turn, round after round, so drifting load from elsewhere falls on all of them; each process
prints its median ms per step, and the table shows the median over rounds and the ratios to
numrnn's default measured in the same round.

usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/blas_threads.py [--rounds 3] [--steps 40]
(this machine's environment sets those two variables, which force a slow OpenBLAS kernel)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
T, B, H = 50, 64, 64
CONTENDERS = ("numrnn", "numrnn-blas", "torch")


def numrnn_step_fn():
    import numrnn
    from numrnn.losses import mse
    from numrnn.optim import Adam, clip_grad_norm
    rnn, head = numrnn.LSTM(2, H, seed=0), numrnn.Linear(H, 1, seed=1)
    opt = Adam([rnn, head], lr=1e-2)

    def step(x, y):
        out = rnn(x)[0]                          # [T, B, H]
        loss, dpred = mse(head(out[-1]), y)
        opt.zero_grad()
        dout = np.zeros_like(out)
        dout[-1] = head.backward(dpred)
        rnn.backward(dout)
        clip_grad_norm([rnn, head], 1.0)
        opt.step()
    return step


def torch_step_fn():
    import torch
    rnn, head = torch.nn.LSTM(2, H), torch.nn.Linear(H, 1)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)

    def step(x, y):
        opt.zero_grad()
        out = rnn(torch.from_numpy(x))[0]
        loss = torch.nn.functional.mse_loss(head(out[-1]), torch.from_numpy(y))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    return step


def child(name, steps):
    """Median seconds per step of one contender, after warm-up steps."""
    sys.path.insert(0, os.path.join(HERE, "..", "examples"))
    from adding_problem import adding_batch
    if name == "numrnn-blas":
        import numrnn
        numrnn.set_blas_threads(None)
    step = torch_step_fn() if name == "torch" else numrnn_step_fn()
    rng = np.random.default_rng(0)
    batches = [adding_batch(rng, T, B) for _ in range(steps + 5)]
    times = []
    for i, (x, y) in enumerate(batches):
        t0 = time.perf_counter()
        step(x, y)
        if i >= 5:
            times.append(time.perf_counter() - t0)
    print(json.dumps(statistics.median(times)))


def run_child(name, steps):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    out = subprocess.run([sys.executable, __file__, "--child", name, "--steps", str(steps)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--busy", default="0,1,3", help="numbers of busy processes, comma-separated")
    p.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child, args.steps)
    blas_env = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMRNN_BLAS_THREADS")
                if k in os.environ}
    if blas_env:
        sys.exit(f"unset {', '.join(blas_env)} first: they change the defaults being measured")
    for name in CONTENDERS:       # compile numrnn's kernels, load torch: first runs are not timed
        run_child(name, 2)
    print(f"{os.cpu_count()} cores; LSTM T={T} B={B} H={H} Adam step, ms (median of {args.rounds} rounds); "
          f"ratio = contender / numrnn default in the same round")
    print(f"{'busy':>4}  " + "  ".join(f"{n:>18}" for n in CONTENDERS))
    for busy in (int(b) for b in args.busy.split(",")):
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            rounds = [{n: run_child(n, args.steps) for n in CONTENDERS} for _ in range(args.rounds)]
        finally:
            for h in hogs:
                h.kill()
                h.wait()
        cells = []
        for n in CONTENDERS:
            ms = statistics.median(r[n] for r in rounds) * 1e3
            ratio = statistics.median(r[n] / r["numrnn"] for r in rounds)
            cells.append(f"{ms:7.1f} ({ratio:4.2f}x)")
        print(f"{busy:>4}  " + "  ".join(f"{c:>18}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
