"""The capstone: the learner's own functions become a BERT, which is gradient-checked and trained.

    python -m minibert.exercises capstone WS [--steps N]

1. **Your pieces.** Every exercise file of the workspace WS is loaded; each function whose name is a
   field of the model's op table (minibert/model/ops_table.py: linear_backward, layer_norm_forward,
   scaled_dot_product_attention_backward, cross_entropy_forward, dropout_forward, ...) or of the
   training step (adamw_step; linear_warmup_decay and clip_grad_norm when an exercise has them)
   replaces minibert's. A function not written yet (the starter's NotImplementedError) or a file that
   is missing or does not import falls back to minibert's, and a line says so. Your attention calls
   your softmax (and your dropout) when you wrote them: the model runs softmax only inside attention.
   Exercises 14-16 and 19 (multi-head attention, the encoder layer, the MLM and QA heads: whole
   blocks of minibert/model/) are not plugged in: the model's blocks are minibert's, running your ops.
2. **Gradient check.** BertForPreTraining built from your table, float64, odd sizes, dropout on with
   fixed masks: every parameter's gradient against central differences of *your* forward (the
   check of minibert/gradcheck.py, `python -m minibert gradcheck`).
3. **Training.** A tiny BERT pretrained on the bundled corpus (the Python standard library's
   docstrings, the default of `minibert pretrain`), twice from the same seed, in lockstep: once with
   your table and training step, once with minibert's. Same init, same batches, same dropout masks,
   so with right pieces the two loss curves coincide (to float32 round-off: your code adds and
   multiplies in another order than minibert's, and training amplifies those last-bit differences a
   little, step after step). The report gives both held-out MLM accuracies against the unigram and
   most-frequent baselines, the largest difference between the curves, and WS/capstone/curves.png.
4. **Where they part.** At the first step whose two losses differ by more than round-off (PART_TOL),
   your model's parameters and that step's batch are run once more in float64 with every one of your
   functions compared, call by call, against minibert's on the *same inputs*; the first output that
   differs (beyond the grader's tolerance) names the op and its exercise. With curves that coincide
   this comparison runs on the first batch.

Nothing here patches minibert: the model takes the table (`BertForPreTraining(config, ops=...)`).
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import time
from pathlib import Path
from typing import Callable

import numpy

from minibert.data.batches import step_rows
from minibert.data.pretraining import create_training_instances, instances_to_features
from minibert.data.pretraining.stdlib_corpus import stdlib_documents
from minibert.exercises.catalog import EXERCISES, get
from minibert.exercises.workspace import StudentFileError, load_student
from minibert.files import save_figure, write_json
from minibert.gradcheck import MODEL_STEP, TOLERANCE, check_every_parameter, odd_config
from minibert.model.config import BertConfig
from minibert.model.heads.pretraining import BertForPreTraining
from minibert.model.ops_table import REFERENCE_OPS, Ops
from minibert.ops.softmax import softmax_backward, softmax_forward
from minibert.tokenization import BertTokenizer
from minibert.tokenization.vocab_trainer import train_vocab
from minibert.train.optim import adamw_step, clip_grad_norm, linear_warmup_decay
from minibert.train.pretrain import context_free_baselines, evaluate, get_batch
from minibert.viz.figure import figure

__all__ = ["Recipe", "Pieces", "Data", "load_pieces", "gradient_check", "prepare_data", "train_both", "compare_ops",
           "first_difference", "run"]

# |loss - reference loss| / reference loss beyond which the curves have parted. Round-off is far below:
# the solution write-ups' code stays within 5e-5 (absolute, losses ~4) of minibert's over the default 300 steps.
PART_TOL = 2e-3
OP_TOL = 1e-7            # float64: an op's output vs minibert's on the same inputs (the grader's TOLERANCE)
TRAINING_FUNCTIONS = ("adamw_step", "linear_warmup_decay", "clip_grad_norm")
REFERENCE_TRAINING = {"adamw_step": adamw_step, "linear_warmup_decay": linear_warmup_decay,
                      "clip_grad_norm": clip_grad_norm}
# what exercise 07's starter imports from minibert for the attention to call ("or your own")
HELPER_REFERENCES = {"softmax_forward": softmax_forward, "softmax_backward": softmax_backward,
                     "dropout_forward": REFERENCE_OPS.dropout_forward, "dropout_backward": REFERENCE_OPS.dropout_backward}


@dataclasses.dataclass
class Recipe:
    """The capstone's pretraining run: minibert pretrain's defaults, made small enough for a few minutes."""
    steps: int = 300             # optimizer steps (--steps)
    batch_size: int = 32
    seq_len: int = 64
    vocab_size: int = 2000       # a learned WordPiece vocabulary (8000 in `minibert pretrain`)
    lr: float = 1e-3             # peak, after 10% warm-up, then linear decay to 0
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    eval_batches: int = 10
    seed: int = 12345


# -- 1. the learner's pieces -------------------------------------------------------------------

@dataclasses.dataclass
class Pieces:
    """The op table and training functions built from a workspace, and where each came from."""
    ops: Ops
    training: dict                               # name -> function (adamw_step, linear_warmup_decay, clip_grad_norm)
    learner: dict                                # name -> exercise stem, for every function that is the learner's
    lines: list                                  # what was used from where, one line each


def _not_written(fn) -> bool:
    """Whether a function is still the starter's blank body (it raises NotImplementedError)."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return False
    return "raise NotImplementedError" in source


