"""400,000 GloVe-50 vectors through the REST API, vectors brought by the client (no model loaded).

Starts the release build (`akidb serve --model none`) on a fresh data directory, creates
`{"name": "glove", "dims": 50, "metric": "cosine"}`, and measures:
- ingest: vectors/s through POST /collections/glove/documents (batches of 1,000, 2 clients);
- memory: the server's RSS after ingest, against the raw data (4 bytes x 50 per vector, plus each
  document's metadata as JSON);
- restart: SIGTERM (the server dumps its index) and start again: seconds from exec to ready
  (the server prints its address once the collection is loaded and /ready answers 200); then
  kill -9 after more writes and start again (dump plus replay from the store);
- search: QPS over HTTP on one client, k 10, ef 64, unfiltered and filtered at 0.1 / 1 / 10 / 50 %
  selectivity, with recall@10 against exact (filtered) search computed here with numpy.
Writes benches/results/scale.md. Usage: benches/peers/scale_rest [N [BACKEND]]   (N defaults to
400000; BACKEND to the server's default)
"""
import http.client
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(REPO, "target", "release", "akidb")
BATCH = 1000
QUERIES = 500
FILTERS = [("0.1%", {"bucket": {"$lt": 1}}, lambda i: i % 1000 < 1), ("1%", {"bucket": {"$lt": 10}}, lambda i: i % 1000 < 10),
           ("10%", {"bucket": {"$lt": 100}}, lambda i: i % 1000 < 100), ("50%", {"bucket": {"$lt": 500}}, lambda i: i % 1000 < 500),
           ("50% keyword", {"parity": "even"}, lambda i: i % 2 == 0)]


def metadata(i):
    return {"bucket": i % 1000, "parity": "even" if i % 2 == 0 else "odd"}


