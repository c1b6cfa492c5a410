"""`minibert embed`, `search`, `similarity`, `cluster`, `polysemy`, `analogy`, `attention`."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy

from minibert import checks
from minibert.apps.embed import POOLINGS, Encoder, attention_data, embed, load_encoder
from minibert.apps.vectors import analogy, cosine_similarity, kmeans, pca, polysemy, search
from minibert.cli.command import FILE_ERRORS, Command
from minibert.errors import InputError, MinibertError
from minibert.files import atomic_open, check_out_files, figure_path, npy_path, save_figure, save_npy
from minibert.viz import (plot_attention_grid, plot_clusters, plot_polysemy, plot_similarity,
                          write_attention_page)

__all__ = ["COMMANDS", "ModelArgs", "encoder_from_args", "read_lines", "check_out_name", "check_figure_file"]


# -- what every command here shares: the model, reading texts, writing files ------------------

@dataclass(kw_only=True)
class ModelArgs:
    """The pretrained BERT a command uses and how it runs (flags listed under "model" in --help)."""
    model: str | None = field(default=None, metadata={
        "group": "model", "help": "model folder (config.json, model.safetensors, vocab.txt); default: the "
                                  "bundled all-MiniLM-L6-v2"})
    batch_size: int = field(default=32, metadata={
        "check": checks.positive, "group": "model", "help": "texts per forward pass"})
    max_length: int | None = field(default=None, metadata={
        "check": checks.at_least(2),
        "group": "model", "help": "tokens per text (default: the model's)"})


def encoder_from_args(args: ModelArgs) -> Encoder:
    """The model of --model; one that cannot be loaded is bad input, reported as such, and so is a
    --max-length longer than the model's position table."""
    try:
        encoder = load_encoder(args.model)
    except (MinibertError, *FILE_ERRORS) as err:
        raise InputError(f"cannot load the model: {err}") from None
    positions = encoder.model.config.max_position_embeddings
    if args.max_length is not None and args.max_length > positions:
        raise InputError(f"--max-length {args.max_length} is longer than the model's max_position_embeddings="
                         f"{positions}")
    return encoder


def read_lines(path=None, *, what="input") -> list[str]:
    """Lines of a UTF-8 file (or stdin when path is None or "-"), newline characters removed.

    A file that is missing, not UTF-8 (the line is named), empty or only blank lines is an InputError.
    """
    if path in (None, "-"):
        source = "stdin"
        text = sys.stdin.read()
    else:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"no {what} file at {p}" + (" (it is a folder)" if p.is_dir() else ""))
        source = f"the {what} file {p}"
        text = checks.decode_utf8(p.read_bytes(), p)
    lines = text.splitlines()
    if not lines:
        raise InputError(f"{source} is empty: give one text per line")
    if not any(line.strip() for line in lines):
        raise InputError(f"{source} has only blank lines: give one text per line")
    return lines


def check_out_name(flag: str, path, suffixes: tuple[str, ...] = ()) -> None:
    """An output file's name (None: not asked for), checked before any work: a folder is refused (numpy
    and matplotlib would write FOLDER.npy or FOLDER.png beside it without a word), and so is an extension
    that names another format than the one written (`--out vectors.txt` for an .npy array, `--html
    page.png`); a name without an extension is fine (numpy and matplotlib add theirs: files.npy_path,
    figure_path)."""
    if path is None:
        return
    if Path(path).is_dir():
        raise InputError(f"{flag} {path} is a folder; give a file name")
    if suffixes and Path(path).suffix and Path(path).suffix.lower() not in suffixes:
        raise InputError(f"{flag} {path}: give a file name ending in {' or '.join(suffixes)}")


