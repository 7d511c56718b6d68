//! Points: the Qdrant listener's view of akidb's documents (a second front door onto the same
//! collections, not a second engine).
//!
//! - A point is a document. Its Qdrant id (an unsigned integer or a UUID) is the document id
//!   written canonically (`42`, `0f8e…-…`); a document made through akidb's own API under any
//!   other id shows as a UUID derived from the id's sha256 (`PointKey::of_document`), which
//!   cannot be looked up by that UUID.
//! - The payload is the document's metadata, verbatim. The text of a point upserted as a
//!   `Document` is the document's text (searchable by BM25), not part of the payload.
//! - A document split into passages is one point: a search returns it once, with its best
//!   passage's score, and its vector is its first passage's.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Digest;

use super::{blocking, DocumentInput, Service, ServiceError};
use crate::domain::{Document, NewDocument};
use crate::engine::{Clause, Collection, Filter};

/// A Qdrant point id. Integers order before UUIDs, as in Qdrant's scroll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PointKey {
    Num(u64),
    Uuid(uuid::Uuid),
}

impl PointKey {
    /// An id as a request gives it; the error is Qdrant's wording.
    pub fn from_json(value: &Value) -> Result<PointKey, String> {
        let parsed = match value {
            Value::Number(n) => n.as_u64().map(PointKey::Num),
            Value::String(s) => uuid::Uuid::parse_str(s).ok().map(PointKey::Uuid),
            _ => None,
        };
        parsed.ok_or_else(|| format!("value {value} is not a valid point ID, valid values are either an unsigned integer or a UUID"))
    }

    pub fn to_json(self) -> Value {
        match self {
            PointKey::Num(n) => Value::from(n),
            PointKey::Uuid(u) => Value::from(u.hyphenated().to_string()),
        }
    }

    /// The id of the document that holds this point.
    pub fn document_id(self) -> String {
        match self {
            PointKey::Num(n) => n.to_string(),
            PointKey::Uuid(u) => u.hyphenated().to_string(),
        }
    }

    /// The point a document shows as.
    pub fn of_document(id: &str) -> PointKey {
        if let Ok(n) = id.parse::<u64>() {
            if n.to_string() == id {
                return PointKey::Num(n);
            }
        }
        match uuid::Uuid::parse_str(id) {
            Ok(u) if u.hyphenated().to_string() == id => PointKey::Uuid(u),
            _ => {
                let digest = sha2::Sha256::digest(id.as_bytes());
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&digest[..16]);
                PointKey::Uuid(uuid::Builder::from_custom_bytes(bytes).into_uuid())
            }
        }
    }
}

/// How the Qdrant listener names a collection's vectors; kept in the store beside it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// `None`: the collection's one vector is unnamed.
    pub vector: Option<String>,
    /// Sparse vector names, each answered by the collection's BM25 index over the texts.
    pub sparse: Vec<String>,
}

/// A point as returned: its document (metadata; text only when asked) and first vector.
#[derive(Debug, Clone)]
pub struct PointRecord {
    pub key: PointKey,
    pub document: Document,
    pub vector: Option<Vec<f32>>,
}

/// One scored point.
#[derive(Debug, Clone)]
pub struct ScoredRecord {
    pub key: PointKey,
    pub score: f32,
    /// `None`: not read yet (a prefetch's list, fused before anything is read; see `hydrate`).
    pub metadata: Option<Map<String, Value>>,
    pub vector: Option<Vec<f32>>,
}

/// A change to payloads (Qdrant's set / overwrite / delete / clear payload).
#[derive(Debug, Clone)]
pub enum PayloadChange {
    /// Merge these keys in, at the top or under a nested object path.
    Set { values: Map<String, Value>, key: Option<String> },
    Overwrite(Map<String, Value>),
    Delete(Vec<String>),
    Clear,
}

/// Which points a write or a read addresses.
#[derive(Debug, Clone)]
pub enum Selector {
    Ids(Vec<PointKey>),
    Filter(Clause),
}

/// How ranked lists are fused (Qdrant's `fusion`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusionKind {
    Rrf { k: f32 },
    Dbsf,
}

