"""engine/views.py: a compiled view of a C-contiguous array as another shape equals NumPy's
reshape of the same elements, writes through to the parent, keeps it alive, and refuses to
reach past its end."""
import gc

import numpy as np
import pytest
from numba import njit

from numrnn.engine.views import reshaped, view


@njit
def _views(a, start, T, B):
    return view(a, start, (T, B, 3)), view(a, start, (0, B)), reshaped(a[:T * B * 3], (T * B, 3))


@njit
def _matrix(a, start, rows, cols):
    return view(a, start, (rows, cols))


def test_view_equals_reshape_and_shares_memory():
    a = np.random.default_rng(1).standard_normal(100)
    cube, empty, flat = _views(a, 7, 4, 5)
    np.testing.assert_array_equal(cube, a[7:67].reshape(4, 5, 3))
    assert empty.shape == (0, 5) and cube.flags.c_contiguous
    np.testing.assert_array_equal(flat, a[:60].reshape(20, 3))
    cube[1, 2, 0] = 42.0
    assert a[7 + 1 * 15 + 2 * 3] == 42.0
    m = _matrix(np.arange(12, dtype=np.float32).reshape(3, 4), 2, 2, 5)     # a 2-D parent: elements in C order
    np.testing.assert_array_equal(m, np.arange(2, 12, dtype=np.float32).reshape(2, 5))


def test_a_view_keeps_its_parent_alive():
    m = _matrix(np.arange(50.0), 10, 4, 10)
    gc.collect()
    np.testing.assert_array_equal(m, np.arange(10.0, 50.0).reshape(4, 10))


@pytest.mark.parametrize("start, rows", [(41, 1), (0, 6), (-1, 1)])
def test_a_view_past_the_end_is_refused(start, rows):
    with pytest.raises(IndexError):
        _matrix(np.arange(50.0), start, rows, 10)
