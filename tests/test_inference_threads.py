"""Eval-mode calls split over threads (block.eval(threads=N), engine/infer_split.py) against the
one-thread call: every cell and option the split takes, both dtypes, ragged lengths, several
layers and directions; the calls it does not take run on one thread; the helper threads live
as long as the block; thousands of calls in a row stay equal (no race)."""
import copy
import gc
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import numrnn
from numrnn.engine import infer

TOL = {np.float32: 2e-6, np.float64: 1e-13}

CASES = [
    (numrnn.LSTM, dict()),
    (numrnn.LSTM, dict(num_layers=2, bidirectional=True)),
    (numrnn.LSTM, dict(peephole=True, coupled=True, bias=False)),
    (numrnn.LSTM, dict(peephole=True, bidirectional=True, batch_first=True)),
    (numrnn.GRU, dict(num_layers=3, bidirectional=True)),
    (numrnn.GRU, dict(bias=False, batch_first=True)),
    (numrnn.RNN, dict(nonlinearity="relu", num_layers=2, bidirectional=True)),
    (numrnn.RNN, dict()),
]


def outputs(result):
    out, state = result
    return [out] + (list(state) if isinstance(state, tuple) else [state])


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def inputs(layer, T, B, rng):
    shape = (B, T, layer.input_size) if layer.batch_first else (T, B, layer.input_size)
    LD = layer.num_layers * layer.num_directions
    h0 = rng.standard_normal((LD, B, layer.out_size))
    state = (h0, rng.standard_normal((LD, B, layer.hidden_size))) if isinstance(layer, numrnn.LSTM) else h0
    return rng.standard_normal(shape), state


@pytest.fixture
def one_thread_path_refused(monkeypatch):
    """Fails a call that falls back to the one-thread kernel, so a test knows the split ran."""
    def refuse(*args):
        raise AssertionError("the call ran on one thread")
    monkeypatch.setattr(infer, "stack_forward", refuse)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, options", CASES)
def test_split_call_equals_one_thread(cls, options, dtype, monkeypatch):
    rng = np.random.default_rng(11)
    layer = cls(5, 40, dtype=dtype, seed=3, **options)
    for T, B, lengths in ((7, 4, [7, 3, 1, 5]), (2, 3, [2, 1, 2]), (1, 1, [1])):
        x, state = inputs(layer, T, B, rng)
        want = outputs(layer.eval()(x, state, lengths=np.array(lengths)))
        stack_forward = infer.stack_forward
        monkeypatch.setattr(infer, "stack_forward", None)      # the split must not fall back
        for threads in (2, 3):
            got = outputs(layer.eval(threads=threads)(x, state, lengths=np.array(lengths)))
            for g, w in zip(got, want):
                assert g.shape == w.shape and g.dtype == w.dtype
                if T * B <= 8:      # the same kernels throughout: equal to the bit
                    np.testing.assert_array_equal(g, w)
                else:               # the input projection is OpenBLAS on a share of the columns
                    assert rel(g, w) <= TOL[dtype]
        monkeypatch.setattr(infer, "stack_forward", stack_forward)


def test_streaming_with_threads_equals_whole(one_thread_path_refused):
    rng = np.random.default_rng(5)
    layer = numrnn.LSTM(8, 48, num_layers=2, seed=1).eval(threads=2)
    x, state = inputs(layer, 6, 2, rng)
    whole, (h, c) = layer(x, state)
    first, s = layer(x[:3], state)
    second, (h2, c2) = layer(x[3:], s)
    for g, w in ((np.concatenate([first, second]), whole), (h2, h), (c2, c)):
        assert rel(g, w) <= TOL[np.float32]


@pytest.mark.parametrize("case", ["proj_size", "batch of 9"])
def test_calls_the_split_does_not_take_run_on_one_thread(case):
    rng = np.random.default_rng(2)
    layer = numrnn.LSTM(4, 24, proj_size=5, seed=2) if case == "proj_size" else numrnn.GRU(4, 24, seed=2)
    x, state = inputs(layer, 5, 9 if case == "batch of 9" else 2, rng)
    want = outputs(layer.eval()(x, state))
    got = outputs(layer.eval(threads=2)(x, state))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert "_infer_team" not in layer.__dict__


@pytest.mark.parametrize("threads", [0, 9, 1.5, True, "2"])
def test_a_bad_thread_count_is_refused(threads):
    with pytest.raises(ValueError, match="threads must be an integer in 1..8"):
        numrnn.GRU(3, 4).eval(threads=threads)


def test_many_calls_in_a_row_stay_equal(one_thread_path_refused):
    """Races between the parts (a barrier passed early, a row read before it is written) would
    show as a result that differs from the first: 3000 calls, every one compared."""
    rng = np.random.default_rng(9)
    layer = numrnn.GRU(6, 64, num_layers=2, seed=4).eval(threads=2)
    x, state = inputs(layer, 2, 3, rng)
    want = outputs(layer(x, state))
    for _ in range(3000):
        for g, w in zip(outputs(layer(x, state)), want):
            np.testing.assert_array_equal(g, w)


def threads_now():
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
def test_helper_threads_live_as_long_as_the_block():
    numrnn.LSTM(4, 32, seed=1).eval()(np.ones((2, 1, 4), np.float32))     # whatever else starts threads, first
    gc.collect()        # and earlier tests' layers, with their helper threads, go now rather than mid-test
    before = threads_now()
    layer = numrnn.LSTM(4, 32, seed=1).eval(threads=3)
    layer(np.ones((2, 1, 4), np.float32))
    assert threads_now() == before + 2
    layer.eval(threads=2)
    layer(np.ones((2, 1, 4), np.float32))
    assert threads_now() == before + 1     # the team of 3 stopped when the count changed
    del layer
    gc.collect()
    assert threads_now() == before


FORK = """
import os, sys
import numpy as np
import numrnn
layer = numrnn.GRU(8, 64, num_layers=2, seed=1).eval(threads=2)
x = np.ones((3, 2, 8), np.float32)
want, _ = layer(x)
for use in (True, False):       # a child that calls the layer, and one that only exits
    pid = os.fork()
    if pid == 0:
        if use:
            got, _ = layer(x)
            assert np.array_equal(got, want)
        sys.exit(0)             # a normal exit: the finalizers run in the child too
    _, status = os.waitpid(pid, 0)
    print(use, os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_neither_hangs_nor_joins_threads_it_does_not_have():
    """After fork only the forking thread exists in the child: it starts its own helpers when it
    calls the layer, and its exit does not wait for the parent's."""
    done = subprocess.run([sys.executable, "-c", FORK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["True", "0", "False", "0"], done.stdout + done.stderr


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_makes_its_own_threads(how, one_thread_path_refused):
    """A copied layer does not share (or wait forever on) the original's helper threads."""
    layer = numrnn.LSTM(4, 32, seed=1).eval(threads=2)
    x = np.random.default_rng(3).standard_normal((3, 2, 4)).astype(np.float32)
    want, _ = layer(x)
    twin = copy.deepcopy(layer) if how == "deepcopy" else pickle.loads(pickle.dumps(layer))
    assert twin.inference_threads == 2
    for block in (twin, layer):
        got, _ = block(x)
        np.testing.assert_array_equal(got, want)
    assert twin._infer_team is not layer._infer_team