def load_pieces(workspace, wrap: Callable | None = None) -> Pieces:
    """Read the learner's files and build the op table and the training functions from them.

    `wrap(name, learner_fn, reference_fn) -> fn` (optional) decides what goes into the table for each of
    the learner's functions (compare_ops wraps them to compare each call with minibert's)."""
    wrap = wrap or (lambda name, mine, reference: mine)
    fields, training = set(Ops.names()), dict(REFERENCE_TRAINING)
    chosen, learner, lines, modules = {}, {}, [], {}
    for ex in EXERCISES:
        wanted = [f for f in ex.function_names if f in fields or f in TRAINING_FUNCTIONS]
        helpers = [f for f in ex.function_names if f in HELPER_REFERENCES and f not in wanted]
        if not wanted and not helpers:
            continue
        try:
            module = load_student(ex, workspace)
        except StudentFileError as err:
            lines.append(f"{ex.stem}: minibert's {', '.join(wanted + helpers)} ({err})")
            continue
        modules[ex.name] = module
        mine = [f for f in wanted if callable(getattr(module, f, None)) and not _not_written(getattr(module, f))]
        absent = [f for f in wanted if not callable(getattr(module, f, None))]
        theirs = [f for f in wanted if f not in mine and f not in absent]
        for f in mine:
            learner[f] = ex.stem
            reference = getattr(REFERENCE_OPS, f) if f in fields else REFERENCE_TRAINING[f]
            (chosen if f in fields else training)[f] = wrap(f, getattr(module, f), reference)
        if mine:
            lines.append(f"{ex.stem}: yours: {', '.join(mine)}")
        if theirs:
            lines.append(f"{ex.stem}: minibert's {', '.join(theirs)} (yours is not written yet)")
        if absent:
            lines.append(f"{ex.stem}: minibert's {', '.join(absent)} (your file does not define it)")
    _bind_attention_helpers(modules, learner, wrap, lines)
    blocks = [ex.stem for ex in EXERCISES if all(f.__module__.startswith("minibert.model") for f in ex.functions)]
    if blocks:
        lines.append(f"{', '.join(blocks)}: whole blocks and heads, graded by `check` but not put into this model: "
                     f"its blocks are minibert's, running the op table (your ops above)")
    return Pieces(REFERENCE_OPS.replace(**chosen), training, learner, lines)


