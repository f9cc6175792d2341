"""numrnn.distributed: data-parallel training over MPI processes (mpi4py, `pip install 'numrnn[mpi]'`).

Every process (rank) holds the whole model, runs its share of each global batch, and after backward
the gradients are summed over the ranks (one in-place allreduce per block's flat gradient buffer,
blocks in a fixed order) and divided by the number of ranks; clipping and the optimiser step then
run on every rank on identical gradients, so the weights stay identical without being sent. With
equal shares this is the gradient of the mean loss over the global batch: what one process
computes, to rounding. The ranks rely on MPI returning the same sum on every rank (true of MPICH's
and Open MPI's allreduce for 2 ranks, where a + b == b + a; for more ranks the trainer compares a
checksum of the weights at every checkpoint and stops if they drifted apart).

Also here: the protocol `numrnn train` follows so that no failure leaves a rank waiting forever:
each rank reports once, at start, that it is ready and with which settings (Communicator.start);
from there to the end of training the ranks run in lockstep and any failure ends them all
(MPI_Abort, Communicator.lockstep); a rank that fails before start reports its message at the same
collective, so every rank stops and rank 0 prints it (run_main).

Not here: what a training step computes (trainer.py). MPI is initialised only when a launcher
started several processes (world()); a plain `numrnn train` never imports mpi4py.
"""
import contextlib
import hashlib
import os
import sys
import traceback

import numpy as np

from numrnn.device import as_numpy
from numrnn.optim import leaf_blocks

# what MPI launchers put in each process's environment: MPICH (hydra) and Intel MPI, Open MPI, MVAPICH
_SIZE_ENV = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_ENV = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
INSTALL = "pip install 'numrnn[mpi]'"


class DistributedError(RuntimeError):
    """The processes cannot train together: no mpi4py under a launcher, different settings or data,
    weights that drifted apart."""


class PeerStopped(RuntimeError):
    """Another rank stopped before training; rank 0 prints why."""


def _launcher_value(names):
    for name in names:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return None


def launched_size():
    """How many processes an MPI launcher started (1 when none did), read from the environment
    without initialising MPI."""
    return _launcher_value(_SIZE_ENV) or 1


def launched_rank():
    """This process's rank as the launcher's environment says (0 when no launcher)."""
    return _launcher_value(_RANK_ENV) or 0


def world():
    """The Communicator of all the processes an MPI launcher started, or None for a single process
    (then MPI is not initialised). DistributedError when several were started but mpi4py is missing."""
    if launched_size() < 2:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise DistributedError(f"started by an MPI launcher as {launched_size()} processes, but mpi4py is not "
                               f"installed; install it with {INSTALL}") from None
    return Communicator(MPI.COMM_WORLD)


