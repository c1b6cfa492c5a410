"""Extractive summarization on WikiText-2: minibert's summarizer against first-K and random-K, by ROUGE.

    OPENBLAS_NUM_THREADS=1 MINIBERT_THREADS=1 python benchmarks/eval_summarize.py \
        [--data ../shared/data] [--articles 60] [--seeds 5] [--out benchmarks/results/summarize]

The set: the articles of WikiText-2's test split (test.raw.txt; 60 articles, the @-@ @,@ @.@ marks
undone by the pretraining reader's own table). For each article the *reference* is its lead
section (the paragraphs before the first ` = = Section = = ` heading) and the *document* is the
rest; K = the number of sentences of the lead (at most the document's). An article with no lead
or no body is skipped (the table says how many were used).

Systems, each choosing K sentences of the document, output in document order:
    first-K           the first K sentences (the "lead" baseline; strong on news and Wikipedia)
    random-K          K sentences drawn uniformly, mean over --seeds seeds
    textrank          minibert: MiniLM sentence vectors, TextRank centrality, the K most central (lambda 1)
    textrank+mmr L    the same with MMR redundancy control, lambda L (0.7, the default, and 0.5, 0.3)
The sentence vectors are computed once per article and shared by the textrank rows.

Reported: ROUGE-1, ROUGE-2, ROUGE-L F1 (minibert.apps.rouge, equal to rouge-score 0.1.2 without
stemming), mean over articles, with the standard error of the mean; then each system's paired
difference from first-K (the same articles), its standard error, and on how many articles it is
higher. Writes results.json (the table and every article's scores) beside the printed table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from minibert.apps.embed import embed, load_encoder                                    # noqa: E402
from minibert.apps.rouge import ROUGE_TYPES, rouge                                     # noqa: E402
from minibert.apps.summarize import mmr_select, similarity_graph, textrank            # noqa: E402
from minibert.data.pretraining.readers import (WIKITEXT_MARKS, _is_wiki_heading,       # noqa: E402
                                               _is_wiki_title)
from minibert.data.pretraining.sentences import split_sentences                       # noqa: E402

LAMBDAS = (0.7, 0.5, 0.3)


def read_articles(path: Path) -> list[dict]:
    """[{"title", "lead": [sentences], "body": [sentences]}] from a raw WikiText file (the reader's rules)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    articles = []
    for i, line in enumerate(lines):
        if _is_wiki_title(lines, i):
            articles.append({"title": line.strip(" ="), "lead": [], "body": [], "in_body": False})
            continue
        if not articles or not line.strip():
            continue
        if _is_wiki_heading(lines, i):
            articles[-1]["in_body"] = True
            continue
        for mark, text in WIKITEXT_MARKS.items():
            line = line.replace(mark, text)
        articles[-1]["body" if articles[-1]["in_body"] else "lead"].extend(split_sentences(line))
    return [{k: a[k] for k in ("title", "lead", "body")} for a in articles]


def scores(chosen: list[str], reference: str) -> dict:
    return {name: s.f1 for name, s in rouge(" ".join(chosen), reference).items()}


def evaluate(articles, seeds: int, encoder) -> dict:
    systems = ["first-K", "random-K", "textrank"] + [f"textrank+mmr {lam}" for lam in LAMBDAS]
    per = {s: {t: [] for t in ROUGE_TYPES} for s in systems}
    used, t_embed = 0, 0.0
    for a in articles:
        if not a["lead"] or not a["body"]:
            continue
        used += 1
        body, reference = a["body"], " ".join(a["lead"])
        k = min(len(a["lead"]), len(body))
        picks = {"first-K": [list(range(k))]}
        picks["random-K"] = [sorted(numpy.random.default_rng([seed, used]).choice(len(body), k, replace=False))
                             for seed in range(seeds)]
        start = time.perf_counter()
        vectors = embed(body, model=encoder)
        t_embed += time.perf_counter() - start
        S, W = similarity_graph(vectors)
        c = textrank(W)
        picks["textrank"] = [sorted(mmr_select(c, S, k, 1.0))]
        for lam in LAMBDAS:
            picks[f"textrank+mmr {lam}"] = [sorted(mmr_select(c, S, k, lam))]
        for name, runs in picks.items():
            mean = {t: numpy.mean([scores([body[i] for i in idx], reference)[t] for idx in runs])
                    for t in ROUGE_TYPES}
            for t in ROUGE_TYPES:
                per[name][t].append(mean[t])
    table = {name: {t: {"mean": float(numpy.mean(v)), "sem": float(numpy.std(v, ddof=1) / numpy.sqrt(len(v)))}
                    for t, v in d.items()} for name, d in per.items()}
    for name, d in per.items():                   # paired: the same articles, so the difference's own spread
        for t, v in d.items():
            diff = numpy.asarray(v) - numpy.asarray(per["first-K"][t])
            table[name][t].update(diff_vs_first_k=float(diff.mean()),
                                  diff_sem=float(diff.std(ddof=1) / numpy.sqrt(len(diff))),
                                  wins_vs_first_k=int((diff > 0).sum()))
    return {"articles_used": used, "embed_seconds": t_embed, "table": table, "per_article": per}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--articles", type=int, default=60, help="the first N articles of test.raw.txt")
    parser.add_argument("--seeds", type=int, default=5, help="random-K: seeds averaged")
    parser.add_argument("--model", default=None, help="sentence-embedding model (default: the bundled MiniLM)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "summarize"))
    args = parser.parse_args(argv)
    path = Path(args.data) / "wikitext2" / "test.raw.txt"
    if not path.is_file():
        raise SystemExit(f"no WikiText-2 file at {path}: pass --data (the folder holding wikitext2/test.raw.txt)")
    start = time.perf_counter()
    articles = read_articles(path)[:args.articles]
    result = evaluate(articles, args.seeds, load_encoder(args.model))
    result["seconds"] = time.perf_counter() - start
    lead_k = [len(a["lead"]) for a in articles if a["lead"] and a["body"]]
    body_n = [len(a["body"]) for a in articles if a["lead"] and a["body"]]
    result.update(articles_read=len(articles), mean_k=float(numpy.mean(lead_k)), mean_body_sentences=float(numpy.mean(body_n)),
                  settings=vars(args))
    print(f"WikiText-2 test: {result['articles_used']} of {len(articles)} articles (lead = reference, rest = "
          f"document); K = sentences of the lead, mean {result['mean_k']:.1f}; document mean "
          f"{result['mean_body_sentences']:.1f} sentences; {result['seconds']:.0f} s "
          f"({result['embed_seconds']:.0f} s embedding)")
    print(f"{'system':<20} " + "  ".join(f"{t + ' F1':>15}" for t in ROUGE_TYPES))
    for name, row in result["table"].items():
        print(f"{name:<20} " + "  ".join(f"{row[t]['mean']:>8.4f} ±{row[t]['sem']:.4f}" for t in ROUGE_TYPES))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"\npaired difference from first-K, F1 (mean ± standard error over articles; articles where it is higher)")
    for name, row in result["table"].items():
        if name != "first-K":
            print(f"{name:<20} " + "  ".join(f"{row[t]['diff_vs_first_k']:>+8.4f} ±{row[t]['diff_sem']:.4f} "
                                             f"({row[t]['wins_vs_first_k']}/{result['articles_used']})"
                                             for t in ROUGE_TYPES))
    print(f"written: {out / 'results.json'}")


if __name__ == "__main__":
    main()
