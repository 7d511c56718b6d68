"""Turns one run's results into benches/results/peers.{json,md,png} and prints the table."""
import json
import os

# (what, target, whether higher ratios are better)
TARGETS = {
    "ingest": (1.5, True),
    "query": (0.25, False),
    "embeddings": (0.9, True),
}


def _verdict(ratio, kind):
    target, higher_better = TARGETS[kind]
    met = ratio >= target if higher_better else ratio <= target
    sign = "≥" if higher_better else "≤"
    return f"{sign} {target}× {'met' if met else '**missed**'}"


def rows(results):
    """[(measure, akidb, peer name, peer, ratio text, target verdict)]"""
    out = []
    quality = results.get("quality")
    if quality:
        out.append(("SciFact nDCG@10 (5,183 docs, 300 queries)", f"{quality['ndcg_at_10']:.4f}",
                    "published all-MiniLM-L6-v2", f"{quality['published']:.3f}",
                    f"{quality['ndcg_at_10'] - quality['published']:+.4f}",
                    f"≥ {quality['floor']} {'met' if quality['ndcg_at_10'] >= quality['floor'] else '**missed**'}"))
    ours, theirs = results["ingest"]["akidb"], results["ingest"]["chroma"]
    ratio = ours["docs_per_s"] / theirs["docs_per_s"]
    out.append((f"ingest, docs/s (first {ours['docs']:,} docs)", f"{ours['docs_per_s']:.1f}", "Chroma",
                f"{theirs['docs_per_s']:.1f}", f"{ratio:.2f}×", _verdict(ratio, "ingest")))
    for level in results["query"]["akidb"]:
        for stat in ("p50_ms", "p99_ms"):
            a, c = results["query"]["akidb"][level][stat], results["query"]["chroma"][level][stat]
            out.append((f"text query {stat[:3]} ms, concurrency {level[1:]}", f"{a:.1f}", "Chroma", f"{c:.1f}",
                        f"{a / c:.3f}×", _verdict(a / c, "query")))
    embeddings = results["embeddings"]
    python = embeddings["python_b32"]["texts_per_s"]
    for name, value in embeddings.items():
        if name == "python_b32":
            continue
        per_request = name.rsplit("_x", 1)[1]
        ratio = value["texts_per_s"] / python
        out.append((f"/v1/embeddings, texts/s (16 clients × {per_request} text{'s' if per_request != '1' else ''})",
                    f"{value['texts_per_s']:.1f}", "Python onnxruntime, batch 32", f"{python:.1f}",
                    f"{ratio:.2f}×", _verdict(ratio, "embeddings")))
    return out


def markdown(results):
    setup = results["setup"]
    lines = [
        "# akidb vs peers, one run",
        "",
        f"Machine: {results['machine']}. Date: {results['date']}. Run time: {results['run_minutes']:.1f} min.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + ".",
        "",
        f"Same model files on every side (all-MiniLM-L6-v2 int8 `model.onnx` and `tokenizer.json`). "
        f"Ingest: one client posting batches of {setup['ingest_batch']} SciFact documents in a loop, into a "
        f"fresh server. Queries: the {setup['queries']} SciFact test claims, k = {setup['k']}, each once per "
        f"concurrency level, timed at the client (Chroma embeds the query in its client, akidb in its server). "
        f"Embeddings: {results['embeddings']['python_b32']['texts']} SciFact documents, median of "
        f"{len(results['embeddings']['python_b32']['rounds'])} alternating rounds.",
        "",
        "| measure | akidb | peer | peer's figure | ratio | target |",
        "|---|---:|---|---:|---:|---|",
    ]
    for measure, ours, peer, theirs, ratio, verdict in rows(results):
        lines.append(f"| {measure} | {ours} | {peer} | {theirs} | {ratio} | {verdict} |")
    lines += ["", "Query throughput during the latency runs (queries/s):", ""]
    for level in results["query"]["akidb"]:
        a, c = results["query"]["akidb"][level]["qps"], results["query"]["chroma"][level]["qps"]
        lines.append(f"- concurrency {level[1:]}: akidb {a:.1f}, Chroma {c:.1f}")
    lines += ["", "Chart: `peers.png`; raw figures and every latency: `peers.json`.", ""]
    return "\n".join(lines)


def chart(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, spread) = plt.subplots(1, 2, figsize=(13, 5))
    labels, values, colors = [], [], []
    labels += ["ingest\nakidb", "ingest\nChroma"]
    values += [results["ingest"]["akidb"]["docs_per_s"], results["ingest"]["chroma"]["docs_per_s"]]
    colors += ["tab:blue", "tab:orange"]
    for name, value in results["embeddings"].items():
        labels.append("embed\nPython b32" if name == "python_b32" else f"embed akidb\n16 cl. × {name.rsplit('_x', 1)[1]}")
        values.append(value["texts_per_s"])
        colors.append("tab:green" if name == "python_b32" else "tab:blue")
    bars.bar(range(len(values)), values, color=colors)
    bars.set_xticks(range(len(values)), labels, fontsize=8)
    for x, v in enumerate(values):
        bars.annotate(f"{v:.1f}", (x, v), ha="center", va="bottom", fontsize=8)
    bars.set_ylabel("documents (texts) per second")
    bars.set_title("Throughput (higher is better)")

    data, names = [], []
    for level in results["query"]["akidb"]:
        for system in ("akidb", "chroma"):
            data.append(results["query"][system][level]["latencies_ms"])
            names.append(f"{'akidb' if system == 'akidb' else 'Chroma'}\nc={level[1:]}")
    box = spread.boxplot(data, whis=(1, 99), showfliers=True, patch_artist=True)
    for patch, name in zip(box["boxes"], names):
        patch.set_facecolor("tab:blue" if name.startswith("akidb") else "tab:orange")
    spread.set_xticks(range(1, len(names) + 1), names, fontsize=8)
    spread.set_yscale("log")
    spread.set_ylabel("text-query latency, ms (log scale)")
    spread.set_title("Query latency: box = p25..p75, whiskers = p1..p99")
    fig.suptitle(f"akidb vs peers — {results['machine']} — {results['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "peers.json"), "w") as f:
        json.dump(results, f, indent=1)
    text = markdown(results)
    with open(os.path.join(out_dir, "peers.md"), "w") as f:
        f.write(text)
    chart(results, os.path.join(out_dir, "peers.png"))
    print(text)
