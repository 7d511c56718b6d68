"""Issue 20, item 5: do BM25's k1 and b, or the stemmer, deserve other values than akidb's lexical
side uses (tantivy's fixed k1 1.2, b 0.75; English stop words and Snowball stemming)? A plain
Python BM25 over SciFact documents (title + abstract) on the 809 train queries, with and without
stemming, over a k1 x b grid; the figures are relative (its tokenizer is not akidb's identifier
tokenizer, and it scores whole documents, not passages). Needs `snowballstemmer` (pure Python).

Usage: python3 benches/peers/bm25_params.py   (prints a table; benches/results/bm25_params.md)
"""
import collections
import math
import os
import re
import sys
import time

import scifact

try:
    import snowballstemmer
except ImportError:
    sys.exit("pip install snowballstemmer first (a pure-Python Snowball stemmer)")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Lucene's English stop words, the list tantivy's StopWordFilter uses for English.
STOP = set("a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with".split())
WORD = re.compile(r"\w+")
K1 = [0.6, 0.9, 1.2, 1.5, 2.0]
B = [0.4, 0.6, 0.75, 0.9]


def analyzer(stem):
    stemmer = snowballstemmer.stemmer("english")
    def tokens(text):
        words = [w for w in WORD.findall(text.lower()) if w not in STOP]
        return stemmer.stemWords(words) if stem else words
    return tokens


def index(docs, tokens):
    """Postings: term -> [(document, term frequency)]; document lengths in tokens."""
    postings, lengths = collections.defaultdict(list), []
    for i, (_, text) in enumerate(docs):
        tf = collections.Counter(tokens(text))
        lengths.append(sum(tf.values()))
        for term, f in tf.items():
            postings[term].append((i, f))
    return postings, lengths


def search(query, tokens, docs, postings, lengths, k1, b, k=10):
    n, avg = len(docs), sum(lengths) / len(lengths)
    scores = collections.defaultdict(float)
    for term in set(tokens(query)):
        hits = postings.get(term)
        if not hits:
            continue
        idf = math.log(1 + (n - len(hits) + 0.5) / (len(hits) + 0.5))
        for i, f in hits:
            scores[i] += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * lengths[i] / avg))
    best = sorted(scores.items(), key=lambda kv: -kv[1])[:k]
    return [(docs[i][0], s) for i, s in best]


def main():
    docs = scifact.corpus()
    judged = scifact.qrels(split="train")
    queries = scifact.queries(judged)
    rows = []
    for stem in (True, False):
        tokens = analyzer(stem)
        postings, lengths = index(docs, tokens)
        for k1 in K1:
            for b in B:
                ranked = {qid: search(text, tokens, docs, postings, lengths, k1, b) for qid, text in queries}
                score = scifact.ndcg_at_k(ranked, judged, 10)
                rows.append((stem, k1, b, score))
                print(f"stem={stem} k1={k1} b={b}: {score:.4f}", flush=True)
    base = next(r[3] for r in rows if r[0] and r[1] == 1.2 and r[2] == 0.75)
    best = max(rows, key=lambda r: r[3])
    lines = [f"# BM25 parameters and stemming on SciFact train ({time.strftime('%Y-%m-%d', time.gmtime())})", "",
             "Command: `python3 benches/peers/bm25_params.py` (plain Python BM25 over whole documents, 809 train queries; relative figures).", "",
             "| stemming | k1 | " + " | ".join(f"b {b}" for b in B) + " |", "|---|---|" + "---|" * len(B)]
    for stem in (True, False):
        for k1 in K1:
            cells = [f"{r[3]:.4f}" for r in rows if r[0] == stem and r[1] == k1]
            lines.append(f"| {'Snowball' if stem else 'none'} | {k1} | " + " | ".join(cells) + " |")
    lines += ["", f"akidb's setting (Snowball, k1 1.2, b 0.75): {base:.4f}; best: {'Snowball' if best[0] else 'no stemming'}, k1 {best[1]}, b {best[2]}: {best[3]:.4f} ({best[3] - base:+.4f})."]
    with open(os.path.join(REPO, "benches", "results", "bm25_params.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
