"""Adam's update on the CPU (numrnn.optim.Adam), one compiled pass over a block's flat buffers.

Why compiled: written as NumPy whole-array operations the update takes about ten passes over the
buffers with a temporary each, 4 ms per step for the 325k parameters of the default model
(4-7% of a training step, and run on every rank in data-parallel training); one fused pass
reads and writes each buffer once. The arithmetic is the NumPy form's, type for type, so the
results are the same to the bit: the moving averages in the parameters' type (the scalars cast
to it), the square root in that type, the denominator and the step in float64 (what NumPy does
with Python-float scalars), rounded to the parameters' type on the subtraction.
Compiled with error_model="numpy": Numba's default division-by-zero check (a branch per element)
kept the loop scalar; without it the pass vectorises and took 0.63-0.67 ms against 1.57-1.91 ms
for 325k float32 parameters, with the same bits (a division by zero gives inf, as NumPy's does).
engine/cuda_blocks.py has the device's kernel.
"""
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def adam_step(p, g, m, v, one_minus_beta1, beta2, one_minus_beta2, weight_decay, step_size, bias2_sqrt, eps):
    """p, g, m, v [n] one dtype: p -= step_size * m / (sqrt(v) / bias2_sqrt + eps) after
    m += (1 - beta1) (g' - m), v = beta2 v + (1 - beta2) g'^2, g' = g + weight_decay p;
    the first four scalars in p's type, the last three float64."""
    for i in range(p.size):
        gi = g[i] + weight_decay * p[i] if weight_decay != 0 else g[i]
        m[i] += one_minus_beta1 * (gi - m[i])
        v[i] *= beta2
        v[i] += one_minus_beta2 * gi * gi
        denom = np.sqrt(v[i]) / bias2_sqrt + eps
        p[i] -= step_size * (m[i] / denom)