def _bind_attention_helpers(modules, learner, wrap, lines):
    """Make the learner's attention call the learner's softmax and dropout (in place of minibert's it
    imported): softmax runs only inside attention, so this is how the model runs the learner's softmax."""
    attention = modules.get("attention")
    if attention is None or "scaled_dot_product_attention_forward" not in learner:
        written = [n for n in HELPER_REFERENCES if n not in learner
                   and any(_own_function(m, n) for k, m in modules.items() if k != "attention")]
        if written:
            lines.append(f"your {', '.join(written)} not used: the model runs them only inside attention, and "
                         f"minibert's attention (exercise 07 not written yet) calls minibert's")
        return
    bound = []
    for name, reference in HELPER_REFERENCES.items():
        if getattr(attention, name, None) is not reference:
            continue                                  # the learner's attention has its own, or none
        owner = next((ex_name for ex_name, m in modules.items() if ex_name != "attention"
                      and _own_function(m, name)), None)
        if owner is None:
            continue
        setattr(attention, name, wrap(name, getattr(modules[owner], name), reference))
        learner.setdefault(name, get(owner).stem)
        bound.append(name)
    if bound:
        lines.append(f"your attention calls your {', '.join(bound)}")


def _own_function(module, name) -> bool:
    """Whether `module` (a learner's file) defines `name` itself, written (not imported, not blank)."""
    fn = getattr(module, name, None)
    return callable(fn) and getattr(fn, "__module__", None) == module.__name__ and not _not_written(fn)


# -- 2. the gradient check ---------------------------------------------------------------------

def gradient_check(ops: Ops, seed: int = 0, per_param: int = 3) -> list:
    """BertForPreTraining with `ops`, float64, odd sizes, every dropout on with fixed masks, MLM and NSP
    labels with ignored positions and padding: each parameter's gradient (a few entries) against central
    differences of the same model's loss. Returns gradcheck's CheckResults, one per parameter."""
    rng = numpy.random.default_rng(seed)
    config = odd_config()
    model = BertForPreTraining(config, seed=seed, dtype="float64", ops=ops).train()
    for v in model.params.values():
        v += rng.normal(0.0, 0.1, size=v.shape)            # non-zero biases and LayerNorm: nothing hides
    B, T = 3, 7
    ids = rng.integers(5, config.vocab_size, size=(B, T))
    ids[1, -2:] = config.pad_token_id
    labels = numpy.full((B, T), -100)
    labels[0, [1, 4]] = rng.integers(5, config.vocab_size, size=2)       # -100 elsewhere: ignored positions
    labels[2, 2] = 7
    inputs = dict(input_ids=ids, token_type_ids=(numpy.arange(T) >= 3).astype(int)[None].repeat(B, 0),
                  attention_mask=(ids != config.pad_token_id).astype(int), labels=labels,
                  next_sentence_label=numpy.array([0, 1, 1]))
    state = model.bert.rng.bit_generator.state

    def loss():
        model.bert.rng.bit_generator.state = state         # the same dropout masks at every forward
        return float(model.forward(**inputs)["loss"])

    loss()
    model.zero_grad()
    model.backward()
    return check_every_parameter(model, loss, rng, per_param, MODEL_STEP)


# -- 3. the data and the two runs ----------------------------------------------------------------

@dataclasses.dataclass
class Data:
    config: BertConfig
    tokenizer: BertTokenizer
    train: dict                  # the features (arrays) of the training instances
    held: dict                   # of the held-out documents' instances
    baselines: dict              # context_free_baselines


