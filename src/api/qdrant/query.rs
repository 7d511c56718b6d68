//! Searches on the Qdrant listener: `/points/query` (nearest by vector, by point id or by
//! `Document`; prefetch with RRF or DBSF fusion), its batch, and the legacy `/points/search`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::reply::{Body, QdrantError, Started};
use super::request::{self, bad, Given, PayloadSelector};
use super::{filter, Ctx};
use crate::api::AppState;
use crate::domain::Metric;
use crate::engine::Filter;
use crate::embed::{EmbedRequest, EmbeddingProvider};
use crate::service::points::{fuse, mmr, FusionKind, PointKey, ScoredRecord};
use crate::service::{Mode, SearchQuery};

/// Qdrant's default RRF constant.
const QDRANT_RRF_K: f32 = 2.0;

/// What a leaf query looks for.
enum Nearest {
    Given(Given),
    Point(PointKey),
    /// Qdrant's `average_vector` recommendation: examples are point ids or vectors.
    Recommend { positive: Vec<Example>, negative: Vec<Example> },
}

enum Example {
    Point(PointKey),
    Vector(Vec<f32>),
}

fn examples(value: Option<&Value>) -> Result<Vec<Example>, QdrantError> {
    let Some(items) = value.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let items = items.as_array().ok_or_else(|| bad("positive / negative take an array of point ids or vectors"))?;
    items
        .iter()
        .map(|item| match item {
            Value::Array(xs) => xs.iter().map(|x| x.as_f64().map(|x| x as f32)).collect::<Option<Vec<f32>>>().map(Example::Vector).ok_or_else(|| bad("an example vector is an array of numbers")),
            id => PointKey::from_json(id).map(Example::Point).map_err(bad),
        })
        .collect()
}

/// `{"positive", "negative", "strategy"}` as a recommendation (average_vector only).
fn parse_recommend(o: &Map<String, Value>) -> Result<Nearest, QdrantError> {
    match o.get("strategy").and_then(Value::as_str) {
        None | Some("average_vector") => {}
        Some(other) => return Err(QdrantError::unsupported(&format!("the {other} recommendation strategy (average_vector is)"))),
    }
    let (positive, negative) = (examples(o.get("positive"))?, examples(o.get("negative"))?);
    if positive.is_empty() {
        return Err(bad("No positive examples given with 'average_vector' strategy"));
    }
    Ok(Nearest::Recommend { positive, negative })
}

/// One query, parsed.
struct Request {
    nearest: Option<Nearest>,
    /// Maximal marginal relevance: (diversity, candidates).
    mmr: Option<(f32, Option<usize>)>,
    fusion: Option<(FusionKind, Option<Vec<f32>>)>,
    prefetch: Vec<Request>,
    filter: Option<Value>,
    limit: usize,
    offset: usize,
    score_threshold: Option<f32>,
}

