"""Exercise 11: next-sentence-prediction pairs (minibert.data.pretraining.instances.truncate_seq_pair / create_sentence_pair)."""
from __future__ import annotations

import random

from minibert.data.pretraining.instances import create_sentence_pair, truncate_seq_pair
from minibert.exercises.base import CheckFailed, Exercise, describe

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

## What to think through

- Why is a one-sentence chunk's B always random, and what does that do to the share of label 1?
- Why are the unused sentences put back for a random next, but not for an actual next?

## Your functions

`truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)` (in place, returns None) and
`create_sentence_pair(chunk, all_documents, document_index, target_seq_length, max_num_tokens, rng)`.
"""

HINTS = (
    "truncate_seq_pair: `while len(a) + len(b) > max_num_tokens:` pick `longer = a if len(a) > len(b) else b`, "
    "then `del longer[0]` if `rng.random() < 0.5` else `longer.pop()`. It changes the lists in place.",
    "A: `a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1`; "
    "`tokens_a = [tok for sentence in chunk[:a_end] for tok in sentence]`. "
    "Random next: `len(chunk) == 1 or rng.random() < 0.5` (the `or` draws no coin for one sentence).",
    "Random B: `for _ in range(10): other = rng.randint(0, len(all_documents) - 1)` and break when it differs; "
    "then `start = rng.randint(0, len(doc) - 1)` and extend B sentence by sentence until "
    "`len(B) >= target_seq_length - len(tokens_a)`; `num_unused = len(chunk) - a_end`.",
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
    "always back": "the segment is always trimmed at its back: draw rng.random() < 0.5 for each token removed, "
                   "front (del longer[0]) or back (longer.pop()).",
    "shorter": "trim the *longer* segment, one token at a time.",
    "ties to A": "when A and B are equally long, trim B (len(a) > len(b) picks A only when A is strictly longer).",
}


def _check_truncate(t):
    rng = random.Random(3)
    for case in range(120):
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
                              "truncate_seq_pair works in place: remove tokens from the lists it is given "
                              "(del / pop), do not build new lists." + (" It returns None." if returned else ""))
        if len(mine_a) + len(mine_b) > limit:
            raise CheckFailed(f"after truncation A + B has {len(mine_a) + len(mine_b)} tokens; the limit is {limit}.",
                              "loop until len(tokens_a) + len(tokens_b) <= max_num_tokens.")
        for mistake, hint in TRUNCATE_MISTAKES.items():
            va, vb = list(a), list(b)
            _truncate_variant(va, vb, limit, random.Random(case), mistake)
            if (va, vb) == (mine_a, mine_b):
                raise CheckFailed(f"A ({len(a)} tokens) and B ({len(b)}) with a limit of {limit} are trimmed "
                                  f"differently from the reference.", hint)
        raise CheckFailed(f"A ({len(a)} tokens) and B ({len(b)}) with a limit of {limit} (seed {case}) are trimmed "
                          f"differently from the reference: A keeps {len(mine_a)} tokens (expected {len(ref_a)}), "
                          f"B keeps {len(mine_b)} (expected {len(ref_b)}).",
                          "one token per step, from the longer segment (B on a tie), front or back by "
                          "rng.random() < 0.5, one draw per token removed.")


def _call(t, chunk, docs, index, target, max_tokens, seed):
    result = t.call("create_sentence_pair", [list(s) for s in chunk], [[list(s) for s in d] for d in docs],
                    index, target, max_tokens, random.Random(seed))
    tokens, segment_ids, is_random_next, num_unused = t.unpack(
        result, "create_sentence_pair", "tokens, segment_ids, is_random_next, num_unused")
    if not isinstance(tokens, list) or not isinstance(segment_ids, list):
        raise CheckFailed(f"tokens is {describe(tokens)} and segment_ids {describe(segment_ids)}; expected two lists.")
    return tokens, segment_ids, is_random_next, num_unused


def _cases(n=200):
    rng = random.Random(11)
    docs = _documents(rng)
    out = []
    for seed in range(n):
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
                              "tokens = [CLS] + A + [SEP] + B + [SEP], as strings \"[CLS]\" and \"[SEP]\".")
        a, b = tokens[1:seps[0]], tokens[seps[0] + 1:-1]
        want_segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        if segment_ids != want_segments:
            raise CheckFailed(f"segment_ids are wrong (seed {seed}): the first [SEP] belongs to segment 0, the "
                              f"last one to segment 1.", "[0] * (len(A) + 2) + [1] * (len(B) + 1).")
        if len(a) + len(b) > max_tokens:
            raise CheckFailed(f"A + B has {len(a) + len(b)} tokens; max_num_tokens is {max_tokens} (seed {seed}).",
                              "call truncate_seq_pair(A, B, max_num_tokens, rng) before adding [CLS] and [SEP].")
        if not a:
            raise CheckFailed(f"A is empty (seed {seed}).", "A = the first a_end >= 1 sentences of the chunk.")
        if len(chunk) == 1 and is_random_next is not True:
            raise CheckFailed(f"a one-sentence chunk gave is_random_next = {is_random_next!r} (seed {seed}).",
                              "with one sentence there is no actual next to use: B is always a random next "
                              "(and no coin is drawn).")
        other = [tok for tok in b if _doc_of(tok) != index]
        if is_random_next is True and b and not other and len(docs) > 1:
            raise CheckFailed(f"a random next B came from the chunk's own document {index} (seed {seed}).",
                              "draw rng.randint(0, len(all_documents) - 1) until it differs from document_index "
                              "(up to 10 times).")
        if is_random_next is False:
            chunk_tokens = [tok for s in chunk for tok in s]
            if other or any(tok not in chunk_tokens for tok in a + b):
                raise CheckFailed(f"an actual-next pair uses tokens from outside the chunk (seed {seed}).",
                                  "actual next: A = the first a_end sentences, B = the rest of the chunk.")
            if num_unused != 0:
                raise CheckFailed(f"an actual-next pair returned num_unused = {num_unused!r}; expected 0.",
                                  "an actual next uses the whole chunk.")


def _check_balance(t, cases):
    multi = [c for c in cases if len(c[0]) >= 2]
    random_next = sum(_call(t, *c)[2] is True for c in multi)
    share = random_next / len(multi)
    if not 0.35 <= share <= 0.65:
        raise CheckFailed(f"{share:.0%} of {len(multi)} multi-sentence chunks became random-next pairs; expected "
                          f"about 50%.", "random next when rng.random() < 0.5 (for chunks of 2 or more sentences).")


def _check_exact(t, cases):
    for case in cases:
        got = _call(t, *case)
        chunk, docs, index, target, max_tokens, seed = case
        want = create_sentence_pair([list(s) for s in chunk], docs, index, target, max_tokens, random.Random(seed))
        if tuple(got) != tuple(want):
            part = next(name for name, g, w in zip(("tokens", "segment_ids", "is_random_next", "num_unused"), got, want)
                        if g != w)
            so_far = all(r.status == "pass" for r in t.results)
            raise CheckFailed(f"with seed {seed} ({len(chunk)}-sentence chunk of document {index}) your {part} "
                              f"differs from the reference's" + (", although the structure is right." if so_far else "."),
                              "draw in Google's order from the rng you are given: a_end (only for 2+ sentences), "
                              "the coin (only for 2+ sentences), the other document (up to 10 draws), its start "
                              "sentence, then truncate_seq_pair's draws.")


def check(t):
    with t.check("truncate_seq_pair: 120 pairs, trimmed in place like the reference"):
        _check_truncate(t)
    cases = _cases()
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
    minutes=45,
    assesses="how NSP labels are made (forced random next for one-sentence chunks, 50/50 otherwise, B from "
             "another document, unused sentences put back); random truncation; reproducible random draws",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/pretraining_data.md",), notebooks=("03_mlm_nsp.ipynb",),
)
