"""akidb's embedding path against Python onnxruntime + tokenizers, same files, same run.

Runs `cargo bench --bench embed` (criterion; medians land in target/criterion/*/new/estimates.json),
then the same workloads in Python: the same model.onnx and tokenizer.json, padding to the batch's
longest text, mean pooling (MiniLM) or last-token pooling (Qwen3), L2 normalization. Python is
measured with 1 intra-op thread and with ORT's default (all cores); the ratio is against the
faster of the two. Prints a markdown table and writes it to benches/results/embed.md.

Usage (after scripts/setup):  benches/peers/embed_vs_python   (creates .venv, runs this)
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCIFACT = os.path.join(REPO, "..", "shared", "data", "scifact")
WORKLOAD = 32
QWEN_WORKLOAD = 32
SIXTEEN_TOKENS = "The quick brown fox jumps over the lazy dog near the river bank today."
BATCHES = [1, 8, 32]
REPEATS = 10


def jsonl(path, count, doc):
    out = []
    with open(path) as f:
        for line in f:
            if len(out) == count:
                break
            v = json.loads(line)
            out.append(f"{v.get('title', '')} {v['text']}" if doc else v["text"])
    return out


class PythonEmbedder:
    def __init__(self, model_dir, threads, pooling, left_pad, max_tokens, pad_id):
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), opts, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(max_tokens)
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.pooling, self.left_pad, self.pad_id = pooling, left_pad, pad_id

    def embed(self, texts):
        encs = self.tok.encode_batch(texts)
        seq = max(len(e.ids) for e in encs)
        ids = np.full((len(encs), seq), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encs), seq), dtype=np.int64)
        for r, e in enumerate(encs):
            n = len(e.ids)
            s = seq - n if self.left_pad else 0
            ids[r, s:s + n] = e.ids
            mask[r, s:s + n] = 1
        feed = {}
        for name, meta in self.inputs.items():
            if name == "input_ids":
                feed[name] = ids
            elif name == "attention_mask":
                feed[name] = mask
            elif name == "token_type_ids":
                feed[name] = np.zeros_like(ids)
            elif name == "position_ids":
                feed[name] = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
            elif name.startswith("past_key_values."):
                feed[name] = np.zeros((len(encs), meta.shape[1], 0, meta.shape[3]), dtype=np.float32)
        hidden = self.session.run(["last_hidden_state"], feed)[0]
        if self.pooling == "mean":
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        else:
            pooled = hidden[:, -1, :]  # left padding: the last position is every text's last token
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


def python_texts_per_s(embedder, texts, batch):
    for chunk in range(0, len(texts), batch):  # warm-up pass
        embedder.embed(texts[chunk:chunk + batch])
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for chunk in range(0, len(texts), batch):
            embedder.embed(texts[chunk:chunk + batch])
        times.append(time.perf_counter() - start)
    return len(texts) / statistics.median(times)


def akidb_texts_per_s(group, bench, count):
    path = os.path.join(REPO, "target", "criterion", group, bench, "new", "estimates.json")
    with open(path) as f:
        median_ns = json.load(f)["median"]["point_estimate"]
    return count / (median_ns / 1e9)


def main():
    qwen_root = os.environ.get("AKIDB_BENCH_QWEN3_DIR")
    subprocess.run(["cargo", "bench", "--bench", "embed"], cwd=REPO, check=True)
    minilm = os.path.join(REPO, "models", "minilm-l6-v2")
    workloads = [
        ("minilm-docs", minilm, jsonl(os.path.join(SCIFACT, "corpus.jsonl"), WORKLOAD, True), "mean", False, 256, 0),
        ("minilm-queries", minilm, jsonl(os.path.join(SCIFACT, "queries.jsonl"), WORKLOAD, False), "mean", False, 256, 0),
    ]
    if qwen_root:
        for variant in ["int8", "fp32"]:
            workloads.append((f"qwen3-0.6b-{variant}", os.path.join(qwen_root, f"qwen3-0.6b-{variant}"),
                              [SIXTEEN_TOKENS] * QWEN_WORKLOAD, "last_token", True, 8192, 151643))
    rows = []
    for group, model_dir, texts, pooling, left_pad, max_tokens, pad_id in workloads:
        py = {t: PythonEmbedder(model_dir, t, pooling, left_pad, max_tokens, pad_id) for t in (1, 0)}
        for batch in BATCHES:
            ours = {t: akidb_texts_per_s(group, f"b{batch}-t{t}", len(texts)) for t in (1, 2)}
            theirs = {t: python_texts_per_s(py[t], texts, batch) for t in (1, 0)}
            best_ours, best_theirs = max(ours.values()), max(theirs.values())
            rows.append((group, batch, ours[1], ours[2], theirs[1], theirs[0], best_ours / best_theirs,
                         1000 * batch / best_ours))
            print(f"{group} b{batch}: akidb {ours} python {theirs} ratio {best_ours / best_theirs:.2f}", flush=True)
    lines = [
        f"Embedding throughput, texts/s (median of criterion samples / of {REPEATS} Python passes). "
        f"Machine: {platform.machine()}, {os.cpu_count()} vCPUs, {platform.platform()}; "
        f"onnxruntime {ort.__version__} on both sides; date {time.strftime('%Y-%m-%d')}.",
        "",
        "| workload | batch | akidb 1 thr | akidb 2 thr | Python ORT 1 thr | Python ORT default thr | ratio (best/best) | akidb ms per call |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for g, b, o1, o2, p1, p0, ratio, ms in rows:
        lines.append(f"| {g} | {b} | {o1:.1f} | {o2:.1f} | {p1:.1f} | {p0:.1f} | {ratio:.2f}x | {ms:.1f} |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(os.path.join(REPO, "benches", "results"), exist_ok=True)
    with open(os.path.join(REPO, "benches", "results", "embed.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    sys.exit(main())
