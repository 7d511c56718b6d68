"""Where a search spends its time: akidb's hnsw, usearch (through akidb's wrapper) and hnswlib,
each sampled with `perf record` (cpu-clock: this VM exposes no hardware counters) while it
answers GloVe-50 queries on one thread at ef 10 and ef 64, after its 100k-point build.

Prints and writes benches/results/profile-index.md: per run, the QPS, the split of samples into
distance kernels, graph traversal (the walk, its heaps), visited set, allocation, locks and
everything else, and the top symbols. Needs perf (Debian: linux-perf) and hnswlib in .venv.
Usage: .venv/bin/python benches/peers/profile_index.py [SECONDS]
"""
import os
import re
import subprocess
import sys
import tempfile
import time

from machine import cpu

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "target", "release", "examples", "profile_search")

HNSWLIB = r'''
import sys, time, numpy as np, hnswlib
raw = np.load(sys.argv[1], mmap_mode="r")
data = np.ascontiguousarray(raw[:101000], dtype=np.float32)
data /= np.maximum(np.linalg.norm(data, axis=1, keepdims=True), 1e-12)
index = hnswlib.Index(space="ip", dim=50)
index.init_index(max_elements=100000, M=16, ef_construction=200, random_seed=1)
index.add_items(data[:100000], np.arange(100000), num_threads=2)
index.set_num_threads(1)
index.set_ef(int(sys.argv[2]))
queries = data[100000:]
print("built", file=sys.stderr, flush=True)
started, done = time.perf_counter(), 0
while time.perf_counter() - started < float(sys.argv[3]):
    index.knn_query(queries, k=10, num_threads=1)
    done += len(queries)
print(f"hnswlib ef {sys.argv[2]}: {done / (time.perf_counter() - started):.0f} QPS", flush=True)
'''

CATEGORIES = [
    ("distance kernels", r"neg_dot|l2sq|InnerProduct|L2Sqr|simsimd|nk_dot|nk_l2|numkong|_avx512$|_avx2$"),
    ("visited set", r"visit|Visited"),
    ("graph traversal (walk, heaps)", r"search_layer|searchBaseLayer|searchKnn|greedy|BinaryHeap|priority_queue|sorted_buffer|max_heap|search_<|VectorIndex>::search|sift"),
    ("allocation", r"^malloc|_int_free|^free$|^cfree|realloc|_int_malloc|__memset|__memmove|memcpy"),
    ("locks", r"lock|mutex|futex|parking_lot|Condvar"),
]


def sample(command, seconds):
    """Runs `command`, waits for 'built' on its stderr, samples it for `seconds`; returns (stdout, perf report lines)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        while True:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError(f"{command[0]} ended before its build finished")
            if line.startswith("built"):
                break
        subprocess.run(["perf", "record", "-e", "cpu-clock", "-F", "4000", "-o", data, "-p", str(proc.pid), "--", "sleep", str(seconds - 1)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out, _ = proc.communicate()
        report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol", "--percent-limit", "0.3"],
                                check=True, capture_output=True, text=True).stdout
    rows = []
    for line in report.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+\[[.kH]\]\s+(.*)", line)
        if m:
            rows.append((float(m.group(1)), m.group(2).strip()))
    return out.strip(), rows


def split(rows):
    totals = {name: 0.0 for name, _ in CATEGORIES}
    totals["other"] = 0.0
    for share, symbol in rows:
        for name, pattern in CATEGORIES:
            if re.search(pattern, symbol.strip()):
                totals[name] += share
                break
        else:
            totals["other"] += share
    return totals


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    subprocess.run(["cargo", "build", "--release", "--example", "profile_search"], cwd=REPO, check=True)
    npy = os.path.join(REPO, "testdata", "glove_6B_50d_emb.npy")
    runs = []
    for ef in (10, 64):
        for name, command in [("hnsw", [EXAMPLE, "hnsw", str(ef), str(seconds)]), ("usearch", [EXAMPLE, "usearch", str(ef), str(seconds)]),
                              ("hnswlib", [sys.executable, "-c", HNSWLIB, npy, str(ef), str(seconds)])]:
            out, rows = sample(command, seconds)
            runs.append((name, ef, out, rows))
            print(out, flush=True)
    lines = [f"Where one search's time goes: GloVe-50, 100,000 points, M 16, ef_construction 200, one thread, perf cpu-clock samples "
             f"of the search phase only. CPU: {cpu()}; {time.strftime('%Y-%m-%d %H:%M')}. Command: `.venv/bin/python benches/peers/profile_index.py {seconds}`.",
             "", "| run | QPS | " + " | ".join(n for n, _ in CATEGORIES) + " | other |", "|---|---:|" + "---:|" * (len(CATEGORIES) + 1)]
    for name, ef, out, rows in runs:
        qps = re.search(r"([\d.]+) QPS", out)
        totals = split(rows)
        lines.append(f"| {name} ef {ef} | {qps.group(1) if qps else '?'} | " + " | ".join(f"{totals[n]:.0f} %" for n, _ in CATEGORIES) + f" | {totals['other']:.0f} % |")
    lines += ["", "Top symbols per run (share of samples):", ""]
    for name, ef, _, rows in runs:
        lines.append(f"- **{name} ef {ef}**: " + "; ".join(f"{s:.1f} % `{sym[:70]}`" for s, sym in rows[:8]))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(REPO, "benches", "results", "profile-index.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
