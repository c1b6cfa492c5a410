"""Documents of sentences -> BERT pretraining instances (masked LM + next sentence).

A faithful re-implementation of google-research/bert `create_pretraining_data.py`
(`create_training_instances`, `create_instances_from_document`,
`truncate_seq_pair`): every random decision is taken with one Python
`random.Random`, in the same order as the reference, so for the same documents,
vocabulary, parameters and seed the instances are identical to Google's, one
by one (tests/data/test_pretraining_data.py runs Google's code as the oracle).

    documents (list of list of sentence strings)
      -> tokenize every sentence (special-token strings in it are text, see below);
         drop sentences with no tokens, documents with none
      -> shuffle the documents                                    (rng.shuffle)
      -> dupe_factor passes; in each, every document in turn:
           target length: max_seq_length - 3, or with probability short_seq_prob
             a random length in [2, max_seq_length - 3]           (once per document pass)
           gather sentences into a chunk until it reaches the target, then
             A = the first randint(1, len(chunk) - 1) sentences of the chunk
             B = the rest of the chunk (actual next, 50%), or (random next, 50%,
                 always when the chunk is one sentence) sentences read from a random
                 sentence of another document; the chunk's unused sentences are
                 put back and start the next chunk
             truncate_seq_pair: trim the longer of A and B, one token at a time,
               from its front or its back at random, until both fit (linear time)
             "[CLS] A [SEP] B [SEP]", segment ids 0 ... 0 1 ... 1
             mask ~15% of the tokens (masking.py)
      -> shuffle all instances                                    (rng.shuffle)

Which documents are skipped: a document whose sentences all tokenize to
nothing (empty, or only characters the tokenizer drops). Any other document
gives at least one instance, even a one-word one (its B is then always a
random next), so nothing else needs skipping; the number skipped is reported
with a SkippedDocumentsWarning and kept in TokenizedCorpus.

Special-token strings in the corpus are text. A sentence that mentions
"[CLS]", "[SEP]" or "[MASK]" (any text about BERT does) is tokenized with
`split_special_tokens=True`: "[SEP]" becomes "[", "sep", "]", as Google's
FullTokenizer (which knows no special tokens) makes it. Read as the separator
itself, it would put a third [SEP] in the middle of a segment, the model would
learn that separators appear in text, and the masking would never choose it.
So the only [CLS] and [SEP] of an instance are the three the pipeline puts in,
and `create_instances` refuses tokenized documents that hold a control token
([CLS], [SEP], [PAD], [MASK]; see `check_no_control_tokens`). An [UNK] is
different: WordPiece writes it for a word it cannot spell, it stands for text,
and it is masked like any other token (as Google does).
"""
from __future__ import annotations

import functools
import random
import warnings
from dataclasses import dataclass, field

from tqdm import tqdm

from minibert.data.pretraining.masking import CLS, MASK, PAD, SEP, create_masked_lm_predictions
from minibert.data.pretraining.readers import EmptyCorpusError
from minibert.errors import InputError

__all__ = [
    "CONTROL_TOKENS", "SkippedDocumentsWarning", "TokenizedCorpus", "TrainingInstance",
    "check_no_control_tokens", "check_vocab", "corpus_tokenize", "create_instances",
    "create_instances_from_document", "create_sentence_pair", "create_training_instances",
    "tokenize_documents", "truncate_seq_pair", "vocab_words_of",
]

# Google's flag defaults (create_pretraining_data.py).
MAX_SEQ_LENGTH = 128
DUPE_FACTOR = 10
SHORT_SEQ_PROB = 0.1
MASKED_LM_PROB = 0.15
MAX_PREDICTIONS_PER_SEQ = 20
RANDOM_SEED = 12345
REQUIRED_TOKENS = (CLS, SEP, MASK)
# Tokens only the pipeline may put in an instance: never the tokenization of corpus text.
CONTROL_TOKENS = frozenset((CLS, SEP, PAD, MASK))


class SkippedDocumentsWarning(UserWarning):
    """Some documents had no tokens and gave no instance."""