def check_figure_file(flag: str, path) -> None:
    """A figure's output file (None: not asked for), checked before any work: not a folder, and an
    extension matplotlib can write (.png, .pdf, .svg ...); a name without one gets .png (files.figure_path)."""
    from matplotlib.backend_bases import FigureCanvasBase           # the formats of this matplotlib

    check_out_name(flag, path)
    if path is None:
        return
    formats = sorted("." + f for f in FigureCanvasBase.get_supported_filetypes())
    if figure_path(path).suffix.lower() not in formats:
        raise InputError(f"{flag} {path}: a figure cannot be written as {Path(path).suffix}; use .png (or one of "
                         f"{', '.join(f for f in formats if f != '.png')})")


def _out_path(path) -> Path:
    """`path`, its folder created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _check_outputs(args: ModelArgs, outputs, inputs=(), figures=()) -> None:
    """Before anything is read or written: no output file is an input (the --model folder included),
    a folder, a file of a run or model, or another output (minibert/files.py: check_out_files); each of
    `figures` ((flag, path) pairs) a format matplotlib can write."""
    check_out_files(outputs, inputs=[*inputs, ("--model", args.model)])
    for flag, path in figures:
        check_figure_file(flag, path)


def _plot_path(path):
    return None if path is None else figure_path(path)


# -- embed ---------------------------------------------------------------------------------------

@dataclass(kw_only=True)
class EmbedArgs(ModelArgs):
    input: str | None = field(default=None, metadata={"help": "text file, one text per line (default: stdin)"})
    out: str = field(metadata={"help": "where to write the (N, H) .npy array"})
    pooling: str = field(default="mean", metadata={
        "choices": POOLINGS, "help": "one vector from the token vectors: their mean, or [CLS]'s"})
    normalize: bool = field(default=True, metadata={"help": "keep the raw pooled vectors (default: unit length)"})
    progress: bool = field(default=True, metadata={"help": "no progress bar"})


def run_embed(args: EmbedArgs) -> int:
    """Embed every line, save the (N, H) array, say what was written on stderr."""
    check_out_name("--out", args.out, (".npy",))
    _check_outputs(args, [("--out", npy_path(args.out))], [("--input", args.input)])
    texts = read_lines(args.input)
    empty = sum(1 for t in texts if not t.strip())
    if empty:
        print(f"note: {empty} empty line(s) embedded as empty texts (row order is kept)", file=sys.stderr)
    encoder = encoder_from_args(args)
    vectors = embed(texts, encoder, pooling=args.pooling, normalize=args.normalize,
                    batch_size=args.batch_size, max_length=args.max_length,
                    progress=None if args.progress else False)
    out = save_npy(_out_path(args.out), vectors)                  # atomic
    print(f"{vectors.shape[0]} texts -> {out} (shape {vectors.shape}, {vectors.dtype}, pooling {args.pooling}"
          f"{', unit length' if args.normalize else ''})", file=sys.stderr)
    return 0


# -- search, similarity, cluster -----------------------------------------------------------------

@dataclass(kw_only=True)
class SearchArgs(ModelArgs):
    corpus: str = field(metadata={"help": "text file, one text per line"})
    vectors: str | None = field(default=None, metadata={
        "help": "the corpus's vectors from `minibert embed` (default: embed it now)"})
    top_k: int = field(default=5, metadata={"check": checks.positive, "help": "neighbours shown per query"})
    query: list[str] = field(metadata={"positional": True, "nargs": "+", "help": "one or more queries"})


def _read_vectors(path, n_lines: int) -> numpy.ndarray:
    """The (N, H) array of `minibert embed` for a corpus of n_lines lines: finite floats, one row per line."""
    if not Path(path).is_file():
        raise InputError(f"no vectors file at {path}" + (" (it is a folder)" if Path(path).is_dir() else ""))
    try:
        vectors = numpy.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise InputError(f"cannot read {path} as a .npy array of vectors: {err}") from None
    if not isinstance(vectors, numpy.ndarray):          # an .npz archive
        raise InputError(f"{path} is not a .npy array of vectors (an .npz archive?): give `minibert embed`'s output")
    if vectors.ndim != 2 or vectors.shape[0] != n_lines:
        raise InputError(f"{path} has shape {vectors.shape} but the corpus has {n_lines} lines: "
                         f"embed the same file with `minibert embed`")
    if vectors.dtype.kind != "f" or not numpy.isfinite(vectors).all():
        raise InputError(f"{path} holds {'NaN or infinite values' if vectors.dtype.kind == 'f' else vectors.dtype} "
                         f"where vectors should be finite floats: embed the corpus again with `minibert embed`")
    return vectors


def run_search(args: SearchArgs) -> int:
    """The top-k lines of the corpus for each query, by cosine similarity."""
    for n, query in enumerate(args.query, 1):
        if not query.strip():
            raise InputError(f"query {n} is empty: give the text to search for")
    corpus = read_lines(args.corpus, what="corpus")
    vectors = _read_vectors(args.vectors, len(corpus)) if args.vectors else None
    encoder = encoder_from_args(args)
    if vectors is None:
        vectors = embed(corpus, encoder, batch_size=args.batch_size, max_length=args.max_length)
    if vectors.shape[1] != encoder.hidden_size:
        raise InputError(f"{args.vectors} holds {vectors.shape[1]}-d vectors but the model makes "
                         f"{encoder.hidden_size}-d ones")
    queries = embed(args.query, encoder, max_length=args.max_length)
    if args.top_k > len(corpus):
        print(f"note: --top-k {args.top_k} is more than the {len(corpus)} lines of the corpus: showing "
              f"{len(corpus)}", file=sys.stderr)
    top, scores = search(queries, vectors, args.top_k)
    for q, (idx, sc) in enumerate(zip(top, scores)):
        print(f"query: {args.query[q]}")
        for rank, (i, s) in enumerate(zip(idx, sc), 1):
            print(f"  {rank:2d}. {s:.4f}  [line {i + 1}] {corpus[i]}")
    return 0


@dataclass(kw_only=True)
class SimilarityArgs(ModelArgs):
    texts: list[str] = field(metadata={"positional": True, "nargs": "*",
                                       "help": "texts to compare (default: lines of --input)"})
    input: str | None = field(default=None, metadata={"help": "text file, one text per line"})
    plot: str | None = field(default=None, metadata={"help": "write the heatmap to this PNG"})


def run_similarity(args: SimilarityArgs) -> int:
    """The matrix of cosine similarities between the texts (and its heatmap with --plot)."""
    _check_outputs(args, [("--plot", _plot_path(args.plot))], [("--input", args.input)],
                   figures=[("--plot", args.plot)])
    texts = args.texts or read_lines(args.input)
    if len(texts) < 2:
        raise InputError("give at least two texts to compare")
    vectors = embed(texts, encoder_from_args(args), batch_size=args.batch_size, max_length=args.max_length)
    sim = cosine_similarity(vectors)
    width = max(len(str(i)) for i in range(len(texts))) + 1
    print(" " * width + "".join(f"{j:>7d}" for j in range(len(texts))))
    for i, row in enumerate(sim):
        print(f"{i:>{width}d}" + "".join(f"{v:7.3f}" for v in row) + f"   {texts[i][:60]}")
    if args.plot:
        path = save_figure(plot_similarity(sim, texts), _out_path(args.plot), dpi=110)
        print(f"heatmap -> {path}", file=sys.stderr)
    return 0


@dataclass(kw_only=True)
class ClusterArgs(ModelArgs):
    corpus: str = field(metadata={"help": "text file, one text per line"})
    k: int = field(default=2, metadata={"check": checks.positive, "flags": ("-k",), "help": "number of clusters"})
    seed: int = field(default=0, metadata={"help": "seed of the k-means++ starts"})
    out: str | None = field(default=None, metadata={"help": "write one cluster label per line"})
    plot: str | None = field(default=None, metadata={"help": "write the PCA scatter to this PNG"})


def run_cluster(args: ClusterArgs) -> int:
    """k-means of the texts' vectors: each cluster's size and the texts nearest its centre."""
    _check_outputs(args, [("--out", args.out), ("--plot", _plot_path(args.plot))], [("--corpus", args.corpus)],
                   figures=[("--plot", args.plot)])
    texts = read_lines(args.corpus, what="corpus")
    if args.k > len(texts):
        raise InputError(f"-k {args.k} is more than the {len(texts)} texts")
    vectors = embed(texts, encoder_from_args(args), batch_size=args.batch_size, max_length=args.max_length)
    result = kmeans(vectors, args.k, seed=args.seed)
    for j in range(args.k):
        members = numpy.flatnonzero(result["labels"] == j)
        closest = members[numpy.argsort(result["distances"][members, j])][:3]
        print(f"cluster {j}: {len(members)} texts; nearest the centre:")
        for i in closest:
            print(f"    {texts[i][:100]}")
    if args.out:
        with atomic_open(_out_path(args.out), "w") as f:
            numpy.savetxt(f, result["labels"], fmt="%d")
        print(f"labels -> {args.out}", file=sys.stderr)
    if args.plot:
        coords, ratio = pca(vectors, 2)
        path = save_figure(plot_clusters(coords, result["labels"], ratio=ratio), _out_path(args.plot), dpi=110)
        print(f"PCA scatter -> {path}", file=sys.stderr)
    return 0


# -- polysemy, analogy, attention ----------------------------------------------------------------

@dataclass(kw_only=True)
class PolysemyArgs(ModelArgs):
    word: str = field(default="bank", metadata={"help": "the word whose vectors are compared"})
    sense: list[str] | None = field(default=None, metadata={
        "action": "append",
        "help": "NAME=FILE: sentences of one sense (repeat; default: the built-in river/money 'bank' set)"})
    plot: str | None = field(default=None, metadata={"help": "write the within/across cosine plot to this PNG"})


def _sense_groups(specs) -> dict[str, list[str]] | None:
    """{sense name: its sentences} from the --sense NAME=FILE options (None: the built-in set)."""
    if not specs:
        return None
    groups = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        if not path:
            raise InputError(f"--sense takes NAME=FILE (one sentence per line), got {spec!r}")
        groups[name] = [line for line in read_lines(path, what=f"sense {name!r}") if line.strip()]
    return groups


def run_polysemy(args: PolysemyArgs) -> int:
    """Mean cosine of the word's vectors within a sense and across senses."""
    _check_outputs(args, [("--plot", _plot_path(args.plot))],
                   [("--sense", spec.partition("=")[2] or None) for spec in args.sense or ()],
                   figures=[("--plot", args.plot)])
    result = polysemy(args.word, _sense_groups(args.sense), encoder_from_args(args))
    print(f"'{result['word']}' in {len(result['senses'])} sentences: mean cosine within a sense "
          f"{result['within']:.3f}, across senses {result['across']:.3f}")
    if args.plot:
        path = save_figure(plot_polysemy(result), _out_path(args.plot), dpi=110)
        print(f"plot -> {path}", file=sys.stderr)
    return 0


