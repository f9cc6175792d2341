"""Generating text: LanguageModel.encode/decode/generate, greedy and nucleus sampling on constructed
distributions, seeds, and the `numrnn generate`, `info` and `--version` commands that share them."""
import importlib.metadata
import json

import numpy as np
import pytest

import numrnn
from numrnn.cli import _printable, main
from numrnn.generate import pick, probabilities

CHARS = ["\n", "\t", " ", "a", "b", "c", "d", "\u00e9"]


def tiny_lm(cell="lstm", seed=0):
    lm = numrnn.LanguageModel(len(CHARS), 4, cell=cell, hidden_size=8, num_layers=2, seed=seed)
    lm.metadata["vocabulary"] = json.dumps(CHARS)
    return lm


def fixed_lm(p):
    """A LanguageModel whose next-character distribution is `p` whatever the input: a zero head
    weight and log(p) as the head's bias."""
    lm = tiny_lm()
    lm.head.params["weight"][:] = 0
    lm.head.params["bias"][:] = np.log(p)
    return lm


P = np.array([0.02, 0.03, 0.05, 0.40, 0.10, 0.30, 0.06, 0.04])   # likeliest: a, c, b, d, ' ', \xe9, \t, \n


def test_encode_decode_round_trip_and_errors():
    lm = tiny_lm()
    ids = lm.encode("ab\tc\n\u00e9")
    np.testing.assert_array_equal(ids, [3, 4, 1, 5, 0, 7])
    assert lm.decode(ids) == "ab\tc\n\u00e9" and lm.decode([]) == ""
    with pytest.raises(ValueError, match="'z'"):
        lm.encode("abz")
    with pytest.raises(ValueError, match=r"0\.\.7"):
        lm.decode([1, 8])
    bare = numrnn.LanguageModel(5, 3, hidden_size=4, seed=0)
    with pytest.raises(ValueError, match="no vocabulary"):
        bare.encode("a")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_greedy_is_the_argmax_chain(cell):
    """temperature 0 against argmax recomputed from scratch over the whole text at every step
    (no carried state, no sampler)."""
    lm = tiny_lm(cell, seed=3).eval()
    chains = ""
    for prompt in ["ab ", "\t\u00e9", "dd\n", "cccc"]:
        got = lm.generate(prompt, 20, temperature=0, top_p=0.3, seed=7)
        text = prompt
        for _ in range(20):
            logits, _ = lm(lm.encode(text)[:, None])
            text += CHARS[int(np.argmax(logits[-1, 0]))]
        assert got == text[len(prompt):], prompt
        chains += got
    assert len(set(chains)) > 1, "constant chains would not tell greedy from a stuck sampler"


def test_top_p_keeps_the_smallest_set_reaching_the_mass():
    logits = np.log(P)
    # cumulative mass in order a, c, b, d, ...: 0.4, 0.7, 0.8, 0.86; no top_p sits on a boundary
    for top_p, nucleus in [(0.05, {3}), (0.35, {3}), (0.41, {3, 5}), (0.75, {3, 5, 4}), (0.81, {3, 5, 4, 6}),
                           (1.0, set(range(8)))]:
        q = probabilities(logits, 1.0, 0, top_p)
        assert set(np.flatnonzero(q)) == nucleus, top_p
        np.testing.assert_allclose(q[sorted(nucleus)], P[sorted(nucleus)] / P[sorted(nucleus)].sum(), rtol=1e-12)


def test_top_p_draws_only_the_nucleus_and_all_of_it():
    rng = np.random.default_rng(0)
    draws = np.array([pick(np.log(P), 1.0, 0, 0.75, rng) for _ in range(3000)])
    counts = np.bincount(draws, minlength=8)
    assert set(np.flatnonzero(counts)) == {3, 4, 5}
    np.testing.assert_allclose(counts[[3, 5, 4]] / 3000, np.array([0.4, 0.3, 0.1]) / 0.8, atol=0.04)


def test_top_p_through_generate():
    text = fixed_lm(P).generate("a", 2000, temperature=1.0, top_p=0.75, seed=1)
    assert set(text) == {"a", "b", "c"}


