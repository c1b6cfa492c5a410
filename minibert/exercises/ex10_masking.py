"""Exercise 10: BERT's masked-LM rule (minibert.data.pretraining.masking.num_to_predict / create_masked_lm_predictions)."""
from __future__ import annotations

import math
import random

from minibert.data.pretraining.masking import MASK, create_masked_lm_predictions, num_to_predict
from minibert.exercises.base import CheckFailed, Exercise, Question, describe

STATEMENT = r"""
## The rule (google-research/bert, `create_pretraining_data.py`)

An instance is `[CLS] A [SEP] B [SEP]` as a list of token strings. The masked-LM objective hides some
of its tokens and asks the model for the originals:

1. **How many.** $k = \min\big(\text{max\_predictions\_per\_seq},\ \max(1,\ \operatorname{round}(n \cdot 0.15))\big)$
   with $n$ = `len(tokens)`, the special tokens included, and Python's `round` (half to even:
   $30 \times 0.15 = 4.5 \to 4$). Exactly $k$ positions, every time: not each token by its own
   15% coin, which gives a different number each time (sometimes 0).
2. **Which.** Every position except `[CLS]` and `[SEP]` (and `[PAD]`) is a candidate; shuffle the
   candidates (`rng.shuffle`) and take the first $k$.
3. **How.** Each chosen token becomes `[MASK]` with probability 80%; otherwise it is kept (10%) or
   replaced by a random word of the whole vocabulary (10%):
   `rng.random() < 0.8` → `[MASK]`; else `rng.random() < 0.5` → keep; else
   `vocab_words[rng.randint(0, len(vocab_words) - 1)]`.
4. Return the corrupted copy, the chosen positions **sorted**, and the original token at each.

Draw the random numbers in exactly this order, from the `rng` you are given (a `random.Random`):
then the same seed gives the same masks as Google's script, which is how minibert's data are
checked against the reference.

## Your functions

`num_to_predict(num_tokens, masked_lm_prob, max_predictions_per_seq)` and
`create_masked_lm_predictions(tokens, masked_lm_prob, max_predictions_per_seq, vocab_words, rng,
whole_word_mask=False)`. Whole-word masking (all pieces of a word together, see the docstring and
`candidate_groups`, imported in your file) is an optional extension: raise `NotImplementedError`
for `whole_word_mask=True` if you skip it.
"""

HINTS = (
    "The budget first: the number of positions is fixed per instance, computed from its length (specials "
    "included) with Python's rounding, and bounded on both sides. Then: never change the list you were "
    "given.",
    "Which positions: only ordinary tokens are candidates; their order is randomised once with the rng, and "
    "the budget is taken from the front. A coin per token is a different rule (a different count each "
    "time).",
    "If the statistics pass but the exact check fails, the random numbers are drawn in another order or "
    "number: one shuffle, then per chosen position (in shuffled order) one draw, a second draw only when the "
    "first did not give [MASK], a third only for a random word. docs/pretraining_data.md, '4. Masking'.",
)

CONTRACTS = (
    ("num_to_predict", """How many positions an instance of num_tokens tokens predicts.

    num_tokens: int, the length with [CLS] and [SEP]; masked_lm_prob: float (0.15);
    max_predictions_per_seq: int, the cap.  Returns an int (the statement's rule 1).
    """),
    ("create_masked_lm_predictions", """BERT's masked-LM corruption of one instance (the statement's rule).

    tokens: list of str ([CLS] A [SEP] B [SEP]); not modified.
    masked_lm_prob, max_predictions_per_seq: the budget's parameters (num_to_predict).
    vocab_words: list of str, the whole vocabulary (for random replacements).
    rng: a random.Random: draw every random number from it, in the statement's order.
    whole_word_mask: optional part (raise NotImplementedError for True if you skip it).

    Returns (output_tokens, masked_lm_positions, masked_lm_labels):
        output_tokens: a new list of str, the corrupted copy;
        masked_lm_positions: list of int, increasing, distinct;
        masked_lm_labels: list of str, the original token at each position.

    To think through: which positions may never be chosen, how many are chosen, and what each chosen
    token becomes; why exactly this order of random draws.
    """),
)