@dataclass
class TrainingInstance:
    """One sentence pair, masked: what google-research/bert writes as one tf.train.Example.

    tokens: "[CLS] A [SEP] B [SEP]" after masking (strings).
    segment_ids: 0 for [CLS], A and the first [SEP]; 1 for B and the last [SEP].
    is_random_next: True when B was taken from another document (NSP label 1).
    masked_lm_positions: the predicted positions, increasing.
    masked_lm_labels: the original token at each of them.
    forced_random_next: True when the chunk held a single sentence, so B had to
        come from another document and no coin was flipped (not in Google's
        TrainingInstance; minibert keeps it to explain the NSP label balance).
    """
    tokens: list[str]
    segment_ids: list[int]
    is_random_next: bool
    masked_lm_positions: list[int]
    masked_lm_labels: list[str]
    forced_random_next: bool = False

    def __str__(self) -> str:
        return (f"tokens: {' '.join(self.tokens)}\n"
                f"segment_ids: {' '.join(map(str, self.segment_ids))}\n"
                f"is_random_next: {self.is_random_next}\n"
                f"masked_lm_positions: {' '.join(map(str, self.masked_lm_positions))}\n"
                f"masked_lm_labels: {' '.join(self.masked_lm_labels)}\n")


@dataclass
class TokenizedCorpus:
    """Documents as lists of tokenized sentences, and what tokenization left out."""
    documents: list[list[list[str]]]
    documents_read: int = 0
    skipped_documents: int = 0          # no token in any sentence
    dropped_sentences: int = 0          # sentences that tokenized to nothing
    skipped_indexes: list[int] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.documents_read} documents read, {len(self.documents)} used, "
                f"{self.skipped_documents} skipped (no tokens), "
                f"{self.dropped_sentences} empty sentences dropped")


# -- vocabulary -----------------------------------------------------------------

def check_vocab(vocab, required=REQUIRED_TOKENS, where: str = "the tokenizer's vocabulary") -> None:
    """Raise InputError (a ValueError) naming each of [CLS], [SEP], [MASK] missing from `vocab`."""
    missing = [t for t in required if t not in vocab]
    if missing:
        raise InputError(f"{where} lacks {', '.join(missing)}: pretraining data needs "
                         f"{', '.join(required)} (a BERT vocab.txt has them near the top)")


def vocab_words_of(vocab: dict[str, int]) -> list[str]:
    """The vocabulary in id order: the pool random replacements are drawn from.

    Google uses `list(tokenizer.vocab.keys())`, the same list for a vocab.txt.
    """
    return sorted(vocab, key=vocab.__getitem__)


# -- tokenization ---------------------------------------------------------------

def corpus_tokenize(tokenizer):
    """The function that tokenizes corpus text: `tokenizer.tokenize` with special-token strings as text.

    A tokenizer with a `split_special_tokens` setting (minibert's BertTokenizer,
    Hugging Face's) is called with split_special_tokens=True, whatever its own
    setting; any other `.tokenize(text)` (Google's FullTokenizer, a stand-in)
    is called as it is, and `check_no_control_tokens` catches one that still
    turns text into control tokens.
    """
    if hasattr(tokenizer, "split_special_tokens"):
        return functools.partial(tokenizer.tokenize, split_special_tokens=True)
    return tokenizer.tokenize


def tokenize_documents(documents, tokenizer, *, progress: bool | None = None) -> TokenizedCorpus:
    """Tokenize every sentence with `corpus_tokenize(tokenizer)`; drop what has no tokens.

    Google tokenizes each input line (sentence) on its own, drops lines that
    give no tokens and documents left empty; so does this. A "[SEP]" written
    in a sentence is text ("[", "sep", "]"), as in Google's tokenizer.
    progress: True/False shows/hides a tqdm bar; None shows it on a terminal.
    """
    tokenize = corpus_tokenize(tokenizer)
    out = TokenizedCorpus(documents=[])
    for index, document in enumerate(tqdm(documents, desc="tokenizing", unit="doc",
                                          disable=None if progress is None else not progress)):
        out.documents_read += 1
        tokenized = []
        for s, sentence in enumerate(document):
            tokens = tokenize(sentence)
            _check_sentence(tokens, index, s)
            if tokens:
                tokenized.append(tokens)
            else:
                out.dropped_sentences += 1
        if tokenized:
            out.documents.append(tokenized)
        else:
            out.skipped_documents += 1
            out.skipped_indexes.append(index)
    return out


def check_no_control_tokens(tokenized_documents) -> None:
    """Raise InputError if a sentence's tokens hold [CLS], [SEP], [PAD] or [MASK].

    Those are the pipeline's own: it puts [CLS] and two [SEP]s around the
    segments and [MASK] where it masks; [PAD] is added with the features. A
    tokenizer that made one of them out of corpus text would give an instance a
    separator in mid-segment (see the module doc). [UNK] is allowed: WordPiece
    writes it for a word it cannot spell.
    """
    for d, document in enumerate(tokenized_documents):
        for s, sentence in enumerate(document):
            _check_sentence(sentence, d, s)


