"""What a weights file's header must satisfy before numrnn builds anything from it.

A file of a few hundred bytes can name any configuration (num_layers 10**12, hidden_size 10**6),
and building that block first would loop or allocate without bound. So the configuration is
checked against the file's own header, which the safetensors reader has already checked against
the file's size: every configuration field has its constructor argument's JSON type, and the
configuration describes exactly the tensors the file holds (names, shapes, dtype), computed
with the block's own param_shapes (nothing allocated, and no more names generated than the file
has tensors). Then the block's parameters are the file's tensors, so building it costs memory and
time in proportion to the file. Ranges (hidden_size >= 1, dropout in [0, 1)) stay the
constructors' checks, which run before they allocate.
Also here: the metadata numrnn's own tools add (a LanguageModel's or Tagger's vocabulary, a
Tagger's labels, a training checkpoint's configuration and trainer state as far as they decide
what a resumed run builds).
Not here: reading the file, or the messages' path prefix (serialize.py); restoring a checkpoint's
optimizer state (checkpoint.py, which checks its shapes against the blocks). Every check raises
ValueError with what does not fit.
"""
import inspect
import itertools
import json
import math

import numpy as np

DTYPES = {"float32": "F32", "float64": "F64"}    # a numrnn block's dtype -> its tensors' safetensors dtype
NOT_CONFIGURATION = ("self", "device", "seed")   # constructor arguments a file does not set


def parse_json(what, text):
    """json.loads with every failure a ValueError naming `what` (a damaged file can hold invalid
    JSON, integers past Python's digit limit, or nesting deep enough to exhaust the stack)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"its {what} metadata is not valid JSON ({str(e)[:200]})") from None


def _type_error(name, value, default):
    """Why `value` cannot be the constructor argument `name` (its default tells its type; a
    required argument is a size), or None when it can."""
    if isinstance(default, type) and default is not inspect.Parameter.empty:   # dtype=np.float32
        return None if isinstance(value, str) and value in DTYPES else f"must be one of {sorted(DTYPES)}"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be true or false"
    if default is inspect.Parameter.empty or isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        # sizes and counts: at least 1, or 0 where 0 is the default meaning "none" (proj_size)
        minimum = 0 if default == 0 else 1
        return None if value >= minimum else f"must be >= {minimum}"
    if isinstance(default, float):
        ok = isinstance(value, float) and math.isfinite(value) or isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be a finite number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "must be a string"
    return f"has a type numrnn cannot check ({type(default).__name__} default)"


def check_config(cls, config):
    """`config` (a file's parsed configuration) against cls's constructor arguments: a JSON object
    with no unknown and no missing argument, each of its argument's type."""
    if not isinstance(config, dict):
        raise ValueError(f"its configuration is a JSON {type(config).__name__}, not an object of "
                         f"{cls.__name__} arguments")
    params = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
              if name not in NOT_CONFIGURATION}
    problems = []
    unknown = [name for name in config if name not in params]
    if unknown:
        problems.append(f"unknown field(s) {', '.join(repr(n)[:60] for n in unknown[:5])}")
    missing = [name for name, default in params.items() if default is inspect.Parameter.empty and name not in config]
    if missing:
        problems.append(f"missing field(s) {', '.join(missing)}")
    for name, value in config.items():
        why = _type_error(name, value, params[name]) if name in params else None
        if why:
            problems.append(f"{name} {why}, got {json.dumps(value)[:60]}")
    if problems:
        raise ValueError(f"its {cls.__name__} configuration does not fit: " + "; ".join(problems))


