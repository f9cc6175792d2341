"""`numrnn tag-train` and `numrnn tag`, in-process, on the small CoNLL files in tests/data: the train
-> tag round trip, metrics, resume equal to a straight run, the built-in character task, and bad
input ending with a one-line message and exit code 2, the --out/--metrics/--resume checks included
(the ones `numrnn train` makes, shared in cli.py)."""
import json
import os

import numpy as np
import pytest

import numrnn
from numrnn import conll, serialize
from numrnn.cli import main

HERE = os.path.dirname(__file__)
TRAIN = os.path.join(HERE, "data", "tagger_train.conll")
DEV = os.path.join(HERE, "data", "tagger_dev.conll")
TINY = ["--hidden-size", "16", "--embedding-dim", "8", "--batch-size", "8"]


def tag_train(out, *extra):
    return main(["tag-train", "--data", TRAIN, "--dev", DEV, *TINY, "--out", str(out), *extra])


def test_train_then_tag_round_trip(tmp_path, capsys, monkeypatch):
    out, metrics = tmp_path / "tagger.safetensors", tmp_path / "m.jsonl"
    assert tag_train(out, "--steps", "150", "--eval-every", "50", "--lr", "0.02", "--metrics", str(metrics)) == 0
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 50, 100, 150]
    model = numrnn.load(out)
    assert isinstance(model, numrnn.Tagger) and model.bidirectional and model.hidden_size == 16
    capsys.readouterr()
    assert main(["tag", str(out), "--input", DEV]) == 0
    printed = capsys.readouterr()
    sentences = conll.read_conll(DEV)
    blocks = [block.splitlines() for block in printed.out.strip("\n").split("\n\n")]
    assert [[line.split("\t")[0] for line in b] for b in blocks] == [toks for toks, _ in sentences]
    predicted = [[line.split("\t")[1] for line in b] for b in blocks]
    expected = conll.score([labs for _, labs in sentences], predicted)
    assert printed.err.splitlines() == conll.report(expected)
    assert records[-1]["accuracy"] == pytest.approx(expected["accuracy"])
    # the dev file's sentences with unseen names included; a broken model stays near the O baseline
    assert expected["accuracy"] > 0.9 and expected["entities"]["f1"] > 0.8
    # unlabelled input, from standard input: labels only, no scores
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("Zora\nQuist\nvisited\nLima\n.\n"))
    assert main(["tag", str(out)]) == 0
    printed = capsys.readouterr()
    assert [line.split("\t")[0] for line in printed.out.split()[::2]] == ["Zora", "Quist", "visited", "Lima", "."]
    assert printed.err == ""


