//! One collection: its config, its index (graph + tombstones) and the metadata filters read.
//!
//! Writes to a collection are serialized by `writer` (store write, then index update), so the
//! index always holds every point below the store's next point id while no write is under way:
//! that is what makes a dump's watermark exact. Searches never take `writer`.
//!
//! A dump must not stall writers for as long as it writes files, so it *freezes* the graph
//! instead: under `writer` it reads the watermark and sets `side.frozen`; from then on writers
//! put new points in `side` (searched exactly, next to the graph) rather than in the graph, and
//! the dump writes a graph that holds exactly the points below its watermark. The store is
//! flushed before the dump is written, so a dump never covers a point a crash could take back.
//! When the dump is done the side points go into the graph. Dumps and compactions exclude each
//! other (`maintenance`), so the graph being dumped is the graph in force.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde_json::{Map, Value};

use super::filter::Filter;
use super::EngineError;
use crate::index::{self, dump, Hit, VectorIndex};
use crate::lexical::{Accept, LexicalIndex};
use crate::store::{CollectionConfig, Document, DocumentStore, Metric, NewDocument, PassageOf, PointId, Written};

/// Metadata of every live point (a document's passages share one map).
type MetadataCache = Arc<RwLock<HashMap<PointId, Arc<Map<String, Value>>>>>;

/// Tombstones above this share of the graph trigger a rebuild of the graph from the store.
pub const COMPACT_RATIO: f64 = 0.2;
/// A filter matching at most this many documents, or at most `EXACT_FILTER_SHARE` of the
/// collection, is answered by an exact scan over the matches: recall 1.0, and faster than the
/// filtered graph walk, which loses its early stop and wanders far when few points pass. Measured
/// on 100k GloVe-50 vectors (benches/search.rs): exact wins below ~5 % selectivity (0.1 %: 32 vs
/// 2 QPS), ties at 5 % (24 vs 22), loses above (20 %: 13 vs 30).
pub const EXACT_FILTER_MAX: usize = 2_000;
pub const EXACT_FILTER_SHARE: f64 = 0.05;

pub struct Collection {
    pub config: CollectionConfig,
    store: Arc<dyn DocumentStore>,
    index_dir: PathBuf,
    graph: RwLock<Arc<dyn VectorIndex>>,
    /// Points written while a dump has the graph frozen.
    side: RwLock<Side>,
    tombstones: RwLock<HashSet<PointId>>,
    metadata: MetadataCache,
    /// Live documents (the metadata cache counts passages).
    documents: AtomicUsize,
    lexical: LexicalIndex,
    writer: Mutex<()>,
    /// Held by a dump or a compaction for its whole run: they replace or read the whole graph.
    maintenance: Mutex<()>,
    compacting: AtomicBool,
    /// (next point, graph points, tombstones) at the last dump: an unchanged collection is not dumped again.
    dumped: Mutex<Option<(PointId, usize, usize)>>,
}

#[derive(Default)]
struct Side {
    frozen: bool,
    points: Vec<(PointId, Vec<f32>)>,
}

/// Largest vector component accepted (see `prepare_vector`).
pub const MAX_COMPONENT: f32 = 1e15;

/// How a filtered search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterStrategy {
    /// Exact over the matches when they are few (`EXACT_FILTER_MAX`), else the graph.
    Auto,
    /// Distance to every matching document.
    Exact,
    /// The HNSW walk with the filter applied to candidates.
    Graph,
}

/// A passage found by a search, with its whole document.
#[derive(Debug, Clone)]
pub struct Found {
    pub point: PointId,
    pub score: f32,
    pub document: Document,
    /// The passage's position among the document's passages.
    pub passage: usize,
}

/// A scored point, best first in the lists that carry it (dense: similarity, or l2 distance;
/// lexical: BM25).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub point: PointId,
    pub score: f32,
}

