"""The Tagger and its masked loss: backward against float64 finite differences and against PyTorch
(bidirectional, sentences of different lengths), padding that changes nothing, and its weights
file read back by numrnn and PyTorch and checked before anything is built."""
import json

import numpy as np
import pytest
from finite_diff import numeric_grad
from finite_diff import rel_err as rel

import numrnn
from numrnn.losses import masked_cross_entropy

RNG = np.random.default_rng(2024)
V, C, T, B = 7, 4, 5, 3
LENGTHS = np.array([5, 2, 4])


def tiny(cell="lstm", dtype=np.float64, **kw):
    return numrnn.Tagger(V, C, embedding_dim=3, cell=cell, hidden_size=3, dtype=dtype, seed=5, **kw)


def batch():
    return RNG.integers(0, V, (T, B)), RNG.integers(0, C, (T, B))


@pytest.mark.parametrize("cell,kw", [("lstm", {}), ("gru", dict(num_layers=2)), ("rnn", dict(bidirectional=False)),
                                     ("lstm", dict(proj_size=2))])
def test_tagger_backward_matches_finite_differences(cell, kw):
    tagger = tiny(cell, **kw)
    tokens, targets = batch()
    loss = lambda: masked_cross_entropy(tagger(tokens, lengths=LENGTHS)[0], targets, LENGTHS)[0]
    scores, _ = tagger(tokens, lengths=LENGTHS)
    _, dscores = masked_cross_entropy(scores, targets, LENGTHS)
    tagger.zero_grad()
    tagger.backward(dscores)
    for name, p in tagger.params.items():
        assert rel(tagger.grads[name], numeric_grad(loss, p)) < 1e-6, name


def torch_tagger(torch, tagger):
    """The PyTorch module a Tagger file describes: submodules embedding, rnn, head."""
    cfg = tagger.config()
    rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cfg["cell"]]
    extra = dict(proj_size=cfg["proj_size"]) if cfg["cell"] == "lstm" else {}
    directions = 2 if cfg["bidirectional"] else 1
    model = torch.nn.Module()
    model.embedding = torch.nn.Embedding(cfg["vocab_size"], cfg["embedding_dim"])
    model.rnn = rnn_cls(cfg["embedding_dim"], cfg["hidden_size"], num_layers=cfg["num_layers"],
                        bidirectional=cfg["bidirectional"], **extra)
    model.head = torch.nn.Linear(directions * (cfg["proj_size"] or cfg["hidden_size"]), cfg["num_labels"])
    return model.double() if cfg["dtype"] == "float64" else model


@pytest.mark.parametrize("cell,dtype,tol", [("lstm", np.float64, 1e-10), ("gru", np.float64, 1e-10),
                                            ("lstm", np.float32, 1e-5)])
def test_tagger_matches_pytorch_with_lengths(cell, dtype, tol):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    tagger = tiny(cell, dtype, num_layers=2)
    ref = torch_tagger(torch, tagger)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in tagger.state_dict().items()})
    tokens, targets = batch()
    scores, _ = tagger(tokens, lengths=LENGTHS)
    loss, dscores = masked_cross_entropy(scores, targets, LENGTHS)
    tagger.zero_grad()
    tagger.backward(dscores)
    packed = pack_padded_sequence(ref.embedding(torch.from_numpy(tokens)), torch.from_numpy(LENGTHS),
                                  enforce_sorted=False)
    out, _ = pad_packed_sequence(ref.rnn(packed)[0], total_length=T)
    t_scores = ref.head(out)
    valid = np.arange(T)[:, None] < LENGTHS[None, :]
    ignored = torch.from_numpy(np.where(valid, targets, -100))
    t_loss = torch.nn.functional.cross_entropy(t_scores.reshape(-1, C), ignored.reshape(-1), ignore_index=-100)
    t_loss.backward()
    assert rel(scores[valid], t_scores.detach().numpy()[valid]) < tol
    assert abs(loss - t_loss.item()) < tol * abs(t_loss.item())
    grads = dict(ref.named_parameters())
    assert set(grads) == set(tagger.grads)
    for k, p in grads.items():
        assert rel(tagger.grads[k], p.grad.numpy()) < tol, k


