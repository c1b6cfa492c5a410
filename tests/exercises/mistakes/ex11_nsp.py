"""Learner mistakes in exercise 11 (nsp_pairs): truncation, the coin, B's document, num_unused, the layout."""
from mistakes import Mistake

TRUNCATE = '''
def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    while len(tokens_a) + len(tokens_b) {cmp} max_num_tokens:
        longer = {longer}
        {cut}
'''
TOK = dict(cmp=">", longer="tokens_a if len(tokens_a) > len(tokens_b) else tokens_b",
           cut="if rng.random() < 0.5:\n            del longer[0]\n        else:\n            longer.pop()")


def truncate(**change):
    return TRUNCATE.format(**{**TOK, **change})


PAIR = '''
def create_sentence_pair(chunk, all_documents, document_index, target_seq_length, max_num_tokens, rng):
    a_end = {a_end}
    tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
    if {coin}:
        is_random_next = True
        for _ in range(10):
            other = rng.randint(0, len(all_documents) - 1)
            if {differs}:
                break
        document = all_documents[other]
        tokens_b = []
        for sentence in document[rng.randint(0, len(document) - 1):]:
            tokens_b.extend(sentence)
            if len(tokens_b) >= target_seq_length - len(tokens_a):
                break
        num_unused = {unused}
    else:
        is_random_next = False
        tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
        num_unused = 0
    {truncate}
    tokens = [CLS, *tokens_a, SEP, *tokens_b, SEP]
    segment_ids = {segments}
    return tokens, segment_ids, is_random_next, num_unused
'''
PAIR_OK = dict(a_end="rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1",
               coin="len(chunk) == 1 or rng.random() < 0.5", differs="other != document_index",
               unused="len(chunk) - a_end", truncate="truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)",
               segments="[0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)")


def pair(**change):
    return truncate() + PAIR.format(**{**PAIR_OK, **change})


MISTAKES = [
    Mistake("nsp_pairs", "truncation always at the back", truncate(cut="longer.pop()"),
            diagnosis=r"always trimmed at its back"),
    Mistake("nsp_pairs", "truncation of the shorter segment",
            truncate(longer="tokens_a if len(tokens_a) <= len(tokens_b) else tokens_b"), diagnosis=r"IndexError|\*longer\*"),
    Mistake("nsp_pairs", "truncation of A on a tie",
            truncate(longer="tokens_a if len(tokens_a) >= len(tokens_b) else tokens_b"), diagnosis=r"on a tie"),
    Mistake("nsp_pairs", "truncation into new lists", '''
def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        if len(tokens_a) > len(tokens_b):
            tokens_a = tokens_a[1:] if rng.random() < 0.5 else tokens_a[:-1]
        else:
            tokens_b = tokens_b[1:] if rng.random() < 0.5 else tokens_b[:-1]
''', diagnosis=r"works in place"),
    Mistake("nsp_pairs", "truncation stops one token early", truncate(cmp="> 1 +"), diagnosis=r"limit"),
    Mistake("nsp_pairs", "num_unused = 0 for a random next (the issue's case)", pair(unused="0"),
            diagnosis=r"num_unused counts the chunk's sentences"),
    Mistake("nsp_pairs", "a coin drawn for one-sentence chunks too", pair(coin="rng.random() < 0.5 or len(chunk) == 1"),
            diagnosis=r"another|order|differs"),
    Mistake("nsp_pairs", "one-sentence chunks as actual next", pair(coin="len(chunk) >= 2 and rng.random() < 0.5"),
            diagnosis=r"no actual next to use"),
    Mistake("nsp_pairs", "B from the same document", pair(differs="True"), diagnosis=r"must differ from the chunk's own"),
    Mistake("nsp_pairs", "first [SEP] in segment 1", pair(segments="[0] * (len(tokens_a) + 1) + [1] * (len(tokens_b) + 2)"),
            diagnosis=r"first \[SEP\] belongs to segment 0"),
    Mistake("nsp_pairs", "no truncation", pair(truncate="pass"), diagnosis=r"not truncated"),
    Mistake("nsp_pairs", "A may take the whole chunk", pair(a_end="rng.randint(1, len(chunk)) if len(chunk) >= 2 else 1"),
            diagnosis=r"outside the chunk|differs|B is empty|layout"),
    Mistake("nsp_pairs", "coin inverted (random next when >= 0.5)", pair(coin="len(chunk) == 1 or rng.random() >= 0.5"),
            diagnosis=r"differs from the reference's, although the structure is right"),
]
