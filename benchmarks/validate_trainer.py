"""Validation (not a test): the same character-model recipe trained by numrnn's trainer step and
by PyTorch autograd, from the same initial weights and the same batches; prints both validation
perplexities. They should agree closely: float32 rounding differs, so they drift apart slowly.

    python benchmarks/validate_trainer.py [--steps 300] [--cell lstm] [--hidden-size 128] [--data PATH]
"""
import argparse
import math
import time

import numpy as np
import torch

from numrnn import data
from numrnn.trainer import EVAL_STREAMS, TrainConfig, build, evaluate, train_step


def torch_model(model):
    """A torch module with the LanguageModel's submodule names and a copy of its weights."""
    cfg = model.config()
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cfg["cell"]]
    ref = torch.nn.Module()
    ref.embedding = torch.nn.Embedding(cfg["vocab_size"], cfg["embedding_dim"])
    ref.rnn = rnn(cfg["embedding_dim"], cfg["hidden_size"], num_layers=cfg["num_layers"])
    ref.head = torch.nn.Linear(cfg["hidden_size"], cfg["vocab_size"])
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return ref


def torch_forward(ref, x, state):
    out, state = ref.rnn(ref.embedding(torch.from_numpy(x)), state)
    return ref.head(out), state


def torch_evaluate(ref, ids):
    """Same streams and state carrying as numrnn.trainer.evaluate."""
    B = min(EVAL_STREAMS, len(ids) - 1)
    n = (len(ids) - 1) // B
    x, y = ids[:B * n].reshape(B, n).T, ids[1:B * n + 1].reshape(B, n).T
    with torch.no_grad():
        logits, _ = torch_forward(ref, np.ascontiguousarray(x), None)
        V = logits.shape[-1]
        return torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1)).item()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=data.BUILTIN)
    p.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--eval-every", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = TrainConfig(data=args.data, cell=args.cell, hidden_size=args.hidden_size, steps=args.steps)
    text = data.read_text(cfg.data)
    vocab = data.Vocabulary.from_text(text)
    train_ids, val_ids = data.split(vocab.encode(text))
    batches = data.SAMPLING[cfg.sampling](train_ids, cfg.seq_len, cfg.batch_size, cfg.seed)
    model, optimizer = build(cfg, len(vocab))
    ref = torch_model(model)
    ref_opt = torch.optim.Adam(ref.parameters(), lr=cfg.lr)
    print(f"{cfg.cell} H={cfg.hidden_size} E={cfg.embedding_dim} seq_len={cfg.seq_len} batch={cfg.batch_size} "
          f"Adam lr={cfg.lr} clip={cfg.clip}, {len(train_ids):,} train / {len(val_ids):,} val characters")
    print(f"{'step':>6} {'numrnn val ppl':>15} {'PyTorch val ppl':>16} {'rel diff':>9}")
    state, t_state, times = None, None, [0.0, 0.0]
    for step in range(cfg.steps + 1):
        if step % args.eval_every == 0 or step == cfg.steps:
            ours, theirs = math.exp(evaluate(model, val_ids)), math.exp(torch_evaluate(ref, val_ids))
            print(f"{step:>6} {ours:>15.4f} {theirs:>16.4f} {abs(ours - theirs) / theirs:>9.2e}", flush=True)
        if step == cfg.steps:
            break
        x, y, fresh = batches.batch(step)
        t0 = time.perf_counter()
        _, _, state = train_step(model, optimizer, x, y, None if fresh else state, cfg.clip)
        t1 = time.perf_counter()
        logits, t_state = torch_forward(ref, x, None if fresh else t_state)
        t_state = tuple(s.detach() for s in t_state) if isinstance(t_state, tuple) else t_state.detach()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, len(vocab)), torch.from_numpy(y).reshape(-1))
        ref_opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), cfg.clip)
        ref_opt.step()
        times[0] += t1 - t0
        times[1] += time.perf_counter() - t1
    print(f"training time: numrnn {times[0]:.1f}s, PyTorch {times[1]:.1f}s (1 thread each; shared machine)")


if __name__ == "__main__":
    main()
