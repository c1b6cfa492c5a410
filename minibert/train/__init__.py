"""Training: the optimizer, mixed precision, one training step, the loop, checkpoints, and the two
runs built on them.

    optim.py            AdamW (both variants), warm-up then linear decay, gradient clipping
    amp.py              dynamic loss scaling for float16 matmuls
    step.py             one optimizer step for every model: micro-batches -> accumulated gradients -> clip -> AdamW
    loop.py             TrainingLoop: log.jsonl, progress bar, evaluation, checkpoints, resume, best model
    checkpoint.py       training checkpoints, written atomically, resumed exactly
    pretrain.py         pretraining: masked LM + next sentence, from a corpus to a model
    finetune.py         fine-tuning on a task (classification, NER, question answering)
    finetune_tasks.py   what the fine-tuning loop needs to know about each kind of task (its objective)

The runs draw nothing: `minibert pretrain` / `finetune` (minibert/cli/) and the notebooks draw
the curves from the run folder with minibert.viz.plot_run.
"""
