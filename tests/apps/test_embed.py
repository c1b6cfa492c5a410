"""minibert.embed and the token-level views on the bundled all-MiniLM-L6-v2; the vector commands.

Parity with sentence-transformers on 500 real sentences is in model/test_pretrained_parity.py; here:
the order of the texts and the batching never change a vector, pooling and normalisation do
what they say, the model argument takes every documented form, bad input gets a clear error.
"""
from __future__ import annotations

import numpy
import pytest

import minibert
from minibert.apps.embed import attention_data, attention_maps, load_encoder, pool, token_states, word_vectors
from minibert.errors import InputError

TEXTS = ["A man is eating food.", "Stocks fell sharply on Monday after the report.", "ok",
         "The cat sat on the mat while the dog slept by the warm fire in the kitchen.", "",
         "A kitten rests on a rug."]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


def one_by_one(texts, encoder, **kw):
    return numpy.concatenate([minibert.embed([t], encoder, **kw) for t in texts])


def test_shape_dtype_and_unit_length(encoder):
    v = minibert.embed(TEXTS, encoder)
    assert v.shape == (len(TEXTS), 384) and v.dtype == numpy.float32
    assert isinstance(v, numpy.ndarray)
    numpy.testing.assert_allclose(numpy.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    assert minibert.embed("just one", encoder).shape == (1, 384)


def test_order_and_batching_do_not_change_vectors(encoder):
    """Sorted batches with padding give each text the vector it gets alone (to float32 rounding)."""
    alone = one_by_one(TEXTS, encoder)
    for batch_size in (1, 2, 4, 32):
        batched = minibert.embed(TEXTS, encoder, batch_size=batch_size)
        assert numpy.abs(batched - alone).max() < 2e-6, batch_size
    order = [5, 2, 0, 4, 1, 3]
    shuffled = minibert.embed([TEXTS[i] for i in order], encoder, batch_size=4)
    assert numpy.abs(shuffled - alone[order]).max() < 2e-6


def test_mean_and_cls_pooling_by_hand(encoder):
    """Mean pooling is the average of the token vectors of the text (padding left out); cls is
    the first token's vector; normalize=False leaves them as they are."""
    for text in TEXTS[:2]:
        tokens, states, _ = token_states(text, encoder)
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
        mean = minibert.embed([text], encoder, normalize=False)[0]
        cls = minibert.embed([text], encoder, pooling="cls", normalize=False)[0]
        numpy.testing.assert_allclose(mean, states.mean(axis=0), atol=2e-6)
        numpy.testing.assert_allclose(cls, states[0], atol=2e-6)
        unit = minibert.embed([text], encoder, pooling="cls")[0]
        numpy.testing.assert_allclose(unit, cls / numpy.linalg.norm(cls), atol=1e-6)


def test_pool_ignores_padding():
    hidden = numpy.arange(2 * 4 * 3, dtype=numpy.float64).reshape(2, 4, 3)
    mask = numpy.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    numpy.testing.assert_allclose(pool(hidden, mask)[0], hidden[0, :2].mean(axis=0))
    numpy.testing.assert_allclose(pool(hidden, mask)[1], hidden[1].mean(axis=0))
    numpy.testing.assert_allclose(pool(hidden, mask, "cls"), hidden[:, 0])


def test_max_length_truncates(encoder):
    long = " ".join(["word"] * 400)
    assert encoder.max_length == 256               # all-MiniLM-L6-v2's sentence_bert_config.json
    short = minibert.embed([long], encoder, max_length=8, normalize=False)[0]
    _, states, _ = token_states(" ".join(["word"] * 6), encoder)     # [CLS] + 6 words + [SEP] = 8
    numpy.testing.assert_allclose(short, states.mean(axis=0), atol=2e-6)
    with pytest.raises(ValueError, match="longer than the model's max_position_embeddings=512"):
        minibert.embed(["x"], encoder, max_length=600)


def test_model_argument_forms(encoder):
    from minibert.model.pretrained import default_model_dir

    ref = minibert.embed(TEXTS[:2])                                    # None: the bundled model
    for form in (default_model_dir(), str(default_model_dir()), (encoder.model, encoder.tokenizer), encoder):
        numpy.testing.assert_allclose(minibert.embed(TEXTS[:2], form), ref, atol=1e-6)
    assert load_encoder() is load_encoder()                            # loaded once


def test_embed_restores_training_mode(encoder):
    encoder.model.train()
    try:
        a = minibert.embed(TEXTS[:2], encoder)
        assert encoder.model.training
        numpy.testing.assert_array_equal(a, minibert.embed(TEXTS[:2], encoder))   # no dropout inside
    finally:
        encoder.model.eval()


def test_progress_bar(encoder, capsys):
    minibert.embed(TEXTS, encoder, progress=True)
    assert "embed" in capsys.readouterr().err
    minibert.embed(TEXTS, encoder, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("texts,kwargs,error,match", [
    ([], {}, ValueError, "no texts to embed"),
    (["a", 3], {}, TypeError, r"texts\[1\] is a int"),
    (b"bytes", {}, TypeError, "not bytes"),
    (5, {}, TypeError, "must be a list of strings"),
    (["a"], {"pooling": "max"}, ValueError, "unknown pooling 'max'"),
    (["a"], {"batch_size": 0}, ValueError, "batch_size must be a positive integer"),
    (["a"], {"max_length": 1}, ValueError, "at least 2 tokens"),
    (["a"], {"model": 3.5}, TypeError, "model must be None, a folder"),
    (["a"], {"model": ("x",)}, TypeError, "must be a pair"),
])
def test_bad_input(encoder, texts, kwargs, error, match):
    kwargs.setdefault("model", encoder)
    with pytest.raises(error, match=match):
        minibert.embed(texts, **kwargs)


def test_missing_model_folder(tmp_path):
    from minibert.model.io import CheckpointError
    with pytest.raises(CheckpointError, match="no model folder"):
        minibert.embed(["a"], tmp_path / "none")
    with pytest.raises(SystemExit, match="cannot load the model: no model folder"):
        minibert.__main__.main(["embed", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "v.npy"),
                                "--input", __file__])


def test_word_vectors_and_attention_maps(encoder):
    v = word_vectors(["The bank of the river.", "Money in the BANK today"], "bank", encoder)
    assert v.shape == (2, 384)
    tokens, states, offsets = token_states("Money in the BANK today", encoder)
    row = [t for t, _ in zip(tokens, offsets)].index("bank")
    numpy.testing.assert_allclose(v[1], states[row], atol=2e-6)
    with pytest.raises(ValueError, match="'bank' occurs 0 time"):
        word_vectors(["no such word here"], "bank", encoder)
    tokens, probs = attention_maps("The cat sat.", encoder)
    assert tokens == ["[CLS]", "the", "cat", "sat", ".", "[SEP]"]
    assert probs.shape == (6, 12, 6, 6)
    numpy.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)


