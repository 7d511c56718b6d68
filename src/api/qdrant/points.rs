//! Points on the Qdrant listener: upsert, retrieve, scroll, count, delete, payload and vector
//! updates, batches of updates.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::reply::{Body, QdrantError, Started};
use super::request::{self, bad, PayloadSelector};
use super::{filter, Ctx};
use crate::api::AppState;
use crate::service::points::{PayloadChange, PointKey, PointRecord};
use crate::service::DocumentInput;

fn completed() -> Value {
    json!({"operation_id": 0, "status": "completed"})
}

/// A point as Qdrant's `Record`.
pub fn record(ctx: &Ctx, point: PointRecord, payload: &PayloadSelector, order_value: Option<Value>) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), point.key.to_json());
    if let Some(p) = payload.apply(point.document.metadata) {
        out.insert("payload".into(), p);
    }
    if let Some(v) = point.vector {
        out.insert("vector".into(), ctx.vector_output(v));
    }
    if let Some(o) = order_value {
        out.insert("order_value".into(), o);
    }
    Value::Object(out)
}

/// akidb's one extension of Qdrant's bodies, used by `akidb export` / `import` between akidb
/// servers: on scroll, `akidb_text_key` adds each point's text to its payload under that key; on
/// upsert, it takes the text from that payload key.
fn text_key(body: &Value) -> Result<Option<String>, QdrantError> {
    match body.get("akidb_text_key") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(k)) if !k.is_empty() => Ok(Some(k.clone())),
        Some(_) => Err(bad("akidb_text_key must be a non-empty string")),
    }
}

/// Upsert inputs from `{"points": [...]}` or `{"batch": {...}}`.
fn upsert_inputs(ctx: &Ctx, body: &Value) -> Result<Vec<DocumentInput>, QdrantError> {
    let mut inputs = Vec::new();
    if let Some(points) = body.get("points") {
        let points = points.as_array().ok_or_else(|| bad("points must be an array"))?;
        for (i, p) in points.iter().enumerate() {
            let at = format!("points[{i}]");
            let id = p.get("id").ok_or_else(|| bad(format!("{at}.id is missing")))?;
            inputs.push(request::point_input(id, p.get("vector"), p.get("payload"), &ctx.view, &at)?);
        }
    } else if let Some(batch) = body.get("batch") {
        let ids = batch.get("ids").and_then(Value::as_array).ok_or_else(|| bad("batch.ids must be an array"))?;
        let payloads = batch.get("payloads").and_then(Value::as_array);
        let vectors = batch.get("vectors").ok_or_else(|| bad("batch.vectors is missing"))?;
        for (i, id) in ids.iter().enumerate() {
            let vector = match vectors {
                Value::Array(list) => list.get(i).cloned(),
                Value::Object(named) => {
                    let mut one = Map::new();
                    for (name, list) in named {
                        if let Some(v) = list.as_array().and_then(|l| l.get(i)) {
                            one.insert(name.clone(), v.clone());
                        }
                    }
                    Some(Value::Object(one))
                }
                _ => return Err(bad("batch.vectors must be an array or an object of named arrays")),
            };
            let vector = vector.ok_or_else(|| bad(format!("batch: {} ids but fewer vectors", ids.len())))?;
            inputs.push(request::point_input(id, Some(&vector), payloads.and_then(|p| p.get(i)), &ctx.view, &format!("batch[{i}]"))?);
        }
    } else {
        return Err(bad("give points (a list) or batch"));
    }
    // Only Documents name models (a payload may hold `text` and `model` keys of its own).
    let mut models: Vec<String> = Vec::new();
    let inputs: Vec<DocumentInput> = inputs
        .into_iter()
        .map(|(input, model)| {
            models.extend(model);
            input
        })
        .collect();
    models.sort();
    models.dedup();
    for model in &models {
        ctx.check_model(model)?;
    }
    let mut inputs = inputs;
    if let Some(key) = text_key(body)? {
        for input in &mut inputs {
            if let Some(Value::String(text)) = input.metadata.as_mut().and_then(|m| m.remove(&key)) {
                if input.text.is_empty() {
                    input.text = text;
                }
            }
        }
    }
    Ok(inputs)
}

/// `?wait` is not read: every write is durable and searchable on return, as `wait=true` asks.
pub async fn upsert(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    do_upsert(&ctx, &body).await?;
    Ok(started.ok(completed()))
}

async fn do_upsert(ctx: &Ctx<'_>, body: &Value) -> Result<(), QdrantError> {
    let inputs = upsert_inputs(ctx, body)?;
    ctx.service.upsert_points(&ctx.name, inputs).await?;
    Ok(())
}

pub async fn retrieve(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    let keys = request::ids(body.get("ids"))?;
    let payload = request::payload_selector(body.get("with_payload"), true)?;
    let with_vector = request::vector_selector(body.get("with_vector"));
    let points = ctx.service.retrieve(&ctx.collection, keys, with_vector).await?;
    Ok(started.ok(Value::Array(points.into_iter().map(|p| record(&ctx, p, &payload, None)).collect())))
}

