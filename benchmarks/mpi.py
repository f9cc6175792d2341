"""Data-parallel training on MPI (numrnn.distributed): tokens per second of `numrnn train`'s step at
the default model (LSTM, embedding 32, hidden 256, seq-len 64, global batch 32, Adam, clip 1,
built-in corpus, random sampling) on 1 process and on `mpiexec -n 2`, every process on one BLAS
thread; the allreduce time per step and its share of the step; and the scaling this predicts for
more machines from the measured message sizes.

Each run is a separate process (or mpiexec job) timing trainer.train_step, the step `numrnn train`
runs, after warm-up steps; the runs alternate round after round so drifting load falls on all of
them, and the table shows medians over rounds; the 2-process ratio is also given per round (its
two runs follow each other within seconds), with the median and range of those ratios. Also
timed: one process on a rank's share of the batch (16, 8, 4), which separates the cost of smaller
per-rank products from the cost of talking; and two independent processes on batch 16 at once, no
MPI: the most 2 ranks can reach on this machine when both cores compute at the same time.

Every process is pinned to a core of its own (MPI ranks by `mpiexec -bind-to core`, single
processes by sched_setaffinity), as MPI training is usually run, so that the scheduler does not
move a process and refill a core's caches with its weights. It did not make the figures steady:
one pinned process on batch 16, started three times in a row, took 38, 36 and 51 ms a step
(README, "Data-parallel training"). --no-pin runs them unpinned.

usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/mpi.py [--rounds 3] [--steps 40] [--no-pin]
(this machine's environment sets those two variables, which force a slow OpenBLAS kernel; the
runs below drop them too)
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)
BIN = os.path.dirname(sys.executable)
# the network the prediction assumes: 10 Gbit/s Ethernet between machines, 25 us per message hop
BANDWIDTH_B_S, LATENCY_S = 10e9 / 8, 25e-6


def worker(batch, steps, warmup, core):
    """Time `steps` training steps after `warmup` ones; rank 0 prints one JSON line. core: the
    core a single process pins itself to (-1: none; MPI ranks are pinned by mpiexec)."""
    import numpy as np
    if core >= 0:
        os.sched_setaffinity(0, {core})
    from numrnn import data, distributed, trainer
    comm = distributed.world()
    cfg = trainer.TrainConfig(batch_size=batch)
    text = data.read_text(cfg.data)
    vocab = data.Vocabulary.from_text(text)
    train_ids, _ = data.split(vocab.encode(text))
    batches = data.SAMPLING[cfg.sampling](train_ids, cfg.seq_len, cfg.batch_size, cfg.seed)
    model, optimizer = trainer.build(cfg, len(vocab))
    columns = comm.share(batch) if comm else slice(None)
    spent = {"allreduce": 0.0, "optimizer": 0.0}

    def timed(name, fn):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[name] += time.perf_counter() - t0
            return out
        return run

    optimizer.step = timed("optimizer", optimizer.step)
    if comm:
        comm.average_gradients = timed("allreduce", comm.average_gradients)
        comm.comm.Barrier()
    for i in range(warmup + steps):
        if i == warmup:
            # the objects that loading the kernels left behind are scanned once by a full collection,
            # about 50 ms, some 30-60 steps into a run and never again: here, not inside the timing
            gc.collect()
            t_start = time.perf_counter()
            spent.update(allreduce=0.0, optimizer=0.0)
        x, y, _ = batches.batch(i)
        trainer.train_step(model, optimizer, x[:, columns], y[:, columns], None, cfg.clip, comm)
    step_s = (time.perf_counter() - t_start) / steps
    result = dict(ranks=comm.size if comm else 1, batch=batch, step_ms=1e3 * step_s,
                  tokens_per_s=cfg.seq_len * batch / step_s, allreduce_ms=1e3 * spent["allreduce"] / steps,
                  optimizer_ms=1e3 * spent["optimizer"] / steps,
                  bytes=int(sum(b.flat_grads.nbytes for b in model.blocks)), messages=len(model.blocks))
    if comm:
        # the allreduce alone, every rank entering together: the transfer without waiting for the other rank
        times = []
        for _ in range(20):
            comm.comm.Barrier()
            t0 = time.perf_counter()
            comm.average_gradients(model.blocks)
            times.append(time.perf_counter() - t0)
        result["allreduce_alone_ms"] = 1e3 * float(np.median(times))
    if not comm or comm.rank == 0:
        print(json.dumps(result), flush=True)


def run(ranks, batch, steps, warmup, independent=False, pin=True):
    """One timed run: `ranks` MPI processes, or as many independent single processes at once,
    each on a core of its own when pin."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(NUMRNN_BLAS_THREADS="1", OPENBLAS_NUM_THREADS="1")
    command = [sys.executable, HERE, "--worker", str(batch), "--steps", str(steps), "--warmup", str(warmup)]
    if independent:
        procs = [subprocess.Popen(command + ["--core", str(i if pin else -1)], stdout=subprocess.PIPE, text=True,
                                  env=env) for i in range(ranks)]
        each = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        return dict(each[0], ranks=ranks, step_ms=max(e["step_ms"] for e in each),
                    tokens_per_s=sum(e["tokens_per_s"] for e in each))
    if ranks > 1:
        command = [os.path.join(BIN, "mpiexec"), "-n", str(ranks)] + (["-bind-to", "core"] if pin else []) + command
    else:
        command += ["--core", "0" if pin else "-1"]
    r = subprocess.run(command, capture_output=True, text=True, env=env)
    if r.returncode != 0:       # show the worker's own message, not only its exit code
        sys.exit(f"benchmarks/mpi.py: {' '.join(command)} failed with exit code {r.returncode}:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def allreduce_s(bytes_, messages, n):
    """Ring allreduce of `messages` buffers totalling bytes_ over n machines: each sends and receives
    2 (n - 1) / n of the data, in 2 (n - 1) hops per buffer (plus the loss and Ctrl-C flag: 2 more)."""
    return 2 * (n - 1) / n * bytes_ / BANDWIDTH_B_S + 2 * (n - 1) * (messages + 2) * LATENCY_S


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-pin", dest="pin", action="store_false", help="leave processes unpinned")
    p.add_argument("--worker", type=int, metavar="BATCH", help=argparse.SUPPRESS)
    p.add_argument("--core", type=int, default=-1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, args.warmup, args.core)

    B = 32
    plan = [(1, B, False), (2, B, False), (1, B // 2, False), (2, B // 2, True), (1, B // 4, False),
            (1, B // 8, False)]
    results = {key: [] for key in plan}
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; {args.rounds} rounds of "
          f"{args.steps} steps; processes {'pinned to a core each' if args.pin else 'unpinned'}", flush=True)
    for r in range(args.rounds):
        for key in plan:
            results[key].append(run(*key[:2], args.steps, args.warmup, independent=key[2], pin=args.pin))
    med = {key: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for key, rs in results.items()}
    one, two = med[(1, B, False)], med[(2, B, False)]

    print(f"\ndefault model (LSTM H=256, T=64), global batch {B}, 1 BLAS thread per process; medians of "
          f"{args.rounds} rounds")
    print(f"{'run':<34}{'tokens/s':>10}{'step ms':>9}{'allreduce ms':>14}{'share':>7}{'optimizer ms':>14}")
    for (ranks, batch, independent), m in med.items():
        label = f"{ranks} process{'es' if ranks > 1 else ''}, batch {batch}" + \
            (" (a rank's share)" if ranks == 1 and batch < B else "") + (" each, no MPI" if independent else "")
        ar = f"{m['allreduce_ms']:>14.2f}{m['allreduce_ms'] / m['step_ms']:>7.1%}" \
            if ranks > 1 and not independent else f"{'':>21}"
        print(f"{label:<34}{m['tokens_per_s']:>10,.0f}{m['step_ms']:>9.1f}{ar}{m['optimizer_ms']:>14.2f}")
    print(f"\n2 processes vs 1: {two['tokens_per_s'] / one['tokens_per_s']:.2f}x tokens/s (2 independent processes "
          f"on batch 16 vs 1 on 32: {med[(2, B // 2, True)]['tokens_per_s'] / one['tokens_per_s']:.2f}x)")
    # each round's own ratio: its runs follow each other within seconds, so a drift of the machine's
    # speed over the run (README) falls on both sides of a round's ratio
    paired = sorted(t["tokens_per_s"] / o["tokens_per_s"] for o, t in zip(results[(1, B, False)],
                                                                            results[(2, B, False)]))
    print(f"each round's own ratio: median {statistics.median(paired):.2f}x, from {paired[0]:.2f}x to "
          f"{paired[-1]:.2f}x ({sum(r >= 1.6 for r in paired)} of {len(paired)} rounds at 1.6x or more)")
    print(f"allreduce per step: {two['messages']} buffers, {two['bytes']:,} bytes; "
          f"{two['allreduce_alone_ms']:.2f} ms when both ranks enter together (shared memory), "
          f"{two['allreduce_ms']:.2f} ms inside the step (with the wait for the slower rank)")

    print(f"\npredicted, N machines of one process each, assuming {BANDWIDTH_B_S * 8 / 1e9:g} Gbit/s and "
          f"{LATENCY_S * 1e6:g} us per hop (ring allreduce: 2(N-1)/N * bytes / bandwidth + 2(N-1) hops "
          f"per buffer):")
    print(f"{'N':>4}{'allreduce ms':>14}{'global batch 32: speedup':>26}{'batch 32 per rank: speedup':>28}")
    t1 = one["step_ms"] / 1e3
    for n in (2, 4, 8, 16):
        ar = allreduce_s(two["bytes"], two["messages"], n)
        share = med.get((1, B // n, False))
        strong = f"{t1 / (share['step_ms'] / 1e3 + ar):.2f}x" if share else "-"
        weak = n * t1 / (t1 + ar)
        print(f"{n:>4}{ar * 1e3:>14.2f}{strong:>26}{weak:>27.2f}x")
    print("(global batch 32: each machine runs 32/N columns, timed above on one process; batch 32 per rank: "
          "the global batch grows with N)")


if __name__ == "__main__":
    main()
