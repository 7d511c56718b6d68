"""BEIR SciFact: the corpus, the test queries and their judgements, and nDCG@10 as BEIR computes it."""
import csv
import json
import math
import os

SCIFACT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "scifact")


def corpus(root=SCIFACT):
    """[(doc id, text)] in file order; text is `title + " " + text`, as BEIR indexes it."""
    path = os.path.join(root, "corpus.jsonl")
    if not os.path.exists(path):
        raise SystemExit(f"SciFact corpus missing at {path}: ../shared must sit beside the clone")
    with open(path) as f:
        return [(d["_id"], f"{d.get('title', '')} {d['text']}") for d in map(json.loads, f)]


def qrels(root=SCIFACT, split="test"):
    """{query id: {doc id: relevance}} from qrels/{split}.tsv (header line, tab-separated)."""
    judged = {}
    with open(os.path.join(root, "qrels", f"{split}.tsv")) as f:
        rows = csv.reader(f, delimiter="\t")
        next(rows)
        for query_id, doc_id, score in rows:
            judged.setdefault(query_id, {})[doc_id] = int(score)
    return judged


def queries(judged, root=SCIFACT):
    """[(query id, text)] for the judged queries, in file order."""
    with open(os.path.join(root, "queries.jsonl")) as f:
        return [(q["_id"], q["text"]) for q in map(json.loads, f) if q["_id"] in judged]


def ndcg_at_k(ranked, judged, k=10):
    """Mean nDCG@k over every judged query, as pytrec_eval's ndcg_cut (BEIR): linear gain,
    log2(rank + 1) discount, ranking by score with ties broken by doc id descending; a query
    with no results scores 0. `ranked` maps query id -> [(doc id, score)]."""
    total = 0.0
    for query_id, relevance in judged.items():
        hits = sorted(ranked.get(query_id, []), key=lambda hit: (hit[1], hit[0]), reverse=True)[:k]
        dcg = sum(relevance.get(doc, 0) / math.log2(rank + 2) for rank, (doc, _) in enumerate(hits))
        ideal = sorted(relevance.values(), reverse=True)[:k]
        idcg = sum(rel / math.log2(rank + 2) for rank, rel in enumerate(ideal))
        total += dcg / idcg if idcg > 0 else 0.0
    return total / len(judged)
