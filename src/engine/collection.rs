//! One collection: its config and the order of a write across store, payload index, graph and
//! lexical index.
//!
//! Writes are serialized by `writer` (store write, then payload, graph and lexical updates), so
//! the graph holds every live point below the store's next point id while no write is under way:
//! that is what makes a dump's watermark exact. Searches never take `writer`. The graph's dump
//! state (freeze, side list, tombstones, the move after a dump) is `LiveGraph` (`graph.rs`).
//!
//! Lock order (a thread holding one of these takes only locks below it, never above):
//!
//! 1. `maintenance` — a dump or a compaction, for its whole run;
//! 2. `writer` — one write at a time, store then indexes (a switch — `Engine::switch` — holds
//!    it on the collection it retires, and may then write into the collection taking its name,
//!    and take the engine's `ddl`); under it, `watches` — the registered watches
//!    (`watch.rs`), read by writers — each with its own small lock below that one;
//! 3. `payload` — the payload index (read by searches for the length of a filtered walk);
//! 4. the graph's one lock, inside `LiveGraph`;
//! 5. the lexical index's locks, inside `LexicalIndex` (its searches call back into `payload`
//!    from tantivy's collector, but hold no lexical lock while they do);
//! 6. `dumped` and the store's own locks, held for a read or an update only.
//!
//! Whatever fails after the store commit, the derived indexes converge on the store: the graph is
//! updated before the lexical index, a failed lexical write leaves the lexical index marked
//! behind (`lexical_behind`: its committed watermark stops below the failed write, and the next
//! write replays from there), and every dump first inserts any live point the graph lacks.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use roaring::RoaringTreemap;
use serde_json::{Map, Value};

use super::calibrate::{self, Calibration};
use super::filter::Filter;
use super::graph::{distance, LiveGraph};
use super::watch::{ChangeLog, SnapshotLog, Watch};
use super::payload::{file as payload_file, PayloadIndex, Plan};
use super::EngineError;
use crate::domain::IndexBackend;
use crate::index::{self, dump, Hit, IndexSpec, VectorIndex};

/// Documents deleted in one critical section by a delete by filter.
pub const DELETE_BATCH: usize = 1_000;
use crate::lexical::{Accept, LexicalIndex};
use crate::store::{CollectionConfig, Document, DocumentStore, Metric, NewDocument, PassageOf, PointId, Written};

/// Tombstones above this share of the graph trigger a rebuild of the graph from the store.
pub const COMPACT_RATIO: f64 = 0.2;
/// A filter the payload index estimates at most this many points, or at most
/// `EXACT_FILTER_SHARE` of the collection, is answered by an exact scan over the matches: recall
/// 1.0, and faster than the filtered graph walk, which wanders far when few points pass.
/// Measured on 100k GloVe-50 vectors (benches/search.rs, benches/results/search.md).
pub const EXACT_FILTER_MAX: usize = 2_000;
/// Candidates per wanted result, relative to the filter's share, for post-filtering (see
/// `Collection::post_filtered`), and the most candidates it asks for.
pub const POSTFILTER_OVERSAMPLING: f64 = 2.0;
pub const POSTFILTER_MAX_EF: usize = 256;
pub const EXACT_FILTER_SHARE: f64 = 0.05;

pub struct Collection {
    /// The config it was opened with; its `name` is the name at open (`name()` is current).
    pub config: CollectionConfig,
    /// The name it is known by now: a restore or a re-embed renames collections (`Engine::switch`).
    name: RwLock<Arc<str>>,
    /// Set, under `writer`, when a switch dropped this collection for another under its name (a
    /// restore's replace): writes that reach it afterwards fail with `EngineError::Moved` and are
    /// retried by name. A collection renamed away (a re-embed's old one) is not retired: writes
    /// that address it by the name they resolved notice the rename (`Addressed`).
    retired: AtomicBool,
    /// Snapshots and re-embeds reading the collection while it is written (`watch.rs`).
    watches: Mutex<Vec<Watch>>,
    store: Arc<dyn DocumentStore>,
    index_dir: PathBuf,
    /// The ANN graph with its side list and tombstones (one lock of its own).
    graph: LiveGraph,
    /// Metadata of live points, indexed for filters; its live set is what searches return.
    payload: Arc<RwLock<PayloadIndex>>,
    lexical: LexicalIndex,
    /// The lowest point a failed lexical write may have missed (`u64::MAX`: none): commits
    /// carry no watermark above it, and the next write replays the store from it.
    lexical_behind: AtomicU64,
    writer: Mutex<()>,
    /// Held by a dump or a compaction for its whole run: they replace or read the whole graph.
    maintenance: Mutex<()>,
    compacting: AtomicBool,
    /// The graph's backend: the config's, until `rebuild_on` moves the collection to another.
    backend: Mutex<IndexBackend>,
    /// (next point, graph points, tombstones, store changes) at the last dump: an unchanged
    /// collection is not dumped again.
    dumped: Mutex<Option<(PointId, usize, usize, u64)>>,
    /// The default search breadth measured on the collection's own points (`calibrate.rs`).
    calibration: Mutex<Option<Calibration>>,
    /// The breadth of a search that gives none: the configured ef, or the calibrated one above it.
    default_ef: AtomicUsize,
    /// A background calibration is running (`maybe_calibrate`).
    calibrating: AtomicBool,
    /// The open left the points written after the dump in the side list (graph frozen): the
    /// first of `finish_open`'s thread, a dump or a rebuild moves them into the graph.
    catching_up: AtomicBool,
    /// Live points at the last attempt to calibrate, measured or not (0: none yet): an attempt
    /// that measured nothing (a backend keeping no vectors) is not retried until the size moves.
    calibration_tried: AtomicU64,
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
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct IndexStats {
    pub documents: usize,
    /// Live passages (points).
    pub passages: usize,
    /// Passages in the lexical index.
    pub lexical_passages: u64,
    pub graph_points: usize,
    pub tombstones: usize,
    pub compacting: bool,
    /// Bytes in memory: the graph's vectors and structure (where the backend tells), the payload index.
    pub vector_bytes: usize,
    pub graph_bytes: usize,
    pub payload_bytes: usize,
    /// The breadth a search without `ef` uses, and the calibration behind it.
    pub search_ef: usize,
    pub calibration: Option<Calibration>,
}

impl Collection {
    /// Opens a collection's index: the dump in force plus what the store wrote after it, or a
    /// rebuild from the store when the dump is missing or unusable. Never re-embeds.
    pub fn open(config: CollectionConfig, store: Arc<dyn DocumentStore>, index_root: &std::path::Path) -> Result<Self, EngineError> {
        Self::open_after(config, store, index_root, false)
    }

