"""Build examples/xquad_records.csv, the small real CSV that drives `minibert records`, its
tests and notebook 04, from ../shared/data/xquad/xquad.en.json (run from the repository root):

    python examples/build_records_example.py [--data ../shared/data]

Source: XQuAD English (google-deepmind/xquad), 240 paragraphs and 1,190 questions from the
SQuAD v1.1 dev set, texts from Wikipedia; license CC BY-SA 4.0, which this CSV inherits
(see examples/README.md). No other data set goes in: SST-2 and RTE carry no stated license.

Rows: the first 24 questions (file order) of 8 articles on unrelated topics; columns
id, question, answer (the first gold answer), article (the label). Then, so that the row
checks have something to find, a few rows are damaged on purpose, each listed in DAMAGE and in
examples/README.md (a real CSV has such rows; these are made, and said to be made):
blanked or placeholder fields, a missing label, a duplicate carrying another label, two
questions from an article outside the 8 given one of the 8 labels (off-topic and mislabelled),
and two junk rows ("lorem ipsum", digits).
The output is deterministic (no randomness); re-running it rewrites the same bytes.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

ARTICLES = ["Apollo_program", "Amazon_rainforest", "Black_Death", "Doctor_Who",
            "Genghis_Khan", "Immune_system", "Prime_number", "Super_Bowl_50"]
PER_ARTICLE = 24
OFF_TOPIC_ARTICLE = "Ctenophora"      # comb jellies: a topic none of the 8 articles covers

# (row index in the clean table, column, new value, why): applied in this order
DAMAGE = [
    (3, "answer", "", "empty answer"),
    (30, "answer", "N/A", "placeholder answer"),
    (57, "question", "?", "placeholder question"),
    (88, "article", "", "missing label"),
    (120, "question", "   ", "blank question (spaces only)"),
]


def load_rows(xquad: Path):
    data = json.loads(xquad.read_text(encoding="utf-8"))["data"]
    by_title = {article["title"]: article for article in data}
    missing = [t for t in ARTICLES + [OFF_TOPIC_ARTICLE] if t not in by_title]
    if missing:
        raise SystemExit(f"{xquad} has no article(s) {missing}")

    def questions(title):
        for paragraph in by_title[title]["paragraphs"]:
            for qa in paragraph["qas"]:
                yield {"id": qa["id"], "question": " ".join(qa["question"].split()),
                       "answer": " ".join(qa["answers"][0]["text"].split()), "article": title}

    rows = []
    for title in ARTICLES:
        rows.extend(list(questions(title))[:PER_ARTICLE])
    return rows, list(questions(OFF_TOPIC_ARTICLE))[:2]


def build(data_dir: Path, out: Path) -> tuple[list[dict], dict]:
    """Write the CSV and, beside it, <name>.damage.json ({id: what was done}); return both."""
    rows, off_topic = load_rows(data_dir / "xquad" / "xquad.en.json")
    damage = {}
    for index, column, value, why in DAMAGE:
        rows[index][column] = value
        damage[rows[index]["id"]] = why
    # a duplicate of row 10's question and answer, labelled with another article: inconsistent labels
    original = rows[10]
    rows.insert(150, dict(original, id=original["id"] + "-dup", article="Doctor_Who"))
    damage[original["id"] + "-dup"] = f"duplicate of {original['id']} labelled Doctor_Who"
    damage[original["id"]] = f"original of the duplicate {original['id']}-dup (label {original['article']})"
    # questions about comb jellies, labelled as if they were about the immune system
    for k, row in enumerate(off_topic):
        rows.insert(60 + 40 * k, dict(row, article="Immune_system"))
        damage[row["id"]] = f"off-topic: a question on {OFF_TOPIC_ARTICLE} labelled Immune_system"
    # a junk row of the kind data-entry tests leave behind
    rows.insert(175, {"id": "junk-0001", "question": "lorem ipsum dolor sit amet", "answer": "asdf qwerty",
                      "article": "Prime_number"})
    damage["junk-0001"] = "junk row (lorem ipsum) labelled Prime_number"
    rows.insert(25, {"id": "junk-0002", "question": "1234 5678 9012", "answer": "0000", "article": "Apollo_program"})
    damage["junk-0002"] = "junk row (digits only) labelled Apollo_program"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "question", "answer", "article"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    out.with_suffix(".damage.json").write_text(json.dumps(damage, indent=2) + "\n", encoding="utf-8")
    return rows, damage


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "xquad_records.csv"))
    args = parser.parse_args(argv)
    rows, damage = build(Path(args.data), Path(args.out))
    print(f"{len(rows)} rows ({len(damage)} damaged on purpose, listed in the .damage.json) -> {args.out}")


if __name__ == "__main__":
    main()
