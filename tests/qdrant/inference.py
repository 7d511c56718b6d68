"""Server-side inference through the official client: `cloud_inference=True` Documents, dense and
hybrid (prefetch + RRF fusion, BM25 on a sparse vector name), and the errors for unknown models
and images."""
import sys
import warnings

from qdrant_client import QdrantClient, models

warnings.simplefilter("ignore")
URL = sys.argv[1]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
client = QdrantClient(url=URL, cloud_inference=True, timeout=120)

texts = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The mitochondrion is the powerhouse of the cell.",
    "Rust guarantees memory safety without a garbage collector.",
    "Sourdough bread rises with wild yeast and lactic acid bacteria.",
    "HNSW graphs make approximate nearest neighbour search fast.",
]
name = "inference"
if client.collection_exists(name):
    client.delete_collection(name)
client.create_collection(
    name,
    vectors_config={"dense": models.VectorParams(size=384, distance=models.Distance.COSINE)},
    sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
)
client.upsert(name, points=[
    models.PointStruct(id=i, payload={"i": i}, vector={
        "dense": models.Document(text=t, model=MINILM),
        "bm25": models.Document(text=t, model="Qdrant/bm25"),
    }) for i, t in enumerate(texts)
], wait=True)


def top(points):
    return [p.id for p in points]


dense = client.query_points(name, query=models.Document(text="which organelle makes energy for the cell", model=MINILM), using="dense", limit=2).points
assert top(dense)[0] == 2, f"dense: {dense}"
lexical = client.query_points(name, query=models.Document(text="sourdough yeast", model="Qdrant/bm25"), using="bm25", limit=2).points
assert top(lexical)[0] == 4, f"bm25: {lexical}"
hybrid = client.query_points(name, prefetch=[
    models.Prefetch(query=models.Document(text="memory safe systems language", model=MINILM), using="dense", limit=5),
    models.Prefetch(query=models.Document(text="memory safety garbage collector", model="Qdrant/bm25"), using="bm25", limit=5),
], query=models.FusionQuery(fusion=models.Fusion.RRF), limit=3, with_payload=True).points
assert top(hybrid)[0] == 3 and hybrid[0].payload == {"i": 3}, f"hybrid: {hybrid}"
filtered = client.query_points(name, query=models.Document(text="energy", model=MINILM), using="dense", limit=3,
                               query_filter=models.Filter(must=[models.FieldCondition(key="i", range=models.Range(gte=3))])).points
assert all(p.id >= 3 for p in filtered), filtered
# A text longer than the model's window is split into passages; the point comes back once, found
# by its last passage.
long_text = " ".join(["The committee reviewed the quarterly budget and travel policy."] * 120 + ["Quantum entanglement links the states of two particles."])
client.upsert(name, points=[models.PointStruct(id=10, payload={"i": 10}, vector={"dense": models.Document(text=long_text, model=MINILM)})], wait=True)
found = client.query_points(name, query=models.Document(text="entangled particles in quantum physics", model=MINILM), using="dense", limit=4).points
assert found[0].id == 10 and len({p.id for p in found}) == len(found), f"long document: {found}"
for bad, needle in [(models.Document(text="x", model="no-such-model"), "no-such-model"), (models.Image(image="https://example.com/a.png", model=MINILM), "Image")]:
    try:
        client.query_points(name, query=bad, using="dense")
    except Exception as e:  # the client raises UnexpectedResponse with the server's message
        assert needle in str(e) and "400" in str(e), str(e)
    else:
        raise AssertionError(f"{bad} was accepted")
client.delete_collection(name)
print("inference: dense, bm25 and hybrid Documents answered")