@dataclass(kw_only=True)
class AnalogyArgs(ModelArgs):
    positive: list[str] = field(metadata={"positional": True, "nargs": "+",
                                          "help": "words added (e.g. king woman)"})
    negative: list[str] | None = field(default=None, metadata={
        "flags": ("--minus",), "action": "append", "help": "a word subtracted (e.g. --minus man)"})
    top_k: int = field(default=10, metadata={"check": checks.positive, "help": "nearest tokens shown"})
    expect: str | None = field(default=None, metadata={"help": "also print the rank of this token"})


def run_analogy(args: AnalogyArgs) -> int:
    """The tokens nearest positive - negative on the input embeddings (and the rank of --expect)."""
    encoder = encoder_from_args(args)
    shown = len(encoder.tokenizer) - len({*args.positive, *(args.negative or ())})     # the inputs are left out
    if args.top_k > shown:
        print(f"note: --top-k {args.top_k} is more than the {shown} other tokens of the vocabulary: showing "
              f"{shown}", file=sys.stderr)
    result = analogy(args.positive, args.negative or (), encoder, top_k=min(args.top_k, shown))
    print(result.query + " =")
    for rank, (token, score) in enumerate(result.top, 1):
        print(f"  {rank:2d}. {token:15s} {score:.3f}")
    if args.expect:
        try:
            rank = result.rank(args.expect)
        except KeyError as err:
            raise InputError(f"--expect: {err.args[0]}") from None
        print(f"rank of {args.expect!r}: {rank} of {len(result.ranks)}")
    return 0


