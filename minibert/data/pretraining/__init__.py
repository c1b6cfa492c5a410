"""Pretraining data: text -> documents -> instances -> masked instances -> arrays.

    from minibert.data.pretraining import read_corpus, create_training_instances, instances_to_features
    from minibert.tokenization import BertTokenizer

    tok = BertTokenizer.from_pretrained("folder/with/vocab.txt")
    docs = read_corpus("corpus.txt")                  # list of documents, each a list of sentences
    instances = create_training_instances(docs, tok, max_seq_length=128, dupe_factor=2, seed=12345)
    print(instances[0])                               # tokens, segment ids, is_random_next, masks
    features = instances_to_features(instances, tok.vocab, 128, 20)   # dict of NumPy arrays
    for batch in iter_batches(features, 32): ...

Same instances as google-research/bert's create_pretraining_data.py for the
same documents, vocabulary, parameters and seed; as in Google's, "[SEP]"
written in the corpus is text, never a separator (instances.py says why).
Modules, in reading order:

    sentences.py   a small rule-based sentence splitter
    readers.py     plain text, WikiText, Project Gutenberg books -> documents of sentences
    masking.py     choose ~15% of the tokens; 80% [MASK], 10% kept, 10% random; whole words
    instances.py   documents -> sentence pairs (A, B, is_random_next) -> masked instances
    features.py    instances -> padded NumPy arrays (Hugging Face's and Google's forms), batches
    stdlib_corpus.py   the default corpus of `minibert pretrain`: docstrings of Python's standard library

docs/pretraining_data.md explains the algorithm with a worked example.
"""
from minibert.data.pretraining.features import (FEATURE_NAMES, IGNORE_INDEX, instances_to_features, iter_batches,
                                                load_features, save_features)
from minibert.data.pretraining.instances import (CONTROL_TOKENS, SkippedDocumentsWarning, TokenizedCorpus,
                                                 TrainingInstance, check_no_control_tokens, check_vocab,
                                                 corpus_tokenize, create_instances, create_instances_from_document,
                                                 create_training_instances, tokenize_documents, truncate_seq_pair,
                                                 vocab_words_of)
from minibert.data.pretraining.masking import candidate_groups, create_masked_lm_predictions, num_to_predict
from minibert.data.pretraining.readers import (GUTENBERG_BOOKS, GUTENBERG_HELD_OUT, EmptyCorpusError, read_corpus,
                                               read_gutenberg, read_gutenberg_book, read_plain_text, read_wikitext)
from minibert.data.pretraining.sentences import split_sentences

__all__ = [
    "CONTROL_TOKENS", "EmptyCorpusError", "FEATURE_NAMES", "GUTENBERG_BOOKS", "GUTENBERG_HELD_OUT",
    "IGNORE_INDEX", "SkippedDocumentsWarning", "TokenizedCorpus", "TrainingInstance", "candidate_groups",
    "check_no_control_tokens", "check_vocab", "corpus_tokenize", "create_instances", "create_instances_from_document",
    "create_masked_lm_predictions", "create_training_instances", "instances_to_features",
    "iter_batches", "load_features", "num_to_predict", "read_corpus", "read_gutenberg",
    "read_gutenberg_book", "read_plain_text", "read_wikitext", "save_features",
    "split_sentences", "tokenize_documents", "truncate_seq_pair", "vocab_words_of",
]
