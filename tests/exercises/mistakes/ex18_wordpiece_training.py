"""Learner mistakes in exercise 18 (wordpiece_training), and correct alternative forms."""
from mistakes import Mistake

E = "wordpiece_training"

GOOD = '''
def count_pairs(splits, word_counts):
    pieces, pairs = Counter(), Counter()
    for word, split in splits.items():
        n = word_counts[word]
        for piece in split:
            pieces[piece] += n
        for i in range(len(split) - 1):
            pairs[(split[i], split[i + 1])] += n
    return pieces, pairs


def best_merge(piece_counts, pair_counts, score="likelihood"):
    def key(pair):
        count = pair_counts[pair]
        value = count / (piece_counts[pair[0]] * piece_counts[pair[1]]) if score == "likelihood" else float(count)
        return (-value, -count, pair)
    left, right = min(pair_counts, key=key)
    count = pair_counts[(left, right)]
    return Merge(left, right, left + right[2:], -key((left, right))[0], count)


def merge_pair(split, left, right):
    out, i = [], 0
    while i < len(split):
        if i + 1 < len(split) and split[i] == left and split[i + 1] == right:
            out.append(left + right[2:])
            i += 2
        else:
            out.append(split[i])
            i += 1
    return out
'''


def changed(old, new):
    assert old in GOOD, old
    return GOOD.replace(old, new)


MISTAKES = [
    Mistake(E, "piece counts not weighted", changed("pieces[piece] += n", "pieces[piece] += 1"),
            diagnosis=r"piece counts are not weighted"),
    Mistake(E, "pair counts not weighted", changed("pairs[(split[i], split[i + 1])] += n",
                                                   "pairs[(split[i], split[i + 1])] += 1"),
            diagnosis=r"pair counts are not weighted"),
    Mistake(E, "a pair counted once per word", changed(
        "        for i in range(len(split) - 1):\n            pairs[(split[i], split[i + 1])] += n",
        "        for pair in set(zip(split, split[1:])):\n            pairs[pair] += n"),
        diagnosis=r"occurs twice in one word counts twice"),
    Mistake(E, "pairs skip the first piece", changed("for i in range(len(split) - 1):", "for i in range(1, len(split) - 1):"),
            diagnosis=r"skip the first piece"),
    Mistake(E, "score with the sum of the counts", changed(
        "count / (piece_counts[pair[0]] * piece_counts[pair[1]])", "count / (piece_counts[pair[0]] + piece_counts[pair[1]])"),
        diagnosis=r"product"),
    Mistake(E, "ties ignore the count", changed("return (-value, -count, pair)", "return (-value, pair)"),
            diagnosis=r"larger count\(a b\) decides first"),
    Mistake(E, "ties compare the right part first", changed("return (-value, -count, pair)",
                                                            "return (-value, -count, pair[1], pair[0])"),
            diagnosis=r"comparing left first"),
    Mistake(E, "ties go to the last pair", changed(
        "    left, right = min(pair_counts, key=key)",
        "    best = min(key(p)[:2] for p in pair_counts)\n"
        "    left, right = max(p for p in pair_counts if key(p)[:2] == best)"),
        diagnosis=r"alphabetically \*last\*"),
    Mistake(E, "frequency score ignored", changed("if score == \"likelihood\" else float(count)", ""),
            diagnosis=r"other score"),
    Mistake(E, "token keeps the ##", changed("out.append(left + right[2:])", "out.append(left + right)"),
            diagnosis=r"keeps right's \"##\""),
    Mistake(E, "merge token keeps the ##", changed("return Merge(left, right, left + right[2:],", "return Merge(left, right, left + right,"),
            diagnosis=r"the wrong token"),
    Mistake(E, "merging from the right", changed('''    out, i = [], 0
    while i < len(split):
        if i + 1 < len(split) and split[i] == left and split[i + 1] == right:
            out.append(left + right[2:])
            i += 2
        else:
            out.append(split[i])
            i += 1
    return out''', '''    out, i = [], len(split) - 1
    while i >= 0:
        if i >= 1 and split[i - 1] == left and split[i] == right:
            out.insert(0, left + right[2:])
            i -= 2
        else:
            out.insert(0, split[i])
            i -= 1
    return out'''), diagnosis=r"scanning from the right"),
    Mistake(E, "only the first occurrence merged", changed('''    out, i = [], 0
    while i < len(split):''', '''    for i in range(len(split) - 1):
        if split[i] == left and split[i + 1] == right:
            return split[:i] + [left + right[2:]] + split[i + 2:]
    return list(split)
    out, i = [], 0
    while i < len(split):'''), diagnosis=r"only the first occurrence"),
    Mistake(E, "merging in place", changed('''    out, i = [], 0
    while i < len(split):''', '''    i = 0
    while i < len(split) - 1:
        if split[i] == left and split[i + 1] == right:
            split[i:i + 2] = [left + right[2:]]
        i += 1
    return split
    out, i = [], 0
    while i < len(split):'''), diagnosis=r"changed the list it was given"),
]

CORRECT = [
    Mistake(E, "sorted candidates and a string scan", '''
        def count_pairs(splits, word_counts):
            pieces = Counter()
            pairs = Counter()
            for word in sorted(splits):
                pieces.update({p: 0 for p in splits[word]})
                for p in splits[word]:
                    pieces[p] += word_counts[word]
                for a, b in zip(splits[word], splits[word][1:]):
                    pairs[a, b] += word_counts[word]
            return pieces, pairs

        def best_merge(piece_counts, pair_counts, score="likelihood"):
            ranked = []
            for (a, b), c in pair_counts.items():
                s = c / piece_counts[a] / piece_counts[b] if score == "likelihood" else float(c)
                ranked.append((-s, -c, a, b))
            ranked.sort()
            s, c, a, b = ranked[0]
            return Merge(a, b, a + b.removeprefix("##"), -s, -c)

        def merge_pair(split, left, right):
            out, skip = [], False
            for i, piece in enumerate(split):
                if skip:
                    skip = False
                    continue
                if i + 1 < len(split) and piece == left and split[i + 1] == right:
                    out.append(left + right[len("##"):])
                    skip = True
                else:
                    out.append(piece)
            return out
        ''', diagnosis=""),
    Mistake(E, "max with a negated key, recursion for the merge", '''
        def count_pairs(splits, word_counts):
            pieces = Counter(p for w, s in splits.items() for p in s for _ in range(word_counts[w]))
            pairs = Counter()
            for w, s in splits.items():
                pairs.update({pair: 0 for pair in zip(s, s[1:])})
                for pair in zip(s, s[1:]):
                    pairs[pair] += word_counts[w]
            return pieces, pairs

        def best_merge(piece_counts, pair_counts, score="likelihood"):
            def value(pair):
                c = pair_counts[pair]
                return c / (piece_counts[pair[0]] * piece_counts[pair[1]]) if score == "likelihood" else c
            top = max(value(p) for p in pair_counts)
            best = [p for p in pair_counts if value(p) == top]
            most = max(pair_counts[p] for p in best)
            a, b = sorted(p for p in best if pair_counts[p] == most)[0]
            c = pair_counts[(a, b)]
            s = c / (piece_counts[a] * piece_counts[b]) if score == "likelihood" else float(c)
            return Merge(a, b, a + b[2:], s, c)

        def merge_pair(split, left, right):
            if len(split) < 2:
                return list(split)
            if split[0] == left and split[1] == right:
                return [left + right[2:]] + merge_pair(split[2:], left, right)
            return [split[0]] + merge_pair(split[1:], left, right)
        ''', diagnosis=""),
]
