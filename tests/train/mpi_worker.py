"""One data-parallel training run for tests/train/test_distributed.py, launched as

    mpiexec -n N python tests/train/mpi_worker.py KIND DROPOUT OUT [hang|nccl]   (or without mpiexec: one process)

KIND pretrain (BertForPreTraining, masked LM + next sentence) or finetune (BertForSequenceClassification,
the sst2 objective); DROPOUT 0 or 1. 10 optimizer steps of a global batch of 7 rows (uneven shares over 2
ranks: 3 and 4, each rank in 2 micro-batches), float64, through TrainingLoop with the process group detected
from the MPI environment, the parameter checksums compared after every step. Each rank writes its final
parameters to OUT/params-RANK.npy; rank 0 writes the log, OUT/run/log.jsonl.
With `hang`, rank 1 sleeps 60 s before its 3rd step and the all-reduces time out after 2 s: the job must
stop (error on rank 0, MPI Abort), not wait.
With `cupy`, the model lives on this rank's GPU and the sums go through CuPy's NCCL (a `gpu` test).
With `nccl`, the model lives on the strict CuPy stand-in (tests/strict_xp.py) and the gradient sums go
through an emulated NCCL (tests/train/fake_nccl.py: by address, in place, on the device buffer); each
rank also writes OUT/nccl-RANK.json (the GPU it chose, the NCCL calls).
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))      # tests/: helpers
sys.path.insert(0, str(Path(__file__).resolve().parent))          # tests/train/: fake_nccl

import fake_nccl                                                      # noqa: E402
from helpers import pretraining_batch                                 # noqa: E402
from minibert import backend                                          # noqa: E402
from minibert.backend import collectives                              # noqa: E402
from minibert.model import BertConfig, BertForPreTraining, BertForSequenceClassification   # noqa: E402
from minibert.cli.distributed import abort_on_error                  # noqa: E402
from minibert.train.distributed import detect                        # noqa: E402
from minibert.train.finetune_tasks import get_task                   # noqa: E402
from minibert.train.loop import TrainingLoop                         # noqa: E402
from minibert.train.optim import AdamW                               # noqa: E402
from minibert.train.pretrain import PRETRAINING                      # noqa: E402

STEPS, BATCH, ACCUMULATE = 10, 7, 2


def main(kind: str, dropout: str, out: str, mode: str = "") -> None:
    group = detect(timeout=2.0 if mode == "hang" else None)
    fake = None
    chosen = ""
    if mode == "nccl":                                    # the strict stand-in, an emulated NCCL
        from strict_xp import strict_xp
        backend.register("strict", strict_xp)
        backend.use("strict")
        if group.distributed:
            fake = fake_nccl.install(collectives, group.comm)
    elif mode == "cupy":                                  # a real GPU per rank, real NCCL
        backend.use("cupy")
    if mode in ("nccl", "cupy"):
        chosen = group.use_gpus()                         # before the model: its GPU, the NCCL communicator
    with abort_on_error(group):
        train(group, kind, dropout, out, mode == "hang")
    if mode in ("nccl", "cupy"):
        record = {"chosen": chosen, "nccl": group.device_sum is not None}
        if fake is not None:
            record.update(devices=fake.devices, calls=fake.calls, aborted=fake.aborted)
        (Path(out) / f"nccl-{group.rank}.json").write_text(json.dumps(record))


def train(group, kind: str, dropout: str, out: str, hang: bool) -> None:
    p = 0.1 if dropout == "1" else 0.0
    cfg = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                     max_position_embeddings=32, hidden_dropout_prob=p, attention_probs_dropout_prob=p,
                     **({"num_labels": 2} if kind == "finetune" else {}))
    data = pretraining_batch(cfg, np.random.default_rng(7), B=STEPS * BATCH, T=16)      # the same on every rank
    if kind == "pretrain":
        model, objective = BertForPreTraining(cfg, seed=3, dtype="float64").train(), PRETRAINING
    else:
        data = {k: data[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
        data["labels"] = np.random.default_rng(8).integers(0, 2, STEPS * BATCH)
        model, objective = BertForSequenceClassification(cfg, seed=3, dtype="float64").train(), get_task("sst2", 16)
    group.seed_dropout(model, seed=3)
    order = np.random.default_rng(9).permutation(STEPS * BATCH)
    plan = [(None, order[s * BATCH:(s + 1) * BATCH]) for s in range(STEPS)]
    accumulate = ACCUMULATE if group.distributed else 1           # one process: the whole batch at once
    loop = TrainingLoop(model, objective, AdamW(model.params, lr=1e-3, weight_decay=0.01), Path(out) / "run",
                        lr_at=lambda i: 1e-3 * (1 - i / STEPS), progress=False, write=lambda text: None,
                        group=group, check_every=1)
    calls = []

    def batches(rows):
        calls.append(rows)
        if hang and group.rank == 1 and len(calls) == 3:
            time.sleep(60)                                        # stuck: the others wait in the all-reduce
        return [{k: v[r] for k, v in data.items()} for r in group.micro_rows(rows, accumulate, BATCH)]

    loop.run(plan, batches)
    np.save(Path(out) / f"params-{group.rank}.npy", backend.to_host(model.params.buffers.data))


if __name__ == "__main__":
    main(*sys.argv[1:])