def _check_sentence(tokens: list[str], document: int, sentence: int) -> None:
    """check_no_control_tokens for one sentence; the error names it (indexes from 0)."""
    if CONTROL_TOKENS.isdisjoint(tokens):
        return
    found = sorted(CONTROL_TOKENS.intersection(tokens))
    raise InputError(f"document {document}, sentence {sentence} was tokenized into the control token(s) "
                     f"{', '.join(found)}: corpus text must be tokenized with split_special_tokens=True, "
                     f"so that a \"[SEP]\" written in the text stays text (tokenize_documents does this)")


# -- one document -> instances ------------------------------------------------

def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int, rng: random.Random) -> None:
    """Trim A and B in place until len(A) + len(B) <= max_num_tokens.

    Each step removes one token from the longer list (B when they tie), from its
    front or its back with equal probability, so that neither end of a segment
    is always the one that survives. (minibert.tokenization.encoding has the
    deterministic, fine-tuning kind of truncation; this is pretraining's.)

    Speed: removing the first token of a Python list moves every other one, so
    taking the steps one at a time costs O(n^2) on a segment of n tokens (a
    corpus line with no sentence end can be one sentence of 100,000s of tokens).
    This implementation is O(n) and gives the same lists, with the same draws.
    """
    # Google's loop removes one token per step, `del longer[0]` (the front) or
    # `longer.pop()` (the back). Here the steps are taken on the lengths alone,
    # with the same draws in the same order, counting what leaves each end;
    # then each list is cut once.
    if max_num_tokens < 0:
        raise InputError(f"max_num_tokens must be >= 0, got {max_num_tokens}")
    lengths = [len(tokens_a), len(tokens_b)]            # [A, B] as the steps shorten them
    cut = [[0, 0], [0, 0]]                              # cut[A or B] = [from the front, from the back]
    while lengths[0] + lengths[1] > max_num_tokens:
        longer = 0 if lengths[0] > lengths[1] else 1    # B on a tie
        end = 0 if rng.random() < 0.5 else 1            # Google's `del longer[0]` or `longer.pop()`
        cut[longer][end] += 1
        lengths[longer] -= 1
    for tokens, (front, back) in zip((tokens_a, tokens_b), cut):
        del tokens[len(tokens) - back:]                 # the back first: `front` counts from the start
        del tokens[:front]


def _random_next_segment(all_documents, document_index: int, target_length: int,
                         rng: random.Random) -> list[str]:
    """Tokens of a "random next" B: from a random sentence of another document.

    Up to 10 draws to find a document other than the current one (with a single
    document, or very bad luck, B comes from the same document, as in the
    reference); then sentences from a random start until target_length is reached.
    """
    for _ in range(10):
        other = rng.randint(0, len(all_documents) - 1)
        if other != document_index:
            break
    document = all_documents[other]
    tokens: list[str] = []
    for sentence in document[rng.randint(0, len(document) - 1):]:
        tokens.extend(sentence)
        if len(tokens) >= target_length:
            break
    return tokens


