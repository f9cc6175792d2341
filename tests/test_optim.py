"""SGD, Adam and clip_grad_norm against torch.optim / torch.nn.utils on the same gradients, over
several steps, plus the optimiser state round trip."""
import numpy as np
import pytest

import numrnn
from numrnn.optim import SGD, Adam, clip_grad_norm

torch = pytest.importorskip("torch")


def rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b)


def blocks_and_torch(dtype):
    """Two numrnn blocks and torch Parameters holding the same values."""
    blocks = [numrnn.Linear(4, 3, dtype=dtype, seed=0), numrnn.GRU(3, 2, dtype=dtype, seed=1)]
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for b in blocks for p in b.params.values()]
    return blocks, params


def set_grads(blocks, params, rng, scale=1.0):
    for b in blocks:
        b.flat_grads[:] = scale * rng.standard_normal(b.flat_grads.size)
    grads = [g for b in blocks for g in b.grads.values()]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g.copy())


def assert_same(blocks, params, tol):
    ours = [v for b in blocks for v in b.params.values()]
    for a, p in zip(ours, params):
        assert rel(a, p.detach().numpy()) < tol


CASES = [
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    (Adam, torch.optim.Adam, dict(lr=0.01)),
    (Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-6)])
@pytest.mark.parametrize("ours,theirs,kw", CASES)
def test_optimizer_matches_torch(ours, theirs, kw, dtype, tol):
    rng = np.random.default_rng(0)
    blocks, params = blocks_and_torch(dtype)
    opt, ref = ours(blocks, **kw), theirs(params, **kw)
    for _ in range(5):
        set_grads(blocks, params, rng)
        grads_before = [b.flat_grads.copy() for b in blocks]
        opt.step()
        ref.step()
        assert_same(blocks, params, tol)
        for b, g in zip(blocks, grads_before):       # weight decay must not touch the gradients
            np.testing.assert_array_equal(b.flat_grads, g)


@pytest.mark.parametrize("ours,kw", [(SGD, dict(lr=0.1, momentum=0.9)), (Adam, dict(lr=0.01))])
def test_state_dict_round_trip_continues_identically(ours, kw):
    rng = np.random.default_rng(1)
    a, _ = blocks_and_torch(np.float32)
    b, _ = blocks_and_torch(np.float32)
    opt_a, opt_b = ours(a, **kw), ours(b, **kw)
    grads = [[rng.standard_normal(x.flat_grads.size) for x in a] for _ in range(6)]
    for i, g in enumerate(grads):
        for blk, gi in zip(a, g):
            blk.flat_grads[:] = gi
        opt_a.step()
        if i == 2:
            for x, y in zip(a, b):
                y.flat_params[:] = x.flat_params
            opt_b.load_state_dict(opt_a.state_dict())
        if i > 2:
            for blk, gi in zip(b, g):
                blk.flat_grads[:] = gi
            opt_b.step()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.flat_params, y.flat_params)


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(max_norm):
    rng = np.random.default_rng(2)
    blocks, params = blocks_and_torch(np.float64)
    set_grads(blocks, params, rng, scale=3.0)
    total = clip_grad_norm(blocks, max_norm)
    t_total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    assert abs(total - t_total.item()) < 1e-12 * t_total.item()
    grads = [g for b in blocks for g in b.grads.values()]
    for g, p in zip(grads, params):
        assert rel(g, p.grad.numpy()) < 1e-12


def test_composite_blocks_are_expanded():
    lm = numrnn.LanguageModel(5, 2, hidden_size=3, seed=0)
    assert Adam([lm]).blocks == lm.blocks
    lm.zero_grad()
    lm.head.flat_grads[:] = 2.0
    assert clip_grad_norm([lm], 1.0) == pytest.approx(2.0 * np.sqrt(lm.head.flat_grads.size))


def test_bad_hyperparameters_are_refused():
    lin = numrnn.Linear(2, 2)
    with pytest.raises(ValueError, match="lr"):
        SGD([lin], lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        Adam([lin], betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="numrnn blocks"):
        Adam([object()])


def numpy_adam(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
    """Adam's update written as NumPy whole-array operations: the form engine/adam.py compiles."""
    g = g + weight_decay * p if weight_decay else g
    m += (1 - beta1) * (g - m)
    v *= beta2
    v += (1 - beta2) * g * g
    denom = np.sqrt(v) / np.sqrt(1 - beta2 ** step) + eps
    p -= (lr / (1 - beta1 ** step)) * (m / denom)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_kernel_equals_numpy_to_the_bit(dtype, weight_decay):
    rng = np.random.default_rng()
    n = 1003
    lm = numrnn.Linear(n, 1, bias=False, dtype=dtype)     # one block of n parameters
    p = rng.standard_normal(n).astype(dtype)
    lm.flat_params[:] = p
    opt = Adam([lm], lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=weight_decay)
    m, v = np.zeros(n, dtype), np.zeros(n, dtype)
    for step in range(1, 6):
        g = rng.standard_normal(n).astype(dtype)
        lm.flat_grads[:] = g
        opt.step()
        numpy_adam(p, g, m, v, step, 0.01, 0.8, 0.99, 1e-6, weight_decay)
        np.testing.assert_array_equal(lm.flat_params, p)
        np.testing.assert_array_equal(opt.state[0]["exp_avg"], m)
        np.testing.assert_array_equal(opt.state[0]["exp_avg_sq"], v)
