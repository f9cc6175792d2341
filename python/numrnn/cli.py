"""The `numrnn` command: train, generate, info, export, tag-train, tag. Parses and checks arguments,
then calls the trainer (trainer.py), the sampler (generate.py), the ONNX exporter (onnx_export.py),
the tagger's trainer (tag_trainer.py) or reads a weights file. Bad input ends with a message naming
the problem and exit code 2; a diverged run with 1; Ctrl-C during training saves a checkpoint and
ends with 130. Started by an MPI launcher as several processes, `numrnn train` trains data-parallel
(numrnn.distributed): every rank runs this command, rank 0 alone prints."""
import argparse
import contextlib
import importlib.metadata
import io
import json
import math
import os
import sys
import tempfile
import warnings

from numrnn import conll, data, distributed, onnx_export, serialize
from numrnn.checkpoint import read_config
from numrnn.device import backend
from numrnn.generate import DEFAULT_TEMPERATURE, sample
from numrnn.language_model import CELLS, LanguageModel
from numrnn.module import check_device
from numrnn.schedule import KINDS
from numrnn.train_loop import Diverged
from numrnn.trainer import TrainConfig, train

EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 1, 130
EXIT_BROKEN_PIPE = 141   # 128 + SIGPIPE, what a C tool killed by a closed pipe reports


def _int(minimum):
    def parse(s):
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {v}")
        return v
    return parse


def _float(low, high=None, low_open=False):
    def parse(s):
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
        ok = math.isfinite(v) and (v > low if low_open else v >= low) and (high is None or v < high)
        if not ok:
            bounds = (f"> {low}" if low_open else f">= {low}") + (f" and < {high}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be a number {bounds}, got {s}")
        return v
    return parse