pub async fn get_point(State(state): State<Arc<AppState>>, Path((name, id)): Path<(String, String)>, started: Started) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    let key = match id.parse::<u64>() {
        Ok(n) => PointKey::Num(n),
        Err(_) => PointKey::from_json(&Value::from(id.clone())).map_err(bad)?,
    };
    let mut points = ctx.service.retrieve(&ctx.collection, vec![key], true).await?;
    let point = points.pop().ok_or_else(|| QdrantError::not_found(format!("No point with id {id} found")))?;
    Ok(started.ok(record(&ctx, point, &PayloadSelector::All, None)))
}

pub async fn scroll(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    let clause = filter::parse(body.get("filter").unwrap_or(&Value::Null), &ctx.view).map_err(bad)?;
    let limit = request::usize_field(&body, "limit", 10)?.min(ctx.service.limits.max_k.max(10_000));
    let payload = request::payload_selector(body.get("with_payload"), true)?;
    let with_vector = request::vector_selector(body.get("with_vector"));
    if let Some(order_by) = body.get("order_by").filter(|v| !v.is_null()) {
        // Ordered by a payload field: every matching point is read and sorted (no offset).
        let points = ctx.service.points_where(&ctx.collection, clause).await?;
        return scroll_ordered(&ctx, started, points, order_by, limit, &payload, with_vector).await;
    }
    let offset = body.get("offset").filter(|v| !v.is_null()).map(PointKey::from_json).transpose().map_err(bad)?;
    let filter = clause.map(|c| crate::engine::Filter::Condition(Arc::new(c)));
    let (points, next) = ctx.service.points_page(&ctx.collection, filter, offset, limit).await?;
    let next = next.map(PointKey::to_json);
    let text_key = text_key(&body)?;
    let records = ctx.service.with_vectors(&ctx.collection, points, with_vector, text_key.is_some()).await?;
    let mut out = Vec::with_capacity(records.len());
    for mut p in records {
        if let Some(key) = &text_key {
            let text = std::mem::take(&mut p.document.text);
            if !text.is_empty() {
                // Never overwrite a payload field with the text.
                if p.document.metadata.contains_key(key) {
                    return Err(bad(format!("the payload of point {} already has a key `{key}`; give the text another key (akidb export --text-key)", p.key.document_id())));
                }
                p.document.metadata.insert(key.clone(), Value::String(text));
            }
        }
        out.push(record(&ctx, p, &payload, None));
    }
    let records = out;
    Ok(started.ok(json!({"points": records, "next_page_offset": next})))
}

/// Scroll by a payload field's values (numbers, or datetimes as strings); points without one are left out.
async fn scroll_ordered(
    ctx: &Ctx<'_>,
    started: Started,
    points: Vec<(PointKey, crate::domain::Document)>,
    order_by: &Value,
    limit: usize,
    payload: &PayloadSelector,
    with_vector: bool,
) -> Result<Response, QdrantError> {
    let (key, descending, start) = match order_by {
        Value::String(key) => (key.clone(), false, None),
        Value::Object(o) => (
            o.get("key").and_then(Value::as_str).ok_or_else(|| bad("order_by.key must be a string"))?.to_owned(),
            o.get("direction").and_then(Value::as_str) == Some("desc"),
            o.get("start_from").and_then(Value::as_f64),
        ),
        _ => return Err(bad("order_by is a key or {key, direction, start_from}")),
    };
    let path = crate::engine::condition::Path::parse(&key).map_err(bad)?;
    let mut keyed: Vec<(f64, Value, (PointKey, crate::domain::Document))> = Vec::new();
    for (point, document) in points {
        // A point with several values is listed once per value, as in Qdrant.
        let values: Vec<(f64, Value)> = path.values(&document.metadata, true).into_iter().filter_map(|v| v.as_f64().map(|x| (x, v.clone()))).collect();
        for (x, v) in values {
            keyed.push((x, v, (point, document.clone())));
        }
    }
    keyed.retain(|(x, _, _)| start.is_none_or(|s| if descending { *x <= s } else { *x >= s }));
    keyed.sort_by(|a, b| if descending { b.0.total_cmp(&a.0) } else { a.0.total_cmp(&b.0) }.then(a.2 .0.cmp(&b.2 .0)));
    keyed.truncate(limit);
    let order_values: Vec<Value> = keyed.iter().map(|(_, v, _)| v.clone()).collect();
    let records = ctx.service.with_vectors(&ctx.collection, keyed.into_iter().map(|(_, _, p)| p).collect(), with_vector, false).await?;
    let records: Vec<Value> = records.into_iter().zip(order_values).map(|(p, o)| record(ctx, p, payload, Some(o))).collect();
    Ok(started.ok(json!({"points": records, "next_page_offset": null})))
}