def create_sentence_pair(chunk: list[list[str]], all_documents, document_index: int,
                         target_seq_length: int, max_num_tokens: int, rng: random.Random):
    """One chunk of consecutive sentences -> a next-sentence-prediction pair "[CLS] A [SEP] B [SEP]".

    Args:
        chunk: one or more consecutive sentences (token lists) of
            all_documents[document_index], in order.
        all_documents: every document, each a list of sentences (token lists).
        document_index: the document the chunk comes from.
        target_seq_length: the length the pair aims for (a random next B is
            read until len(A) + len(B) reaches it).
        max_num_tokens: hard limit on len(A) + len(B) (max_seq_length - 3).
        rng: the pipeline's single `random.Random`.

    Returns:
        (tokens, segment_ids, is_random_next, num_unused):
        tokens = [CLS] + A + [SEP] + B + [SEP] (strings);
        segment_ids = 0 for [CLS], A and the first [SEP], 1 for B and the last [SEP];
        is_random_next = True when B comes from another document (NSP label 1);
        num_unused = how many sentences at the end of the chunk were not used
        (a random next B leaves the chunk's sentences after A unused: the caller
        reads them again for the next pair; 0 for an actual next B).

    The random draws, in Google's order (the same rng state gives Google's pair):
        1. A = the first a_end sentences, a_end = rng.randint(1, len(chunk) - 1)
           when the chunk has 2 or more sentences (1 otherwise, no draw);
        2. a one-sentence chunk is always a random next (no draw); otherwise
           random next when rng.random() < 0.5, else B = the rest of the chunk;
        3. random next: up to 10 draws rng.randint(0, len(all_documents) - 1)
           until one differs from document_index (after 10 misses the last draw
           is used anyway), then a start sentence rng.randint(0, len(doc) - 1),
           then whole sentences from there until B has target_seq_length - len(A)
           tokens or the document ends;
        4. truncate_seq_pair(A, B, max_num_tokens, rng).
    """
    # A = the first a_end sentences of the chunk (at least one, and at
    # least one left over for B when the chunk has two or more).
    a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
    tokens_a = [t for sentence in chunk[:a_end] for t in sentence]

    # `or` short-circuits: a one-sentence chunk draws no coin.
    if len(chunk) == 1 or rng.random() < 0.5:
        is_random_next = True
        tokens_b = _random_next_segment(all_documents, document_index,
                                        target_seq_length - len(tokens_a), rng)
        num_unused = len(chunk) - a_end
    else:
        is_random_next = False
        tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
        num_unused = 0
    truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)

    tokens = [CLS, *tokens_a, SEP, *tokens_b, SEP]
    segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
    return tokens, segment_ids, is_random_next, num_unused


def create_instances_from_document(all_documents, document_index: int, max_seq_length: int,
                                   short_seq_prob: float, masked_lm_prob: float,
                                   max_predictions_per_seq: int, vocab_words: list[str],
                                   rng: random.Random, whole_word_mask: bool = False
                                   ) -> list[TrainingInstance]:
    """All instances of one pass over document `document_index` (see module doc)."""
    document = all_documents[document_index]
    max_num_tokens = max_seq_length - 3                 # room for [CLS], [SEP], [SEP]

    # Usually fill the whole sequence; sometimes (short_seq_prob) aim shorter, so
    # that the model also sees the short inputs fine-tuning will give it. The
    # target is soft: a chunk ends at the first sentence that reaches it.
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances = []
    chunk: list[list[str]] = []                         # whole sentences, never split
    chunk_length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target_seq_length:
            tokens, segment_ids, is_random_next, num_unused = create_sentence_pair(
                chunk, all_documents, document_index, target_seq_length, max_num_tokens, rng)
            i -= num_unused                             # put the unused sentences back
            tokens, positions, labels = create_masked_lm_predictions(
                tokens, masked_lm_prob, max_predictions_per_seq, vocab_words, rng, whole_word_mask)
            instances.append(TrainingInstance(tokens, segment_ids, is_random_next, positions, labels,
                                              forced_random_next=len(chunk) == 1))
            chunk, chunk_length = [], 0
        i += 1
    return instances


# -- the corpus -> instances --------------------------------------------------

def _check_parameters(max_seq_length, dupe_factor, short_seq_prob, masked_lm_prob,
                      max_predictions_per_seq) -> None:
    if max_seq_length < 5:
        raise InputError(f"max_seq_length must be at least 5 ([CLS] a [SEP] b [SEP]), got {max_seq_length}")
    if dupe_factor < 1:
        raise InputError(f"dupe_factor must be at least 1, got {dupe_factor}")
    if not 0.0 <= short_seq_prob <= 1.0:
        raise InputError(f"short_seq_prob must be in [0, 1], got {short_seq_prob}")
    if not 0.0 < masked_lm_prob < 1.0:
        raise InputError(f"masked_lm_prob must be in (0, 1), got {masked_lm_prob}")
    if max_predictions_per_seq < 1:
        raise InputError(f"max_predictions_per_seq must be at least 1, got {max_predictions_per_seq}")


def _as_rng(seed) -> random.Random:
    return seed if isinstance(seed, random.Random) else random.Random(seed)