impl Service {
    pub fn view(&self, collection: &Collection) -> Result<View, ServiceError> {
        let bytes = self.engine.store().annex(collection.id()).map_err(crate::engine::EngineError::from)?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default())
    }

    /// Every matching point, in Qdrant's order (integers, then UUIDs), metadata only.
    pub async fn points_where(&self, collection: &Arc<Collection>, clause: Option<Clause>) -> Result<Vec<(PointKey, Document)>, ServiceError> {
        let collection = collection.clone();
        blocking(move || {
            let mut out = Vec::new();
            let filter = clause.filter(|c| !c.is_empty()).map(|c| Filter::Condition(Arc::new(c)));
            let mut after: Option<Vec<u8>> = None;
            loop {
                let (page, more) = collection.page(after.as_deref(), 4096, filter.as_ref(), false)?;
                after = page.last().map(|d| d.id.as_bytes().to_vec());
                out.extend(page.into_iter().map(|document| (PointKey::of_document(&document.id), document)));
                if !more {
                    break;
                }
            }
            out.sort_by_key(|(key, _)| *key);
            Ok(out)
        })
        .await
    }

    /// One page of points in Qdrant's order from `offset` on (metadata only), and the first
    /// point of the next page. Each page reads every id (keys only, nothing decoded) but decodes
    /// only the documents it looks at: the page without a filter, with one the points from the
    /// offset until the page is full.
    pub async fn points_page(&self, collection: &Arc<Collection>, filter: Option<Filter>, offset: Option<PointKey>, limit: usize) -> Result<(Vec<(PointKey, Document)>, Option<PointKey>), ServiceError> {
        let collection = collection.clone();
        let filter = filter.filter(|f| !f.matches_everything());
        blocking(move || {
            let keys = collection.document_ids()?.filter_map(|id| match id {
                Ok(id) => {
                    let key = PointKey::of_document(&id);
                    offset.is_none_or(|o| key >= o).then_some(Ok((key, id)))
                }
                Err(e) => Some(Err(e)),
            });
            let candidates: Vec<(PointKey, String)> = match &filter {
                // The `limit + 1` smallest keys, held in a bounded max-heap; one more than the
                // page tells where the next one starts. A document deleted meanwhile shortens
                // the page by one, as a concurrent delete may.
                None => {
                    let mut heap = std::collections::BinaryHeap::with_capacity(limit.saturating_add(1).min(65_536));
                    for entry in keys {
                        heap.push(entry?);
                        if heap.len() > limit.saturating_add(1) {
                            heap.pop();
                        }
                    }
                    heap.into_sorted_vec()
                }
                Some(_) => {
                    let mut all = keys.collect::<Result<Vec<_>, _>>()?;
                    all.sort_unstable();
                    all
                }
            };
            let mut page = Vec::with_capacity(limit.min(candidates.len()));
            for (key, id) in candidates {
                let Some(document) = collection.get_head(&id)? else { continue };
                if filter.as_ref().is_some_and(|f| !f.matches_document(&document.id, &document.metadata, document.passages.first().map(|p| p.point))) {
                    continue;
                }
                if page.len() == limit {
                    return Ok((page, Some(key)));
                }
                page.push((key, document));
            }
            Ok((page, None))
        })
        .await
    }

    /// Points by id (missing ones skipped), with their first vectors when asked.
    pub async fn retrieve(&self, collection: &Arc<Collection>, keys: Vec<PointKey>, with_vector: bool) -> Result<Vec<PointRecord>, ServiceError> {
        let collection = collection.clone();
        blocking(move || {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let Some(document) = collection.get_head(&key.document_id())? else { continue };
                out.push(PointRecord { key, vector: first_vector(&collection, &document, with_vector)?, document });
            }
            Ok(out)
        })
        .await
    }

    /// First vectors for documents already read (metadata only); with `with_text`, the texts
    /// are read too (documents deleted meanwhile are skipped).
    pub async fn with_vectors(&self, collection: &Arc<Collection>, documents: Vec<(PointKey, Document)>, with_vector: bool, with_text: bool) -> Result<Vec<PointRecord>, ServiceError> {
        let collection = collection.clone();
        blocking(move || {
            let mut out = Vec::with_capacity(documents.len());
            for (key, document) in documents {
                let document = match with_text {
                    true => match collection.get(&document.id)? {
                        Some(full) => full,
                        None => continue,
                    },
                    false => document,
                };
                out.push(PointRecord { key, vector: first_vector(&collection, &document, with_vector)?, document });
            }
            Ok(out)
        })
        .await
    }

    /// Reads the metadata (and first vectors, when asked) of scored points fused before
    /// anything was read; points deleted meanwhile are dropped.
    pub async fn hydrate(&self, collection: &Arc<Collection>, records: Vec<ScoredRecord>, with_vector: bool) -> Result<Vec<ScoredRecord>, ServiceError> {
        let collection = collection.clone();
        blocking(move || {
            let mut out = Vec::with_capacity(records.len());
            for mut record in records {
                if record.metadata.is_none() || (with_vector && record.vector.is_none()) {
                    let Some(document) = collection.get_head(&record.key.document_id())? else { continue };
                    record.vector = match record.vector {
                        Some(v) => Some(v),
                        None => first_vector(&collection, &document, with_vector)?,
                    };
                    record.metadata = Some(document.metadata);
                }
                out.push(record);
            }
            Ok(out)
        })
        .await
    }

    /// Document ids a selector addresses.
    pub async fn selected(&self, collection: &Arc<Collection>, selector: Selector) -> Result<Vec<String>, ServiceError> {
        Ok(match selector {
            Selector::Ids(keys) => keys.into_iter().map(PointKey::document_id).collect(),
            Selector::Filter(clause) => self.points_where(collection, Some(clause)).await?.into_iter().map(|(_, d)| d.id).collect(),
        })
    }

    /// Applies a payload change to the selected points: their metadata only (text, passages and
    /// vectors stay, nothing is re-embedded or re-indexed), read and written under the
    /// collection's writer lock. Missing points are skipped.
    /// The collection under `name` as addressed now, and again whenever a switch gave the name
    /// to another collection before `work` wrote (`EngineError::Moved`): payload and vector
    /// changes are idempotent, so doing them again there is the same request.
    async fn on_named<T: Send + 'static>(&self, name: &str, work: impl Fn(crate::engine::Addressed) -> Result<T, ServiceError> + Send + Sync + Clone + 'static) -> Result<T, ServiceError> {
        for _ in 0..3 {
            let target = self.collection(name)?.addressed();
            let work = work.clone();
            match blocking(move || work(target)).await {
                Err(ServiceError::Engine(crate::engine::EngineError::Moved(_))) => continue,
                other => return other,
            }
        }
        Err(crate::engine::EngineError::Moved(name.to_owned()).into())
    }

    pub async fn change_payload(&self, name: &str, selector: Selector, change: PayloadChange) -> Result<usize, ServiceError> {
        let ids = self.selected(&self.collection(name)?, selector).await?;
        let max_metadata = self.limits.max_metadata_bytes;
        let (ids, change) = (Arc::new(ids), Arc::new(change));
        self.on_named(name, move |collection| {
            collection.update_metadata(&ids, |id, metadata| {
                let metadata = apply(metadata, &change)?;
                let size = serde_json::to_vec(&metadata).map_or(usize::MAX, |b| b.len());
                if size > max_metadata {
                    return Err(ServiceError::TooLarge(format!("the payload of point {id} would be {size} bytes; the limit is {max_metadata}")));
                }
                Ok(Some(metadata))
            })
        })
        .await
    }

    /// Replaces the vector of existing points (the point becomes one passage with that vector),
    /// read and rewritten under the collection's writer lock. A missing point fails the whole
    /// request before anything is written, as in Qdrant.
    pub async fn replace_vectors(&self, name: &str, vectors: Vec<(PointKey, Vec<f32>)>) -> Result<usize, ServiceError> {
        let vectors = Arc::new(vectors);
        self.on_named(name, move |collection| {
            // Checked and normalized by the write, before anything is written.
            let mut wanted: HashMap<String, Vec<f32>> = vectors.iter().map(|(key, vector)| (key.document_id(), vector.clone())).collect();
            let ids: Vec<String> = wanted.keys().cloned().collect();
            let count = collection.rewrite(&ids, |id, document| {
                let document = document.ok_or_else(|| ServiceError::DocumentNotFound(id.to_owned()))?;
                let vector = wanted.remove(id).unwrap_or_default();
                Ok::<_, ServiceError>(Some(NewDocument::single(document.id, document.text, document.metadata, vector)))
            })?;
            Ok(count)
        })
        .await
    }

    /// Upserts points given as vectors or texts (`DocumentInput`s with Qdrant ids).
    pub async fn upsert_points(&self, collection: &str, inputs: Vec<DocumentInput>) -> Result<usize, ServiceError> {
        let count = inputs.len();
        if count == 0 {
            return Ok(0);
        }
        self.ingest(collection, inputs).await?;
        Ok(count)
    }
}

