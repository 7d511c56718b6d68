//! `DocumentStore` on sled 0.34.
//!
//! Layout (schema v5):
//! - default tree: `schema_version` → u32 (big-endian)
//! - `collections`: name → bincode `CollectionConfig` (which carries the collection's id)
//! - `counters`: collection id → next point id (u64 big-endian); its presence means "live"
//! - `changes`: collection id → writes that changed or removed existing points (u64 big-endian;
//!   absent: 0), bumped in the same transaction (`DocumentStore::changes`)
//! - `c/<id>/documents`: document id → bincode `DocRecord` (text, metadata, its passages' points)
//! - `c/<id>/passages`: point id (u64 big-endian, so iteration is in point order) → bincode
//!   `PassageRecord` (document id, index, span, vector)
//!
//! A document and its passages are written and removed in one transaction over both trees.

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::codec::{decode, decode_head, encode, vector_from_bytes, vector_to_bytes, DocRecord, PassageRecord};
use super::group_commit::GroupCommit;
use super::{migrations, CollectionConfig, Document, DocumentStore, IndexBackend, NewDocument, Passage, PassageOf, PointId, StoreError, Written};

pub(crate) const SCHEMA_KEY: &[u8] = b"schema_version";
/// sled's page cache. Its own default (1 GiB) fills with every page written: 400k documents of
/// 50-d vectors grew the server past 390 MB RSS during ingest (benches/results/scale.md). The
/// hot reads (a search's k documents, passages to rescore) need far less.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;
pub(crate) const COLLECTIONS: &str = "collections";
pub(crate) const COUNTERS: &str = "counters";
pub(crate) const CHANGES: &str = "changes";
/// Per-collection records of the interfaces (`DocumentStore::set_annex`), keyed by collection id.
const ANNEXES: &str = "annexes";
/// Alias name → collection name.
const ALIASES: &str = "aliases";
/// Job id → a job's record (JSON, owned by the service).
const JOBS: &str = "jobs";

/// Prefix of every per-collection tree: `c/<id>/`.
const COLLECTION_TREE_PREFIX: &str = "c/";

/// The kinds of per-collection tree this schema has: any other `c/<id>/<kind>` is left over.
const TREE_KINDS: [&str; 2] = ["documents", "passages"];

pub(crate) fn docs_tree(id: &str) -> String {
    format!("{COLLECTION_TREE_PREFIX}{id}/documents")
}

pub(crate) fn points_tree(id: &str) -> String {
    format!("{COLLECTION_TREE_PREFIX}{id}/passages")
}

