"""Loading damaged and hostile weights files: every one is refused with a WeightsFileError that
says what does not fit (or, when the damage is harmless, loads into a block that matches the
file), in time and memory bounded by the file's size, from Python and from the CLI. The same
files through the C interface: tests/c/fuzz_open.c (run by ctest, see test_capi.py)."""
import json
import os
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
from hostile_files import cases, originals
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

import numrnn
from numrnn import serialize
from numrnn.checkpoint import read_config
from numrnn.cli import main

MAX_SECONDS = 1.0         # per file; the files are ~1-3 KB, a refusal takes ~1 ms
MAX_BYTES = 4 << 20       # per file: what Python allocates while loading (tracemalloc sees NumPy's)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return originals(str(tmp_path_factory.mktemp("originals")))


def lstm_file(folder, **changes):
    """A small LSTM's file with configuration fields rewritten (its tensors stay those of
    LSTM(3, 4)): the issue's hostile files."""
    path = str(folder / "lstm.safetensors")
    numrnn.save(numrnn.LSTM(3, 4, seed=0), path)
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
    save_file(load_file(path), path, metadata=dict(meta, config=json.dumps(dict(json.loads(meta["config"]), **changes))))
    return path


def load_bounded(path, loader=numrnn.load):
    """loader(path) under tracemalloc; returns (result or the exception, seconds, peak bytes)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = loader(path)
    except Exception as e:
        result = e
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, seconds, peak


def check_consistent(block, path):
    """A file that loaded: the block is what the file says (type, configuration, every tensor)."""
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys() if not k.startswith(serialize.TRAINING)}
    assert type(block).__name__ == meta["type"]
    assert block.config() == dict(json.loads(meta["config"])), (block.config(), meta["config"])
    state = block.state_dict()
    assert state.keys() == tensors.keys()
    for k, v in tensors.items():
        np.testing.assert_array_equal(state[k], v)


@pytest.mark.parametrize("changes", [dict(num_layers=10**12), dict(num_layers=100000), dict(hidden_size=30000),
                                     dict(hidden_size=10**6), dict(input_size=10**8)],
                         ids=["num_layers_1e12", "num_layers_100000", "hidden_size_30000", "hidden_size_1e6",
                              "input_size_1e8"])
def test_issue_files_are_refused_at_once(tmp_path, changes):
    """The issue's files: 10**12 layers hung, 100000 took 15 s, hidden_size 30000 asked for
    26.8 GiB, 10**6 and input_size 10**8 raised MemoryError."""
    path = lstm_file(tmp_path, **changes)
    error, seconds, peak = load_bounded(path)
    assert isinstance(error, numrnn.WeightsFileError), repr(error)
    field, value = next(iter(changes.items()))
    assert f"{field}={value}" in str(error) and "do not fit together" in str(error), str(error)
    assert seconds < MAX_SECONDS and peak < MAX_BYTES, (seconds, peak)


def test_fuzz(files, tmp_path):
    """Every mutation of every kind of file: a WeightsFileError, or a harmless change that loads
    into a block matching the file; each within MAX_SECONDS and MAX_BYTES. Checkpoints are also
    read as checkpoints (the configuration a resumed run builds from)."""
    outcomes, slowest, total = {"refused": 0, "loaded": 0}, (0.0, ""), time.perf_counter()
    for name, data in cases(files, seed=0):
        path = str(tmp_path / "case.safetensors")
        with open(path, "wb") as f:
            f.write(data)
        result, seconds, peak = load_bounded(path)
        assert not isinstance(result, Exception) or isinstance(result, numrnn.WeightsFileError), \
            f"{name}: {type(result).__name__}: {result}"
        assert seconds < MAX_SECONDS and peak < MAX_BYTES, f"{name}: {seconds:.2f} s, {peak} bytes"
        slowest = max(slowest, (seconds, name))
        if isinstance(result, Exception):
            assert str(result).startswith(path) or path in str(result), f"{name}: {result}"
            outcomes["refused"] += 1
        else:
            check_consistent(result, path)
            outcomes["loaded"] += 1
        if name.startswith("checkpoint/"):
            read, _, _ = load_bounded(path, read_config)      # (configuration, steps) or the refusal
            refused = isinstance(read, numrnn.WeightsFileError)
            assert refused or (isinstance(read[0], dict) and isinstance(read[1], int)), f"{name}: {read!r}"
    print(f"{sum(outcomes.values())} files: {outcomes}, {time.perf_counter() - total:.1f} s, "
          f"slowest {slowest[1]} {slowest[0] * 1e3:.1f} ms")
    assert outcomes["refused"] > 1000 and outcomes["loaded"] > 0


@pytest.mark.parametrize("command", ["info", "generate"])
def test_cli_one_line_error(tmp_path, capsys, command):
    """`numrnn info/generate` on hostile files: one line on stderr, exit 2."""
    lm = numrnn.LanguageModel(6, 3, cell="lstm", hidden_size=4, seed=0)
    lm.metadata["vocabulary"] = json.dumps(list("abcdef"))
    good = str(tmp_path / "lm.safetensors")
    numrnn.save(lm, good)
    with safe_open(good, framework="np") as f:
        meta = f.metadata()
    config = json.loads(meta["config"])
    hostile = {"num_layers": dict(meta, config=json.dumps(dict(config, num_layers=10**12))),
               "hidden_size": dict(meta, config=json.dumps(dict(config, hidden_size=10**6))),
               "vocabulary": dict(meta, vocabulary="[\"a\""),
               "config_nesting": dict(meta, config="[" * 100000)}
    for what, changed in hostile.items():
        path = str(tmp_path / f"{what}.safetensors")
        save_file(load_file(good), path, metadata=changed)
        assert main([command, path]) == 2, what
        err = capsys.readouterr().err
        assert err.startswith(f"numrnn {command}: error: {path}") and err.count("\n") == 1, err


def test_cli_subprocess_no_traceback(tmp_path):
    """The installed command, as a user runs it."""
    path = lstm_file(tmp_path, num_layers=10**12)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", "import sys; from numrnn.cli import main; sys.exit(main())",
                           "info", path], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "num_layers=1000000000000" in done.stderr and time.perf_counter() - start < 30


@pytest.mark.parametrize("fmt", ["pt", None])
def test_pytorch_file_says_how_to_load_it(tmp_path, fmt):
    """A safetensors file saved from PyTorch (with Hugging Face's format "pt" tag, or no metadata):
    the message names it and gives the call that loads it, and that call works."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as torch_save_file
    torch.manual_seed(0)
    module = torch.nn.LSTM(3, 4, num_layers=2)
    path = str(tmp_path / "torch.safetensors")
    torch_save_file(module.state_dict(), path, metadata={"format": fmt} if fmt else None)
    with pytest.raises(numrnn.WeightsFileError) as info:
        numrnn.load(path)
    message = str(info.value)
    assert ("a PyTorch safetensors file (format 'pt')" if fmt else "without numrnn's format tag") in message
    assert "weight_ih_l0 [16, 3]" in message
    snippet = "layer.load_state_dict(safetensors.numpy.load_file(path))"
    assert message.endswith(snippet)
    import safetensors.numpy
    layer = numrnn.LSTM(3, 4, num_layers=2)
    exec(snippet, {"layer": layer, "safetensors": safetensors, "path": path})
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    want = module(torch.tensor(x))[0].detach().numpy()
    assert np.linalg.norm(layer(x)[0] - want) / np.linalg.norm(want) < 1e-5