def prepare_data(recipe: Recipe) -> Data:
    """The standard library's docstrings, 5% of the documents held out, a learned vocabulary, masked
    instances (dupe factor 1): what `minibert pretrain` does by default, smaller."""
    documents = stdlib_documents()
    order = numpy.random.default_rng(recipe.seed).permutation(len(documents))
    n_held = max(1, round(0.05 * len(documents)))
    held_docs = [documents[i] for i in sorted(order[:n_held])]
    train_docs = [documents[i] for i in sorted(order[n_held:])]
    vocab = train_vocab((s for d in train_docs for s in d), vocab_size=recipe.vocab_size, show_progress=False)
    tokenizer = BertTokenizer(vocab.vocab, do_lower_case=True)
    max_pred = math.ceil(0.15 * recipe.seq_len)

    def features(docs, seed):
        instances = create_training_instances(docs, tokenizer, max_seq_length=recipe.seq_len, dupe_factor=1,
                                              max_predictions_per_seq=max_pred, seed=seed, progress=False)
        return instances_to_features(instances, tokenizer.vocab, recipe.seq_len, max_pred)

    train, held = features(train_docs, recipe.seed), features(held_docs, recipe.seed + 1)
    config = BertConfig.preset("tiny", vocab_size=len(tokenizer), max_position_embeddings=recipe.seq_len)
    rows = recipe.batch_size * recipe.eval_batches
    baselines = context_free_baselines(train, held, config.vocab_size, rows, tokenizer.mask_token_id)
    return Data(config, tokenizer, train, held, baselines)


class Run:
    """One pretraining run: a model, its optimizer state and training functions, its losses."""

    def __init__(self, name: str, ops: Ops, training: dict, data: Data, recipe: Recipe):
        self.name, self.recipe, self.training = name, recipe, training
        self.model = BertForPreTraining(data.config, seed=recipe.seed, ops=ops).train()
        self.m = {k: numpy.zeros_like(v) for k, v in self.model.params.items()}    # AdamW's moments
        self.v = {k: numpy.zeros_like(v) for k, v in self.model.params.items()}
        self.losses: list[float] = []
        self.failed: str | None = None                    # why this run stopped early

    def forward_backward(self, batch) -> float:
        """The loss of this batch; the gradients are left in model.grads."""
        self.model.zero_grad()
        out = self.model.forward(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                                 labels=batch["labels"], next_sentence_label=batch["next_sentence_label"])
        self.model.backward()
        return float(out["loss"])

    def update(self, step: int) -> None:
        """Clip the global gradient norm, then one AdamW step at the schedule's learning rate."""
        r, f = self.recipe, self.training
        lr = f["linear_warmup_decay"](step, r.lr, int(r.warmup * r.steps), r.steps)
        f["clip_grad_norm"](self.model.grads, r.max_grad_norm)
        f["adamw_step"](self.model.params, self.model.grads, self.m, self.v, step + 1, lr,
                        weight_decay=r.weight_decay)


@dataclasses.dataclass
class Comparison:
    """The two runs side by side."""
    learner: Run
    reference: Run
    parted_at: int | None        # the first step whose losses differ by more than PART_TOL (relative)
    snapshot: dict | None        # the learner's parameters and batch at that step (for compare_ops)
    seconds: float

    @property
    def max_difference(self) -> float:
        pairs = zip(self.learner.losses, self.reference.losses)
        return max((abs(a - b) if math.isfinite(a) else math.inf for a, b in pairs), default=0.0)


def train_both(pieces: Pieces, data: Data, recipe: Recipe, progress: Callable | None = None) -> Comparison:
    """Train the learner's BERT and minibert's in lockstep, from the same seed, on the same batches."""
    start = time.perf_counter()
    mine = Run("yours", pieces.ops, pieces.training, data, recipe)
    ref = Run("minibert's", REFERENCE_OPS, dict(REFERENCE_TRAINING), data, recipe)
    n = len(data.train["input_ids"])
    parted_at = snapshot = None
    for step in range(recipe.steps):
        batch = get_batch(data.train, step_rows(step, recipe.batch_size, n, recipe.seed))
        ref.losses.append(ref.forward_backward(batch))
        ref.update(step)
        if mine.failed:
            continue
        dropout_state = copy.deepcopy(mine.model.bert.rng.bit_generator.state)
        try:
            loss = mine.forward_backward(batch)
        except Exception as err:                          # a learner's op that raises: reported, not a crash
            mine.failed = f"step {step}: {type(err).__name__}: {err}"
            loss = float("nan")
        mine.losses.append(loss)
        if parted_at is None and not abs(loss - ref.losses[-1]) <= PART_TOL * abs(ref.losses[-1]):
            parted_at = step
            snapshot = {"params": {k: v.copy() for k, v in mine.model.params.items()}, "batch": batch,
                        "dropout_state": dropout_state}
        if not math.isfinite(loss):
            mine.failed = mine.failed or f"step {step}: the loss is {loss}"
            continue
        try:
            mine.update(step)
        except Exception as err:
            mine.failed = f"step {step}, the update: {type(err).__name__}: {err}"
        if progress:
            progress(step, loss, ref.losses[-1])
    return Comparison(mine, ref, parted_at, snapshot, time.perf_counter() - start)