def create_instances(tokenized_documents, vocab_words: list[str], *,
                     max_seq_length: int = MAX_SEQ_LENGTH, dupe_factor: int = DUPE_FACTOR,
                     short_seq_prob: float = SHORT_SEQ_PROB, masked_lm_prob: float = MASKED_LM_PROB,
                     max_predictions_per_seq: int = MAX_PREDICTIONS_PER_SEQ,
                     seed: int | random.Random = RANDOM_SEED, whole_word_mask: bool = False,
                     progress: bool | None = None) -> list[TrainingInstance]:
    """Tokenized documents -> shuffled instances (the part of Google's script after reading).

    tokenized_documents: list of documents, each a non-empty list of non-empty
    token lists (tokenize_documents(...).documents), with no control token in
    them (check_no_control_tokens). It is not modified.
    seed: an int, or a random.Random to draw from (Google passes its rng).
    """
    _check_parameters(max_seq_length, dupe_factor, short_seq_prob, masked_lm_prob,
                      max_predictions_per_seq)
    rng = _as_rng(seed)
    documents = list(tokenized_documents)
    if not documents:
        raise EmptyCorpusError("no document has any token: nothing to make instances from")
    check_no_control_tokens(documents)
    if len(documents) == 1:
        warnings.warn("the corpus has a single document: every 'random next' B comes from that same "
                      "document, so the next-sentence labels carry no signal", stacklevel=2)
    rng.shuffle(documents)

    instances: list[TrainingInstance] = []
    bar = tqdm(total=dupe_factor * len(documents), desc="instances", unit="doc",
               disable=None if progress is None else not progress)
    for _ in range(dupe_factor):                        # each pass: the same text, new masks
        for index in range(len(documents)):
            instances.extend(create_instances_from_document(
                documents, index, max_seq_length, short_seq_prob, masked_lm_prob,
                max_predictions_per_seq, vocab_words, rng, whole_word_mask))
            bar.update(1)
        bar.set_postfix(instances=len(instances), refresh=False)
    bar.close()
    rng.shuffle(instances)
    return instances


def create_training_instances(documents, tokenizer, *, max_seq_length: int = MAX_SEQ_LENGTH,
                              dupe_factor: int = DUPE_FACTOR, short_seq_prob: float = SHORT_SEQ_PROB,
                              masked_lm_prob: float = MASKED_LM_PROB,
                              max_predictions_per_seq: int = MAX_PREDICTIONS_PER_SEQ,
                              seed: int | random.Random = RANDOM_SEED, whole_word_mask: bool = False,
                              progress: bool | None = None) -> list[TrainingInstance]:
    """Documents of sentences (a reader's output) -> masked pretraining instances.

    Args:
        documents: list of documents, each a list of sentence strings.
        tokenizer: minibert's BertTokenizer, or anything with `.tokenize(text)`
            and a `.vocab` dict token -> id holding [CLS], [SEP] and [MASK].
            Corpus text is tokenized with split_special_tokens=True (see
            corpus_tokenize): "[SEP]" written in a sentence is text.
        max_seq_length: hard limit on len(tokens), [CLS] and [SEP]s included.
        dupe_factor: passes over the corpus, each with fresh targets, pairs and masks.
        short_seq_prob: chance that a document pass aims for a shorter length.
        masked_lm_prob, max_predictions_per_seq: the masking budget (masking.py).
        seed: Google's default is 12345; an int or a random.Random.
        whole_word_mask: mask whole words (minibert's one-draw-per-word variant).
        progress: tqdm bars (None: only on a terminal).

    Defaults are Google's flag defaults. Documents with no tokens are skipped,
    with a SkippedDocumentsWarning giving their number.
    """
    check_vocab(tokenizer.vocab)
    _check_parameters(max_seq_length, dupe_factor, short_seq_prob, masked_lm_prob,
                      max_predictions_per_seq)
    corpus = tokenize_documents(documents, tokenizer, progress=progress)
    if corpus.skipped_documents:
        warnings.warn(f"skipped {corpus.skipped_documents} of {corpus.documents_read} documents: "
                      f"no tokens, so no instance (first at index {corpus.skipped_indexes[0]})",
                      SkippedDocumentsWarning, stacklevel=2)
    if not corpus.documents:
        raise EmptyCorpusError(f"none of the {corpus.documents_read} documents has any token "
                               f"after tokenization: nothing to make instances from")
    return create_instances(corpus.documents, vocab_words_of(tokenizer.vocab),
                            max_seq_length=max_seq_length, dupe_factor=dupe_factor,
                            short_seq_prob=short_seq_prob, masked_lm_prob=masked_lm_prob,
                            max_predictions_per_seq=max_predictions_per_seq, seed=seed,
                            whole_word_mask=whole_word_mask, progress=progress)