class Server:
    def __init__(self, data_dir):
        self.log = open(os.path.join(data_dir, "akidb.log"), "a")
        started = time.perf_counter()
        self.process = subprocess.Popen([BINARY, "serve", "--port", "0", "--qdrant-port", "0", "--model", "none", "--data-dir", os.path.join(data_dir, "data")],
                                        cwd=REPO, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.process.stdout.readline().strip()
        if not line.startswith("akidb listening on http://"):
            raise RuntimeError(f"akidb did not start: {line!r}")
        self.host, port = line.rsplit("/", 1)[-1].split(":")
        self.port = int(port)
        status, _ = self.request("GET", "/ready")
        self.ready_seconds = time.perf_counter() - started
        assert status == 200, status

    def connection(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=600)

    def request(self, method, path, body=None, connection=None):
        conn = connection or self.connection()
        conn.request(method, path, body=None if body is None else json.dumps(body), headers={"content-type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None

    def rss(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

    def stop(self, hard=False):
        self.process.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        self.process.wait(300)


def load_glove(n):
    """The first n rows, and queries that are not in the corpus: the midpoints of random pairs of
    rows (GloVe has 400,000 rows, all of which the full run ingests)."""
    raw = np.load(os.path.join(REPO, "testdata", "glove_6B_50d_emb.npy"), mmap_mode="r")
    corpus = np.ascontiguousarray(raw[:n], dtype=np.float32)
    unit = corpus / np.maximum(np.linalg.norm(corpus, axis=1, keepdims=True), 1e-12)
    pairs = np.random.default_rng(1).integers(0, n, size=(QUERIES, 2))
    queries = unit[pairs[:, 0]] + unit[pairs[:, 1]]
    return corpus, queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)


def ingest(server, corpus, start, end, clients=2):
    batches = list(range(start, end, BATCH))
    errors = []

    def send(mine):
        conn = server.connection()
        for b in mine:
            docs = [{"id": f"w{i}", "vector": corpus[i].tolist(), "metadata": metadata(i)} for i in range(b, min(b + BATCH, end))]
            status, body = server.request("POST", "/collections/glove/documents", {"documents": docs}, conn)
            if status != 200:
                errors.append((status, body))
                return

    threads = [threading.Thread(target=send, args=(batches[c::clients],)) for c in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"ingest failed: {errors[0]}")
    return (end - start) / (time.perf_counter() - started)


def search_qps(server, queries, truth, where=None):
    conn = server.connection()
    found = []
    started = time.perf_counter()
    for q in queries:
        body = {"vector": q.tolist(), "k": 10, "ef": 64, "include": []}
        if where is not None:
            body["where"] = where
        status, hits = server.request("POST", "/collections/glove/search", body, conn)
        assert status == 200, hits
        found.append([int(h["id"][1:]) for h in hits["results"]])
    qps = len(queries) / (time.perf_counter() - started)
    recall = float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))
    return qps, recall


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400_000
    chosen = sys.argv[2] if len(sys.argv) > 2 else None
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=REPO, check=True)
    corpus, queries = load_glove(n)
    unit = corpus / np.maximum(np.linalg.norm(corpus, axis=1, keepdims=True), 1e-12)
    scores = queries @ unit.T
    ids = np.arange(n)
    truths = {None: np.argsort(-scores, axis=1)[:, :10]}
    for label, _, keep in FILTERS:
        mask = keep(ids)
        masked = np.where(mask[None, :], scores, -np.inf)
        truths[label] = np.argsort(-masked, axis=1)[:, :10]
    raw_bytes = n * 50 * 4 + sum(len(json.dumps(metadata(i))) for i in range(n))

    work = tempfile.mkdtemp(prefix="akidb-scale-")
    try:
        server = Server(work)
        create = {"name": "glove", "dims": 50, "metric": "cosine"}
        if chosen:
            create["index"] = {"backend": chosen}
        status, body = server.request("POST", "/collections", create)
        assert status == 201, body
        backend = body["index"]["backend"]
        keep_back = 10_000
        rate = ingest(server, corpus, 0, n - keep_back)
        rss = server.rss()
        status, info = server.request("GET", "/collections/glove")
        assert info["documents"] == n - keep_back, info
        server.stop()
        server = Server(work)
        graceful = server.ready_seconds
        # More writes, then a crash: the next start loads the dump and replays the rest from the store.
        ingest(server, corpus, n - keep_back, n)
        server.stop(hard=True)
        server = Server(work)
        crashed = server.ready_seconds
        status, info = server.request("GET", "/collections/glove")
        assert info["documents"] == n, info
        results = [("unfiltered", n, *search_qps(server, queries, truths[None]))]
        for label, where, keep in FILTERS:
            results.append((label, int(keep(ids).sum()), *search_qps(server, queries, truths[label], where)))
        rss_after = server.rss()
        server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    unfiltered = results[0][2]
    lines = [
        f"{n:,} GloVe-50 vectors through REST with vectors supplied (no model loaded), backend {backend}, M 16, ef_construction 200. "
        f"Machine: {platform.machine()}, {os.cpu_count()} vCPUs; {time.strftime('%Y-%m-%d')}. Command: `benches/peers/scale_rest {n}`.",
        "",
        f"- Ingest: {rate:,.0f} vectors/s (batches of {BATCH:,}, 2 clients, each batch durable and searchable when answered).",
        f"- RSS after ingest: {rss / 1e6:.0f} MB; raw data {raw_bytes / 1e6:.0f} MB (vectors {n * 200 / 1e6:.0f} MB + metadata JSON): "
        f"**{rss / raw_bytes:.2f}x** the raw data. After restart and searches: {rss_after / 1e6:.0f} MB ({rss_after / raw_bytes:.2f}x).",
        f"- Restart to ready: {graceful:.2f} s after SIGTERM (dump written at shutdown); {crashed:.2f} s after kill -9 with 10,000 writes after the last dump.",
        "",
        "Search over HTTP, one client, k 10, ef 64, 500 queries (recall@10 against exact search with the same filter):",
        "",
        "| filter | matches | QPS | / unfiltered | recall@10 |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, matches, qps, recall in results:
        lines.append(f"| {label} | {matches:,} | {qps:.0f} | {qps / unfiltered:.2f}x | {recall:.3f} |")
    table = "\n".join(lines)
    print(table)
    name = "scale" + ("" if n == 400_000 else f"-{n // 1000}k") + (f"-{chosen}" if chosen else "") + ".md"
    with open(os.path.join(REPO, "benches", "results", name), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
