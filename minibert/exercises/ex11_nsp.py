"""Exercise 11: next-sentence-prediction pairs (minibert.data.pretraining.instances.truncate_seq_pair / create_sentence_pair)."""
from __future__ import annotations

import random

from minibert.data.pretraining.instances import create_sentence_pair, truncate_seq_pair
from minibert.exercises.base import CheckFailed, Exercise, Question, describe

STATEMENT = r"""
## Pairs for next-sentence prediction (google-research/bert, `create_pretraining_data.py`)

The data pipeline reads a document sentence by sentence into a *chunk* until the chunk reaches a
target length; each chunk becomes one pair `[CLS] A [SEP] B [SEP]`:

1. **A** = the first `a_end` sentences of the chunk, `a_end = rng.randint(1, len(chunk) - 1)` when
   the chunk has two or more sentences (A and B both get at least one), 1 otherwise (no draw).
2. **Actual or random next.** A one-sentence chunk has nothing to continue with: B is always a
   *random next* (no coin is drawn). Otherwise random next when `rng.random() < 0.5`, else B = the
   rest of the chunk (*actual next*, label 0).
3. **A random next B** comes from another document: draw `rng.randint(0, len(all_documents) - 1)` up
   to 10 times until it differs from `document_index` (after 10 misses the last draw is used anyway),
   then a start sentence `rng.randint(0, len(document) - 1)`, then whole sentences from there until B
   has at least `target_seq_length - len(A)` tokens or the document ends. The chunk's sentences after A
   were not used: return their number, `num_unused`, and the caller reads them again for the next pair
   (so no text is wasted).
4. **Truncate** with `truncate_seq_pair(A, B, max_num_tokens, rng)`: while the pair is too long,
   remove one token from the longer segment (B when they tie), from its front when
   `rng.random() < 0.5`, else from its back. Random ends: the model must not learn that a segment
   always starts (or ends) at a sentence boundary.
5. `tokens = [CLS] + A + [SEP] + B + [SEP]`; `segment_ids` are 0 for `[CLS]`, A and the first `[SEP]`,
   1 for B and the last `[SEP]`.

Draw the random numbers in exactly this order from the `rng` you are given: then the same seed gives
the same pairs as Google's script.

## Your functions

`truncate_seq_pair` (the pair, the limit and the rng; in place, returns None) and
`create_sentence_pair(chunk, all_documents, document_index, target_seq_length, max_num_tokens, rng)`.
"""

HINTS = (
    "truncate_seq_pair first: it changes the two lists it is given (the caller holds them) and returns "
    "nothing; one token per step, from the longer list (B on a tie), at an end chosen by one draw.",
    "create_sentence_pair: decide A's size, then actual or random next, then B, then truncate, then lay "
    "out the tokens and the segment ids. A one-sentence chunk draws neither A's size nor the coin. "
    "Count, for a random next, how many of the chunk's sentences were not used.",
    "If the structure passes but the exact check fails, list the draws of one pair in order (A's end, the "
    "coin, the other document up to 10 times, its start sentence, truncation's draws) and compare with the "
    "statement's order. docs/pretraining_data.md, '3. Sentence pairs'.",
)

CONTRACTS = (
    ("truncate_seq_pair", """Trim a pair of token lists to at most max_num_tokens together, in place.

    tokens_a, tokens_b: lists of str, changed in place (the caller holds them).
    max_num_tokens: int.  rng: a random.Random (one draw per token removed: which end).
    Returns None.
    """),
    ("create_sentence_pair", """One next-sentence-prediction pair from a chunk (the statement's rules 1-5).

    chunk: list of sentences (each a list of str) from document document_index, at least one.
    all_documents: list of documents (each a list of sentences).
    target_seq_length, max_num_tokens: ints (B's target length; the pair's limit without specials).
    rng: a random.Random: every random number from it, in the statement's order.

    Returns (tokens, segment_ids, is_random_next, num_unused):
        tokens: list of str, [CLS] A [SEP] B [SEP];  segment_ids: list of int, one per token;
        is_random_next: bool;  num_unused: int, the chunk's sentences the pair did not use.

    To think through: when is B forced to be a random next, which sentences go back to the caller,
    which segment each [SEP] belongs to, and the exact order of the random draws.
    """),
)