def held_out(run: Run, data: Data, recipe: Recipe) -> dict:
    """Held-out MLM and NSP accuracy of a run's model (dropout off)."""
    return evaluate(run.model, data.held, recipe.batch_size, recipe.eval_batches, data.tokenizer.mask_token_id)


# -- 4. where the curves part: each op against minibert's, on the same inputs --------------------

class _Both:
    """The caches of the learner's op and of minibert's, for the two backwards (compare_ops only)."""

    def __init__(self, mine, reference):
        self.mine, self.reference = mine, reference


def _for(side: str, value):
    """The arguments as one side sees them: arrays copied for minibert's (a learner's op may write into
    its inputs), a paired cache resolved to that side's, a random generator copied (the same draws)."""
    if isinstance(value, _Both):
        return getattr(value, side)
    if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
        return type(value)(_for(side, v) for v in value)
    if side == "reference" and isinstance(value, numpy.ndarray):
        return value.copy()
    if side == "reference" and isinstance(value, numpy.random.Generator):
        return copy.deepcopy(value)
    return value


def _difference(mine, expected) -> float:
    """max |mine - expected| / max |expected| over every array of an op's output (inf on another shape)."""
    if isinstance(expected, (tuple, list)):
        if not isinstance(mine, (tuple, list)) or len(mine) != len(expected):
            return math.inf
        return max((_difference(a, b) for a, b in zip(mine, expected)), default=0.0)
    if expected is None or mine is None:
        return 0.0 if expected is None and mine is None else math.inf
    a, b = numpy.asarray(mine, dtype=numpy.float64), numpy.asarray(expected, dtype=numpy.float64)
    if a.shape != b.shape:
        return math.inf
    if not numpy.isfinite(a).all():
        return math.inf
    return float(numpy.abs(a - b).max(initial=0.0) / max(numpy.abs(b).max(initial=0.0), 1e-30))


def compare_ops(workspace, data: Data, recipe: Recipe, snapshot: dict | None) -> list[tuple[str, int, float]]:
    """One float64 forward and backward of the learner's model (parameters and batch of `snapshot`, or
    the initial ones on the first batch) with each of the learner's functions run next to minibert's on
    the same inputs. Returns (function, call number, relative difference) in the order the calls ended."""
    records = []

    def wrap(name, mine, reference):
        calls = [0]

        def compared(*args, **kwargs):
            expected = reference(*_for("reference", args), **{k: _for("reference", v) for k, v in kwargs.items()})
            actual = mine(*_for("mine", args), **{k: _for("mine", v) for k, v in kwargs.items()})
            calls[0] += 1
            if name.endswith("_forward"):                 # (out, cache): compare the outputs, keep both caches
                records.append((name, calls[0], _difference(actual[0], expected[0])))
                return actual[0], _Both(actual[1], expected[1])
            records.append((name, calls[0], _difference(actual, expected)))
            return actual
        return compared

    pieces = load_pieces(workspace, wrap)
    model = BertForPreTraining(data.config, seed=recipe.seed, dtype="float64", ops=pieces.ops).train()
    if snapshot is not None:
        for k, v in snapshot["params"].items():
            model.params[k][...] = v
        model.bert.rng.bit_generator.state = snapshot["dropout_state"]
        batch = snapshot["batch"]
    else:
        batch = get_batch(data.train, step_rows(0, recipe.batch_size, len(data.train["input_ids"]), recipe.seed))
    model.forward(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                  labels=batch["labels"], next_sentence_label=batch["next_sentence_label"])
    model.backward()
    return records


