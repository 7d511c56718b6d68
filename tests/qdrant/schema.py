"""Answers of akidb's Qdrant-compatible listener validate against Qdrant's published OpenAPI
schema (1.19.0, in ../shared/reference): each request below is made over raw HTTP and its
answer checked against the schema of that route's 200 (or error) response."""
import json
import re
import sys
import urllib.request
import urllib.error

import jsonschema

URL, SPEC = sys.argv[1], sys.argv[2]
spec = json.load(open(SPEC))


def openapi_to_jsonschema(node):
    """OpenAPI 3.0's `nullable: true` as JSON Schema's null type."""
    if isinstance(node, dict):
        node = {k: openapi_to_jsonschema(v) for k, v in node.items()}
        if node.pop("nullable", False):
            node = {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [openapi_to_jsonschema(v) for v in node]
    return node


components = openapi_to_jsonschema(spec["components"])


def route_of(method, path):
    for template, ops in spec["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in ops:
            return ops[method.lower()]
    return None


def call(method, path, body=None, expect=200):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    if status != expect:
        raise SystemExit(f"{method} {path}: status {status}, expected {expect}: {text[:300]!r}")
    answer = json.loads(text)
    op = route_of(method, path.split("?")[0])
    if op is None:
        # Legacy routes the 1.19 schema no longer lists (clients still call them): the envelope.
        ok = status == 200 and answer.get("status") == "ok" and "result" in answer and "time" in answer
        if not ok and not (status != 200 and "error" in answer.get("status", {})):
            raise SystemExit(f"{method} {path}: not Qdrant's envelope: {answer}")
        print(f"ok {method} {path} -> {status} (legacy route, envelope checked)")
        return answer
    responses = op["responses"]
    schema = responses.get(str(status), responses.get("4XX", responses.get("default")))["content"]["application/json"]["schema"]
    schema = dict(openapi_to_jsonschema(schema), components=components)
    try:
        jsonschema.validate(answer, schema)
    except jsonschema.ValidationError as e:
        raise SystemExit(f"{method} {path}: answer does not match Qdrant's schema: {e.message} at {list(e.absolute_path)}")
    print(f"ok {method} {path} -> {status}")
    return answer


call("PUT", "/collections/schema_c", {"vectors": {"size": 4, "distance": "Cosine"}})
call("PUT", "/collections/schema_n", {"vectors": {"dense": {"size": 4, "distance": "Dot"}}, "sparse_vectors": {"bm25": {"modifier": "idf"}}})
call("GET", "/collections")
call("GET", "/collections/schema_c")
call("GET", "/collections/schema_n")
call("GET", "/collections/schema_c/exists")
call("PATCH", "/collections/schema_c", {"optimizers_config": {"indexing_threshold": 1000}})
call("PUT", "/collections/schema_c/points?wait=true", {"points": [
    {"id": 1, "vector": [1, 0, 0, 0], "payload": {"a": 1, "tags": ["x"]}},
    {"id": "5c56c793-69f3-4fbf-87e6-c4bf54c28c26", "vector": [0, 1, 0, 0], "payload": {"a": 2}},
]})
call("PUT", "/collections/schema_c/points", {"batch": {"ids": [2, 3], "vectors": [[0, 0, 1, 0], [0, 0, 0, 1]], "payloads": [{"a": 3}, {"a": 4}]}})
call("POST", "/collections/schema_c/points", {"ids": [1, 2], "with_vector": True})
call("GET", "/collections/schema_c/points/1")
call("POST", "/collections/schema_c/points/scroll", {"limit": 2, "with_payload": True})
call("POST", "/collections/schema_c/points/count", {"exact": True, "filter": {"must": [{"key": "a", "range": {"gte": 2}}]}})
call("POST", "/collections/schema_c/points/query", {"query": [1, 0.1, 0, 0], "limit": 2, "with_payload": True})
call("POST", "/collections/schema_c/points/query/batch", {"searches": [{"query": [1, 0, 0, 0]}, {"query": 2}]})
call("POST", "/collections/schema_c/points/search", {"vector": [1, 0, 0, 0], "limit": 2})
call("POST", "/collections/schema_c/points/search/batch", {"searches": [{"vector": [1, 0, 0, 0], "limit": 1}]})
call("POST", "/collections/schema_c/points/query/groups", {"query": [1, 0, 0, 0], "group_by": "a", "group_size": 2, "limit": 2, "with_payload": True})
call("POST", "/collections/schema_c/points/search/groups", {"vector": [1, 0, 0, 0], "group_by": "a", "group_size": 1, "limit": 2})
call("POST", "/collections/schema_c/points/recommend", {"positive": [1], "negative": [[0, 0, 0, 1]], "limit": 2})
call("POST", "/collections/schema_c/points/query", {"query": {"recommend": {"positive": [1, 2]}}, "limit": 2})
call("POST", "/collections/schema_c/points/payload?wait=true", {"payload": {"b": 1}, "points": [1]})
call("PUT", "/collections/schema_c/points/payload", {"payload": {"b": 2}, "points": [2]})
call("POST", "/collections/schema_c/points/payload/delete", {"keys": ["b"], "points": [1]})
call("POST", "/collections/schema_c/points/payload/clear", {"points": [2]})
call("PUT", "/collections/schema_c/points/vectors", {"points": [{"id": 3, "vector": [1, 1, 0, 0]}]})
call("POST", "/collections/schema_c/points/batch", {"operations": [{"upsert": {"points": [{"id": 9, "vector": [1, 2, 3, 4]}]}}, {"delete": {"points": [9]}}]})
call("PUT", "/collections/schema_c/index", {"field_name": "a", "field_schema": "integer"})
call("POST", "/collections/aliases", {"actions": [{"create_alias": {"collection_name": "schema_c", "alias_name": "schema_alias"}}]})
call("GET", "/aliases")
call("GET", "/collections/schema_c/aliases")
call("GET", "/collections/schema_alias")
call("POST", "/collections/schema_c/points/delete?wait=true", {"points": [3]})
# Errors keep Qdrant's shape.
call("GET", "/collections/missing", expect=404)
call("PUT", "/collections/schema_c/points", {"points": [{"id": "not-an-id", "vector": [1, 0, 0, 0]}]}, expect=400)
call("PUT", "/collections/schema_c/points", {"points": [{"id": 5, "vector": [1, 0]}]}, expect=400)
call("POST", "/collections/schema_c/points/scroll", {"filter": {"must": [{"key": "a", "geo_radius": {"center": {"lon": 0, "lat": 0}, "radius": 1}}]}}, expect=400)
call("DELETE", "/collections/schema_c")
call("DELETE", "/collections/schema_n")
print("schema: every answer matches Qdrant's schema")