def check_tensors(cls, config, header):
    """The tensors a checked `config` describes against `header`: name -> (shape, safetensors
    dtype) of the file's model tensors. Generates at most one name more than the file holds."""
    expected = dict(itertools.islice(cls.param_shapes(**config), len(header) + 1))
    summary = ", ".join(f"{k}={v}" for k, v in config.items() if isinstance(v, int) and not isinstance(v, bool))
    missing = [k for k in expected if k not in header]
    unexpected = [k for k in header if k not in expected]
    wrong = [f"{k} {list(header[k][0])} (expected {list(expected[k])})"
             for k in expected if k in header and tuple(header[k][0]) != tuple(expected[k])]
    problems = []
    if len(expected) > len(header):
        problems.append(f"it describes more tensors than the {len(header)} the file holds")
    if missing:
        problems.append("missing " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    if unexpected:
        problems.append("unexpected " + ", ".join(unexpected[:5]) + (" ..." if len(unexpected) > 5 else ""))
    if wrong:
        problems.append("wrong shape: " + "; ".join(wrong[:5]) + (" ..." if len(wrong) > 5 else ""))
    if problems:
        raise ValueError(f"its {cls.__name__} configuration ({summary}) and its tensors do not fit "
                         f"together: " + " | ".join(problems))


def check_dtypes(config, header):
    """Every tensor (model and training ones) in the dtype the configuration names, as numrnn
    writes them; header: name -> (shape, safetensors dtype)."""
    want = DTYPES[config.get("dtype", np.dtype(np.float32).name)]
    wrong = [f"{k} is {dtype}" for k, (_, dtype) in header.items() if dtype != want]
    if wrong:
        raise ValueError(f"its configuration says dtype {config.get('dtype', 'float32')} ({want}), but "
                         + ", ".join(wrong[:5]) + (" ..." if len(wrong) > 5 else ""))


def check_vocabulary(meta):
    """A LanguageModel's "vocabulary" metadata (what `numrnn train` saves), when present: a JSON
    list of vocab_size distinct strings, token id = index."""
    if "vocabulary" not in meta:
        return
    vocab = parse_json("vocabulary", meta["vocabulary"])
    size = meta["config"]["vocab_size"]
    if not isinstance(vocab, list) or len(vocab) != size or not all(isinstance(v, str) for v in vocab) \
            or len(set(vocab)) != len(vocab):
        raise ValueError(f"its vocabulary metadata is not a list of {size} (vocab_size) distinct strings")


def check_labels(meta):
    """A Tagger's "labels" metadata (what `numrnn tag-train` saves), when present: a JSON list of
    num_labels distinct strings, label id = index."""
    if "labels" not in meta:
        return
    labels = parse_json("labels", meta["labels"])
    size = meta["config"]["num_labels"]
    if not isinstance(labels, list) or len(labels) != size or not all(isinstance(v, str) for v in labels) \
            or len(set(labels)) != len(labels):
        raise ValueError(f"its labels metadata is not a list of {size} (num_labels) distinct strings")


# the training configuration's fields that build the model (trainer.build), so they must be the
# model's own: a checkpoint resumed with hidden_size 10**6 in its training configuration would
# otherwise build that before loading the file's (small) weights
MODEL_FIELDS = ("cell", "hidden_size", "num_layers", "embedding_dim", "dropout", "proj_size")


def check_training(meta):
    """A training checkpoint's metadata (checkpoint.py's format), when present: training_config a
    JSON object whose model fields are the model's configuration, trainer_state a JSON object with
    the fields a resumed run reads first (step, optimizer_state, dropout_rng)."""
    if "training_config" in meta:
        tc = parse_json("training_config", meta["training_config"])
        if not isinstance(tc, dict):
            raise ValueError(f"its training_config metadata is a JSON {type(tc).__name__}, not an object")
        differ = [f"{k} {json.dumps(tc.get(k))[:30]} (the model has {meta['config'][k]!r})"
                  for k in MODEL_FIELDS if tc.get(k) != meta["config"][k]]
        if differ:
            raise ValueError("its training_config does not describe its model: " + ", ".join(differ))
        steps = meta.get("steps")     # the steps trained, which a resumed run starts from
        if not (isinstance(steps, str) and steps.isascii() and steps.isdigit()):
            raise ValueError(f"its steps metadata ({str(steps)[:30]!r}) is not a whole number >= 0")
    if "trainer_state" in meta:
        state = parse_json("trainer_state", meta["trainer_state"])
        ok = isinstance(state, dict) and isinstance(state.get("step"), int) and not isinstance(state["step"], bool) \
            and state["step"] >= 0 and isinstance(state.get("optimizer_state"), list) \
            and all(isinstance(s, dict) for s in state["optimizer_state"]) and isinstance(state.get("dropout_rng"), dict)
        if not ok:
            raise ValueError("its trainer_state metadata is not an object with step (an integer >= 0), "
                             "optimizer_state (a list of objects) and dropout_rng (an object)")
        try:     # what a resumed run sets its dropout generator to (checkpoint.restore)
            np.random.default_rng().bit_generator.state = state["dropout_rng"]
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise ValueError(f"its trainer_state's dropout_rng is not a generator state ({e!r:.100})") from None
