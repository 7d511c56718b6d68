"""LangChain's and LlamaIndex's Qdrant stores, unmodified, on akidb: LangChain's
`QdrantVectorStore` with `OpenAIEmbeddings` pointed at akidb's /v1 (add, search, filters on
`metadata.*`, MMR, delete); LlamaIndex's `QdrantVectorStore` (add, filtered query, delete by
`ref_doc_id`, `get_nodes`)."""
import sys
import uuid
import warnings

warnings.simplefilter("ignore")
NATIVE, QDRANT = sys.argv[1], sys.argv[2]

from langchain_openai import OpenAIEmbeddings
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient, models

texts = [
    ("Sourdough bread rises with wild yeast.", "food"),
    ("A baguette has a crisp crust.", "food"),
    ("Croissants are laminated with butter.", "food"),
    ("Rust guarantees memory safety.", "code"),
    ("HNSW graphs make vector search fast.", "code"),
    ("The Eiffel Tower stands in Paris.", "travel"),
]
embeddings = OpenAIEmbeddings(model="minilm-l6-v2", base_url=NATIVE + "/v1", api_key="unused", check_embedding_ctx_length=False)

# --- LangChain --------------------------------------------------------------------------
ids = [str(uuid.UUID(int=i + 1)) for i in range(len(texts))]
store = QdrantVectorStore.from_texts(
    [t for t, _ in texts], embeddings, metadatas=[{"topic": topic, "n": i} for i, (_, topic) in enumerate(texts)],
    ids=ids, url=QDRANT, collection_name="langchain", force_recreate=True)
hits = store.similarity_search("what makes bread rise", k=2)
assert "Sourdough" in hits[0].page_content and hits[0].metadata["topic"] == "food", hits
code = models.Filter(must=[models.FieldCondition(key="metadata.topic", match=models.MatchValue(value="code"))])
filtered = store.similarity_search("bread", k=3, filter=code)
assert filtered and all(d.metadata["topic"] == "code" for d in filtered), filtered
scored = store.similarity_search_with_score("fast vector search", k=1)
assert "HNSW" in scored[0][0].page_content and 0 < scored[0][1] <= 1.0001, scored
# langchain-qdrant passes lambda_mult to Qdrant as `diversity`.
mmr = store.max_marginal_relevance_search("bread and pastry", k=3, fetch_k=6, lambda_mult=0.9)
assert len(mmr) == 3 and len({d.page_content for d in mmr}) == 3, mmr
plain = store.similarity_search("bread and pastry", k=3)
assert [d.page_content for d in mmr] != [d.page_content for d in plain], "MMR at diversity 0.9 should diversify"
store.add_texts(["Ramen is a noodle soup."], metadatas=[{"topic": "food", "n": 6}], ids=[str(uuid.UUID(int=99))])
assert store.client.count("langchain", exact=True).count == 7
assert store.delete(ids=[ids[0]])
after = store.similarity_search("what makes bread rise", k=6)
assert all("Sourdough" not in d.page_content for d in after), after
print("langchain: add, search, metadata filter, MMR, delete")

# --- LlamaIndex -------------------------------------------------------------------------
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters, VectorStoreQuery
from llama_index.vector_stores.qdrant import QdrantVectorStore as LlamaQdrant

client = QdrantClient(url=QDRANT)
if client.collection_exists("llama"):
    client.delete_collection("llama")
vectors = embeddings.embed_documents([t for t, _ in texts])
nodes = [
    TextNode(text=t, id_=str(uuid.UUID(int=100 + i)), embedding=v, metadata={"topic": topic},
             relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc-{topic}")})
    for i, ((t, topic), v) in enumerate(zip(texts, vectors))
]
vs = LlamaQdrant(collection_name="llama", client=client)
added = vs.add(nodes)
assert len(added) == len(nodes), added
query = embeddings.embed_query("pastry with butter")
result = vs.query(VectorStoreQuery(query_embedding=query, similarity_top_k=2))
assert "Croissants" in result.nodes[0].get_content(), result.nodes
result = vs.query(VectorStoreQuery(query_embedding=query, similarity_top_k=3,
                                   filters=MetadataFilters(filters=[MetadataFilter(key="topic", value="code", operator=FilterOperator.EQ)])))
assert result.nodes and all(n.metadata["topic"] == "code" for n in result.nodes), result.nodes
got = vs.get_nodes(node_ids=[nodes[3].node_id, nodes[4].node_id])
assert sorted(n.node_id for n in got) == sorted([nodes[3].node_id, nodes[4].node_id]), got
vs.delete(ref_doc_id="doc-food")
assert client.count("llama", exact=True).count == 3
left = vs.query(VectorStoreQuery(query_embedding=query, similarity_top_k=6))
assert all(n.metadata["topic"] != "food" for n in left.nodes), left.nodes
print("llamaindex: add, filtered query, delete by ref_doc_id, get_nodes")
