"""Which model and which mode by default (issue 20), measured in one run through REST on BEIR
SciFact: for each bundled model, a collection created with every default (no model given: the
server's `--model`), all 5,183 documents ingested by one client in batches of 32 (docs/s and
tokens embedded/s), then nDCG@10 on the train (809) and test (300) queries for every mode and for
no mode given. For bge-small, also its query instruction (dense, query vectors from
/v1/embeddings of instruction + query) and the hybrid fusion grid on train (rrf_k x dense weight,
lexical weight 1), the best of which is reported on test.

Usage: benches/peers/models [--models a,b] [--no-grid]  (writes benches/results/models.{md,json})
"""
import argparse
import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import load
import scifact
import servers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(REPO, "target", "models-bench")
BATCH = 32
K = 10
MODES = ["dense", "lexical", "hybrid", None]
BGE_INSTRUCTION = "Represent this sentence for searching relevant passages: "
GRID_K = [10, 30, 60]
GRID_DENSE_WEIGHT = [1.0, 1.5, 2.0, 3.0]



def ingest(client, docs):
    tokens, passages = 0, 0
    start = time.perf_counter()
    for i in range(0, len(docs), BATCH):
        response = client.add_documents("scifact", docs[i:i + BATCH])
        tokens += sum(response["tokens"])
        passages += sum(response["passages"])
    seconds = time.perf_counter() - start
    return {"docs": len(docs), "seconds": seconds, "docs_per_s": len(docs) / seconds, "tokens": tokens,
            "tokens_per_s": tokens / seconds, "passages": passages}


def ranked(url, queries, body_of):
    """query id -> [(doc id, score)], two clients (the server has two cores)."""
    def run(chunk):
        client = load.JsonClient(url)
        out = {}
        for query_id, text in chunk:
            hits = client.call("POST", "/collections/scifact/search", body_of(client, text))["results"]
            out[query_id] = [(h["id"], h["score"]) for h in hits]
        client.close()
        return out
    half = len(queries) // 2
    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(run, [queries[:half], queries[half:]]))
    return {**parts[0], **parts[1]}


def text_body(mode, **extra):
    def body(_client, text):
        b = {"query": text, "k": K, "include": [], **extra}
        if mode:
            b["mode"] = mode
        return b
    return body


def instructed_body(model):
    def body(client, text):
        vector = client.call("POST", "/v1/embeddings", {"model": model, "input": [BGE_INSTRUCTION + text]})["data"][0]["embedding"]
        return {"vector": vector, "k": K, "include": []}
    return body


