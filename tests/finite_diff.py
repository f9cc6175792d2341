"""Test helpers: relative error and central finite differences in float64 (not used by the package)."""
import numpy as np


def rel_err(a, ref):
    """norm(a - ref) / norm(ref), the figure the tests compare against their tolerances."""
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(a - ref) / max(np.linalg.norm(ref), 1e-300))


def numeric_grad(loss, arr, eps=1e-6):
    """d loss() / d arr by central differences, perturbing arr in place (restored afterwards)."""
    grad = np.zeros(arr.shape)
    for i in np.ndindex(arr.shape):
        v = arr[i]
        arr[i] = v + eps
        up = loss()
        arr[i] = v - eps
        down = loss()
        arr[i] = v
        grad[i] = (up - down) / (2 * eps)
    return grad


def check_grads(loss, named, tol):
    """named: list of (name, array, analytic gradient). Asserts each relative error < tol and
    returns {name: error} so a failure names the tensor."""
    errors = {name: rel_err(grad, numeric_grad(loss, arr)) for name, arr, grad in named}
    bad = {k: v for k, v in errors.items() if not v < tol}
    assert not bad, f"finite differences disagree (tol {tol}): {bad}"
    return errors