def test_resume_equals_straight_run(tmp_path):
    straight, split = tmp_path / "straight.safetensors", tmp_path / "split.safetensors"
    flags = ["--eval-every", "3", "--cell", "gru", "--no-bidirectional"]
    assert tag_train(straight, "--steps", "6", *flags) == 0
    assert tag_train(split, "--steps", "3", *flags) == 0
    assert main(["tag-train", "--resume", str(split), "--steps", "6"]) == 0
    a, b = serialize.read(straight)[1], serialize.read(split)[1]
    assert set(a) == set(b) and any(k.startswith("training.optimizer") for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not numrnn.load(split).bidirectional


def test_builtin_character_task(tmp_path, capsys):
    out = tmp_path / "chars.safetensors"
    assert main(["tag-train", "--steps", "2", "--eval-every", "2", "--hidden-size", "4", "--embedding-dim", "4",
                 "--out", str(out)]) == 0
    source = tmp_path / "snippet.py"
    source.write_text("def f(x):\n    return x + 1\n")
    capsys.readouterr()
    assert main(["tag", str(out), "--input", str(source)]) == 0
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert [json.loads(line.split("\t")[0]) for line in lines if line] == list(source.read_text())
    assert printed.err.startswith("accuracy ") and "entities:" in printed.err
    source.write_text("")
    one_line_error(capsys, ["tag", str(out), "--input", str(source)], "is empty: nothing to label")


def one_line_error(capsys, argv, fragment):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and fragment in err, err
    return err


def test_bad_files_end_with_one_line_and_exit_2(tmp_path, capsys):
    no_label = tmp_path / "no_label.conll"
    no_label.write_text("Ada B-PER\nvisited\n")
    one_line_error(capsys, ["tag-train", "--data", str(no_label)], "line 2: expected a token and its label")
    latin = tmp_path / "latin1.conll"
    latin.write_bytes("caf\xe9 O\n".encode("latin-1"))
    one_line_error(capsys, ["tag-train", "--data", str(latin)], "is not UTF-8 text")
    one_line_error(capsys, ["tag-train", "--data", str(tmp_path / "nope.conll")], "no such file")
    few = tmp_path / "few.conll"
    few.write_text("Ada B-PER\n\nOslo B-LOC\n")
    one_line_error(capsys, ["tag-train", "--data", str(few), "--out", str(tmp_path / "x")], "too few to hold out")
    dev_bad = tmp_path / "dev.conll"
    dev_bad.write_text("Ada B-ANIMAL\n")
    one_line_error(capsys, ["tag-train", "--data", TRAIN, "--dev", str(dev_bad)], "B-ANIMAL")

    out = tmp_path / "t.safetensors"
    assert tag_train(out, "--steps", "1") == 0
    one_line_error(capsys, ["tag", str(out), "--input", str(dev_bad)], "label(s) not in the model's label set")
    one_line_error(capsys, ["tag", str(out), "--input", str(tmp_path / "missing.conll")], "no such file")
    lm = tmp_path / "lm.safetensors"
    numrnn.save(numrnn.LanguageModel(5, 2, hidden_size=3), lm)
    one_line_error(capsys, ["tag", str(lm)], "holds a LanguageModel")
    one_line_error(capsys, ["generate", str(out)], "holds a Tagger, not a character LanguageModel")
    one_line_error(capsys, ["tag-train", "--resume", str(lm)], "not a checkpoint written by `numrnn tag-train`")
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(out.read_bytes()[:200])
    one_line_error(capsys, ["tag", str(damaged)], "damaged.safetensors")
    one_line_error(capsys, ["tag-train", "--resume", str(out), "--hidden-size", "32"],
                   "--hidden-size 32 (the checkpoint has 16)")


# --out, --metrics and --resume as `numrnn train` checks them (tests/test_cli_stumbles.py): refused
# before training with one line and exit code 2

@pytest.fixture
def tagger(tmp_path, capsys):
    out = tmp_path / "done.safetensors"
    assert tag_train(out, "--steps", "2", "--eval-every", "2") == 0
    capsys.readouterr()
    return str(out)


def test_out_or_metrics_on_an_input_file_is_refused(tmp_path, capsys):
    data, dev = tmp_path / "train.conll", tmp_path / "dev.conll"
    data.write_bytes(open(TRAIN, "rb").read())
    dev.write_bytes(open(DEV, "rb").read())
    link = tmp_path / "other-name.conll"
    os.link(data, link)                     # the same file under another name
    flags = ["--data", str(data), "--dev", str(dev), *TINY, "--steps", "2"]
    for argv, fragment in ((["--out", str(data)], f"--out {data} is the --data file"),
                           (["--out", str(link)], f"--out {link} is the --data file"),
                           (["--out", str(dev)], f"--out {dev} is the --dev file"),
                           (["--metrics", str(data), "--out", str(tmp_path / "t.safetensors")],
                            f"--metrics {data} is the --data file")):
        err = one_line_error(capsys, ["tag-train", *flags, *argv], fragment)
        assert "training would write over the text" in err
    assert data.read_bytes() == open(TRAIN, "rb").read() and dev.read_bytes() == open(DEV, "rb").read()


def test_an_existing_file_is_replaced_only_when_told(tagger, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    one_line_error(capsys, ["tag-train", "--data", TRAIN, "--out", str(notes)],
                   f"--out {notes} exists and is not a numrnn checkpoint; choose another path, or pass --overwrite")
    assert notes.read_text() == "my notes\n"
    one_line_error(capsys, ["tag-train", "--data", TRAIN, "--dev", DEV, *TINY, "--steps", "3", "--out", tagger],
                   f"--out {tagger} already holds a numrnn checkpoint (2 steps); continue it with --resume "
                   f"{tagger}, or pass --overwrite")
    assert serialize.read(tagger)[0]["steps"] == "2"
    assert tag_train(tagger, "--steps", "3", "--overwrite") == 0
    assert serialize.read(tagger)[0]["steps"] == "3"


def test_out_is_checked_before_training(tmp_path, capsys):
    capsys.readouterr()
    assert tag_train(tmp_path, "--steps", "2") == 2
    captured = capsys.readouterr()
    assert f"--out {tmp_path} is a folder; give a file path" in captured.err and "training" not in captured.out
    one_line_error(capsys, ["tag-train", "--data", TRAIN, "--out", str(tmp_path / "no" / "t.safetensors")],
                   f"folder {tmp_path / 'no'} does not exist")
    if os.path.isdir("/proc"):        # not writable, even for root
        one_line_error(capsys, ["tag-train", "--data", TRAIN, "--out", "/proc/t.safetensors"],
                       "--out /proc/t.safetensors: cannot write in folder /proc")


@pytest.mark.parametrize("steps", ["1", "2", None])
def test_resume_to_fewer_steps_is_an_error(tagger, steps, capsys):
    # the checkpoint's own --steps is 2: without --steps the finished run has nothing left to do
    what = f"--steps {steps}: {tagger}" if steps else tagger
    one_line_error(capsys, ["tag-train", "--resume", tagger] + (["--steps", steps] if steps else []),
                   f"{what} has already trained 2 steps; pass --steps above 2 to continue")


def test_dropout_without_layers_to_act_between_is_one_warning(tmp_path, capsys):
    assert tag_train(tmp_path / "d.safetensors", "--steps", "1", "--dropout", "0.3") == 0
    assert capsys.readouterr().err == "numrnn tag-train: warning: --dropout 0.3 has no effect with --num-layers 1 " \
                                      "(dropout acts between layers)\n"