def test_top_k_and_top_p_combined():
    """top_k first, renormalised, then top_p: {a, c, b} -> a 0.5, c 0.375, b 0.125, so top_p 0.78
    keeps a, c, where top_p 0.78 alone keeps three (mass 0.8) and top_k 3 alone keeps three."""
    logits = np.log(P)
    assert set(np.flatnonzero(probabilities(logits, 1.0, 3, 0.78))) == {3, 5}
    assert set(np.flatnonzero(probabilities(logits, 1.0, 0, 0.78))) == {3, 5, 4}
    assert set(np.flatnonzero(probabilities(logits, 1.0, 3, 1.0))) == {3, 5, 4}
    text = fixed_lm(P).generate("a", 1000, temperature=1.0, top_k=3, top_p=0.78, seed=2)
    assert set(text) == {"a", "c"}


def test_temperature_sharpens_and_zero_is_one_hot():
    logits = np.log(P)
    np.testing.assert_array_equal(probabilities(logits, 0, 0, 1.0), np.eye(8)[3])
    hot, cold = probabilities(logits, 2.0), probabilities(logits, 0.5)
    assert cold[3] > P[3] > hot[3]
    np.testing.assert_allclose(cold, P ** 2 / (P ** 2).sum(), rtol=1e-12)


def test_seed_reproducibility():
    lm = tiny_lm()
    a, b = (lm.generate("a", 40, temperature=1.5, top_k=5, top_p=0.9, seed=11) for _ in range(2))
    others = {lm.generate("a", 40, temperature=1.5, top_k=5, top_p=0.9, seed=s) for s in (12, 13, 14)}
    assert a == b and len(a) == 40 and set(a) <= set(CHARS)
    assert others - {a}


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=-0.1), "temperature must be a number >= 0"),
    (dict(top_k=-1), "top_k must be an integer >= 0"),
    (dict(top_p=0.0), "top_p must be a number > 0 and <= 1"),
    (dict(top_p=1.5), "top_p must be a number > 0 and <= 1"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_lm().generate("a", 3, **kwargs)


@pytest.fixture(scope="module")
def lm_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("lm") / "lm.safetensors")
    numrnn.save(tiny_lm(), path)
    return path


def test_cli_generate_greedy_and_top_p_match_python(lm_file, capsys):
    lm = numrnn.load(lm_file)
    for flags, kwargs in [(["--temperature", "0"], dict(temperature=0)),
                          (["--top-p", "0.6", "--top-k", "4", "--seed", "5"], dict(top_p=0.6, top_k=4, seed=5))]:
        capsys.readouterr()
        assert main(["generate", lm_file, "--prompt", "ab", "--length", "30", *flags]) == 0
        assert capsys.readouterr().out == "ab" + lm.generate("ab", 30, **kwargs) + "\n"


@pytest.mark.parametrize("flags, message", [
    (["--top-p", "1.5"], "--top-p: must be a number > 0.0 and <= 1.0, got 1.5"),
    (["--top-p", "0"], "--top-p: must be a number > 0.0"),
    (["--temperature", "-1"], "--temperature: must be a number >= 0.0"),
])
def test_cli_generate_bad_sampling_flags(lm_file, flags, message, capsys):
    assert main(["generate", lm_file, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_version(capsys, monkeypatch):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"numrnn {importlib.metadata.version('numrnn')}\n"

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "version", not_installed)    # run from a source tree
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"numrnn {numrnn.__version__}\n"


def test_info_lists_the_vocabulary_escaped(lm_file, capsys):
    assert main(["info", lm_file]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("vocabulary"))
    assert line == "vocabulary    8 symbols: \\n \\t ' ' a b c d \u00e9"
    assert [_printable(c) for c in "\\\x00\u200b'"] == ["\\\\", "\\x00", "\\u200b", "'"]


def test_generate_into_a_closed_pipe_stops_quietly(lm_file):
    """`numrnn generate ... | head`: once the reader has gone, generate stops with 141 (128 +
    SIGPIPE, as a C tool would) and no traceback."""
    import subprocess
    import sys
    p = subprocess.Popen([sys.executable, "-m", "numrnn.cli", "generate", lm_file, "--length", "1000000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(p.stdout.read(10)) == 10
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 141 and "Traceback" not in err and err == "", err