DERIVATION = r"""
## Thinking it through

**1. A's size.** For a chunk of 1, 2 and 4 sentences, which values can `a_end` take? Why must both A
and B get at least one sentence when there are two or more?

**2. Actual or random.** For a one-sentence chunk, is there an actual next? How many random numbers
does the reference draw for such a chunk before choosing B's document? What does that do to the share
of random-next pairs overall (more or less than half)?

**3. B from another document.** Up to 10 draws for a document different from the chunk's. Why a
bound? Then from a random start sentence, whole sentences until B is long enough: long enough for
what?

**4. Sentences put back.** An actual next uses the whole chunk. A random next uses only A: how many of
the chunk's sentences were not used, and why does the caller want that number?

**5. Truncation.** Simulate A = 5 tokens, B = 3, limit 6: which list loses a token at each step? With
A = B = 4, limit 7? Why random ends, not always the back?

**6. Layout.** Write tokens and segment ids for A = [a1, a2], B = [b1]. Which segment holds each
[SEP]?

When you are done, open the solution page on purpose: `docs/exercises/solutions/11_nsp_pairs.md`.
"""

QUESTIONS = (
    Question(
        "Why is a one-sentence chunk's B always a random next, and what does that do to the share of "
        "label 1 (random next)?",
        "There is no second sentence in the chunk to be the actual next, so only a random next is "
        "possible (and no coin is drawn). Every other chunk is 50/50, so overall slightly more than half "
        "of the pairs are random next: the more one-sentence chunks (documents of one long sentence, last "
        "chunks), the larger the excess."),
    Question(
        "Why are the unused sentences put back for a random next but not for an actual next? And why "
        "truncate at random ends?",
        "An actual next uses the whole chunk (A then the rest as B), nothing is left. A random next uses "
        "only A from the chunk; the sentences after A were not seen, so the reader starts the next chunk "
        "with them and no text is wasted. Random ends keep the model from learning that segments always "
        "start or end at sentence boundaries, which fine-tuning inputs do not guarantee."),
)

SANITY = (
    ("**Sanity: the share of random-next pairs on your function** (about one half for chunks of two "
     "or more sentences; one-sentence chunks are always random next).",
     "import random\n\n"
     "docs = [[[f\"d{d}s{s}t{k}\" for k in range(5)] for s in range(6)] for d in range(5)]\n"
     "labels = [mine.create_sentence_pair(docs[i % 5][1:4], docs, i % 5, 12, 20, random.Random(i))[2]\n"
     "          for i in range(400)]\n"
     "print(f\"random next: {sum(labels) / len(labels):.1%} of 400 three-sentence chunks\")"),
)


def _documents(rng: random.Random, n_docs=6):
    """Documents whose tokens say where they come from: 'd3s1t2' = document 3, sentence 1, token 2."""
    docs = []
    for d in range(n_docs):
        docs.append([[f"d{d}s{s}t{k}" for k in range(rng.randint(2, 9))] for s in range(rng.randint(3, 8))])
    return docs


def _doc_of(token: str) -> int:
    return int(token[1:token.index("s")])


def _truncate_variant(a, b, max_num_tokens, rng, mistake):
    while len(a) + len(b) > max_num_tokens:
        if mistake == "shorter":
            longer = a if len(a) <= len(b) else b
        elif mistake == "ties to A":
            longer = a if len(a) >= len(b) else b
        else:
            longer = a if len(a) > len(b) else b
        if mistake == "always back":
            longer.pop()
        elif rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


TRUNCATE_MISTAKES = {
    "always back": "the segment is always trimmed at its back: each token removed comes from the front or the back, "
                   "decided by one draw.",
    "shorter": "trim the *longer* segment, one token at a time.",
    "ties to A": "on a tie (A and B equally long) the token comes from B: A is trimmed only when strictly longer.",
}


