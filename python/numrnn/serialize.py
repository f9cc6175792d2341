"""Weights files: numrnn.save / numrnn.load, in safetensors with PyTorch's tensor names.

Metadata (all strings): format = "numrnn/1", type = the block's class name, config = JSON of the
constructor arguments, plus the block's own `metadata` dict (e.g. a language model's vocabulary,
training steps). The tensors are the block's state_dict, so
`torch.nn.LSTM(...).load_state_dict(safetensors.torch.load_file(path))` works on a layer file,
except for numrnn's own LSTM variants (peephole, coupled): their files carry a "pytorch" metadata
entry saying why PyTorch cannot hold them.
A trainer's checkpoint adds its own tensors (optimizer state, carried RNN state) under the
reserved prefix "training."; numrnn.load leaves them out.
Writes are atomic: a temporary file in the same folder, fsync, then rename.
"""
import itertools
import json
import os
import tempfile

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as safetensors_bytes

from numrnn import file_check

FORMAT = "numrnn/1"
RESERVED = ("format", "type", "config", "pytorch")
TRAINING = "training."
# the "format" metadata other libraries write (Hugging Face's convention), and whose files they are
FOREIGN_FORMATS = {"pt": "PyTorch", "np": "NumPy", "tf": "TensorFlow", "flax": "Flax", "mlx": "MLX"}
_TYPES = {}


class WeightsFileError(ValueError):
    """A file that exists but is not a numrnn weights file this version can read."""


def register(cls):
    """Make a block class loadable by name (class decorator)."""
    _TYPES[cls.__name__] = cls
    return cls


def _file_mode(path):
    """The mode of the file being replaced, else 0666 less the umask (as a plain open() gives)."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(path, data):
    """Write bytes so that `path` holds either its old content or all of `data`, never a part."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".numrnn-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))      # mkstemp makes it 0600; give it what open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(obj, path, training=None):
    """Write a block (RNN/LSTM/GRU, or any registered block) to a safetensors file; `training`
    (name -> array) is a trainer's extra state, stored under the "training." prefix."""
    if type(obj).__name__ not in _TYPES:
        raise TypeError(f"numrnn.save: cannot save a {type(obj).__name__}; expected one of {sorted(_TYPES)}")
    extra = {str(k): str(v) for k, v in getattr(obj, "metadata", {}).items() if k not in RESERVED}
    meta = dict(extra, format=FORMAT, type=type(obj).__name__, config=json.dumps(obj.config()))
    why = obj.pytorch_incompatibility() if hasattr(obj, "pytorch_incompatibility") else ""
    if why:
        meta["pytorch"] = "cannot load into PyTorch: " + why
    tensors = {k: np.ascontiguousarray(v) for k, v in obj.state_dict().items()}
    tensors.update({TRAINING + k: np.ascontiguousarray(v) for k, v in (training or {}).items()})
    atomic_write(path, safetensors_bytes(tensors, metadata=meta))


def read(path):
    """(metadata dict, tensors dict) of a numrnn weights file, with every check load() makes. The
    configuration is checked against the header's tensor shapes (file_check.py) before any tensor
    is read, so nothing a file says can make this, or load(), cost more than the file's size."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"numrnn.load: no such file: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"numrnn.load: {path} is a folder, not a weights file")
    try:
        # safe_open checks the header against the file (its length field, offsets within the
        # data and not overlapping, sizes = shape x dtype) before it returns
        with safe_open(path, framework="np") as f:
            meta = f.metadata() or {}
            header = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
            _check(path, meta, header)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except WeightsFileError:
        raise
    except (SafetensorError, OSError, ValueError) as e:
        if isinstance(e, (IsADirectoryError, PermissionError)):
            raise
        raise WeightsFileError(f"{path} is not a readable safetensors file ({e}); numrnn.load reads files "
                               f"written completely by numrnn.save") from None
    return meta, tensors


def _check(path, meta, header):
    """Everything about a file that can be known from its header; parses meta["config"] in place."""
    fmt = meta.get("format")
    if fmt in FOREIGN_FORMATS or fmt is None:
        tensors = ", ".join(f"{k[:60]} {list(shape)}" for k, (shape, _) in itertools.islice(header.items(), 8))
        origin = f"a {FOREIGN_FORMATS[fmt]} safetensors file (format {fmt!r})" if fmt else \
            "a safetensors file without numrnn's format tag"
        raise WeightsFileError(f"{path} is {origin}, not one written by numrnn.save, so it does not say which "
                               f"block to build (its tensors: {tensors}{', ...' if len(header) > 8 else ''}). "
                               f"Build the block with the arguments of the model that wrote it and copy the "
                               f"weights in: layer = numrnn.LSTM(input_size, hidden_size, ...); "
                               f"layer.load_state_dict(safetensors.numpy.load_file(path))")
    if fmt != FORMAT:
        raise WeightsFileError(f"{path} has format {fmt!r}, this numrnn reads {FORMAT!r}: "
                               f"use the numrnn version that wrote it, or re-save it with this one")
    if meta.get("type") not in _TYPES:
        raise WeightsFileError(f"{path} holds a {meta.get('type')!r}, which this numrnn cannot build "
                               f"(known: {sorted(_TYPES)})")
    cls = _TYPES[meta["type"]]
    model = {k: v for k, v in header.items() if not k.startswith(TRAINING)}
    try:
        if "config" not in meta:
            raise ValueError("its configuration metadata is missing")
        meta["config"] = file_check.parse_json("configuration", meta["config"])
        file_check.check_config(cls, meta["config"])
        file_check.check_tensors(cls, meta["config"], model)
        file_check.check_dtypes(meta["config"], header)
        if meta["type"] in ("LanguageModel", "Tagger"):
            file_check.check_vocabulary(meta)
            file_check.check_training(meta)
        if meta["type"] == "Tagger":
            file_check.check_labels(meta)
    except ValueError as e:
        raise WeightsFileError(f"{path}: {e}") from None


def load(path, device="cpu"):
    """Rebuild the block saved at `path` (its class, configuration, weights and metadata)."""
    meta, tensors = read(path)
    cls = _TYPES[meta["type"]]
    try:
        obj = cls(**meta["config"], device=device)
        obj.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(TRAINING)})
    except (TypeError, ValueError) as e:
        raise WeightsFileError(f"{path}: its {meta['type']} configuration or tensors do not fit "
                               f"together ({e})") from None
    obj.metadata = {k: v for k, v in meta.items() if k not in RESERVED}
    return obj
