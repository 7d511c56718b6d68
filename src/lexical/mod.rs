//! The lexical index: BM25 over passage text, one tantivy index per collection.
//!
//! Derived data like the HNSW dump, never a source of truth. Every commit carries the store
//! watermark it covers (tantivy's commit payload: every point below it is in the index). At open,
//! an index that is missing, unreadable, fails its checksums or claims more than the store holds
//! is rebuilt from the store's passage text; otherwise the points at or above its watermark are
//! replayed (delete, then add: replay is idempotent) and points deleted since are removed.
//!
//! Writes add and delete under the collection's writer lock (cheap, in memory) and then call
//! `commit`, which makes them searchable before the write is acknowledged (read-your-writes).
//! Commits are not fsynced (`directory.rs`): sled, flushed first, is what makes a write durable.
//! Concurrent writers share commits: a writer whose changes another commit already made visible
//! returns at once.

mod directory;
mod tokenizer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tantivy::collector::{FilterCollector, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, Term};

pub use tokenizer::{analyzer, terms, ANALYZER};

use crate::domain::PointId;

/// Memory the indexing thread may use before it writes a segment.
const WRITER_HEAP_BYTES: usize = 32 * 1024 * 1024;

/// Most distinct terms (after analysis) in one lexical query: each is a posting list to walk.
pub const MAX_QUERY_TERMS: usize = 1_024;

#[derive(Debug, thiserror::Error)]
pub enum LexicalError {
    #[error("lexical index at {path}: {message}")]
    Index { path: PathBuf, message: String },
    #[error("the query has {0} distinct terms; a lexical search takes at most {MAX_QUERY_TERMS}")]
    TooManyTerms(usize),
}

/// Which points a search may return (live, and matching the filter). Called from tantivy's
/// collector, so it must not panic.
pub type Accept = Arc<dyn Fn(PointId) -> bool + Send + Sync>;

pub struct LexicalIndex {
    path: PathBuf,
    index: Index,
    reader: IndexReader,
    /// Adds and deletes take it shared; a commit takes it exclusively.
    writer: RwLock<IndexWriter>,
    point: Field,
    text: Field,
    state: Mutex<CommitState>,
}

#[derive(Default)]
struct CommitState {
    /// Numbers the batches of changes handed to the writer.
    changes: u64,
    /// Changes up to this number are committed and visible to searches.
    visible: u64,
    /// Every point below this has been handed to the writer.
    watermark: PointId,
    /// Commits carry no watermark above this (a failed write may have missed points from here).
    cap: Option<PointId>,
    /// The watermark of the last commit (from the index's metadata at open).
    committed: PointId,
}

/// What an opened index still needs from the store: the points at or above `replay_from`.
pub struct Opened {
    pub index: LexicalIndex,
    pub replay_from: PointId,
    /// The index was missing or unusable and starts empty.
    pub rebuilt: bool,
}

fn schema() -> (Schema, Field, Field) {
    let mut builder = Schema::builder();
    let point = builder.add_u64_field("point", NumericOptions::default().set_indexed().set_fast());
    let indexing = TextFieldIndexing::default().set_tokenizer(ANALYZER).set_index_option(IndexRecordOption::WithFreqs);
    let text = builder.add_text_field("text", TextOptions::default().set_indexing_options(indexing));
    (builder.build(), point, text)
}

impl LexicalIndex {
    /// Opens the index in `path`, or starts an empty one there when it is missing or unusable
    /// (`next_point`: the store's; an index claiming points beyond it is unusable).
    /// `verify`: check every file's checksum first (skipped after a clean shutdown, when each
    /// file was synced whole).
    pub fn open(path: &Path, next_point: PointId, verify: bool) -> Result<Opened, LexicalError> {
        match Self::open_existing(path, next_point, verify) {
            Ok(Some((index, watermark))) => return Ok(Opened { index, replay_from: watermark, rebuilt: false }),
            Ok(None) => {}
            Err(reason) => tracing::warn!(path = %path.display(), %reason, "lexical index unusable; rebuilding it from the store"),
        }
        if path.exists() {
            std::fs::remove_dir_all(path).map_err(|e| Self::err(path, e))?;
        }
        std::fs::create_dir_all(path).map_err(|e| Self::err(path, e))?;
        let (schema, _, _) = schema();
        let directory = directory::UnsyncedDirectory::open(path).map_err(|e| Self::err(path, e))?;
        let index = Index::create(directory, schema, tantivy::IndexSettings::default()).map_err(|e| Self::err(path, e))?;
        Ok(Opened { index: Self::wrap(path, index, 0)?, replay_from: 0, rebuilt: true })
    }

    fn err(path: &Path, e: impl std::fmt::Display) -> LexicalError {
        LexicalError::Index { path: path.to_owned(), message: e.to_string() }
    }

    fn open_existing(path: &Path, next_point: PointId, verify: bool) -> Result<Option<(LexicalIndex, PointId)>, String> {
        if !path.join("meta.json").exists() {
            return Ok(None);
        }
        let directory = directory::UnsyncedDirectory::open(path).map_err(|e| e.to_string())?;
        let index = Index::open(directory).map_err(|e| e.to_string())?;
        let corrupt = if verify { index.validate_checksum().map_err(|e| e.to_string())? } else { Default::default() };
        if !corrupt.is_empty() {
            return Err(format!("files fail their checksums: {corrupt:?}"));
        }
        let metas = index.load_metas().map_err(|e| e.to_string())?;
        let watermark = match metas.payload.as_deref() {
            Some(payload) => payload.parse::<PointId>().map_err(|_| format!("unreadable watermark {payload:?}"))?,
            None if metas.segments.is_empty() => 0,
            None => return Err("no watermark".into()),
        };
        if watermark > next_point {
            return Err(format!("its watermark {watermark} is above the store's next point {next_point}"));
        }
        if index.schema() != schema().0 {
            return Err("its schema is not this akidb's".into());
        }
        let index = Self::wrap(path, index, watermark).map_err(|e| e.to_string())?;
        Ok(Some((index, watermark)))
    }

