"""Where the akidb server spends its CPU under the peer harness's workloads.

Samples the server process with `perf record` (cpu-clock: this VM exposes no hardware counters)
while it (1) ingests SciFact documents in batches of 32 and (2) answers the SciFact test
queries from 16 clients, then prints each phase's profile by library and by symbol, and the
share of samples inside ONNX Runtime. Needs `perf` (Debian: linux-perf).

Usage (after scripts/setup and a release build):  .venv-peers/bin/python benches/peers/profile_server.py
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

import load
import scifact
import servers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(REPO, "target", "peers", "profile")


def perf_report(data, sort, limit, *extra):
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", sort,
                          "--percent-limit", "0.05", *extra], capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.strip() and not line.startswith("#")]
    return rows[:limit]


def profiled(name, pid, work):
    data = os.path.join(WORK, f"{name}.perf.data")
    recorder = subprocess.Popen(["perf", "record", "-q", "-F", "999", "-e", "cpu-clock", "-p", str(pid), "-o", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    recorder.send_signal(signal.SIGINT)
    recorder.wait()
    libraries = perf_report(data, "dso", 12)
    in_ort = sum(float(row.split("%")[0]) for row in libraries if "onnxruntime" in row)
    print(f"\n== {name}: {seconds:.1f} s; samples in ONNX Runtime: {in_ort:.1f} %")
    print("-- by library")
    print("\n".join(libraries))
    # libonnxruntime is stripped, so its symbols are bare addresses; akidb's own are named.
    print("-- akidb's own code, by symbol (share of all samples)")
    print("\n".join(perf_report(data, "sym", 12, "--dsos", "akidb")))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--akidb", default=os.path.join(REPO, "target", "release", "akidb"))
    parser.add_argument("--docs", type=int, default=320)
    args = parser.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed (Debian: apt-get install linux-perf)")
    shutil.rmtree(WORK, ignore_errors=True)
    docs = scifact.corpus()[:args.docs]
    judged = scifact.qrels()
    queries = scifact.queries(judged)
    server = servers.Akidb(args.akidb, REPO, os.path.join(WORK, "data"))
    try:
        client = load.JsonClient(server.url)
        client.call("POST", "/collections", {"name": "scifact"})

        def ingest():
            for i in range(0, len(docs), 32):
                client.add_documents("scifact", docs[i:i + 32])

        def search():
            def make():
                c = load.JsonClient(server.url)
                return (lambda q: c.call("POST", "/collections/scifact/search", {"query": q[1], "k": 10}), c.close)
            load.replay(queries, 16, make)

        profiled("ingest", server.pid, ingest)
        profiled("query-c16", server.pid, search)
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