def first_difference(records, exclude=()) -> tuple[str, int, float] | None:
    """The first call (in the order calls ended) whose output differs from minibert's beyond OP_TOL."""
    return next((r for r in records if r[2] > OP_TOL and r[0] not in exclude), None)


def worst_per_function(records) -> dict[str, tuple[int, float]]:
    """function -> (calls, largest relative difference)."""
    out: dict[str, tuple[int, float]] = {}
    for name, _, diff in records:
        calls, worst = out.get(name, (0, 0.0))
        out[name] = (calls + 1, max(worst, diff))
    return out


# -- the whole capstone ------------------------------------------------------------------------------

def plot_curves(comparison: Comparison, path) -> Path:
    """curves.png: the two training-loss curves, and where they part."""
    fig = figure((8, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(comparison.reference.losses, label="minibert's ops", linewidth=3, alpha=0.5, color="tab:blue")
    ax.plot(comparison.learner.losses, label="your ops", linewidth=1, color="tab:red")
    if comparison.parted_at is not None:
        ax.axvline(comparison.parted_at, color="gray", linestyle=":", label=f"part at step {comparison.parted_at}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (MLM + NSP)")
    ax.set_title("your BERT and minibert's: same seed, same batches")
    ax.legend()
    return save_figure(fig, path)


def _stem_of(name: str, pieces: Pieces) -> str:
    stem = pieces.learner.get(name)
    return f" (exercise {stem})" if stem else ""


def run(workspace, recipe: Recipe | None = None, stream=print, data: Data | None = None) -> dict:
    """The capstone on workspace `workspace`: print the report, write WS/capstone/curves.png and
    capstone.json, return the numbers. `data`: prepare_data(recipe) made already (tests share it)."""
    recipe = recipe or Recipe()
    workspace = Path(workspace)
    out_dir = workspace / "capstone"
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"workspace": str(workspace), "steps": recipe.steps}

    stream("== 1. Your pieces: the op table of your BERT")
    pieces = load_pieces(workspace)
    for line in pieces.lines:
        stream("  " + line)
    summary["yours"] = sorted(pieces.learner)

    stream("\n== 2. Gradient check: BertForPreTraining with your ops, float64, odd sizes, dropout on "
           f"(pass: relative error < {TOLERANCE:g})")
    try:
        results = gradient_check(pieces.ops)
    except Exception as err:                          # a learner's op that raises: say which, go on
        stream(f"  could not run: {type(err).__name__}: {err}")
        results = []
    width = max((len(r.name) for r in results), default=10)
    for r in results:
        stream(f"  {r.name:<{width}}  {r.max_rel_error:9.2e}  {'pass' if r.passed else 'FAIL'}")
    failed = [r.name for r in results if not r.passed]
    summary["gradcheck_passed"] = bool(results) and not failed
    stream(f"  {len(results) - len(failed)}/{len(results)} parameters pass"
           + (f"; wrong gradients: {', '.join(failed[:6])}{' ...' if len(failed) > 6 else ''}" if failed else ""))

    stream(f"\n== 3. Pretraining a tiny BERT twice, in lockstep: your ops and minibert's "
           f"({recipe.steps} steps, batch {recipe.batch_size}, seed {recipe.seed})")
    data = data or prepare_data(recipe)
    stream(f"  the standard library's docstrings: {len(data.train['input_ids']):,} training instances, "
           f"{len(data.held['input_ids']):,} held out, vocabulary {data.config.vocab_size}")
    every = max(1, recipe.steps // 10)

    def progress(step, mine, ref):
        if step % every == 0 or step == recipe.steps - 1:
            stream(f"  step {step:>4}: loss yours {mine:8.4f}   minibert's {ref:8.4f}")

    comparison = train_both(pieces, data, recipe, progress)
    if comparison.learner.failed:
        stream(f"  your run stopped at {comparison.learner.failed}")
    mine_eval = held_out(comparison.learner, data, recipe) if not comparison.learner.failed else {}
    ref_eval = held_out(comparison.reference, data, recipe)
    b = data.baselines
    plot = plot_curves(comparison, out_dir / "curves.png")
    summary.update(seconds=round(comparison.seconds, 1), max_loss_difference=comparison.max_difference,
                   parted_at=comparison.parted_at, losses_yours=comparison.learner.losses,
                   losses_minibert=comparison.reference.losses,
                   accuracy_yours=mine_eval.get("eval_mlm_accuracy"), accuracy_minibert=ref_eval["eval_mlm_accuracy"],
                   accuracy_unigram=b["eval_mlm_accuracy_unigram"],
                   accuracy_most_frequent=b["eval_mlm_accuracy_most_frequent"])
    stream(f"  trained in {comparison.seconds:.0f} s; curves: {plot}")
    stream("  held-out masked-LM accuracy:")
    acc = mine_eval.get("eval_mlm_accuracy")
    stream(f"    your BERT          {acc:.3f}" if acc is not None else "    your BERT          (no result)")
    stream(f"    minibert's         {ref_eval['eval_mlm_accuracy']:.3f}")
    stream(f"    unigram guess      {b['eval_mlm_accuracy_unigram']:.3f}   (a word drawn by frequency)")
    stream(f"    most frequent      {b['eval_mlm_accuracy_most_frequent']:.3f}   (always the commonest word)")
    stream(f"  largest difference between the two loss curves: {comparison.max_difference:.2e}")

    stream("\n== 4. Your functions against minibert's, call by call, on the same inputs (float64)")
    if comparison.parted_at is None:
        stream(f"  the curves coincide (within {PART_TOL:g} relative at every step): your pieces make a BERT "
               f"that learns as minibert's does. The comparison on the first batch:")
    else:
        mine, ref = comparison.learner.losses[comparison.parted_at], comparison.reference.losses[comparison.parted_at]
        stream(f"  the curves part at step {comparison.parted_at}: loss yours {mine:.4f}, minibert's {ref:.4f}. "
               f"On that step's parameters and batch:")
    try:
        records = compare_ops(workspace, data, recipe, comparison.snapshot)
        error = None
    except Exception as err:
        records, error = [], f"{type(err).__name__}: {err}"
    for name, (calls, worst) in worst_per_function(records).items():
        stream(f"    {name + _stem_of(name, pieces):<62} {calls:>3} calls  max rel. difference {worst:9.2e}"
               + ("  DIFFERS" if worst > OP_TOL else ""))
    if error:
        stream(f"  one of your functions raised: {error}")
    first = first_difference(records)
    summary["first_differing_op"] = first[0] if first else None
    if first:
        name, call, diff = first
        stream(f"  => the first output that differs from minibert's: {name}{_stem_of(name, pieces)}, "
               f"call {call}, relative difference {diff:.2e}. Everything computed before it agreed; "
               f"start there (and re-run `python -m minibert.exercises check {workspace}`).")
        if name.startswith("dropout"):
            stream("     (a dropout that draws its mask from the generator in another way can be right and still "
                   "part the curves: same seed, other masks)")
    elif records:
        stream(f"  => every one of your functions gives minibert's outputs (within {OP_TOL:g})")
    verdict = ("your BERT learns, and its curve is minibert's" if comparison.parted_at is None and summary["gradcheck_passed"]
               else "your BERT differs from minibert's: see above where")
    stream(f"\n{verdict}.")
    summary["verdict"] = verdict
    write_json(out_dir / "capstone.json", summary)
    return summary
