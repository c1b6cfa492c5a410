"""Masked-LM corruption: choose ~15% of an instance's tokens and hide them.

Follows google-research/bert `create_pretraining_data.py`,
`create_masked_lm_predictions`, random call for random call, so that the same
`random.Random` state gives the same masks:

1. candidates = every position except those holding [CLS], [SEP] or [PAD]
   (NEVER_MASKED); with whole-word masking, a "##" piece joins the word it
   continues, so a candidate is a group of positions;
2. shuffle the candidates (one `rng.shuffle`);
3. budget = min(max_predictions_per_seq, max(1, round(len(tokens) * masked_lm_prob))),
   len counting [CLS] and [SEP];
4. walk the shuffled candidates until the budget is spent; a whole word that
   would overshoot it is skipped (the next, shorter one may still fit);
5. each chosen token: 80% [MASK], 10% kept, 10% a random word drawn from the
   *whole* vocabulary (specials and [unused] entries included, as Google does):
   `rng.random() < 0.8` -> [MASK]; else `rng.random() < 0.5` -> keep;
   else `vocab_words[rng.randint(0, len(vocab_words) - 1)]`;
6. the predictions are returned sorted by position.

Why 80/10/10 (BERT paper, section 3.1 and appendix C.2): [MASK] never appears
when the model is fine-tuned, so always showing it would make pretraining and
fine-tuning inputs differ. Keeping the token 10% of the time makes the model
produce a good representation of every input token, not only of [MASK]s; the
10% random tokens stop it from trusting the input blindly (it cannot know
which tokens were swapped), at the cost of corrupting 1.5% of all tokens.

Whole-word masking (minibert's choice, differs from the reference): Google's
`--do_whole_word_mask` groups the pieces of a word when *choosing* what to
predict but still draws 80/10/10 for each piece on its own, so "un ##bel
##ie ##va ##bly" can become "[MASK] ##bel [MASK] [MASK] ##bly" and leak the word
(reported upstream as google-research/bert issue #910; Hugging Face's
original DataCollatorForWholeWordMask did the same). minibert draws once per
word: the whole word becomes [MASK]s, or stays, or every piece is replaced by
a random word (one random draw per piece). It also groups a "##" piece only
with the piece right before it, so a B segment that starts with a "##" piece
(after truncation from the front) is not joined to the last word of A across
[SEP], as the reference's grouping would. Without whole-word masking the
output is exactly Google's.

What is never masked, exactly, and why. The rule is Google's, by the token's
string: a position holding [CLS], [SEP] or [PAD] is not a candidate. In an
instance those are only ever the control tokens the pipeline put in: the
[CLS] at position 0 and the two [SEP]s closing A and B ([PAD] comes later, with
the features; it is listed so that padded input is safe too). Corpus text
never gives them: it is tokenized with split_special_tokens on, so "[SEP]"
written in a sentence is "[", "sep", "]", three ordinary, maskable tokens, and
`instances.check_no_control_tokens` refuses a tokenization that gives one. So
a masked position is always text and a control token is never masked; a
separator is not something to predict, and masking one would hide where the
segments end. Everything else is a candidate, [UNK] included: WordPiece writes
it for a word it cannot spell, it stands for text, and Google masks it too
(its label is then [UNK]), so the instances stay Google's.
"""
from __future__ import annotations

import random

__all__ = ["CLS", "SEP", "MASK", "PAD", "NEVER_MASKED", "candidate_groups",
           "create_masked_lm_predictions", "num_to_predict"]

CLS, SEP, MASK, PAD = "[CLS]", "[SEP]", "[MASK]", "[PAD]"
# The control tokens the pipeline puts in an instance (see "What is never masked" above).
NEVER_MASKED = frozenset((CLS, SEP, PAD))


def num_to_predict(num_tokens: int, masked_lm_prob: float, max_predictions_per_seq: int) -> int:
    """How many positions an instance of `num_tokens` tokens (with [CLS], [SEP]s) predicts.

    `round` is Python's (half to even), as in the reference: 30 tokens x 0.15 = 4.5 -> 4.
    """
    return min(max_predictions_per_seq, max(1, int(round(num_tokens * masked_lm_prob))))


def candidate_groups(tokens: list[str], whole_word_mask: bool = False) -> list[list[int]]:
    """Positions that may be masked, in groups masked together (a word, or one token).

        >>> candidate_groups(["[CLS]", "un", "##like", "it", "[SEP]"], whole_word_mask=True)
        [[1, 2], [3]]
    """
    if not whole_word_mask:
        return [[i] for i, token in enumerate(tokens) if token not in NEVER_MASKED]
    groups: list[list[int]] = []
    previous = -2                       # position of the last candidate
    for i, token in enumerate(tokens):
        if token in NEVER_MASKED:
            continue
        if previous == i - 1 and token[:2] == "##":
            groups[-1].append(i)        # continues the word at i - 1
        else:
            groups.append([i])
        previous = i
    return groups


def create_masked_lm_predictions(tokens: list[str], masked_lm_prob: float,
                                 max_predictions_per_seq: int, vocab_words: list[str],
                                 rng: random.Random, whole_word_mask: bool = False):
    """Corrupt `tokens` for the masked-LM objective.

    Args:
        tokens: "[CLS] A [SEP] B [SEP]" as strings (not modified).
        masked_lm_prob: share of tokens to predict (0.15).
        max_predictions_per_seq: at most this many predictions (20 for seq 128).
        vocab_words: the vocabulary in id order, the pool of random replacements.
        rng: the pipeline's single `random.Random`.
        whole_word_mask: mask all pieces of a word together (see module doc).

    Returns:
        (output_tokens, masked_lm_positions, masked_lm_labels): the corrupted
        copy of `tokens`, the predicted positions in increasing order, and the
        original token at each of them.
    """
    budget = num_to_predict(len(tokens), masked_lm_prob, max_predictions_per_seq)
    output = list(tokens)
    if not whole_word_mask:
        # One token per candidate: shuffling plain positions draws exactly the
        # same random numbers as shuffling one-element groups, and is faster.
        candidates = [i for i, token in enumerate(tokens) if token not in NEVER_MASKED]
        rng.shuffle(candidates)
        chosen = candidates[:budget]
        for i in chosen:
            if rng.random() < 0.8:
                output[i] = MASK            # 80%
            elif rng.random() < 0.5:
                pass                        # 10%: keep the original
            else:                           # 10%: a random word of the vocabulary
                output[i] = vocab_words[rng.randint(0, len(vocab_words) - 1)]
    else:
        groups = candidate_groups(tokens, whole_word_mask=True)
        rng.shuffle(groups)
        chosen = []
        for group in groups:
            if len(chosen) >= budget:
                break
            if len(chosen) + len(group) > budget:
                continue                    # this word does not fit; a shorter one may
            # One 80/10/10 draw for the whole word (minibert's choice, module doc).
            if rng.random() < 0.8:
                for i in group:
                    output[i] = MASK
            elif rng.random() >= 0.5:       # else (< 0.5): keep every piece
                for i in group:
                    output[i] = vocab_words[rng.randint(0, len(vocab_words) - 1)]
            chosen.extend(group)

    positions = sorted(chosen)
    return output, positions, [tokens[i] for i in positions]
