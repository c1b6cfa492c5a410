"""Learner mistakes in exercise 10 (masking): the budget, the candidates, 80/10/10, the order of draws."""
from mistakes import Mistake

BUDGET = '''
def num_to_predict(num_tokens, masked_lm_prob, max_predictions_per_seq):
    return {expr}
'''

MASKING = '''
def create_masked_lm_predictions(tokens, masked_lm_prob, max_predictions_per_seq, vocab_words, rng,
                                 whole_word_mask=False):
    if whole_word_mask:
        raise NotImplementedError("optional")
    budget = min(max_predictions_per_seq, max(1, int(round(len(tokens) * masked_lm_prob))))
    output = {copy}
    candidates = {candidates}
    {shuffle}
    chosen = candidates[:budget]
    for i in chosen:
        {draws}
    positions = {positions}
    return output, positions, [{labels}[i] for i in positions]
'''
OK = dict(copy="list(tokens)", candidates="[i for i, tok in enumerate(tokens) if tok not in NEVER_MASKED]",
          shuffle="rng.shuffle(candidates)", positions="sorted(chosen)", labels="tokens",
          draws='''if rng.random() < 0.8:
            output[i] = MASK
        elif rng.random() < 0.5:
            pass
        else:
            output[i] = vocab_words[rng.randint(0, len(vocab_words) - 1)]''')


def masking(**change):
    return MASKING.format(**{**OK, **change})


MISTAKES = [
    Mistake("masking", "budget rounded up", BUDGET.format(expr="min(max_predictions_per_seq, max(1, math.ceil(num_tokens * masked_lm_prob)))").replace("def num", "import math\n\ndef num"),
            diagnosis=r"not up \(ceil\)"),
    Mistake("masking", "budget truncated", BUDGET.format(expr="min(max_predictions_per_seq, max(1, int(num_tokens * masked_lm_prob)))"),
            diagnosis=r"do not truncate"),
    Mistake("masking", "budget floor(x + 0.5)", BUDGET.format(expr="min(max_predictions_per_seq, max(1, int(num_tokens * masked_lm_prob + 0.5)))"),
            diagnosis=r"rounds halves to even"),
    Mistake("masking", "budget without the minimum of one", BUDGET.format(expr="min(max_predictions_per_seq, int(round(num_tokens * masked_lm_prob)))"),
            diagnosis=r"at least one position"),
    Mistake("masking", "budget without the cap", BUDGET.format(expr="max(1, int(round(num_tokens * masked_lm_prob)))"),
            diagnosis=r"the cap is missing"),
    Mistake("masking", "budget as a float", BUDGET.format(expr="float(min(max_predictions_per_seq, max(1, round(num_tokens * masked_lm_prob))))"),
            diagnosis=r"Python int"),
    Mistake("masking", "an independent coin per token", masking(
        candidates="[i for i, tok in enumerate(tokens) if tok not in NEVER_MASKED and rng.random() < masked_lm_prob]",
        shuffle="budget = len(candidates)"), diagnosis=r"independent coin flip per token"),
    Mistake("masking", "[CLS] and [SEP] among the candidates", masking(candidates="list(range(len(tokens)))"),
            diagnosis=r"\[CLS\] and \[SEP\] must never be masked"),
    Mistake("masking", "no shuffle", masking(shuffle="pass"), diagnosis=r"must be shuffled with the rng"),
    Mistake("masking", "tokens modified in place", masking(copy="tokens"), diagnosis=r"changed the `tokens` list"),
    Mistake("masking", "positions in shuffled order", masking(positions="list(chosen)"),
            diagnosis=r"increasing order"),
    Mistake("masking", "labels from the output", masking(labels="output"), diagnosis=r"taken from the input"),
    Mistake("masking", "always [MASK]", masking(draws="output[i] = MASK"), diagnosis=r"about 80%, 10%, 10%"),
    Mistake("masking", "one draw reused for 80/10/10", masking(draws='''u = rng.random()
        if u < 0.8:
            output[i] = MASK
        elif u < 0.9:
            pass
        else:
            output[i] = vocab_words[rng.randint(0, len(vocab_words) - 1)]'''),
        diagnosis=r"statistics are right.*another order or number"),
    Mistake("masking", "random word from the instance, not the vocabulary", masking(draws='''if rng.random() < 0.8:
            output[i] = MASK
        elif rng.random() < 0.5:
            pass
        else:
            output[i] = tokens[rng.randint(0, len(tokens) - 1)]'''), diagnosis=r"another order or number|differ"),
    Mistake("masking", "whole_word_mask ignored", masking().replace(
        'if whole_word_mask:\n        raise NotImplementedError("optional")', "pass"), diagnosis=r"the flag is ignored"),
]