def test_padding_changes_nothing():
    """Other tokens and targets past each length: the same scores on the valid steps, the same loss,
    the same gradients, bit for bit."""
    tagger = tiny("lstm", num_layers=2)
    valid = np.arange(T)[:, None] < LENGTHS[None, :]
    results = []
    for _ in range(2):
        tokens, targets = batch()
        if results:
            tokens = np.where(valid, first_tokens, tokens)
            targets = np.where(valid, first_targets, targets)
        else:
            first_tokens, first_targets = tokens, targets
        scores, _ = tagger(tokens, lengths=LENGTHS)
        loss, dscores = masked_cross_entropy(scores, targets, LENGTHS)
        tagger.zero_grad()
        tagger.backward(dscores)
        results.append((scores[valid], loss, dscores, {k: g.copy() for k, g in tagger.grads.items()}))
    assert not np.array_equal(first_tokens[~valid], tokens[~valid])      # the padding did change
    (s0, l0, d0, g0), (s1, l1, d1, g1) = results
    np.testing.assert_array_equal(s0, s1)
    assert l0 == l1
    np.testing.assert_array_equal(d0, d1)
    assert not d0[~valid].any()
    for k in g0:
        np.testing.assert_array_equal(g0[k], g1[k], err_msg=k)


def test_masked_loss_is_the_mean_over_valid_steps():
    scores, targets = RNG.standard_normal((T, B, C)), RNG.integers(0, C, (T, B))
    loss, _ = masked_cross_entropy(scores, targets, LENGTHS)
    logp = scores - np.log(np.exp(scores).sum(axis=2, keepdims=True))
    expected = -np.mean([logp[t, b, targets[t, b]] for b in range(B) for t in range(LENGTHS[b])])
    assert abs(loss - expected) < 1e-12
    with pytest.raises(ValueError, match="lengths must be in 1..5"):
        masked_cross_entropy(scores, targets, np.array([6, 1, 1]))


def test_file_round_trip_and_pytorch_names(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file
    tagger = tiny("gru", np.float32, proj_size=0, bidirectional=True)
    tagger.metadata.update(vocabulary=json.dumps([f"w{i}" for i in range(V)]), labels='["O", "B-X", "I-X", "S-X"]')
    path = tmp_path / "tagger.safetensors"
    numrnn.save(tagger, path)
    back = numrnn.load(path)
    assert isinstance(back, numrnn.Tagger) and back.config() == tagger.config()
    tokens, _ = batch()
    np.testing.assert_array_equal(back(tokens, lengths=LENGTHS)[0], tagger(tokens, lengths=LENGTHS)[0])
    ref = torch_tagger(torch, tagger)
    ref.load_state_dict(load_file(str(path)))     # every name and shape PyTorch expects
    assert dict(numrnn.Tagger.param_shapes(**tagger.config())) == {k: v.shape for k, v in tagger.params.items()}


@pytest.mark.parametrize("change,message", [
    (lambda meta, t: meta.update(config=json.dumps(dict(json.loads(meta["config"]), num_labels=10**9))),
     "do not fit together"),
    (lambda meta, t: meta.update(config=json.dumps(dict(json.loads(meta["config"]), bidirectional=False))),
     "do not fit together"),
    (lambda meta, t: meta.update(labels='["O", "O", "B-X", "I-X"]'), "labels metadata is not a list of 4"),
    (lambda meta, t: meta.update(vocabulary='["a"]'), "vocabulary metadata is not a list of 7"),
])
def test_damaged_tagger_files_are_refused_before_building(tmp_path, change, message):
    from safetensors import safe_open
    from safetensors.numpy import save_file
    tagger = tiny("lstm", np.float32)
    tagger.metadata.update(vocabulary=json.dumps([f"w{i}" for i in range(V)]), labels='["O", "B-X", "I-X", "S-X"]')
    path = str(tmp_path / "t.safetensors")
    numrnn.save(tagger, path)
    with safe_open(path, framework="np") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    change(meta, tensors)
    save_file(tensors, path, metadata=meta)
    with pytest.raises(numrnn.WeightsFileError, match=message):
        numrnn.load(path)
