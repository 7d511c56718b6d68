"""Where one text query's time goes at concurrency 1: the akidb server on 320 SciFact documents,
one keep-alive client, the 300 SciFact test claims, median / p90 / p99 of each step alone.

Usage (after benches/peers/run):  .venv-peers/bin/python benches/peers/latency_breakdown.py
"""
import os
import shutil
import statistics
import sys
import time

import load
import scifact
import servers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = "minilm-l6-v2"
SHORT = "Vitamin D deficiency is unrelated to birth weight."


def measure(name, call, items):
    for item in items[:20]:
        call(item)
    times = []
    for item in items:
        start = time.perf_counter()
        call(item)
        times.append(1000 * (time.perf_counter() - start))
    print(f"{name:48s} p50 {statistics.median(times):6.2f}  p90 {load.percentile(times, 90):6.2f}  "
          f"p99 {load.percentile(times, 99):6.2f} ms", flush=True)


def main():
    docs = scifact.corpus()[:320]
    claims = scifact.queries(scifact.qrels())
    for threads in ("2", "1"):
        data = os.path.join(REPO, "target", "peers", "latency-data")
        shutil.rmtree(data, ignore_errors=True)
        os.environ["AKIDB_INTRA_THREADS"] = threads
        server = servers.Akidb(os.path.join(REPO, "target", "release", "akidb"), REPO, data)
        try:
            client = load.JsonClient(server.url)
            client.call("POST", "/collections", {"name": "scifact"})
            for i in range(0, len(docs), 32):
                client.add_documents("scifact", docs[i:i + 32])
            vector = client.call("POST", "/v1/embeddings", {"input": SHORT, "model": MODEL})["data"][0]["embedding"]
            print(f"-- intra-op threads: {threads}")
            measure("GET /health", lambda _: client.call("GET", "/health"), claims)
            measure("search by vector (k 10, text + metadata)",
                    lambda _: client.call("POST", "/collections/scifact/search", {"vector": vector, "k": 10}), claims)
            measure("/v1/embeddings, one fixed short sentence",
                    lambda _: client.call("POST", "/v1/embeddings", {"input": SHORT, "model": MODEL}), claims)
            measure("/v1/embeddings, one SciFact claim",
                    lambda q: client.call("POST", "/v1/embeddings", {"input": q[1], "model": MODEL}), claims)
            measure("search by SciFact claim (k 10, text + metadata)",
                    lambda q: client.call("POST", "/collections/scifact/search", {"query": q[1], "k": 10}), claims)
            client.close()
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