fn parse_query(ctx: &Ctx, body: &Value, default_limit: usize) -> Result<Request, QdrantError> {
    let mut nearest = None;
    let mut fusion = None;
    let mut mmr = None;
    let using = body.get("using").and_then(Value::as_str);
    match body.get("query") {
        None | Some(Value::Null) => {}
        Some(q) => {
            let q = match q {
                Value::Object(o) if o.contains_key("nearest") => {
                    if let Some(m) = o.get("mmr").filter(|m| !m.is_null()) {
                        let diversity = m.get("diversity").and_then(Value::as_f64).unwrap_or(0.5) as f32;
                        if !(0.0..=1.0).contains(&diversity) {
                            return Err(bad(format!("mmr.diversity must be in 0..=1, got {diversity}")));
                        }
                        let candidates = m.get("candidates_limit").and_then(Value::as_u64).map(|c| c as usize);
                        mmr = Some((diversity, candidates));
                    }
                    &o["nearest"]
                }
                other => other,
            };
            match q {
                Value::Number(_) => nearest = Some(Nearest::Point(PointKey::from_json(q).map_err(bad)?)),
                Value::String(_) => nearest = Some(Nearest::Point(PointKey::from_json(q).map_err(bad)?)),
                Value::Object(o) if o.contains_key("fusion") => {
                    fusion = Some(match o["fusion"].as_str() {
                        Some("rrf") => (FusionKind::Rrf { k: QDRANT_RRF_K }, None),
                        Some("dbsf") => (FusionKind::Dbsf, None),
                        other => return Err(bad(format!("fusion must be rrf or dbsf, got {other:?}"))),
                    })
                }
                Value::Object(o) if o.contains_key("rrf") => {
                    let rrf = &o["rrf"];
                    let k = rrf.get("k").and_then(Value::as_f64).map_or(QDRANT_RRF_K, |k| k as f32);
                    let weights = rrf.get("weights").and_then(Value::as_array).map(|w| w.iter().map(|x| x.as_f64().unwrap_or(1.0) as f32).collect());
                    fusion = Some((FusionKind::Rrf { k }, weights));
                }
                Value::Object(o) if o.get("recommend").is_some_and(Value::is_object) => {
                    nearest = Some(parse_recommend(o["recommend"].as_object().ok_or_else(|| bad("recommend must be an object"))?)?);
                }
                Value::Object(o) if ["discover", "context", "order_by", "formula", "sample", "relevance_feedback"].iter().any(|k| o.contains_key(*k)) => {
                    let kind = o.keys().next().cloned().unwrap_or_default();
                    return Err(QdrantError::unsupported(&format!("the {kind} query")));
                }
                other => {
                    let name = using.map(str::to_owned).or_else(|| ctx.view.vector.clone()).unwrap_or_default();
                    let wrapped = if name.is_empty() { other.clone() } else { json!({ name: other }) };
                    nearest = Some(Nearest::Given(request::vectors(&wrapped, &ctx.view, "query")?));
                }
            }
        }
    }
    let prefetch = match body.get("prefetch") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(|p| parse_query(ctx, p, 10)).collect::<Result<_, _>>()?,
        Some(one) => vec![parse_query(ctx, one, 10)?],
    };
    let leaves: usize = prefetch.iter().map(Request::leaves).sum();
    if leaves > ctx.service.limits.max_batch_queries {
        return Err(bad(format!("at most {} prefetch queries in one query, got {leaves}", ctx.service.limits.max_batch_queries)));
    }
    if fusion.is_some() && prefetch.is_empty() {
        return Err(bad("fusion needs prefetch queries to fuse"));
    }
    if nearest.is_some() && !prefetch.is_empty() {
        return Err(QdrantError::unsupported("re-scoring prefetched points with a nearest query (use fusion)"));
    }
    Ok(Request {
        nearest,
        mmr,
        fusion,
        prefetch,
        filter: body.get("filter").filter(|f| !f.is_null()).cloned(),
        limit: request::usize_field(body, "limit", default_limit)?,
        offset: request::usize_field(body, "offset", 0)?,
        score_threshold: body.get("score_threshold").and_then(Value::as_f64).map(|s| s as f32),
    })
}

impl Request {
    /// Searches this query runs, its prefetches' included.
    fn leaves(&self) -> usize {
        if self.prefetch.is_empty() {
            1
        } else {
            self.prefetch.iter().map(Request::leaves).sum()
        }
    }
}

/// Both filters: a prefetch sees its own and its parent's (Qdrant propagates the outer one).
fn both(a: Option<&Filter>, b: Option<Filter>) -> Option<Filter> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Filter::And(vec![a.clone(), b])),
        (Some(a), None) => Some(a.clone()),
        (None, b) => b,
    }
}

