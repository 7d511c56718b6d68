"""akidb's index against hnswlib on the same GloVe-50 vectors, same M / ef_construction / ef.

Runs `cargo bench --bench search` (writes target/bench-results/search.json), then hnswlib in this
process: same corpus (first N GloVe rows, L2-normalized), same 1,000 queries (the next rows), inner
product space, build on all cores, search on one thread. Prints QPS and recall@10 per ef with the
ratios, and the QPS of each at the smallest ef reaching recall 0.95. Writes benches/results/search.md.
Usage: benches/peers/search_vs_hnswlib   (creates .venv with hnswlib, numpy)
"""
import json
import os
import platform
import subprocess
import time

import hnswlib
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    n = int(os.environ.get("AKIDB_BENCH_N", "100000"))
    subprocess.run(["cargo", "bench", "--bench", "search"], cwd=REPO, check=True, env={**os.environ, "AKIDB_BENCH_N": str(n)})
    with open(os.path.join(REPO, "target", "bench-results", "search.json")) as f:
        ours = json.load(f)
    raw = np.load(os.path.join(REPO, "testdata", "glove_6B_50d_emb.npy"), mmap_mode="r")
    data = np.ascontiguousarray(raw[: n + ours["queries"]], dtype=np.float32)
    data /= np.maximum(np.linalg.norm(data, axis=1, keepdims=True), 1e-12)
    corpus, queries = data[:n], data[n:]
    truth = np.argsort(-(queries @ corpus.T), axis=1)[:, :10]

    index = hnswlib.Index(space="ip", dim=corpus.shape[1])
    index.init_index(max_elements=n, M=ours["m"], ef_construction=ours["ef_construction"], random_seed=1)
    started = time.perf_counter()
    index.add_items(corpus, np.arange(n), num_threads=ours["threads"])
    build = time.perf_counter() - started
    index.set_num_threads(1)

    rows = []
    for row in ours["rows"]:
        index.set_ef(row["ef"])
        started = time.perf_counter()
        labels, _ = index.knn_query(queries, k=10, num_threads=1)
        qps = len(queries) / (time.perf_counter() - started)
        rec = float(np.mean([len(set(l) & set(t)) / 10 for l, t in zip(labels, truth)]))
        rows.append((row["ef"], row["hnsw_rs_qps"], row["index_qps"], row["engine_qps"], qps, row["index_recall"], rec))

    def at_095(pairs):
        ok = [(q, r) for q, r in pairs if r >= 0.95]
        return ok[0][0] if ok else None

    ours_095 = at_095([(r[2], r[5]) for r in rows])
    theirs_095 = at_095([(r[4], r[6]) for r in rows])
    b = ours["build_seconds"]
    lines = [
        f"Vector search, GloVe-50 ({n:,} vectors, {len(queries):,} queries, M {ours['m']}, ef_construction {ours['ef_construction']}), "
        f"queries on 1 thread, builds on {ours['threads']}. Machine: {platform.machine()}, {os.cpu_count()} vCPUs; {time.strftime('%Y-%m-%d')}.",
        "",
        f"Build: hnswlib {build:.1f} s; hnsw_rs alone {b['hnsw_rs']:.1f} s; akidb index {b['index']:.1f} s; akidb engine with sled {b['engine']:.1f} s "
        f"(akidb index / hnswlib = {b['index'] / build:.1f}x the time).",
        f"Index memory: {ours['index_rss_bytes'] / 1e6:.0f} MB RSS for {n:,} vectors ({ours['index_rss_bytes'] / n:.0f} B/vector).",
        "",
        "| ef | hnsw_rs QPS | akidb index QPS | akidb engine QPS | hnswlib QPS | index/hnswlib | index/hnsw_rs | recall@10 akidb | recall@10 hnswlib |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ef, raw_qps, idx, eng, hl, rec_ours, rec_hl in rows:
        lines.append(f"| {ef} | {raw_qps:.0f} | {idx:.0f} | {eng:.0f} | {hl:.0f} | {idx / hl:.2f}x | {idx / raw_qps:.2f}x | {rec_ours:.3f} | {rec_hl:.3f} |")
    if ours_095 and theirs_095:
        lines += ["", f"At recall@10 >= 0.95 (smallest ef that reaches it): akidb index {ours_095:.0f} QPS, hnswlib {theirs_095:.0f} QPS, ratio {ours_095 / theirs_095:.2f}x."]
    lines += ["", "Filtered search (akidb only; 200 queries, k 10; exact = distance to every match, graph = filtered HNSW walk at ef 64):", "",
              "| selectivity | matches | exact QPS | exact recall | graph QPS | graph recall |", "|---:|---:|---:|---:|---:|---:|"]
    for f in ours.get("filters", []):
        lines.append(f"| {f['selectivity'] * 100:.1f}% | {f['matches']:,} | {f['exact_qps']:.0f} | {f['exact_recall']:.3f} | {f['graph_qps']:.0f} | {f['graph_recall']:.3f} |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(os.path.join(REPO, "benches", "results"), exist_ok=True)
    with open(os.path.join(REPO, "benches", "results", "search.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