def _parser():
    p = argparse.ArgumentParser(prog="numrnn", description="Character language models with numrnn's "
                                "RNN/LSTM/GRU: hand-written BPTT, no autograd.")
    p.add_argument("--version", action="version", version=f"numrnn {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    d = TrainConfig()

    t = sub.add_parser("train", help="train a character language model",
                       description="Train a character language model. With no flags: an LSTM on the "
                                   "Python standard library's own sources, a few minutes on 2 cores.")
    # defaults are None so that a resumed run can tell a flag given on purpose from a default
    t.add_argument("--data", help="UTF-8 text file (default: the built-in corpus)")
    t.add_argument("--cell", choices=sorted(CELLS), help=f"default {d.cell}")
    _layer_flags(t, d)
    t.add_argument("--seq-len", type=_int(1), help=f"BPTT length; default {d.seq_len}")
    t.add_argument("--batch-size", type=_int(1), help=f"default {d.batch_size}")
    t.add_argument("--steps", type=_int(1), help=f"total optimiser steps; default {d.steps}")
    t.add_argument("--lr", type=_float(0.0, low_open=True), help="peak learning rate; default 3e-3 (adam), "
                                                                 "1.0 (sgd); with --resume: fine-tune at this rate")
    t.add_argument("--lr-schedule", choices=list(KINDS), help=f"default {d.lr_schedule}")
    t.add_argument("--warmup", type=_int(0), help="steps of linear warmup to --lr; default 0")
    t.add_argument("--lr-step", type=_int(1), metavar="N", help="step schedule: multiply the rate by "
                                                                "--lr-gamma every N steps")
    t.add_argument("--lr-gamma", type=_float(0.0, low_open=True), help=f"step schedule's factor; default {d.lr_gamma}")
    t.add_argument("--cosine-steps", type=_int(1), metavar="N", help="cosine schedule: steps until the rate "
                                                                     "reaches 0; default --steps")
    t.add_argument("--optimizer", choices=["adam", "sgd"], help=f"default {d.optimizer}")
    t.add_argument("--clip", type=_float(0.0), help=f"max global gradient norm, 0 = off; default {d.clip}")
    t.add_argument("--sampling", choices=sorted(data.SAMPLING), help=f"minibatch scheme; default {d.sampling}")
    t.add_argument("--eval-every", type=_int(1), help=f"steps between evaluations and checkpoints; "
                                                       f"default {d.eval_every}")
    t.add_argument("--device", choices=["cpu", "cuda"], help="default cpu")
    t.add_argument("--seed", type=_int(0), help=f"default {d.seed}")
    _file_flags(t, "model.safetensors")

    g = sub.add_parser("generate", help="sample text from a trained model")
    g.add_argument("model")
    g.add_argument("--prompt", help="text to start from (default: a newline)")
    g.add_argument("--length", type=_int(0), default=500, help="characters to generate; default 500")
    g.add_argument("--temperature", type=_float(0.0), default=DEFAULT_TEMPERATURE,
                   help=f"0 = greedy (always the likeliest); default {DEFAULT_TEMPERATURE}")
    g.add_argument("--top-k", type=_int(0), default=0, help="sample among the k likeliest; 0 = all (default)")
    g.add_argument("--top-p", type=_float(0.0, low_open=True), default=1.0,
                   help="nucleus: sample among the fewest likeliest whose probability adds up to >= P; "
                        "1 = all (default)")
    g.add_argument("--seed", type=_int(0), default=0, help="default 0")
    g.add_argument("--device", choices=["cpu", "cuda"], default="cpu")

    i = sub.add_parser("info", help="describe a weights file")
    i.add_argument("model")

    e = sub.add_parser("export", help="write a weights file as an ONNX model",
                       description="Write a layer (RNN/LSTM/GRU) or a LanguageModel as an ONNX model made "
                                   "of the standard RNN/LSTM/GRU operators. Needs the onnx package "
                                   "(pip install 'numrnn[onnx]').")
    e.add_argument("model")
    e.add_argument("onnx", metavar="OUT.onnx")

    _tag_parsers(sub)
    sub.metavar = "{" + ",".join(sub.choices) + "}"
    return p


def _tag_parsers(sub):
    """tag-train and tag: sequence labelling (tag_trainer.py, conll.py)."""
    from numrnn.tag_trainer import TagConfig
    d = TagConfig()
    t = sub.add_parser("tag-train", help="train a sequence tagger (CoNLL file or the built-in corpus)",
                       description="Train a tagger: embedding, RNN/LSTM/GRU (bidirectional by default), a "
                                   "label per token. With no --data: the Python standard library's sources, "
                                   "each character labelled with the class of its Python token.")
    # defaults are None so that a resumed run can tell a flag given on purpose from a default
    t.add_argument("--data", help="CoNLL file: a token per line, its label in the last column, a blank "
                                  "line between sentences (default: the built-in corpus)")
    t.add_argument("--dev", help="labelled CoNLL file to evaluate on (default: the last 10%% of --data)")
    t.add_argument("--min-count", type=_int(1), help=f"words seen fewer times become {conll.UNK}; "
                                                      f"default {d.min_count}")
    t.add_argument("--cell", choices=sorted(CELLS), help=f"default {d.cell}")
    t.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, help="default --bidirectional")
    _layer_flags(t, d)
    t.add_argument("--batch-size", type=_int(1), help=f"sentences per step; default {d.batch_size}")
    t.add_argument("--steps", type=_int(1), help=f"total optimiser steps; default {d.steps}")
    t.add_argument("--lr", type=_float(0.0, low_open=True), help="default 3e-3 (adam), 1.0 (sgd)")
    t.add_argument("--optimizer", choices=["adam", "sgd"], help=f"default {d.optimizer}")
    t.add_argument("--clip", type=_float(0.0), help=f"max global gradient norm, 0 = off; default {d.clip}")
    t.add_argument("--eval-every", type=_int(1), help=f"steps between evaluations and checkpoints; "
                                                       f"default {d.eval_every}")
    t.add_argument("--seed", type=_int(0), help=f"default {d.seed}")
    _file_flags(t, "tagger.safetensors")

    g = sub.add_parser("tag", help="label every token with a trained tagger",
                       description="Print one label per token (token, a tab, its label; a blank line between "
                                   "sentences). A CoNLL model reads a token per line; a built-in (character) "
                                   "model reads text. When the input has labels too (a labelled CoNLL file, "
                                   "or Python source for a character model), the scores go to stderr.")
    g.add_argument("model")
    g.add_argument("--input", help="file to label (default: standard input)")