/// Runs a query (recursively through its prefetches); each point once, best first.
fn run<'a>(ctx: &'a Ctx<'a>, q: Request, outer: Option<Filter>, with_vector: bool) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<ScoredRecord>, QdrantError>> + Send + 'a>> {
    Box::pin(async move {
        let clause = match &q.filter {
            Some(f) => filter::parse(f, &ctx.view).map_err(bad)?,
            None => None,
        };
        let own = clause.filter(|c| !c.is_empty()).map(|c| Filter::Condition(Arc::new(c)));
        let mut filter = both(outer.as_ref(), own);
        let wanted = q.offset.saturating_add(q.limit);
        let max_k = ctx.service.limits.max_k;
        if wanted > max_k {
            return Err(bad(format!("limit + offset must be at most {max_k}")));
        }
        let fused = q.fusion.is_some();
        if fused {
            // Resolved once here rather than once per prefetch below.
            if let Some(f) = filter.take() {
                let collection = ctx.collection.clone();
                filter = Some(crate::service::blocking(move || Ok(collection.resolve_filter(&f)?)).await?);
            }
        }
        let mut ranked = if let Some((fusion, weights)) = q.fusion {
            let mut prefetch = q.prefetch;
            let lists = match batched(ctx, &mut prefetch, filter.as_ref()).await? {
                Some(lists) => lists,
                None => {
                    let mut lists = Vec::with_capacity(prefetch.len());
                    for p in prefetch {
                        lists.push(run(ctx, p, filter.clone(), with_vector).await?);
                    }
                    lists
                }
            };
            // DBSF adds scores: l2 distances (lower is better) enter it negated.
            let lists = if fusion == FusionKind::Dbsf && ctx.collection.config.metric == Metric::L2 {
                lists.into_iter().map(|l| l.into_iter().map(|mut r| { r.score = -r.score; r }).collect()).collect()
            } else {
                lists
            };
            fuse(lists, fusion, weights.as_deref())
        } else if let Some(nearest) = q.nearest {
            match q.mmr {
                None => leaf(ctx, nearest, filter, wanted.max(1), with_vector).await?,
                Some((diversity, candidates)) => {
                    // Candidates with their vectors, re-ranked; the offset applies after.
                    let query = query_vector(ctx, &nearest).await?;
                    let candidates = candidates.unwrap_or(wanted).clamp(1, max_k);
                    let mut found = leaf(ctx, nearest, filter, candidates, true).await?;
                    let metric = ctx.collection.config.metric;
                    found = crate::service::blocking(move || Ok(mmr(found, &query, metric, diversity, wanted))).await?;
                    if !with_vector {
                        found.iter_mut().for_each(|r| r.vector = None);
                    }
                    found
                }
            }
        } else if q.prefetch.len() == 1 {
            let Some(p) = q.prefetch.into_iter().next() else { return Ok(Vec::new()) };
            run(ctx, p, filter, with_vector).await?
        } else if !q.prefetch.is_empty() {
            return Err(bad("several prefetches need a fusion query to combine them"));
        } else {
            // No query: points in id order, as Qdrant answers it.
            let (points, _) = ctx.service.points_page(&ctx.collection, filter.clone(), None, wanted).await?;
            let records = ctx.service.with_vectors(&ctx.collection, points, with_vector, false).await?;
            records.into_iter().map(|r| ScoredRecord { key: r.key, score: 0.0, metadata: Some(r.document.metadata), vector: r.vector }).collect()
        };
        if let Some(threshold) = q.score_threshold {
            // Fused scores are higher-is-better whatever the metric.
            let lower_is_better = ctx.collection.config.metric == Metric::L2 && !fused;
            ranked.retain(|r| if lower_is_better { r.score <= threshold } else { r.score >= threshold });
        }
        Ok(ranked.into_iter().skip(q.offset).take(q.limit).collect())
    })
}

/// The vector a nearest query stands for, as the collection compares it (normalized for cosine).
async fn query_vector(ctx: &Ctx<'_>, nearest: &Nearest) -> Result<Vec<f32>, QdrantError> {
    let raw = match nearest {
        Nearest::Point(key) => point_vector(ctx, *key).await?,
        Nearest::Recommend { .. } => return Err(QdrantError::unsupported("mmr on a recommend query")),
        Nearest::Given(Given { dense: Some(v), .. }) => v.clone(),
        Nearest::Given(Given { dense_text: Some((text, model)), .. }) => {
            if let Some(model) = model {
                ctx.check_model(model)?;
            }
            let provider = ctx.service.bound_model(&ctx.collection, "search it with a vector")?;
            let mut out = provider.embed(EmbedRequest::queries(vec![text.clone()])).await.map_err(crate::service::ServiceError::from)?;
            out.pop().map(|e| e.embedding).ok_or_else(|| bad("the model returned no vector"))?
        }
        Nearest::Given(_) => return Err(QdrantError::unsupported("mmr on a BM25 query")),
    };
    Ok(ctx.collection.prepare_vector(raw).map_err(crate::service::ServiceError::from)?)
}

