"""The exercises in order (01-12 the learning path's, 13-20 added after; docs/index.md places each), and finding one by name or number."""
from __future__ import annotations

from minibert.errors import InputError
from minibert.exercises import (ex01_wordpiece, ex02_linear, ex03_embedding, ex04_layer_norm, ex05_gelu,
                                ex06_softmax, ex07_attention, ex08_heads, ex09_cross_entropy, ex10_masking,
                                ex11_nsp, ex12_adamw)
from minibert.exercises import ex13_dropout, ex14_attention_backward, ex15_encoder_layer_backward, ex16_mlm_head
from minibert.exercises import ex17_gradient_check, ex18_wordpiece_training, ex19_qa_head, ex20_schedule_clipping
from minibert.exercises.base import Exercise

EXERCISES: tuple[Exercise, ...] = tuple(m.EXERCISE for m in (
    ex01_wordpiece, ex02_linear, ex03_embedding, ex04_layer_norm, ex05_gelu, ex06_softmax, ex07_attention,
    ex08_heads, ex09_cross_entropy, ex10_masking, ex11_nsp, ex12_adamw,
    ex13_dropout, ex14_attention_backward, ex15_encoder_layer_backward, ex16_mlm_head,
    ex17_gradient_check, ex18_wordpiece_training, ex19_qa_head, ex20_schedule_clipping))


class UnknownExerciseError(InputError, KeyError):
    """No exercise has that name or number: bad input, and a KeyError as any failed look-up in a table."""

    def __str__(self) -> str:
        return str(self.args[0])        # KeyError's own str() would show the message in quotes


def get(name) -> Exercise:
    """An exercise by name ("layer_norm"), number (3, "3", "03") or file stem ("03_layer_norm")."""
    if isinstance(name, Exercise):
        return name
    key = str(name).strip().removesuffix(".py").removesuffix(".ipynb")
    for ex in EXERCISES:
        if key in (ex.name, ex.stem, str(ex.number), f"{ex.number:02d}"):
            return ex
    raise UnknownExerciseError(f"no exercise {name!r}; choose one of: {', '.join(ex.name for ex in EXERCISES)}"
                               f" (or a number 1-{len(EXERCISES)})")