DERIVATION = r"""
## Thinking it through

**1. The budget.** Compute $k$ by hand for $n$ = 3, 10, 30, 50 and 150 tokens at 15% with a cap of 20.
Which rounding gives 4 for $n = 30$ ($4.5$)? Which bound matters for $n = 3$, which for $n = 150$?

**2. Candidates.** Which tokens can never be predicted, and why must the model always see them?

**3. A fixed budget, not a coin.** With a 15% coin per token, how many positions does a 10-token
instance get? What is the chance of 0? Why does BERT prefer exactly $k$?

**4. 80/10/10 as draws.** With one uniform draw $u_1$ and (only when needed) a second $u_2$, write
the conditions that give [MASK] with probability 0.8, keep with 0.1, random with 0.1. Why is
"$u_1 < 0.8$, else $u_1 < 0.9$" not the same *sequence of draws*, although the same distribution?

**5. Reproducibility.** The reference's masks for a seed depend on the number and order of draws:
list them for one instance (the shuffle, then per position 1, 2 or 3 draws).

**6. What is returned.** The positions in increasing order, the labels from the input (not the
output), and the input list untouched.

When you are done, open the solution page on purpose: `docs/exercises/solutions/10_masking.md`.
"""

QUESTIONS = (
    Question(
        "Why 80% [MASK], 10% kept, 10% random, and not 100% [MASK]?",
        "[MASK] never appears at fine-tuning time: trained only on [MASK] positions, the model would learn "
        "representations for a token it never sees again (a pretrain/fine-tune mismatch). Keeping 10% "
        "makes it produce good representations of every observed token (any token may be a target); the "
        "10% random words stop it from trusting the input blindly, so it uses the context everywhere. The "
        "cost is small: 15% x 10% = 1.5% of all tokens are replaced."),
    Question(
        "Why choose exactly num_to_predict positions instead of masking each token with probability 0.15?",
        "A fixed budget gives every instance the same number of predictions (a stable loss, a fixed-size "
        "label array), and at least one: with a coin per token a short instance often gets none (a "
        "10-token instance: 0.85^8 = 27% with no prediction among its 8 ordinary tokens)."),
)

SANITY = (
    ("**Sanity: the 80/10/10 split, measured on your function.**",
     "import random\n\n"
     "vocab = [f\"w{i}\" for i in range(500)]\n"
     "counts = {\"[MASK]\": 0, \"kept\": 0, \"random\": 0}\n"
     "for seed in range(300):\n"
     "    tokens = [\"[CLS]\", *random.Random(seed).choices(vocab, k=30), \"[SEP]\"]\n"
     "    out, positions, labels = mine.create_masked_lm_predictions(tokens, 0.15, 20, vocab, random.Random(seed))\n"
     "    for i in positions:\n"
     "        kind = \"[MASK]\" if out[i] == \"[MASK]\" else \"kept\" if out[i] == tokens[i] else \"random\"\n"
     "        counts[kind] += 1\n"
     "total = sum(counts.values())\n"
     "print({k: f\"{n / total:.1%}\" for k, n in counts.items()})"),
)

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
WORDS = [f"w{i}" for i in range(400)]
VOCAB = list(SPECIALS) + WORDS


def _tokens(rng: random.Random, n_a=20, n_b=10):
    return ["[CLS]", *rng.choices(WORDS, k=n_a), "[SEP]", *rng.choices(WORDS, k=n_b), "[SEP]"]


def _budget_candidates(n, p, cap):
    x = n * p
    return [
        (min(cap, max(1, math.floor(x + 0.5))), "use Python's round: it rounds halves to even "
         "(30 x 0.15 = 4.5 -> 4), as the reference does; floor(x + 0.5) rounds them up."),
        (min(cap, max(1, math.ceil(x))), "round to the nearest integer with Python's round (half to even), "
         "not up (ceil)."),
        (min(cap, max(1, int(x))), "round to the nearest integer (Python's round), do not truncate."),
        (min(cap, int(round(x))), "at least one position: a very short instance still predicts one."),
        (max(1, int(round(x))), "at most max_predictions_per_seq positions: the cap is missing."),
    ]


