"""device='cuda' training blocks equal their CPU versions: Linear, Embedding, the losses, SGD, Adam,
clipping, the LanguageModel, and a few steps of `numrnn train --device cuda` (with a resume)
against the same run on the CPU, then `numrnn generate --device cuda` from its file. Every
output, gradient and parameter is compared."""
import json

import numpy as np
import pytest
from numba import cuda

import numrnn
from numrnn.cli import main
from numrnn.engine.cuda_blocks import total

TOL = {np.float64: 1e-10, np.float32: 1e-5}


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def host(a):
    return a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)


def assert_grads_equal(cpu, gpu, tol):
    for k, ref in cpu.grads.items():
        assert rel(host(gpu.grads[k]), ref) < tol, ("grad " + k, rel(host(gpu.grads[k]), ref))


@pytest.mark.parametrize("n", [1, 7, 16, 300, 1000])
def test_total_sums_every_element_once(n):
    # under the simulator a launch has at most 16 blocks of 16 threads: 300 and 1000 take the
    # grid-stride loop and the second pass
    a = np.random.default_rng(n).standard_normal(n)
    d = cuda.to_device(a)
    assert abs(total(d) - a.sum()) < 1e-10 * np.abs(a).sum()
    assert abs(total(d, squares=True) - a @ a) < 1e-10 * (a @ a)


@pytest.mark.parametrize("dtype,shape", [(np.float64, (3, 2)), (np.float32, (2, 3, 2)), (np.float64, (5,))])
def test_linear_equals_cpu(dtype, shape):
    rng = np.random.default_rng(1)
    cpu = numrnn.Linear(shape[-1], 5, dtype=dtype, seed=2)
    gpu = numrnn.Linear(shape[-1], 5, dtype=dtype, seed=2, device="cuda")
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape[:-1] + (5,))
    y_ref, dx_ref = cpu(x), cpu.backward(dy)
    y, dx = gpu(x), gpu.backward(dy)                  # numpy in, numpy out
    assert isinstance(y, np.ndarray) and isinstance(dx, np.ndarray)
    assert rel(y, y_ref) < TOL[dtype] and rel(dx, dx_ref) < TOL[dtype]
    assert_grads_equal(cpu, gpu, TOL[dtype])
    yd = gpu(cuda.to_device(x))                        # device in, device out
    assert hasattr(yd, "copy_to_host") and rel(yd.copy_to_host(), y_ref) < TOL[dtype]


