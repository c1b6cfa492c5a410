"""The training loop shared by pretraining and fine-tuning.

    loop = TrainingLoop(model, objective, optimizer, run_dir, lr_at=schedule, evaluate=..., describe=...)
    summary = loop.run(plan, make_batches)

`plan` lists the optimizer steps in order, each `(epoch, rows)`: the rows of the
training set it reads (train/*.py build it with minibert.data.batches).
For every step the loop

    builds the micro-batches, runs one `train_step` (train/step.py),
    writes one row to RUN_DIR/log.jsonl and moves the progress bar,
    evaluates every `eval_every` steps, at the end of each epoch and after the last step,
      writing an evaluation row; keeps the best model by `metric` (higher is better) and stops
      early after `patience` evaluations without a better one,
    writes a checkpoint every `checkpoint_every` steps and after the last one (the end of the plan,
      or the step that stopped early).

log.jsonl has one JSON object per line: a step's row has "loss" (and "lr",
"grad_norm", "tokens_per_s", "seconds", what the objective adds), an
evaluation's has the evaluation's keys and "train_loss", the mean training loss
since the previous evaluation.

Resuming (`resume()`, then `run(..., start=s)`) restores the newest usable checkpoint, step s
(0 when there is none: the run starts again), and cuts the log back to the rows of steps 1..s
before anything is appended: the rows a killed run wrote after its checkpoint are written again,
so the log of a resumed run is, row for row, the log of one uninterrupted run, however often and
wherever it was killed. A checkpoint that cannot be read, or does not fit the model, is moved
aside (checkpoints/damaged-step-N) with a warning, and the one before it is used.
What the log does not hold is in the checkpoint: besides weights, optimizer and dropout generator,
whatever `checkpoint_state()` adds (given back to `restore_state(state)`, e.g. a loss scaler's
state) and the best evaluation's private fields (keys starting with "_", never logged: e.g. a
confusion matrix), so the resumed run ends with the same best evaluation as the uninterrupted one.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy
from tqdm import tqdm

from minibert.errors import InputError
from minibert.model.io import CheckpointError, assign_params
from minibert.train.checkpoint import (checkpoint_dir, checkpoint_folders, list_checkpoints, load_checkpoint,
                                       remove_unfinished, save_checkpoint, set_aside)
from minibert.train.distributed import SINGLE, DistributedError
from minibert.train.step import NonFiniteLossError, count_totals, loss_weights, train_step


# -- the log ----------------------------------------------------------------------------------------

def read_jsonl(path) -> list[dict]:
    """The rows of a JSONL log. A torn last line (the process was killed mid-write) is skipped."""
    rows = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if n != len(lines) - 1:
                raise InputError(f"{path}: line {n + 1} is not valid JSON") from None
    return rows


def truncate_log(path: Path, last_step: int) -> list[dict]:
    """Keep the rows of steps up to `last_step` (a resumed run writes the later ones again), atomically
    (a temporary file renamed over the log); return them. last_step 0: an empty log."""
    rows = read_jsonl(path) if path.is_file() else []
    for n, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise InputError(f"{path}: row {n + 1} has no step number; the log is damaged")
    kept = [r for r in rows if r["step"] <= last_step]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in kept))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return kept


def missing_steps(rows: list[dict], last_step: int) -> list[int]:
    """The steps 1..last_step that have no row among `rows` (a log deleted or cut short by hand)."""
    present = {r["step"] for r in rows if "loss" in r}
    return [s for s in range(1, last_step + 1) if s not in present]


def step_ranges(steps: list[int]) -> str:
    """[1, 2, 3, 7, 9, 10] -> "1-3, 7, 9-10": a list of steps, short."""
    spans, start = [], None
    for i, s in enumerate(steps):
        start = s if start is None else start
        if i + 1 == len(steps) or steps[i + 1] != s + 1:
            spans.append(f"{start}-{s}" if s != start else f"{s}")
            start = None
    return ", ".join(spans)


def _rows_up_to(path: Path, last_step: int) -> list[dict]:
    """The rows of steps up to `last_step`, read without writing (a data-parallel rank other than 0)."""
    rows = read_jsonl(path) if path.is_file() else []
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("step"), int) and r["step"] <= last_step]


def _silent(text) -> None:
    """Where the messages of a rank other than 0 go: nowhere (rank 0 says them once)."""


# -- the loop -----------------------------------------------------------------------------------------

def dropout_rng(model) -> numpy.random.Generator:
    """The generator every dropout mask of the model is drawn from (BertModel's, also for a model with heads)."""
    return getattr(model, "bert", model).rng


def _optimizer_state_problems(expected: dict, saved: dict) -> list[str]:
    """What keeps `saved` (a checkpoint's optimizer state) from fitting an optimizer whose own state is
    `expected`: moments missing or of another shape (AdamW.load_state_dict would stop half-way)."""
    missing = [k for k in expected if k != "t" and k not in saved]
    shapes = [f"{k} has shape {tuple(saved[k].shape)}, the optimizer {tuple(v.shape)}"
              for k, v in expected.items() if k != "t" and k in saved and tuple(saved[k].shape) != tuple(v.shape)]
    listed = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
    problems = [f"optimizer.safetensors lacks {len(missing)} moments ({listed})"] if missing else []
    return problems + [f"optimizer.safetensors: {s}" for s in shapes[:3]]


class TrainingLoop:
    """Runs a plan of optimizer steps; owns the log, the progress bar, evaluation, checkpoints, the best
    model and early stopping. What differs between pretraining and fine-tuning is passed in:

    objective        how the model is called and what its losses are (train/step.py)
    lr_at(i)         the learning rate of step i (0-based)
    evaluate()       the held-out metrics, a dict (called in the loop's cadence); None: never. It shows no
                     progress bar of its own: the loop's bar says "evaluating" meanwhile
    describe(r)      one line about an evaluation result, for the user
    metric, save_best(folder), patience
                     keep the model with the best evaluation[metric] in RUN_DIR/best, stop after
                     `patience` evaluations without a better one (None: never stop early)
    checkpoint_every, keep, checkpoint_state(), restore_state(state)
                     write RUN_DIR/checkpoints/step-N every so many steps (0: never), keep the newest
                     `keep`; checkpoint_state() adds what a resume needs besides weights, optimizer and
                     the dropout generator (e.g. the config, a loss scaler's state: JSON values);
                     restore_state(state) takes it back on resume, from the checkpoint's state.json: it
                     checks first and raises CheckpointError, changing nothing, if the state does not fit
                     (the checkpoint is then treated as damaged)
    step_metrics(m)  what a step's log row adds to loss/lr/grad_norm (e.g. MLM and NSP accuracy)
    callback(row)    called with every log row as it is written (live plots in a notebook)
    write(text)      where messages go (print by default)
    group, check_every
                     data-parallel training (train/distributed.py): the ranks' shares of each step's
                     batch are weighted by the counts summed over the ranks and the gradients summed
                     before the update; rank 0 alone writes the log, checkpoints, the best model and
                     messages; every rank evaluates (the early-stopping decision must be the same on
                     each) and every rank reads the checkpoint on resume; every `check_every` steps
                     and after the last the ranks compare parameter checksums (DivergedError)
    """

    def __init__(self, model, objective, optimizer, run_dir, *, lr_at, max_grad_norm=1.0, scaler=None,
                 evaluate=None, describe=None, eval_every=0, metric=None, save_best=None, patience=None,
                 checkpoint_every=0, keep=3, checkpoint_state=None, restore_state=None, step_metrics=None,
                 progress=True, desc="train", callback=None, write=print, group=SINGLE, check_every=100):
        self.model, self.objective, self.optimizer = model, objective, optimizer
        self.run_dir = Path(run_dir)
        self.log_path = self.run_dir / "log.jsonl"
        self.lr_at, self.max_grad_norm, self.scaler = lr_at, max_grad_norm, scaler
        self.evaluate, self.describe, self.eval_every = evaluate, describe or str, eval_every
        self.metric, self.save_best, self.patience = metric, save_best, patience
        self.checkpoint_every, self.keep = checkpoint_every, keep
        self.checkpoint_state = checkpoint_state or dict
        self.restore_state = restore_state or (lambda state: None)
        self.resumed_state = {}                  # the state.json resumed from (resume()); {} for a fresh run
        self.step_metrics = step_metrics or (lambda m: {})
        self.group, self.check_every = group, check_every
        main = group.is_main                   # rank 0 speaks and writes; the other ranks train silently
        self.progress, self.desc, self.callback = progress and main, desc, callback if main else None
        self.write = write if main else _silent

    # -- resuming ---------------------------------------------------------------------------------
    def resume(self) -> int:
        """Load the newest usable checkpoint (weights, optimizer, dropout generator); return its step.

        Data-parallel: rank 0 looks first (it may tidy the folder: unfinished or damaged checkpoints),
        then every other rank reads the checkpoint rank 0 chose; all must agree on its step.
        """
        main = self.group.is_main
        if not main:
            self.group.barrier()                 # rank 0 has tidied and chosen
        step = self._resume()
        if main:
            self.group.barrier()
        steps = self.group.gather_objects(step)
        if len(set(steps)) > 1:
            raise DistributedError("the ranks resumed from different checkpoints: "
                                   + ", ".join(f"rank {r} step {s}" for r, s in enumerate(steps)))
        return step

    def _resume(self) -> int:
        """resume() on this process: the newest usable checkpoint's step (0: none).

        A damaged checkpoint (a file missing, cut short or not JSON, arrays that do not fit the model)
        is moved aside to checkpoints/damaged-step-N, with a warning naming it and the checkpoint used
        instead. No checkpoint at all: 0, the run starts again from step 0. Checkpoints that are all
        damaged: CheckpointError (starting again silently would throw the run's work away).
        """
        for tmp in remove_unfinished(self.run_dir):
            self.write(f"removed {tmp}, a checkpoint whose writing was interrupted")
        damaged = []
        for path in reversed(checkpoint_folders(self.run_dir)):
            try:
                step = self._restore(path)
            except CheckpointError as err:
                damaged.append((path, err))
                continue
            for bad, err in damaged:
                self.write(f"warning: checkpoint {bad} is damaged ({err}); resuming from {path} instead "
                           f"(the damaged one is kept as {set_aside(bad)})")
            self.write(f"resuming from {path} (step {step})")
            return step
        if damaged:
            reasons = "; ".join(f"{path.name}: {err}" for path, err in damaged)
            raise CheckpointError(f"no usable checkpoint in {checkpoint_dir(self.run_dir)} ({reasons}); to train "
                                  f"again from step 0, move that folder away and run with --resume again")
        self.write(f"no checkpoint in {self.run_dir} yet: training starts again from step 0, with a fresh log")
        return 0

    def _restore(self, path: Path) -> int:
        """Load one checkpoint into the model, the optimizer and the dropout generator; return its step.
        Everything is checked first: a checkpoint that does not fit raises CheckpointError and changes nothing."""
        params, optimizer_state, state = load_checkpoint(path)
        problems = _optimizer_state_problems(self.optimizer.state_dict(), optimizer_state)
        rng = dropout_rng(self.model)
        try:                                     # a generator of the same kind takes the state first: a test
            type(rng.bit_generator)().state = state["dropout_rng"]
        except (KeyError, TypeError, ValueError) as err:
            problems.append(f"state.json has no usable dropout_rng ({type(err).__name__}: {err})")
        if problems:
            raise CheckpointError(f"{path} does not fit: " + "; ".join(problems))
        self.restore_state(state)                # checks first: CheckpointError changes nothing
        assign_params(self.model.params, params, where=str(path / "model.safetensors"))   # checks, then copies
        self.optimizer.load_state_dict(optimizer_state)
        rng.bit_generator.state = self._dropout_state(state, path)
        self.resumed_state = state
        return state["step"]

    def _dropout_state(self, state: dict, path: Path) -> dict:
        """This rank's dropout generator state in a checkpoint: "dropout_rng" for one process (and rank 0),
        "dropout_rng_ranks"[rank] for a data-parallel run written by as many ranks. Other numbers of
        ranks: rank 0 takes "dropout_rng", the others keep their fresh streams (said once)."""
        ranks = state.get("dropout_rng_ranks")
        if not self.group.distributed:
            return state["dropout_rng"]
        if isinstance(ranks, list) and len(ranks) == self.group.size:
            return ranks[self.group.rank]
        self.write(f"warning: {path} was written by {len(ranks) if isinstance(ranks, list) else 1} rank(s), "
                   f"this run has {self.group.size}: the dropout streams of ranks 1.. start afresh (the run "
                   f"is not the one an uninterrupted run would have been)")
        rng = dropout_rng(self.model)
        return state["dropout_rng"] if self.group.is_main else rng.bit_generator.state

    def _checkpoint(self, step: int, best: dict | None) -> None:
        """Write the checkpoint of `step` (rank 0; every rank hands in its dropout state). `best`: the best
        evaluation so far, whose private fields (not in the log) the checkpoint keeps."""
        rng_state = dropout_rng(self.model).bit_generator.state
        ranks = self.group.gather_objects(rng_state)          # every rank's dropout stream (data-parallel)
        if not self.group.is_main:
            return
        state = {"dropout_rng": rng_state, **self.checkpoint_state()}
        private = {k: v for k, v in (best or {}).items() if k.startswith("_")}
        if private:
            state["best_private"] = {"step": best["step"], "fields": private}
        if self.group.distributed:
            state["dropout_rng_ranks"] = ranks
        save_checkpoint(self.run_dir, step, self.model.params, self.optimizer.state_dict(), state, keep=self.keep)

    # -- one step, one evaluation -------------------------------------------------------------------
    def _step(self, number: int, epoch, micro_batches) -> dict:
        """One optimizer step; its log row."""
        t0 = time.perf_counter()
        lr = self.lr_at(number - 1)
        counts = [self.objective.counts(b) for b in micro_batches]
        local = count_totals(counts) if counts else (0,) * len(self.objective.loss_keys)   # (a rank may have no rows)
        totals = self.group.allreduce_counts(local)         # the global denominators, before the weights
        try:
            m = train_step(self.model, self.objective, self.optimizer, micro_batches, loss_weights(counts, totals),
                           lr, self.max_grad_norm, self.scaler, step=number, group=self.group)
        except NonFiniteLossError as err:
            if not self.checkpoint_every:
                raise
            checkpoints = list_checkpoints(self.run_dir)
            hint = (f"the newest checkpoint is {checkpoints[-1]}; fix the cause and run with --resume "
                    f"(--resume --lr X continues with a lower peak learning rate X)"
                    if checkpoints else "no checkpoint was written yet")
            raise NonFiniteLossError(f"{err}. {hint}") from None
        seconds = time.perf_counter() - t0
        m["counts"] = totals
        row = {"step": number, **({"epoch": epoch} if epoch is not None else {}), "loss": m["loss"],
               **self.step_metrics(m), "lr": lr, "grad_norm": m["grad_norm"]}
        if self.scaler is not None:
            row.update(loss_scale=m["loss_scale"], skipped=m["skipped"], skipped_steps=self.scaler.skipped_steps)
        row.update(tokens_per_s=m["tokens"] / seconds, seconds=seconds)
        return row

    def _evaluation(self, number: int, epoch, train_losses: list[float]) -> dict:
        result = {"step": number, **({"epoch": epoch} if epoch is not None else {})}
        if train_losses:
            result["train_loss"] = float(numpy.mean(train_losses))
        result.update(self.evaluate())
        return result

    # -- the run ------------------------------------------------------------------------------------
    def run(self, plan, make_batches, start: int = 0) -> dict:
        """Run the steps of `plan` after the first `start` (a resumed run); make_batches(rows) gives the
        micro-batches of a step. Returns {"steps_run", "last_eval", "best"}.

        The log is first cut back to the rows of steps 1..start (all of it for start 0), so whatever a
        killed run wrote after its checkpoint is written again, once. A run resumed at its very end
        (start == len(plan), e.g. `--resume --steps N` at the checkpoint of step N) runs no step but
        evaluates once if its log has no evaluation of that step, as its last step would have.
        """
        total = len(plan)
        if start > total:
            raise InputError(f"cannot resume at step {start} a plan of {total} steps")
        main = self.group.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        best, best_value, without_gain = None, -math.inf, 0
        last_eval, since_eval, number = {}, [], start
        # resumed: the log up to `start` is the run so far (rank 0 cuts it; the others only read it)
        kept = truncate_log(self.log_path, start) if main else _rows_up_to(self.log_path, start)
        lost = missing_steps(kept, start)
        if lost:
            self.write(f"warning: {self.log_path} has no row for step(s) {step_ranges(lost)} (deleted?); "
                       f"the resumed log lacks them too")
        for row in kept:
            if "loss" in row:                        # a step
                since_eval.append(row["loss"])
                continue
            last_eval, since_eval = row, []          # an evaluation
            if self.metric is not None and row[self.metric] > best_value:
                best, best_value, without_gain = row, row[self.metric], 0
            elif self.metric is not None:
                without_gain += 1
        best = self._with_private_fields(best)
        stopped = self.patience is not None and without_gain >= self.patience    # resumed after an early stop
        if stopped:
            self.write(f"the run stopped early at step {start} (no better {self.metric} in {self.patience} "
                       f"evaluations): no step to train")
        bar = tqdm(total=total, initial=start, desc=self.desc, unit="step", disable=not self.progress,
                   dynamic_ncols=True)
        with bar, open(self.log_path if main else os.devnull, "a", encoding="utf-8", buffering=1) as log:
            if start == total and start and self.evaluate and last_eval.get("step") != start:
                last_eval = self._evaluation(start, plan[-1][0], since_eval)      # resumed at the end
                self._log(log, {k: v for k, v in last_eval.items() if not k.startswith("_")})
                self._say(bar, f"step {start}: {self.describe(last_eval)}")
                if self.metric is not None and last_eval[self.metric] > best_value:   # as the last step would
                    best, best_value = last_eval, last_eval[self.metric]
                    if self.save_best is not None and main:
                        self.save_best(self.run_dir / "best")
            for number, (epoch, rows) in enumerate(plan[start:] if not stopped else [], start=start + 1):
                row = self._step(number, epoch, make_batches(rows))
                self._log(log, row)
                since_eval.append(row["loss"])
                bar.update(1)
                bar.set_postfix(self._postfix(row), refresh=False)
                last = number == total
                end_of_epoch = epoch is not None and (last or plan[number][0] != epoch)
                if self.evaluate and ((self.eval_every and number % self.eval_every == 0) or end_of_epoch or last):
                    bar.set_postfix_str("evaluating", refresh=True)     # in this bar: no second bar nested in it
                    last_eval = self._evaluation(number, epoch, since_eval)
                    bar.set_postfix(self._postfix(row), refresh=False)
                    since_eval = []
                    self._log(log, {k: v for k, v in last_eval.items() if not k.startswith("_")})
                    improved = self.metric is not None and last_eval[self.metric] > best_value
                    if improved:
                        best, best_value, without_gain = last_eval, last_eval[self.metric], 0
                        if self.save_best is not None and main:
                            self.save_best(self.run_dir / "best")
                    elif self.metric is not None:
                        without_gain += 1
                    where = f"step {number}" + (f" (epoch {epoch})" if epoch is not None else "")
                    self._say(bar, f"{where}: {self.describe(last_eval)}{'  (best so far)' if improved else ''}")
                if self.group.distributed and self.check_every and (number % self.check_every == 0 or last):
                    self.group.check_consistent(self.model.params.buffers.data, step=number)
                stop = self.patience is not None and without_gain >= self.patience
                if self.checkpoint_every and (number % self.checkpoint_every == 0 or last or stop):
                    if main:
                        log.flush()
                        os.fsync(log.fileno())       # the log reaches the disk before the checkpoint that needs it
                    self._checkpoint(number, best)
                if stop:
                    self._say(bar, f"early stopping: no better {self.metric} in {self.patience} evaluations")
                    break
        return {"steps_run": number, "last_eval": last_eval, "best": best}

    def _with_private_fields(self, best: dict | None) -> dict | None:
        """The best evaluation rebuilt from the log, with the private fields the checkpoint resumed from kept
        for it (the log has no "_" keys); as it is when the checkpoint holds none for that evaluation."""
        saved = self.resumed_state.get("best_private")
        if best is None or not isinstance(saved, dict) or saved.get("step") != best["step"] \
                or not isinstance(saved.get("fields"), dict):
            return best
        return {**best, **saved["fields"]}

    def _say(self, bar, text: str) -> None:
        """A message under the progress bar (rank 0 only)."""
        if self.group.is_main:
            bar.write(text)

    def _log(self, log, row: dict) -> None:
        log.write(json.dumps(row) + "\n")
        if self.callback is not None:
            self.callback(row)

    @staticmethod
    def _postfix(row: dict) -> dict:
        """What the progress bar shows after each step."""
        shown = {"epoch": row["epoch"]} if "epoch" in row else {}
        shown["loss"] = f"{row['loss']:.3f}"
        shown.update({k.removesuffix("_accuracy"): f"{v:.3f}" for k, v in row.items() if k.endswith("_accuracy")})
        shown.update(lr=f"{row['lr']:.1e}", tok_s=f"{row['tokens_per_s']:.0f}")
        return shown