def run_model(binary, model, docs, splits, grid):
    data = os.path.join(WORK, model)
    shutil.rmtree(data, ignore_errors=True)
    server = servers.Akidb(binary, REPO, data, ["--model", model])
    try:
        client = load.JsonClient(server.url)
        client.call("POST", "/collections", {"name": "scifact"})
        info = client.call("GET", "/collections/scifact")
        print(f"{model}: ingesting {len(docs)} documents (collection model {info['model']}, chunking {info['chunking']})", flush=True)
        result = {"collection": {"model": info["model"], "chunking": info["chunking"]}, "ingest": ingest(client, docs)}
        i = result["ingest"]
        print(f"    {i['docs_per_s']:.2f} docs/s, {i['tokens_per_s']:.0f} tokens/s, {i['passages']} passages, {i['seconds']:.0f} s", flush=True)
        result["ndcg_at_10"] = {}
        for split, (judged, queries) in splits.items():
            for mode in MODES:
                score = scifact.ndcg_at_k(ranked(server.url, queries, text_body(mode)), judged, K)
                result["ndcg_at_10"][f"{split}/{mode or 'default'}"] = score
                print(f"    {split} {mode or 'default'}: {score:.4f}", flush=True)
            if model.startswith("bge"):
                score = scifact.ndcg_at_k(ranked(server.url, queries, instructed_body(model)), judged, K)
                result["ndcg_at_10"][f"{split}/dense+instruction"] = score
                print(f"    {split} dense with the query instruction: {score:.4f}", flush=True)
        if grid:
            judged, queries = splits["train"]
            result["grid_train"] = []
            for k in GRID_K:
                for w in GRID_DENSE_WEIGHT:
                    body = text_body("hybrid", rrf_k=k, weights={"dense": w, "lexical": 1.0})
                    score = scifact.ndcg_at_k(ranked(server.url, queries, body), judged, K)
                    result["grid_train"].append({"rrf_k": k, "dense_weight": w, "ndcg_at_10": score})
                    print(f"    train hybrid rrf_k {k} dense weight {w}: {score:.4f}", flush=True)
            best = max(result["grid_train"], key=lambda g: g["ndcg_at_10"])
            judged, queries = splits["test"]
            body = text_body("hybrid", rrf_k=best["rrf_k"], weights={"dense": best["dense_weight"], "lexical": 1.0})
            result["grid_best"] = {**best, "test_ndcg_at_10": scifact.ndcg_at_k(ranked(server.url, queries, body), judged, K)}
            print(f"    best on train {best}; test {result['grid_best']['test_ndcg_at_10']:.4f}", flush=True)
        client.close()
        return result
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--akidb", default=os.path.join(REPO, "target", "release", "akidb"))
    parser.add_argument("--models", default="minilm-l6-v2,bge-small-en-v1.5")
    parser.add_argument("--grid-model", default="bge-small-en-v1.5", help="the model whose fusion is tuned on train")
    parser.add_argument("--no-grid", action="store_true")
    parser.add_argument("--out", default=os.path.join(REPO, "benches", "results"))
    args = parser.parse_args()
    docs = scifact.corpus()
    splits = {}
    for split in ["train", "test"]:
        judged = scifact.qrels(split=split)
        splits[split] = (judged, scifact.queries(judged))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    results = {"commit": commit, "cpu": load.cpu_name(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "documents": len(docs), "queries": {s: len(j) for s, (j, _) in splits.items()}, "models": {}}
    os.makedirs(args.out, exist_ok=True)
    for model in args.models.split(","):
        results["models"][model] = run_model(args.akidb, model, docs, splits, grid=not args.no_grid and model == args.grid_model)
        with open(os.path.join(args.out, "models.json"), "w") as f:
            json.dump(results, f, indent=1)
    write_markdown(results, os.path.join(args.out, "models.md"))
    print(open(os.path.join(args.out, "models.md")).read())


def write_markdown(r, path):
    lines = [f"# Default model and mode, SciFact through REST ({r['date']}, {r['cpu']}, {r['cores']} vCPUs)", "",
             f"Command: `benches/peers/models` (akidb at {r['commit']}, release build). Each model: a collection made with every",
             "default, all documents ingested by one client in batches of 32, then searched with every default but the mode.", "",
             f"## nDCG@10 ({r['documents']} documents; train {r['queries']['train']} queries, test {r['queries']['test']})", "",
             "| model | mode | train | test |", "|---|---|---|---|"]
    for model, m in r["models"].items():
        labels = ["dense", "lexical", "hybrid", "default"] + (["dense+instruction"] if "train/dense+instruction" in m["ndcg_at_10"] else [])
        for mode in labels:
            name = {"default": "no mode given", "dense+instruction": "dense, query instruction"}.get(mode, mode)
            lines.append(f"| {model} | {name} | {m['ndcg_at_10'][f'train/{mode}']:.4f} | {m['ndcg_at_10'][f'test/{mode}']:.4f} |")
    lines += ["", "## Ingest (all documents, one client, batches of 32)", "",
              "| model | docs/s | tokens embedded/s | passages | seconds |", "|---|---|---|---|---|"]
    for model, m in r["models"].items():
        i = m["ingest"]
        lines.append(f"| {model} | {i['docs_per_s']:.2f} | {i['tokens_per_s']:.0f} | {i['passages']} | {i['seconds']:.0f} |")
    for model, m in r["models"].items():
        if "grid_train" in m:
            lines += ["", f"## Hybrid fusion tuned on train ({model}; lexical weight 1)", "", "| rrf_k | dense weight | train nDCG@10 |", "|---|---|---|"]
            for g in m["grid_train"]:
                lines.append(f"| {g['rrf_k']} | {g['dense_weight']} | {g['ndcg_at_10']:.4f} |")
            b = m["grid_best"]
            lines.append(f"\nBest on train: rrf_k {b['rrf_k']}, dense weight {b['dense_weight']} ({b['ndcg_at_10']:.4f}); on test: {b['test_ndcg_at_10']:.4f}.")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
