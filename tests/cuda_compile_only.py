"""Compile-only mode for the CUDA engine: check what real GPUs would be given, with no GPU.

Inside `recording()`, Numba's device arrays are host arrays (zero-filled) and every kernel launch,
instead of running, records the kernel's Python function with the Numba types of its arguments
(typed as Numba types a device array of the same dtype, rank and layout). `compile_ptx` then
compiles each recorded (kernel, signature) with NVVM for a compute capability, as the driver
would be handed it. Nothing is named: whatever kernel the engine launches is recorded, including
kernels made by factories at run time.

This is not the simulator: kernels do not run, so values read back are zeros; workloads run
here only for the launches they make, never for their results. Only this process's real
numba.cuda (NUMBA_ENABLE_CUDASIM unset) is patched, and only `numba.cuda.<name>` lookups see the
host arrays: code that imported device_array & co. by name would bypass it.
"""
import contextlib
import dataclasses
import re

import numpy as np
from numba import cuda, typeof, types
from numba.cuda import dispatcher as numba_cuda_dispatcher
from numba.cuda.dispatcher import CUDADispatcher
from numba.np import numpy_support

from numrnn.device import cuda_problem

# hardware limits every launch must respect (CUDA programming guide, all compute capabilities >= 3.0)
MAX_GRID = (2 ** 31 - 1, 65535, 65535)
MAX_BLOCK = (1024, 1024, 64)
MAX_THREADS_PER_BLOCK = 1024


class HostDeviceArray(np.ndarray):
    """A host array that answers to the Numba device-array methods the engine uses."""

    def copy_to_host(self, ary=None, stream=0):
        if ary is None:
            return np.array(self)
        ary[...] = self
        return ary

    def copy_to_device(self, ary, stream=0):
        self[...] = np.asarray(ary)

    def is_c_contiguous(self):
        return self.flags.c_contiguous

    def is_f_contiguous(self):
        return self.flags.f_contiguous


def _host(a):
    return np.asarray(a).view(HostDeviceArray)


def _device_array(shape, dtype=np.float64, strides=None, order="C", stream=0):
    return _host(np.zeros(shape, dtype, order=order))


def _to_device(obj, stream=0, copy=True, to=None):
    if to is not None:
        to.copy_to_device(obj)
        return to
    return _host(np.array(obj))


class _Stream:
    def synchronize(self):
        pass


def arg_type(value):
    """The Numba type a real launch gives this argument: for arrays, the type of a Numba device
    array of the same dtype, rank and layout (C, F, else A; a broadcast array is A)."""
    if isinstance(value, np.ndarray):
        broadcast = 0 in value.strides and value.size != 0
        layout = ("C" if value.flags.c_contiguous and not broadcast else
                  "F" if value.flags.f_contiguous and not broadcast else "A")
        return types.Array(numpy_support.from_dtype(value.dtype), value.ndim, layout)
    return typeof(value)


@dataclasses.dataclass
class Launches:
    """What the workloads launched: signatures per kernel, and launches outside the limits."""
    signatures: dict = dataclasses.field(default_factory=dict)   # py_func -> {argtypes tuple}
    options: dict = dataclasses.field(default_factory=dict)      # py_func -> the dispatcher's targetoptions
    count: int = 0
    too_large: list = dataclasses.field(default_factory=list)    # (kernel name, griddim, blockdim)

    def add(self, dispatcher, args, griddim, blockdim):
        fn = dispatcher.py_func
        self.signatures.setdefault(fn, set()).add(tuple(arg_type(a) for a in args))
        self.options[fn] = dispatcher.targetoptions
        self.count += 1
        threads = blockdim[0] * blockdim[1] * blockdim[2]
        if (any(g > m for g, m in zip(griddim, MAX_GRID)) or any(b > m for b, m in zip(blockdim, MAX_BLOCK))
                or threads > MAX_THREADS_PER_BLOCK):
            self.too_large.append((fn.__qualname__, griddim, blockdim))


class _CooperativeLimit:
    def max_cooperative_grid_blocks(self, blockdim):
        return MAX_GRID[0]


@contextlib.contextmanager
def recording():
    """Within: host arrays for device arrays, launches recorded (not run). Yields a Launches."""
    launches = Launches()

    def call(self, args, launch_config):
        launches.add(self, args, launch_config.griddim, launch_config.blockdim)

    patches = {
        (cuda, "device_array"): _device_array,
        (cuda, "device_array_like"): lambda a, stream=0: _host(np.zeros_like(a)),
        (cuda, "to_device"): _to_device,
        (cuda, "as_cuda_array"): lambda obj, sync=True: _host(obj),
        (cuda, "is_cuda_array"): lambda obj: hasattr(obj, "copy_to_host"),
        (cuda, "is_available"): lambda: True,
        (cuda, "synchronize"): lambda: None,
        (cuda, "stream"): _Stream,
        (cuda, "default_stream"): _Stream,
        (CUDADispatcher, "call"): call,
        # a persistent kernel sizes its cooperative grid from the compiled kernel: no limit here
        (CUDADispatcher, "compile"): lambda self, sig: _CooperativeLimit(),
    }
    saved = {key: getattr(*key) for key in patches}
    cuda_problem.cache_clear()   # its verdict (it launches a test kernel) holds inside or outside only
    try:
        for (owner, name), value in patches.items():
            setattr(owner, name, value)
        yield launches
    finally:
        for (owner, name), value in saved.items():
            setattr(owner, name, value)
        cuda_problem.cache_clear()


class _Device:
    def __init__(self, cc):
        self.compute_capability = cc


@contextlib.contextmanager
def _current_device(cc):
    """numba-cuda compiles the device functions a kernel calls (cuda.cg.this_grid() is one) for the
    current device's compute capability, even inside compile_ptx; with no GPU there is none, so
    within this it is the one being compiled for."""
    saved = numba_cuda_dispatcher.get_current_device
    numba_cuda_dispatcher.get_current_device = lambda: _Device(cc)
    try:
        yield
    finally:
        numba_cuda_dispatcher.get_current_device = saved


def compile_ptx(fn, argtypes, options, cc):
    """PTX of kernel fn for these argument types and compute capability, compiled with the
    dispatcher's own options (fastmath, ...). Raises on any typing or NVVM error."""
    keep = {k: options[k] for k in ("fastmath", "debug", "lineinfo", "opt", "launch_bounds") if k in options}
    with _current_device(cc):
        ptx, _ = cuda.compile_ptx(fn, argtypes, cc=cc, **keep)
    return ptx


_F64_INSTRUCTION = re.compile(r"^\s*(?:@!?%p\d+\s+)?[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*\.f64\b")


def f64_instructions(ptx):
    """The PTX instructions (not declarations) that operate on or produce float64 values."""
    return [line.strip() for line in ptx.splitlines() if _F64_INSTRUCTION.match(line)]


def compile_all(launches, ccs):
    """Compile every recorded (kernel, signature) for every cc -> ({(fn, argtypes, cc): ptx},
    [one line per failure])."""
    ptx, errors = {}, []
    for fn, signatures in launches.signatures.items():
        for argtypes in sorted(signatures, key=str):
            for cc in ccs:
                try:
                    ptx[fn, argtypes, cc] = compile_ptx(fn, argtypes, launches.options[fn], cc)
                except Exception as e:   # every failure is reported, with its kernel, types and cc
                    first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
                    errors.append(f"{fn.__module__}.{fn.__qualname__}{argtypes} cc {cc}: {type(e).__name__}: {first}")
    return ptx, errors
