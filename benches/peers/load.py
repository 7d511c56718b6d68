"""Load generation: a keep-alive JSON client for akidb and a runner that replays a list of calls
from N threads, timing each call on the client's clock (what an application would see)."""
import http.client
import json
import math
import queue
import statistics
import threading
import time
from urllib.parse import urlparse


class JsonClient:
    """One keep-alive HTTP/1.1 connection; not shared between threads."""

    def __init__(self, base_url, timeout=600):
        url = urlparse(base_url)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)

    def call(self, method, path, body=None):
        payload = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if payload is not None else {}
        self.conn.request(method, path, body=payload, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path} -> {response.status}: {data[:300]!r}")
        return json.loads(data) if data else None

    def add_documents(self, collection, docs):
        """POSTs [(id, text)] to akidb as one request."""
        return self.call("POST", f"/collections/{collection}/documents",
                         {"documents": [{"id": doc_id, "text": text} for doc_id, text in docs]})

    def close(self):
        self.conn.close()


def replay(items, concurrency, make_worker):
    """Runs `worker(item)` for every item from `concurrency` threads; `make_worker()` is called
    once per thread (to open that thread's connection) and returns (worker, close).
    Returns (per-call latencies in seconds in completion order, wall seconds)."""
    todo = queue.Queue()
    for item in items:
        todo.put(item)
    latencies, errors, lock = [], [], threading.Lock()
    ready = threading.Barrier(concurrency + 1)

    def thread_main():
        worker, close = make_worker()
        ready.wait()
        try:
            while True:
                try:
                    item = todo.get_nowait()
                except queue.Empty:
                    return
                start = time.perf_counter()
                try:
                    worker(item)
                except Exception as error:  # noqa: BLE001 - reported after the run
                    with lock:
                        errors.append(error)
                    return
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
        finally:
            close()

    threads = [threading.Thread(target=thread_main) for _ in range(concurrency)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} calls failed; first: {errors[0]}")
    return latencies, wall


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(latencies):
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 99),
        "mean_ms": 1000 * statistics.fmean(latencies),
        "calls": len(latencies),
    }


def cpu_name():
    """The CPU's model name (from /proc/cpuinfo), to print beside every figure."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"