@dataclass(kw_only=True)
class AttentionArgs(ModelArgs):
    text: str = field(metadata={"positional": True, "help": "the text whose attention is drawn"})
    text_pair: str | None = field(default=None, metadata={
        "positional": True, "nargs": "?", "metavar": "second_text",
        "help": "a second text: the model reads the pair [CLS] A [SEP] B [SEP], segments 0 and 1"})
    html: str | None = field(default=None, metadata={
        "metavar": "OUT.html", "help": "write the interactive page (pick layer and head, hover a token) to this HTML file"})
    plot: str | None = field(default=None, metadata={
        "metavar": "OUT.png", "help": "write the grid of every layer and head to this PNG (default: attention.png when "
                "--html is not given)"})
    dpi: int = field(default=80, metadata={"check": checks.positive, "help": "resolution of the PNG"})


def run_attention(args: AttentionArgs) -> int:
    """Every layer's and head's attention over the text (or pair): an HTML page, a grid PNG, or both."""
    plot = args.plot or (None if args.html else "attention.png")
    _check_outputs(args, [("--html", args.html), ("--plot", _plot_path(plot))], figures=[("--plot", plot)])
    check_out_name("--html", args.html, (".html", ".htm"))
    maps = attention_data(args.text, args.text_pair, encoder_from_args(args), max_length=args.max_length,
                          truncation=False)
    L, A = maps.probs.shape[:2]
    texts = args.text if args.text_pair is None else f"{args.text} | {args.text_pair}"
    size = f"{L} layers x {A} heads over {len(maps.tokens)} tokens"
    if args.html:
        write_attention_page(_out_path(args.html), maps.tokens, maps.probs, maps.segment_ids,
                             title=f"attention: {texts}")
        print(f"{size} -> {args.html} (open it in a browser)")
    if plot:
        fig = plot_attention_grid(maps.probs, maps.tokens,
                                  title=f"attention of every layer (rows) and head (columns): {texts}")
        print(f"{size} -> {save_figure(fig, _out_path(plot), dpi=args.dpi)}")
    return 0


COMMANDS = (
    Command("embed", "texts (one per line) -> sentence vectors in a .npy file", EmbedArgs, run_embed,
            description="Embed one text per line (stdin or --input) with a pretrained BERT and save an (N, H)\n"
                        "float32 array."),
    Command("search", "nearest neighbours of a query in a corpus (one text per line)", SearchArgs, run_search),
    Command("similarity", "cosine similarity matrix of texts, and its heatmap", SimilarityArgs, run_similarity),
    Command("cluster", "k-means (k-means++ starts) of texts, with a PCA scatter", ClusterArgs, run_cluster),
    Command("polysemy", "one word's contextual vectors in different senses", PolysemyArgs, run_polysemy),
    Command("analogy", "king - man + woman on the input word embeddings", AnalogyArgs, run_analogy),
    Command("attention", "attention of every layer and head for a text or a pair (HTML page, grid PNG)",
            AttentionArgs, run_attention,
            description="Every layer's and head's attention over a text, or a pair [CLS] A [SEP] B [SEP]:\n"
                        "--html OUT.html writes an interactive page (no network needed to view it),\n"
                        "--plot OUT.png a grid of every layer and head; with neither, attention.png."),
)