    /// `open`, told whether the last run ended in a clean shutdown (every index written and
    /// synced): then the lexical index's files are trusted without a checksum pass over them.
    pub fn open_after(config: CollectionConfig, store: Arc<dyn DocumentStore>, index_root: &std::path::Path, clean: bool) -> Result<Self, EngineError> {
        let (name, id) = (config.name.clone(), config.id.clone());
        let index_dir = dump::collection_dir(index_root, &id);
        let started = std::time::Instant::now();
        let mut phases: Vec<(&str, f32)> = Vec::new();
        let mut lap = |phase: &'static str| phases.push((phase, started.elapsed().as_secs_f32()));
        let next_point = store.next_point(&id)?;
        let payload = open_payload(&*store, &config, &index_dir, next_point)?;
        // The payload index holds every live point (each document's passages): no scan of the
        // store's passages for them.
        let live = payload.live().clone();
        lap("payload");
        let spec = IndexSpec::of(&config);
        let loaded = dump::load(&index_dir, &spec).and_then(|loaded| match loaded {
            // A dump covering points the store never made durable would let new documents reuse
            // those ids and be served with the dump's vectors.
            Some((_, manifest)) if manifest.watermark > next_point => Err(index::IndexError::BadDump {
                path: index_dir.clone(),
                reason: format!("its watermark {} is above the store's next point {next_point}", manifest.watermark),
            }),
            Some((graph, manifest)) if graph.point_set().max().is_some_and(|p| p >= manifest.watermark) => Err(index::IndexError::BadDump {
                path: index_dir.clone(),
                reason: format!("it holds points at or above its watermark {}", manifest.watermark),
            }),
            other => Ok(other),
        });
        // Points written after the dump: inserted now when few, else served from the side list
        // (scanned exactly by searches) and inserted by a background thread after the open
        // (`finish_open`): after a crash, thousands of inserts would hold the server back from
        // ready for seconds (1.6 s for 10,000 at 400k points).
        let mut deferred = Vec::new();
        let graph: Arc<dyn VectorIndex> = match loaded {
            Ok(Some((graph, manifest))) => {
                let newer = store.vectors_after(&id, manifest.watermark.checked_sub(1))?;
                tracing::info!(collection = %name, points = manifest.points, newer = newer.len(), "index loaded from dump");
                if newer.len() < DEFER_INSERTS_FROM {
                    graph.insert(&newer);
                } else {
                    deferred = newer;
                }
                Arc::from(graph)
            }
            Ok(None) if live.is_empty() => Arc::from(index::new_index(&spec, 0)?),
            Ok(None) => {
                tracing::warn!(collection = %name, "no index dump; rebuilding the index from the store");
                rebuild(&*store, &config)?
            }
            Err(err) => {
                tracing::warn!(collection = %name, %err, "index dump unusable; rebuilding the index from the store");
                rebuild(&*store, &config)?
            }
        };
        lap("graph");
        let tombstones = dead_points(&*graph, &live);
        let graph = LiveGraph::new(graph, tombstones, config.metric, quantized(config.backend));
        let catching_up = !deferred.is_empty();
        if catching_up {
            // Frozen: the points go to the side list, and so do writes until the thaw.
            graph.freeze();
            graph.insert(deferred);
        }
        let config_backend = config.backend;
        let lexical = open_lexical(&*store, &config, &index_dir, next_point, &live, !clean)?;
        lap("lexical");
        tracing::info!(collection = %name, points = live.len(), ?phases, "collection opened (seconds since start, by phase)");
        let calibration = Calibration::load(&index_dir);
        let ef_search = config.hnsw.ef_search;
        Ok(Collection {
            name: RwLock::new(Arc::from(config.name.as_str())),
            retired: AtomicBool::new(false),
            watches: Mutex::new(Vec::new()),
            config,
            store,
            index_dir,
            graph,
            payload: Arc::new(RwLock::new(payload)),
            lexical,
            lexical_behind: AtomicU64::new(u64::MAX),
            writer: Mutex::new(()),
            maintenance: Mutex::new(()),
            compacting: AtomicBool::new(false),
            backend: Mutex::new(config_backend),
            dumped: Mutex::new(None),
            default_ef: AtomicUsize::new(calibration.map_or(ef_search, |c| c.ef.max(ef_search))),
            calibration: Mutex::new(calibration),
            calibrating: AtomicBool::new(false),
            calibration_tried: AtomicU64::new(0),
            catching_up: AtomicBool::new(catching_up),
        })
    }

    pub fn name(&self) -> Arc<str> {
        self.name.read().clone()
    }

    /// A switch gave this collection another name (`Engine::switch`, under the engine's lock).
    pub(crate) fn set_name(&self, name: &str) {
        *self.name.write() = Arc::from(name);
    }

    /// `writer`, unless a switch retired this collection or renamed it away from the name the
    /// write addressed (`expected`): the write must go to the collection that now has that name.
    fn lock_writer(&self, expected: Option<&str>) -> Result<parking_lot::MutexGuard<'_, ()>, EngineError> {
        let writer = self.writer.lock();
        if self.retired.load(Ordering::Acquire) || expected.is_some_and(|name| *self.name() != *name) {
            return Err(EngineError::Moved(expected.map_or_else(|| self.name().to_string(), str::to_owned)));
        }
        Ok(writer)
    }

    /// This collection as addressed by the name a request resolved now: its writes fail with
    /// `Moved` if a switch gives the name to another collection before they begin.
    pub fn addressed(self: &Arc<Self>) -> Addressed {
        Addressed { name: self.name(), collection: self.clone() }
    }

