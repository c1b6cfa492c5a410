"""Seq2Vector: texts -> one vector each, with a pretrained BERT (all-MiniLM-L6-v2 by default).

    import minibert
    vectors = minibert.embed(["A man is eating food.", "Someone is having a meal."])   # (2, 384)
    float(vectors[0] @ vectors[1])           # cosine similarity (the rows have unit length)

    python -m minibert embed --out vectors.npy < lines.txt      # one text per line -> (N, H) .npy

(`minibert.embed` is this module's `embed` function, exported by the package;
take the other names with `from minibert.apps.embed import load_encoder, ...`.)

What happens to each batch of texts (legend: B texts, T tokens, H hidden):

    tokenize, truncate to max_length          ids, mask             (B, T)   padded to the longest
    BertModel.forward                         last_hidden_state     (B, T, H)
    pool  "mean": sum_t mask[t] h[t] / sum_t mask[t]               (B, H)   padding left out
          "cls":  h[0], the [CLS] token's vector
    normalize: v / max(||v||, 1e-12)                              (B, H)   unit length

Mean pooling over the attention mask, then L2 normalisation, is exactly what
sentence-transformers computes for all-MiniLM-L6-v2 (its 1_Pooling/config.json
says mean pooling; 2_Normalize normalises); the tests check minibert's vectors
against its `encode` (cosine >= 0.99999 on 500 real sentences).

Speed: texts are sorted by token count before batching, so each batch holds
texts of similar length and little compute goes to padding; the vectors are
put back in the input order at the end. Padding never changes a vector (the
mask removes padded keys from attention and padded positions from the mean),
so sorting changes the speed, not the numbers (to float rounding).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy

from minibert import backend
from minibert.backend import get_xp
from minibert.errors import InputError
from minibert.model.bert import BertModel
from minibert.model.io import check_vocab_size, find_model_folder
from minibert.model.pretrained import default_model_dir
from minibert.tokenization import BertTokenizer

POOLINGS = ("mean", "cls")
PROGRESS_MIN_TEXTS = 512          # progress=None shows a bar from this many texts up (on a terminal)


@dataclasses.dataclass
class Encoder:
    """A pretrained BertModel, its tokenizer, and how many tokens a text may have.

    `max_length` counts [CLS] and [SEP]. A sentence-transformers folder says it in
    sentence_bert_config.json (256 for all-MiniLM-L6-v2, what it was trained with);
    otherwise it is the smaller of the tokenizer's model_max_length and the model's
    max_position_embeddings.
    """
    model: object
    tokenizer: object
    max_length: int
    name: str = ""

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size


_CACHE: dict = {}


def clear_cache() -> None:
    """Forget the models `load_encoder` keeps (they are loaded once per folder and dtype)."""
    _CACHE.clear()


def load_default(dtype="float32"):
    """(BertModel, BertTokenizer) of the bundled all-MiniLM-L6-v2."""
    folder = default_model_dir()
    return BertModel.from_pretrained(folder, dtype=dtype), BertTokenizer.from_pretrained(folder)


def load_encoder(model=None, dtype="float32") -> Encoder:
    """Resolve embed's `model` argument to an Encoder.

    model: None (the bundled all-MiniLM-L6-v2), a folder (str or Path), an
    Encoder, or a (BertModel, BertTokenizer) pair. A folder is loaded once per
    (folder, dtype) and kept; `clear_cache()` frees it.
    """
    if isinstance(model, Encoder):
        return model
    if isinstance(model, tuple):
        if len(model) != 2:
            raise TypeError(f"model=(model, tokenizer) must be a pair, got a tuple of {len(model)}")
        bert, tokenizer = model
        if not hasattr(bert, "forward") or not hasattr(bert, "config"):
            raise TypeError(f"model=(model, tokenizer): the first item must be a BertModel, "
                            f"got {type(bert).__name__}")
        if not callable(tokenizer) or not hasattr(tokenizer, "pad_token_id"):
            raise TypeError(f"model=(model, tokenizer): the second item must be a BertTokenizer, "
                            f"got {type(tokenizer).__name__}")
        if len(tokenizer) > bert.config.vocab_size:
            raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary "
                             f"has {bert.config.vocab_size}: they do not belong together")
        return Encoder(bert, tokenizer, min(tokenizer.model_max_length, bert.config.max_position_embeddings))
    if model is not None and not isinstance(model, (str, Path)):
        raise TypeError(f"model must be None, a folder, an Encoder or a (BertModel, BertTokenizer) pair; "
                        f"got {type(model).__name__}")

    root = Path(default_model_dir() if model is None else model).expanduser().resolve()
    dt = backend.resolve_dtype(dtype)
    key = (str(root), dt.name, backend.name())
    if key not in _CACHE:
        _CACHE[key] = _load_folder(root, dt)
    return _CACHE[key]


def _load_folder(root: Path, dtype) -> Encoder:

    folder = find_model_folder(root)              # follows a sentence-transformers modules.json
    if not (folder / "vocab.txt").is_file():
        raise FileNotFoundError(f"{folder} has model weights but no vocab.txt: the tokenizer must sit "
                                f"beside the weights (BertTokenizer.save_pretrained(folder) writes it)")
    bert = BertModel.from_pretrained(folder, dtype=dtype)
    tokenizer = BertTokenizer.from_pretrained(folder)
    check_vocab_size(len(tokenizer), bert.config, folder / "vocab.txt")
    max_length = min(tokenizer.model_max_length, bert.config.max_position_embeddings)
    root_dir = root if root.is_dir() else root.parent
    for candidate in (folder / "sentence_bert_config.json", root_dir / "sentence_bert_config.json"):
        if candidate.is_file():
            try:
                max_length = min(max_length, int(json.loads(candidate.read_text("utf-8"))["max_seq_length"]))
            except (ValueError, KeyError, TypeError):
                pass                               # an unreadable setting: keep the model's own limit
            break
    return Encoder(bert, tokenizer, max_length, name=str(root))


# -- the pieces ------------------------------------------------------------------

def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)):
        raise TypeError("texts must be str, not bytes: decode them first")
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}") from None
    if not texts:
        raise InputError("no texts to embed: the input is empty")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is a {type(t).__name__}, not a str")
    return texts


def pool(last_hidden_state, attention_mask, pooling="mean"):
    """(B, T, H) token vectors + (B, T) mask -> (B, H) one vector per text (on the same device).

    mean: the average of the token vectors where the mask is 1 ([CLS] and [SEP]
    included, padding excluded), as sentence-transformers' mean pooling:
    sum(mask * h) / max(sum(mask), 1e-9).
    cls:  the vector of the first token, [CLS].
    """
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {list(POOLINGS)}")
    if pooling == "cls":
        return last_hidden_state[:, 0]                                      # (B, H)
    xp = get_xp(last_hidden_state)
    mask = xp.asarray(attention_mask).astype(last_hidden_state.dtype)      # (B, T)
    summed = xp.einsum("bth,bt->bh", last_hidden_state, mask)              # (B, H) sum over real tokens
    counts = xp.maximum(mask.sum(axis=1, keepdims=True), 1e-9)             # (B, 1)
    return summed / counts


def l2_normalize(vectors, eps=1e-12):
    """Each row divided by its length (rows of length < eps are divided by eps, as torch's F.normalize)."""
    xp = get_xp(vectors)
    norms = xp.sqrt((vectors * vectors).sum(axis=-1, keepdims=True))
    return vectors / xp.maximum(norms, eps)


def _batches(lengths, batch_size):
    """Indices of the texts, longest first, cut into batches of batch_size (stable for equal lengths)."""
    order = numpy.argsort(-numpy.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _progress(total, progress, n_texts, desc):
    from tqdm.auto import tqdm
    if progress is None:                    # auto: long inputs, and only on a terminal (tqdm's disable=None)
        disable = None if n_texts >= PROGRESS_MIN_TEXTS else True
    else:
        disable = not progress
    return tqdm(total=total, disable=disable, desc=desc, unit="text", file=sys.stderr)


def _tokenize(encoder: Encoder, texts, max_length):
    return encoder.tokenizer(texts, truncation=True, max_length=_max_length(encoder, max_length))["input_ids"]


def _max_length(encoder: Encoder, max_length) -> int:
    """max_length, or the encoder's when None, checked against what the model can take."""
    max_length = encoder.max_length if max_length is None else int(max_length)
    if max_length < 2:
        raise InputError(f"max_length={max_length}: at least 2 tokens are needed for [CLS] and [SEP]")
    if max_length > encoder.model.config.max_position_embeddings:
        raise InputError(f"max_length={max_length} is longer than the model's max_position_embeddings="
                         f"{encoder.model.config.max_position_embeddings}")
    return max_length


def _padded(ids_list, pad_id):
    """Lists of ids -> (ids, mask) host int64 arrays padded on the right to the longest."""
    T = max(len(ids) for ids in ids_list)
    ids = numpy.full((len(ids_list), T), pad_id, dtype=numpy.int64)       # (B, T)
    mask = numpy.zeros((len(ids_list), T), dtype=numpy.int64)             # (B, T)
    for row, seq in enumerate(ids_list):
        ids[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
    return ids, mask


# -- the main function --------------------------------------------------------------

def embed(texts, model=None, pooling="mean", normalize=True, batch_size=32, max_length=None,
          progress=None, dtype=numpy.float32) -> numpy.ndarray:
    """Texts -> (N, H) host array of sentence vectors, in the order of `texts`.

    texts: a list of strings (a single string gives a (1, H) array).
    model: None for the bundled all-MiniLM-L6-v2, a model folder, or a
        (BertModel, BertTokenizer) pair (see `load_encoder`).
    pooling: "mean" (the masked mean of the last layer's token vectors; what
        all-MiniLM-L6-v2 was trained for) or "cls" (the [CLS] token's vector).
    normalize: scale every vector to length 1, so that a dot product is a cosine.
    batch_size: texts per forward pass (texts are sorted by length first).
    max_length: tokens per text, [CLS] and [SEP] included; longer texts are
        truncated (default: the model's, 256 for all-MiniLM-L6-v2).
    progress: True/False, or None for a bar on long inputs (>= 512 texts) on a terminal.
    dtype: of the returned array (float32 by default, whatever the model computes in).
    """
    texts = _check_texts(texts)
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {list(POOLINGS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    encoder = load_encoder(model)
    bert, pad_id = encoder.model, encoder.tokenizer.pad_token_id
    ids_list = _tokenize(encoder, texts, max_length)
    out = numpy.empty((len(texts), encoder.hidden_size), dtype=dtype)
    with bert.inference():                                # dropout off (the same text, the same vector), no caches
        with _progress(len(texts), progress, len(texts), "embed") as bar:
            for index in _batches([len(ids) for ids in ids_list], batch_size):
                ids, mask = _padded([ids_list[i] for i in index], pad_id)         # (B, T) each
                hidden, _ = bert.forward(ids, None, mask)                         # (B, T, H)
                vectors = pool(hidden, backend.to_device(mask), pooling)          # (B, H)
                if normalize:
                    vectors = l2_normalize(vectors)
                out[index] = backend.to_host(vectors)
                bar.update(len(index))
    return out


# -- token-level views: one vector per token, attention maps ---------------------------

def token_states(texts, model=None, max_length=None, batch_size=32):
    """Every token's last-layer vector: for each text, (tokens, states (T, H) host array, offsets).

    A single string gives one such triple, a list gives a list of them. Padding
    is cut off again, so T is each text's own token count ([CLS] and [SEP]
    included); offsets are (start, end) character spans in the text ((0, 0) for
    [CLS] and [SEP]).
    """
    single = isinstance(texts, str)
    texts = _check_texts(texts)
    encoder = load_encoder(model)
    enc = encoder.tokenizer(texts, truncation=True, return_offsets_mapping=True,
                            max_length=encoder.max_length if max_length is None else max_length)
    bert = encoder.model
    out = [None] * len(texts)
    with bert.inference():
        for index in _batches([len(ids) for ids in enc["input_ids"]], batch_size):
            ids, mask = _padded([enc["input_ids"][i] for i in index], encoder.tokenizer.pad_token_id)
            hidden = backend.to_host(bert.forward(ids, None, mask)[0])          # (B, T, H)
            for row, i in enumerate(index):
                n = len(enc["input_ids"][i])
                out[i] = (encoder.tokenizer.convert_ids_to_tokens(enc["input_ids"][i]), hidden[row, :n],
                          enc["offset_mapping"][i])
    return out[0] if single else out


def word_vectors(texts, word: str, model=None, occurrence: int = 0) -> numpy.ndarray:
    """The contextual vector of `word` in each text: (N, H), the mean of its word pieces' vectors.

    The word is found as a whole word, case-insensitively; `occurrence` picks
    which one if it appears more than once. A text without it raises ValueError.
    """
    import re

    texts = _check_texts(texts)
    pattern = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", flags=re.IGNORECASE)
    spans = []
    for text in texts:
        matches = [m.span() for m in pattern.finditer(text)]
        if len(matches) <= occurrence:
            raise InputError(f"{word!r} occurs {len(matches)} time(s) in {text!r}; "
                             f"cannot take occurrence {occurrence}")
        spans.append(matches[occurrence])
    vectors = []
    for text, (start, end), (_, states, offsets) in zip(texts, spans, token_states(texts, model)):
        rows = [i for i, (s, e) in enumerate(offsets) if e > s and s >= start and e <= end]   # its word pieces
        if not rows:
            raise InputError(f"{word!r} in {text!r} lies beyond max_length: it was truncated away")
        vectors.append(states[rows].mean(axis=0))                                          # (H,)
    return numpy.stack(vectors)


def word_vector(text: str, word: str, model=None, occurrence: int = 0) -> numpy.ndarray:
    """`word_vectors` for one text: (H,)."""
    return word_vectors([text], word, model, occurrence)[0]


class AttentionMaps(NamedTuple):
    """One text (or pair) and its attention: what `attention_data` returns.

    tokens: the T word pieces, [CLS] and [SEP] included.
    segment_ids: the T token type ids, 0 for [CLS] A [SEP], 1 for B [SEP] (all 0 for one text).
    probs: (L, A, T, T) host array; probs[l, a, i, j] is how much token i (the query) attends to
        token j (the key) in layer l, head a. Each row sums to 1.
    """
    tokens: list
    segment_ids: list
    probs: numpy.ndarray


def attention_data(text: str, text_pair: str | None = None, model=None, max_length=None,
                   truncation: bool = True) -> AttentionMaps:
    """Every layer's and head's attention on one text, or on a pair [CLS] A [SEP] B [SEP].

    The pair is encoded as BERT reads one: the tokens of `text` and its [CLS]/[SEP] are
    segment 0, those of `text_pair` and the last [SEP] segment 1, and the model gets
    these token type ids. max_length counts the special tokens (default: the model's).
    truncation=True cuts a longer input as the tokenizer does (the longer text first);
    truncation=False raises InputError instead, saying how many tokens there are.
    A text with no tokens at all raises InputError.
    """
    encoder = load_encoder(model)
    max_length = _max_length(encoder, max_length)
    for name, t in (("text", text), ("second text", text_pair)):
        if t is not None and not isinstance(t, str):
            raise TypeError(f"the {name} must be a str, got {type(t).__name__}")
        if t is not None and not encoder.tokenizer.tokenize(t):
            raise InputError(f"the {name} is empty: it gives no tokens ({t!r})")
    if text_pair is not None and encoder.model.config.type_vocab_size < 2:
        raise InputError(f"this model has type_vocab_size={encoder.model.config.type_vocab_size}: "
                         f"it has no second segment, so it cannot take a sentence pair")
    enc = encoder.tokenizer(text, text_pair, truncation=False)
    if len(enc["input_ids"]) > max_length:
        if not truncation:
            raise InputError(f"the input has {len(enc['input_ids'])} tokens with [CLS] and [SEP], more than "
                             f"max_length={max_length}: shorten it")
        enc = encoder.tokenizer(text, text_pair, truncation=True, max_length=max_length)
    ids = numpy.asarray([enc["input_ids"]])                                     # (1, T)
    types = numpy.asarray([enc["token_type_ids"]])                              # (1, T)
    bert = encoder.model
    with bert.inference():
        bert.forward(ids, types)
        probs = numpy.stack([backend.to_host(p[0]) for p in bert.attention_probs()])   # (L, A, T, T)
    return AttentionMaps(encoder.tokenizer.convert_ids_to_tokens(enc["input_ids"]),
                         list(enc["token_type_ids"]), probs)


def attention_maps(text: str, model=None, max_length=None, text_pair: str | None = None):
    """(tokens, probabilities (L, A, T, T) host array): every layer's and head's attention on one text.

    probs[l, a, i, j] is how much token i attends to token j in layer l, head a
    (each row sums to 1). With `text_pair`, the pair [CLS] A [SEP] B [SEP];
    `attention_data` also returns the segment ids.
    """
    tokens, _, probs = attention_data(text, text_pair, model, max_length)
    return tokens, probs
