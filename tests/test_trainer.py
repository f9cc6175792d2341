"""The trainer and the `numrnn` command, run in-process on a tiny text and a tiny model: resume
equals a straight run bit for bit, the NaN guard, Ctrl-C, atomic checkpoints, generation, and bad
input ending with a clear message and exit code 2."""
import json
import os
import signal

import numpy as np
import pytest

import numrnn
from numrnn import serialize, trainer
from numrnn.cli import main

TINY = ["--hidden-size", "8", "--embedding-dim", "4", "--seq-len", "8", "--batch-size", "4"]


@pytest.fixture
def text_file(tmp_path):
    lines = [f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(60)]
    path = tmp_path / "code.txt"
    path.write_text("".join(lines), encoding="utf-8")
    return str(path)


def tensors(path):
    return serialize.read(path)[1]


def train(text_file, out, *extra):
    return main(["train", "--data", text_file, *TINY, "--out", str(out), *extra])


@pytest.mark.parametrize("flags,split_flags", [
    (["--sampling", "random"], []),
    (["--sampling", "sequential", "--cell", "gru", "--num-layers", "2", "--dropout", "0.3"], []),
    # the first half of a cosine schedule spanning 8 steps, then its second half
    (["--lr-schedule", "cosine", "--warmup", "2"], ["--cosine-steps", "8"]),
    (["--lr-schedule", "step", "--lr-step", "3", "--lr-gamma", "0.5", "--warmup", "1"], [])])
def test_resume_equals_straight_run_bit_for_bit(text_file, tmp_path, flags, split_flags):
    straight, split = tmp_path / "straight.safetensors", tmp_path / "split.safetensors"
    assert train(text_file, straight, "--steps", "8", "--eval-every", "3", *flags) == 0
    assert train(text_file, split, "--steps", "4", "--eval-every", "3", *flags, *split_flags) == 0
    assert main(["train", "--resume", str(split), "--steps", "8", "--eval-every", "3"]) == 0
    a, b = tensors(straight), tensors(split)
    assert set(a) == set(b) and any(k.startswith("training.optimizer") for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    meta_a, meta_b = serialize.read(straight)[0], serialize.read(split)[0]
    assert meta_a["steps"] == meta_b["steps"] == "8" and meta_a["val_loss"] == meta_b["val_loss"]


def test_fine_tuning_with_a_new_rate_is_recorded(text_file, tmp_path):
    out, metrics = tmp_path / "m.safetensors", tmp_path / "metrics.jsonl"
    assert train(text_file, out, "--steps", "4", "--eval-every", "2") == 0
    assert main(["train", "--resume", str(out), "--steps", "8", "--eval-every", "2", "--lr", "1e-3",
                 "--lr-schedule", "cosine", "--metrics", str(metrics)]) == 0
    config = json.loads(serialize.read(out)[0]["training_config"])
    assert (config["lr"], config["lr_schedule"], config["lr_start"], config["cosine_steps"]) == (1e-3, "cosine", 4, 4)
    lrs = [r["lr"] for r in map(json.loads, metrics.read_text().splitlines())]
    # the rate of the last update before each evaluation (steps 6 and 8): updates 5 and 7, that is
    # updates 1 and 3 of the new 4-step schedule
    assert lrs == pytest.approx([1e-3 * (1 + np.cos(np.pi / 4)) / 2, 1e-3 * (1 + np.cos(3 * np.pi / 4)) / 2])
    assert main(["train", "--resume", str(out), "--steps", "10"]) == 2          # past the schedule's end


def test_metrics_info_and_generate(text_file, tmp_path, capsys):
    out, metrics = tmp_path / "m.safetensors", tmp_path / "metrics.jsonl"
    assert train(text_file, out, "--steps", "4", "--eval-every", "2", "--metrics", str(metrics)) == 0
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 2, 4]
    assert set(records[0]) == {"step", "train_loss", "val_loss", "val_ppl", "tokens_per_s", "lr", "elapsed_s"}
    assert records[0]["train_loss"] is None and records[2]["train_loss"] > 0
    assert records[2]["val_ppl"] == pytest.approx(np.exp(records[2]["val_loss"]))
    lm = numrnn.load(out)
    assert isinstance(lm, numrnn.LanguageModel) and lm.hidden_size == 8
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "lstm" in info and "steps         4" in info and "val ppl" in info
    for _ in range(2):
        assert main(["generate", str(out), "--prompt", "def ", "--length", "40", "--seed", "3"]) == 0
    first, second = capsys.readouterr().out.split("def ")[1:]
    assert first == second and len(first) >= 40     # deterministic for a seed


