"""Tunables of the CUDA engine (engine/cuda_*.py), in one place; none of them changes a result.

Under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) every GPU thread is a Python thread, so the
matrix-product tile and the thread blocks are small there: that keeps the simulator tests quick
and makes tiny test arrays span several tiles and blocks, so the edge logic is exercised.
tests/cuda_sim also checks the real tile size directly.
"""
from numba.core import config

SIMULATOR = bool(config.ENABLE_CUDASIM)

TILE = 4 if SIMULATOR else 16   # matrix-product tile edge: TILE x TILE threads per block
THREADS = 16 if SIMULATOR else 256   # most threads (and blocks) of an elementwise, gate or sum kernel
SUM_COLS = 4 if SIMULATOR else 32    # columns per block of a column sum (THREADS // SUM_COLS rows of threads)
FASTMATH = False                # keep IEEE semantics so results match the CPU engine to rounding
# The whole time loop in one cooperative launch (engine/cuda_fused.py) instead of a launch per step.
# Opt-in until a real GPU has run it: the simulator runs it in one block only, and it is compile-checked.
PERSISTENT = False

if not SIMULATOR:
    # The engine launches small grids on purpose (one thread per (batch row, hidden unit) of a
    # small batch); Numba's low-occupancy warning would print a line per launch to stderr.
    from numba.cuda.core import config as _cuda_config
    _cuda_config.CUDA_LOW_OCCUPANCY_WARNINGS = 0
