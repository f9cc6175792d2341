"""Training checkpoints: one numrnn weights file holding the LanguageModel and everything a resumed
run needs to continue bit for bit (optimizer state, step, dropout RNG, the RNN state carried by
sequential partitioning, running loss, the training configuration and the corpus fingerprint).

The model's tensors and metadata are what numrnn.save writes, so numrnn.load and `numrnn generate`
read a checkpoint as a model; the trainer's tensors sit under "training." (see serialize.py).
"""
import json

import numpy as np

from numrnn import serialize
from numrnn.device import as_numpy
from numrnn.language_model import LanguageModel


def save_checkpoint(path, model, optimizer, state, progress, config):
    """state: the carried RNN state (None, h [L, B, P], or (h, c)); progress: JSON-able dict of
    step, running loss, elapsed time, last evaluation; config: the training configuration dict."""
    tensors, opt_scalars = {}, []
    opt = optimizer.state_dict()
    for i, block_state in enumerate(opt.pop("state")):
        opt_scalars.append({k: v for k, v in block_state.items() if not isinstance(v, np.ndarray)})
        tensors.update({f"optimizer.{i}.{k}": v for k, v in block_state.items() if isinstance(v, np.ndarray)})
    if state is not None:
        h, c = state if isinstance(state, tuple) else (state, None)
        tensors["state.h"] = as_numpy(h)     # copied from the device when training on a GPU
        if c is not None:
            tensors["state.c"] = as_numpy(c)
    trainer = dict(progress, optimizer_state=opt_scalars,
                   dropout_rng=model.rnn._dropout_rng.bit_generator.state)
    model.metadata.update(steps=str(progress["step"]), training_config=json.dumps(config),
                          trainer_state=json.dumps(trainer))
    if progress.get("val_loss") is not None:
        model.metadata.update(val_loss=f"{progress['val_loss']:.6f}", val_ppl=f"{np.exp(progress['val_loss']):.4f}")
    serialize.save(model, path, training=tensors)


def read_checkpoint(path):
    """The metadata of a training checkpoint (WeightsFileError for any other file)."""
    meta, _ = serialize.read(path)
    if meta["type"] != LanguageModel.__name__ or "training_config" not in meta:
        raise serialize.WeightsFileError(f"{path} is not a training checkpoint written by `numrnn train` "
                                         f"(it holds a {meta['type']})")
    return meta


def read_config(path):
    """The training configuration a checkpoint was written with, and the steps it has trained."""
    meta = read_checkpoint(path)
    return json.loads(meta["training_config"]), int(meta["steps"])


def restore(path, model, optimizer):
    """Load a checkpoint's weights, optimizer state and dropout RNG into `model` and `optimizer`;
    returns (carried state, progress dict)."""
    meta, tensors = serialize.read(path)
    prefix = serialize.TRAINING
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(prefix)})
    training = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    trainer = json.loads(meta["trainer_state"])
    opt = {k: v for k, v in optimizer.state_dict().items() if k != "state"}
    opt["state"] = []
    for i, scalars in enumerate(trainer.pop("optimizer_state")):
        arrays = {k.split(".", 2)[2]: v for k, v in training.items() if k.startswith(f"optimizer.{i}.")}
        opt["state"].append(dict(scalars, **arrays))
    optimizer.load_state_dict(opt)
    model.rnn._dropout_rng.bit_generator.state = trainer.pop("dropout_rng")
    model.metadata.update({k: v for k, v in meta.items() if k not in serialize.RESERVED})
    state = None
    if "state.h" in training:
        state = (training["state.h"], training["state.c"]) if "state.c" in training else training["state.h"]
    return state, trainer
