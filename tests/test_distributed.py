"""Data-parallel training under `mpiexec -n 2` (numrnn.distributed, `numrnn train`): equal to one
process (the API in float64, the CLI in float32; LSTM and GRU, both samplings, dropout), checkpoints
that resume on another number of processes, a rank that fails ending every rank within seconds,
mismatched flags and a missing mpi4py refused with a message. The MPI is the one the test extra
installs (MPICH's wheel): its mpiexec sits next to this Python."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from numrnn import serialize
from numrnn.cli import main

BIN = os.path.dirname(sys.executable)
MPIEXEC, NUMRNN = os.path.join(BIN, "mpiexec"), os.path.join(BIN, "numrnn")
HERE = os.path.dirname(os.path.abspath(__file__))
pytestmark = pytest.mark.skipif(not os.path.exists(MPIEXEC), reason="no mpiexec: pip install 'numrnn[mpi]'")

TINY = ["--hidden-size", "12", "--embedding-dim", "4", "--seq-len", "8", "--batch-size", "8", "--eval-every", "10"]
CASES = {"lstm random": ["--sampling", "random"],
         "lstm sequential": ["--sampling", "sequential", "--proj-size", "6"],
         "gru random": ["--cell", "gru", "--sampling", "random", "--num-layers", "2", "--dropout", "0.3"],
         "gru sequential": ["--cell", "gru", "--sampling", "sequential", "--num-layers", "2", "--dropout", "0.3"]}


def mpiexec(*command, n=2, timeout=180, env=None):
    """Run `command` on n processes; a hang fails the test at `timeout` instead of hanging CI."""
    return subprocess.run([MPIEXEC, "-n", str(n), *command], capture_output=True, text=True, timeout=timeout,
                          env=env)


def relative(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(np.asarray(b, np.float64)), 1e-30)


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "code.txt"
    path.write_text("".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(120)), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def runs(text, tmp_path_factory):
    """run(case, n, steps, resume=None) -> (checkpoint, metrics path): `numrnn train` on n processes
    (n=1: in this process), each run once per module."""
    folder, done = tmp_path_factory.mktemp("runs"), {}

    def run(case, n, steps, resume=None):
        key = (case, n, steps, resume)
        if key not in done:
            name = f"{case.replace(' ', '-')}-n{n}-{steps}" + (f"-from-{os.path.basename(resume)[:-12]}" if resume else "")
            out, metrics = folder / f"{name}.safetensors", folder / f"{name}.jsonl"
            argv = (["--resume", resume] if resume else ["--data", text, *TINY, *CASES[case]]) \
                + ["--steps", str(steps), "--out", str(out), "--metrics", str(metrics)]
            if n == 1:
                assert main(["train", *argv]) == 0
            else:
                r = mpiexec(NUMRNN, "train", *argv, n=n)
                assert r.returncode == 0, r.stderr
                assert r.stdout.count("\nsaved ") == 1, r.stdout     # rank 0 alone prints
            done[key] = (str(out), metrics)
        return done[key]
    return run


def test_api_float64_equals_one_process(tmp_path):
    """A hand-written float64 loop on numrnn.distributed over 2 processes vs the same loop in one
    process, 20 steps: weights, losses and carried state to 1e-10."""
    out = tmp_path / "errors.json"
    r = mpiexec(sys.executable, os.path.join(HERE, "mpi", "api_loop.py"), str(out))
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    errors = result["errors"]
    assert result["drift_caught"] == {"lstm": True, "gru": True}
    assert set(errors) == {"lstm random", "lstm sequential", "gru random", "gru sequential"}
    for case, e in errors.items():
        assert e["weights"] < 1e-10 and e["losses"] < 1e-10 and e["state"] < 1e-10, (case, e)
        assert e["moved"] > 0.05, (case, e)     # the weights trained: equality is not that of the start


@pytest.mark.parametrize("case", CASES)
def test_cli_two_processes_equal_one(runs, case):
    """`mpiexec -n 2 numrnn train` vs `numrnn train`, float32, 20 steps: every tensor of the
    checkpoint (weights, Adam's state, the carried state) and the metrics to 1e-5."""
    one, two = runs(case, 1, 20), runs(case, 2, 20)
    a, b = serialize.read(one[0])[1], serialize.read(two[0])[1]
    assert set(a) == set(b)
    for k in a:
        assert a[k].shape == b[k].shape and relative(b[k], a[k]) < 1e-5, (k, relative(b[k], a[k]))
    ma, mb = ([json.loads(line) for line in m.read_text().splitlines()] for m in (one[1], two[1]))
    assert [r["step"] for r in ma] == [r["step"] for r in mb] == [0, 10, 20]
    for ra, rb in zip(ma, mb):
        assert abs(rb["val_loss"] - ra["val_loss"]) < 1e-5 * ra["val_loss"]
        if ra["train_loss"] is not None:
            assert abs(rb["train_loss"] - ra["train_loss"]) < 1e-5 * ra["train_loss"]


def test_checkpoint_resumes_on_another_number_of_processes(runs):
    """A checkpoint written by 2 processes resumes on 1, 2 or 4 and continues: bit for bit on 2 (the
    same arithmetic), to rounding on 1 and 4 (the gradient sums group differently)."""
    case = "gru sequential"        # carried state, dropout masks and a 2-layer GRU
    half = runs(case, 2, 10)[0]
    straight = serialize.read(runs(case, 2, 20)[0])[1]
    again = serialize.read(runs(case, 2, 20, resume=half)[0])[1]
    for k in straight:
        np.testing.assert_array_equal(again[k], straight[k], err_msg=k)
    one_straight = serialize.read(runs(case, 1, 20)[0])[1]
    for n in (1, 4):
        resumed = serialize.read(runs(case, n, 20, resume=half)[0])[1]
        for k in straight:
            assert relative(resumed[k], one_straight[k]) < 1e-5, (n, k)
    assert serialize.read(half)[1]["training.state.h"].shape == (2, 8, 12)     # the global batch's state


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_stops_all(text, tmp_path, how):
    """Rank 1 raises (or is killed) at its third step of a long run: every process has ended within
    seconds, with a message, instead of rank 0 waiting in the next allreduce."""
    failed_at = tmp_path / "failed_at"
    env = dict(os.environ, NUMRNN_FAILED_AT=str(failed_at))
    r = mpiexec(sys.executable, os.path.join(HERE, "mpi", "rank_fails.py"), how, "train", "--data", text, *TINY,
                "--steps", "100000", "--out", str(tmp_path / "m.safetensors"), env=env, timeout=60)
    stopped_after = time.time() - float(failed_at.read_text())
    assert r.returncode != 0
    assert stopped_after < 10, stopped_after
    output = r.stdout + r.stderr
    if how == "raise":
        assert "rank 1 of 2 failed (OSError: [Errno 28] No space left on device" in output, output
    else:
        assert "signal 9" in output, output


def test_an_unexpected_error_before_training_stops_all(text, tmp_path):
    r = mpiexec(sys.executable, os.path.join(HERE, "mpi", "rank_fails.py"), "bug-at-start", "train", "--data", text,
                *TINY, "--out", str(tmp_path / "m.safetensors"), timeout=60)
    assert r.returncode == 1
    assert r.stderr.count("KeyError: 'a bug on rank 1 (raised by the test)'") == 2     # the traceback, rank 0's line
    assert "(rank 1) numrnn: KeyError" in r.stderr


def test_mismatched_settings_and_data_are_refused(text, tmp_path):
    out = str(tmp_path / "m.safetensors")
    common = ["train", "--data", text, *TINY, "--steps", "5", "--out", out]
    r = subprocess.run([MPIEXEC, "-n", "1", NUMRNN, *common, ":", "-n", "1", NUMRNN, *common, "--hidden-size", "8"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "different settings or data" in r.stderr and "rank 1: hidden_size 8 (rank 0: 12)" in r.stderr, r.stderr
    assert r.stderr.count("error") == 1 and "Traceback" not in r.stderr
    assert not os.path.exists(out)
    other = tmp_path / "other.txt"
    other.write_text(open(text).read() + "x = 1\n")
    r = subprocess.run([MPIEXEC, "-n", "1", NUMRNN, *common, ":", "-n", "1", NUMRNN, *common, "--data", str(other)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "rank 1: fingerprint" in r.stderr, r.stderr
    r = mpiexec(NUMRNN, *common, "--batch-size", "7")
    assert r.returncode == 2 and r.stderr.count("--batch-size 7 is the global batch and must divide over the 2 "
                                                "processes") == 1, r.stderr


def test_help_and_version_are_printed_once(text):
    r = mpiexec(NUMRNN, "train", "--help", timeout=60)
    assert r.returncode == 0 and r.stdout.count("usage: numrnn train") == 1 and r.stderr == "", r.stdout + r.stderr
    r = mpiexec(NUMRNN, "--version", timeout=60)
    assert r.returncode == 0 and r.stdout.count("numrnn ") == 1, r.stdout + r.stderr


def test_a_rank_failing_at_start_is_reported_by_rank_0(text, tmp_path):
    """Rank 1 cannot read its --data: it fails before training; rank 0 prints its message and every
    process ends with exit code 2."""
    common = ["train", *TINY, "--steps", "5", "--out", str(tmp_path / "m.safetensors")]
    r = subprocess.run([MPIEXEC, "-n", "1", NUMRNN, *common, "--data", text, ":",
                        "-n", "1", NUMRNN, *common, "--data", str(tmp_path / "missing.txt")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == f"(rank 1) numrnn train: error: --data: no such file: {tmp_path / 'missing.txt'}"


def test_without_mpi4py_a_launcher_is_a_clear_error_and_one_process_does_not_load_mpi(text, tmp_path):
    blocked = tmp_path / "blocked" / "mpi4py"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('mpi4py is blocked by the test')\n")
    env = dict(os.environ, PMI_SIZE="2", PMI_RANK="0", PYTHONPATH=str(blocked.parent))
    r = subprocess.run([NUMRNN, "train", "--data", text, "--out", str(tmp_path / "m.safetensors")],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2
    assert r.stderr.strip() == ("numrnn: error: started by an MPI launcher as 2 processes, but mpi4py is not "
                                "installed; install it with pip install 'numrnn[mpi]'")
    assert main(["train", "--data", text, *TINY, "--steps", "2", "--out", str(tmp_path / "one.safetensors")]) == 0
    assert "mpi4py.MPI" not in sys.modules


def test_adding_problem_example_on_two_processes_prints_the_one_process_losses():
    example = os.path.join(os.path.dirname(HERE), "examples", "adding_problem_mpi.py")
    flags = ["--steps", "20", "--every", "10", "--seq-len", "10", "--hidden-size", "16", "--batch-size", "16"]
    two = mpiexec(sys.executable, example, *flags, timeout=120)
    one = subprocess.run([sys.executable, example, *flags], capture_output=True, text=True, timeout=120)
    assert two.returncode == 0 and one.returncode == 0, two.stderr + one.stderr

    def mse(out, processes):
        lines = out.splitlines()
        assert len(lines) == 2 and all(f"({processes}" in line for line in lines), out    # rank 0 alone prints
        return np.array([[float(line.split("MSE ")[i].split()[0]) for i in (1, 2)] for line in lines])
    np.testing.assert_allclose(mse(two.stdout, "2 processes"), mse(one.stdout, "1 process"), rtol=1e-4)
