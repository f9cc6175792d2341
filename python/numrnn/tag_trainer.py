"""Training a sequence tagger (what `numrnn tag-train` runs): sentences, vocabularies,
Tagger, optimiser, evaluation (accuracy, entity F1), checkpoints and resume, run by the loop the
language model's trainer shares (train_loop.py: steps, evaluation cadence, metrics, Ctrl-C and
divergence handling).

Each step draws a batch of sentences (a pure function of seed and step, so a resumed run reads the
same batches), pads them with their lengths, and runs forward, the masked cross-entropy, backward,
clipping and the update. Checkpoints are checkpoint.py's files (a Tagger instead of a
LanguageModel, no carried state). Not here: argument parsing (cli.py), the model (tagger.py),
files and scores (conll.py).
"""
import dataclasses
import json
import math

import numpy as np

from numrnn import conll, data, serialize, train_loop
from numrnn.checkpoint import restore, save_checkpoint
from numrnn.file_check import check_training
from numrnn.losses import masked_cross_entropy
from numrnn.optim import SGD, Adam, clip_grad_norm
from numrnn.progress import Progress
from numrnn.tagger import Tagger
from numrnn.train_loop import new_progress

DEV_FRACTION = 0.1      # of the sentences, held out from the end when no --dev file is given
EVAL_BATCH = 64         # sentences per evaluation forward call


@dataclasses.dataclass
class TagConfig:
    data: str = data.BUILTIN
    dev: str = None              # a labelled CoNLL file to evaluate on; None: the tail of `data`
    min_count: int = 1
    cell: str = "lstm"
    bidirectional: bool = True
    hidden_size: int = 64
    num_layers: int = 1
    embedding_dim: int = 32
    dropout: float = 0.0
    proj_size: int = 0
    batch_size: int = 16
    steps: int = 500
    lr: float = None             # None: 3e-3 for adam, 1.0 for sgd
    optimizer: str = "adam"
    clip: float = 1.0            # 0 turns clipping off
    eval_every: int = 100
    seed: int = 0

    RESUMABLE = ("steps", "eval_every")

    def __post_init__(self):
        if self.lr is None:
            self.lr = 3e-3 if self.optimizer == "adam" else 1.0


def load_sentences(cfg):
    """(training sentences, evaluation sentences, input kind): "characters" for the built-in corpus
    (each character a token), "conll" for files."""
    if cfg.data == data.BUILTIN:
        sentences, kind = conll.builtin_sentences(), "characters"
    else:
        sentences, kind = conll.read_conll(cfg.data), "conll"
    if cfg.dev:
        dev = conll.read_conll(cfg.dev)
    else:
        n_dev = int(len(sentences) * DEV_FRACTION)
        if n_dev < 1:
            raise data.DataError(f"{cfg.data} has {len(sentences)} sentences, too few to hold out "
                                 f"{DEV_FRACTION:.0%} for evaluation; give --dev FILE")
        sentences, dev = sentences[:-n_dev], sentences[-n_dev:]
    return sentences, dev, kind


def build(cfg, vocab_size, num_labels):
    model = Tagger(vocab_size, num_labels, embedding_dim=cfg.embedding_dim, cell=cfg.cell,
                   hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, bidirectional=cfg.bidirectional,
                   dropout=cfg.dropout, proj_size=cfg.proj_size, seed=cfg.seed)
    optimizer = (Adam if cfg.optimizer == "adam" else SGD)(model.blocks, lr=cfg.lr)
    return model, optimizer


def predict(model, encoded):
    """Label ids of each sentence (lists of word ids), EVAL_BATCH sentences per forward call."""
    model.eval()
    out = []
    for i in range(0, len(encoded), EVAL_BATCH):
        ids, _, lengths = conll.pad(encoded[i:i + EVAL_BATCH])
        scores, _ = model(ids, lengths=lengths)         # [T, B, num_labels]
        best = scores.argmax(axis=2)                     # [T, B]
        out += [best[:n, b] for b, n in enumerate(lengths)]
    model.train()
    return out


def evaluate(model, encoded, labels):
    """conll.score of the model's labels against the encoded sentences' own."""
    predicted = predict(model, encoded)
    return conll.score([[labels.items[i] for i in y] for _, y in encoded],
                       [[labels.items[i] for i in p] for p in predicted])


def train_step(model, optimizer, batch, clip):
    """One update on a list of encoded sentences; returns (loss, gradient norm); a loss or norm that
    is not finite skips the update."""
    ids, targets, lengths = conll.pad(batch)
    scores, _ = model(ids, lengths=lengths)
    loss, dscores = masked_cross_entropy(scores, targets, lengths)
    model.zero_grad()
    model.backward(dscores)
    norm = clip_grad_norm(model.blocks, clip) if clip else 0.0
    if math.isfinite(loss) and math.isfinite(norm):
        optimizer.step()
    return loss, norm