    /// Holds this collection's writes (for a switch): until the hold is dropped no write starts,
    /// and `WriteHold::retire` makes every later one fail with `Moved`.
    pub fn hold_writes(&self) -> Result<WriteHold<'_>, EngineError> {
        Ok(WriteHold { collection: self, _writer: self.lock_writer(None)? })
    }

    /// Starts recording which documents are written from now on (a re-embed's catch-up).
    pub fn watch_changes(&self) -> Result<WatchGuard<'_, ChangeLog>, EngineError> {
        let log = Arc::new(ChangeLog::default());
        let _writer = self.lock_writer(None)?;
        self.watches.lock().push(Watch::Changes(log.clone()));
        Ok(WatchGuard { collection: self, watch: Watch::Changes(log.clone()), log })
    }

    /// Reads the collection as it is now, document by document, while writes go on (see
    /// `watch.rs`). Returns the reader and the store's next point at its moment.
    pub fn begin_snapshot(self: &Arc<Self>) -> Result<SnapshotReader, EngineError> {
        let log = Arc::new(SnapshotLog::default());
        let _writer = self.lock_writer(None)?;
        let mut watches = self.watches.lock();
        if watches.iter().any(|w| matches!(w, Watch::Snapshot(_))) {
            return Err(EngineError::SnapshotRunning(self.name().to_string()));
        }
        watches.push(Watch::Snapshot(log.clone()));
        drop(watches);
        Ok(SnapshotReader { collection: self.clone(), log, after: None, finished: false })
    }

    /// The ids written since the last call, taken under `writer`: every write they name has
    /// committed (a write notes its ids before its store commit, under `writer`).
    pub fn take_changes(&self, log: &ChangeLog) -> std::collections::BTreeSet<String> {
        let _writer = self.writer.lock();
        log.take()
    }

    fn unwatch(&self, watch: &Watch) {
        self.watches.lock().retain(|w| !w.same(watch));
    }

    /// Tells the watches which documents a write is about to change. Under `writer`, before the
    /// store commit: a snapshot copies those ahead of its reader as they are now.
    fn note_writes<'a>(&self, ids: impl Iterator<Item = &'a str> + Clone) -> Result<(), EngineError> {
        let watches = self.watches.lock().clone();
        for watch in watches {
            match watch {
                Watch::Changes(log) => log.touched_extend(ids.clone()),
                Watch::Snapshot(log) => {
                    for id in log.wanted(ids.clone()) {
                        let before = self.read_whole(&id)?;
                        log.keep(id, before);
                    }
                }
            }
        }
        Ok(())
    }

    /// A document with its passages' vectors, as a document to write. Under `writer` (or with
    /// no write to it in between) the two reads agree; otherwise see `read_whole_racing`.
    pub fn read_whole(&self, id: &str) -> Result<Option<NewDocument>, EngineError> {
        self.read_whole_racing(id)?.ok_or_else(|| EngineError::Store(crate::store::StoreError::Corrupt { tree: "passages".into(), message: format!("document {id} lists a point without a vector") }))
    }

    /// `read_whole` outside `writer`: `Ok(None)` when a write replaced or deleted the document
    /// between reading it and reading its vectors (then a snapshot holds its before-image).
    fn read_whole_racing(&self, id: &str) -> Result<Option<Option<NewDocument>>, EngineError> {
        let Some(document) = self.get(id)? else { return Ok(Some(None)) };
        let points: Vec<PointId> = document.passages.iter().map(|p| p.point).collect();
        let vectors: HashMap<PointId, Vec<f32>> = self.vectors_of(&points)?.into_iter().collect();
        let mut passages = Vec::with_capacity(points.len());
        for passage in &document.passages {
            let Some(vector) = vectors.get(&passage.point) else { return Ok(None) };
            passages.push(crate::domain::NewPassage { span: passage.span, vector: vector.clone() });
        }
        Ok(Some(Some(NewDocument { id: document.id, text: document.text, metadata: document.metadata, passages })))
    }

    /// Writes documents whose vectors were prepared by this collection's kind before (a
    /// snapshot's): widths and values are checked, vectors are not normalized again (that could
    /// move their last bits).
    pub fn upsert_as_is(self: &Arc<Self>, documents: Vec<NewDocument>) -> Result<(), EngineError> {
        let documents = self.check_documents(documents, false)?;
        let (_, lexical) = {
            let _writer = self.lock_writer(None)?;
            self.write_locked(&documents)?
        };
        self.finish_write(lexical)
    }

    /// The immutable id the store and the index directory know this collection by.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Store errors name the collection by id; callers know it by name.
    fn named(&self, err: crate::store::StoreError) -> EngineError {
        match err {
            crate::store::StoreError::CollectionNotFound(_) => EngineError::CollectionNotFound(self.name().to_string()),
            other => other.into(),
        }
    }

    pub fn stats(&self) -> IndexStats {
        let graph = self.graph.counts();
        let (vector_bytes, graph_bytes) = self.graph.graph().memory();
        let payload = self.payload.read();
        IndexStats {
            vector_bytes,
            graph_bytes,
            payload_bytes: payload.memory_bytes(),
            documents: payload.documents() as usize,
            passages: payload.len() as usize,
            lexical_passages: self.lexical.len(),
            graph_points: graph.points,
            tombstones: graph.tombstones,
            compacting: self.compacting.load(Ordering::Relaxed),
            search_ef: self.default_ef.load(Ordering::Relaxed),
            calibration: *self.calibration.lock(),
        }
    }

    /// Measures the default search breadth again when the collection grew or shrank by half since
    /// the last measure (or was never measured and has `calibrate::MIN_POINTS`). Slow (an exact
    /// scan per sample query): background threads only.
    pub fn calibrate_if_stale(&self) {
        // One measure at a time (the dump thread's and a write's background one).
        if self.calibrating.swap(true, Ordering::AcqRel) {
            return;
        }
        let _done = ClearOnDrop(&self.calibrating);
        self.calibrate_now();
    }

    /// Whether the breadth should be measured at `live` points.
    fn calibration_due(&self, live: u64) -> bool {
        let tried = self.calibration_tried.load(Ordering::Relaxed);
        if tried != 0 && !calibrate::moved_by_half(tried, live) {
            return false;
        }
        match *self.calibration.lock() {
            Some(c) => c.stale(live),
            None => live >= calibrate::MIN_POINTS,
        }
    }

    /// `calibrate_if_stale` under the `calibrating` flag the caller holds.
    fn calibrate_now(&self) {
        let live = self.payload.read().live().clone();
        if !self.calibration_due(live.len()) {
            return;
        }
        self.calibration_tried.store(live.len(), Ordering::Relaxed);
        let started = std::time::Instant::now();
        let Some(measured) = calibrate::measure(&self.graph, &live, self.config.metric, self.config.dims, self.config.hnsw.ef_search) else { return };
        if let Err(err) = measured.save(&self.index_dir) {
            tracing::warn!(collection = %self.name(), %err, "calibration not saved; it is measured again after a restart");
        }
        tracing::info!(collection = %self.name(), points = measured.points, ef = measured.ef, recall = measured.recall, filter_boost = measured.filter_boost, filtered_recall = measured.filtered_recall, seconds = started.elapsed().as_secs_f32(), "default search breadth calibrated");
        self.default_ef.store(measured.ef.max(self.config.hnsw.ef_search), Ordering::Relaxed);
        *self.calibration.lock() = Some(measured);
    }

    /// Checks and prepares a vector for this collection: right width, finite, normalized for cosine.
    pub fn prepare_vector(&self, mut vector: Vec<f32>) -> Result<Vec<f32>, EngineError> {
        self.check_vector(&vector)?;
        if self.config.metric == Metric::Cosine {
            // In f64: squares of tiny or huge f32 components neither underflow nor overflow.
            // A zero vector stays zero (cosine 0 to everything), as Qdrant and
            // torch.nn.functional.normalize leave it: refusing it would break clients that
            // send one as a placeholder.
            let norm = vector.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
            if norm > 0.0 {
                vector.iter_mut().for_each(|v| *v = (f64::from(*v) / norm) as f32);
            }
        }
        Ok(vector)
    }

    /// Right width, finite, bounded: what every stored vector must be.
    fn check_vector(&self, vector: &[f32]) -> Result<(), EngineError> {
        let dims = self.config.dims;
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
        Ok(())
    }

    /// Writes documents with their passages (all or none) and indexes them, in the graph and
    /// the lexical index. Returns once the write is durable and searchable both ways.
    pub fn upsert(self: &Arc<Self>, documents: Vec<NewDocument>) -> Result<Vec<Written>, EngineError> {
        self.try_upsert(documents, None)?.map_err(|_| EngineError::Moved(self.name().to_string()))
    }

    /// `upsert`, giving the documents back (prepared: vectors checked and normalized) when a
    /// switch retired this collection, so the caller can send them where its name now leads.
    pub fn try_upsert(self: &Arc<Self>, documents: Vec<NewDocument>, expected: Option<&str>) -> Result<Result<Vec<Written>, Vec<NewDocument>>, EngineError> {
        let documents = self.check_documents(documents, true)?;
        fail::fail_point!("collection.upsert.before_store");
        let (written, lexical) = {
            let _writer = match self.lock_writer(expected) {
                Err(EngineError::Moved(_)) => return Ok(Err(documents)),
                other => other?,
            };
            self.write_locked(&documents)?
        };
        self.finish_write(lexical)?;
        Ok(Ok(written))
    }

    /// Rewrites existing documents from what the store holds now: `change` gets each document
    /// (with its text; None when it does not exist) and gives its replacement, or None to leave
    /// it; an error from it writes nothing. Reading and writing happen under `writer`, so a
    /// concurrent write is never undone by a stale copy. Returns how many were rewritten.
    pub fn rewrite<E: From<EngineError>>(self: &Arc<Self>, ids: &[String], change: impl FnMut(&str, Option<Document>) -> Result<Option<NewDocument>, E>) -> Result<usize, E> {
        self.rewrite_as(ids, change, None)
    }

    fn rewrite_as<E: From<EngineError>>(self: &Arc<Self>, ids: &[String], mut change: impl FnMut(&str, Option<Document>) -> Result<Option<NewDocument>, E>, expected: Option<&str>) -> Result<usize, E> {
        let (count, lexical) = {
            let _writer = self.lock_writer(expected)?;
            let mut documents = Vec::new();
            for id in ids {
                if let Some(new) = change(id, self.get(id)?)? {
                    documents.push(new);
                }
            }
            if documents.is_empty() {
                return Ok(0);
            }
            let documents = self.check_documents(documents, true)?;
            let (_, lexical) = self.write_locked(&documents)?;
            (documents.len(), lexical)
        };
        self.finish_write(lexical)?;
        Ok(count)
    }

    /// Replaces the metadata of existing documents, keeping their text, passages and vectors:
    /// the payload index changes, the graph and the lexical index do not. `change` gets each
    /// document's metadata as the store holds it now (under `writer`) and gives the new one, or
    /// None to leave it. Missing documents are skipped; returns how many changed.
    pub fn update_metadata<E: From<EngineError>>(self: &Arc<Self>, ids: &[String], change: impl FnMut(&str, Map<String, Value>) -> Result<Option<Map<String, Value>>, E>) -> Result<usize, E> {
        self.update_metadata_as(ids, change, None)
    }

    fn update_metadata_as<E: From<EngineError>>(self: &Arc<Self>, ids: &[String], mut change: impl FnMut(&str, Map<String, Value>) -> Result<Option<Map<String, Value>>, E>, expected: Option<&str>) -> Result<usize, E> {
        let count = {
            let _writer = self.lock_writer(expected)?;
            let mut changes = Vec::new();
            for id in ids {
                let Some(document) = self.get_head(id)? else { continue };
                if let Some(metadata) = change(id, document.metadata)? {
                    changes.push((id.clone(), metadata));
                }
            }
            self.note_writes(changes.iter().map(|(id, _)| id.as_str()))?;
            let points = self.store.set_metadata(self.id(), &changes).map_err(|e| self.named(e))?;
            let mut payload = self.payload.write();
            let mut count = 0;
            for ((_, metadata), points) in changes.iter().zip(points) {
                let Some(points) = points else { continue };
                payload.remove(&points);
                payload.insert(&points, metadata);
                count += 1;
            }
            count
        };
        self.store.flush().map_err(EngineError::from)?;
        Ok(count)
    }

    /// Checks documents before a write: valid ids, passages, vectors checked, and prepared
    /// (normalized for cosine) unless they were prepared by a collection like this one before
    /// (a snapshot's: normalizing again could move their last bits).
    fn check_documents(&self, documents: Vec<NewDocument>, prepare: bool) -> Result<Vec<NewDocument>, EngineError> {
        documents
            .into_iter()
            .map(|mut doc| {
                super::validate_document_id(&doc.id)?;
                if doc.passages.is_empty() {
                    return Err(EngineError::InvalidDocument(format!("document '{}' has no passages", doc.id)));
                }
                for passage in &mut doc.passages {
                    if prepare {
                        passage.vector = self.prepare_vector(std::mem::take(&mut passage.vector))?;
                    } else {
                        self.check_vector(&passage.vector)?;
                    }
                }
                Ok(doc)
            })
            .collect()
    }

    /// After a write's critical section: durable, then the lexical commit, then a compaction
    /// when tombstones call for one.
    fn finish_write(self: &Arc<Self>, lexical: Result<u64, EngineError>) -> Result<(), EngineError> {
        fail::fail_point!("collection.upsert.before_flush");
        self.store.flush()?;
        self.commit_lexical(lexical?)?;
        self.maybe_compact();
        Ok(())
    }

    /// The store write and the index updates of an upsert; under `writer`. The lexical result
    /// is the change to commit (the store and the graph hold the write even when it failed).
    fn write_locked(&self, documents: &[NewDocument]) -> Result<(Vec<Written>, Result<u64, EngineError>), EngineError> {
        self.note_writes(documents.iter().map(|d| d.id.as_str()))?;
        let written = self.store.upsert(self.id(), documents).map_err(|e| self.named(e))?;
        let mut points: Vec<(PointId, Vec<f32>)> = Vec::new();
        let mut texts: Vec<(PointId, &str)> = Vec::new();
        let mut replaced: Vec<PointId> = Vec::new();
        // An id repeated within the batch ends with its last document: the store dropped the
        // earlier ones' passages in the same transaction, so they are never indexed.
        let last: HashMap<&str, usize> = documents.iter().enumerate().map(|(i, d)| (d.id.as_str(), i)).collect();
        // The payload first: a point the graph can return must be live and filterable.
        {
            let mut payload = self.payload.write();
            for (i, (w, doc)) in written.iter().zip(documents).enumerate() {
                payload.remove(&w.replaced);
                replaced.extend(&w.replaced);
                if last.get(doc.id.as_str()) != Some(&i) {
                    continue;
                }
                payload.insert(&w.points, &doc.metadata);
                let spans: Vec<crate::domain::Span> = doc.passages.iter().map(|p| p.span).collect();
                let passage_texts = crate::domain::slices(&doc.text, &spans);
                for ((&point, passage), text) in w.points.iter().zip(&doc.passages).zip(passage_texts) {
                    points.push((point, passage.vector.clone()));
                    // A document brought with only a vector has no text to index.
                    if !text.is_empty() {
                        texts.push((point, text));
                    }
                }
            }
        }
        // The graph before the lexical index, which may fail (disk full, too many files).
        self.graph.retire(&replaced);
        self.graph.insert(points);
        let first = written.iter().flat_map(|w| w.points.first()).min().copied();
        let watermark = written.iter().flat_map(|w| w.points.last()).max().map_or(0, |p| p + 1);
        let lexical = self.write_lexical(&texts, &replaced, watermark, first);
        Ok((written, lexical))
    }

    /// Hands a write's passages and deletions to the lexical index, first replaying whatever an
    /// earlier failed write left out. On failure the index is marked behind from `first` (the
    /// write's lowest new point, else the store's next point): the store and the graph hold the write, and
    /// the next write (or the next open) brings the lexical index up to them. Under `writer`.
    fn write_lexical(&self, added: &[(PointId, &str)], deleted: &[PointId], watermark: PointId, first: Option<PointId>) -> Result<u64, EngineError> {
        let result = (|| {
            self.catch_up_lexical()?;
            fail::fail_point!("collection.lexical.write", |_| Err(EngineError::Lexical(crate::lexical::LexicalError::Index {
                path: self.index_dir.join("lexical"),
                message: "failpoint: lexical write failed".into()
            })));
            Ok(self.lexical.write(added, deleted, watermark)?)
        })();
        if result.is_err() {
            // Only deletions failed (no new point): nothing to replay, but the catch-up's sweep
            // of points no longer live still runs.
            let from = first.or_else(|| self.store.next_point(self.id()).ok()).unwrap_or(0);
            self.mark_lexical_behind(from);
        }
        result
    }

    /// Replays the store into the lexical index from where a failed write left it behind: live
    /// passages at or above that point are re-added and points the store no longer holds are
    /// removed. Under `writer`.
    fn catch_up_lexical(&self) -> Result<(), EngineError> {
        let behind = self.lexical_behind.load(Ordering::Acquire);
        if behind == u64::MAX {
            return Ok(());
        }
        let live: RoaringTreemap = self.store.live_points(self.id()).map_err(|e| self.named(e))?.into_iter().collect();
        let next_point = self.store.next_point(self.id()).map_err(|e| self.named(e))?;
        replay_lexical(&*self.store, &self.config, &self.lexical, behind, &live, next_point)?;
        self.lexical.cap_watermark(u64::MAX);
        self.lexical_behind.store(u64::MAX, Ordering::Release);
        tracing::info!(collection = %self.name(), from = behind, "lexical index caught up with the store");
        Ok(())
    }

    /// Commits the lexical index up to `change`. A failed commit rolls the index back to its
    /// last commit, so everything from that commit's watermark is marked behind and replayed
    /// from the store by the next write (or the next open).
    fn commit_lexical(&self, change: u64) -> Result<(), EngineError> {
        let store = &self.store;
        if let Err(err) = self.lexical.commit(change, || store.flush().map_err(|e| e.to_string())) {
            self.mark_lexical_behind(self.lexical.committed_watermark());
            return Err(err.into());
        }
        Ok(())
    }

    /// Records that the lexical index may lack points from `from` on (see `write_lexical`).
    fn mark_lexical_behind(&self, from: PointId) {
        let behind = from.min(self.lexical_behind.load(Ordering::Acquire));
        self.lexical_behind.store(behind, Ordering::Release);
        self.lexical.cap_watermark(behind);
        tracing::error!(collection = %self.name(), from = behind, "lexical index write failed; it will catch up from the store");
    }

    /// Deletes documents by id, with all their passages; returns how many existed. Durable and
    /// gone from both indexes on return.
    pub fn delete(self: &Arc<Self>, ids: &[String]) -> Result<usize, EngineError> {
        self.delete_as(ids, None)
    }

    fn delete_as(self: &Arc<Self>, ids: &[String], expected: Option<&str>) -> Result<usize, EngineError> {
        let (removed, lexical) = {
            let _writer = self.lock_writer(expected)?;
            self.delete_locked(ids)?
        };
        self.store.flush()?;
        self.commit_lexical(lexical?)?;
        self.maybe_compact();
        Ok(removed)
    }

    /// The store delete and the index updates. Under `writer`; the lexical result is the change
    /// to commit (the store and the graph hold the delete even when it failed).
    fn delete_locked(&self, ids: &[String]) -> Result<(usize, Result<u64, EngineError>), EngineError> {
        self.note_writes(ids.iter().map(String::as_str))?;
        let removed = self.store.delete(self.id(), ids).map_err(|e| self.named(e))?;
        let points: Vec<PointId> = removed.iter().flatten().copied().collect();
        self.payload.write().remove(&points);
        self.graph.retire(&points);
        let lexical = self.write_lexical(&[], &points, 0, None);
        Ok((removed.len(), lexical))
    }

    /// Deletes every document the filter matches, `DELETE_BATCH` documents per critical
    /// section: each batch is resolved and deleted under `writer`, so a document a concurrent
    /// write changed to no longer match is never deleted. Stops when nothing matches, or after
    /// as many batches as the matches at the start need (writers adding matches as fast as they
    /// are deleted cannot keep it running).
    pub fn delete_where(self: &Arc<Self>, filter: &Filter) -> Result<usize, EngineError> {
        self.delete_where_as(filter, None)
    }

    fn delete_where_as(self: &Arc<Self>, filter: &Filter, expected: Option<&str>) -> Result<usize, EngineError> {
        let filter = self.resolve_filter(filter)?;
        let plan = Plan::compile(&filter);
        let rounds = self.payload.read().count_documents(&plan) as usize / DELETE_BATCH + 1;
        let mut deleted = 0;
        for _ in 0..rounds {
            fail::fail_point!("collection.delete_where.batch");
            let (removed, lexical) = {
                let _writer = self.lock_writer(expected)?;
                let (mut ids, mut seen) = (Vec::new(), HashSet::new());
                let matching = self.payload.read().matching(&plan);
                for point in matching {
                    if let Some(passage) = self.passage_of(point)? {
                        if seen.insert(passage.document.clone()) {
                            ids.push(passage.document);
                        }
                        if ids.len() == DELETE_BATCH {
                            break;
                        }
                    }
                }
                if ids.is_empty() {
                    break;
                }
                self.delete_locked(&ids)?
            };
            self.store.flush()?;
            self.commit_lexical(lexical?)?;
            deleted += removed;
        }
        self.maybe_compact();
        Ok(deleted)
    }

    /// Which document a point belongs to (None once it is deleted).
    pub fn passage_of(&self, point: PointId) -> Result<Option<PassageOf>, EngineError> {
        self.store.passage_of(self.id(), point).map_err(|e| self.named(e))
    }

    /// Vectors of live points.
    pub fn vectors_of(&self, points: &[PointId]) -> Result<Vec<(PointId, Vec<f32>)>, EngineError> {
        self.store.vectors_of(self.id(), points).map_err(|e| self.named(e))
    }

    /// Ids of live documents, in id (byte) order; nothing but the keys is read.
    pub fn document_ids(&self) -> Result<impl Iterator<Item = Result<String, EngineError>> + '_, EngineError> {
        let ids = self.store.document_ids(self.id()).map_err(|e| self.named(e))?;
        Ok(ids.map(|id| id.map_err(|e| self.named(e))))
    }

    pub fn get(&self, id: &str) -> Result<Option<Document>, EngineError> {
        self.store.get(self.id(), id).map_err(|e| self.named(e))
    }

    /// `get` without the text (left empty, never read): for answers that carry metadata only.
    pub fn get_head(&self, id: &str) -> Result<Option<Document>, EngineError> {
        self.store.get_head(self.id(), id).map_err(|e| self.named(e))
    }

    /// Up to `limit` documents after the id `after`, in id order, that `filter` matches; and
    /// whether documents remain past the last one returned. A selective filter reads through the
    /// store until it finds `limit` matches (the metadata cache is keyed by point, not id).
    /// Without `with_text`, the documents' texts are neither read nor returned (left empty).
    pub fn page(&self, after: Option<&[u8]>, limit: usize, filter: Option<&Filter>, with_text: bool) -> Result<(Vec<Document>, bool), EngineError> {
        let mut page = Vec::with_capacity(limit.min(1024));
        let documents = self.store.documents(self.id(), after, with_text).map_err(|e| self.named(e))?;
        for document in documents {
            let document = document.map_err(|e| self.named(e))?;
            if filter.is_some_and(|f| !f.matches_document(&document.id, &document.metadata, document.passages.first().map(|p| p.point))) {
                continue;
            }
            if page.len() == limit {
                return Ok((page, true));
            }
            page.push(document);
        }
        Ok((page, false))
    }

    /// `filter` with every `Condition` in it resolved into the points it matches (itself when
    /// it has none): what the payload index and the planner take.
    pub fn resolve_filter(&self, filter: &Filter) -> Result<Filter, EngineError> {
        Ok(match filter {
            Filter::Condition(clause) => self.resolve(clause)?,
            Filter::And(all) if filter.has_condition() => Filter::And(all.iter().map(|f| self.resolve_filter(f)).collect::<Result<_, _>>()?),
            Filter::Or(any) if filter.has_condition() => Filter::Or(any.iter().map(|f| self.resolve_filter(f)).collect::<Result<_, _>>()?),
            other => other.clone(),
        })
    }

    /// The points of the documents `clause` matches, as a filter the indexes take: one pass
    /// over the store's metadata (texts are not read). See `condition` for why.
    pub fn resolve(&self, clause: &super::Clause) -> Result<Filter, EngineError> {
        let mut points = roaring::RoaringTreemap::new();
        for document in self.store.documents(self.id(), None, false).map_err(|e| self.named(e))? {
            let document = document.map_err(|e| self.named(e))?;
            if clause.matches(&document.id, &document.metadata) {
                points.extend(document.passages.iter().map(|p| p.point));
            }
        }
        Ok(Filter::Points(Arc::new(points)))
    }

    /// Documents the filter matches, counted from the payload index without reading the store.
    pub fn count_matching(&self, filter: &Filter) -> Result<usize, EngineError> {
        let plan = Plan::compile(&self.resolve_filter(filter)?);
        Ok(self.payload.read().count_documents(&plan) as usize)
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
        // f16 / i8 graphs rank by approximate distances: take twice the candidates, then rescore
        // them with the stored f32 vectors (as Qdrant rescores quantized search).
        let quantized = self.quantized();
        let (k_wanted, k) = (k, if quantized { (2 * k).max(k + 10) } else { k });
        let ef = ef.unwrap_or_else(|| self.default_ef.load(Ordering::Relaxed)).max(k);
        let hits = match filter.filter(|f| !f.matches_everything()) {
            Some(filter) => {
                let plan = Plan::compile(&self.resolve_filter(filter)?);
                let payload = self.payload.read();
                // Once per search: an `$and` estimate intersects posting sets.
                let estimate = payload.estimate(&plan, u64::MAX);
                let exact = match strategy {
                    FilterStrategy::Auto => {
                        let threshold = EXACT_FILTER_MAX.max((EXACT_FILTER_SHARE * payload.len() as f64) as usize) as u64;
                        estimate <= threshold
                    }
                    FilterStrategy::Exact => true,
                    FilterStrategy::Graph => false,
                };
                if exact {
                    let matching: Vec<PointId> = payload.matching(&plan).into_iter().collect();
                    drop(payload);
                    self.exact(vector, k, &matching)?
                } else {
                    // The payload stays read-locked for the walk: writers wait for it, briefly.
                    let accept = |p: PointId| payload.accepts(&plan, p);
                    match self.post_filtered(vector, k, ef, payload.len(), estimate, &accept) {
                        Some(hits) => hits,
                        None => self.graph.search(vector, k, ef, Some(&accept)),
                    }
                }
            }
            None => self.graph.search(vector, k, ef, None),
        };
        let hits = if quantized { self.rescore(vector, &hits, k_wanted)? } else { hits };
        let metric = self.config.metric;
        Ok(hits.into_iter().map(|h| Scored { point: h.point, score: index::score(metric, h.distance) }).collect())
    }

    /// A broad filter answered by an unfiltered walk over more candidates, filtered after: with
    /// `matches` of `live` points passing, `POSTFILTER_OVERSAMPLING * k * live / matches`
    /// candidates hold about twice the `k` wanted, and an unfiltered walk keeps its early stop,
    /// where a filtered one visits ever more points to find `ef` that pass (measured in
    /// benches/results/search.md). `None` when that would need more than `POSTFILTER_MAX_EF`
    /// candidates, or when fewer than `k` passed (the filter's estimate was an upper bound).
    fn post_filtered(&self, vector: &[f32], k: usize, ef: usize, live: u64, matches: u64, accept: &(dyn Fn(PointId) -> bool + Sync)) -> Option<Vec<Hit>> {
        let wanted = (POSTFILTER_OVERSAMPLING * k as f64 * live as f64 / matches.max(1) as f64).ceil() as usize;
        if wanted > POSTFILTER_MAX_EF.max(ef) {
            return None;
        }
        // A walk at breadth ef finds ef candidates anyway: keep them all. The breadth also grows
        // with the square root of 1 / share: the filtered top k lie deeper in the unfiltered
        // ranking, where a walk at ef is less exact (at 50 %, ef alone gave recall 0.948-0.952).
        // The calibrated boost widens it further where this collection needs it (recall@10 0.97
        // at 10 % and 50 % on its own points).
        let boost = self.calibration.lock().map_or(1.0, |c| c.filter_boost);
        let breadth = ef.max(wanted).max(calibrate::post_filter_breadth(ef, matches.max(1) as f64 / live.max(1) as f64, boost, POSTFILTER_MAX_EF));
        let mut hits = self.graph.search(vector, breadth, breadth, None);
        hits.retain(|h| accept(h.point));
        (hits.len() >= k || matches as usize <= hits.len()).then(|| {
            // f16 / i8: every candidate goes to the rescoring; the side list's (exact) hits come
            // after the graph's, and the first k by approximate distance could drop them.
            if !self.quantized() {
                hits.truncate(k);
            }
            hits
        })
    }

    /// Whether the graph holds f16 / i8 vectors (its distances are approximate).
    fn quantized(&self) -> bool {
        quantized(self.backend())
    }

    /// Exact distances from the store's f32 vectors for `hits`, best `k` first.
    fn rescore(&self, vector: &[f32], hits: &[Hit], k: usize) -> Result<Vec<Hit>, EngineError> {
        let points: Vec<PointId> = hits.iter().map(|h| h.point).collect();
        let metric = self.config.metric;
        let mut exact: Vec<Hit> = self
            .store
            .vectors_of(self.id(), &points)
            .map_err(|e| self.named(e))?
            .into_iter()
            .map(|(point, v)| Hit { point, distance: distance(metric, vector, &v) })
            .collect();
        exact.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.point.cmp(&b.point)));
        exact.truncate(k);
        Ok(exact)
    }

    /// The `limit` best live passages for `query` by BM25, best first, among those `filter` matches.
    pub fn lexical(&self, query: &str, limit: usize, filter: Option<&Filter>) -> Result<Vec<Scored>, EngineError> {
        let payload = self.payload.clone();
        let plan = match filter {
            Some(filter) => Plan::compile(&self.resolve_filter(filter)?),
            None => Plan::All,
        };
        // Liveness comes from the payload index: points deleted since the last commit the index
        // saw at open are skipped here, like the graph's tombstones.
        let accept: Accept = Arc::new(move |point| payload.read().accepts(&plan, point));
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

    /// Exact search over the given live points: vectors from the graph where it keeps them
    /// readable (memory), else from the store.
    fn exact(&self, vector: &[f32], k: usize, points: &[PointId]) -> Result<Vec<Hit>, EngineError> {
        let metric = self.config.metric;
        let graph = self.graph.graph();
        let mut hits = Vec::with_capacity(points.len());
        let mut missing = Vec::new();
        let mut buffer = vec![0f32; vector.len()];
        for &point in points {
            if graph.vector_into(point, &mut buffer) {
                hits.push(Hit { point, distance: distance(metric, vector, &buffer) });
            } else {
                missing.push(point);
            }
        }
        if !missing.is_empty() {
            let stored = self.store.vectors_of(self.id(), &missing).map_err(|e| self.named(e))?;
            hits.extend(stored.into_iter().map(|(point, v)| Hit { point, distance: distance(metric, vector, &v) }));
        }
        hits.sort_by(|a, b| a.distance.total_cmp(&b.distance));
        hits.truncate(k);
        Ok(hits)
    }

    /// Starts a background compaction when tombstones pass `COMPACT_RATIO` of the graph, and a
    /// background calibration of the search breadth when the collection grew or shrank by half.
    fn maybe_compact(self: &Arc<Self>) {
        self.maybe_calibrate();
        let counts = self.graph.counts();
        if counts.tombstones == 0 || (counts.tombstones as f64) < COMPACT_RATIO * counts.points as f64 {
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

    /// Moves the points an open left in the side list into the graph, on a thread of its own
    /// (normal priority: searches scan those points exactly until then). Engine calls it once a
    /// collection is opened; a dump or a rebuild does it first if it has not run yet.
    pub fn finish_open(self: &Arc<Self>) {
        if !self.catching_up.load(Ordering::Acquire) {
            return;
        }
        let collection = Arc::clone(self);
        let spawned = std::thread::Builder::new().name(format!("akidb-catch-up-{}", self.name())).spawn(move || {
            let _maintenance = collection.maintenance.lock();
            collection.catch_up_locked();
        });
        if let Err(err) = spawned {
            tracing::warn!(collection = %self.name(), %err, "no thread to move the newer points into the graph; the next dump will");
        }
    }

    /// `finish_open`'s work, under `maintenance`.
    fn catch_up_locked(&self) {
        if self.catching_up.swap(false, Ordering::AcqRel) {
            let started = std::time::Instant::now();
            self.graph.thaw();
            tracing::info!(collection = %self.name(), seconds = started.elapsed().as_secs_f32(), "points written after the last dump moved into the graph");
        }
    }

    /// Measures the search breadth on a thread of its own (niced) when the collection's size moved
    /// by half since the last measure: soon after a bulk load, not one dump interval later.
    fn maybe_calibrate(self: &Arc<Self>) {
        let live = self.payload.read().len();
        if !self.calibration_due(live) || self.calibrating.swap(true, Ordering::AcqRel) {
            return;
        }
        let collection = Arc::clone(self);
        let spawned = std::thread::Builder::new().name(format!("akidb-calibrate-{}", self.name())).spawn(move || {
            super::run_as_background_thread();
            // Cleared even if the measure panics: a stuck flag would stop every later one.
            let _done = ClearOnDrop(&collection.calibrating);
            collection.calibrate_now();
        });
        if spawned.is_err() {
            self.calibrating.store(false, Ordering::Release);
        }
    }

    /// Rebuilds the graph from the store's live points and swaps it in (a compaction). Writes
    /// and searches continue while the graph is built and caught up; writers wait only for the
    /// last few points and the swap.
    pub fn compact(&self) -> Result<(), EngineError> {
        self.rebuild_graph(self.backend())
    }

    /// Rebuilds the graph on `backend` (online: searches use the old graph until the swap) and
    /// records the backend in the collection's config; the new graph is dumped at once. How a
    /// collection migrated from an older store (hnsw_rs) moves to the default backend.
    pub fn rebuild_on(&self, backend: IndexBackend) -> Result<(), EngineError> {
        index::validate_spec(&IndexSpec { backend, ..self.spec() })?;
        self.rebuild_graph(backend)?;
        self.dump()
    }

    fn rebuild_graph(&self, backend: IndexBackend) -> Result<(), EngineError> {
        /// Points written meanwhile that are inserted under `writer`; more are caught up first.
        /// Small: an hnsw_rs insert under load takes milliseconds, and writers wait for these
        /// (256 made the slowest write of benches/peers/churn.py 1.3 s).
        const CATCH_UP_UNDER_WRITER: u64 = 32;
        let _maintenance = self.maintenance.lock();
        self.catch_up_locked();
        let id = self.id().to_owned();
        let started = std::time::Instant::now();
        let vectors = self.store.vectors_after(&id, None)?;
        let mut covered = vectors.last().map_or(0, |(p, _)| p + 1);
        let fresh: Arc<dyn VectorIndex> = Arc::from(index::new_index(&IndexSpec { backend, ..self.spec() }, vectors.len())?);
        // On the background pool: writers' inserts into the live graph use the other one.
        let build = |points: &[(PointId, Vec<f32>)]| match index::background_pool() {
            Some(pool) => pool.install(|| fresh.insert(points)),
            None => fresh.insert(points),
        };
        build(&vectors);
        drop(vectors);
        fail::fail_point!("collection.rebuild.built");
        // What was written during the build, without `writer` while it is much: a graph that
        // takes seconds to build would otherwise stall writers for seconds (hnsw_rs: 12.5 s).
        loop {
            let next = self.store.next_point(&id)?;
            if next.saturating_sub(covered) <= CATCH_UP_UNDER_WRITER {
                break;
            }
            // Every point below `next` was committed: one not read now was deleted meanwhile.
            let newer = self.store.vectors_after(&id, covered.checked_sub(1))?;
            covered = newer.last().map_or(next, |(p, _)| (p + 1).max(next));
            build(&newer);
        }
        let _writer = self.writer.lock();
        fresh.insert(&self.store.vectors_after(&id, covered.checked_sub(1))?);
        // The payload index's live set is the store's under the writer, without a scan.
        let live = self.payload.read().live().clone();
        let tombstones = dead_points(&*fresh, &live);
        let after = fresh.len();
        let moved = backend != self.backend();
        if moved {
            self.store.set_backend(&id, backend).map_err(|e| self.named(e))?;
        }
        let before = self.graph.swap(fresh, tombstones, quantized(backend));
        // After the swap: a search that sees the new backend sees the new graph.
        *self.backend.lock() = backend;
        // Counts may be unchanged, but the graph is not: the next dump must write it.
        *self.dumped.lock() = None;
        if moved {
            // Measured on the old backend: measured again on this one.
            Calibration::remove(&self.index_dir);
            *self.calibration.lock() = None;
            self.calibration_tried.store(0, Ordering::Relaxed);
            self.default_ef.store(self.config.hnsw.ef_search, Ordering::Relaxed);
        }
        tracing::info!(collection = %self.name(), before, after, backend = backend.as_str(), seconds = started.elapsed().as_secs_f32(), "graph rebuilt from the store");
        // The old graph is gone: its memory goes back to the system, not to the allocator's cache.
        super::release_free_memory();
        Ok(())
    }

    /// Starts `rebuild_on(backend)` on a background thread at background priority; `false` when a
    /// compaction or a rebuild is already running (its end shows in `stats().compacting`).
    pub fn start_rebuild(self: &Arc<Self>, backend: IndexBackend) -> Result<bool, EngineError> {
        index::validate_spec(&IndexSpec { backend, ..self.spec() })?;
        if self.compacting.swap(true, Ordering::AcqRel) {
            return Ok(false);
        }
        let collection = Arc::clone(self);
        let spawned = std::thread::Builder::new().name(format!("akidb-rebuild-{}", self.name())).spawn(move || {
            super::run_as_background_thread();
            if let Err(err) = collection.rebuild_on(backend) {
                tracing::error!(collection = %collection.name(), %err, "graph rebuild failed; the old graph stays in force");
            }
            collection.compacting.store(false, Ordering::Release);
        });
        if let Err(err) = spawned {
            self.compacting.store(false, Ordering::Release);
            return Err(EngineError::Index(index::IndexError::Io { path: self.index_dir.clone(), source: err }));
        }
        Ok(true)
    }

    /// The graph backend in force (the config's, until a rebuild moves the collection).
    pub fn backend(&self) -> IndexBackend {
        *self.backend.lock()
    }

    fn spec(&self) -> IndexSpec {
        IndexSpec { backend: self.backend(), ..IndexSpec::of(&self.config) }
    }

    /// Dumps the graph atomically with the watermark it covers, unless nothing changed since the
    /// last dump. Before freezing, any live point the graph lacks is inserted from the store (a
    /// dump's watermark would otherwise make the hole permanent). Writers wait only for the
    /// check and the freeze; searches never wait (see `graph.rs` for the phases).
    pub fn dump(&self) -> Result<(), EngineError> {
        let _maintenance = self.maintenance.lock();
        self.catch_up_locked();
        let (watermark, graph, state, (payload, covers)) = {
            let _writer = self.writer.lock();
            let watermark = self.store.next_point(self.id()).map_err(|e| self.named(e))?;
            let changes = self.store.changes(self.id()).map_err(|e| self.named(e))?;
            let counts = self.graph.counts();
            let state = (watermark, counts.points, counts.tombstones, changes);
            if *self.dumped.lock() == Some(state) {
                return Ok(());
            }
            self.fill_graph_holes()?;
            // A copy at this watermark (columns and posting sets: a few MB at 400k points),
            // encoded and written after the writer is released.
            let payload = (self.payload.read().clone(), payload_file::Covers { watermark, changes });
            (watermark, self.graph.freeze(), state, payload)
        };
        let saved = (|| -> Result<(), EngineError> {
            // Every point below the watermark was written by a store call that has returned, so
            // this flush makes all of them durable before a dump can claim them.
            self.store.flush()?;
            fail::fail_point!("collection.dump.frozen", |_| Err(EngineError::Index(index::IndexError::BadDump {
                path: self.index_dir.clone(),
                reason: "failpoint: dump failed".into()
            })));
            dump::save(&*graph, &self.index_dir, watermark, &self.spec())?;
            Ok(())
        })();
        self.graph.thaw();
        saved?;
        // After the graph: each file is checked on its own at open, so either order is safe.
        let path = self.index_dir.join(payload_file::FILE);
        dump::write_atomically(&path, &payload_file::encode(&payload, covers))?;
        *self.dumped.lock() = Some(state);
        Ok(())
    }

    /// Inserts the live points the graph does not hold, read from the store. Under `writer`.
    fn fill_graph_holes(&self) -> Result<(), EngineError> {
        let live = self.payload.read().live().clone();
        let missing = self.graph.missing(&live);
        if missing.is_empty() {
            return Ok(());
        }
        tracing::warn!(collection = %self.name(), points = missing.len(), "live points missing from the graph; inserting them from the store");
        let vectors = self.store.vectors_of(self.id(), &missing).map_err(|e| self.named(e))?;
        self.graph.insert(vectors);
        Ok(())
    }

    /// What the recovery checks need beyond counts: live points missing from the graph, graph
    /// points neither live nor tombstoned, and the backend's own consistency. Empty when whole.
    pub fn audit(&self) -> Vec<String> {
        let live = self.payload.read().live().clone();
        let mut problems = Vec::new();
        let missing = self.graph.missing(&live);
        if !missing.is_empty() {
            problems.push(format!("{} live points are not in the graph: {:?}", missing.len(), &missing[..missing.len().min(10)]));
        }
        let stray = self.graph.stray(&live);
        if !stray.is_empty() {
            problems.push(format!("{} graph points are neither live nor tombstoned: {:?}", stray.len(), &stray[..stray.len().min(10)]));
        }
        if let Err(reason) = self.graph.graph().check() {
            problems.push(format!("the graph disagrees with itself: {reason}"));
        }
        problems
    }

    pub fn index_dir(&self) -> &std::path::Path {
        &self.index_dir
    }
}

/// From this many points written after the last dump, an open defers their graph inserts
/// (`Collection::finish_open`).
const DEFER_INSERTS_FROM: usize = 1_000;

/// Clears a flag when dropped (also when unwinding).
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Passages read from the store and handed to the lexical writer at a time.
const REPLAY_BATCH: usize = 10_000;

/// Opens the collection's lexical index and brings it up to the store: replays what its last
/// commit missed, removes what was deleted since (or rebuilds it all, when it is unusable).
/// The payload index: the one persisted at the last dump plus the documents written after it,
/// when the store changed no older point since (`payload::file`); else rebuilt by reading every
/// document's metadata.
fn open_payload(store: &dyn DocumentStore, config: &CollectionConfig, index_dir: &std::path::Path, next_point: PointId) -> Result<PayloadIndex, EngineError> {
    let path = index_dir.join(payload_file::FILE);
    let changes = store.changes(&config.id)?;
    match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|bytes| payload_file::decode(&bytes)) {
        Ok((mut payload, covers)) if covers.changes == changes && covers.watermark <= next_point => {
            for (points, metadata) in store.metadata_from(&config.id, covers.watermark)? {
                payload.insert(&points, &metadata);
            }
            return Ok(payload);
        }
        Ok((_, covers)) => {
            tracing::info!(collection = %config.name, recorded = covers.changes, changes, "the store changed older points since the payload index was saved; rebuilding it")
        }
        Err(reason) if path.exists() => tracing::warn!(collection = %config.name, %reason, "payload index unusable; rebuilding it from the store"),
        Err(_) => {}
    }
    let mut payload = PayloadIndex::default();
    for document in store.documents(&config.id, None, false)? {
        let document = document?;
        let points: Vec<PointId> = document.passages.iter().map(|p| p.point).collect();
        payload.insert(&points, &document.metadata);
    }
    Ok(payload)
}

fn open_lexical(store: &dyn DocumentStore, config: &CollectionConfig, index_dir: &std::path::Path, next_point: PointId, live: &RoaringTreemap, verify: bool) -> Result<LexicalIndex, EngineError> {
    let opened = LexicalIndex::open(&index_dir.join("lexical"), next_point, verify)?;
    let lexical = opened.index;
    let started = std::time::Instant::now();
    let (replayed, removed, change) = replay_lexical(store, config, &lexical, opened.replay_from, live, next_point)?;
    if replayed + removed > 0 || opened.rebuilt {
        lexical.commit(change, || store.flush().map_err(|e| e.to_string()))?;
        tracing::info!(collection = %config.name, replayed, removed, rebuilt = opened.rebuilt, seconds = started.elapsed().as_secs_f32(), "lexical index caught up with the store");
    }
    Ok(lexical)
}

/// Hands the lexical writer every live passage with text at or above `from` (delete, then add:
/// idempotent) and removes the points it holds that are no longer live. Returns (replayed,
/// removed, the change to commit). Passages brought with
/// only a vector have no text and are not indexed (as in `upsert`).
fn replay_lexical(store: &dyn DocumentStore, config: &CollectionConfig, lexical: &LexicalIndex, from: PointId, live: &RoaringTreemap, next_point: PointId) -> Result<(usize, usize, u64), EngineError> {
    let dead: Vec<PointId> = lexical.points()?.into_iter().filter(|p| !live.contains(*p)).collect();
    let mut change = lexical.write(&[], &dead, 0)?;
    let (mut cursor, mut replayed) = (from.checked_sub(1), 0);
    loop {
        let newer = store.texts_after(&config.id, cursor, REPLAY_BATCH)?;
        let Some(&(last, _)) = newer.last() else { break };
        let texts: Vec<(PointId, &str)> = newer.iter().filter(|(_, t)| !t.is_empty()).map(|(p, t)| (*p, t.as_str())).collect();
        change = lexical.write(&texts, &[], 0)?;
        replayed += texts.len();
        cursor = Some(last);
    }
    change = change.max(lexical.write(&[], &[], next_point)?);
    Ok((replayed, dead.len(), change))
}

/// Points in the graph that are no longer live, removed from it where the backend can; the
/// rest are returned as tombstones.
fn dead_points(graph: &dyn VectorIndex, live: &RoaringTreemap) -> HashSet<PointId> {
    let dead: Vec<PointId> = (graph.point_set() - live).into_iter().collect();
    if dead.is_empty() {
        return HashSet::new();
    }
    let removed: HashSet<PointId> = graph.remove(&dead).into_iter().collect();
    dead.into_iter().filter(|p| !removed.contains(p)).collect()
}

fn rebuild(store: &dyn DocumentStore, config: &CollectionConfig) -> Result<Arc<dyn VectorIndex>, EngineError> {
    let vectors = store.vectors_after(&config.id, None)?;
    let graph = index::new_index(&IndexSpec::of(config), vectors.len())?;
    graph.insert(&vectors);
    Ok(Arc::from(graph))
}

/// Whether a backend's graph holds f16 / i8 vectors (its distances are approximate).
fn quantized(backend: IndexBackend) -> bool {
    matches!(backend, IndexBackend::UsearchF16 | IndexBackend::UsearchI8)
}

/// A collection's writes held for a switch (`Collection::hold_writes`).
pub struct WriteHold<'a> {
    collection: &'a Collection,
    _writer: parking_lot::MutexGuard<'a, ()>,
}