/// A document's first passage's vector, when asked.
fn first_vector(collection: &Collection, document: &Document, wanted: bool) -> Result<Option<Vec<f32>>, ServiceError> {
    if !wanted {
        return Ok(None);
    }
    let Some(first) = document.passages.first() else { return Ok(None) };
    Ok(collection.vectors_of(&[first.point])?.pop().map(|(_, v)| v))
}

fn apply(mut metadata: Map<String, Value>, change: &PayloadChange) -> Result<Map<String, Value>, ServiceError> {
    match change {
        PayloadChange::Overwrite(values) => Ok(values.clone()),
        PayloadChange::Clear => Ok(Map::new()),
        PayloadChange::Delete(keys) => {
            for key in keys {
                delete_path(&mut metadata, key);
            }
            Ok(metadata)
        }
        PayloadChange::Set { values, key: None } => {
            metadata.extend(values.clone());
            Ok(metadata)
        }
        PayloadChange::Set { values, key: Some(path) } => {
            // `key`: the object at this dotted path receives the values (created if missing).
            let mut target = &mut metadata;
            for part in path.split('.') {
                let slot = target.entry(part.to_owned()).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                target = match slot {
                    Value::Object(map) => map,
                    _ => return Err(ServiceError::invalid(format!("key {path} does not lead to an object"))),
                };
            }
            target.extend(values.clone());
            Ok(metadata)
        }
    }
}