def _check_truncate(t):
    base = int(t.rng.integers(2 ** 31))               # every case follows the grader's seed
    rng = random.Random(base)
    for case in range(base, base + 120):
        a = [f"a{i}" for i in range(rng.randint(1, 40))]
        b = [f"b{i}" for i in range(rng.randint(1, 40))]
        limit = rng.randint(2, 60)
        mine_a, mine_b = list(a), list(b)
        returned = t.call("truncate_seq_pair", mine_a, mine_b, limit, random.Random(case))
        ref_a, ref_b = list(a), list(b)
        truncate_seq_pair(ref_a, ref_b, limit, random.Random(case))
        if (mine_a, mine_b) == (ref_a, ref_b):
            continue
        if (mine_a, mine_b) == (a, b):
            raise CheckFailed(f"tokens_a and tokens_b are unchanged ({len(a)} + {len(b)} tokens, limit {limit}).",
                              "truncate_seq_pair works in place: the caller holds the two lists, so tokens must be "
                              "removed from them, not from new lists." + (" It returns None." if returned else ""))
        if len(mine_a) + len(mine_b) > limit:
            raise CheckFailed(f"after truncation A + B has {len(mine_a) + len(mine_b)} tokens; the limit is {limit}.",
                              "the loop stops too early: the limit is on A and B together.")
        for mistake, hint in TRUNCATE_MISTAKES.items():
            va, vb = list(a), list(b)
            try:
                _truncate_variant(va, vb, limit, random.Random(case), mistake)
            except IndexError:                       # this mistake empties a list here: it cannot be the learner's
                continue
            if (va, vb) == (mine_a, mine_b):
                raise CheckFailed(f"A ({len(a)} tokens) and B ({len(b)}) with a limit of {limit} are trimmed "
                                  f"differently from the reference.", hint)
        raise CheckFailed(f"A ({len(a)} tokens) and B ({len(b)}) with a limit of {limit} (seed {case}) are trimmed "
                          f"differently from the reference: A keeps {len(mine_a)} tokens (expected {len(ref_a)}), "
                          f"B keeps {len(mine_b)} (expected {len(ref_b)}).",
                          "one token per step, from the longer segment (B on a tie), front or back by one "
                          "draw per token removed.")


def _call(t, chunk, docs, index, target, max_tokens, seed):
    result = t.call("create_sentence_pair", [list(s) for s in chunk], [[list(s) for s in d] for d in docs],
                    index, target, max_tokens, random.Random(seed))
    tokens, segment_ids, is_random_next, num_unused = t.unpack(
        result, "create_sentence_pair", "tokens, segment_ids, is_random_next, num_unused")
    if not isinstance(tokens, list) or not isinstance(segment_ids, list):
        raise CheckFailed(f"tokens is {describe(tokens)} and segment_ids {describe(segment_ids)}; expected two lists.")
    return tokens, segment_ids, is_random_next, num_unused


def _cases(t, n=200):
    base = int(t.rng.integers(2 ** 31))               # every case follows the grader's seed
    rng = random.Random(base)
    docs = _documents(rng)
    out = []
    for seed in range(base, base + n):
        index = rng.randrange(len(docs))
        doc = docs[index]
        start = rng.randrange(len(doc))
        size = 1 if seed % 4 == 0 else rng.randint(2, 4)
        chunk = doc[start:start + size]
        target = rng.randint(6, 30)
        out.append((chunk, docs, index, target, rng.randint(8, 30), seed))
    return out


def _check_structure(t, cases):
    for chunk, docs, index, target, max_tokens, seed in cases:
        tokens, segment_ids, is_random_next, num_unused = _call(t, chunk, docs, index, target, max_tokens, seed)
        seps = [i for i, tok in enumerate(tokens) if tok == "[SEP]"]
        if not tokens or tokens[0] != "[CLS]" or len(seps) != 2 or seps[1] != len(tokens) - 1:
            raise CheckFailed(f"the tokens are not laid out as [CLS] A [SEP] B [SEP] (seed {seed}): they start "
                              f"with {tokens[:2]} and hold {len(seps)} [SEP].",
                              "the layout is [CLS], A, [SEP], B, [SEP], with the special tokens as strings.")
        a, b = tokens[1:seps[0]], tokens[seps[0] + 1:-1]
        want_segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        if segment_ids != want_segments:
            raise CheckFailed(f"segment_ids are wrong (seed {seed}): the first [SEP] belongs to segment 0, the "
                              f"last one to segment 1.", "count: [CLS], A and the first [SEP] are segment 0; B and the final "
                              "[SEP] are segment 1.")
        if len(a) + len(b) > max_tokens:
            raise CheckFailed(f"A + B has {len(a) + len(b)} tokens; max_num_tokens is {max_tokens} (seed {seed}).",
                              "the pair is not truncated: truncation comes after B is chosen and before the special tokens."
                              )
        if not a:
            raise CheckFailed(f"A is empty (seed {seed}).", "A holds at least the chunk's first sentence.")
        if len(chunk) == 1 and is_random_next is not True:
            raise CheckFailed(f"a one-sentence chunk gave is_random_next = {is_random_next!r} (seed {seed}).",
                              "with one sentence there is no actual next to use: B is always a random next "
                              "(and no coin is drawn).")
        other = [tok for tok in b if _doc_of(tok) != index]
        if is_random_next is True and b and not other and len(docs) > 1:
            raise CheckFailed(f"a random next B came from the chunk's own document {index} (seed {seed}).",
                              "the other document must differ from the chunk's own: draw again (up to 10 times) "
                                  "while it is the same.")
        if is_random_next is False:
            chunk_tokens = [tok for s in chunk for tok in s]
            if other or any(tok not in chunk_tokens for tok in a + b):
                raise CheckFailed(f"an actual-next pair uses tokens from outside the chunk (seed {seed}).",
                                  "an actual next is made of the chunk alone: A its first sentences, B the rest.")
            if num_unused != 0:
                raise CheckFailed(f"an actual-next pair returned num_unused = {num_unused!r}; expected 0.",
                                  "an actual next uses the whole chunk: nothing is left to put back.")


