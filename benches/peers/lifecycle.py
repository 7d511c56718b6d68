"""Issue 21's costs, in one run on one release server (SciFact, 5,183 documents, MiniLM):

* snapshot throughput (MB/s, documents/s) and restore throughput (upload + check + write with
  the graph and BM25 built as it goes), three of each;
* write latency (p50/p99) with and without snapshots running back to back, phases alternating,
  writes of one document with a client vector (the write path, not the model);
* query latency (p50/p99, hybrid, one client) idle and while the collection is re-embedded into
  bge-small (the job is cancelled after the measuring window; its rate is reported).

    python3 benches/peers/lifecycle.py [--binary target/release/akidb] [--out benches/results/lifecycle.json]

Targets: query p99 during a re-embed <= 3x idle; write p99 during a snapshot <= 1.5x without."""
import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scifact  # noqa: E402
from qdrant_overhead import cpu  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Client:
    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)

    def call(self, method, path, body=None, raw=None, headers=None):
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        self.conn.request(method, path, body=data, headers=headers or {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        out = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {out[:300]!r}")
        try:
            return json.loads(out)
        except ValueError:
            return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000


def report(paths, out):
    """benches/results/lifecycle.md from the runs' JSON files."""
    runs = [json.load(open(p)) for p in paths]
    lines = ["# Snapshots, restores and re-embeds: what they cost", "",
             "`python3 benches/peers/lifecycle.py --reuse /tmp/sf-minilm.snapshot --out benches/results/lifecycle-N.json` (three runs), then",
             "`python3 benches/peers/lifecycle.py --report benches/results/lifecycle-*.json`. SciFact (5,183 documents) in a",
             "MiniLM collection, one release server, one client per side. CPU: " + ", ".join(sorted({f"{r['cpu']} ({r['cores']} vCPUs)" for r in runs})) + ".", "",
             "| run | snapshot MB/s | snapshot docs/s | restore MB/s | restore docs/s | write p99 without / during snapshots (ms) | ratio (≤ 1.5) | query p99 idle / during re-embed (ms) | ratio (≤ 3) | re-embed docs/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(runs, 1):
        w, q = r["writes"], r["queries"]
        lines.append(f"| {i} | {r['snapshot']['median_MB_per_s']:.0f} | {r['snapshot']['median_documents_per_s']:,.0f} | {r['restore']['median_MB_per_s']:.1f} | {r['restore']['median_documents_per_s']:,.0f} | "
                     f"{w['without_p99_ms']:.1f} / {w['during_p99_ms']:.1f} | {w['p99_ratio (target <= 1.5)']:.2f} | {q['idle_p99_ms']:.1f} / {q['during_p99_ms']:.1f} | {q['p99_ratio (target <= 3)']:.2f} | {q['reembed_documents_per_s']:.1f} |")
    r = runs[0]
    lines += ["", f"The snapshot file is {r['snapshot']['size_MB']:.1f} MB (texts, metadata and 384-d f32 vectors of every passage). Snapshot and",
              "restore figures are medians of three each per run, through HTTP (a restore: upload, whole-file check, writes with the graph",
              "and BM25 index built as they go). Writes: one document with a client vector per request (the write path, not the model),",
              "phases of 8 s alternating three times, snapshots back to back during the `during` phases. Queries: hybrid, k = 10, SciFact's",
              "test queries one after another from one client, idle before and after, and during the first 45 s of a re-embed of the same",
              "collection into bge-small (then cancelled; the rate is the job's own)."]
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--report":
        return report(sys.argv[2:], os.path.join(REPO, "benches/results/lifecycle.md"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(REPO, "target/release/akidb"))
    parser.add_argument("--out", default=os.path.join(REPO, "benches/results/lifecycle.json"))
    parser.add_argument("--phase-seconds", type=float, default=8.0)
    parser.add_argument("--reembed-seconds", type=float, default=45.0)
    parser.add_argument("--reuse", help="a snapshot file of the ingested corpus: restored instead of ingesting when it exists, written after ingesting when not")
    parser.add_argument("--only", choices=["throughput", "writes", "queries"], action="append", help="run only these parts (default: all)")
    args = parser.parse_args()
    rng = random.Random(7)
    data = tempfile.mkdtemp()
    process = subprocess.Popen([args.binary, "serve", "--port", "0", "--qdrant-port", "0", "--log", "warn", "--data-dir", data,
                                "--model", "minilm-l6-v2,bge-small-en-v1.5"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    address = process.stdout.readline().strip().rsplit("http://", 1)[1]
    c = Client(address)
    while True:
        try:
            c.call("GET", "/ready")
            break
        except Exception:
            time.sleep(0.2)
    result = {"cpu": cpu(), "cores": os.cpu_count(), "binary": args.binary}
    try:
        corpus = scifact.corpus()
        docs = [{"id": doc_id, "text": text} for doc_id, text in corpus]
        parts = set(args.only or ["throughput", "writes", "queries"])
        if args.reuse and os.path.exists(args.reuse):
            with open(args.reuse, "rb") as f:
                c.call("POST", "/collections/sf/snapshots/upload", raw=f.read(), headers={"Content-Type": "application/octet-stream"})
            print(f"restored the corpus from {args.reuse}", flush=True)
        else:
            c.call("POST", "/collections", {"name": "sf", "model": "minilm-l6-v2"})
            started = time.perf_counter()
            for i in range(0, len(docs), 64):
                c.call("POST", "/collections/sf/documents", {"documents": docs[i:i + 64]})
            result["ingest_seconds"] = time.perf_counter() - started
            print(f"ingested {len(docs)} documents in {result['ingest_seconds']:.0f} s", flush=True)
            if args.reuse:
                made = c.call("POST", "/collections/sf/snapshots")
                with open(args.reuse, "wb") as f:
                    f.write(c.call("GET", f"/collections/sf/snapshots/{made['name']}"))

        # Snapshot and restore throughput (sf_r0 is also the write test's collection).
        snaps, restores = [], []
        blob = None
        for i in range(3 if "throughput" in parts else 1):
            started = time.perf_counter()
            made = c.call("POST", "/collections/sf/snapshots")
            seconds = time.perf_counter() - started
            snaps.append({"seconds": seconds, "bytes": made["size"], "documents": made["documents"]})
            if blob is None:
                blob = c.call("GET", f"/collections/sf/snapshots/{made['name']}")
        for i in range(3 if "throughput" in parts else 1):
            started = time.perf_counter()
            answer = c.call("POST", f"/collections/sf_r{i}/snapshots/upload", raw=blob, headers={"Content-Type": "application/octet-stream"})
            seconds = time.perf_counter() - started
            restores.append({"seconds": seconds, "bytes": answer["bytes"], "documents": answer["documents"]})
        mb = lambda r: r["bytes"] / 1e6 / r["seconds"]
        dps = lambda r: r["documents"] / r["seconds"]
        result["snapshot"] = {"runs": snaps, "median_MB_per_s": statistics.median(map(mb, snaps)), "median_documents_per_s": statistics.median(map(dps, snaps)),
                              "size_MB": snaps[0]["bytes"] / 1e6}
        result["restore"] = {"runs": restores, "median_MB_per_s": statistics.median(map(mb, restores)), "median_documents_per_s": statistics.median(map(dps, restores))}
        print(json.dumps({"snapshot": result["snapshot"], "restore": result["restore"]}, indent=1), flush=True)

        # Write latency with and without snapshots running (on a restored copy).
        ids = [d["id"] for d in docs] if "writes" in parts else []
        texts = {d["id"]: d["text"] for d in docs}
        writer = Client(address)
        snapper = Client(address)
        lat = {"without": [], "during": []}
        snapshots_taken = 0
        for phase in (["without", "during"] * 3 if ids else []):
            stop = threading.Event()
            taken = []

            def snap_loop():
                while not stop.is_set():
                    made = snapper.call("POST", "/collections/sf_r0/snapshots")
                    snapper.call("DELETE", f"/collections/sf_r0/snapshots/{made['name']}")
                    taken.append(1)

            thread = threading.Thread(target=snap_loop) if phase == "during" else None
            if thread:
                thread.start()
                time.sleep(0.05)
            end = time.perf_counter() + args.phase_seconds
            while time.perf_counter() < end:
                doc_id = rng.choice(ids)
                vector = [rng.gauss(0, 1) for _ in range(384)]
                started = time.perf_counter()
                writer.call("POST", "/collections/sf_r0/documents", {"documents": [{"id": doc_id, "text": texts[doc_id], "vector": vector}]})
                lat[phase].append(time.perf_counter() - started)
            stop.set()
            if thread:
                thread.join()
                snapshots_taken += len(taken)
        result["writes"] = {} if not ids else {
            "without_p50_ms": pct(lat["without"], 50), "without_p99_ms": pct(lat["without"], 99), "without_n": len(lat["without"]),
            "during_p50_ms": pct(lat["during"], 50), "during_p99_ms": pct(lat["during"], 99), "during_n": len(lat["during"]),
            "snapshots_taken_during": snapshots_taken,
        }
        if ids:
            result["writes"]["p99_ratio (target <= 1.5)"] = result["writes"]["during_p99_ms"] / result["writes"]["without_p99_ms"]
        print(json.dumps(result["writes"], indent=1), flush=True)

        # Query latency idle and during a re-embed of the same collection into bge-small.
        judged = scifact.qrels(split="test")
        queries = [text for _, text in scifact.queries(judged)]
        asker = Client(address)

        def ask(n_seconds, until=None):
            times = []
            end = time.perf_counter() + n_seconds
            i = 0
            while time.perf_counter() < end and (until is None or not until()):
                q = queries[i % len(queries)]
                i += 1
                started = time.perf_counter()
                asker.call("POST", "/collections/sf/search", {"query": q, "k": 10})
                times.append(time.perf_counter() - started)
            return times

        if "queries" not in parts:
            return print(json.dumps(result, indent=2))
        ask(3)  # warm
        idle = ask(args.reembed_seconds / 2)
        job = c.call("POST", "/collections/sf/reembed", {"model": "bge-small-en-v1.5"})
        during = ask(args.reembed_seconds)
        status = c.call("GET", f"/jobs/{job['id']}")
        c.call("DELETE", f"/jobs/{job['id']}")
        idle_after = ask(args.reembed_seconds / 2)
        idle_all = idle + idle_after
        result["queries"] = {
            "idle_p50_ms": pct(idle_all, 50), "idle_p99_ms": pct(idle_all, 99), "idle_n": len(idle_all),
            "during_p50_ms": pct(during, 50), "during_p99_ms": pct(during, 99), "during_n": len(during),
            "reembed_documents_done": status["documents_done"], "reembed_documents_per_s": status["rate_per_second"],
            "reembed_eta_s_for_the_rest": status["eta_seconds"],
        }
        result["queries"]["p99_ratio (target <= 3)"] = result["queries"]["during_p99_ms"] / result["queries"]["idle_p99_ms"]
        print(json.dumps(result["queries"], indent=1), flush=True)
    finally:
        process.terminate()
        process.wait()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