/// sled's background IO threads keep the directory's file lock for a moment after the last
/// handle is dropped, so an in-process reopen (a restore, a test) can find it still held: wait
/// up to two seconds for it. Another live process holding the store still fails, just later.
fn open_waiting_for_lock(config: &sled::Config) -> Result<sled::Db, sled::Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match config.open() {
            // sled reports the lock as ErrorKind::Other with this message (config.rs, 0.34.7).
            Err(sled::Error::Io(e)) if e.to_string().starts_with("could not acquire lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

pub struct SledStore {
    db: sled::Db,
    collections: sled::Tree,
    counters: sled::Tree,
    changes: sled::Tree,
    annexes: sled::Tree,
    aliases: sled::Tree,
    jobs: sled::Tree,
    group: GroupCommit,
}

impl SledStore {
    /// Opens (or creates) a store, migrating an older schema and refusing a newer one.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Some(500))
    }

    /// `open` with sled's background flush period (`None`: only explicit flushes make writes
    /// durable; crash tests use it so that what survives a kill is exactly what was flushed).
    pub fn open_with(path: &Path, flush_every_ms: Option<u64>) -> Result<Self, StoreError> {
        Self::open_configured(path, flush_every_ms, DEFAULT_CACHE_BYTES)
    }

    /// `open_with` and the size of sled's page cache.
    pub fn open_configured(path: &Path, flush_every_ms: Option<u64>, cache_bytes: u64) -> Result<Self, StoreError> {
        let config = sled::Config::new().path(path).mode(sled::Mode::HighThroughput).flush_every_ms(flush_every_ms).cache_capacity(cache_bytes);
        let db = open_waiting_for_lock(&config)?;
        migrations::bring_up_to_date(&db, path)?;
        let store = SledStore {
            collections: db.open_tree(COLLECTIONS)?,
            counters: db.open_tree(COUNTERS)?,
            changes: db.open_tree(CHANGES)?,
            annexes: db.open_tree(ANNEXES)?,
            aliases: db.open_tree(ALIASES)?,
            jobs: db.open_tree(JOBS)?,
            db,
            group: GroupCommit::default(),
        };
        store.collect_garbage()?;
        Ok(store)
    }

    /// Drops the trees of collections that no longer exist: a drop interrupted between its
    /// transaction and its `drop_tree` calls, or a finished migration's bookkeeping.
    fn collect_garbage(&self) -> Result<(), StoreError> {
        for name in self.db.tree_names() {
            let Ok(name) = std::str::from_utf8(&name) else { continue };
            let orphan = match name.strip_prefix(COLLECTION_TREE_PREFIX).and_then(|rest| rest.split_once('/')) {
                Some((id, kind)) => !TREE_KINDS.contains(&kind) || !self.counters.contains_key(id)?,
                None => migrations::is_leftover_tree(name),
            };
            if orphan {
                tracing::info!(tree = name, "dropping a tree no collection owns");
                self.db.drop_tree(name)?;
            }
        }
        Ok(())
    }

    fn trees(&self, collection: &str) -> Result<(sled::Tree, sled::Tree), StoreError> {
        if !self.counters.contains_key(collection)? {
            return Err(StoreError::CollectionNotFound(collection.to_owned()));
        }
        Ok((self.db.open_tree(docs_tree(collection))?, self.db.open_tree(points_tree(collection))?))
    }

    /// Ids of the collections in the store (what the index directories are named after).
    pub fn collection_ids(&self) -> Result<Vec<String>, StoreError> {
        self.counters.iter().keys().map(|k| Ok(String::from_utf8_lossy(&k?).into_owned())).collect()
    }

    /// A passage whose document does not list it, or a document listing a missing passage: crash
    /// tests check that no kill leaves either.
    fn passage_problems(&self, collection: &str) -> Result<Vec<String>, StoreError> {
        let (docs, points) = self.trees(collection)?;
        let (docs_name, points_name) = (docs_tree(collection), points_tree(collection));
        let mut problems = Vec::new();
        let mut listed = std::collections::HashSet::new();
        for entry in docs.iter() {
            let (id, bytes) = entry?;
            let id = String::from_utf8_lossy(&id).into_owned();
            let record: DocRecord = decode(&bytes, &docs_name)?;
            if record.passages.is_empty() {
                problems.push(format!("document {id} has no passages"));
            }
            for (index, (point, span)) in record.passages.iter().enumerate() {
                listed.insert(*point);
                match points.get(point_key(*point))? {
                    None => problems.push(format!("document {id} lists point {point}, which is missing")),
                    Some(bytes) => {
                        let passage = passage_record(&bytes, &points_name)?;
                        if passage.document != id || passage.index as usize != index || passage.span != *span {
                            problems.push(format!("point {point} disagrees with document {id} about its place"));
                        }
                    }
                }
            }
        }
        for key in points.iter().keys() {
            let point = point_from_key(&key?).unwrap_or(u64::MAX);
            if !listed.contains(&point) {
                problems.push(format!("point {point} belongs to no document (an orphan passage)"));
            }
        }
        Ok(problems)
    }

    fn document(&self, id: &[u8], bytes: &[u8], collection: &str) -> Result<Document, StoreError> {
        let tree = docs_tree(collection);
        let record: DocRecord = decode(bytes, &tree)?;
        assemble(id, record.text, &record.metadata, record.passages, &tree)
    }

    /// A document without its text (left empty, never decoded): metadata and passages only.
    fn document_head(&self, id: &[u8], bytes: &[u8], collection: &str) -> Result<Document, StoreError> {
        let tree = docs_tree(collection);
        let head = decode_head(bytes, &tree)?;
        assemble(id, String::new(), &head.metadata, head.passages, &tree)
    }
}

/// A `Document` from a record's parts (its metadata is JSON text in the record).
fn assemble(id: &[u8], text: String, metadata: &str, passages: Vec<(u64, crate::domain::Span)>, tree: &str) -> Result<Document, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt { tree: tree.to_owned(), message };
    let metadata = match serde_json::from_str(metadata).map_err(|e| corrupt(e.to_string()))? {
        serde_json::Value::Object(map) => map,
        _ => return Err(corrupt("metadata is not an object".into())),
    };
    Ok(Document {
        id: String::from_utf8(id.to_vec()).map_err(|e| corrupt(e.to_string()))?,
        text,
        metadata,
        passages: passages.into_iter().map(|(point, span)| Passage { point, span }).collect(),
    })
}