class Communicator:
    """An mpi4py communicator with what data-parallel training needs. Every method is collective:
    all ranks call it, in the same order."""

    def __init__(self, comm):
        from mpi4py import MPI
        self._MPI = MPI
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._stopped = False

    def share(self, n):
        """The slice of n items (batch columns, evaluation streams) this rank runs: contiguous blocks
        in rank order, sizes differing by at most one."""
        return slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)

    def broadcast_parameters(self, modules):
        """Copy rank 0's parameters into every rank's blocks (staged through the host for a GPU)."""
        for b in leaf_blocks(modules):
            if b.device == "cpu":
                self.comm.Bcast(b.flat_params, root=0)
            else:
                host = np.ascontiguousarray(b._xp.to_host(b.flat_params))
                self.comm.Bcast(host, root=0)
                b._xp.assign(b.flat_params, host)

    def average_gradients(self, modules):
        """Replace every block's gradients by their mean over the ranks: an in-place allreduce of each
        block's flat buffer, blocks in order (a GPU's gradients go through a host copy: CUDA-aware MPI
        is not assumed)."""
        for b in leaf_blocks(modules):
            if b.device == "cpu":
                self.comm.Allreduce(self._MPI.IN_PLACE, b.flat_grads, op=self._MPI.SUM)
            else:
                host = np.ascontiguousarray(b._xp.to_host(b.flat_grads))
                self.comm.Allreduce(self._MPI.IN_PLACE, host, op=self._MPI.SUM)
                b._xp.assign(b.flat_grads, host)
            b._xp.scale_(b.flat_grads, 1.0 / self.size)

    def sum(self, values):
        """Element-wise sums over the ranks of a few numbers (float64), as a list."""
        buf = np.array(values, np.float64)
        self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        return buf.tolist()

    def any(self, flag):
        """Whether `flag` is true on any rank."""
        return self.sum([1.0 if flag else 0.0])[0] > 0

    def gather_columns(self, array):
        """Rank 0 gets the ranks' arrays [L, b, H] joined along axis 1 (rank order), [L, B, H]; the
        other ranks get None. A tuple (LSTM's h, c) is gathered item by item; None stays None."""
        if array is None:
            return None
        if isinstance(array, tuple):
            return tuple(self.gather_columns(a) for a in array)
        parts = self.comm.gather(as_numpy(array), root=0)
        return np.concatenate(parts, axis=1) if self.rank == 0 else None

    def check_identical(self, modules):
        """DistributedError on every rank if the ranks' parameters differ (they are compared by hash)."""
        h = hashlib.sha256()
        for b in leaf_blocks(modules):
            h.update(np.ascontiguousarray(b._xp.to_host(b.flat_params)).tobytes())
        digests = self.comm.allgather(h.hexdigest())
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise DistributedError(f"the weights of rank(s) {differ} differ from rank 0's: the allreduce did not "
                                   f"return the same sums on every rank")

    def abort(self, code):
        self.comm.Abort(code)

    # -- the protocol numrnn train runs by ----------------------------------------------------
    def start(self, settings):
        """The one agreement before training: every rank says it is ready, with `settings` (a dict of
        JSON values: the configuration, the text's hash, the resumed file's hash). PeerStopped when a
        rank failed before this point (it is in run_main's final exchange, where its message went);
        DistributedError on every rank when the settings differ."""
        reports = self.comm.allgather(("ready", settings))
        if any(report[0] != "ready" for report in reports):
            self._stopped, self._start_reports = True, reports
            raise PeerStopped("another rank stopped before training")
        differ = []
        for r, (_, s) in enumerate(reports[1:], 1):
            keys = sorted(k for k in set(s) | set(settings) if s.get(k) != reports[0][1].get(k))
            if keys:
                differ.append(f"rank {r}: " + ", ".join(f"{k} {_short(s.get(k))} (rank 0: {_short(reports[0][1].get(k))})"
                                                       for k in keys))
        if differ:
            self._stopped, self._start_reports = True, reports
            raise DistributedError("the processes were started with different settings or data; every rank must "
                                   "run the same command on the same files: " + "; ".join(differ))

    @contextlib.contextmanager
    def lockstep(self, passes=()):
        """Training, where the ranks wait on each other at every step: an exception on any rank (other
        than those in `passes`, which every rank raises alike) is printed with the rank and ends all
        ranks through MPI_Abort, so none waits forever for a rank that is gone."""
        try:
            yield
        except passes:
            raise
        except KeyboardInterrupt:
            print(f"numrnn: rank {self.rank} interrupted; stopping all {self.size} processes", file=sys.stderr,
                  flush=True)
            self.abort(130)
        except BaseException as e:
            if not isinstance(e, OSError):      # a bug: its traceback, as a single process would show it
                traceback.print_exception(e, file=sys.stderr)
            print(f"numrnn: rank {self.rank} of {self.size} failed ({type(e).__name__}: {e}); stopping all "
                  f"{self.size} processes", file=sys.stderr, flush=True)
            self.abort(1)


def _short(value):
    """A setting for a message: hashes cut to 12 characters."""
    text = repr(value)
    return text[:13] + "...'" if isinstance(value, str) and len(value) == 64 else text


def run_main(comm, main):
    """Run main(report) -> exit code on every rank, where report(message) replaces printing an
    error to stderr; rank 0 then prints the messages (its own, or else the first failing rank's) and
    every rank returns its own code, or else that rank's. Outside training (Communicator.lockstep)
    each rank ends with one exchange of (code, messages); a rank that learned at start() that
    another had stopped skips it, as that rank's report was what start() received."""
    messages = []
    try:
        code = main(messages.append)
    except PeerStopped:
        code = None
    except BaseException as e:     # a bug, or Ctrl-C, outside training: still report, so that no rank waits
        traceback.print_exception(e, file=sys.stderr)
        code = 130 if isinstance(e, KeyboardInterrupt) else 1
        messages.append(f"numrnn: {type(e).__name__}: {e}")
    reports = comm._start_reports if comm._stopped else comm.comm.allgather(("exit", code, messages))
    others = [(r, c, msgs) for r, (kind, *rest) in enumerate(reports) if kind == "exit" and r != comm.rank
              for c, msgs in [rest] if c]
    if comm.rank == 0:
        for m in (messages if code else others[0][2] if others else []):
            print(m if code else f"(rank {others[0][0]}) {m}", file=sys.stderr)
    return code if code else (others[0][1] if others else 0)
