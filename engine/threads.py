"""Running one compiled call on several threads (private): a team of helper threads started
from compiled code, woken for each call, and the spin barrier the call's parts meet at after
every time step (engine/infer_split.py).

Why not Numba's parallel=True: its thread pool gives no guarantee that the parts of a range run
at the same time (a barrier between parts can then wait forever), its workqueue layer aborts when
two host threads enter parallel code at once (the C interface's hosts do), and a parallel region
per time step costs more than a step (about 5 us at H=128).
Why a team kept between calls: starting and joining a thread per call cost 30-42 us here, more
than a whole H=16 call. A team's helpers (POSIX threads running a @cfunc loop) wait for the next
job by spinning on its counter for about 100 us, then sleep in futex(2) until the caller's wake;
the caller runs part 0 itself and spins until every helper has marked the job done.
The barrier is one counter per part on its own cache line: part p publishes "I finished step
k" with a release store and spins (with the pause instruction) until every counter reached k
with acquire loads; 0.3 us per barrier between two cores here. After about 100 us of spinning a
waiting thread yields its core at each look, so that more threads than free cores still make
progress (slowly: a split call wants a free core per thread).

A team is an int64 array (new_team): the job counter and the exit word, each helper's done
counter and its start row (the team's address and its part number, what pthread_create hands
the loop), the barrier counters and the thread ids, each on cache lines of their own.
"""
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.types import ExternalFunction
from numba.extending import intrinsic

LINE = 8        # int64s per cache line
MAX_PARTS = 8
JOB, EXIT, ARGS = 0, 1, 2             # written by the caller: the last job posted, stop, its arguments' address
DONE = LINE                           # DONE + p * LINE: helper p's last finished job
START = DONE + MAX_PARTS * LINE       # START + p * LINE: [team address, p], helper p's argument
BARRIER = START + MAX_PARTS * LINE    # BARRIER + p * LINE: part p's last finished step
TIDS = BARRIER + MAX_PARTS * LINE     # TIDS + p: helper p's pthread id
TEAM_SIZE = TIDS + MAX_PARTS
SPIN = 2000       # pauses (about 100 us) a thread spins before it sleeps (for a job) or yields (at a barrier)
_FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine(), -1)    # SYS_futex, -1: sleep instead
FUTEX_WAIT, FUTEX_WAKE = 128, 129     # the _PRIVATE forms

_pthread_create = ExternalFunction("pthread_create", types.int32(types.voidptr, types.voidptr, types.voidptr,
                                                                  types.voidptr))
_pthread_join = ExternalFunction("pthread_join", types.int32(types.uint64, types.voidptr))
_syscall = ExternalFunction("syscall", types.int64(types.int64, types.voidptr, types.int64, types.int64, types.voidptr))
_usleep = ExternalFunction("usleep", types.int32(types.uint32))
_sched_yield = ExternalFunction("sched_yield", types.int32())


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
    """x86's pause: a spinning core yields its pipeline (and power) to the other's work (nothing
    on other machines)."""
    def codegen(context, builder, sig, args):
        if platform.machine() in ("x86_64", "AMD64"):
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
def _futex_wait(team, i, seen):
    """Sleep while team[i]'s low 32 bits equal seen's (or until a wake or a signal)."""
    if _FUTEX < 0:
        _usleep(50)
    else:
        _syscall(_FUTEX, _voidptr(address(team[i:])), FUTEX_WAIT, seen & 0xFFFFFFFF, _voidptr(0))


@njit(cache=True)
def _futex_wake(team, i):
    if _FUTEX >= 0:
        _syscall(_FUTEX, _voidptr(address(team[i:])), FUTEX_WAKE, 0x7FFFFFFF, _voidptr(0))


@njit(cache=True)
def _wait_for(team, i, k):
    """Spin until team[i] >= k; after SPIN pauses, give the core away at each look (sched_yield),
    so that with more threads than free cores the part being waited for gets to run."""
    spins = 0
    while _load_acquire(team, i) < k:
        if spins < SPIN:
            _pause()
            spins += 1
        else:
            _sched_yield()


@njit(cache=True)
def barrier(team, part, nparts, k):
    """Part `part` of nparts has finished its step k (k = 1, 2, ... in each job); returns when
    every part has."""
    _store_release(team, BARRIER + part * LINE, k)
    for q in range(nparts):
        _wait_for(team, BARRIER + q * LINE, k)


@njit(cache=True)
def start_team(team, nparts, loop):
    """Start helpers 1 .. nparts - 1 running the @cfunc at address `loop` (int64 (int64 *start)):
    it calls next_job, does its part of the job, calls job_done, until next_job says stop.
    Returns how many started (fewer than nparts - 1 when the system refused a thread: the caller
    then stops them with stop_team and runs on one thread)."""
    for p in range(1, nparts):
        row = team[START + p * LINE:]
        row[0], row[1] = address(team), p
        if _pthread_create(_voidptr(address(team[TIDS + p:])), _voidptr(0), _voidptr(loop),
                           _voidptr(address(row))) != 0:
            return p - 1
    return nparts - 1


@njit(cache=True)
def stop_team(team, started):
    """Tell the helpers to return, and join them."""
    team[EXIT] = 1
    _store_release(team, JOB, team[JOB] + 1)
    _futex_wake(team, JOB)
    for p in range(1, started + 1):
        _pthread_join(np.uint64(team[TIDS + p]), _voidptr(0))


@njit(cache=True)
def post_job(team):
    """The caller, with the job's arguments in place: wake the helpers; returns the job number."""
    for p in range(MAX_PARTS):
        team[BARRIER + p * LINE] = 0
    job = team[JOB] + 1
    _store_release(team, JOB, job)
    _futex_wake(team, JOB)
    return job


@njit(cache=True)
def wait_done(team, nparts, job):
    """The caller, after its own part: wait until every helper has finished the job."""
    for p in range(1, nparts):
        _wait_for(team, DONE + p * LINE, job)


@njit(cache=True)
def next_job(team, seen):
    """In a helper: wait for a job after `seen`; returns it, or -1 when the team is stopping."""
    spins = 0
    while True:
        job = _load_acquire(team, JOB)
        if job != seen:
            return -1 if team[EXIT] != 0 else job
        if spins < SPIN:
            _pause()
            spins += 1
        else:
            _futex_wait(team, JOB, seen)


@njit(cache=True)
def job_done(team, part, job):
    _store_release(team, DONE + part * LINE, job)


def new_team():
    """A team's control block (no threads yet: start_team)."""
    return np.zeros(TEAM_SIZE, np.int64)
