"""BERT's WordPiece tokenizer, written out step by step, and a vocabulary trainer.

    from minibert.tokenization import BertTokenizer
    tok = BertTokenizer.from_pretrained("path/to/folder_with_vocab.txt")
    tok("Hello world!")["input_ids"]      # [101, 7592, 2088, 999, 102]

Modules, in reading order:
    chars.py          which characters are whitespace, control, punctuation, CJK
    basic.py          clean text, split words and punctuation, lower-case, strip accents
    wordpiece.py      greedy longest-match-first WordPiece with "##" continuations
    vocab.py          read and write vocab.txt, with clear errors
    encoding.py       truncation, [CLS]/[SEP], segment ids, padding
    tokenizer.py      BertTokenizer: all of the above behind Hugging Face's interface
    vocab_trainer.py  learn a WordPiece vocabulary from a corpus

The commands `python -m minibert tokenize` and `train-vocab` are in minibert/cli/tokenize.py.
"""
from minibert.tokenization.basic import BasicTokenizer
from minibert.tokenization.tokenizer import BertTokenizer
from minibert.tokenization.vocab import load_vocab, save_vocab
from minibert.tokenization.wordpiece import WordpieceTokenizer

__all__ = ["BertTokenizer", "BasicTokenizer", "WordpieceTokenizer", "load_vocab", "save_vocab"]