impl WriteHold<'_> {
    /// From now on, writes reaching this collection fail with `Moved` (another collection has
    /// its name). Under its `writer`, so no write is half on either side.
    pub fn retire(&self) {
        self.collection.retired.store(true, Ordering::Release);
    }
}

/// A registered watch; unregistered when dropped.
pub struct WatchGuard<'a, T> {
    collection: &'a Collection,
    watch: Watch,
    log: Arc<T>,
}

impl<T> std::ops::Deref for WatchGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.log
    }
}

impl<T> Drop for WatchGuard<'_, T> {
    fn drop(&mut self) {
        self.collection.unwatch(&self.watch);
    }
}

/// Reads a collection as it was at one moment, in document-id order, while writes go on.
pub struct SnapshotReader {
    collection: Arc<Collection>,
    log: Arc<SnapshotLog>,
    after: Option<String>,
    finished: bool,
}

impl SnapshotReader {
    /// Up to about `limit` documents (more only at the very end); empty when all were read.
    pub fn next_batch(&mut self, limit: usize) -> Result<Vec<NewDocument>, EngineError> {
        if self.finished {
            return Ok(Vec::new());
        }
        let collection = &self.collection;
        let ids: Vec<String> = {
            let store = &collection.store;
            let iter = store.documents(collection.id(), self.after.as_deref().map(str::as_bytes), false).map_err(|e| collection.named(e))?;
            let mut ids = Vec::with_capacity(limit);
            for document in iter.take(limit) {
                ids.push(document.map_err(|e| collection.named(e))?.id);
            }
            ids
        };
        let mut batch = Vec::with_capacity(ids.len());
        for id in &ids {
            // Read first, then pass: a write that changed it since copied the moment's state.
            let now = collection.read_whole_racing(id)?;
            match (self.log.pass(id), now) {
                (Some(before), _) => batch.extend(before),
                (None, Some(now)) => batch.extend(now),
                // Its vectors went between the two reads, so a write committed, and that write
                // copied it first: a before-image must exist.
                (None, None) => {
                    return Err(EngineError::Store(crate::store::StoreError::Corrupt { tree: "passages".into(), message: format!("document {id} changed during a snapshot without a copy of it") }))
                }
            }
        }
        match ids.last() {
            Some(last) if ids.len() == limit => self.after = Some(last.clone()),
            _ => {
                self.finished = true;
                // Every stored id was passed: what is left existed then and is gone now.
                self.log.pass("\u{10FFFF}");
                batch.extend(self.log.rest());
            }
        }
        Ok(batch)
    }
}