/// A leaf query as the service's search, and the point to leave out of its answers.
async fn leaf_query(ctx: &Ctx<'_>, nearest: Nearest, filter: Option<Filter>, k: usize, with_vector: bool) -> Result<(SearchQuery, Vec<PointKey>), QdrantError> {
    let mut query = SearchQuery { k, filter, include_text: false, include_metadata: true, include_vector: with_vector, ..SearchQuery::default() };
    let mut exclude = Vec::new();
    match nearest {
        Nearest::Point(key) => {
            // As in Qdrant, the point whose vector is the query is not among its answers.
            exclude.push(key);
            query.vector = Some(point_vector(ctx, key).await?);
            query.mode = Some(Mode::Dense);
        }
        Nearest::Recommend { positive, negative } => {
            // 2·mean(positive) − mean(negative), or mean(positive); the examples given by id
            // are not among the answers.
            let positive = mean_of(ctx, positive, &mut exclude).await?.ok_or_else(|| bad("No positive examples given with 'average_vector' strategy"))?;
            let negative = mean_of(ctx, negative, &mut exclude).await?;
            query.vector = Some(match negative {
                Some(neg) => positive.iter().zip(&neg).map(|(p, n)| p + p - n).collect(),
                None => positive,
            });
            query.mode = Some(Mode::Dense);
        }
        Nearest::Given(given) => {
            if let Some(v) = given.dense {
                query.vector = Some(v);
                query.mode = Some(Mode::Dense);
            } else if let Some((text, model)) = given.dense_text {
                if let Some(model) = model {
                    ctx.check_model(&model)?;
                }
                query.query = Some(text);
                query.mode = Some(Mode::Dense);
            } else if let Some(text) = given.lexical_text {
                query.query = Some(text);
                query.mode = Some(Mode::Lexical);
            } else {
                return Err(bad("the query gives no vector"));
            }
        }
    }
    query.k = (k + exclude.len()).min(ctx.service.limits.max_k);
    Ok((query, exclude))
}

/// The mean of example vectors (points by id read from the store, and added to `exclude`).
async fn mean_of(ctx: &Ctx<'_>, examples: Vec<Example>, exclude: &mut Vec<PointKey>) -> Result<Option<Vec<f32>>, QdrantError> {
    let n = examples.len() as f32;
    let mut sum: Option<Vec<f32>> = None;
    for example in examples {
        let v = match example {
            Example::Vector(v) => v,
            Example::Point(key) => {
                exclude.push(key);
                point_vector(ctx, key).await?
            }
        };
        match &mut sum {
            None => sum = Some(v),
            Some(s) if s.len() == v.len() => s.iter_mut().zip(&v).for_each(|(a, b)| *a += b),
            Some(_) => return Err(bad("example vectors differ in width")),
        }
    }
    Ok(sum.map(|s| s.into_iter().map(|x| x / n).collect()))
}

/// A point's (first) vector, as stored.
async fn point_vector(ctx: &Ctx<'_>, key: PointKey) -> Result<Vec<f32>, QdrantError> {
    let mut found = ctx.service.retrieve(&ctx.collection, vec![key], true).await?;
    found.pop().and_then(|p| p.vector).ok_or_else(|| QdrantError::not_found(format!("No point with id {} found", key.document_id())))
}

/// A leaf's hits as scored points, the excluded ones left out, at most `k`.
fn records(hits: Vec<crate::service::SearchHit>, exclude: Vec<PointKey>, k: usize) -> Vec<ScoredRecord> {
    hits.into_iter()
        .map(|h| ScoredRecord { key: PointKey::of_document(&h.id), score: h.score, metadata: h.metadata, vector: h.vector })
        .filter(|r| !exclude.contains(&r.key))
        .take(k)
        .collect()
}

async fn leaf(ctx: &Ctx<'_>, nearest: Nearest, filter: Option<Filter>, k: usize, with_vector: bool) -> Result<Vec<ScoredRecord>, QdrantError> {
    let (query, exclude) = leaf_query(ctx, nearest, filter, k, with_vector).await?;
    let hits = ctx.service.search_one(&ctx.collection.name(), query).await?;
    Ok(records(hits, exclude, k))
}