/// Counters for /collections/{name} and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IndexStats {
    pub documents: usize,
    /// Live passages (points).
    pub passages: usize,
    /// Passages in the lexical index.
    pub lexical_passages: u64,
    pub graph_points: usize,
    pub tombstones: usize,
    pub compacting: bool,
}

impl Collection {
    /// Opens a collection's index: the dump in force plus what the store wrote after it, or a
    /// rebuild from the store when the dump is missing or unusable. Never re-embeds.
    pub fn open(config: CollectionConfig, store: Arc<dyn DocumentStore>, index_root: &std::path::Path) -> Result<Self, EngineError> {
        let (name, id) = (config.name.clone(), config.id.clone());
        let index_dir = dump::collection_dir(index_root, &id);
        let live: HashSet<PointId> = store.live_points(&id)?.into_iter().collect();
        let next_point = store.next_point(&id)?;
        let loaded = dump::load(&index_dir, config.metric, config.model.dims).and_then(|loaded| match loaded {
            // A dump covering points the store never made durable would let new documents reuse
            // those ids and be served with the dump's vectors.
            Some((_, manifest)) if manifest.watermark > next_point => Err(index::IndexError::BadDump {
                path: index_dir.clone(),
                reason: format!("its watermark {} is above the store's next point {next_point}", manifest.watermark),
            }),
            Some((graph, manifest)) if graph.points().iter().any(|&p| p >= manifest.watermark) => Err(index::IndexError::BadDump {
                path: index_dir.clone(),
                reason: format!("it holds points at or above its watermark {}", manifest.watermark),
            }),
            other => Ok(other),
        });
        let graph: Arc<dyn VectorIndex> = match loaded {
            Ok(Some((graph, manifest))) => {
                let newer = store.vectors_after(&id, manifest.watermark.checked_sub(1))?;
                tracing::info!(collection = %name, points = manifest.points, newer = newer.len(), "index loaded from dump");
                graph.insert(&newer);
                Arc::from(graph)
            }
            Ok(None) if live.is_empty() => Arc::from(index::new_index(config.metric, &config.hnsw, 0)?),
            Ok(None) => {
                tracing::warn!(collection = %name, "no index dump; rebuilding the index from the store");
                rebuild(&*store, &config)?
            }
            Err(err) => {
                tracing::warn!(collection = %name, %err, "index dump unusable; rebuilding the index from the store");
                rebuild(&*store, &config)?
            }
        };
        let tombstones: HashSet<PointId> = graph.points().into_iter().filter(|p| !live.contains(p)).collect();
        let mut metadata = HashMap::with_capacity(live.len());
        let mut documents = 0;
        for document in store.documents(&id, None)? {
            let document = document?;
            documents += 1;
            let shared = Arc::new(document.metadata);
            for passage in &document.passages {
                metadata.insert(passage.point, shared.clone());
            }
        }
        let lexical = open_lexical(&*store, &config, &index_dir, next_point, &live)?;
        Ok(Collection {
            config,
            store,
            index_dir,
            graph: RwLock::new(graph),
            side: RwLock::new(Side::default()),
            tombstones: RwLock::new(tombstones),
            metadata: Arc::new(RwLock::new(metadata)),
            documents: AtomicUsize::new(documents),
            lexical,
            writer: Mutex::new(()),
            maintenance: Mutex::new(()),
            compacting: AtomicBool::new(false),
            dumped: Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The immutable id the store and the index directory know this collection by.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Store errors name the collection by id; callers know it by name.
    fn named(&self, err: crate::store::StoreError) -> EngineError {
        match err {
            crate::store::StoreError::CollectionNotFound(_) => EngineError::CollectionNotFound(self.name().to_owned()),
            other => other.into(),
        }
    }

    pub fn stats(&self) -> IndexStats {
        IndexStats {
            documents: self.documents.load(Ordering::Relaxed),
            passages: self.metadata.read().len(),
            lexical_passages: self.lexical.len(),
            graph_points: self.graph.read().len() + self.side.read().points.len(),
            tombstones: self.tombstones.read().len(),
            compacting: self.compacting.load(Ordering::Relaxed),
        }
    }

    /// Checks and prepares a vector for this collection: right width, finite, normalized for cosine.
    pub fn prepare_vector(&self, mut vector: Vec<f32>) -> Result<Vec<f32>, EngineError> {
        let dims = self.config.model.dims;
        if vector.len() != dims {
            return Err(EngineError::DimensionMismatch { expected: dims, got: vector.len() });
        }
        if vector.iter().any(|v| !v.is_finite()) {
            return Err(EngineError::InvalidVector("vector contains NaN or infinity".into()));
        }
        // Larger components overflow f32 dot products and l2 distances into infinity or NaN.
        if vector.iter().any(|v| v.abs() > MAX_COMPONENT) {
            return Err(EngineError::InvalidVector(format!("vector components must be within ±{MAX_COMPONENT:e}")));
        }
        if self.config.metric == Metric::Cosine {
            // In f64: squares of tiny or huge f32 components neither underflow nor overflow.
            let norm = vector.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
            if norm == 0.0 || !norm.is_finite() {
                return Err(EngineError::InvalidVector("a zero vector has no direction (cosine metric)".into()));
            }
            vector.iter_mut().for_each(|v| *v = (f64::from(*v) / norm) as f32);
        }
        Ok(vector)
    }

    /// Writes documents with their passages (all or none) and indexes them, in the graph and
    /// the lexical index. Returns once the write is durable and searchable both ways.
    pub fn upsert(self: &Arc<Self>, documents: Vec<NewDocument>) -> Result<Vec<Written>, EngineError> {
        let documents = documents
            .into_iter()
            .map(|mut doc| {
                super::validate_document_id(&doc.id)?;
                if doc.passages.is_empty() {
                    return Err(EngineError::InvalidDocument(format!("document '{}' has no passages", doc.id)));
                }
                for passage in &mut doc.passages {
                    passage.vector = self.prepare_vector(std::mem::take(&mut passage.vector))?;
                }
                Ok(doc)
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        fail::fail_point!("collection.upsert.before_store");
        let (written, change) = {
            let _writer = self.writer.lock();
            let written = self.store.upsert(self.id(), &documents).map_err(|e| self.named(e))?;
            let mut points: Vec<(PointId, Vec<f32>)> = Vec::new();
            let mut texts: Vec<(PointId, &str)> = Vec::new();
            let mut replaced: Vec<PointId> = Vec::new();
            let mut added_documents = 0;
            // An id repeated within the batch ends with its last document: the store dropped the
            // earlier ones' passages in the same transaction, so they are never indexed.
            let last: HashMap<&str, usize> = documents.iter().enumerate().map(|(i, d)| (d.id.as_str(), i)).collect();
            let existed: HashSet<&str> = written.iter().zip(&documents).filter(|(w, _)| !w.replaced.is_empty()).map(|(_, d)| d.id.as_str()).collect();
            // Metadata first: a point the graph can return must have its metadata for filters.
            {
                let mut cache = self.metadata.write();
                for (i, (w, doc)) in written.iter().zip(&documents).enumerate() {
                    for old in &w.replaced {
                        cache.remove(old);
                    }
                    replaced.extend(&w.replaced);
                    if last.get(doc.id.as_str()) != Some(&i) {
                        continue;
                    }
                    if !existed.contains(doc.id.as_str()) {
                        added_documents += 1;
                    }
                    let shared = Arc::new(doc.metadata.clone());
                    let spans: Vec<crate::domain::Span> = doc.passages.iter().map(|p| p.span).collect();
                    let passage_texts = crate::domain::slices(&doc.text, &spans);
                    for ((&point, passage), text) in w.points.iter().zip(&doc.passages).zip(passage_texts) {
                        cache.insert(point, shared.clone());
                        points.push((point, passage.vector.clone()));
                        texts.push((point, text));
                    }
                }
            }
            self.documents.fetch_add(added_documents, Ordering::Relaxed);
            self.tombstones.write().extend(replaced.iter().copied());
            let watermark = written.iter().flat_map(|w| w.points.last()).max().map_or(0, |p| p + 1);
            let change = self.lexical.write(&texts, &replaced, watermark)?;
            self.index(points);
            (written, change)
        };
        fail::fail_point!("collection.upsert.before_flush");
        self.store.flush()?;
        self.commit_lexical(change)?;
        self.maybe_compact();
        Ok(written)
    }

    fn commit_lexical(&self, change: u64) -> Result<(), EngineError> {
        let store = &self.store;
        self.lexical.commit(change, || store.flush().map_err(|e| e.to_string()))?;
        Ok(())
    }

    /// Adds points to the graph, or to the side while a dump has the graph frozen. Under `writer`.
    fn index(&self, points: Vec<(PointId, Vec<f32>)>) {
        let mut side = self.side.write();
        if side.frozen {
            side.points.extend(points);
            return;
        }
        drop(side);
        self.graph.read().clone().insert(&points);
    }

    /// Deletes documents by id, with all their passages; returns how many existed. Durable and
    /// gone from both indexes on return.
    pub fn delete(self: &Arc<Self>, ids: &[String]) -> Result<usize, EngineError> {
        let (removed, change) = {
            let _writer = self.writer.lock();
            let removed = self.store.delete(self.id(), ids).map_err(|e| self.named(e))?;
            let points: Vec<PointId> = removed.iter().flatten().copied().collect();
            let mut cache = self.metadata.write();
            points.iter().for_each(|p| {
                cache.remove(p);
            });
            drop(cache);
            self.documents.fetch_sub(removed.len(), Ordering::Relaxed);
            self.tombstones.write().extend(points.iter().copied());
            let change = self.lexical.write(&[], &points, 0)?;
            (removed.len(), change)
        };
        self.store.flush()?;
        self.commit_lexical(change)?;
        self.maybe_compact();
        Ok(removed)
    }

    /// Deletes every document the filter matches.
    pub fn delete_where(self: &Arc<Self>, filter: &Filter) -> Result<usize, EngineError> {
        let mut ids: Vec<String> = Vec::new();
        for point in self.matching(filter) {
            if let Some(passage) = self.passage_of(point)? {
                ids.push(passage.document);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        self.delete(&ids)
    }

    /// Which document a point belongs to (None once it is deleted).
    pub fn passage_of(&self, point: PointId) -> Result<Option<PassageOf>, EngineError> {
        self.store.passage_of(self.id(), point).map_err(|e| self.named(e))
    }

    /// Vectors of live points.
    pub fn vectors_of(&self, points: &[PointId]) -> Result<Vec<(PointId, Vec<f32>)>, EngineError> {
        self.store.vectors_of(self.id(), points).map_err(|e| self.named(e))
    }

    pub fn get(&self, id: &str) -> Result<Option<Document>, EngineError> {
        self.store.get(self.id(), id).map_err(|e| self.named(e))
    }

    /// Up to `limit` documents after the id `after`, in id order, that `filter` matches; and
    /// whether documents remain past the last one returned. A selective filter reads through the
    /// store until it finds `limit` matches (the metadata cache is keyed by point, not id).
    pub fn page(&self, after: Option<&[u8]>, limit: usize, filter: Option<&Filter>) -> Result<(Vec<Document>, bool), EngineError> {
        let mut page = Vec::with_capacity(limit.min(1024));
        let documents = self.store.documents(self.id(), after).map_err(|e| self.named(e))?;
        for document in documents {
            let document = document.map_err(|e| self.named(e))?;
            if filter.is_some_and(|f| !f.matches(&document.metadata)) {
                continue;
            }
            if page.len() == limit {
                return Ok((page, true));
            }
            page.push(document);
        }
        Ok((page, false))
    }

    /// Documents the filter matches, counted from the metadata cache without reading the store:
    /// a document's passages share one `Arc` of its metadata (see `open` and `upsert`), so
    /// distinct pointers are distinct documents.
    pub fn count_matching(&self, filter: &Filter) -> usize {
        let cache = self.metadata.read();
        let documents: HashSet<*const Map<String, Value>> = cache.values().filter(|meta| filter.matches(meta)).map(Arc::as_ptr).collect();
        documents.len()
    }

    fn matching(&self, filter: &Filter) -> Vec<PointId> {
        let cache = self.metadata.read();
        let mut points: Vec<PointId> = cache.iter().filter(|(_, meta)| filter.matches(meta)).map(|(p, _)| *p).collect();
        points.sort_unstable();
        points
    }

    /// The `k` nearest live passages to `vector` (already checked by `prepare_vector`), best
    /// first, with their documents.
    pub fn search(&self, vector: &[f32], k: usize, ef: Option<usize>, filter: Option<&Filter>) -> Result<Vec<Found>, EngineError> {
        self.search_with(vector, k, ef, filter, FilterStrategy::Auto)
    }

    /// `search` with the filtered-search strategy forced (benchmarks compare them).
    pub fn search_with(&self, vector: &[f32], k: usize, ef: Option<usize>, filter: Option<&Filter>, strategy: FilterStrategy) -> Result<Vec<Found>, EngineError> {
        let hits = self.dense(vector, k, ef, filter, strategy)?;
        self.fetch(&hits)
    }

    /// The `k` nearest live passages as scored points, best first.
    pub fn dense(&self, vector: &[f32], k: usize, ef: Option<usize>, filter: Option<&Filter>, strategy: FilterStrategy) -> Result<Vec<Scored>, EngineError> {
        let ef = ef.unwrap_or(self.config.hnsw.ef_search).max(k);
        let hits = match filter {
            Some(filter) => {
                let matching = self.matching(filter);
                let exact = match strategy {
                    FilterStrategy::Auto => {
                        let live = self.metadata.read().len();
                        matching.len() <= EXACT_FILTER_MAX.max((EXACT_FILTER_SHARE * live as f64) as usize)
                    }
                    FilterStrategy::Exact => true,
                    FilterStrategy::Graph => false,
                };
                if exact {
                    self.exact(vector, k, &matching)?
                } else {
                    let allowed: HashSet<PointId> = matching.into_iter().collect();
                    let accept = |p: PointId| allowed.contains(&p);
                    self.graph_search(vector, k, ef, Some(&accept))
                }
            }
            None => self.graph_search(vector, k, ef, None),
        };
        let metric = self.config.metric;
        Ok(hits.into_iter().map(|h| Scored { point: h.point, score: index::score(metric, h.distance) }).collect())
    }

    /// The `limit` best live passages for `query` by BM25, best first, among those `filter` matches.
    pub fn lexical(&self, query: &str, limit: usize, filter: Option<&Filter>) -> Result<Vec<Scored>, EngineError> {
        let metadata = self.metadata.clone();
        let filter = filter.cloned();
        // Liveness comes from the metadata cache: points deleted since the last commit the index
        // saw at open are skipped here, like the graph's tombstones.
        let accept: Accept = Arc::new(move |point| metadata.read().get(&point).is_some_and(|meta| filter.as_ref().is_none_or(|f| f.matches(meta))));
        let hits = self.lexical.search(query, limit, accept)?;
        Ok(hits.into_iter().map(|(point, score)| Scored { point, score }).collect())
    }

    /// The documents of scored points, in order; points deleted meanwhile are skipped.
    pub fn fetch(&self, hits: &[Scored]) -> Result<Vec<Found>, EngineError> {
        let mut found = Vec::with_capacity(hits.len());
        for hit in hits {
            let Some(passage) = self.passage_of(hit.point)? else { continue };
            if let Some(document) = self.get(&passage.document)? {
                found.push(Found { point: hit.point, score: hit.score, document, passage: passage.index });
            }
        }
        Ok(found)
    }

    fn graph_search(&self, vector: &[f32], k: usize, ef: usize, filter: Option<&(dyn Fn(PointId) -> bool + Sync)>) -> Vec<Hit> {
        let graph = self.graph.read().clone();
        let tombstones = self.tombstones.read();
        let mut hits = if tombstones.is_empty() {
            graph.search(vector, k, ef, filter)
        } else {
            let live = |p: PointId| !tombstones.contains(&p) && filter.is_none_or(|f| f(p));
            graph.search(vector, k, ef, Some(&live))
        };
        let side = self.side.read();
        if side.points.is_empty() {
            return hits;
        }
        // Points written during a dump: exact, then merged (a point being moved into the graph
        // may be in both for a moment).
        hits.extend(
            side.points
                .iter()
                .filter(|(p, _)| !tombstones.contains(p) && filter.is_none_or(|f| f(*p)))
                .map(|(point, v)| Hit { point: *point, distance: distance(self.config.metric, vector, v) }),
        );
        hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.point.cmp(&b.point)));
        hits.dedup_by_key(|h| h.point);
        hits.truncate(k);
        hits
    }

    /// Exact search over the given points: vectors only from the store.
    fn exact(&self, vector: &[f32], k: usize, points: &[PointId]) -> Result<Vec<Hit>, EngineError> {
        let mut hits: Vec<Hit> = self
            .store
            .vectors_of(self.id(), points)
            .map_err(|e| self.named(e))?
            .into_iter()
            .map(|(point, v)| Hit { point, distance: distance(self.config.metric, vector, &v) })
            .collect();
        hits.sort_by(|a, b| a.distance.total_cmp(&b.distance));
        hits.truncate(k);
        Ok(hits)
    }

    /// Starts a background compaction when tombstones pass `COMPACT_RATIO` of the graph.
    fn maybe_compact(self: &Arc<Self>) {
        let (tombstones, graph_points) = (self.tombstones.read().len(), self.graph.read().len());
        if tombstones == 0 || (tombstones as f64) < COMPACT_RATIO * graph_points as f64 {
            return;
        }
        if self.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        let collection = Arc::clone(self);
        let spawned = std::thread::Builder::new().name(format!("akidb-compact-{}", self.name())).spawn(move || {
            super::run_as_background_thread();
            if let Err(err) = collection.compact() {
                tracing::error!(collection = %collection.name(), %err, "compaction failed; will retry on a later write");
            }
            collection.compacting.store(false, Ordering::Release);
        });
        if spawned.is_err() {
            self.compacting.store(false, Ordering::Release);
        }
    }

    /// Rebuilds the graph from the store's live points and swaps it in. Writes continue while the
    /// bulk of the graph is built; they are blocked only for the catch-up and the swap.
    pub fn compact(&self) -> Result<(), EngineError> {
        let _maintenance = self.maintenance.lock();
        let name = self.id().to_owned();
        let snapshot_next = {
            let _writer = self.writer.lock();
            self.store.next_point(&name)?
        };
        let started = std::time::Instant::now();
        let vectors: Vec<(PointId, Vec<f32>)> = self.store.vectors_after(&name, None)?.into_iter().filter(|(p, _)| *p < snapshot_next).collect();
        let fresh: Arc<dyn VectorIndex> = Arc::from(index::new_index(self.config.metric, &self.config.hnsw, vectors.len())?);
        fresh.insert(&vectors);
        drop(vectors);
        let _writer = self.writer.lock();
        fresh.insert(&self.store.vectors_after(&name, snapshot_next.checked_sub(1))?);
        let live: HashSet<PointId> = self.store.live_points(&name)?.into_iter().collect();
        let tombstones: HashSet<PointId> = fresh.points().into_iter().filter(|p| !live.contains(p)).collect();
        let (before, after) = (self.graph.read().len(), fresh.len());
        *self.graph.write() = fresh;
        *self.tombstones.write() = tombstones;
        tracing::info!(collection = %self.name(), before, after, seconds = started.elapsed().as_secs_f32(), "index compacted");
        Ok(())
    }

    /// Dumps the graph atomically with the watermark it covers, unless nothing changed since the
    /// last dump. Writers wait only while the graph is frozen and thawed (see the module docs);
    /// searches never wait.
    pub fn dump(&self) -> Result<(), EngineError> {
        let _maintenance = self.maintenance.lock();
        let (watermark, graph, state) = {
            let _writer = self.writer.lock();
            let watermark = self.store.next_point(self.id()).map_err(|e| self.named(e))?;
            let graph = self.graph.read().clone();
            let state = (watermark, graph.len(), self.tombstones.read().len());
            if *self.dumped.lock() == Some(state) {
                return Ok(());
            }
            self.side.write().frozen = true;
            (watermark, graph, state)
        };
        let saved = (|| -> Result<(), EngineError> {
            // Every point below the watermark was written by a store call that has returned, so
            // this flush makes all of them durable before a dump can claim them.
            self.store.flush()?;
            fail::fail_point!("collection.dump.frozen");
            dump::save(&*graph, &self.index_dir, watermark, self.config.metric, self.config.model.dims)?;
            Ok(())
        })();
        let moved = {
            let _writer = self.writer.lock();
            let mut side = self.side.write();
            side.frozen = false;
            side.points.clone()
        };
        // Outside `writer`: later writes go straight to the graph; searches see these points in
        // the side until they are in the graph.
        graph.insert(&moved);
        self.side.write().points.drain(..moved.len());
        saved?;
        *self.dumped.lock() = Some(state);
        Ok(())
    }

    pub fn index_dir(&self) -> &std::path::Path {
        &self.index_dir
    }
}

/// Opens the collection's lexical index and brings it up to the store: replays what its last
/// commit missed, removes what was deleted since (or rebuilds it all, when it is unusable).
fn open_lexical(store: &dyn DocumentStore, config: &CollectionConfig, index_dir: &std::path::Path, next_point: PointId, live: &HashSet<PointId>) -> Result<LexicalIndex, EngineError> {
    /// Passages read from the store and handed to the writer at a time.
    const REPLAY_BATCH: usize = 10_000;
    let opened = LexicalIndex::open(&index_dir.join("lexical"), next_point)?;
    let lexical = opened.index;
    let dead: Vec<PointId> = if opened.rebuilt { Vec::new() } else { lexical.points()?.into_iter().filter(|p| !live.contains(p)).collect() };
    let started = std::time::Instant::now();
    let mut change = lexical.write(&[], &dead, 0)?;
    let (mut cursor, mut replayed) = (opened.replay_from.checked_sub(1), 0);
    loop {
        let newer = store.texts_after(&config.id, cursor, REPLAY_BATCH)?;
        let Some(&(last, _)) = newer.last() else { break };
        let texts: Vec<(PointId, &str)> = newer.iter().map(|(p, t)| (*p, t.as_str())).collect();
        change = lexical.write(&texts, &[], 0)?;
        replayed += texts.len();
        cursor = Some(last);
    }
    if replayed == 0 && dead.is_empty() && !opened.rebuilt {
        return Ok(lexical);
    }
    change = change.max(lexical.write(&[], &[], next_point)?);
    lexical.commit(change, || store.flush().map_err(|e| e.to_string()))?;
    tracing::info!(collection = %config.name, replayed, removed = dead.len(), rebuilt = opened.rebuilt, seconds = started.elapsed().as_secs_f32(), "lexical index caught up with the store");
    Ok(lexical)
}

fn rebuild(store: &dyn DocumentStore, config: &CollectionConfig) -> Result<Arc<dyn VectorIndex>, EngineError> {
    let vectors = store.vectors_after(&config.id, None)?;
    let graph = index::new_index(config.metric, &config.hnsw, vectors.len())?;
    graph.insert(&vectors);
    Ok(Arc::from(graph))
}

/// Same distances as the index uses, for exact search.
fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>(),
        Metric::Dot => index::distance_from_dot(a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()),
        Metric::L2 => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt(),
    }
}