def test_attention_data_of_a_pair_gives_the_model_its_segments(encoder):
    """[CLS] A [SEP] B [SEP] with token types 0 then 1, and the model runs on those types: the maps are
    transformers' own attentions for the same input (eager attention, output_attentions=True)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    maps = attention_data("The cat sat.", "It was warm.", encoder)
    assert maps.tokens == ["[CLS]", "the", "cat", "sat", ".", "[SEP]", "it", "was", "warm", ".", "[SEP]"]
    assert maps.segment_ids == [0] * 6 + [1] * 5
    assert maps.probs.shape == (6, 12, 11, 11) and isinstance(maps.probs, numpy.ndarray)
    numpy.testing.assert_allclose(maps.probs.sum(axis=-1), 1.0, atol=1e-5)
    hf = transformers.BertModel.from_pretrained(encoder.name, attn_implementation="eager").eval()
    ids = torch.tensor([encoder.tokenizer.convert_tokens_to_ids(maps.tokens)])
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=torch.tensor([maps.segment_ids]), output_attentions=True)
        zeros = hf(input_ids=ids, output_attentions=True)          # the same ids, every token in segment A
    ref = numpy.stack([a[0].numpy() for a in ref.attentions])      # (L, A, T, T)
    assert numpy.abs(maps.probs - ref).max() < 2e-5
    assert numpy.abs(numpy.stack([a[0].numpy() for a in zeros.attentions]) - ref).max() > 1e-3   # types matter
    tokens, probs = attention_maps("The cat sat.", encoder, text_pair="It was warm.")
    assert tokens == maps.tokens and numpy.array_equal(probs, maps.probs)
    one = attention_data("The cat sat.", model=encoder)
    assert one.segment_ids == [0] * 6 and numpy.array_equal(one.probs, attention_maps("The cat sat.", encoder)[1])


def test_attention_data_errors_and_truncation(encoder):
    with pytest.raises(InputError, match=r"the text is empty: it gives no tokens \(' '\)"):
        attention_data(" ", model=encoder)
    with pytest.raises(InputError, match="the second text is empty"):
        attention_data("a cat", "", model=encoder)
    long = "word " * 300
    with pytest.raises(InputError, match="the input has 302 tokens with \\[CLS\\] and \\[SEP\\], more than "
                                         "max_length=256: shorten it"):
        attention_data(long, model=encoder, truncation=False)
    with pytest.raises(InputError, match="the input has 9 tokens .* max_length=8"):
        attention_data("one two three", "four five six", model=encoder, max_length=8, truncation=False)
    assert len(attention_data(long, model=encoder).tokens) == 256                 # truncation=True: cut
    cut = attention_data("one two three", "four five six", model=encoder, max_length=8)
    assert cut.tokens == ["[CLS]", "one", "two", "three", "[SEP]", "four", "five", "[SEP]"]   # longest first
    assert cut.segment_ids == [0] * 5 + [1] * 3 and cut.probs.shape[-1] == 8
    with pytest.raises(InputError, match="max_length=600 is longer than the model's max_position_embeddings=512"):
        attention_data("a cat", model=encoder, max_length=600)


def test_attention_data_needs_a_second_segment_for_a_pair(tmp_path):
    from minibert import BertModel
    from minibert.gradcheck import odd_config
    from minibert.tokenization import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat"] + [f"w{i}" for i in range(91)]
    model = BertModel(odd_config(type_vocab_size=1), seed=0)
    encoder = load_encoder((model, BertTokenizer(vocab)))
    assert attention_data("the cat", model=encoder).probs.shape == (2, 3, 4, 4)
    with pytest.raises(InputError, match="type_vocab_size=1: it has no second segment"):
        attention_data("the cat", "sat", model=encoder)


# -- the commands --------------------------------------------------------------------------------

import minibert.__main__  # noqa: E402


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("The cat sat on the mat.\nStocks fell sharply on Monday.\nA kitten is resting on a rug.\n"
                    "The central bank raised interest rates.\n", encoding="utf-8")
    return path


def test_cli_embed_then_search(tmp_path, corpus, capsys, monkeypatch, encoder):
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO(corpus.read_text()))
    out = tmp_path / "vectors.npy"
    assert minibert.__main__.main(["embed", "--out", str(out)]) == 0
    vectors = numpy.load(out)
    numpy.testing.assert_allclose(vectors, minibert.embed(corpus.read_text().splitlines(), encoder), atol=1e-6)
    capsys.readouterr()
    assert minibert.__main__.main(["search", "--corpus", str(corpus), "--vectors", str(out), "--top-k", "2",
                                   "a cat on a carpet", "interest rates"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].endswith("The cat sat on the mat.") and "[line 1]" in printed[1]
    assert printed[4].endswith("The central bank raised interest rates.")
    bad = tmp_path / "bad.npy"
    numpy.save(bad, vectors[:2])
    with pytest.raises(SystemExit, match="has shape .* but the corpus has 4 lines"):
        minibert.__main__.main(["search", "--corpus", str(corpus), "--vectors", str(bad), "x"])
    with pytest.raises(SystemExit, match="cannot read .* as a .npy array"):
        minibert.__main__.main(["search", "--corpus", str(corpus), "--vectors", str(corpus), "x"])


def test_cli_similarity_cluster_analogy_attention_polysemy(tmp_path, corpus, capsys):
    main = minibert.__main__.main
    assert main(["similarity", "--input", str(corpus), "--plot", str(tmp_path / "sim.png")]) == 0
    assert main(["cluster", "--corpus", str(corpus), "-k", "2", "--out", str(tmp_path / "labels.txt"),
                 "--plot", str(tmp_path / "clusters.png")]) == 0
    labels = (tmp_path / "labels.txt").read_text().split()
    assert labels[0] == labels[2] and labels[1] == labels[3] and labels[0] != labels[1]
    assert main(["analogy", "king", "woman", "--minus", "man", "--expect", "queen"]) == 0
    assert main(["attention", "The cat sat.", "--plot", str(tmp_path / "att.png")]) == 0
    assert main(["polysemy", "--plot", str(tmp_path / "poly.png")]) == 0
    for name in ("sim.png", "clusters.png", "att.png", "poly.png"):
        assert (tmp_path / name).stat().st_size > 1000
    out = capsys.readouterr().out
    assert "6 layers x 12 heads over 6 tokens" in out and "rank of 'queen'" in out
    with pytest.raises(SystemExit, match="not one token of the vocabulary"):
        main(["analogy", "kingdomhood", "--minus", "man"])
    with pytest.raises(SystemExit, match="-k 9 is more than the 4 texts"):
        main(["cluster", "--corpus", str(corpus), "-k", "9"])
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(SystemExit, match="the corpus file .* is empty"):
        main(["search", "--corpus", str(empty), "x"])


def test_everything_stays_on_the_device(xp, tmp_path):
    """Under each backend (the strict CuPy stand-in refusing it): loading, embedding, token vectors,
    attention maps and analogies never turn a device array into a host one implicitly."""
    from minibert import BertModel, backend
    from minibert.gradcheck import odd_config
    from minibert.tokenization import BertTokenizer
    from minibert.apps.vectors import analogy

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = specials + ["the", "cat", "sat", "dog", "ran", "bank", "river", "money", "."] + \
        [f"w{i}" for i in range(99 - 14)]
    with backend.using("numpy"):
        BertModel(odd_config(max_position_embeddings=24), seed=0).save_pretrained(tmp_path)
    BertTokenizer(vocab).save_pretrained(tmp_path)
    encoder = load_encoder(tmp_path)
    assert isinstance(encoder.model.params["pooler.dense.weight"], xp.ndarray)
    v = minibert.embed(["the cat sat .", "the dog ran", "bank"], encoder, batch_size=2)
    assert isinstance(v, numpy.ndarray) and v.shape == (3, 36)
    cls = minibert.embed(["the cat sat ."], encoder, pooling="cls", normalize=False)
    assert cls.shape == (1, 36)
    assert word_vectors(["the river bank", "money bank ."], "bank", encoder).shape == (2, 36)
    tokens, probs = attention_maps("the cat sat", encoder)
    assert probs.shape == (2, 3, 5, 5) and isinstance(probs, numpy.ndarray)
    assert analogy(("cat", "dog"), ("the",), encoder).rank("ran") >= 1