pub async fn count(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    let clause = filter::parse(body.get("filter").unwrap_or(&Value::Null), &ctx.view).map_err(bad)?;
    let filter = clause.filter(|c| !c.is_empty()).map(|c| crate::engine::Filter::Condition(Arc::new(c)));
    let count = ctx.service.count_documents(&ctx.name, filter).await?;
    Ok(started.ok(json!({"count": count})))
}

pub async fn delete(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    do_delete(&ctx, &body).await?;
    Ok(started.ok(completed()))
}

async fn do_delete(ctx: &Ctx<'_>, body: &Value) -> Result<(), QdrantError> {
    let selector = request::selector(body, &ctx.view)?;
    let ids = ctx.service.selected(&ctx.collection, selector).await?;
    if !ids.is_empty() {
        ctx.service.delete_documents(&ctx.name, Some(ids), None).await?;
    }
    Ok(())
}

fn object(body: &Value, key: &str) -> Result<Map<String, Value>, QdrantError> {
    body.get(key).and_then(Value::as_object).cloned().ok_or_else(|| bad(format!("{key} must be an object")))
}

async fn change(ctx: &Ctx<'_>, body: &Value, change: PayloadChange) -> Result<(), QdrantError> {
    let selector = request::selector(body, &ctx.view)?;
    ctx.service.change_payload(&ctx.name, selector, change).await?;
    Ok(())
}

pub async fn set_payload(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    let key = body.get("key").and_then(Value::as_str).map(str::to_owned);
    change(&ctx, &body, PayloadChange::Set { values: object(&body, "payload")?, key }).await?;
    Ok(started.ok(completed()))
}

pub async fn overwrite_payload(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    change(&ctx, &body, PayloadChange::Overwrite(object(&body, "payload")?)).await?;
    Ok(started.ok(completed()))
}

fn keys(body: &Value) -> Result<Vec<String>, QdrantError> {
    let keys = body.get("keys").and_then(Value::as_array).ok_or_else(|| bad("keys must be an array of strings"))?;
    keys.iter().map(|k| k.as_str().map(str::to_owned).ok_or_else(|| bad("keys must be strings"))).collect()
}

pub async fn delete_payload(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    change(&ctx, &body, PayloadChange::Delete(keys(&body)?)).await?;
    Ok(started.ok(completed()))
}

pub async fn clear_payload(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    change(&ctx, &body, PayloadChange::Clear).await?;
    Ok(started.ok(completed()))
}

async fn do_update_vectors(ctx: &Ctx<'_>, body: &Value) -> Result<(), QdrantError> {
    let points = body.get("points").and_then(Value::as_array).ok_or_else(|| bad("points must be an array"))?;
    let mut vectors = Vec::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        let at = format!("points[{i}]");
        let key = PointKey::from_json(p.get("id").unwrap_or(&Value::Null)).map_err(bad)?;
        let given = request::vectors(p.get("vector").unwrap_or(&Value::Null), &ctx.view, &at)?;
        let dense = given.dense.ok_or_else(|| bad(format!("{at}: update_vectors takes dense vectors (a Document point is re-written by upserting it)")))?;
        vectors.push((key, dense));
    }
    ctx.service.replace_vectors(&ctx.name, vectors).await?;
    Ok(())
}

pub async fn update_vectors(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    do_update_vectors(&ctx, &body).await?;
    Ok(started.ok(completed()))
}

pub async fn delete_vectors(State(state): State<Arc<AppState>>, Path(name): Path<String>, _started: Started, Body(_): Body) -> Result<Response, QdrantError> {
    Ctx::open(&state, &name)?;
    Err(QdrantError::unsupported("deleting a point's vector (every akidb point keeps its vector; delete the point)"))
}

/// `POST /points/batch`: the operations in order, each answered.
pub async fn batch(State(state): State<Arc<AppState>>, Path(name): Path<String>, started: Started, Body(body): Body) -> Result<Response, QdrantError> {
    let ctx = Ctx::open(&state, &name)?;
    let operations = body.get("operations").and_then(Value::as_array).ok_or_else(|| bad("operations must be an array"))?;
    let mut results = Vec::with_capacity(operations.len());
    for operation in operations {
        let (kind, op) = operation.as_object().and_then(|o| o.iter().next()).ok_or_else(|| bad("each operation is an object with one key"))?;
        match kind.as_str() {
            "upsert" => do_upsert(&ctx, op).await?,
            "delete" => do_delete(&ctx, op).await?,
            "set_payload" => {
                let key = op.get("key").and_then(Value::as_str).map(str::to_owned);
                change(&ctx, op, PayloadChange::Set { values: object(op, "payload")?, key }).await?
            }
            "overwrite_payload" => change(&ctx, op, PayloadChange::Overwrite(object(op, "payload")?)).await?,
            "delete_payload" => change(&ctx, op, PayloadChange::Delete(keys(op)?)).await?,
            "clear_payload" => change(&ctx, op, PayloadChange::Clear).await?,
            "update_vectors" => do_update_vectors(&ctx, op).await?,
            other => return Err(bad(format!("operation {other} is not supported"))),
        }
        results.push(completed());
    }
    Ok(started.ok(Value::Array(results)))
}
