"""400,000 (or 1,000,000) GloVe-50 vectors through the REST API, vectors brought by the client (no
model loaded), default search settings.

Starts the release build (`akidb serve --model none`) on a fresh data directory, creates
`{"name": "glove", "dims": 50, "metric": "cosine"}`, and measures:
- ingest: vectors/s through POST /collections/glove/documents (batches of 1,000, 2 clients);
- memory: the server's RSS after ingest, against the raw data (4 bytes x 50 per vector, plus each
  document's metadata as JSON);
- restart: SIGTERM (the server dumps its index) and start again: seconds from exec to ready
  (the server prints its address once the collection is loaded and /ready answers 200); then
  kill -9 after more writes and start again (dump plus replay from the store);
- search: QPS over HTTP on one client, k 10, default breadth (the server's calibrated ef: the
  bench waits until the collection reports its calibration), unfiltered and filtered at
  0.1 / 1 / 10 / 50 % selectivity, with recall@10 against exact (filtered) search computed here
  with numpy; then p50 / p99 of unfiltered searches from 4 concurrent clients.
Queries are corpus rows plus Gaussian noise (sigma 0.1 per component). Above 400,000 rows the
corpus is GloVe again, each further row a GloVe row plus Gaussian noise (sigma 0.05 per component,
seeded): GloVe has 400,000 rows.
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

from machine import cpu

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
    """The first n rows (past 400,000: GloVe rows again plus noise, sigma 0.05), and queries: rows
    plus Gaussian noise, sigma 0.1."""
    raw = np.load(os.path.join(REPO, "testdata", "glove_6B_50d_emb.npy"), mmap_mode="r")
    glove = np.ascontiguousarray(raw[: min(n, raw.shape[0])], dtype=np.float32)
    rng = np.random.default_rng(1)
    parts = [glove]
    while sum(len(p) for p in parts) < n:
        more = min(n - sum(len(p) for p in parts), len(glove))
        parts.append(glove[:more] + rng.normal(0, 0.05, size=(more, glove.shape[1])).astype(np.float32))
    corpus = np.concatenate(parts) if len(parts) > 1 else glove
    picks = rng.integers(0, n, size=QUERIES)
    queries = corpus[picks] + rng.normal(0, 0.1, size=(QUERIES, corpus.shape[1])).astype(np.float32)
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
        body = {"vector": q.tolist(), "k": 10, "include": []}
        if where is not None:
            body["where"] = where
        status, hits = server.request("POST", "/collections/glove/search", body, conn)
        assert status == 200, hits
        found.append([int(h["id"][1:]) for h in hits["results"]])
    qps = len(queries) / (time.perf_counter() - started)
    recall = float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))
    return qps, recall


def latency(server, queries, clients=4):
    """p50 and p99 (ms) of unfiltered k=10 searches from `clients` concurrent clients."""
    times, lock = [], threading.Lock()

    def run(mine):
        conn = server.connection()
        for q in mine:
            started = time.perf_counter()
            status, _ = server.request("POST", "/collections/glove/search", {"vector": q.tolist(), "k": 10, "include": []}, conn)
            took = time.perf_counter() - started
            assert status == 200
            with lock:
                times.append(took)

    threads = [threading.Thread(target=run, args=(queries[c::clients],)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return np.percentile(times, 50) * 1e3, np.percentile(times, 99) * 1e3


def calibrated(server, n, timeout=600):
    """Waits for the server to measure the collection's default breadth at about its size."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, info = server.request("GET", "/collections/glove")
        points = info["index"].get("calibrated_points") or 0
        if status == 200 and points * 3 >= n * 2:
            return info["index"]
        time.sleep(1)
    raise RuntimeError("the server never calibrated the collection's search breadth")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400_000
    chosen = sys.argv[2] if len(sys.argv) > 2 else None
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=REPO, check=True)
    corpus, queries = load_glove(n)
    ids = np.arange(n)
    truths = {}
    masks = {None: np.ones(n, dtype=bool), **{label: keep(ids) for label, _, keep in FILTERS}}
    tops = {label: [] for label in masks}
    for start in range(0, n, 100_000):
        chunk = corpus[start:start + 100_000]
        scores = queries @ (chunk / np.maximum(np.linalg.norm(chunk, axis=1, keepdims=True), 1e-12)).T
        for label, mask in masks.items():
            masked = np.where(mask[None, start:start + len(chunk)], scores, -np.inf)
            best = np.argsort(-masked, axis=1)[:, :10]
            tops[label].append((np.take_along_axis(masked, best, axis=1), best + start))
    for label, parts in tops.items():
        values = np.concatenate([p[0] for p in parts], axis=1)
        idx = np.concatenate([p[1] for p in parts], axis=1)
        order = np.argsort(-values, axis=1)[:, :10]
        truths[label] = np.take_along_axis(idx, order, axis=1)
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
        calibrated(server, n - keep_back)
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
        index = calibrated(server, n)
        results = [("unfiltered", n, *search_qps(server, queries, truths[None]))]
        for label, where, keep in FILTERS:
            results.append((label, int(keep(ids).sum()), *search_qps(server, queries, truths[label], where)))
        p50, p99 = latency(server, queries)
        rss_after = server.rss()
        status, info = server.request("GET", "/collections/glove")
        memory = info["index"]["memory"]
        server.stop()
        with open(os.path.join(work, "akidb.log")) as f:
            opened = [line.split("phases=")[-1].strip() for line in f if "collection opened" in line]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    unfiltered = results[0][2]
    data = "GloVe-50 vectors" if n <= 400_000 else f"vectors (400,000 GloVe-50 rows, then GloVe rows plus Gaussian noise sigma 0.05)"
    lines = [
        f"{n:,} {data} through REST with vectors supplied (no model loaded), backend {backend}, M 16, ef_construction 200, default search settings. "
        f"CPU: {cpu()}; {time.strftime('%Y-%m-%d %H:%M')}. Command: `benches/peers/scale_rest {n}`.",
        "",
        f"- Ingest: {rate:,.0f} vectors/s (batches of {BATCH:,}, 2 clients, each batch durable and searchable when answered).",
        f"- RSS after ingest: {rss / 1e6:.0f} MB; raw data {raw_bytes / 1e6:.0f} MB (vectors {n * 200 / 1e6:.0f} MB + metadata JSON): "
        f"**{rss / raw_bytes:.2f}x** the raw data. After restart and searches: {rss_after / 1e6:.0f} MB ({rss_after / raw_bytes:.2f}x).",
        f"- Restart to ready: {graceful:.2f} s after SIGTERM (dump written at shutdown); {crashed:.2f} s after kill -9 with 10,000 writes after the last dump.",
        f"- Default breadth: ef {index['search_ef']}, calibrated by the server on {index['calibrated_points']:,} of its points (recall@10 {index['calibrated_recall']:.3f} there; "
        f"post-filtered walks widened as the calibration measured).",
        f"- Unfiltered k=10 searches from 4 concurrent clients: p50 {p50:.2f} ms, p99 {p99:.2f} ms.",
        f"- Where an open's time went (seconds since its start, by phase), after SIGTERM then after kill -9: {opened[-2] if len(opened) >= 2 else '?'}; {opened[-1] if opened else '?'}.",
        f"- Memory after restart and searches, per point: vectors {memory['vectors'] / n:.0f} B, graph {memory['graph'] / n:.0f} B, payload index "
        f"{memory['payload_index'] / n:.1f} B; everything else (sled's cache, at most 64 MB by default; the lexical index; buffers and the allocator's free memory) "
        f"{(rss_after - memory['vectors'] - memory['graph'] - memory['payload_index']) / n:.0f} B; raw data {raw_bytes / n:.0f} B.",
        "",
        "Search over HTTP, one client, k 10, default breadth, 500 queries (rows plus noise sigma 0.1; recall@10 against exact search with the same filter):",
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
