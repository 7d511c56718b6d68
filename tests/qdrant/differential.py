"""The same operations through qdrant-client against akidb's Qdrant-compatible listener and
against the client's own local mode (QdrantClient(":memory:"), the Qdrant team's reference
semantics): counts, scroll order, payloads, vectors and top-k must agree, for every filter kind,
for Cosine, Dot and Euclid collections. Prints one line per check; exits non-zero on the first
disagreement, naming it."""
import math
import random
import sys
import uuid
import warnings

from qdrant_client import QdrantClient, models

warnings.simplefilter("ignore")
URL = sys.argv[1]
DIMS = 8
N = 60

remote = QdrantClient(url=URL, timeout=60)
local = QdrantClient(":memory:")


def fail(message):
    print("DISAGREE:", message)
    sys.exit(1)


def payload_of(i):
    p = {
        "n": i,
        "half": i % 2 == 0,
        "lang": ["en", "de", "fr"][i % 3],
        "tags": [f"t{i % 4}", f"t{i % 5}"] if i % 7 else [],
        "meta": {"lang": ["en", "de"][i % 2], "score": i / 10.0},
        "items": [{"k": i % 3, "v": i}, {"k": (i + 1) % 3, "v": -i}],
        "when": f"2024-01-{(i % 28) + 1:02d}T{i % 24:02d}:00:00Z",
        "text": ["the quick brown fox", "a lazy dog sleeps", "quick thinking wins"][i % 3],
    }
    if i % 5 == 0:
        p["maybe"] = None
    elif i % 5 == 1:
        p["maybe"] = [1, None]
    elif i % 5 == 2:
        p["maybe"] = 3
    return p


def point_id(i):
    return i if i % 4 else str(uuid.UUID(int=i * 7919 + 1))


rng = random.Random(7)
vectors = [[rng.uniform(-1, 1) for _ in range(DIMS)] for _ in range(N)]
points = [models.PointStruct(id=point_id(i), vector=vectors[i], payload=payload_of(i)) for i in range(N)]

F = models.FieldCondition
filters = {
    "none": None,
    "match value": models.Filter(must=[F(key="lang", match=models.MatchValue(value="en"))]),
    "match bool": models.Filter(must=[F(key="half", match=models.MatchValue(value=True))]),
    "match int": models.Filter(must=[F(key="n", match=models.MatchValue(value=12))]),
    "match any": models.Filter(must=[F(key="lang", match=models.MatchAny(any=["de", "fr"]))]),
    "match except": models.Filter(must=[F(key="lang", match=models.MatchExcept(**{"except": ["de"]}))]),
    "array element": models.Filter(must=[F(key="tags", match=models.MatchValue(value="t3"))]),
    "nested key": models.Filter(must=[F(key="meta.lang", match=models.MatchValue(value="de"))]),
    "array of objects": models.Filter(must=[F(key="items[].k", match=models.MatchValue(value=2))]),
    "text": models.Filter(must=[F(key="text", match=models.MatchText(text="quick"))]),
    "phrase": models.Filter(must=[F(key="text", match=models.MatchPhrase(phrase="brown fox"))]),
    "range": models.Filter(must=[F(key="n", range=models.Range(gte=10, lt=30))]),
    "nested range": models.Filter(must=[F(key="meta.score", range=models.Range(gt=2.5))]),
    "datetime range": models.Filter(must=[F(key="when", range=models.DatetimeRange(gte="2024-01-10T00:00:00Z", lt="2024-01-20T00:00:00Z"))]),
    "values_count": models.Filter(must=[F(key="tags", values_count=models.ValuesCount(gte=2))]),
    "is_empty": models.Filter(must=[models.IsEmptyCondition(is_empty=models.PayloadField(key="tags"))]),
    "is_null": models.Filter(must=[models.IsNullCondition(is_null=models.PayloadField(key="maybe"))]),
    "has_id": models.Filter(must=[models.HasIdCondition(has_id=[point_id(i) for i in (1, 4, 5, 8, 33)])]),
    "has_vector": models.Filter(must=[models.HasVectorCondition(has_vector="")]),
    "should": models.Filter(should=[F(key="lang", match=models.MatchValue(value="fr")), F(key="n", range=models.Range(lt=5))]),
    "must_not": models.Filter(must_not=[F(key="lang", match=models.MatchValue(value="en"))]),
    "min_should": models.Filter(min_should=models.MinShould(conditions=[
        F(key="lang", match=models.MatchValue(value="en")),
        F(key="half", match=models.MatchValue(value=True)),
        F(key="n", range=models.Range(gt=30)),
    ], min_count=2)),
    "nested filter": models.Filter(must=[models.Filter(should=[F(key="n", range=models.Range(lt=10)), F(key="n", range=models.Range(gt=50))])]),
    "nested condition": models.Filter(must=[models.NestedCondition(nested=models.Nested(key="items", filter=models.Filter(must=[
        F(key="k", match=models.MatchValue(value=0)), F(key="v", range=models.Range(lt=0))])))]),
}