def _layer_flags(t, d):
    """The layer's size flags, the same for train and tag-train; d: the command's default config."""
    t.add_argument("--hidden-size", type=_int(1), help=f"default {d.hidden_size}")
    t.add_argument("--num-layers", type=_int(1), help=f"default {d.num_layers}")
    t.add_argument("--embedding-dim", type=_int(1), help=f"default {d.embedding_dim}")
    t.add_argument("--dropout", type=_float(0.0, 1.0), help=f"between layers; default {d.dropout}")
    t.add_argument("--proj-size", type=_int(0), help="LSTM projection size; default 0 (none)")


def _file_flags(t, default_out):
    """The files a training command writes and resumes, checked alike by _check_out and _resumed."""
    t.add_argument("--out", help=f"checkpoint/model file; default {default_out} (or the --resume file)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    t.add_argument("--metrics", help="append one JSON line per evaluation to this file")
    t.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint")


class BadInput(Exception):
    """Arguments that parse but do not fit together; reported like argparse's errors (exit code 2)."""


def _flag(name):
    return "--" + name.replace("_", "-")


def _given(args, config_class):
    """The flags given on the command line (not None) that are fields of `config_class`."""
    return {k: v for k, v in vars(args).items() if v is not None and k in config_class.__dataclass_fields__}


def _resumed(args, given, read_config, resumable, may_change):
    """(the settings saved in the --resume checkpoint, the steps it has trained), once the flags
    `given` are known to change only settings in `resumable` (named in words by `may_change`) and
    to leave steps to train. read_config: the command's reader of its checkpoints' settings."""
    saved, done = read_config(args.resume)
    saved.pop("fingerprint", None)
    saved.pop("device", None)
    changed = [f"{_flag(k)} {given[k]} (the checkpoint has {saved[k]})"
               for k in given if k in saved and k not in resumable and given[k] != saved[k]]
    if changed:
        raise BadInput("--resume continues a run with its own settings; these differ: " + "; ".join(changed)
                       + f". Only {may_change} may change.")
    steps = given.get("steps", saved["steps"])
    if steps <= done:
        what = f"--steps {steps}: {args.resume}" if "steps" in given else args.resume
        raise BadInput(f"{what} has already trained {done} steps; pass --steps above {done} to continue")
    return saved, done


def _config(args):
    """(the run's TrainConfig, the steps already trained): the flags given over the defaults, or over
    the checkpoint's settings on --resume (where a new rate setting starts a fine-tuning schedule at
    the resume step)."""
    given = _given(args, TrainConfig)
    if not args.resume:
        return TrainConfig(**given), 0
    saved, done = _resumed(args, given, read_config, TrainConfig.RESUMABLE,
                           "--steps, --eval-every, --out, --metrics, --device and the learning-rate flags")
    if any(k in given and given[k] != saved.get(k) for k in TrainConfig.LR_SETTINGS):
        # fine-tuning: a new schedule from this step, spanning the rest of the run unless told
        saved.update(lr_start=done, cosine_steps=None)
    return TrainConfig(**dict(saved, **given)), done


def _check_schedule(cfg, given, done):
    for flag, kind in (("lr_step", "step"), ("lr_gamma", "step"), ("cosine_steps", "cosine")):
        if given.get(flag) is not None and cfg.lr_schedule != kind:
            raise BadInput(f"{_flag(flag)} applies to --lr-schedule {kind} only, not {cfg.lr_schedule}")
    if cfg.lr_schedule == "step" and cfg.lr_step is None:
        raise BadInput("--lr-schedule step needs --lr-step N (the rate is multiplied by --lr-gamma every N steps)")
    if cfg.lr_schedule == "cosine":
        if cfg.warmup >= cfg.cosine_steps:
            raise BadInput(f"--warmup {cfg.warmup} must be shorter than the cosine schedule "
                           f"({cfg.cosine_steps} steps)")
        end = cfg.lr_start + cfg.cosine_steps
        if cfg.steps > end:
            # a --cosine-steps given on --resume starts a new schedule at the resume step
            raise BadInput(f"--steps {cfg.steps} runs past the end of the cosine schedule (step {end}, where the "
                           f"rate reaches 0); pass --cosine-steps {cfg.steps - done} or more")


def _same_file(a, b):
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def _check_out(out, args, inputs, read_config):
    """Refuse, before training, an --out or --metrics that training would fail to write or that
    would destroy something: an input file, a folder, another file. inputs: (flag, path) of the
    files training reads; read_config: the command's reader of its checkpoints' settings."""
    for flag, path in (("--out", out), ("--metrics", args.metrics)):
        for input_flag, source in inputs:
            if path and source and source != data.BUILTIN and _same_file(path, source):
                raise BadInput(f"{flag} {path} is the {input_flag} file; training would write over the text. "
                               f"Choose another path")
    if args.metrics and (_same_file(args.metrics, out) or os.path.abspath(args.metrics) == os.path.abspath(out)):
        raise BadInput(f"--metrics {args.metrics} is the --out file; choose another path")
    if os.path.isdir(out):
        raise BadInput(f"--out {out} is a folder; give a file path, e.g. {os.path.join(out, 'model.safetensors')}")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise BadInput(f"--out {out}: folder {folder} does not exist")
    try:
        tempfile.TemporaryFile(dir=folder).close()     # what the atomic save will need
    except OSError as e:
        raise BadInput(f"--out {out}: cannot write in folder {folder} ({e.strerror})") from None
    if os.path.exists(out) and not args.overwrite and not (args.resume and _same_file(out, args.resume)):
        try:
            held = f"a numrnn checkpoint ({read_config(out)[1]} steps)"
        except (serialize.WeightsFileError, OSError, ValueError):
            raise BadInput(f"--out {out} exists and is not a numrnn checkpoint; choose another path, or pass "
                           f"--overwrite to replace it") from None
        raise BadInput(f"--out {out} already holds {held}; continue it with --resume {out}, or pass "
                       f"--overwrite to replace it")
    if args.metrics:
        try:
            open(args.metrics, "a").close()
        except OSError as e:
            raise BadInput(f"--metrics {args.metrics}: cannot write there ({e.strerror})") from None


def _check_layer(cfg, command, quiet=False):
    """The layer settings both trainers share: refused when they do not fit together; dropout that
    does nothing said here on one line unless quiet (_layer_warning_said then quiets the layer's own
    warning)."""
    if cfg.proj_size and cfg.cell != "lstm":
        raise BadInput(f"--proj-size applies to --cell lstm only, not {cfg.cell}")
    if cfg.proj_size >= cfg.hidden_size:
        raise BadInput(f"--proj-size ({cfg.proj_size}) must be smaller than --hidden-size ({cfg.hidden_size})")
    if cfg.dropout and cfg.num_layers == 1 and not quiet:
        print(f"numrnn {command}: warning: --dropout {cfg.dropout} has no effect with --num-layers 1 (dropout "
              f"acts between layers)", file=sys.stderr)


@contextlib.contextmanager
def _layer_warning_said():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dropout=.* has no effect")
        yield


def _train(args, comm=None):
    """comm: the MPI processes to train on together (numrnn.distributed), or None."""
    cfg, done = _config(args)
    _check_schedule(cfg, vars(args), done)
    rank0 = comm is None or comm.rank == 0
    _check_layer(cfg, args.command, quiet=not rank0)
    if comm and cfg.batch_size % comm.size:
        raise BadInput(f"--batch-size {cfg.batch_size} is the global batch and must divide over the {comm.size} "
                       f"processes; use a multiple of {comm.size}")
    out = args.out or args.resume or "model.safetensors"
    if rank0:       # the only rank that writes
        _check_out(out, args, [("--data", cfg.data)], read_config)
    _device(cfg.device)
    with _layer_warning_said():
        result = train(cfg, out, metrics=args.metrics, resume=args.resume, comm=comm)
    if result["status"] == "interrupted":
        return EXIT_INTERRUPTED
    if not rank0:
        return 0
    earlier = result["elapsed_s"] - result["run_s"]
    print(f"saved {out}: {result['step']} steps, val ppl {result['val_ppl']:.3f}, {result['run_s']:.0f}s"
          + (f" ({result['elapsed_s']:.0f}s in all, with the earlier runs)" if args.resume and earlier else "")
          + f". Try: numrnn generate {out}")
    return 0


def _device(device):
    try:
        backend(check_device(device))
    except RuntimeError as e:
        raise BadInput(str(e)) from None


def _load_lm(path, device):
    _device(device)
    model = serialize.load(path, device=device)
    if not isinstance(model, LanguageModel) or "vocabulary" not in model.metadata:
        raise BadInput(f"{path} holds a {type(model).__name__}, not a character LanguageModel "
                       f"(train one with `numrnn train`)")
    try:
        return model, model.vocabulary
    except ValueError as e:
        raise BadInput(f"{path}: {e}") from None


def _generate(args):
    if args.top_p > 1:
        raise BadInput(f"--top-p: must be a number > 0.0 and <= 1.0, got {args.top_p}")
    model, vocab = _load_lm(args.model, args.device)
    prompt = args.prompt if args.prompt is not None else ("\n" if "\n" in vocab.index else vocab.chars[0])
    if not prompt:
        raise BadInput("--prompt must hold at least one character")
    vocab.encode(prompt)    # a character outside the vocabulary fails here, before any output
    sys.stdout.write(prompt)
    for ch in sample(model, vocab, prompt, args.length, args.temperature, args.top_k, args.top_p, args.seed):
        sys.stdout.write(ch)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _info(args):
    meta, tensors = serialize.read(args.model)
    cfg = meta["config"]
    n_params = sum(v.size for k, v in tensors.items() if not k.startswith(serialize.TRAINING))
    print(f"file          {args.model}")
    print(f"type          {meta['type']}")
    for k, v in cfg.items():
        print(f"{k:<14}{v}")
    print(f"parameters    {n_params:,}")
    if "vocabulary" in meta:
        chars = json.loads(meta["vocabulary"])
        print(f"vocabulary    {len(chars)} symbols: " + " ".join(_printable(c) for c in chars))
    if "steps" in meta:
        print(f"steps         {meta['steps']}")
    if "val_ppl" in meta:
        print(f"val ppl       {meta['val_ppl']}  (val loss {meta['val_loss']} nats/char)")
    if "training_config" in meta:
        tc = json.loads(meta["training_config"])
        print("trained       " + " ".join(f"{k}={v}" for k, v in tc.items() if k != "fingerprint"))
    return 0


def _printable(char):
    """A vocabulary entry as one visible token: Python's escapes (\\n, \\t, \\x00, \\u200b) for
    what does not print and for the backslash itself, so that \\n and \\ differ; a space shown as
    ' ' so that it is not lost between the separators."""
    if char == " ":
        return "' '"
    return char if char.isprintable() and char != "\\" else char.encode("unicode_escape").decode("ascii")


def _export(args):
    try:
        onnx_export.check_onnx()
    except ImportError as e:
        raise BadInput(str(e)) from None
    folder = os.path.dirname(os.path.abspath(args.onnx))
    if os.path.isdir(args.onnx) or not os.path.isdir(folder):
        raise BadInput(f"{args.onnx}: " + ("is a folder; name a file" if os.path.isdir(args.onnx)
                                           else f"folder {folder} does not exist"))
    if os.path.exists(args.onnx) and os.path.exists(args.model) and os.path.samefile(args.onnx, args.model):
        raise BadInput(f"{args.onnx} is the model file itself; name another file for the ONNX model")
    model = serialize.load(args.model)
    try:
        written = onnx_export.export(model, args.onnx)
    except onnx_export.NotExportable as e:
        raise BadInput(str(e)) from None
    print(f"wrote {args.onnx}: {type(model).__name__}, {onnx_export.describe(written)}")
    return 0


def _version():
    """The installed distribution's version; the source tree's when numrnn runs uninstalled."""
    try:
        return importlib.metadata.version("numrnn")
    except importlib.metadata.PackageNotFoundError:
        from numrnn import __version__
        return __version__


def _tag_train(args):
    from numrnn import tag_trainer
    given = _given(args, tag_trainer.TagConfig)
    if args.resume:
        saved, _ = _resumed(args, given, tag_trainer.read_config, tag_trainer.TagConfig.RESUMABLE,
                            "--steps, --eval-every, --out and --metrics")
        cfg = tag_trainer.TagConfig(**dict(saved, **given))
    else:
        cfg = tag_trainer.TagConfig(**given)
    _check_layer(cfg, args.command)
    out = args.out or args.resume or "tagger.safetensors"
    _check_out(out, args, [("--data", cfg.data), ("--dev", cfg.dev)], tag_trainer.read_config)
    with _layer_warning_said():
        result = tag_trainer.train(cfg, out, metrics=args.metrics, resume=args.resume)
    if result["status"] == "interrupted":
        return EXIT_INTERRUPTED
    if result["status"] == "done":
        print(f"saved {out}: {result['step']} steps, accuracy {100 * result['scores']['accuracy']:.2f}%, "
              f"{result['elapsed_s']:.0f}s. Try: numrnn tag {out} --input FILE")
    return 0


def _tag(args):
    from numrnn import tag_trainer
    model, words, labels, kind = tag_trainer.load_tagger(args.model)
    source = args.input or "standard input"
    if args.input is not None and not os.path.isfile(args.input):
        raise BadInput(f"--input: no such file: {args.input}")
    if kind == "characters":
        text = _read_input(args.input)
        if not text:
            raise BadInput(f"{source} is empty: nothing to label")
        sentences = conll.text_sentences(text, conll.character_labels(text, strict=False))
        show = json.dumps
    else:
        sentences = conll.parse_conll(_read_input(args.input), source, labelled=False)
        show = str
    encoded = conll.encode([(toks, None) for toks, _ in sentences], words, labels, source)
    predicted = [[labels.items[i] for i in p] for p in tag_trainer.predict(model, encoded)]
    for (tokens, _), tags in zip(sentences, predicted):
        sys.stdout.write("".join(f"{show(w)}\t{tag}\n" for w, tag in zip(tokens, tags)) + "\n")
    gold = [labs for _, labs in sentences]
    if all(g is not None for g in gold):
        labels.labels([x for g in gold for x in g], source)     # a label the model does not know: a clear error
        for line in conll.report(conll.score(gold, predicted)):
            print(line, file=sys.stderr)
    return 0


def _read_input(path):
    try:
        if path is None:
            return sys.stdin.read()
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise BadInput(f"--input {path or '(standard input)'} is not UTF-8 text ({e})") from None


def main(argv=None):
    if distributed.launched_size() > 1:
        try:
            comm = distributed.world()
        except distributed.DistributedError as e:
            if distributed.launched_rank() == 0:
                print(f"numrnn: error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return distributed.run_main(comm, lambda report: _main(argv, report, comm))
    return _main(argv, lambda message: print(message, file=sys.stderr))


def _main(argv, report, comm=None):
    """The command; report(message) prints an error (under MPI, rank 0 prints every rank's)."""
    parser = _parser()
    said, shown = io.StringIO(), io.StringIO()
    try:
        # under MPI argparse's messages are reported like the others, and --help and --version are
        # printed by rank 0 alone, so that N ranks do not print them N times
        with contextlib.redirect_stderr(said) if comm else contextlib.nullcontext(), \
                contextlib.redirect_stdout(shown) if comm else contextlib.nullcontext():
            args = parser.parse_args(argv)
    except SystemExit as e:       # argparse has printed its message; return the code for in-process callers
        if comm and comm.rank == 0:
            sys.stdout.write(shown.getvalue())
        for line in said.getvalue().splitlines():
            report(line)
        return e.code
    run = {"train": lambda a: _train(a, comm), "generate": _generate, "info": _info, "export": _export,
           "tag-train": _tag_train, "tag": _tag}[args.command]
    try:
        if comm and args.command != "train":
            raise BadInput(f"only `numrnn train` runs on several processes; run `numrnn {args.command}` without "
                           f"an MPI launcher")
        return run(args)
    except Diverged as e:
        report(f"numrnn {args.command}: {e}")
        return EXIT_DIVERGED
    except (BadInput, data.DataError, serialize.WeightsFileError, FileNotFoundError, IsADirectoryError,
            distributed.DistributedError) as e:
        report(f"numrnn {args.command}: error: {e}")
        return EXIT_BAD_INPUT
    except BrokenPipeError:     # the reader of our output has gone (`numrnn generate ... | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())    # so that the interpreter's last flush does not fail again
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