def _call(t, tokens, seed, cap=20, prob=0.15, wwm=False, vocab=VOCAB):
    given = list(tokens)
    result = t.call("create_masked_lm_predictions", given, prob, cap, list(vocab), random.Random(seed),
                    **({"whole_word_mask": True, "optional": True} if wwm else {}))
    output, positions, labels = t.unpack(result, "create_masked_lm_predictions",
                                         "output_tokens, masked_lm_positions, masked_lm_labels")
    if given != tokens:
        raise CheckFailed("create_masked_lm_predictions changed the `tokens` list it was given.",
                          "work on a copy: the caller still needs the original tokens.")
    if not isinstance(output, list) or len(output) != len(tokens):
        raise CheckFailed(f"output_tokens is {describe(output)}; expected a list of {len(tokens)} tokens.")
    if not isinstance(positions, list) or not all(isinstance(i, int) for i in positions):
        raise CheckFailed(f"masked_lm_positions is {describe(positions)}; expected a list of ints.")
    if positions != sorted(positions) or len(set(positions)) != len(positions):
        raise CheckFailed(f"masked_lm_positions {positions} are not distinct and increasing.",
                          "the positions must be listed in increasing order, each once (the labels follow the same order).")
    if list(labels) != [tokens[i] for i in positions]:
        raise CheckFailed("masked_lm_labels are not the original tokens at masked_lm_positions.",
                          "the labels are the original tokens at the listed positions: taken from the input, not from the output.")
    unchanged = [i for i in range(len(tokens)) if i not in set(positions) and output[i] != tokens[i]]
    if unchanged:
        raise CheckFailed(f"position {unchanged[0]} changed in the output but is not in masked_lm_positions.",
                          "every changed position must be predicted (and listed).")
    return output, positions, labels


