"""Linear, Embedding, the losses and LanguageModel: backward against float64 finite differences and
against PyTorch, and the language model's weights file read back by numrnn and by PyTorch."""
import numpy as np
import pytest
from finite_diff import numeric_grad
from finite_diff import rel_err as rel

import numrnn
from numrnn.losses import cross_entropy, mse

RNG = np.random.default_rng(1234)


def finite_differences(f, arrays):
    return [numeric_grad(f, a) for a in arrays]


def test_linear_backward_matches_finite_differences():
    lin = numrnn.Linear(5, 3, dtype=np.float64, seed=0)
    x = RNG.standard_normal((4, 2, 5))
    dy = RNG.standard_normal((4, 2, 3))
    lin(x)
    dx = lin.backward(dy)
    loss = lambda: float(np.sum(lin(x) * dy))
    fd_x, fd_w, fd_b = finite_differences(loss, [x, lin.params["weight"], lin.params["bias"]])
    assert rel(dx, fd_x) < 1e-7
    assert rel(lin.grads["weight"], fd_w) < 1e-7
    assert rel(lin.grads["bias"], fd_b) < 1e-7


def test_embedding_backward_matches_finite_differences():
    emb = numrnn.Embedding(6, 3, dtype=np.float64, seed=0)
    ids = np.array([[0, 5, 5], [2, 0, 1]])          # repeated ids must add up
    de = RNG.standard_normal((2, 3, 3))
    emb(ids)
    assert emb.backward(de) is None
    (fd,) = finite_differences(lambda: float(np.sum(emb(ids) * de)), [emb.params["weight"]])
    assert rel(emb.grads["weight"], fd) < 1e-7


def test_losses_match_finite_differences():
    logits = RNG.standard_normal((3, 2, 7))
    targets = RNG.integers(0, 7, (3, 2))
    _, dlogits = cross_entropy(logits, targets)
    (fd,) = finite_differences(lambda: cross_entropy(logits, targets)[0], [logits])
    assert rel(dlogits, fd) < 1e-7
    pred, target = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))
    _, dpred = mse(pred, target)
    (fd,) = finite_differences(lambda: mse(pred, target)[0], [pred])
    assert rel(dpred, fd) < 1e-7


def tiny_lm(cell, dtype, **kw):
    return numrnn.LanguageModel(7, 3, cell=cell, hidden_size=4, dtype=dtype, seed=3, **kw)


@pytest.mark.parametrize("cell,kw", [("lstm", {}), ("gru", {}), ("rnn", {}),
                                     ("lstm", dict(num_layers=2, proj_size=2))])
def test_language_model_backward_matches_finite_differences(cell, kw):
    lm = tiny_lm(cell, np.float64, **kw)
    tokens = RNG.integers(0, 7, (5, 2))
    dlogits = RNG.standard_normal((5, 2, 7))
    lm(tokens)
    lm.zero_grad()
    lm.backward(dlogits)
    names = list(lm.params)
    fd = finite_differences(lambda: float(np.sum(lm(tokens)[0] * dlogits)), [lm.params[k] for k in names])
    for k, g in zip(names, fd):
        assert rel(lm.grads[k], g) < 1e-6, k     # FD noise ~1e-10 on gradients as small as 1e-5


def torch_lm(torch, lm):
    """The PyTorch module a LanguageModel file describes: submodules embedding, rnn, head."""
    cfg = lm.config()
    rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cfg["cell"]]
    extra = dict(proj_size=cfg["proj_size"]) if cfg["cell"] == "lstm" else {}
    out = cfg["proj_size"] or cfg["hidden_size"]
    model = torch.nn.Module()
    model.embedding = torch.nn.Embedding(cfg["vocab_size"], cfg["embedding_dim"])
    model.rnn = rnn_cls(cfg["embedding_dim"], cfg["hidden_size"], num_layers=cfg["num_layers"], **extra)
    model.head = torch.nn.Linear(out, cfg["vocab_size"])
    return model.double() if cfg["dtype"] == "float64" else model


