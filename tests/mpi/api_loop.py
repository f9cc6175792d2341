"""Run by tests/test_distributed.py under `mpiexec -n 2`: a hand-written float64 training loop on
numrnn.distributed (broadcast_parameters, average_gradients, sum) for LSTM and GRU, the state
started fresh at every batch ("random") or carried ("sequential"), against the same loop in one
process, which rank 0 also runs on the CPU. Rank 0 writes the relative differences to argv[1] as
JSON, with whether Communicator.check_identical caught weights one rank had changed. With a
second argument "cuda" the ranks train on device="cuda" (gradients staged through the
host; run under NUMBA_ENABLE_CUDASIM=1 where there is no GPU), a carried LSTM state only, 3 steps."""
import json
import sys

import numpy as np

from numrnn import LanguageModel, distributed
from numrnn.losses import cross_entropy
from numrnn.optim import Adam, clip_grad_norm

V, T, B = 11, 6, 8
DEVICE = sys.argv[2] if len(sys.argv) > 2 else "cpu"
STEPS = 3 if DEVICE == "cuda" else 20


def train(cell, carry, comm, device="cpu"):
    # each rank starts from other weights, so that the broadcast is what makes them equal
    model = LanguageModel(V, 5, cell=cell, hidden_size=12, num_layers=2, dtype=np.float64, device=device,
                          seed=3 + (comm.rank if comm else 0))
    optimizer = Adam(model, lr=1e-2)
    if comm:
        comm.broadcast_parameters(model)
    start = np.concatenate([b._xp.to_host(b.flat_params) for b in model.blocks])
    columns = comm.share(B) if comm else slice(None)
    rng = np.random.default_rng(0)
    state, losses = None, []
    for _ in range(STEPS):
        x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))    # the global batch [T, B]
        logits, new_state = model(x[:, columns], state)
        state = new_state if carry else None
        loss, dlogits = cross_entropy(logits, y[:, columns])
        model.zero_grad()
        model.backward(dlogits)
        if comm:
            comm.average_gradients(model)
            loss = comm.sum([loss])[0] / comm.size
        clip_grad_norm(model, 0.5)
        optimizer.step()
        losses.append(loss)
    weights = np.concatenate([b._xp.to_host(b.flat_params) for b in model.blocks])
    if comm:
        state = comm.gather_columns(state)
        comm.check_identical(model)
        drift[cell] = _drift_is_caught(model, comm)
    h = (state[0] if isinstance(state, tuple) else state) if carry else None
    return weights, np.array(losses), h, relative(weights, start)


def _drift_is_caught(model, comm):
    """Rank 1's weights nudged by one unit in the last place: check_identical must refuse on every rank."""
    p = model.head.flat_params
    saved = p[:1].copy()
    if comm.rank == 1:
        p[:1] = np.nextafter(saved, np.inf)
    try:
        comm.check_identical(model)
        return False
    except distributed.DistributedError:
        return True
    finally:
        p[:1] = saved


def relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


comm = distributed.world()
errors, drift = {}, {}
cells = ("lstm",) if DEVICE == "cuda" else ("lstm", "gru")
samplings = ("sequential",) if DEVICE == "cuda" else ("random", "sequential")
for cell in cells:
    for sampling in samplings:
        carry = sampling == "sequential"
        w, losses, h, _ = train(cell, carry, comm, DEVICE)
        if comm.rank == 0:
            w1, losses1, h1, moved = train(cell, carry, None)
            errors[f"{cell} {sampling}"] = dict(weights=relative(w, w1), losses=relative(losses, losses1),
                                                state=relative(h, h1) if carry else 0.0, moved=moved)
if comm.rank == 0:
    with open(sys.argv[1], "w") as f:
        json.dump(dict(errors=errors, drift_caught=drift), f)