def ids(records):
    return [r.id for r in records]


def close(a, b, tol=1e-4):
    return all(abs(x - y) <= tol * max(1.0, abs(x)) for x, y in zip(a, b)) and len(a) == len(b)


def scroll_all(client, name, flt):
    out, offset = [], None
    while True:
        page, offset = client.scroll(name, scroll_filter=flt, limit=7, offset=offset, with_payload=True, with_vectors=True)
        out.extend(page)
        if offset is None:
            return out


def compare_state(name, distance):
    for label, flt in filters.items():
        a, b = remote.count(name, count_filter=flt, exact=True).count, local.count(name, count_filter=flt, exact=True).count
        if a != b:
            fail(f"{distance} count [{label}]: akidb {a}, local {b}")
        ra, rb = scroll_all(remote, name, flt), scroll_all(local, name, flt)
        # In Qdrant's order (integers, then UUIDs), page after page.
        if list(map(str, ids(ra))) != list(map(str, ids(rb))):
            fail(f"{distance} scroll [{label}]: akidb {list(map(str, ids(ra)))}, local {list(map(str, ids(rb)))}")
        by_id = {str(r.id): r for r in rb}
        for r in ra:
            other = by_id[str(r.id)]
            if r.payload != other.payload:
                fail(f"{distance} payload of {r.id}: akidb {r.payload}, local {other.payload}")
            if not close(r.vector, other.vector):
                fail(f"{distance} vector of {r.id}: akidb {r.vector}, local {other.vector}")
        for q in (0, 11, 29):
            qa = remote.query_points(name, query=vectors[q], query_filter=flt, limit=5, with_payload=True).points
            qb = local.query_points(name, query=vectors[q], query_filter=flt, limit=5, with_payload=True).points
            if [str(p.id) for p in qa] != [str(p.id) for p in qb]:
                fail(f"{distance} top-5 [{label}] for vector {q}: akidb {[(p.id, p.score) for p in qa]}, local {[(p.id, p.score) for p in qb]}")
            if not close([p.score for p in qa], [p.score for p in qb]):
                fail(f"{distance} scores [{label}]: akidb {[p.score for p in qa]}, local {[p.score for p in qb]}")
    print(f"ok {distance}: {len(filters)} filters agree on count, scroll, payloads, vectors and top-5")