def test_linear_without_bias_equals_cpu():
    rng = np.random.default_rng(3)
    cpu = numrnn.Linear(4, 3, bias=False, dtype=np.float64, seed=1)
    gpu = numrnn.Linear(4, 3, bias=False, dtype=np.float64, seed=1, device="cuda")
    x, dy = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    assert rel(gpu(x), cpu(x)) < 1e-10 and rel(gpu.backward(dy), cpu.backward(dy)) < 1e-10
    assert_grads_equal(cpu, gpu, 1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_embedding_equals_cpu_with_repeated_ids(dtype):
    rng = np.random.default_rng(4)
    cpu = numrnn.Embedding(6, 3, dtype=dtype, seed=5)
    gpu = numrnn.Embedding(6, 3, dtype=dtype, seed=5, device="cuda")
    ids = np.array([[0, 5, 2], [2, 2, 5]])              # repeats: the gradient rows add up
    de = rng.standard_normal((2, 3, 3))
    e_ref = cpu(ids)
    cpu.backward(de)
    e = gpu(cuda.to_device(ids))
    assert hasattr(e, "copy_to_host") and rel(e.copy_to_host(), e_ref) < TOL[dtype]
    gpu.backward(cuda.to_device(de))
    assert_grads_equal(cpu, gpu, TOL[dtype])
    assert np.all(host(gpu.grads["weight"])[[1, 3, 4]] == 0)


def test_embedding_refuses_ids_outside_the_table_on_the_device():
    gpu = numrnn.Embedding(4, 2, device="cuda")
    with pytest.raises(ValueError, match=r"ids must be in 0\.\.3"):
        gpu(cuda.to_device(np.array([1, 4])))
    with pytest.raises(ValueError, match=r"ids must be in 0\.\.3, got min -1"):
        gpu(np.array([-1, 2]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_losses_equal_cpu(dtype):
    rng = np.random.default_rng(6)
    z = (3 * rng.standard_normal((4, 2, 7))).astype(dtype)
    t = rng.integers(0, 7, (4, 2))
    loss_ref, dz_ref = numrnn.losses.cross_entropy(z, t)
    loss, dz = numrnn.losses.cross_entropy(cuda.to_device(z), cuda.to_device(t))
    assert isinstance(loss, float) and abs(loss - loss_ref) < TOL[dtype] * abs(loss_ref)
    assert rel(dz.copy_to_host(), dz_ref) < TOL[dtype]
    p, q = rng.standard_normal((3, 5)).astype(dtype), rng.standard_normal((3, 5)).astype(dtype)
    loss_ref, dp_ref = numrnn.losses.mse(p, q)
    loss, dp = numrnn.losses.mse(cuda.to_device(p), q)   # device and host operands mix
    assert abs(loss - loss_ref) < TOL[dtype] * loss_ref and rel(dp.copy_to_host(), dp_ref) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_column_sums_and_cross_entropy_rows_span_blocks_and_strides(dtype):
    # under the simulator a column-sum block is 4 columns x 4 rows of threads and a cross-entropy
    # block 16 threads: 37 x 11 takes 3 blocks and 10 rows per thread, V = 40 three columns a thread
    from numrnn.engine.cuda_steps import col_sums
    rng = np.random.default_rng(9)
    a, out0 = rng.standard_normal((37, 11)).astype(dtype), rng.standard_normal(11).astype(dtype)
    out = cuda.to_device(out0)
    col_sums(out, cuda.to_device(a))
    assert rel(out.copy_to_host(), out0 + a.sum(axis=0)) < TOL[dtype]
    z, t = (3 * rng.standard_normal((5, 40))).astype(dtype), rng.integers(0, 40, 5)
    loss_ref, dz_ref = numrnn.losses.cross_entropy(z, t)
    loss, dz = numrnn.losses.cross_entropy(cuda.to_device(z), cuda.to_device(t))
    assert abs(loss - loss_ref) < TOL[dtype] * abs(loss_ref) and rel(dz.copy_to_host(), dz_ref) < TOL[dtype]


def test_cross_entropy_refuses_targets_outside_the_vocabulary_on_the_device():
    z = cuda.to_device(np.zeros((3, 4)) + np.arange(4))
    with pytest.raises(ValueError, match=r"targets must be in 0\.\.3"):
        numrnn.losses.cross_entropy(z, cuda.to_device(np.array([0, 4, 1])))


@pytest.mark.parametrize("make", [
    lambda ms: numrnn.optim.SGD(ms, lr=0.1),
    lambda ms: numrnn.optim.SGD(ms, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda ms: numrnn.optim.Adam(ms, lr=0.01),
    lambda ms: numrnn.optim.Adam(ms, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
])
def test_optimizers_and_clipping_equal_cpu(make):
    rng = np.random.default_rng(7)
    cpu = [numrnn.Linear(3, 4, dtype=np.float64, seed=1), numrnn.Embedding(5, 2, dtype=np.float64, seed=2)]
    gpu = [numrnn.Linear(3, 4, dtype=np.float64, seed=1, device="cuda"),
           numrnn.Embedding(5, 2, dtype=np.float64, seed=2, device="cuda")]
    opt_cpu, opt_gpu = make(cpu), make(gpu)
    for _ in range(3):
        grads = [rng.standard_normal(b.flat_grads.size) for b in cpu]
        for c, g, v in zip(cpu, gpu, grads):
            c.flat_grads[:] = v
            g._xp.assign(g.flat_grads, v)
        norm_ref = numrnn.optim.clip_grad_norm(cpu, 1.0)
        norm = numrnn.optim.clip_grad_norm(gpu, 1.0)      # clipping is active: the norm is about 4
        assert norm_ref > 1.0 and abs(norm - norm_ref) < 1e-10 * norm_ref
        opt_cpu.step()
        opt_gpu.step()
        for c, g in zip(cpu, gpu):
            assert rel(host(g.flat_grads), c.flat_grads) < 1e-10
            assert rel(host(g.flat_params), c.flat_params) < 1e-10
    state_cpu, state_gpu = opt_cpu.state_dict()["state"], opt_gpu.state_dict()["state"]
    for sc, sg in zip(state_cpu, state_gpu):
        assert sc.keys() == sg.keys()
        for k in sc:
            assert (sc[k] == sg[k]) if not hasattr(sc[k], "shape") else rel(sg[k], sc[k]) < 1e-10, k
    opt_gpu.load_state_dict(opt_cpu.state_dict())        # host state goes back onto the device
    opt_cpu.step()
    opt_gpu.step()
    for c, g in zip(cpu, gpu):
        assert rel(host(g.flat_params), c.flat_params) < 1e-10


@pytest.mark.parametrize("cell,kw", [("lstm", dict(proj_size=2)), ("gru", dict(num_layers=2, dropout=0.5))])
def test_language_model_equals_cpu(cell, kw):
    rng = np.random.default_rng(8)
    args = dict(cell=cell, hidden_size=3, dtype=np.float64, seed=9, **kw)
    cpu = numrnn.LanguageModel(6, 2, **args)
    gpu = numrnn.LanguageModel(6, 2, device="cuda", **args)
    tokens, targets = rng.integers(0, 6, (3, 2)), rng.integers(0, 6, (3, 2))
    logits_ref, state_ref = cpu(tokens)
    logits, state = gpu(tokens)                           # host tokens: host logits and state
    assert isinstance(logits, np.ndarray) and rel(logits, logits_ref) < 1e-10
    for s, s_ref in zip(state if cell == "lstm" else [state], state_ref if cell == "lstm" else [state_ref]):
        assert isinstance(s, np.ndarray) and rel(s, s_ref) < 1e-10
    logits_ref, _ = cpu(tokens)                           # a second forward: a second dropout mask
    _, dz_ref = numrnn.losses.cross_entropy(logits_ref, targets)
    cpu.backward(dz_ref)
    logits_d, _ = gpu(cuda.to_device(tokens))             # device tokens: all on the device
    assert rel(logits_d.copy_to_host(), logits_ref) < 1e-10
    _, dz = numrnn.losses.cross_entropy(logits_d, cuda.to_device(targets))
    gpu.backward(dz)
    assert_grads_equal(cpu, gpu, 1e-10)
    for k, v in gpu.state_dict().items():
        assert isinstance(v, np.ndarray) and np.array_equal(v, cpu.state_dict()[k])


def test_numrnn_train_on_cuda_equals_cpu_and_resumes(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat; the dog sat on the log.\n" * 12)
    runs = {}
    for device in ("cpu", "cuda"):
        out, metrics = tmp_path / f"{device}.safetensors", tmp_path / f"{device}.jsonl"
        common = ["--data", str(text), "--cell", "lstm", "--hidden-size", "4", "--embedding-dim", "3",
                  "--seq-len", "5", "--batch-size", "2", "--sampling", "sequential", "--eval-every", "2",
                  "--device", device, "--out", str(out), "--metrics", str(metrics)]
        assert main(["train", "--steps", "2"] + common) == 0
        assert main(["train", "--steps", "4", "--resume", str(out)] + common[-6:]) == 0
        runs[device] = ([json.loads(line) for line in metrics.read_text().splitlines()],
                        numrnn.load(str(out)).state_dict())
    (m_cpu, w_cpu), (m_gpu, w_gpu) = runs["cpu"], runs["cuda"]
    assert [m["step"] for m in m_gpu] == [0, 2, 4]
    for a, b in zip(m_gpu, m_cpu):
        assert abs(a["val_loss"] - b["val_loss"]) < 1e-5 * b["val_loss"]
        if b["train_loss"] is not None:
            assert abs(a["train_loss"] - b["train_loss"]) < 1e-5 * b["train_loss"]
    for k, ref in w_cpu.items():
        assert rel(w_gpu[k], ref) < 1e-5, k
    capsys.readouterr()
    texts = []
    for device in ("cpu", "cuda"):      # the same file sampled on either device: the same text
        assert main(["generate", str(tmp_path / "cuda.safetensors"), "--length", "30", "--seed", "3",
                     "--prompt", "the ", "--device", device]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and len(texts[0]) == len("the ") + 30 + 1
