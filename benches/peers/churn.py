"""Requests under churn, per graph backend, through REST (issue 18, items 2 and 9).

Two workloads, each on a fresh collection of 20,000 random 32-d unit vectors (no model):

- `churn`: 6 clients search (k 10) while 4 clients overwrite or delete 20 ids at a time, with a
  dump every second. Reports every request's latency; the slowest one is the figure to watch
  (before: 12.5 s on hnsw_rs, 0.2 s on usearch).
- `mixed`: 6 clients search, half of them with a broad filter (50 % of the points pass) at
  ef 128 and half unfiltered at the default ef; no writes. Reports queries per second (before:
  each search asking for another ef changed usearch's index-wide breadth under an exclusive lock).

Usage: python3 benches/peers/churn.py [--binary target/release/akidb] [--seconds 60]
       [--backends usearch,hnsw_rs] [--workloads churn,mixed] [--label NAME] [--out FILE.json]
       [--client-timeout 600]
The server runs from the repository root on a temporary data directory, on this machine only.
"""
import argparse
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import load  # noqa: E402
from servers import Akidb  # noqa: E402

DIMS = 32
POINTS = 20_000


def unit(rng):
    v = [rng.uniform(-1, 1) for _ in range(DIMS)]
    n = sum(x * x for x in v) ** 0.5
    return [x / n for x in v]


class Client:
    """One keep-alive connection; every request timed."""

    timeout = 600

    def __init__(self, url):
        host = url.split("://", 1)[1]
        self.conn = http.client.HTTPConnection(host, timeout=Client.timeout)

    def call(self, method, path, body=None):
        payload = None if body is None else json.dumps(body)
        started = time.perf_counter()
        self.conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return elapsed, data


def load(url, name, backend, rng):
    client = Client(url)
    client.call("POST", "/collections", {"name": name, "dims": DIMS, "index": {"backend": backend}})
    for start in range(0, POINTS, 1000):
        docs = [{"id": f"d{i}", "vector": unit(rng), "metadata": {"half": i % 2}} for i in range(start, start + 1000)]
        client.call("POST", f"/collections/{name}/documents", {"documents": docs})


def run_clients(url, name, seconds, searchers, writers, filtered_share):
    stop = time.monotonic() + seconds
    timings = {"search": [], "filtered search": [], "write": []}
    lock = threading.Lock()
    errors = []

    def searcher(seed):
        rng, client, mine = random.Random(seed), Client(url), {"search": [], "filtered search": []}
        try:
            while time.monotonic() < stop:
                filtered = rng.random() < filtered_share
                body = {"vector": unit(rng), "k": 10}
                if filtered:
                    body.update({"where": {"half": 0}, "ef": 128})
                elapsed, _ = client.call("POST", f"/collections/{name}/search", body)
                mine["filtered search" if filtered else "search"].append(elapsed)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        with lock:
            for k, v in mine.items():
                timings[k].extend(v)

    def writer(seed):
        rng, client, mine = random.Random(seed), Client(url), []
        try:
            while time.monotonic() < stop:
                ids = [f"d{rng.randrange(POINTS)}" for _ in range(20)]
                if rng.random() < 0.5:
                    docs = [{"id": i, "vector": unit(rng), "metadata": {"half": rng.randrange(2)}} for i in dict.fromkeys(ids)]
                    elapsed, _ = client.call("POST", f"/collections/{name}/documents", {"documents": docs})
                else:
                    elapsed, _ = client.call("POST", f"/collections/{name}/documents/delete", {"ids": ids})
                mine.append(elapsed)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
        with lock:
            timings["write"].extend(mine)

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(searchers)]
    threads += [threading.Thread(target=writer, args=(100 + i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return timings, errors


def summarize(timings, seconds):
    out = {}
    for kind, values in timings.items():
        if not values:
            continue
        values = sorted(values)
        out[kind] = {
            "requests": len(values),
            "per_second": round(len(values) / seconds, 1),
            "p50_ms": round(1000 * statistics.median(values), 2),
            "p99_ms": round(1000 * values[min(len(values) - 1, int(0.99 * len(values)))], 2),
            "max_ms": round(1000 * values[-1], 1),
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    parser.add_argument("--binary", default=os.path.join(repo, "target", "release", "akidb"))
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--backends", default="usearch,hnsw_rs")
    parser.add_argument("--workloads", default="churn,mixed")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", default="")
    parser.add_argument("--client-timeout", type=float, default=600, help="seconds a client waits for one answer")
    args = parser.parse_args()
    Client.timeout = args.client_timeout
    results = {"label": args.label, "binary": args.binary, "seconds": args.seconds, "cpu": load.cpu_name(), "runs": []}
    for backend in args.backends.split(","):
        for workload in args.workloads.split(","):
            with tempfile.TemporaryDirectory() as data:
                server = Akidb(args.binary, repo, data, ["--model", "none", "--dump-interval-secs", "1", "--request-timeout-secs", "600"])
                try:
                    name = f"bench_{workload}"
                    load(server.url, name, backend, random.Random(7))
                    if workload == "churn":
                        timings, errors = run_clients(server.url, name, args.seconds, searchers=6, writers=4, filtered_share=0.0)
                    else:
                        timings, errors = run_clients(server.url, name, args.seconds, searchers=6, writers=0, filtered_share=0.5)
                finally:
                    server.stop()
            summary = summarize(timings, args.seconds)
            slowest = max((v["max_ms"] for v in summary.values()), default=0.0)
            if errors:
                # A client whose request got no answer within --client-timeout stopped there.
                slowest = max(slowest, 1000 * Client.timeout)
            results["runs"].append({"backend": backend, "workload": workload, "slowest_ms": slowest, "kinds": summary, "failed_clients": len(errors), "first_failure": errors[0] if errors else None})
            failed = f"  {len(errors)} clients failed (first: {errors[0][:120]})" if errors else ""
            print(f"{args.label or 'akidb'} {backend:8} {workload:6} slowest {slowest:8.1f} ms{failed}  " + "  ".join(
                f"{k}: {v['requests']} ({v['per_second']}/s) p50 {v['p50_ms']} p99 {v['p99_ms']} max {v['max_ms']}" for k, v in summary.items()), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)



if __name__ == "__main__":
    main()