/// Prefetches that are all plain nearest queries run as one batch of searches: their texts are
/// embedded together and the searches run on one blocking thread, as akidb's own hybrid search
/// does. `None` when one of them is not plain (MMR, fusion, prefetches of its own).
async fn batched(ctx: &Ctx<'_>, prefetch: &mut Vec<Request>, outer: Option<&Filter>) -> Result<Option<Vec<Vec<ScoredRecord>>>, QdrantError> {
    if prefetch.iter().any(|p| p.nearest.is_none() || p.mmr.is_some() || p.fusion.is_some() || !p.prefetch.is_empty()) {
        return Ok(None);
    }
    let max_k = ctx.service.limits.max_k;
    let mut queries = Vec::with_capacity(prefetch.len());
    let mut shapes = Vec::with_capacity(prefetch.len());
    for p in prefetch.drain(..) {
        let clause = match &p.filter {
            Some(f) => filter::parse(f, &ctx.view).map_err(bad)?,
            None => None,
        };
        let own = clause.filter(|c| !c.is_empty()).map(|c| Filter::Condition(Arc::new(c)));
        let wanted = p.offset.saturating_add(p.limit);
        if wanted > max_k {
            return Err(bad(format!("limit + offset must be at most {max_k}")));
        }
        let Some(nearest) = p.nearest else { return Ok(None) };
        // Only ids and scores: what the fused answer keeps is read after the fusion (`hydrate`).
        let (mut query, exclude) = leaf_query(ctx, nearest, both(outer, own), wanted.max(1), false).await?;
        query.include_metadata = false;
        queries.push(query);
        shapes.push((exclude, wanted.max(1), p.offset, p.limit, p.score_threshold));
    }
    let results = ctx.service.search(&ctx.collection.name(), queries).await?;
    let lower_is_better = ctx.collection.config.metric == Metric::L2;
    Ok(Some(
        results
            .into_iter()
            .zip(shapes)
            .map(|(hits, (exclude, k, offset, limit, threshold))| {
                let mut list = records(hits, exclude, k);
                if let Some(t) = threshold {
                    list.retain(|r| if lower_is_better { r.score <= t } else { r.score >= t });
                }
                list.into_iter().skip(offset).take(limit).collect()
            })
            .collect(),
    ))
}

fn scored(ctx: &Ctx, records: Vec<ScoredRecord>, payload: &PayloadSelector) -> Vec<Value> {
    records
        .into_iter()
        .map(|r| {
            let mut out = Map::new();
            out.insert("id".into(), r.key.to_json());
            out.insert("version".into(), json!(0));
            out.insert("score".into(), json!(r.score));
            if let Some(p) = payload.apply(r.metadata.unwrap_or_default()) {
                out.insert("payload".into(), p);
            }
            if let Some(v) = r.vector {
                out.insert("vector".into(), ctx.vector_output(v));
            }
            Value::Object(out)
        })
        .collect()
}

async fn one_query(ctx: &Ctx<'_>, body: &Value) -> Result<Vec<Value>, QdrantError> {
    let payload = request::payload_selector(body.get("with_payload"), false)?;
    let with_vector = request::vector_selector(body.get("with_vector"));
    let q = parse_query(ctx, body, 10)?;
    let records = run(ctx, q, None, with_vector).await?;
    // Only fused lists were searched without payloads (a hop to a blocking thread is not free).
    let wanted = !matches!(payload, PayloadSelector::None) || with_vector;
    let records = match wanted && records.iter().any(|r| r.metadata.is_none() || (with_vector && r.vector.is_none())) {
        true => ctx.service.hydrate(&ctx.collection, records, with_vector).await?,
        false => records,
    };
    Ok(scored(ctx, records, &payload))
}

/// A query's points grouped by a payload field's values (each value of an array is a group of
/// its own): at most `limit` groups of at most `group_size` points, groups in the order of their
/// best point. The search widens fourfold until the groups are full or nothing is left.
async fn grouped(ctx: &Ctx<'_>, body: &Value) -> Result<Value, QdrantError> {
    let key = body.get("group_by").and_then(Value::as_str).ok_or_else(|| bad("group_by must be a payload key"))?;
    let path = crate::engine::condition::Path::parse(key).map_err(bad)?;
    if body.get("with_lookup").is_some_and(|v| !v.is_null()) {
        return Err(QdrantError::unsupported("with_lookup"));
    }
    let group_size = request::usize_field(body, "group_size", 3)?.max(1);
    let limit = request::usize_field(body, "limit", 10)?.max(1);
    let payload = request::payload_selector(body.get("with_payload"), false)?;
    let with_vector = request::vector_selector(body.get("with_vector"));
    let max_k = ctx.service.limits.max_k;
    let mut k = limit.saturating_mul(group_size).saturating_mul(2).clamp(10, max_k);
    loop {
        let mut search = body.clone();
        search["limit"] = json!(k);
        search["offset"] = json!(0);
        let q = parse_query(ctx, &search, k)?;
        let found = run(ctx, q, None, with_vector).await?;
        let exhausted = found.len() < k || k >= max_k;
        let found = ctx.service.hydrate(&ctx.collection, found, with_vector).await?;
        let mut groups: Vec<(Value, Vec<ScoredRecord>)> = Vec::new();
        for record in found {
            let metadata = record.metadata.clone().unwrap_or_default();
            for value in path.values(&metadata, true) {
                let group_id = match value {
                    Value::String(_) => value.clone(),
                    Value::Number(n) if n.is_i64() || n.is_u64() => value.clone(),
                    _ => continue,
                };
                match groups.iter_mut().find(|(id, _)| *id == group_id) {
                    Some((_, hits)) if hits.len() < group_size && !hits.iter().any(|h| h.key == record.key) => hits.push(record.clone()),
                    Some(_) => {}
                    None => groups.push((group_id, vec![record.clone()])),
                }
            }
        }
        let full = groups.len() >= limit && groups.iter().take(limit).all(|(_, hits)| hits.len() == group_size);
        if full || exhausted {
            groups.truncate(limit);
            let groups: Vec<Value> = groups.into_iter().map(|(id, hits)| json!({"id": id, "hits": scored(ctx, hits, &payload)})).collect();
            return Ok(json!({"groups": groups}));
        }
        k = (k * 4).min(max_k);
    }
}

