"""`minibert embed`, `search`, `similarity`, `cluster`, `polysemy`, `analogy`, `attention`."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy

from minibert.apps.embed import POOLINGS, Encoder, attention_maps, embed, load_encoder
from minibert.apps.vectors import analogy, cosine_similarity, kmeans, pca, polysemy, search
from minibert.model.config import ConfigError
from minibert.model.io import CheckpointError
from minibert.model.pretrained import PretrainedModelNotFound
from minibert.viz import plot_attention_grid, plot_clusters, plot_polysemy, plot_similarity


def read_lines(path=None, *, what="input") -> list[str]:
    """Lines of a UTF-8 file (or stdin when path is None or "-"), newline characters removed."""
    if path in (None, "-"):
        text = sys.stdin.read()
    else:
        p = Path(path)
        if not p.is_file():
            raise SystemExit(f"error: no {what} file at {p}")
        text = p.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    if not lines:
        raise SystemExit(f"error: the {what} is empty: give one text per line")
    return lines


def add_model_arguments(p) -> None:
    p.add_argument("--model", default=None,
                   help="model folder (config.json, model.safetensors, vocab.txt); default: the bundled "
                        "all-MiniLM-L6-v2")
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    p.add_argument("--max-length", type=int, default=None, help="tokens per text (default: the model's)")


def encoder_from_args(args) -> Encoder:
    try:
        return load_encoder(args.model)
    except (CheckpointError, ConfigError, PretrainedModelNotFound, FileNotFoundError) as err:
        raise SystemExit(f"error: cannot load the model: {err}") from None


def _cmd_embed(args) -> int:
    texts = read_lines(args.input)
    empty = sum(1 for t in texts if not t.strip())
    if empty:
        print(f"note: {empty} empty line(s) embedded as empty texts (row order is kept)", file=sys.stderr)
    encoder = encoder_from_args(args)
    vectors = embed(texts, encoder, pooling=args.pooling, normalize=args.normalize,
                    batch_size=args.batch_size, max_length=args.max_length,
                    progress=None if args.progress else False)
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True)
    numpy.save(out, vectors)
    print(f"{vectors.shape[0]} texts -> {out} (shape {vectors.shape}, {vectors.dtype}, pooling {args.pooling}"
          f"{', unit length' if args.normalize else ''})", file=sys.stderr)
    return 0


def register_embed(subparsers) -> None:
    p = subparsers.add_parser("embed", help="texts (one per line) -> sentence vectors in a .npy file",
                              description="Embed one text per line (stdin or --input) with a pretrained BERT "
                                          "and save an (N, H) float32 array.")
    p.add_argument("--input", default=None, help="text file, one text per line (default: stdin)")
    p.add_argument("--out", required=True, help="where to write the (N, H) .npy array")
    p.add_argument("--pooling", choices=POOLINGS, default="mean")
    p.add_argument("--no-normalize", dest="normalize", action="store_false",
                   help="keep the raw pooled vectors (default: unit length)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    add_model_arguments(p)
    p.set_defaults(func=_cmd_embed)


def _out_path(path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _cmd_search(args) -> int:

    corpus = read_lines(args.corpus, what="corpus")
    if args.vectors:
        try:
            vectors = numpy.load(args.vectors, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise SystemExit(f"error: cannot read {args.vectors} as a .npy array of vectors: {err}") from None
        if vectors.ndim != 2 or vectors.shape[0] != len(corpus):
            raise SystemExit(f"error: {args.vectors} has shape {vectors.shape} but the corpus has "
                             f"{len(corpus)} lines: embed the same file with `minibert embed`")
    encoder = encoder_from_args(args)
    if not args.vectors:
        vectors = embed(corpus, encoder, batch_size=args.batch_size, max_length=args.max_length)
    if vectors.shape[1] != encoder.hidden_size:
        raise SystemExit(f"error: {args.vectors} holds {vectors.shape[1]}-d vectors but the model makes "
                         f"{encoder.hidden_size}-d ones")
    queries = embed(args.query, encoder, max_length=args.max_length)
    top, scores = search(queries, vectors, args.top_k)
    for q, (idx, sc) in enumerate(zip(top, scores)):
        print(f"query: {args.query[q]}")
        for rank, (i, s) in enumerate(zip(idx, sc), 1):
            print(f"  {rank:2d}. {s:.4f}  [line {i + 1}] {corpus[i]}")
    return 0


def _cmd_similarity(args) -> int:

    texts = args.texts or read_lines(args.input)
    if len(texts) < 2:
        raise SystemExit("error: give at least two texts to compare")
    vectors = embed(texts, encoder_from_args(args), batch_size=args.batch_size, max_length=args.max_length)
    sim = cosine_similarity(vectors)
    width = max(len(str(i)) for i in range(len(texts))) + 1
    print(" " * width + "".join(f"{j:>7d}" for j in range(len(texts))))
    for i, row in enumerate(sim):
        print(f"{i:>{width}d}" + "".join(f"{v:7.3f}" for v in row) + f"   {texts[i][:60]}")
    if args.plot:
        plot_similarity(sim, texts).savefig(_out_path(args.plot), dpi=110)
        print(f"heatmap -> {args.plot}", file=sys.stderr)
    return 0


def _cmd_cluster(args) -> int:

    texts = read_lines(args.corpus, what="corpus")
    if args.k > len(texts):
        raise SystemExit(f"error: -k {args.k} is more than the {len(texts)} texts")
    vectors = embed(texts, encoder_from_args(args), batch_size=args.batch_size, max_length=args.max_length)
    result = kmeans(vectors, args.k, seed=args.seed)
    for j in range(args.k):
        members = numpy.flatnonzero(result["labels"] == j)
        closest = members[numpy.argsort(result["distances"][members, j])][:3]
        print(f"cluster {j}: {len(members)} texts; nearest the centre:")
        for i in closest:
            print(f"    {texts[i][:100]}")
    if args.out:
        numpy.savetxt(_out_path(args.out), result["labels"], fmt="%d")
        print(f"labels -> {args.out}", file=sys.stderr)
    if args.plot:
        coords, ratio = pca(vectors, 2)
        plot_clusters(coords, result["labels"], ratio=ratio).savefig(_out_path(args.plot), dpi=110)
        print(f"PCA scatter -> {args.plot}", file=sys.stderr)
    return 0


def _cmd_polysemy(args) -> int:

    groups = None
    if args.sense:
        groups = {}
        for spec in args.sense:
            name, _, path = spec.partition("=")
            if not path:
                raise SystemExit(f"error: --sense takes NAME=FILE (one sentence per line), got {spec!r}")
            groups[name] = [line for line in read_lines(path, what=f"sense {name!r}") if line.strip()]
    try:
        result = polysemy(args.word, groups, encoder_from_args(args))
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"'{result['word']}' in {len(result['senses'])} sentences: mean cosine within a sense "
          f"{result['within']:.3f}, across senses {result['across']:.3f}")
    if args.plot:
        plot_polysemy(result).savefig(_out_path(args.plot), dpi=110)
        print(f"plot -> {args.plot}", file=sys.stderr)
    return 0


def _cmd_analogy(args) -> int:

    try:
        result = analogy(args.positive, args.negative or (), encoder_from_args(args), top_k=args.top_k)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    print(result.query + " =")
    for rank, (token, score) in enumerate(result.top, 1):
        print(f"  {rank:2d}. {token:15s} {score:.3f}")
    if args.expect:
        try:
            print(f"rank of {args.expect!r}: {result.rank(args.expect)} of {len(result.ranks)}")
        except KeyError as err:
            raise SystemExit(f"error: {err}") from None
    return 0


def _cmd_attention(args) -> int:

    tokens, probs = attention_maps(args.text, encoder_from_args(args))
    fig = plot_attention_grid(probs, tokens, title=f"attention of every layer (rows) and head (columns): {args.text}")
    fig.savefig(_out_path(args.plot), dpi=args.dpi)
    print(f"{probs.shape[0]} layers x {probs.shape[1]} heads over {len(tokens)} tokens -> {args.plot}")
    return 0


def register_vectors(subparsers) -> None:

    p = subparsers.add_parser("search", help="nearest neighbours of a query in a corpus (one text per line)")
    p.add_argument("--corpus", required=True, help="text file, one text per line")
    p.add_argument("--vectors", help="the corpus's vectors from `minibert embed` (default: embed it now)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("query", nargs="+", help="one or more queries")
    add_model_arguments(p)
    p.set_defaults(func=_cmd_search)

    p = subparsers.add_parser("similarity", help="cosine similarity matrix of texts, and its heatmap")
    p.add_argument("texts", nargs="*", help="texts to compare (default: lines of --input)")
    p.add_argument("--input", help="text file, one text per line")
    p.add_argument("--plot", help="write the heatmap to this PNG")
    add_model_arguments(p)
    p.set_defaults(func=_cmd_similarity)

    p = subparsers.add_parser("cluster", help="k-means (k-means++ starts) of texts, with a PCA scatter")
    p.add_argument("--corpus", required=True, help="text file, one text per line")
    p.add_argument("-k", type=int, default=2, help="number of clusters")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write one cluster label per line")
    p.add_argument("--plot", help="write the PCA scatter to this PNG")
    add_model_arguments(p)
    p.set_defaults(func=_cmd_cluster)

    p = subparsers.add_parser("polysemy", help="one word's contextual vectors in different senses")
    p.add_argument("--word", default="bank")
    p.add_argument("--sense", action="append",
                   help="NAME=FILE: sentences of one sense (repeat; default: the built-in river/money 'bank' set)")
    p.add_argument("--plot", help="write the within/across cosine plot to this PNG")
    add_model_arguments(p)
    p.set_defaults(func=_cmd_polysemy)

    p = subparsers.add_parser("analogy", help="king - man + woman on the input word embeddings")
    p.add_argument("positive", nargs="+", help="words added (e.g. king woman)")
    p.add_argument("--minus", dest="negative", action="append", help="a word subtracted (e.g. --minus man)")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--expect", help="also print the rank of this token")
    add_model_arguments(p)
    p.set_defaults(func=_cmd_analogy)

    p = subparsers.add_parser("attention", help="attention maps of every layer and head for one text (grid PNG)")
    p.add_argument("text")
    p.add_argument("--plot", default="attention.png")
    p.add_argument("--dpi", type=int, default=80)
    add_model_arguments(p)
    p.set_defaults(func=_cmd_attention)



def register(subparsers) -> None:
    register_embed(subparsers)
    register_vectors(subparsers)
