"""Retrieval quality and cost on SciFact through REST (issue 10), in one run:

1. nDCG@10 on the 300 test queries for each search mode (dense, lexical, hybrid) of a default
   collection (passages of <= 254 MiniLM tokens, 1/8 overlap), against the published scores
   (all-MiniLM-L6-v2 0.645, BM25 0.665);
2. ingest cost: all 5,183 documents, docs/s and tokens embedded/s, for this build and (with
   --baseline) a build from before passages, on the same machine in the same run;
3. text-query latency at concurrency 1, dense vs hybrid, modes interleaved round by round.

Usage: benches/peers/retrieval [--baseline PATH_TO_OLD_AKIDB]  (writes benches/results/retrieval.{md,json})
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import time

import load
import scifact
import servers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(REPO, "target", "retrieval-bench")
BATCH = 32
K = 10
TARGETS = {"dense": 0.644, "lexical": 0.66, "hybrid": 0.69}
PUBLISHED = {"dense": 0.645, "lexical": 0.665}


def ingest(client, docs):
    tokens, passages, truncated = 0, 0, 0
    start = time.perf_counter()
    for i in range(0, len(docs), BATCH):
        response = client.add_documents("scifact", docs[i:i + BATCH])
        tokens += sum(response["tokens"])
        passages += sum(response.get("passages", [1] * len(response["tokens"])))
        truncated += sum(response["truncated"])
    seconds = time.perf_counter() - start
    return {"docs": len(docs), "seconds": seconds, "docs_per_s": len(docs) / seconds, "tokens": tokens,
            "tokens_per_s": tokens / seconds, "passages": passages, "truncated_docs": truncated}


def ranked(client, queries, mode):
    out = {}
    for query_id, text in queries:
        body = {"query": text, "k": K, "include": []}
        if mode:
            body["mode"] = mode
        hits = client.call("POST", "/collections/scifact/search", body)["results"]
        out[query_id] = [(h["id"], h["score"]) for h in hits]
    return out


def latency(url, queries, modes, rounds):
    """Every query once per mode per round, the modes alternating, one client."""
    per_mode = {m: [] for m in modes}
    client = load.JsonClient(url)
    for _, text in queries[:16]:
        for m in modes:
            client.call("POST", "/collections/scifact/search", {"query": text, "k": K, "mode": m, "include": []})
    for _ in range(rounds):
        for m in modes:
            for _, text in queries:
                start = time.perf_counter()
                client.call("POST", "/collections/scifact/search", {"query": text, "k": K, "mode": m, "include": []})
                per_mode[m].append(time.perf_counter() - start)
    client.close()
    return {m: load.summary(v) for m, v in per_mode.items()}


def run_server(binary, name, docs, test_queries, judged, modes, latency_rounds):
    data = os.path.join(WORK, name)
    shutil.rmtree(data, ignore_errors=True)
    server = servers.Akidb(binary, REPO, data)
    try:
        client = load.JsonClient(server.url)
        client.call("POST", "/collections", {"name": "scifact"})
        print(f"{name}: ingesting {len(docs)} documents", flush=True)
        result = {"ingest": ingest(client, docs)}
        i = result["ingest"]
        print(f"    {i['docs_per_s']:.2f} docs/s, {i['tokens_per_s']:.0f} tokens/s, {i['passages']} passages, {i['truncated_docs']} truncated", flush=True)
        result["ndcg_at_10"] = {}
        for mode in modes:
            score = scifact.ndcg_at_k(ranked(client, test_queries, mode), judged, K)
            result["ndcg_at_10"][mode or "default"] = score
            print(f"    nDCG@10 {mode or 'default'}: {score:.4f}", flush=True)
        if latency_rounds:
            result["latency_c1"] = latency(server.url, test_queries, [m for m in modes if m], latency_rounds)
            for m, s in result["latency_c1"].items():
                print(f"    c1 {m}: p50 {s['p50_ms']:.1f} ms  p99 {s['p99_ms']:.1f} ms", flush=True)
        client.close()
        return result
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--akidb", default=os.path.join(REPO, "target", "release", "akidb"))
    parser.add_argument("--baseline", help="an akidb binary from before passages (dense only), run on the same corpus")
    parser.add_argument("--latency-rounds", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(REPO, "benches", "results"))
    args = parser.parse_args()
    docs = scifact.corpus()
    judged = scifact.qrels()
    test_queries = scifact.queries(judged)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    results = {"commit": commit, "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "documents": len(docs), "queries": len(judged)}
    if args.baseline:
        results["baseline"] = run_server(args.baseline, "baseline", docs, test_queries, judged, [None], 0)
    results["akidb"] = run_server(args.akidb, "akidb", docs, test_queries, judged, ["dense", "lexical", "hybrid", None], args.latency_rounds)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "retrieval.json"), "w") as f:
        json.dump(results, f, indent=1)
    write_markdown(results, os.path.join(args.out, "retrieval.md"))
    print(open(os.path.join(args.out, "retrieval.md")).read())


def write_markdown(r, path):
    a = r["akidb"]
    lines = [f"# Retrieval on SciFact through REST ({r['date']}, {r['machine']['cpu']}, {r['machine']['cores']} cores)", "",
             f"Command: `benches/peers/retrieval --baseline <an akidb built before passages>` (akidb at {r.get('commit', '?')})", "",
             f"## nDCG@10, {r['queries']} test queries, {r['documents']} documents", "",
             "| mode | nDCG@10 | target | published |", "|---|---|---|---|"]
    for mode in ["dense", "lexical", "hybrid"]:
        score = a["ndcg_at_10"][mode]
        lines.append(f"| {mode} | {score:.4f} | >= {TARGETS[mode]} ({'met' if score >= TARGETS[mode] else '**missed**'}) | {PUBLISHED.get(mode, '-')} |")
    lines.append(f"| default (no mode given) | {a['ndcg_at_10']['default']:.4f} | | |")
    if "baseline" in r:
        lines.append(f"| before passages (dense, one truncated vector per document) | {r['baseline']['ndcg_at_10']['default']:.4f} | | 0.645 |")
    lines += ["", "## Ingest cost (all documents, batches of 32, one client)", "",
              "| build | docs/s | tokens embedded/s | passages | truncated documents |", "|---|---|---|---|---|"]
    for name in ["baseline", "akidb"]:
        if name in r:
            i = r[name]["ingest"]
            lines.append(f"| {name} | {i['docs_per_s']:.2f} | {i['tokens_per_s']:.0f} | {i['passages']} | {i['truncated_docs']} |")
    if "baseline" in r:
        ratio = a["ingest"]["tokens_per_s"] / r["baseline"]["ingest"]["tokens_per_s"]
        lines.append(f"\nTokens/s after / before: {ratio:.3f} (target >= 0.90: {'met' if ratio >= 0.9 else '**missed**'}).")
    if "latency_c1" in a:
        d, h = a["latency_c1"]["dense"], a["latency_c1"]["hybrid"]
        lines += ["", f"## Text-query latency, concurrency 1, {r['queries']} queries x rounds, modes interleaved", "",
                  "| mode | p50 ms | p99 ms |", "|---|---|---|"]
        for m, s in a["latency_c1"].items():
            lines.append(f"| {m} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} |")
        ratio = h["p50_ms"] / d["p50_ms"]
        lines.append(f"\nHybrid p50 / dense p50: {ratio:.2f} (target <= 1.3: {'met' if ratio <= 1.3 else '**missed**'}).")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