impl Drop for SnapshotReader {
    fn drop(&mut self) {
        self.collection.unwatch(&Watch::Snapshot(self.log.clone()));
    }
}

/// A collection as a request addressed it (`Collection::addressed`): its writes check, under
/// `writer`, that the collection still has the name the request resolved.
pub struct Addressed {
    name: Arc<str>,
    collection: Arc<Collection>,
}

impl Addressed {
    pub fn try_upsert(&self, documents: Vec<NewDocument>) -> Result<Result<Vec<Written>, Vec<NewDocument>>, EngineError> {
        self.collection.try_upsert(documents, Some(&self.name))
    }

    pub fn delete(&self, ids: &[String]) -> Result<usize, EngineError> {
        self.collection.delete_as(ids, Some(&self.name))
    }

    pub fn delete_where(&self, filter: &Filter) -> Result<usize, EngineError> {
        self.collection.delete_where_as(filter, Some(&self.name))
    }

    pub fn update_metadata<E: From<EngineError>>(&self, ids: &[String], change: impl FnMut(&str, Map<String, Value>) -> Result<Option<Map<String, Value>>, E>) -> Result<usize, E> {
        self.collection.update_metadata_as(ids, change, Some(&self.name))
    }

    pub fn rewrite<E: From<EngineError>>(&self, ids: &[String], change: impl FnMut(&str, Option<Document>) -> Result<Option<NewDocument>, E>) -> Result<usize, E> {
        self.collection.rewrite_as(ids, change, Some(&self.name))
    }
}
