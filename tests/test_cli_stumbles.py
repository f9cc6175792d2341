"""`numrnn train` where a new user stumbled (issue 14): each case ends with a one-line message and
exit code 2 before any training, or behaves as documented. Numbers follow the issue's list."""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import numrnn
from numrnn import engine, serialize, trainer
from numrnn.cli import main

TINY = ["--hidden-size", "8", "--embedding-dim", "4", "--seq-len", "8", "--batch-size", "4"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "code.txt"
    path.write_text("".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(60)), encoding="utf-8")
    return str(path)


def train(*argv):
    return main(["train", *TINY, *argv])


def error(capsys):
    """The one stderr line of a failed command (and no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture
def model(text_file, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert train("--data", text_file, "--steps", "2", "--out", str(out)) == 0
    capsys.readouterr()
    return str(out)


def test_1_new_characters_in_the_text_are_named(text_file, model, capsys):
    with open(text_file, "a", encoding="utf-8") as f:
        f.write(" \u00fc\u00e9\n")
    assert main(["train", "--resume", model, "--steps", "4"]) == 2
    err = error(capsys)
    assert "the vocabulary of the data changed: 27 symbols now vs 25 in the checkpoint" in err
    assert "new: '\u00e9', '\u00fc'" in err


def test_2_out_or_metrics_on_the_data_file_is_refused(text_file, tmp_path, capsys):
    before = open(text_file, "rb").read()
    link = tmp_path / "other-name.txt"
    os.link(text_file, link)               # the same file under another name
    for argv in (["--out", text_file], ["--out", str(link)],
                 ["--out", str(tmp_path / "m.safetensors"), "--metrics", text_file]):
        assert train("--data", text_file, "--steps", "2", *argv) == 2
        assert "is the --data file; training would write over the text" in error(capsys)
    assert open(text_file, "rb").read() == before


def test_2_an_existing_file_is_replaced_only_when_told(text_file, model, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert train("--data", text_file, "--steps", "2", "--out", str(notes)) == 2
    assert f"--out {notes} exists and is not a numrnn checkpoint; choose another path, or pass --overwrite" \
        in error(capsys)
    assert notes.read_text() == "my notes\n"
    assert train("--data", text_file, "--steps", "3", "--out", model) == 2
    assert f"--out {model} already holds a numrnn checkpoint (2 steps); continue it with --resume {model}, " \
           f"or pass --overwrite" in error(capsys)
    assert serialize.read(model)[0]["steps"] == "2"
    assert train("--data", text_file, "--steps", "3", "--out", model, "--overwrite") == 0
    assert serialize.read(model)[0]["steps"] == "3"


def test_3_resume_compares_the_text_not_the_path(text_file, tmp_path, monkeypatch, capsys):
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path / "runs")
    assert train("--data", "../code.txt", "--steps", "2", "--out", "m.safetensors") == 0
    config = json.loads(serialize.read("m.safetensors")[0]["training_config"])
    assert config["data"] == text_file           # stored as an absolute path
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", "runs/m.safetensors", "--steps", "3", "--data", "code.txt"]) == 0
    assert main(["train", "--resume", "runs/m.safetensors", "--steps", "4"]) == 0      # the saved path
    capsys.readouterr()
    edited = tmp_path / "edited.txt"
    edited.write_text(open(text_file).read().replace("return", "retunr"))     # same characters, other text
    assert main(["train", "--resume", "runs/m.safetensors", "--steps", "5", "--data", str(edited)]) == 2
    assert f"--data {edited} differs from the text runs/m.safetensors was trained on ({text_file}, sha256" \
        in error(capsys)


def test_4_out_is_checked_before_training(text_file, tmp_path, capsys):
    assert train("--data", text_file, "--steps", "2", "--out", str(tmp_path)) == 2
    captured = capsys.readouterr()
    assert f"--out {tmp_path} is a folder; give a file path" in captured.err and "training" not in captured.out
    if os.path.isdir("/proc"):        # not writable, even for root
        assert train("--data", text_file, "--steps", "2", "--out", "/proc/m.safetensors") == 2
        assert "--out /proc/m.safetensors: cannot write in folder /proc" in error(capsys)


@pytest.mark.parametrize("steps", ["1", "2", None])
def test_5_resume_to_fewer_steps_is_an_error(model, steps, capsys):
    # the checkpoint's own --steps is 2: without --steps the finished run has nothing left to do
    assert main(["train", "--resume", model] + (["--steps", steps] if steps else [])) == 2
    what = f"--steps {steps}: {model}" if steps else model
    assert f"{what} has already trained 2 steps; pass --steps above 2 to continue" in error(capsys)


def test_9_data_folder_dropout_warning_and_dtype(text_file, tmp_path, capsys):
    assert train("--data", str(tmp_path), "--out", str(tmp_path / "m.safetensors")) == 2
    assert f"--data: {tmp_path} is a folder; give a UTF-8 text file" in error(capsys)
    assert train("--data", text_file, "--steps", "1", "--dropout", "0.3", "--out", str(tmp_path / "d.safetensors")) == 0
    err = capsys.readouterr().err
    assert err == "numrnn train: warning: --dropout 0.3 has no effect with --num-layers 1 (dropout acts " \
                  "between layers)\n"
    with pytest.warns(UserWarning, match="dropout=0.3 has no effect with num_layers=1"):
        numrnn.LanguageModel(5, 3, hidden_size=4, dropout=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        numrnn.LanguageModel(5, 3, hidden_size=4, num_layers=2, dropout=0.3)
    # documented: input of another float dtype is converted to the layer's (the C API relies on it)
    layer = numrnn.GRU(3, 4, seed=0)
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    out64, _ = layer(x)
    out32, _ = layer(x.astype(np.float32))
    assert out64.dtype == np.float32
    np.testing.assert_array_equal(out64, out32)


def test_10_compiling_is_announced_only_when_the_cache_lacks_the_kernels(text_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.safetensors"
    assert train("--data", text_file, "--steps", "1", "--out", str(out)) == 0        # compiled by now
    assert engine.kernels_cached("lstm", np.float32)
    assert "compiling kernels" not in capsys.readouterr().out
    empty = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "empty-cache"))
    probe = "import numpy, numrnn.engine as e; print(e.kernels_cached('lstm', numpy.float32))"
    assert subprocess.run([sys.executable, "-c", probe], env=empty, capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    monkeypatch.setattr(engine, "kernels_cached", lambda cell, dtype: False)
    assert train("--data", text_file, "--steps", "1", "--out", str(out), "--overwrite") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "compiling kernels (first run only)..." and lines[2].startswith("step 0/1")


def test_11_a_resumed_run_shows_its_own_time(model, monkeypatch, capsys):
    real = trainer.restore

    def restore_after_an_hour(*args):
        state, progress = real(*args)
        progress["elapsed_s"] += 3600.0       # as if the first run had trained an hour
        return state, progress

    earlier = 3600.0 + json.loads(serialize.read(model)[0]["trainer_state"])["elapsed_s"]
    monkeypatch.setattr(trainer, "restore", restore_after_an_hour)
    assert main(["train", "--resume", model, "--steps", "4"]) == 0
    out = capsys.readouterr().out
    step_line = [line for line in out.splitlines() if line.startswith("step 4/4")][0]
    words = step_line.split()                           # [..., "3s", "(total", "3604s)"]
    run_s, total = int(words[-3].rstrip("s")), int(words[-1].rstrip("s)"))
    assert run_s < 600 and abs(total - run_s - earlier) <= 1      # each rounded on its own
    assert "4 steps, val ppl" in out and "s in all, with the earlier runs)" in out
    assert json.loads(serialize.read(model)[0]["trainer_state"])["elapsed_s"] > 3600
