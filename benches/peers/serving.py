"""Serving under load (issue 9), measured from outside through REST on SciFact:

1. Queries during bulk ingest: one client sends single text queries (SciFact claims) at
   concurrency 1 on an idle server, then while two clients ingest SciFact documents in 64-document
   batches at full speed. Targets: query p99 under ingest <= 3x idle p99; ingest throughput with
   the query client running >= 0.9x the same ingest alone.
2. Writes during dumps: a steady single-client ingest of short texts (4 per request) into a
   collection preloaded with every SciFact title, once with an index dump every second and once
   without dumps. Target: write latency p99 with dumps <= 1.5x without.

Every server starts on a fresh data directory. Prints a markdown report and writes it, with the
raw latencies, to --out (serving.md / serving.json). Only the standard library is needed.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402
import scifact  # noqa: E402
import servers  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def ingest(url, collection, docs, clients=2, batch=64):
    """Posts `docs` in `batch`-document requests from `clients` threads; returns docs/s."""
    batches = [docs[i:i + batch] for i in range(0, len(docs), batch)]

    def make_worker():
        client = load.JsonClient(url)
        return (lambda chunk: client.add_documents(collection, chunk)), client.close

    _, wall = load.replay(batches, clients, make_worker)
    return len(docs) / wall


def query_loop(url, collection, claims, stop=None, count=None):
    """Single text queries at concurrency 1: until `stop` is set, or `count` of them."""
    client = load.JsonClient(url)
    latencies, i = [], 0
    while (stop is None or not stop.is_set()) and (count is None or i < count):
        start = time.perf_counter()
        client.call("POST", f"/collections/{collection}/search", {"query": claims[i % len(claims)], "k": 10})
        latencies.append(time.perf_counter() - start)
        i += 1
    client.close()
    return latencies


def queries_under_ingest(binary, workdir, docs, claims, extra):
    server = servers.Akidb(binary, REPO, os.path.join(workdir, "ingest"), extra)
    try:
        client = load.JsonClient(server.url)
        for name in ("alone", "loaded"):
            client.call("POST", "/collections", {"name": name})
        client.add_documents("alone", docs[:64])  # warm every path once
        query_loop(server.url, "alone", claims, count=30)
        idle = query_loop(server.url, "alone", claims, count=len(claims))
        alone_rate = ingest(server.url, "alone", docs[64:])
        stop = threading.Event()
        under = []
        querier = threading.Thread(target=lambda: under.extend(query_loop(server.url, "alone", claims, stop=stop)))
        querier.start()
        time.sleep(0.5)
        loaded_rate = ingest(server.url, "loaded", docs[64:])
        stop.set()
        querier.join()
        client.close()
    finally:
        server.stop()
    return {"idle": load.summary(idle), "under_ingest": load.summary(under), "ingest_alone_docs_s": alone_rate,
            "ingest_with_queries_docs_s": loaded_rate, "idle_ms": [1000 * x for x in idle], "under_ms": [1000 * x for x in under]}


def writes_during_dumps(binary, workdir, titles, texts, dump_interval, seconds, extra):
    server = servers.Akidb(binary, REPO, os.path.join(workdir, f"dumps-{dump_interval}"), ["--dump-interval-secs", str(dump_interval), *extra])
    try:
        client = load.JsonClient(server.url)
        client.call("POST", "/collections", {"name": "steady"})
        ingest(server.url, "steady", titles, clients=2, batch=256)
        latencies, i = [], 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            chunk = [(f"w{i + j}", texts[(i + j) % len(texts)]) for j in range(4)]
            start = time.perf_counter()
            client.add_documents("steady", chunk)
            latencies.append(time.perf_counter() - start)
            i += 4
        client.close()
    finally:
        server.stop()
    return {"summary": load.summary(latencies), "ms": [1000 * x for x in latencies]}


def verdict(ok):
    return "met" if ok else "**missed**"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(REPO, "target", "release", "akidb"))
    parser.add_argument("--docs", type=int, default=1088, help="SciFact documents per ingest run (64 warm the server first)")
    parser.add_argument("--seconds", type=float, default=30, help="length of each steady-ingest run")
    parser.add_argument("--out", default=os.path.join(REPO, "benches", "results"))
    parser.add_argument("--name", default="serving", help="result files are <out>/<name>.md and .json")
    parser.add_argument("--server-arg", action="append", default=[], help="extra flag for every akidb serve (repeat)")
    parser.add_argument("--label", help="what the binary is, for the report (default: this checkout's commit)")
    parser.add_argument("--only", choices=["queries", "dumps"], help="run one half only (for quick checks; writes nothing)")
    args = parser.parse_args()

    corpus = scifact.corpus()
    docs = corpus[:args.docs]
    judged = scifact.qrels()
    claims = [text for _, text in scifact.queries(judged)]
    titles = [(doc_id, text.split(". ")[0][:200]) for doc_id, text in corpus]
    workdir = tempfile.mkdtemp(prefix="akidb-serving-")
    started = time.time()
    try:
        if args.only == "queries":
            q = queries_under_ingest(args.binary, workdir, docs, claims, args.server_arg)
            print(json.dumps({k: v for k, v in q.items() if not k.endswith("_ms")}, indent=1))
            return
        if args.only == "dumps":
            for interval in (100000, 1):
                print(interval, writes_during_dumps(args.binary, workdir, titles, claims, interval, args.seconds, args.server_arg)["summary"])
            return
        q = queries_under_ingest(args.binary, workdir, docs, claims, args.server_arg)
        without = writes_during_dumps(args.binary, workdir, titles, claims, 100000, args.seconds, args.server_arg)
        with_dumps = writes_during_dumps(args.binary, workdir, titles, claims, 1, args.seconds, args.server_arg)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    p99_ratio = q["under_ingest"]["p99_ms"] / q["idle"]["p99_ms"]
    ingest_ratio = q["ingest_with_queries_docs_s"] / q["ingest_alone_docs_s"]
    dump_ratio = with_dumps["summary"]["p99_ms"] / without["summary"]["p99_ms"]
    commit = args.label or "akidb at commit " + subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Serving under load (benches/peers/serving.py)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}. "
        f"Binary: {commit}. Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Run time: {(time.time() - started) / 60:.1f} min. "
        f"Server flags: {' '.join(args.server_arg) or '(defaults)'}.",
        "",
        "| measure | loaded | baseline | ratio | target |",
        "|---|---:|---:|---:|---|",
        f"| text query p50 ms, c=1, during 2-client ingest vs idle | {q['under_ingest']['p50_ms']:.1f} | {q['idle']['p50_ms']:.1f} | "
        f"{q['under_ingest']['p50_ms'] / q['idle']['p50_ms']:.2f}x | (none) |",
        f"| text query p99 ms, c=1, during 2-client ingest vs idle | {q['under_ingest']['p99_ms']:.1f} | {q['idle']['p99_ms']:.1f} | "
        f"{p99_ratio:.2f}x | <= 3x {verdict(p99_ratio <= 3)} |",
        f"| ingest docs/s ({len(docs) - 64} SciFact docs, 2 clients x 64) with the query client vs alone | "
        f"{q['ingest_with_queries_docs_s']:.1f} | {q['ingest_alone_docs_s']:.1f} | {ingest_ratio:.2f}x | >= 0.9x {verdict(ingest_ratio >= 0.9)} |",
        f"| write p50 ms (4 short texts per request), dump every 1 s vs none | {with_dumps['summary']['p50_ms']:.1f} | "
        f"{without['summary']['p50_ms']:.1f} | {with_dumps['summary']['p50_ms'] / without['summary']['p50_ms']:.2f}x | (none) |",
        f"| write p99 ms (4 short texts per request), dump every 1 s vs none | {with_dumps['summary']['p99_ms']:.1f} | "
        f"{without['summary']['p99_ms']:.1f} | {dump_ratio:.2f}x | <= 1.5x {verdict(dump_ratio <= 1.5)} |",
        "",
        f"Queries: {q['idle']['calls']} idle, {q['under_ingest']['calls']} during the ingest. Writes: {without['summary']['calls']} without dumps, "
        f"{with_dumps['summary']['calls']} with, into a collection preloaded with all {len(titles)} SciFact titles.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{args.name}.md"), "w") as f:
        f.write(report)
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as f:
        json.dump({"queries_under_ingest": q, "writes_without_dumps": without, "writes_with_dumps": with_dumps}, f)


if __name__ == "__main__":
    main()
