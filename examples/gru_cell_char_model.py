"""A character-level language model written as a hand-written loop over numrnn.GRUCell, in the
shape of min-char-rnn: forward over t, then backward over reversed t carrying dh_next, Adagrad,
sampling. The GRU's backward is numrnn's tape (one cell.backward per step, newest first); the
one-hot input and the softmax head are plain NumPy. Not the project's trainer (numrnn's CLI).

    python examples/gru_cell_char_model.py [text_file] [iterations]
"""
import sys

import numpy as np

import numrnn

TEXT = """\
the cell reads one character at a time and keeps a small state between them. after each
character it guesses the next one, and every guess it gets wrong makes it change a little.
at first it writes noise; later it writes words that look like these, because these are
the only words it has ever seen. the cell reads, the cell guesses, the cell learns.
"""

data = open(sys.argv[1]).read() if len(sys.argv) > 1 else TEXT
iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
chars = sorted(set(data))
V = len(chars)
ix = {ch: i for i, ch in enumerate(chars)}
print(f"data has {len(data)} characters, {V} unique")

# hyperparameters
H = 64            # hidden size
seq_length = 25   # steps of truncated BPTT
learning_rate = 0.1

rng = np.random.default_rng(0)
cell = numrnn.GRUCell(V, H, dtype=np.float64, seed=0)
Why = rng.standard_normal((V, H)) * 0.01   # [V, H] softmax head
by = np.zeros(V)                            # [V]


def one_hot(i):
    x = np.zeros((1, V))   # [B=1, V]
    x[0, i] = 1.0
    return x


def softmax(y):
    e = np.exp(y - y.max())
    return e / e.sum()


def loss_fun(inputs, targets, h):
    """Forward over the chunk, then backward through the cell's tape in reverse.
    Returns the loss, dWhy, dby and the last state; cell.grads receives the GRU's gradients."""
    hs, ps, loss = {}, {}, 0.0
    for t, i in enumerate(inputs):
        h = cell(one_hot(i), h)                 # pushes this step onto the tape
        hs[t] = h
        ps[t] = softmax(h[0] @ Why.T + by)
        loss -= np.log(ps[t][targets[t]])
    dWhy, dby = np.zeros_like(Why), np.zeros_like(by)
    dh_next = np.zeros((1, H))
    for t in reversed(range(len(inputs))):
        dy = ps[t].copy()
        dy[targets[t]] -= 1.0                   # softmax + cross-entropy
        dWhy += np.outer(dy, hs[t][0])
        dby += dy
        dh = dy[None] @ Why + dh_next
        _, dh_next = cell.backward(dh)          # pops step t, adds into cell.grads
    return loss, dWhy, dby, h


def sample(h, seed_ix, n):
    out, i = [], seed_ix
    for _ in range(n):
        h = cell(one_hot(i), h)
        i = rng.choice(V, p=softmax(h[0] @ Why.T + by))
        out.append(chars[i])
    cell.reset()                                # sampling needs no backward
    return "".join(out)


mem_cell, mem_Why, mem_by = np.zeros_like(cell.flat_params), np.zeros_like(Why), np.zeros_like(by)
smooth_loss = -np.log(1.0 / V) * seq_length
p, h = 0, None
for n in range(iterations + 1):
    if p + seq_length + 1 >= len(data) or n == 0:
        h, p = None, 0                          # back to the start of the text, fresh state
    inputs = [ix[ch] for ch in data[p:p + seq_length]]
    targets = [ix[ch] for ch in data[p + 1:p + seq_length + 1]]
    cell.zero_grad()
    loss, dWhy, dby, h = loss_fun(inputs, targets, h)
    smooth_loss = smooth_loss * 0.999 + loss * 0.001
    if n % 250 == 0:
        print(f"iter {n:5d}  loss {smooth_loss:.3f}")
    # Adagrad over the cell's one flat buffer and the head
    for param, grad, mem in ((cell.flat_params, cell.flat_grads, mem_cell), (Why, dWhy, mem_Why), (by, dby, mem_by)):
        np.clip(grad, -5, 5, out=grad)
        mem += grad * grad
        param -= learning_rate * grad / np.sqrt(mem + 1e-8)
    p += seq_length

print("----\n" + sample(None, ix["t"], 200) + "\n----")