    fn wrap(path: &Path, index: Index, watermark: PointId) -> Result<LexicalIndex, LexicalError> {
        index.tokenizers().register(ANALYZER, analyzer());
        let (_, point, text) = schema();
        let writer: IndexWriter = index.writer_with_num_threads(1, WRITER_HEAP_BYTES).map_err(|e| Self::err(path, e))?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(|e| Self::err(path, e))?;
        Ok(LexicalIndex {
            path: path.to_owned(),
            index,
            reader,
            writer: RwLock::new(writer),
            point,
            text,
            state: Mutex::new(CommitState { watermark, committed: watermark, ..CommitState::default() }),
        })
    }

    /// Hands passages to the writer, replacing any earlier copy of the same points, and removes
    /// `deleted`. `watermark`: every point below it is now handed over. Returns the change
    /// number to pass to `commit`. Call under the collection's writer lock.
    pub fn write(&self, added: &[(PointId, &str)], deleted: &[PointId], watermark: PointId) -> Result<u64, LexicalError> {
        let writer = self.writer.read();
        for &point in deleted.iter().chain(added.iter().map(|(p, _)| p)) {
            writer.delete_term(Term::from_field_u64(self.point, point));
        }
        for &(point, text) in added {
            writer.add_document(doc!(self.point => point, self.text => text)).map_err(|e| Self::err(&self.path, e))?;
        }
        let mut state = self.state.lock();
        state.changes += 1;
        state.watermark = state.watermark.max(watermark);
        Ok(state.changes)
    }

    /// Keeps committed watermarks at or below `cap` (`u64::MAX` lifts it): points from `cap` on
    /// may be missing, and the next open replays them from the store.
    pub fn cap_watermark(&self, cap: PointId) {
        self.state.lock().cap = (cap != PointId::MAX).then_some(cap);
    }

    /// Makes changes up to `change` durable and searchable; `flush_store` runs first, so the
    /// watermark committed never covers a point the store could still lose.
    pub fn commit(&self, change: u64, flush_store: impl FnOnce() -> Result<(), String>) -> Result<(), LexicalError> {
        if self.state.lock().visible >= change {
            return Ok(());
        }
        let mut writer = self.writer.write();
        let (changes, watermark) = {
            let state = self.state.lock();
            if state.visible >= change {
                return Ok(());
            }
            (state.changes, state.cap.map_or(state.watermark, |cap| state.watermark.min(cap)))
        };
        flush_store().map_err(|e| Self::err(&self.path, e))?;
        let committed = (|| {
            fail::fail_point!("lexical.commit", |_| Err("failpoint: lexical commit failed".to_owned()));
            let mut prepared = writer.prepare_commit().map_err(|e| e.to_string())?;
            prepared.set_payload(&watermark.to_string());
            prepared.commit().map_err(|e| e.to_string())
        })();
        if let Err(message) = committed {
            // Back to the last commit, with a working writer: what was handed over since is lost
            // here, and the caller replays it from the store (`committed_watermark`).
            if let Err(err) = writer.rollback() {
                tracing::error!(path = %self.path.display(), %err, "lexical index rollback failed");
            }
            return Err(Self::err(&self.path, message));
        }
        self.reader.reload().map_err(|e| Self::err(&self.path, e))?;
        drop(writer);
        let mut state = self.state.lock();
        state.visible = changes;
        state.committed = watermark;
        Ok(())
    }

    /// The watermark of the last commit: every point below it was in the index then.
    pub fn committed_watermark(&self) -> PointId {
        self.state.lock().committed
    }

    /// Points the index holds (live in the index, not necessarily in the store).
    pub fn points(&self) -> Result<HashSet<PointId>, LexicalError> {
        let searcher = self.reader.searcher();
        let mut out = HashSet::new();
        for segment in searcher.segment_readers() {
            let column = segment.fast_fields().u64("point").map_err(|e| Self::err(&self.path, e))?;
            for doc in 0..segment.max_doc() {
                if segment.alive_bitset().is_none_or(|alive| alive.is_alive(doc)) {
                    out.extend(column.first(doc));
                }
            }
        }
        Ok(out)
    }

    /// The `limit` best passages for `query` by BM25 among those `accept` lets through, best first.
    pub fn search(&self, query: &str, limit: usize, accept: Accept) -> Result<Vec<(PointId, f32)>, LexicalError> {
        // The analyzer registered at open (building one anew would rebuild its stop-word set).
        let mut analyzer = self.index.tokenizers().get(ANALYZER).unwrap_or_else(analyzer);
        let terms = terms(&mut analyzer, query);
        if terms.len() > MAX_QUERY_TERMS {
            return Err(LexicalError::TooManyTerms(terms.len()));
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .into_iter()
            .map(|t| (Occur::Should, Box::new(TermQuery::new(Term::from_field_text(self.text, &t), IndexRecordOption::WithFreqs)) as Box<dyn Query>))
            .collect();
        if clauses.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let collector = FilterCollector::new("point".to_owned(), move |p: u64| accept(p), TopDocs::with_limit(limit).order_by_score());
        let top = searcher.search(&query, &collector).map_err(|e| Self::err(&self.path, e))?;
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let column = searcher.segment_reader(address.segment_ord).fast_fields().u64("point").map_err(|e| Self::err(&self.path, e))?;
            if let Some(point) = column.first(address.doc_id) {
                out.push((point, score));
            }
        }
        Ok(out)
    }

    /// Passages in the index (deleted ones excluded).
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

}