for distance in (models.Distance.COSINE, models.Distance.DOT, models.Distance.EUCLID):
    name = f"diff_{distance.value.lower()}"
    for client in (remote, local):
        if client.collection_exists(name):
            client.delete_collection(name)
        client.create_collection(name, vectors_config=models.VectorParams(size=DIMS, distance=distance))
        client.upsert(name, points=points[: N // 2], wait=True)
        client.upsert(name, points=models.Batch(ids=[p.id for p in points[N // 2:]], vectors=[p.vector for p in points[N // 2:]], payloads=[p.payload for p in points[N // 2:]]), wait=True)
    compare_state(name, distance.value)
    # Writes: each on both, then everything compared again.
    for client in (remote, local):
        client.set_payload(name, payload={"extra": 1}, points=[point_id(1), point_id(4)], wait=True)
        client.set_payload(name, payload={"deep": True}, key="meta", points=models.Filter(must=[F(key="n", range=models.Range(lt=3))]), wait=True)
        client.overwrite_payload(name, payload={"n": 5, "lang": "xx"}, points=[point_id(2)], wait=True)
        client.delete_payload(name, keys=["tags", "meta.score"], points=[point_id(3), point_id(6)], wait=True)
        client.clear_payload(name, points_selector=[point_id(7)], wait=True)
        client.delete(name, points_selector=models.FilterSelector(filter=models.Filter(must=[F(key="n", range=models.Range(gte=55))])), wait=True)
        client.delete(name, points_selector=[point_id(9), point_id(12)], wait=True)
        client.update_vectors(name, points=[models.PointVectors(id=point_id(10), vector=[0.3, -0.2, 0.5, 0.1, -0.7, 0.25, 0.05, -0.4])], wait=True)
        # A zero vector is stored as zero (never refused for its norm, Cosine included).
        client.update_vectors(name, points=[models.PointVectors(id=point_id(11), vector=[0.0] * DIMS)], wait=True)
    compare_state(name, distance.value + " after writes")
    for key in (point_id(1), point_id(8)):
        a, b = remote.retrieve(name, [key], with_vectors=True)[0], local.retrieve(name, [key], with_vectors=True)[0]
        if a.payload != b.payload or not close(a.vector, b.vector):
            fail(f"{distance} retrieve {key}")
    a = remote.query_points(name, query=point_id(5), limit=4).points
    b = local.query_points(name, query=point_id(5), limit=4).points
    if [str(p.id) for p in a] != [str(p.id) for p in b]:
        fail(f"{distance} query by point id: akidb {ids(a)}, local {ids(b)}")
    for positive, negative in (([point_id(5), point_id(20)], []), ([point_id(5)], [point_id(8), [0.1] * DIMS])):
        rec = models.RecommendQuery(recommend=models.RecommendInput(positive=positive, negative=negative))
        a = remote.query_points(name, query=rec, limit=5, query_filter=filters["must_not"]).points
        b = local.query_points(name, query=rec, limit=5, query_filter=filters["must_not"]).points
        if [str(p.id) for p in a] != [str(p.id) for p in b] or not close([p.score for p in a], [p.score for p in b]):
            fail(f"{distance} recommend {positive} / {negative}: akidb {[(p.id, p.score) for p in a]}, local {[(p.id, p.score) for p in b]}")
    for group_by, size, count in (("lang", 2, 3), ("tags", 3, 4), ("meta.lang", 4, 2)):
        a = remote.query_points_groups(name, query=vectors[7], group_by=group_by, group_size=size, limit=count, query_filter=filters["must_not"]).groups
        b = local.query_points_groups(name, query=vectors[7], group_by=group_by, group_size=size, limit=count, query_filter=filters["must_not"]).groups
        shape = lambda groups: [(g.id, [str(h.id) for h in g.hits]) for g in groups]
        if shape(a) != shape(b):
            fail(f"{distance} groups by {group_by}: akidb {shape(a)}, local {shape(b)}")
    for diversity in (0.0, 0.5, 0.9):
        # Not a stored vector: with one, the seed is the query itself and every next score ties.
        mmr = models.NearestQuery(nearest=[0.9, -0.1, 0.3, 0.2, -0.5, 0.4, 0.1, -0.2], mmr=models.Mmr(diversity=diversity, candidates_limit=20))
        a = remote.query_points(name, query=mmr, limit=5).points
        b = local.query_points(name, query=mmr, limit=5).points
        if [str(p.id) for p in a] != [str(p.id) for p in b]:
            fail(f"{distance} mmr diversity {diversity}: akidb {ids(a)}, local {ids(b)}")
    print(f"ok {distance}: query by point id, recommend, groups and MMR agree")
    remote.delete_collection(name)
print("differential: all agree")
