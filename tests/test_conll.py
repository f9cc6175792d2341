"""Tagger data and scores (conll.py): CoNLL reading, vocabularies, padding, the built-in corpus's
character labels, and the CoNLL entity scores against hand-worked examples."""
import numpy as np
import pytest

from numrnn import conll
from numrnn.data import DataError

TEXT = """-DOCSTART- -X- O O

EU NNP B-ORG
rejects VBZ O
German JJ B-MISC


call NN O
-DOCSTART- -X- O O
Peter NNP B-PER
Blackburn NNP I-PER"""


def test_parse_conll_blank_lines_docstart_and_last_column():
    sentences = conll.parse_conll(TEXT, "t.conll")
    assert sentences == [(["EU", "rejects", "German"], ["B-ORG", "O", "B-MISC"]),
                         (["call"], ["O"]),
                         (["Peter", "Blackburn"], ["B-PER", "I-PER"])]


def test_parse_conll_unlabelled_and_errors():
    assert conll.parse_conll("a\nb\n\nc\n", "x", labelled=False) == [(["a", "b"], None), (["c"], None)]
    with pytest.raises(DataError, match=r"x line 3: expected a token and its label"):
        conll.parse_conll("a O\n\nb\n", "x")
    with pytest.raises(DataError, match="sentence 1 has some tokens with a label and some without"):
        conll.parse_conll("a O\nb\n", "x", labelled=False)
    with pytest.raises(DataError, match="holds no sentences"):
        conll.parse_conll("\n-DOCSTART- O\n\n", "x")


def test_read_conll_files(tmp_path):
    bad = tmp_path / "latin1.conll"
    bad.write_bytes("caf\xe9 O\n".encode("latin-1"))
    with pytest.raises(DataError, match="is not UTF-8 text"):
        conll.read_conll(str(bad))
    with pytest.raises(DataError, match="no such file"):
        conll.read_conll(str(tmp_path / "missing.conll"))


def test_vocabularies_min_count_and_unknown_words():
    sentences = [(["a", "b", "a"], ["O", "B-X", "O"]), (["a", "c", "b"], ["O", "I-X", "O"])]
    words = conll.Vocab.of_words(sentences, min_count=2)
    assert words.items == [conll.UNK, "a", "b"]              # c seen once: unknown; most frequent first
    assert words.words(["b", "c", "zebra", "a"]) == [2, 0, 0, 1]
    labels = conll.Vocab.of_labels(sentences)
    assert labels.items == ["B-X", "I-X", "O"]
    with pytest.raises(DataError, match=r"dev.conll: label\(s\) not in the model's label set .*: B-Y"):
        labels.labels(["O", "B-Y"], "dev.conll")


def test_pad_gives_lengths_and_zero_padding():
    encoded = [(np.array([3, 4]), np.array([1, 2])), (np.array([5, 6, 7]), np.array([0, 0, 1]))]
    ids, targets, lengths = conll.pad(encoded)
    np.testing.assert_array_equal(ids, [[3, 5], [4, 6], [0, 7]])
    np.testing.assert_array_equal(targets, [[1, 0], [2, 0], [0, 1]])
    np.testing.assert_array_equal(lengths, [2, 3])


def test_chunks_bio_as_conlleval_reads_them():
    assert conll.chunks(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 2), ("LOC", 3, 4)}
    assert conll.chunks(["O", "I-PER", "I-PER"]) == {("PER", 1, 3)}          # I after O starts one
    assert conll.chunks(["B-PER", "I-LOC", "B-LOC", "B-LOC"]) == \
        {("PER", 0, 1), ("LOC", 1, 2), ("LOC", 2, 3), ("LOC", 3, 4)}      # a type change or B ends one


def test_chunks_iobes():
    assert conll.chunks(["S-PER", "B-LOC", "E-LOC", "S-LOC", "O", "B-ORG", "I-ORG", "E-ORG"]) == \
        {("PER", 0, 1), ("LOC", 1, 3), ("LOC", 3, 4), ("ORG", 5, 8)}
    assert conll.chunks(["B-X", "E-X", "I-X"]) == {("X", 0, 2), ("X", 2, 3)}   # E ends one


def test_score_hand_worked_bio():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "B-LOC"]]
    s = conll.score(gold, pred)
    assert s["tokens"] == 6 and s["accuracy"] == pytest.approx(4 / 6)
    # gold: PER 0-2, LOC 3-4, ORG 0-1; found: PER 0-1, LOC 3-4, ORG 0-1, LOC 1-2; correct: LOC, ORG
    e = s["entities"]
    assert (e["gold"], e["predicted"], e["correct"]) == (3, 4, 2)
    assert e["precision"] == pytest.approx(0.5) and e["recall"] == pytest.approx(2 / 3)
    assert e["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    per = s["per_type"]
    assert per["PER"]["f1"] == 0.0 and per["ORG"]["f1"] == 1.0
    assert per["LOC"]["precision"] == 0.5 and per["LOC"]["recall"] == 1.0
    assert per["LOC"]["f1"] == pytest.approx(2 / 3)


def test_score_hand_worked_iobes_and_plain_labels():
    gold = [["S-PER", "O", "B-LOC", "E-LOC"]]
    pred = [["S-PER", "O", "B-LOC", "I-LOC"]]   # LOC 2-4 either way: I at the end still closes it
    e = conll.score(gold, pred)["entities"]
    assert (e["gold"], e["predicted"], e["correct"], e["f1"]) == (2, 2, 2, 1.0)
    s = conll.score([["NN", "VB"]], [["NN", "NN"]])
    assert s["accuracy"] == 0.5 and "entities" not in s          # not a chunk scheme: accuracy only
    lines = conll.report(conll.score([["B-PER", "O"]], [["B-PER", "O"]]))
    assert lines[0] == "accuracy 100.00% over 2 tokens" and "F1 100.00" in lines[1] and "PER" in lines[2]


def test_character_labels_of_python_source():
    text = "if x1 == 'a':  # c\n    return 42\n"
    labels = conll.character_labels(text)
    expected = (["B-keyword", "I-keyword", "O", "B-name", "I-name", "O", "B-operator", "I-operator", "O",
                 "B-string", "I-string", "I-string", "B-operator", "O", "O", "B-comment", "I-comment",
                 "I-comment", "O"]
                + ["O"] * 4 + ["B-keyword"] + ["I-keyword"] * 5 + ["O", "B-number", "I-number", "O"])
    assert labels == expected
    assert conll.character_labels("x = '''open\n", strict=False) is None
    with pytest.raises(DataError, match="does not tokenize as Python"):
        conll.character_labels("x = '''open\n")


def test_text_sentences_are_whole_lines_up_to_the_cap(monkeypatch):
    monkeypatch.setattr(conll, "BUILTIN_LINE_CAP", 6)
    text = "ab\ncd\nefghijklmn\no"
    pieces = ["".join(t) for t, _ in conll.text_sentences(text)]
    assert pieces == ["ab\ncd\n", "efghij", "klmn\no"]
    assert "".join(pieces) == text
