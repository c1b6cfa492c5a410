"""`minibert summarize` (extractive summary of a text file) and `minibert augment` (new training rows from a masked-LM)."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from minibert import checks
from minibert.apps.augment import Augmenter, augment_tsv
from minibert.apps.embed import load_encoder
from minibert.apps.summarize import DEFAULT_LAMBDA, summarize
from minibert.cli.command import FILE_ERRORS, Command
from minibert.errors import InputError, MinibertError
from minibert.files import check_out_files

__all__ = ["COMMANDS", "SummarizeArgs", "AugmentArgs"]

fraction_up_to_one = checks.in_range(0, 1, low_open=True)          # (0, 1]


@dataclass(kw_only=True)
class SummarizeArgs:
    file: str = field(metadata={"positional": True, "help": "text file to summarise (- reads stdin)"})
    sentences: int = field(metadata={"check": checks.positive, "flags": ("--sentences", "-k"),
                                     "help": "K, the number of sentences of the summary"})
    lambda_: float = field(default=DEFAULT_LAMBDA, metadata={
        "flags": ("--lambda",), "metavar": "LAMBDA", "check": checks.probability,
        "help": "MMR's weight of centrality against novelty, in [0, 1]; 1: the K most central sentences"})
    model: str | None = field(default=None, metadata={
        "help": "sentence-embedding model folder (default: the bundled all-MiniLM-L6-v2)"})
    scores: bool = field(default=False, metadata={
        "help": "print each chosen sentence's index and TextRank score before it"})


def read_document(path: str) -> str:
    """The text of a UTF-8 file, or of stdin for "-"; an empty one (or only whitespace) is an InputError."""
    if path == "-":
        text, source = sys.stdin.read(), "stdin"
    else:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"no file to summarise at {p}" + (" (it is a folder)" if p.is_dir() else ""))
        text, source = checks.decode_utf8(p.read_bytes(), p), str(p)
    if not text.strip():
        raise InputError(f"{source} is empty: there is nothing to summarise")
    return text


def run_summarize(args: SummarizeArgs) -> int:
    """The K chosen sentences, one per line, in the order of the document."""
    text = read_document(args.file)
    try:
        encoder = load_encoder(args.model)
    except (MinibertError, *FILE_ERRORS) as err:
        raise InputError(f"cannot load the model: {err}") from None
    result = summarize(text, args.sentences, args.lambda_, model=encoder)
    if args.sentences > len(result.all_sentences):
        print(f"note: the text has {len(result.all_sentences)} sentences, fewer than --sentences "
              f"{args.sentences}: all of them are shown", file=sys.stderr)
    for i, sentence in zip(result.indices, result.sentences):
        print(f"[{i}] {result.centrality[i]:.4f}  {sentence}" if args.scores else sentence)
    return 0


@dataclass(kw_only=True)
class AugmentArgs:
    model: str = field(metadata={"help": "masked-LM folder: a `minibert pretrain` run (config.json, vocab.txt, "
                                         "model.safetensors with the pretraining heads)"})
    input: str = field(metadata={"flags": ("--in",), "help": "SST-2 TSV with its header (sentence<TAB>label)"})
    out: str = field(metadata={"help": "the TSV written: each input row followed by its new rows"})
    per_example: int = field(metadata={"check": checks.positive, "help": "N, new rows per input row"})
    fraction: float = field(default=0.15, metadata={
        "check": fraction_up_to_one, "help": "share of each sentence's words replaced, in (0, 1]"})
    temperature: float = field(default=1.0, metadata={
        "check": checks.finite_positive, "help": "sampling temperature of the replacements"})
    top_k: int = field(default=50, metadata={
        "check": checks.non_negative, "help": "sample among the k likeliest whole words (0: all)"})
    filter_model: str | None = field(default=None, metadata={
        "help": "a `minibert finetune --task sst2` run (or its best/): keep only new rows it labels as "
                "their source"})
    limit: int | None = field(default=None, metadata={
        "check": checks.positive, "help": "augment only the first N rows of --in"})
    seed: int = field(default=0, metadata={"help": "seed of the words chosen and the replacements drawn"})


def run_augment(args: AugmentArgs) -> int:
    """Write --out; say how many rows it holds."""
    for flag, path in (("--in", args.input),):
        if not Path(path).is_file():
            raise InputError(f"no {flag} file at {path}" + (" (it is a folder)" if Path(path).is_dir() else ""))
    check_out_files([("--out", args.out)], inputs=[("--in", args.input), ("--model", args.model),
                                                    ("--filter-model", args.filter_model)])
    try:
        augmenter = Augmenter.load(args.model, fraction=args.fraction, temperature=args.temperature,
                                   top_k=args.top_k)
    except (MinibertError, *FILE_ERRORS) as err:
        raise InputError(f"cannot load the masked-LM --model {args.model}: {err}") from None
    counts = augment_tsv(augmenter, args.input, args.out, args.per_example, args.seed,
                         filter_folder=args.filter_model, limit=args.limit)
    print(f"{args.out}: {counts['written']} rows ({counts['examples']} original, {counts['new']} new"
          + (f", {counts['filtered_out']} fewer than asked: the filter rejected them" if args.filter_model else "")
          + ")")
    return 0


COMMANDS = (
    Command("summarize", "the K most central, least redundant sentences of a text (TextRank + MMR)",
            SummarizeArgs, run_summarize,
            description="Print the K sentences of a text that best summarise it, one per line, in the text's order:\n"
                        "sentence vectors (MiniLM), TextRank centrality on their cosine graph, MMR against repeats\n"
                        "(docs/summarization.md). K above the number of sentences prints them all (a note says so)."),
    Command("augment", "new training rows: words replaced by a masked-LM's guesses, labels kept",
            AugmentArgs, run_augment,
            description="Write --out: every row of --in followed by N new rows, each with about --fraction of its\n"
                        "words replaced by whole words sampled from the masked-LM, the label kept\n"
                        "(docs/augmentation.md)."),
)