def test_nan_loss_stops_and_keeps_last_good_checkpoint(text_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "nan.safetensors"
    real, calls = trainer.cross_entropy, []

    def poisoned(logits, targets):
        calls.append(1)
        loss, d = real(logits, targets)
        training_steps = len(calls) - 2      # evaluations at step 0 and step 3 also call it, once each here
        return (float("nan"), d) if training_steps >= 5 else (loss, d)

    monkeypatch.setattr(trainer, "EVAL_CHUNK", 10 ** 6)     # one evaluation call per evaluation
    monkeypatch.setattr(trainer, "cross_entropy", poisoned)
    assert train(text_file, out, "--steps", "10", "--eval-every", "3") == 1
    err = capsys.readouterr().err
    assert "loss became nan" in err and "last good checkpoint (step 3)" in err
    meta, t = serialize.read(out)
    assert meta["steps"] == "3" and all(np.isfinite(v).all() for v in t.values())


def test_ctrl_c_saves_and_exits(text_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "int.safetensors"
    real, calls = trainer.cross_entropy, []

    def interrupting(logits, targets):
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return real(logits, targets)

    monkeypatch.setattr(trainer, "EVAL_CHUNK", 10 ** 6)
    monkeypatch.setattr(trainer, "cross_entropy", interrupting)
    assert train(text_file, out, "--steps", "50", "--eval-every", "20") == 130
    assert "interrupted at step 3" in capsys.readouterr().out
    assert serialize.read(out)[0]["steps"] == "3"
    monkeypatch.setattr(trainer, "cross_entropy", real)
    assert main(["train", "--resume", str(out)]) == 0            # on to the run's own --steps
    assert serialize.read(out)[0]["steps"] == "50"


def test_checkpoint_write_is_atomic(text_file, tmp_path, monkeypatch):
    out = tmp_path / "atomic.safetensors"
    assert train(text_file, out, "--steps", "2", "--eval-every", "2") == 0
    before = out.read_bytes()
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777     # not mkstemp's private 0600

    def die(*args):
        raise KeyboardInterrupt      # the process dies between writing the temporary file and renaming it

    monkeypatch.setattr(serialize.os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        main(["train", "--resume", str(out), "--steps", "4"])
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".numrnn-")] == []
    monkeypatch.undo()
    assert isinstance(numrnn.load(out), numrnn.LanguageModel)


@pytest.mark.parametrize("argv,message", [
    (["train", "--data", "{tmp}/missing.txt"], "no such file"),
    (["train", "--data", "{empty}"], "is empty"),
    (["train", "--data", "{latin1}"], "not UTF-8"),
    (["train", "--cell", "transformer"], "invalid choice: 'transformer'"),
    (["train", "--hidden-size", "-3"], "--hidden-size: must be >= 1, got -3"),
    (["train", "--batch-size", "0"], "--batch-size: must be >= 1"),
    (["train", "--lr", "nan"], "--lr: must be a number > 0.0"),
    (["train", "--dropout", "1.5"], "--dropout: must be a number >= 0.0 and < 1.0"),
    (["train", "--cell", "gru", "--proj-size", "2"], "--proj-size applies to --cell lstm only"),
    (["train", "--device", "cuda"], "device='cuda': "),
    (["train", "--data", "{text}", "--seq-len", "100000"], "too short for one batch"),
    (["train", "--out", "{tmp}/no/such/folder/m.safetensors"], "does not exist"),
    (["train", "--resume", "{tmp}/missing.safetensors"], "no such file"),
    (["train", "--resume", "{model}", "--hidden-size", "16"], "--hidden-size 16 (the checkpoint has 8)"),
    (["generate", "{tmp}/missing.safetensors"], "no such file"),
    (["generate", "{empty}"], "not a readable safetensors file"),
    (["generate", "{model}", "--prompt", "def \u00e9t\u00e9"], "'\u00e9'"),
    (["generate", "{model}", "--temperature", "-1"], "--temperature: must be a number >= 0.0"),
    (["info", "{tmp}/missing.safetensors"], "no such file"),
    (["bogus"], "invalid choice: 'bogus'"),
])
def test_bad_input_gives_message_and_exit_code_2(argv, message, text_file, tmp_path, capsys):
    if not (tmp_path / "m.safetensors").exists():
        (tmp_path / "empty.txt").write_bytes(b"")
        (tmp_path / "latin1.txt").write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
        assert train(text_file, tmp_path / "m.safetensors", "--steps", "1") == 0
    names = dict(tmp=tmp_path, empty=tmp_path / "empty.txt", latin1=tmp_path / "latin1.txt",
                 text=text_file, model=tmp_path / "m.safetensors")
    capsys.readouterr()
    argv = [a.format(**names) for a in argv]
    if argv[0] == "train" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out.safetensors")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_top_k_one_is_greedy_whatever_the_seed():
    from numrnn.data import Vocabulary
    from numrnn.generate import sample
    lm = numrnn.LanguageModel(5, 3, hidden_size=4, seed=0)
    vocab = Vocabulary("abcde")
    greedy = ["".join(sample(lm, vocab, "ab", 12, top_k=1, seed=s)) for s in (0, 1, 2)]
    assert greedy[0] == greedy[1] == greedy[2] and len(greedy[0]) == 12
    varied = {"".join(sample(lm, vocab, "ab", 12, temperature=5.0, seed=s)) for s in (0, 1, 2)}
    assert len(varied) > 1