fn passage_record(bytes: &[u8], tree: &str) -> Result<PassageRecord, StoreError> {
    decode(bytes, tree)
}

fn record_vector(record: &PassageRecord, tree: &str) -> Result<Vec<f32>, StoreError> {
    vector_from_bytes(&record.vector).ok_or_else(|| StoreError::Corrupt { tree: tree.to_owned(), message: "vector length is not a multiple of 4".into() })
}

fn point_key(point: PointId) -> [u8; 8] {
    point.to_be_bytes()
}

fn point_from_key(key: &[u8]) -> Option<PointId> {
    key.try_into().ok().map(u64::from_be_bytes)
}

/// Adds one to a collection's change count, inside a write's transaction.
fn bump(changes: &sled::transaction::TransactionalTree, collection: &str) -> Result<(), ConflictableTransactionError<StoreError>> {
    let now = changes.get(collection)?.and_then(|bytes| point_from_key(&bytes)).unwrap_or(0);
    changes.insert(collection, &(now + 1).to_be_bytes())?;
    Ok(())
}

pub(crate) fn unwrap_tx(err: TransactionError<StoreError>) -> StoreError {
    match err {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

impl DocumentStore for SledStore {
    fn create_collection(&self, config: &CollectionConfig, annex: Option<&[u8]>) -> Result<(), StoreError> {
        let (name, id) = (config.name.as_str(), config.id.as_str());
        if id.is_empty() {
            return Err(StoreError::Corrupt { tree: COLLECTIONS.into(), message: format!("collection {name} has no id") });
        }
        let created = (&self.collections, &self.counters, &self.annexes)
            .transaction(|(collections, counters, annexes)| {
                if collections.get(name)?.is_some() || counters.get(id)?.is_some() {
                    return Ok(false);
                }
                collections.insert(name, encode(config))?;
                counters.insert(id, &0u64.to_be_bytes())?;
                if let Some(annex) = annex {
                    annexes.insert(id, annex)?;
                }
                Ok(true)
            })
            .map_err(unwrap_tx)?;
        if !created {
            return Err(StoreError::CollectionExists(name.to_owned()));
        }
        Ok(())
    }

    fn collection(&self, name: &str) -> Result<Option<CollectionConfig>, StoreError> {
        self.collections.get(name)?.map(|bytes| decode(&bytes, COLLECTIONS)).transpose()
    }

    fn collections(&self) -> Result<Vec<CollectionConfig>, StoreError> {
        self.collections.iter().values().map(|bytes| decode(&bytes?, COLLECTIONS)).collect()
    }

    fn set_backend(&self, collection: &str, backend: IndexBackend) -> Result<(), StoreError> {
        for entry in self.collections.iter() {
            let (name, bytes) = entry?;
            let mut config: CollectionConfig = decode(&bytes, COLLECTIONS)?;
            if config.id != collection {
                continue;
            }
            config.backend = backend;
            // Only if the record is still this collection's (not dropped or re-created meanwhile).
            let swapped = self.collections.compare_and_swap(&name, Some(bytes), Some(encode(&config)))?;
            if swapped.is_err() {
                return Err(StoreError::CollectionNotFound(collection.to_owned()));
            }
            return self.flush();
        }
        Err(StoreError::CollectionNotFound(collection.to_owned()))
    }

    fn switch(&self, renames: &[(String, String)], drop: Option<&str>) -> Result<Option<CollectionConfig>, StoreError> {
        let dropped: Option<CollectionConfig> = (&self.collections, &self.counters)
            .transaction(|(collections, counters)| {
                let abort = |e: StoreError| ConflictableTransactionError::Abort(e);
                let mut dropped = None;
                if let Some(name) = drop {
                    let bytes = collections.remove(name)?.ok_or_else(|| abort(StoreError::CollectionNotFound(name.to_owned())))?;
                    let config: CollectionConfig = decode(&bytes, COLLECTIONS).map_err(abort)?;
                    counters.remove(config.id.as_str())?;
                    dropped = Some(config);
                }
                for (from, to) in renames {
                    let bytes = collections.remove(from.as_str())?.ok_or_else(|| abort(StoreError::CollectionNotFound(from.clone())))?;
                    let mut config: CollectionConfig = decode(&bytes, COLLECTIONS).map_err(abort)?;
                    if collections.get(to.as_str())?.is_some() {
                        return Err(abort(StoreError::CollectionExists(to.clone())));
                    }
                    config.name = to.clone();
                    collections.insert(to.as_str(), encode(&config))?;
                }
                Ok(dropped)
            })
            .map_err(unwrap_tx)?;
        self.flush()?;
        if let Some(config) = &dropped {
            // Garbage once the switch is durable (collected at open if a crash comes first).
            self.db.drop_tree(docs_tree(&config.id))?;
            self.db.drop_tree(points_tree(&config.id))?;
            self.annexes.remove(config.id.as_str())?;
        }
        Ok(dropped)
    }

    fn jobs(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.jobs.iter().map(|entry| {
            let (key, value) = entry?;
            Ok((String::from_utf8_lossy(&key).into_owned(), value.to_vec()))
        }).collect()
    }

    fn put_job(&self, id: &str, record: Option<&[u8]>) -> Result<(), StoreError> {
        match record {
            Some(record) => self.jobs.insert(id, record)?,
            None => self.jobs.remove(id)?,
        };
        self.flush()
    }

    fn drop_collection(&self, name: &str) -> Result<bool, StoreError> {
        // Qdrant drops a collection's aliases with it: in the same transaction, so no crash
        // leaves an alias that a new collection of this name would inherit. Read first (a
        // transaction cannot scan); callers hold alias changes off meanwhile (`Service`).
        let mut aliases = Vec::new();
        for entry in self.aliases.iter() {
            let (alias, target) = entry?;
            if target.as_ref() == name.as_bytes() {
                aliases.push(alias);
            }
        }
        let dropped: Option<CollectionConfig> = (&self.collections, &self.counters, &self.aliases)
            .transaction(|(collections, counters, alias_tx)| {
                let Some(bytes) = collections.remove(name)? else { return Ok(None) };
                let config: CollectionConfig = decode(&bytes, COLLECTIONS).map_err(ConflictableTransactionError::Abort)?;
                counters.remove(config.id.as_str())?;
                for alias in &aliases {
                    alias_tx.remove(alias)?;
                }
                Ok(Some(config))
            })
            .map_err(unwrap_tx)?;
        let Some(config) = dropped else { return Ok(false) };
        fail::fail_point!("store.drop_collection.after_commit");
        // The collection is gone once the transaction is durable; its trees are garbage now.
        self.flush()?;
        self.db.drop_tree(docs_tree(&config.id))?;
        self.db.drop_tree(points_tree(&config.id))?;
        // Keyed by the dropped id, which is never reused: a crash before this leaves a record
        // nothing reads.
        self.annexes.remove(config.id.as_str())?;
        Ok(true)
    }

    fn annex(&self, collection: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.annexes.get(collection)?.map(|v| v.to_vec()))
    }

    fn aliases(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.aliases
            .iter()
            .map(|entry| {
                let (alias, target) = entry?;
                Ok((String::from_utf8_lossy(&alias).into_owned(), String::from_utf8_lossy(&target).into_owned()))
            })
            .collect()
    }

    fn change_aliases(&self, changes: &[(String, Option<String>)]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (alias, target) in changes {
            match target {
                Some(target) => batch.insert(alias.as_bytes(), target.as_bytes()),
                None => batch.remove(alias.as_bytes()),
            }
        }
        self.aliases.apply_batch(batch)?;
        self.flush()
    }

    fn upsert(&self, collection: &str, documents: &[NewDocument]) -> Result<Vec<Written>, StoreError> {
        let (docs, points) = self.trees(collection)?;
        // Outside the transaction closure, which sled may run more than once.
        let metadata: Vec<String> = documents.iter().map(|doc| serde_json::to_string(&doc.metadata).unwrap_or_else(|_| "{}".to_owned())).collect();
        let vectors: Vec<Vec<Vec<u8>>> = documents.iter().map(|doc| doc.passages.iter().map(|p| vector_to_bytes(&p.vector)).collect()).collect();
        let docs_name = docs_tree(collection);
        (&docs, &points, &self.counters, &self.changes)
            .transaction(|(docs_tx, points_tx, counters_tx, changes_tx)| {
                // No counter: the collection was dropped while this write was on its way.
                let first = counters_tx
                    .get(collection)?
                    .and_then(|bytes| point_from_key(&bytes))
                    .ok_or_else(|| ConflictableTransactionError::Abort(StoreError::CollectionNotFound(collection.to_owned())))?;
                let mut next = first;
                let mut written = Vec::with_capacity(documents.len());
                let mut changed = false;
                for ((doc, metadata), vectors) in documents.iter().zip(&metadata).zip(&vectors) {
                    let id = &doc.id;
                    let mut replaced = Vec::new();
                    if let Some(old) = docs_tx.get(id.as_bytes())? {
                        changed = true;
                        let old: DocRecord = decode(&old, &docs_name).map_err(ConflictableTransactionError::Abort)?;
                        for (point, _) in old.passages {
                            points_tx.remove(&point_key(point))?;
                            // A repeated id within this batch replaces points that were never committed.
                            if point < first {
                                replaced.push(point);
                            }
                        }
                    }
                    let mut new_points = Vec::with_capacity(doc.passages.len());
                    for (index, (passage, vector)) in doc.passages.iter().zip(vectors).enumerate() {
                        let record = PassageRecord { document: id.clone(), index: index as u32, span: passage.span, vector: vector.clone() };
                        points_tx.insert(&point_key(next), encode(&record))?;
                        new_points.push(next);
                        next += 1;
                    }
                    let record = DocRecord {
                        text: doc.text.clone(),
                        metadata: metadata.clone(),
                        passages: new_points.iter().zip(&doc.passages).map(|(&point, p)| (point, p.span)).collect(),
                    };
                    docs_tx.insert(id.as_bytes(), encode(&record))?;
                    written.push(Written { points: new_points, replaced });
                }
                counters_tx.insert(collection, &next.to_be_bytes())?;
                if changed {
                    bump(changes_tx, collection)?;
                }
                Ok(written)
            })
            .map_err(unwrap_tx)
    }

    fn delete(&self, collection: &str, ids: &[String]) -> Result<Vec<Vec<PointId>>, StoreError> {
        let (docs, points) = self.trees(collection)?;
        let docs_name = docs_tree(collection);
        (&docs, &points, &self.changes)
            .transaction(|(docs_tx, points_tx, changes_tx)| {
                let mut removed = Vec::new();
                for id in ids {
                    if let Some(old) = docs_tx.remove(id.as_bytes())? {
                        let old: DocRecord = decode(&old, &docs_name).map_err(ConflictableTransactionError::Abort)?;
                        for (point, _) in &old.passages {
                            points_tx.remove(&point_key(*point))?;
                        }
                        removed.push(old.passages.into_iter().map(|(point, _)| point).collect());
                    }
                }
                if !removed.is_empty() {
                    bump(changes_tx, collection)?;
                }
                Ok(removed)
            })
            .map_err(unwrap_tx)
    }

    fn set_metadata(&self, collection: &str, changes: &[(String, serde_json::Map<String, serde_json::Value>)]) -> Result<Vec<Option<Vec<PointId>>>, StoreError> {
        let (docs, _) = self.trees(collection)?;
        let docs_name = docs_tree(collection);
        // Outside the transaction closure, which sled may run more than once.
        let metadata: Vec<String> = changes.iter().map(|(_, m)| serde_json::to_string(m).unwrap_or_else(|_| "{}".to_owned())).collect();
        (&docs, &self.changes).transaction(|(docs_tx, changes_tx)| {
            let mut points = Vec::with_capacity(changes.len());
            for ((id, _), metadata) in changes.iter().zip(&metadata) {
                let Some(old) = docs_tx.get(id.as_bytes())? else {
                    points.push(None);
                    continue;
                };
                let mut record: DocRecord = decode(&old, &docs_name).map_err(ConflictableTransactionError::Abort)?;
                record.metadata = metadata.clone();
                docs_tx.insert(id.as_bytes(), encode(&record))?;
                points.push(Some(record.passages.iter().map(|(point, _)| *point).collect()));
            }
            if points.iter().any(Option::is_some) {
                bump(changes_tx, collection)?;
            }
            Ok(points)
        })
        .map_err(unwrap_tx)
    }

    fn get(&self, collection: &str, id: &str) -> Result<Option<Document>, StoreError> {
        let (docs, _) = self.trees(collection)?;
        docs.get(id.as_bytes())?.map(|bytes| self.document(id.as_bytes(), &bytes, collection)).transpose()
    }

    fn get_head(&self, collection: &str, id: &str) -> Result<Option<Document>, StoreError> {
        let (docs, _) = self.trees(collection)?;
        docs.get(id.as_bytes())?.map(|bytes| self.document_head(id.as_bytes(), &bytes, collection)).transpose()
    }

    fn passage_of(&self, collection: &str, point: PointId) -> Result<Option<PassageOf>, StoreError> {
        let (_, points) = self.trees(collection)?;
        let Some(bytes) = points.get(point_key(point))? else { return Ok(None) };
        let record = passage_record(&bytes, &points_tree(collection))?;
        Ok(Some(PassageOf { document: record.document, index: record.index as usize, span: record.span }))
    }

    fn count(&self, collection: &str) -> Result<usize, StoreError> {
        Ok(self.trees(collection)?.0.len())
    }

    fn document_ids(&self, collection: &str) -> Result<Box<dyn Iterator<Item = Result<String, StoreError>> + '_>, StoreError> {
        let (docs, _) = self.trees(collection)?;
        let tree = docs_tree(collection);
        Ok(Box::new(docs.iter().keys().map(move |key| {
            let key = key?;
            String::from_utf8(key.to_vec()).map_err(|e| StoreError::Corrupt { tree: tree.clone(), message: e.to_string() })
        })))
    }

    fn documents(&self, collection: &str, after: Option<&[u8]>, with_text: bool) -> Result<Box<dyn Iterator<Item = Result<Document, StoreError>> + '_>, StoreError> {
        use std::ops::Bound;
        let (docs, _) = self.trees(collection)?;
        let collection = collection.to_owned();
        let start = after.map_or(Bound::Unbounded, |id| Bound::Excluded(id.to_vec()));
        Ok(Box::new(docs.range::<Vec<u8>, _>((start, Bound::Unbounded)).map(move |entry| {
            let (id, bytes) = entry?;
            if with_text {
                self.document(&id, &bytes, &collection)
            } else {
                self.document_head(&id, &bytes, &collection)
            }
        })))
    }

    fn vectors_after(&self, collection: &str, after: Option<PointId>) -> Result<Vec<(PointId, Vec<f32>)>, StoreError> {
        let (_, points) = self.trees(collection)?;
        let tree = points_tree(collection);
        let start = after.map_or(0, |p| p.saturating_add(1));
        let mut out = Vec::new();
        for entry in points.range(point_key(start)..) {
            let (key, bytes) = entry?;
            let point = point_from_key(&key).ok_or_else(|| StoreError::Corrupt { tree: tree.clone(), message: "bad key".into() })?;
            out.push((point, record_vector(&passage_record(&bytes, &tree)?, &tree)?));
        }
        Ok(out)
    }

    fn texts_after(&self, collection: &str, after: Option<PointId>, limit: usize) -> Result<Vec<(PointId, String)>, StoreError> {
        let (docs, points) = self.trees(collection)?;
        let tree = points_tree(collection);
        let start = after.map_or(0, |p| p.saturating_add(1));
        let mut out = Vec::new();
        // A document's passages are consecutive points: each document's text is decoded once and
        // cut in one pass.
        let mut group: Vec<(PointId, crate::domain::Span)> = Vec::new();
        let mut group_doc: Option<String> = None;
        let mut emit = |doc: &Option<String>, group: &mut Vec<(PointId, crate::domain::Span)>| -> Result<(), StoreError> {
            let Some(id) = doc else { return Ok(()) };
            if let Some(bytes) = docs.get(id.as_bytes())? {
                let record: DocRecord = decode(&bytes, &docs_tree(collection))?;
                let spans: Vec<crate::domain::Span> = group.iter().map(|(_, s)| *s).collect();
                let texts = crate::domain::slices(&record.text, &spans);
                out.extend(group.iter().zip(texts).map(|((p, _), t)| (*p, t.to_owned())));
            }
            group.clear();
            Ok(())
        };
        for entry in points.range(point_key(start)..).take(limit) {
            let (key, bytes) = entry?;
            let point = point_from_key(&key).ok_or_else(|| StoreError::Corrupt { tree: tree.clone(), message: "bad key".into() })?;
            let record = passage_record(&bytes, &tree)?;
            if group_doc.as_deref() != Some(record.document.as_str()) {
                emit(&group_doc, &mut group)?;
                group_doc = Some(record.document);
            }
            group.push((point, record.span));
        }
        emit(&group_doc, &mut group)?;
        Ok(out)
    }

    fn vectors_of(&self, collection: &str, points: &[PointId]) -> Result<Vec<(PointId, Vec<f32>)>, StoreError> {
        let (_, points_tree_) = self.trees(collection)?;
        let tree = points_tree(collection);
        let mut out = Vec::with_capacity(points.len());
        for &point in points {
            let Some(bytes) = points_tree_.get(point_key(point))? else { continue };
            out.push((point, record_vector(&passage_record(&bytes, &tree)?, &tree)?));
        }
        Ok(out)
    }

    fn live_points(&self, collection: &str) -> Result<Vec<PointId>, StoreError> {
        let (_, points) = self.trees(collection)?;
        points
            .iter()
            .keys()
            .map(|key| {
                let key = key?;
                point_from_key(&key).ok_or_else(|| StoreError::Corrupt { tree: points_tree(collection), message: "bad key".into() })
            })
            .collect()
    }

    fn next_point(&self, collection: &str) -> Result<PointId, StoreError> {
        self.counters
            .get(collection)?
            .and_then(|bytes| point_from_key(&bytes))
            .ok_or_else(|| StoreError::CollectionNotFound(collection.to_owned()))
    }

    fn changes(&self, collection: &str) -> Result<u64, StoreError> {
        Ok(self.changes.get(collection)?.and_then(|bytes| point_from_key(&bytes)).unwrap_or(0))
    }

    fn metadata_from(&self, collection: &str, from: PointId) -> Result<Vec<(Vec<PointId>, serde_json::Map<String, serde_json::Value>)>, StoreError> {
        let (docs, points) = self.trees(collection)?;
        let tree = points_tree(collection);
        let mut out: Vec<(Vec<PointId>, serde_json::Map<String, serde_json::Value>)> = Vec::new();
        let mut current: Option<String> = None;
        for entry in points.range(point_key(from)..) {
            let (key, bytes) = entry?;
            let point = point_from_key(&key).ok_or_else(|| StoreError::Corrupt { tree: tree.clone(), message: "bad key".into() })?;
            let record = passage_record(&bytes, &tree)?;
            // A document's passages are consecutive points: one metadata read per document.
            if current.as_deref() == Some(record.document.as_str()) {
                if let Some((group, _)) = out.last_mut() {
                    group.push(point);
                }
                continue;
            }
            let head = match docs.get(record.document.as_bytes())? {
                Some(bytes) => self.document_head(record.document.as_bytes(), &bytes, collection)?,
                None => continue,
            };
            out.push((vec![point], head.metadata));
            current = Some(record.document);
        }
        Ok(out)
    }

    fn check_passages(&self, collection: &str) -> Result<Vec<String>, StoreError> {
        self.passage_problems(collection)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.group
            .commit(|| self.db.flush().map(|_| ()))
            .map_err(|message| StoreError::Sled(sled::Error::Io(std::io::Error::other(message))))
    }
}

pub(crate) fn read_schema_version(db: &sled::Db) -> Result<Option<u32>, StoreError> {
    Ok(db.get(SCHEMA_KEY)?.and_then(|bytes| <[u8; 4]>::try_from(bytes.as_ref()).ok()).map(u32::from_be_bytes))
}

pub(crate) fn write_schema_version(db: &sled::Db, version: u32) -> Result<(), StoreError> {
    db.insert(SCHEMA_KEY, &version.to_be_bytes())?;
    db.flush()?;
    Ok(())
}