pub async fn query_groups(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    Ok(started.ok(grouped(&ctx, &body).await?))
}

pub async fn search_groups(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    Ok(started.ok(grouped(&ctx, &legacy(&body)?).await?))
}

pub async fn query(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    let points = one_query(&ctx, &body).await?;
    Ok(started.ok(json!({"points": points})))
}

pub async fn query_batch(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    let searches = searches(&ctx, &body)?;
    let mut out = Vec::with_capacity(searches.len());
    for s in searches {
        out.push(json!({"points": one_query(&ctx, s).await?}));
    }
    Ok(started.ok(Value::Array(out)))
}

fn searches<'b>(ctx: &Ctx, body: &'b Value) -> Result<&'b Vec<Value>, QdrantError> {
    let searches = body.get("searches").and_then(Value::as_array).ok_or_else(|| bad("searches must be an array"))?;
    if searches.len() > ctx.service.limits.max_batch_queries {
        return Err(bad(format!("at most {} searches per request", ctx.service.limits.max_batch_queries)));
    }
    Ok(searches)
}

/// The legacy search body as a query body: `vector` is an array or `{"name", "vector"}`.
fn legacy(body: &Value) -> Result<Value, QdrantError> {
    let mut q = body.as_object().cloned().ok_or_else(|| bad("the body must be an object"))?;
    let vector = q.remove("vector").ok_or_else(|| bad("vector is missing"))?;
    match vector {
        Value::Object(named) if named.contains_key("name") => {
            q.insert("using".into(), named.get("name").cloned().unwrap_or(Value::Null));
            q.insert("query".into(), named.get("vector").cloned().unwrap_or(Value::Null));
        }
        other => {
            q.insert("query".into(), other);
        }
    }
    Ok(Value::Object(q))
}

/// A legacy route: its body turned into a query body by `convert`, answered as a list of points.
async fn legacy_answer(state: &AppState, name: &str, started: Started, body: &Value, convert: fn(&Value) -> Result<Value, QdrantError>) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(state, name)?;
    let points = one_query(&ctx, &convert(body)?).await?;
    Ok(started.ok(Value::Array(points)))
}

/// A legacy batch route: `searches`, each converted and answered as a list of points.
async fn legacy_batch(state: &AppState, name: &str, started: Started, body: &Value, convert: fn(&Value) -> Result<Value, QdrantError>) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(state, name)?;
    let searches = searches(&ctx, body)?;
    let mut out = Vec::with_capacity(searches.len());
    for s in searches {
        out.push(Value::Array(one_query(&ctx, &convert(s)?).await?));
    }
    Ok(started.ok(Value::Array(out)))
}

pub async fn search(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    legacy_answer(&state, &name, started, &body, legacy).await
}

pub async fn search_batch(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    legacy_batch(&state, &name, started, &body, legacy).await
}

/// The legacy recommend body as a query body.
fn legacy_recommend(body: &Value) -> Result<Value, QdrantError> {
    let mut q = body.as_object().cloned().ok_or_else(|| bad("the body must be an object"))?;
    let mut recommend = Map::new();
    for key in ["positive", "negative", "strategy"] {
        if let Some(v) = q.remove(key) {
            recommend.insert(key.into(), v);
        }
    }
    q.insert("query".into(), json!({ "recommend": recommend }));
    Ok(Value::Object(q))
}

pub async fn recommend(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    legacy_answer(&state, &name, started, &body, legacy_recommend).await
}

pub async fn recommend_batch(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    legacy_batch(&state, &name, started, &body, legacy_recommend).await
}

pub async fn unsupported(Path(_): Path<String>) -> QdrantError {
    QdrantError::unsupported("this operation (discover, facets, matrix)")
}
