"""The adding problem (examples/adding_problem.py) trained data-parallel on MPI processes with
numrnn.distributed: a hand-written loop, one process per share of each batch.

Every rank draws the same global batch from the same seed and runs its columns of it; after
backward, average_gradients sums each block's flat gradient buffer over the ranks (one allreduce
per block) and divides by their number, so clipping and Adam take the same step on every rank and
the weights stay identical. The result equals one process training on the whole batch, to
rounding. Rank 0 prints. Needs `pip install 'numrnn[mpi]'`:

    mpiexec -n 2 python examples/adding_problem_mpi.py [--cell lstm] [--steps 1000] [--every 250]
    python examples/adding_problem_mpi.py        # the same loop in one process, for comparison
"""
import argparse
import time

import numpy as np

import numrnn
from adding_problem import adding_batch
from numrnn import distributed
from numrnn.losses import mse
from numrnn.optim import Adam, clip_grad_norm


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="lstm")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--seq-len", type=int, default=50)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch, over all processes")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    comm = distributed.world()           # None when not started by mpiexec (or with -n 1)
    rank, size = (comm.rank, comm.size) if comm else (0, 1)
    if args.batch_size % size:
        raise SystemExit(f"--batch-size {args.batch_size} must divide over {size} processes")
    columns = comm.share(args.batch_size) if comm else slice(None)

    rnn = {"rnn": numrnn.RNN, "lstm": numrnn.LSTM, "gru": numrnn.GRU}[args.cell](2, args.hidden_size, seed=args.seed)
    head = numrnn.Linear(args.hidden_size, 1, seed=args.seed + 1)
    blocks = [rnn, head]
    if comm:
        comm.broadcast_parameters(blocks)      # the same start on every rank
    opt = Adam(blocks, lr=args.lr)
    rng = np.random.default_rng(args.seed)     # the same stream of global batches on every rank
    val_x, val_y = adding_batch(np.random.default_rng(12345), args.seq_len, 1000)

    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = adding_batch(rng, args.seq_len, args.batch_size)
        x, y = x[:, columns], y[columns]              # this rank's share [T, b, 2], [b, 1]
        out = rnn(x)[0]                               # [T, b, H]
        loss, dpred = mse(head(out[-1]), y)
        opt.zero_grad()
        dout = np.zeros_like(out)
        dout[-1] = head.backward(dpred)
        rnn.backward(dout)
        if comm:
            comm.average_gradients(blocks)
            loss = comm.sum([loss])[0] / size         # the global batch's loss
        clip_grad_norm(blocks, 1.0)
        opt.step()
        if step % args.every == 0 and rank == 0:
            rnn.eval()
            val = mse(head(rnn(val_x)[0][-1]), val_y)[0]
            rnn.train()
            print(f"{args.cell} step {step:>5}  train MSE {loss:.5f}  val MSE {val:.5f}  "
                  f"({size} process{'es' if size > 1 else ''}, {time.perf_counter() - t0:.1f}s)", flush=True)


if __name__ == "__main__":
    main()
