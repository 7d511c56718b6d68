"""What the Qdrant-compatible listener costs against akidb's own API, in one run on the same
server and the same data: a nearest-neighbour query (p50 latency), a 1,000-point batch upsert of
client vectors (points/s) and a hybrid Document query (p50 latency).

    python3 benches/peers/qdrant_overhead.py [--binary target/release/akidb] [--out benches/results/qdrant_overhead.json]

Prints the CPU, the medians and the ratios (Qdrant / native); targets: query <= 1.1x, upsert
>= 0.9x, hybrid <= 1.1x."""
import argparse
import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive connection, as the Python clients keep."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=300)

    def call(self, method, path, body=None):
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None


def timed_pair(native_fn, qdrant_fn, n):
    """Both sides alternately, query by query, so that drift in the machine's speed (other
    tenants, frequency) falls on both alike."""
    times = {"native": [], "qdrant": []}
    for i in range(n):
        for side, fn in (("native", native_fn), ("qdrant", qdrant_fn)) if i % 2 == 0 else (("qdrant", qdrant_fn), ("native", native_fn)):
            start = time.perf_counter()
            fn(i)
            times[side].append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(REPO, "target/release/akidb"))
    parser.add_argument("--out", default=os.path.join(REPO, "benches/results/qdrant_overhead.json"))
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    rng = random.Random(1)
    dims, batches = 64, 8
    data = tempfile.mkdtemp()
    qport = free_port()
    process = subprocess.Popen([args.binary, "serve", "--port", "0", "--qdrant-port", str(qport), "--log", "warn", "--data-dir", data],
                               cwd=REPO, stdout=subprocess.PIPE, text=True)
    native_address = process.stdout.readline().strip().rsplit("http://", 1)[1]
    qdrant_address = process.stdout.readline().strip().rsplit("http://", 1)[1]
    native, qdrant = Client(native_address), Client(qdrant_address)
    while True:
        try:
            native.call("GET", "/ready")
            break
        except Exception:
            time.sleep(0.2)
    try:
        native.call("POST", "/collections", {"name": "nat", "dims": dims})
        qdrant.call("PUT", "/collections/qd", {"vectors": {"size": dims, "distance": "Cosine"}})
        vec = lambda: [rng.uniform(-1, 1) for _ in range(dims)]
        upsert = {"native": [], "qdrant": []}
        for b in range(batches):
            ids = range(b * 1000, (b + 1) * 1000)
            vectors = [vec() for _ in ids]
            docs = [{"id": str(i), "vector": v, "metadata": {"n": i}} for i, v in zip(ids, vectors)]
            start = time.perf_counter()
            native.call("POST", "/collections/nat/documents", {"documents": docs})
            upsert["native"].append(1000 / (time.perf_counter() - start))
            start = time.perf_counter()
            qdrant.call("PUT", "/collections/qd/points?wait=true", {"batch": {"ids": list(ids), "vectors": vectors, "payloads": [{"n": i} for i in ids]}})
            upsert["qdrant"].append(1000 / (time.perf_counter() - start))
        queries = [vec() for _ in range(args.queries)]
        nn = timed_pair(
            lambda i: native.call("POST", "/collections/nat/search", {"vector": queries[i], "k": 10}),
            lambda i: qdrant.call("POST", "/collections/qd/points/query", {"query": queries[i], "limit": 10, "with_payload": True}),
            args.queries,
        )
        # Hybrid over texts embedded by the server.
        words = "rust memory safety graph search vector index passage query bread oven yeast tower paris cell energy light plant".split()
        texts = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(300)]
        native.call("POST", "/collections", {"name": "natm"})
        qdrant.call("PUT", "/collections/qdm", {"vectors": {"dense": {"size": 384, "distance": "Cosine"}}, "sparse_vectors": {"bm25": {"modifier": "idf"}}})
        for start in range(0, len(texts), 100):
            chunk = list(enumerate(texts))[start:start + 100]
            native.call("POST", "/collections/natm/documents", {"documents": [{"id": str(i), "text": t} for i, t in chunk]})
            qdrant.call("PUT", "/collections/qdm/points?wait=true", {"points": [{"id": i, "vector": {"dense": {"text": t, "model": "minilm-l6-v2"}, "bm25": {"text": t, "model": "Qdrant/bm25"}}} for i, t in chunk]})
        hq = [" ".join(rng.choice(words) for _ in range(3)) for _ in range(args.queries // 3)]
        hybrid = timed_pair(
            lambda i: native.call("POST", "/collections/natm/search", {"query": hq[i], "mode": "hybrid", "k": 10}),
            lambda i: qdrant.call("POST", "/collections/qdm/points/query", {"prefetch": [
                {"query": {"text": hq[i], "model": "minilm-l6-v2"}, "using": "dense", "limit": 50},
                {"query": {"text": hq[i], "model": "Qdrant/bm25"}, "using": "bm25", "limit": 50}],
                "query": {"fusion": "rrf"}, "limit": 10, "with_payload": True}),
            len(hq),
        )
    finally:
        process.terminate()
        process.wait()
    p50 = lambda xs: statistics.median(xs) * 1000
    result = {
        "cpu": cpu(),
        "binary": args.binary,
        "nn_query_p50_ms": {"native": p50(nn["native"]), "qdrant": p50(nn["qdrant"])},
        "upsert_1000_points_per_s_median": {"native": statistics.median(upsert["native"]), "qdrant": statistics.median(upsert["qdrant"])},
        "hybrid_document_p50_ms": {"native": p50(hybrid["native"]), "qdrant": p50(hybrid["qdrant"])},
    }
    result["ratios"] = {
        "nn_query_p50 (target <= 1.1)": result["nn_query_p50_ms"]["qdrant"] / result["nn_query_p50_ms"]["native"],
        "upsert_rate (target >= 0.9)": result["upsert_1000_points_per_s_median"]["qdrant"] / result["upsert_1000_points_per_s_median"]["native"],
        "hybrid_p50 (target <= 1.1)": result["hybrid_document_p50_ms"]["qdrant"] / result["hybrid_document_p50_ms"]["native"],
    }
    print(json.dumps(result, indent=2))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
