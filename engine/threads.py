"""Running one compiled call on several threads (private): POSIX threads started from compiled
code, and the spin barrier their parts meet at after every time step (engine/infer_split.py).

Why not Numba's parallel=True: its thread pool gives no guarantee that the parts of a range run
at the same time (a barrier between parts can then wait forever), its workqueue layer aborts when
two host threads enter parallel code at once (the C interface's hosts do), and a parallel region
per time step costs more than a step (about 5 us at H=128).
So the call starts its helpers with pthread_create on a @cfunc, runs part 0 itself, and joins
them: about 28 us per call here for one helper. The parts meet at a barrier made of one counter
per part on its own cache line: part p publishes "I finished step k" with a release store and
spins (with the pause instruction) until every counter reached k with acquire loads; 0.3 us per
barrier between two cores here. A helper that cannot be started is reported, so the caller runs
the call on one thread instead.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.types import ExternalFunction
from numba.extending import intrinsic

LINE = 8    # int64s per cache line: part p's counter is flags[p * LINE]
MAX_PARTS = 8
GO = MAX_PARTS * LINE   # flags[GO]: 0 wait, 1 run, -1 return (a helper could not be started)

_pthread_create = ExternalFunction("pthread_create", types.int32(types.voidptr, types.voidptr, types.voidptr,
                                                                  types.voidptr))
_pthread_join = ExternalFunction("pthread_join", types.int32(types.uint64, types.voidptr))


@intrinsic
def _load_acquire(typingctx, flags, i):
    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.load_atomic(cgutils.get_item_pointer(context, builder, sig.args[0], a, [args[1]]),
                                   "acquire", 8)
    return types.int64(flags, types.intp), codegen


@intrinsic
def _store_release(typingctx, flags, i, value):
    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        builder.store_atomic(args[2], cgutils.get_item_pointer(context, builder, sig.args[0], a, [args[1]]),
                             "release", 8)
        return context.get_dummy_value()
    return types.void(flags, types.intp, types.int64), codegen


@intrinsic
def _pause(typingctx):
    """x86's pause: a spinning core yields its pipeline (and power) to the other's work."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                            "llvm.x86.sse2.pause")
        builder.call(fn, [])
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def address(typingctx, a):
    """The address of a's first element, as an int64 (to hand arrays to a helper thread)."""
    def codegen(context, builder, sig, args):
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.ptrtoint(arr.data, ir.IntType(64))
    return types.int64(a), codegen


@intrinsic
def _voidptr(typingctx, addr):
    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(types.int64), codegen


@intrinsic
def _pointer(typingctx, addr, like):
    """An int64 address as a pointer to like's element type (like: an array or a NumPy scalar
    type; the inverse of address)."""
    ptr = types.CPointer(like.instance_type if isinstance(like, types.NumberClass) else like.dtype)

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(ptr))
    return ptr(types.int64, like), codegen


@njit(cache=True)
def pointer(addr, like):
    """pointer(address(a), a) is a's data as a typed pointer, for numba.carray; like may also be
    a NumPy scalar type (np.float32)."""
    return _pointer(addr, like)


@njit(cache=True)
def barrier(flags, part, nparts, k):
    """Part `part` of nparts has finished its step k (k = 1, 2, ... in each call); returns when
    every part has. flags: new_flags(), zeroed before the call's parts start."""
    _store_release(flags, part * LINE, k)
    for q in range(nparts):
        while _load_acquire(flags, q * LINE) < k:
            _pause()


@njit(cache=True)
def start_helpers(run_part, args, nparts, tids):
    """Start nparts - 1 threads running the @cfunc at address run_part (int64 (int64 *)), helper
    p = 1 .. nparts - 1 on args[p]'s address (args [nparts, N] int64, row p that part's
    arguments); tids [nparts] uint64 receives their ids. Returns how many started. The helpers
    first wait at wait_go: the caller then says go(flags, started == nparts - 1) and, after its
    own part, join_helpers(tids, started)."""
    for p in range(1, nparts):
        if _pthread_create(_voidptr(address(tids[p:])), _voidptr(0), _voidptr(run_part),
                           _voidptr(address(args[p]))) != 0:
            return p - 1
    return nparts - 1


@njit(cache=True)
def go(flags, run):
    """Let the waiting helpers run their parts (run) or return at once (not run)."""
    _store_release(flags, GO, 1 if run else -1)


@njit(cache=True)
def wait_go(flags):
    """In a helper: wait for go; True when its part is to run."""
    while True:
        v = _load_acquire(flags, GO)
        if v != 0:
            return v > 0
        _pause()


@njit(cache=True)
def join_helpers(tids, started):
    for p in range(1, started + 1):
        _pthread_join(tids[p], _voidptr(0))


def new_flags():
    """Zeroed flags for one call in flight: a counter per part, each on its own cache line, then
    the go word."""
    return np.zeros((MAX_PARTS + 1) * LINE, np.int64)