def _check_balance(t, cases):
    multi = [c for c in cases if len(c[0]) >= 2]
    random_next = sum(_call(t, *c)[2] is True for c in multi)
    share = random_next / len(multi)
    if not 0.35 <= share <= 0.65:
        raise CheckFailed(f"{share:.0%} of {len(multi)} multi-sentence chunks became random-next pairs; expected "
                          f"about 50%.", "for chunks of two or more sentences, one fair coin decides actual or random next.")


def _check_exact(t, cases):
    for case in cases:
        got = _call(t, *case)
        chunk, docs, index, target, max_tokens, seed = case
        want = create_sentence_pair([list(s) for s in chunk], docs, index, target, max_tokens, random.Random(seed))
        if tuple(got) != tuple(want):
            part = next(name for name, g, w in zip(("tokens", "segment_ids", "is_random_next", "num_unused"), got, want)
                        if g != w)
            if part == "num_unused" and tuple(got[:3]) == tuple(want[:3]):
                raise CheckFailed(f"with seed {seed} ({len(chunk)}-sentence chunk, "
                                  f"{'random' if want[2] else 'actual'} next) num_unused is {got[3]!r}; expected "
                                  f"{want[3]!r}. The tokens, segments and label are right.",
                                  "num_unused counts the chunk's sentences that the pair did not use (a random next "
                                  "uses only A's sentences); the caller reads them again for the next pair.")
            so_far = all(r.status == "pass" for r in t.results)
            raise CheckFailed(f"with seed {seed} ({len(chunk)}-sentence chunk of document {index}) your {part} "
                              f"differs from the reference's" + (", although the structure is right." if so_far else "."),
                              "draw in Google's order from the rng you are given: a_end (only for 2+ sentences), "
                              "the coin (only for 2+ sentences), the other document (up to 10 draws), its start "
                              "sentence, then truncate_seq_pair's draws.")


def check(t):
    with t.check("truncate_seq_pair: 120 pairs, trimmed in place like the reference"):
        _check_truncate(t)
    cases = _cases(t)
    with t.check("create_sentence_pair: [CLS] A [SEP] B [SEP], segment ids, lengths, where B comes from (200 chunks)"):
        _check_structure(t, cases)
    with t.check("about half of the multi-sentence chunks are random next"):
        _check_balance(t, cases)
    with t.check("the same seed gives google-research/bert's pairs (200 chunks)"):
        _check_exact(t, cases)


EXERCISE = Exercise(
    number=11, name="nsp_pairs", title="next-sentence-prediction pairs: A, actual or random B, truncation",
    functions=(truncate_seq_pair, create_sentence_pair),
    imports="import random\n\nfrom minibert.data.pretraining.masking import CLS, SEP",
    minutes=50,
    assesses="how NSP labels are made (forced random next for one-sentence chunks, 50/50 otherwise, B from "
             "another document, unused sentences put back); random truncation; reproducible random draws",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/pretraining_data.md",), notebooks=("03_mlm_nsp.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