def check(t):
    with t.check("num_to_predict: the budget for 19 lengths (Python's round, at least 1, at most the cap)"):
        cases = [(n, 0.15, 20) for n in (3, 5, 7, 10, 17, 23, 30, 50, 70, 90, 110, 128, 130, 150, 512)]
        cases += [(30, 0.15, 3), (6, 0.5, 20), (3, 0.1, 20), (10, 0.25, 20)]
        for n, p, cap in cases:
            got = t.call("num_to_predict", n, p, cap)
            want = num_to_predict(n, p, cap)
            if isinstance(got, bool) or not isinstance(got, int):
                raise CheckFailed(f"num_to_predict({n}, {p}, {cap}) returned {describe(got)}; expected an int.",
                                  "the count must be a Python int, not a float.")
            if got != want:
                hint = next((h for value, h in _budget_candidates(n, p, cap) if value == got), "")
                raise CheckFailed(f"num_to_predict({n}, {p}, {cap}) returned {got}; expected {want}.",
                                  hint or "the budget is bounded on both sides and rounded (statement, rule 1).")

    base = int(t.rng.integers(2 ** 31))               # every case follows the grader's seed
    rng = random.Random(base)
    samples = [(_tokens(rng), base + seed) for seed in range(300)]
    budget = num_to_predict(len(samples[0][0]), 0.15, 20)
    with t.check("[CLS] and [SEP] are never masked (300 instances)"):
        for tokens, seed in samples:
            output, positions, _ = _call(t, tokens, seed)
            special = [i for i in positions if tokens[i] in ("[CLS]", "[SEP]")]
            if special:
                raise CheckFailed(f"position {special[0]} ({tokens[special[0]]}) was chosen for prediction "
                                  f"(seed {seed}): [CLS] and [SEP] must never be masked.",
                                  "leave the special tokens out of the candidates: only ordinary tokens can be "
                                  "masked (the model must always see where the segments are).")
    with t.check(f"exactly num_to_predict positions each time ({budget} of {len(samples[0][0])} tokens; and a cap of 3)"):
        counts = [len(_call(t, tokens, seed)[1]) for tokens, seed in samples[:100]]
        if len(set(counts)) > 1:
            raise CheckFailed(f"the number of predicted positions varies between {min(counts)} and {max(counts)}; "
                              f"it must be exactly {budget} every time.",
                              "this is what an independent coin flip per token gives (each token masked with "
                              "probability 0.15): BERT instead picks a fixed number of positions, the budget, "
                                  "from the shuffled candidates.")
        if counts[0] != budget:
            raise CheckFailed(f"{counts[0]} positions predicted; expected num_to_predict = {budget}.",
                              "the budget is computed from the whole length, [CLS] and [SEP] included.")
        capped = len(_call(t, samples[0][0], 0, cap=3)[1])
        if capped != 3:
            raise CheckFailed(f"with max_predictions_per_seq = 3, {capped} positions were predicted; expected 3.")
    with t.check("which positions: random, different from one seed to the next"):
        chosen = {tuple(_call(t, tokens, seed)[1]) for tokens, seed in samples[:40]}
        if len(chosen) < 20:
            raise CheckFailed(f"only {len(chosen)} different sets of positions in 40 instances.",
                              "the candidates are taken in a fixed order: they must be shuffled with the rng first.")
    with t.check("80% [MASK], 10% kept, 10% random word (1,500 predictions)"):
        masked = kept = replaced = 0
        for tokens, seed in samples:
            output, positions, _ = _call(t, tokens, seed)
            for i in positions:
                if output[i] == MASK:
                    masked += 1
                elif output[i] == tokens[i]:
                    kept += 1
                else:
                    replaced += 1
        total = masked + kept + replaced
        shares = masked / total, kept / total, replaced / total
        if abs(shares[0] - 0.8) > 0.04 or abs(shares[1] - 0.1) > 0.035 or abs(shares[2] - 0.1) > 0.035:
            raise CheckFailed(f"of {total} predictions, {shares[0]:.1%} became [MASK], {shares[1]:.1%} were kept and "
                              f"{shares[2]:.1%} replaced; expected about 80%, 10%, 10%.",
                              "one draw decides [MASK] (80%); only if it does not, a second draw decides "
                              "between keeping and a random vocabulary word (half and half).")
    with t.check("the same seed gives google-research/bert's masks (100 instances)"):
        for tokens, seed in samples[:100]:
            got = _call(t, tokens, seed)
            want = create_masked_lm_predictions(list(tokens), 0.15, 20, list(VOCAB), random.Random(seed))
            if tuple(got) != tuple(want):
                diff = next(i for i in range(len(tokens)) if got[0][i] != want[0][i]) \
                    if got[0] != want[0] else None
                where = f" (first difference at position {diff})" if diff is not None else ""
                so_far = all(r.status == "pass" for r in t.results)
                raise CheckFailed(f"with seed {seed} your masks differ from the reference's{where}"
                                  + (", although the rule's statistics are right." if so_far else "."),
                                  "the random numbers are drawn in another order or number than Google's: one "
                                  "shuffle of the candidates, then for each chosen position in shuffled order the "
                                  "draws of rule 3, a later draw only when the earlier one requires it, and the "
                                  "random word by randint over the whole vocabulary.")
    with t.check("optional: whole-word masking (the pieces of a word together)"):
        rng = random.Random(base + 1)
        for seed in range(base, base + 60):
            tokens = ["[CLS]"]
            for _ in range(14):
                tokens += [rng.choice(WORDS)] + [f"##{rng.choice(WORDS)}" for _ in range(rng.choice((0, 0, 1, 2)))]
            tokens += ["[SEP]"]
            got = _call(t, tokens, seed, wwm=True)
            want = create_masked_lm_predictions(list(tokens), 0.15, 20, list(VOCAB), random.Random(seed),
                                                whole_word_mask=True)
            if tuple(got) != tuple(want):
                plain = create_masked_lm_predictions(list(tokens), 0.15, 20, list(VOCAB), random.Random(seed))
                if tuple(got) == tuple(plain):
                    raise CheckFailed("whole_word_mask=True gives the same masks as whole_word_mask=False: the "
                                      "flag is ignored.", "implement it, or raise NotImplementedError when "
                                      "whole_word_mask is True (it is an optional part).")
                raise CheckFailed(f"whole-word masking (seed {seed}) differs from minibert's.",
                                  "whole words are shuffled as units and added while they fit the budget (one "
                                  "that would overshoot is skipped); one 80/10/10 decision per word, a random "
                                  "word for each piece (see the docstring of candidate_groups).")


EXERCISE = Exercise(
    number=10, name="masking", title="the masked-LM rule: 15%, 80/10/10, specials never masked",
    functions=(num_to_predict, create_masked_lm_predictions),
    imports="import random\n\nfrom minibert.data.pretraining.masking import (CLS, MASK, NEVER_MASKED, PAD, SEP,\n"
            "                                       candidate_groups)   # candidate_groups: for the optional part",
    minutes=45,
    assesses="BERT's corruption rule exactly (a fixed budget, not a coin per token; specials excluded; 80/10/10 "
             "and why); reproducibility by drawing random numbers in a fixed order",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/pretraining_data.md",), notebooks=("03_mlm_nsp.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