def _batch(encoded, cfg, step):
    rng = np.random.default_rng([cfg.seed, step])
    return [encoded[i] for i in rng.integers(len(encoded), size=cfg.batch_size)]


def read_checkpoint(path):
    """(metadata, training configuration) of a checkpoint written by train(), checked."""
    meta, _ = serialize.read(path)
    if meta["type"] != Tagger.__name__ or "training_config" not in meta or "trainer_state" not in meta:
        raise serialize.WeightsFileError(f"{path} is not a checkpoint written by `numrnn tag-train` "
                                         f"(it holds a {meta['type']})")
    try:
        check_training(meta)
    except ValueError as e:
        raise serialize.WeightsFileError(f"{path}: {e}") from None
    return meta, json.loads(meta["training_config"])


def read_config(path):
    """The training configuration a checkpoint was written with, and the steps it has trained."""
    meta, config = read_checkpoint(path)
    return config, json.loads(meta["trainer_state"])["step"]


def train(cfg, out, metrics=None, resume=None, stream=None):
    """Train per `cfg`, writing checkpoints to `out` (resuming the checkpoint `resume` if given).
    Returns dict(status, step, elapsed_s, scores: the last evaluation's conll.score)."""
    sentences, dev, kind = load_sentences(cfg)
    if resume is None:
        words, labels = conll.Vocab.of_words(sentences, cfg.min_count), conll.Vocab.of_labels(sentences)
    else:
        meta, _ = read_checkpoint(resume)
        words, labels = conll.Vocab.from_json(meta["vocabulary"]), conll.Vocab.from_json(meta["labels"])
    train_enc = conll.encode(sentences, words, labels, cfg.data)
    dev_enc = conll.encode(dev, words, labels, cfg.dev or cfg.data)
    model, optimizer = build(cfg, len(words), len(labels))
    config = dataclasses.asdict(cfg)
    config["fingerprint"] = data.fingerprint(json.dumps(sentences))
    model.metadata.update(vocabulary=words.to_json(), labels=labels.to_json(), input=kind)

    progress = new_progress()
    scores = None
    if resume is not None:
        _, progress = restore(resume, model, optimizer)
        if json.loads(model.metadata["training_config"])["fingerprint"] != config["fingerprint"]:
            raise data.DataError(f"--resume: {resume} was trained on different sentences than {cfg.data}")
    log = Progress(cfg.steps, progress["step"], stream)
    if progress["step"] >= cfg.steps:
        log.log(f"{resume} has already trained {progress['step']} steps; pass --steps above that to continue")
        return dict(status="nothing to do", step=progress["step"], elapsed_s=progress["elapsed_s"], scores=None)
    n_tokens = sum(len(w) for w, _ in train_enc)
    log.log(f"{'resuming' if resume else 'training'} {model!r}: {model.num_parameters():,} parameters, "
            f"{len(train_enc):,} training sentences ({n_tokens:,} tokens), {len(dev_enc):,} evaluation "
            f"sentences, {len(words)} words, {len(labels)} labels")

    def step(i):
        batch = _batch(train_enc, cfg, i)
        loss, norm = train_step(model, optimizer, batch, cfg.clip)
        return loss, norm, sum(len(w) for w, _ in batch)

    def measure(tok_s):
        nonlocal scores
        scores = evaluate(model, dev_enc, labels)
        fields = dict(accuracy=scores["accuracy"], f1=scores["entities"]["f1"] if "entities" in scores else None)
        return fields, (f"accuracy {100 * fields['accuracy']:.2f}%  "
                        + (f"entity F1 {100 * fields['f1']:.2f}  " if fields["f1"] is not None else ""))

    model.train()
    status = train_loop.run(cfg, out, resume, progress, log, step, measure,
                            lambda: save_checkpoint(out, model, optimizer, None, progress, config), metrics)
    if status == "done" and scores is not None:
        for line in conll.report(scores):
            log.log(line)
    return dict(status=status, step=progress["step"], elapsed_s=progress["elapsed_s"], scores=scores)


def load_tagger(path):
    """(Tagger, word vocabulary, label vocabulary, input kind) of a file tag-train wrote."""
    model = serialize.load(path)
    if not isinstance(model, Tagger) or "vocabulary" not in model.metadata or "labels" not in model.metadata:
        raise serialize.WeightsFileError(f"{path} holds a {type(model).__name__} without the vocabulary and "
                                         f"labels that `numrnn tag-train` saves; train one with it")
    return (model, conll.Vocab.from_json(model.metadata["vocabulary"]),
            conll.Vocab.from_json(model.metadata["labels"]), model.metadata.get("input", "conll"))