/// Removes a dotted path (`a.b`), or a top-level key.
pub fn delete_path(metadata: &mut Map<String, Value>, path: &str) {
    match path.split_once('.') {
        None => {
            metadata.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Value::Object(inner)) = metadata.get_mut(head) {
                delete_path(inner, rest);
            }
        }
    }
}

/// Maximal marginal relevance over `candidates` (each with its vector), as Qdrant computes it:
/// the most relevant first, then each next maximises `λ·sim(query) − (1 − λ)·max sim(chosen)`
/// with `λ = 1 − diversity`; similarities are the metric's raw ones (dot products; for l2 the
/// negated squared distance); ties go to the last candidate, which is swap-removed, as in Qdrant.
/// Points keep their search scores.
pub fn mmr(candidates: Vec<ScoredRecord>, query: &[f32], metric: crate::domain::Metric, diversity: f32, limit: usize) -> Vec<ScoredRecord> {
    let similarity = |a: &[f32], b: &[f32]| -> f32 {
        match metric {
            crate::domain::Metric::L2 => -a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>(),
            _ => a.iter().zip(b).map(|(x, y)| x * y).sum(),
        }
    };
    let lambda = 1.0 - diversity;
    let vectors: Vec<&[f32]> = candidates.iter().map(|c| c.vector.as_deref().unwrap_or(&[])).collect();
    let relevance: Vec<f32> = vectors.iter().map(|v| similarity(query, v)).collect();
    let last_argmax = |scores: &[f32]| scores.iter().enumerate().fold(None, |best: Option<(usize, f32)>, (i, &s)| match best {
        Some((_, b)) if s < b => best,
        _ => Some((i, s)),
    }).map(|(i, _)| i);
    let mut pending: Vec<usize> = (0..candidates.len()).collect();
    let mut selected: Vec<usize> = Vec::new();
    let first: Vec<f32> = pending.iter().map(|&i| relevance[i]).collect();
    if let Some(seed) = last_argmax(&first) {
        selected.push(pending.swap_remove(seed));
    }
    // Each candidate's highest similarity to the chosen ones, updated with the newest choice
    // only: n·limit similarities, not n·limit² (1,000 candidates would be minutes otherwise).
    let mut redundancy = vec![f32::NEG_INFINITY; candidates.len()];
    while selected.len() < limit && !pending.is_empty() {
        let newest = vectors[selected[selected.len() - 1]];
        let scores: Vec<f32> = pending
            .iter()
            .map(|&p| {
                redundancy[p] = redundancy[p].max(similarity(vectors[p], newest));
                lambda * relevance[p] - (1.0 - lambda) * redundancy[p]
            })
            .collect();
        let Some(best) = last_argmax(&scores) else { break };
        selected.push(pending.swap_remove(best));
    }
    let mut slots: Vec<Option<ScoredRecord>> = candidates.into_iter().map(Some).collect();
    selected.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Fuses ranked lists (each best first, keyed by point) as Qdrant does.
pub fn fuse(lists: Vec<Vec<ScoredRecord>>, fusion: FusionKind, weights: Option<&[f32]>) -> Vec<ScoredRecord> {
    let mut scores: HashMap<PointKey, (f32, ScoredRecord)> = HashMap::new();
    let mut order: Vec<PointKey> = Vec::new();
    for (i, list) in lists.into_iter().enumerate() {
        let normalized: Vec<f32> = match fusion {
            FusionKind::Rrf { k } => {
                let weight = weights.and_then(|w| w.get(i).copied()).unwrap_or(1.0);
                (0..list.len()).map(|pos| if weight <= 0.0 { 0.0 } else { 1.0 / ((pos as f32 + 1.0) / weight + k - 1.0) }).collect()
            }
            FusionKind::Dbsf => dbsf(&list.iter().map(|r| r.score).collect::<Vec<_>>()),
        };
        for (record, score) in list.into_iter().zip(normalized) {
            let entry = scores.entry(record.key).or_insert_with(|| {
                order.push(record.key);
                (0.0, record)
            });
            entry.0 += score;
        }
    }
    let mut fused: Vec<ScoredRecord> = order
        .into_iter()
        .filter_map(|key| scores.remove(&key))
        .map(|(score, mut record)| {
            record.score = score;
            record
        })
        .collect();
    fused.sort_by(|a, b| b.score.total_cmp(&a.score));
    fused
}

/// Distribution-based score fusion: scores mapped from mean ± 3σ onto 0..1.
fn dbsf(scores: &[f32]) -> Vec<f32> {
    if scores.len() == 1 {
        return vec![0.5];
    }
    let n = scores.len() as f32;
    let mean = scores.iter().sum::<f32>() / n;
    let variance = scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f32>() / (n - 1.0);
    if variance == 0.0 {
        return vec![0.5; scores.len()];
    }
    let (low, high) = (mean - 3.0 * variance.sqrt(), mean + 3.0 * variance.sqrt());
    scores.iter().map(|s| (s - low) / (high - low)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_both_ways() {
        assert_eq!(PointKey::of_document("42"), PointKey::Num(42));
        assert_eq!(PointKey::Num(42).document_id(), "42");
        let u = PointKey::from_json(&Value::from("550E8400-E29B-41D4-A716-446655440000")).unwrap();
        assert_eq!(u.document_id(), "550e8400-e29b-41d4-a716-446655440000");
        assert_eq!(PointKey::of_document(&u.document_id()), u);
        // Not canonical: a derived UUID, stable.
        assert!(matches!(PointKey::of_document("042"), PointKey::Uuid(_)));
        assert_eq!(PointKey::of_document("doc-1"), PointKey::of_document("doc-1"));
        for bad in [Value::from(-1), Value::from("abc"), Value::from(1.5), Value::Null] {
            assert!(PointKey::from_json(&bad).unwrap_err().contains("is not a valid point ID"));
        }
        assert!(PointKey::Num(u64::MAX) < u);
    }

    #[test]
    fn payload_changes() {
        let m = serde_json::json!({"a": 1, "n": {"x": 1, "y": 2}}).as_object().cloned().unwrap();
        let set = PayloadChange::Set { values: serde_json::json!({"z": 3}).as_object().cloned().unwrap(), key: Some("n".into()) };
        assert_eq!(Value::Object(apply(m.clone(), &set).unwrap()), serde_json::json!({"a": 1, "n": {"x": 1, "y": 2, "z": 3}}));
        assert_eq!(Value::Object(apply(m.clone(), &PayloadChange::Delete(vec!["n.x".into(), "a".into()])).unwrap()), serde_json::json!({"n": {"y": 2}}));
        assert!(apply(m, &PayloadChange::Clear).unwrap().is_empty());
    }

    #[test]
    fn mmr_trades_relevance_for_diversity() {
        let r = |n: u64, v: [f32; 2]| ScoredRecord { key: PointKey::Num(n), score: v[0], metadata: None, vector: Some(v.to_vec()) };
        let candidates = vec![r(1, [1.0, 0.0]), r(2, [0.99, 0.14]), r(3, [0.6, 0.8])];
        let keys = |d: f32| mmr(candidates.clone(), &[1.0, 0.0], crate::domain::Metric::Cosine, d, 2).iter().map(|r| r.key).collect::<Vec<_>>();
        assert_eq!(keys(0.0), [PointKey::Num(1), PointKey::Num(2)], "no diversity: by relevance");
        assert_eq!(keys(0.8), [PointKey::Num(1), PointKey::Num(3)], "diversity skips the near-duplicate");
    }

    #[test]
    fn rrf_fuses_by_position() {
        let r = |n: u64, score: f32| ScoredRecord { key: PointKey::Num(n), score, metadata: None, vector: None };
        let fused = fuse(vec![vec![r(1, 0.9), r(2, 0.8)], vec![r(2, 5.0), r(3, 4.0)]], FusionKind::Rrf { k: 2.0 }, None);
        let keys: Vec<PointKey> = fused.iter().map(|r| r.key).collect();
        assert_eq!(keys, [PointKey::Num(2), PointKey::Num(1), PointKey::Num(3)]);
        assert!((fused[0].score - (1.0 / 3.0 + 1.0 / 2.0)).abs() < 1e-6);
    }
}
