"""Where MiniLM's run time goes, and what each remaining lever is worth (issue 5).

Both akidb and Chroma run the same graph on the same ONNX Runtime, and the server profile
(profile_server.py) puts 98 % of akidb's ingest CPU inside ONNX Runtime, so the question is the
graph itself. This script, on the first SciFact documents in batches of 4 (akidb's ~1,024-token
model calls):
1. profiles the graph as shipped and as akidb runs it (NaN scrubs removed, see
   src/embed/graph_rewrite.rs; mirrored here with the onnx package) with ONNX Runtime's own
   profiler, time by operator type;
2. measures two sessions x 1 thread (data parallel) against one session x 2 threads;
3. measures dynamic int8 quantization of the activations (MatMulInteger) — the shipped "int8"
   model is weight-only: its int8 initializers are cast to float and constant-folded at load, so
   every product runs in fp32 — with its cosine to today's embeddings (the quality cost).

Usage:  .venv-peers/bin/python benches/peers/ingest_levers.py   (benches/peers/run makes the venv)
"""
import collections
import json
import os
import tempfile
import threading
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

import scifact
from embed_vs_python import PythonEmbedder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MINILM = os.path.join(REPO, "models", "minilm-l6-v2")
DOCS = 96
BATCH = 4


def embedder(threads, model_path=None, profile_dir=None):
    e = PythonEmbedder(MINILM, threads, "mean", False, 256, 0)
    if model_path or profile_dir:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        if profile_dir:
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(profile_dir, "minilm")
        e.session = ort.InferenceSession(model_path or os.path.join(MINILM, "model.onnx"), options,
                                         providers=["CPUExecutionProvider"])
    return e


def docs_per_s(workers, chunks):
    """Every chunk once, `workers` threads pulling from one list; best of 3 passes."""
    best = 0.0
    for _ in range(3):
        todo, lock = list(chunks), threading.Lock()

        def pull(e):
            while True:
                with lock:
                    if not todo:
                        return
                    chunk = todo.pop()
                e.embed(chunk)

        start = time.perf_counter()
        threads = [threading.Thread(target=pull, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        best = max(best, sum(map(len, chunks)) / (time.perf_counter() - start))
    return best


def without_nan_scrubs(scratch):
    """The graph akidb runs: Where(IsNaN(s), c, s) replaced by Identity(s)."""
    model = onnx.load(os.path.join(MINILM, "model.onnx"))
    nodes = model.graph.node
    producer = {out: n for n in nodes for out in n.output}
    checks = set()
    for n in nodes:
        check = producer.get(n.input[0]) if n.op_type == "Where" else None
        if check is not None and check.op_type == "IsNaN" and check.input[0] == n.input[2]:
            checks.add(check.name)
            n.op_type, scrubbed = "Identity", n.input[2]
            del n.input[:]
            n.input.append(scrubbed)
    kept = [n for n in nodes if n.name not in checks]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    path = os.path.join(scratch, "rewritten.onnx")
    onnx.save(model, path)
    return path


def operator_profile(chunks, scratch, model_path, label):
    e = embedder(2, model_path=model_path, profile_dir=scratch)
    for chunk in chunks:
        e.embed(chunk)
    path = e.session.end_profiling()
    by_op = collections.Counter()
    for event in json.load(open(path)):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"]
    total = sum(by_op.values())
    print(f"1. {label}: {total / 1000:.0f} ms in kernels; by operator type (ONNX Runtime profiler, 2 threads):")
    for op, us in by_op.most_common(8):
        print(f"   {op:24s} {100 * us / total:5.1f} %")


def main():
    docs = [text for _, text in scifact.corpus()[:DOCS]]
    chunks = [docs[i:i + BATCH] for i in range(0, DOCS, BATCH)]
    with tempfile.TemporaryDirectory() as scratch:
        operator_profile(chunks, scratch, None, "graph as shipped")
        operator_profile(chunks, scratch, without_nan_scrubs(scratch), "graph as akidb runs it")

        one = embedder(2)
        one.embed(chunks[0])
        baseline = docs_per_s([one], chunks)
        pair = [embedder(1), embedder(1)]
        for e in pair:
            e.embed(chunks[0])
        print("2. data parallel:")
        print(f"   1 session x 2 threads {baseline:.1f} docs/s; 2 sessions x 1 thread "
              f"{docs_per_s(pair, chunks):.1f} docs/s")

        reference = np.concatenate([one.embed(c) for c in chunks])
        folded = os.path.join(scratch, "fp32.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = folded
        ort.InferenceSession(os.path.join(MINILM, "model.onnx"), options, providers=["CPUExecutionProvider"])
        print("3. dynamic int8 activations (quantize_dynamic, MatMulConstBOnly) on the constant-folded graph:")
        print(f"   shipped model: {baseline:.1f} docs/s")
        for weights in (QuantType.QUInt8, QuantType.QInt8):
            quantized = os.path.join(scratch, f"{weights.name}.onnx")
            quantize_dynamic(folded, quantized, weight_type=weights, extra_options={"MatMulConstBOnly": True})
            e = embedder(2, model_path=quantized)
            got = np.concatenate([e.embed(c) for c in chunks])
            cosine = (got * reference).sum(axis=1)
            print(f"   {weights.name} weights: {docs_per_s([e], chunks):.1f} docs/s; cosine to today's "
                  f"embeddings mean {cosine.mean():.4f}, min {cosine.min():.4f}")


if __name__ == "__main__":
    main()