@pytest.mark.parametrize("cell,dtype,tol", [("lstm", np.float64, 1e-10), ("gru", np.float64, 1e-10),
                                            ("rnn", np.float64, 1e-10), ("lstm", np.float32, 1e-5)])
def test_language_model_matches_pytorch(cell, dtype, tol):
    torch = pytest.importorskip("torch")
    lm = tiny_lm(cell, dtype, num_layers=2)
    ref = torch_lm(torch, lm)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in lm.state_dict().items()})
    tokens = RNG.integers(0, 7, (6, 3))
    targets = RNG.integers(0, 7, (6, 3))
    logits, _ = lm(tokens)
    loss, dlogits = cross_entropy(logits, targets)
    lm.zero_grad()
    lm.backward(dlogits)
    t_logits = ref.head(ref.rnn(ref.embedding(torch.from_numpy(tokens)))[0])
    t_loss = torch.nn.functional.cross_entropy(t_logits.reshape(-1, 7), torch.from_numpy(targets).reshape(-1))
    t_loss.backward()
    assert rel(logits, t_logits.detach().numpy()) < tol
    assert abs(loss - t_loss.item()) < tol * abs(t_loss.item())
    grads = dict(ref.named_parameters())
    assert set(grads) == set(lm.grads)
    for k, p in grads.items():
        assert rel(lm.grads[k], p.grad.numpy()) < tol, k


def test_linear_and_mse_match_pytorch():
    torch = pytest.importorskip("torch")
    lin = numrnn.Linear(5, 2, dtype=np.float64, seed=1)
    ref = torch.nn.Linear(5, 2).double()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in lin.state_dict().items()})
    x, target = RNG.standard_normal((3, 4, 5)), RNG.standard_normal((3, 4, 2))
    loss, dpred = mse(lin(x), target)
    dx = lin.backward(dpred)
    tx = torch.from_numpy(x).requires_grad_()
    t_loss = torch.nn.functional.mse_loss(ref(tx), torch.from_numpy(target))
    t_loss.backward()
    assert abs(loss - t_loss.item()) < 1e-12
    assert rel(dx, tx.grad.numpy()) < 1e-10
    assert rel(lin.grads["weight"], ref.weight.grad.numpy()) < 1e-10
    assert rel(lin.grads["bias"], ref.bias.grad.numpy()) < 1e-10


def test_language_model_file_loads_in_numrnn_and_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file
    lm = tiny_lm("gru", np.float32, num_layers=2)
    lm.metadata["vocabulary"] = '["a", "b", "c", "d", "e", "f", "g"]'
    path = tmp_path / "lm.safetensors"
    numrnn.save(lm, path)
    back = numrnn.load(path)
    assert isinstance(back, numrnn.LanguageModel) and back.config() == lm.config()
    assert back.metadata["vocabulary"] == lm.metadata["vocabulary"]
    tokens = RNG.integers(0, 7, (4, 2))
    expected, _ = lm(tokens)
    np.testing.assert_array_equal(back(tokens)[0], expected)
    tensors = load_file(str(path))
    assert {"embedding.weight", "rnn.weight_ih_l1", "head.weight", "head.bias"} <= set(tensors)
    ref = torch_lm(torch, back)
    ref.load_state_dict(tensors)
    t_logits = ref.head(ref.rnn(ref.embedding(torch.from_numpy(tokens)))[0]).detach().numpy()
    assert rel(expected, t_logits) < 1e-5


def test_failed_load_changes_nothing():
    lm = tiny_lm("lstm", np.float32)
    before = lm.state_dict()
    bad = lm.state_dict()
    bad["embedding.weight"] = bad["embedding.weight"] + 1
    bad["head.bias"] = np.zeros(3, np.float32)       # wrong shape: the whole load must fail
    with pytest.raises(ValueError, match="head"):
        lm.load_state_dict(bad)
    for k, v in lm.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
