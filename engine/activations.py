"""The gate nonlinearities, compiled and inlined into the kernels' loops.

tanh is computed from exp: libm's tanh cost 42 ns a call against 13 ns for 1 - 2 / (e^{2v} + 1)
(measured in a Numba loop, float64), and the gate loops are bound by these calls. The form stays
exact at the ends (e^{2v} overflowing to inf gives 1, underflowing to 0 gives -1); near zero it
loses relative but not absolute accuracy: at most 3.3e-16 off libm over 4 million normal draws.
"""
import math

from numba import njit


@njit(cache=True, inline="always")
def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


@njit(cache=True, inline="always")
def tanh(v):
    return 1.0 - 2.0 / (math.exp(2.0 * v) + 1.0)
