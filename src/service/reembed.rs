//! Re-embedding a collection into another model (or another chunking) while it serves.
//!
//! A job builds a *shadow* collection (`.reembed-<job>`, internal) from the stored texts, at
//! bulk priority (the model's bulk lane; queries keep the interactive one), then switches
//! names atomically: the old collection takes the name the job gave (`kept_as`) and the shadow
//! takes the collection's name (`Engine::switch`, one store transaction). Aliases name
//! collections by name, so an alias of the collection follows the switch.
//!
//! Writes go on meanwhile. The job watches the collection (`Collection::watch_changes`) from
//! before its first read, so every document written after it read it is read again
//! (catch-up passes) until few are left; then it holds the collection's writes, copies the
//! last ones, switches and renames the old collection: a writer that was waiting addressed the
//! name, finds the collection renamed, and is sent on to the new one (`Collection::addressed`,
//! `Service::write_ingest`). A document is
//! copied only when the shadow lacks it or holds another text or metadata, so a job resumed
//! after a restart (its record is in the store) re-reads everything but re-embeds only what it
//! had not done.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{now_ms, resolve_chunking, ChunkingChoice, Service, ServiceError, Splitter};
use crate::domain::{slices, Chunking, CollectionConfig, ModelBinding, NewDocument, NewPassage};
use crate::embed::{EmbeddingProvider, OnnxProvider};
use crate::engine::{Collection, EngineError, INTERNAL_PREFIX};

/// Documents read, compared and (when changed) embedded per step.
const BATCH: usize = 32;
/// Catch-up passes run without holding writers until at most this many documents are left;
/// the last ones are copied while writes wait (each costs one embedding).
const FINAL_AT_MOST: usize = 8;
/// Catch-up passes before the switch holds writers anyway (writers faster than the job).
const MAX_CATCH_UP_PASSES: usize = 50;
/// How often progress is saved to the store.
const SAVE_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
    Cancelled,
}

/// A re-embed job as the store keeps it (JSON in the `jobs` tree).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    /// The collection's name (what the switch hands to the new collection).
    pub collection: String,
    /// Its id when the job began: a collection replaced under that name fails the job.
    pub source_id: String,
    pub model: String,
    pub chunking: Option<Chunking>,
    pub shadow: String,
    /// The shadow's id: a restart that finds it under `collection` knows the switch was made.
    #[serde(default)]
    pub shadow_id: String,
    /// The name the old collection keeps after the switch (until deleted).
    pub kept_as: String,
    pub state: JobState,
    pub total: u64,
    pub done: u64,
    pub started_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub error: Option<String>,
}

/// A job's record as it stands, with its rate.
#[derive(Debug, Clone)]
pub struct JobStatus {
    pub record: JobRecord,
    /// Documents per second since this server (re)started the job.
    pub rate: Option<f64>,
    pub eta_seconds: Option<f64>,
}

struct Job {
    record: Mutex<JobRecord>,
    cancel: AtomicBool,
    /// When this process started running it, and how many documents were done then.
    started: Instant,
    done_at_start: u64,
}

impl Job {
    fn status(&self) -> JobStatus {
        let record = self.record.lock().clone();
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = (record.state == JobState::Running && elapsed > 0.5).then(|| record.done.saturating_sub(self.done_at_start) as f64 / elapsed);
        let eta_seconds = rate.filter(|&r| r > 0.0).map(|r| record.total.saturating_sub(record.done) as f64 / r);
        JobStatus { record, rate, eta_seconds }
    }
}

/// The jobs this server knows (running or finished, until deleted).
#[derive(Default)]
pub struct Jobs {
    table: Mutex<HashMap<String, Arc<Job>>>,
    /// Held by a start from its check to its record, so two starts cannot both pass the check.
    starting: Mutex<()>,
}

impl Service {
    /// Starts re-embedding `name` into `model` (with `chunking`); returns the job at once.
    pub fn start_reembed(&self, name: &str, model: &str, chunking: ChunkingChoice) -> Result<JobStatus, ServiceError> {
        let source = self.collection(name)?;
        if source.config.model.is_none() {
            return Err(ServiceError::NotReembeddable(format!(
                "collection '{}' holds vectors brought by its clients: akidb has no model to make them again (re-index it yourself and switch an alias)",
                source.name()
            )));
        }
        let provider = self.model(model)?.clone();
        let chunking = resolve_chunking(&provider, chunking)?;
        let name = source.name().to_string();
        // One start at a time (check, create, record); the table lock only for lookups.
        let _starting = self.jobs.starting.lock();
        let running = self.jobs.table.lock().values().any(|j| {
            let r = j.record.lock();
            r.state == JobState::Running && r.source_id == source.id()
        });
        if running {
            return Err(ServiceError::Conflict(format!("collection '{name}' is already being re-embedded (see GET /jobs)")));
        }
        let id = uuid::Uuid::now_v7().simple().to_string();
        let short: String = name.chars().take(40).collect();
        let kept_as = format!("{short}-pre-reembed-{}", &id[24..]);
        let info = provider.info();
        let config = CollectionConfig {
            id: String::new(),
            name: format!("{INTERNAL_PREFIX}reembed-{id}"),
            model: Some(ModelBinding { name: info.name.clone(), dims: info.dims, pooling: info.pooling, query_instruction: info.query_instruction.clone() }),
            dims: info.dims,
            created_at_ms: now_ms(),
            chunking,
            backend: source.backend(),
            ..source.config.clone()
        };
        let annex = self.engine.store().annex(source.id()).map_err(EngineError::from)?;
        let shadow = self.engine.create_collection_with(config, annex)?;
        let record = JobRecord {
            id: id.clone(),
            collection: name,
            source_id: source.id().to_owned(),
            model: info.name.clone(),
            chunking,
            shadow: shadow.name().to_string(),
            shadow_id: shadow.id().to_owned(),
            kept_as,
            state: JobState::Running,
            total: source.stats().documents as u64,
            done: 0,
            started_at_ms: now_ms(),
            finished_at_ms: None,
            error: None,
        };
        let job = Arc::new(Job { record: Mutex::new(record), cancel: AtomicBool::new(false), started: Instant::now(), done_at_start: 0 });
        self.save(&job)?;
        let status = job.status();
        self.jobs.table.lock().insert(id, job.clone());
        self.spawn(job)?;
        Ok(status)
    }

    /// Every job, newest first.
    pub fn jobs(&self) -> Vec<JobStatus> {
        let mut all: Vec<JobStatus> = self.jobs.table.lock().values().map(|j| j.status()).collect();
        all.sort_by(|a, b| b.record.started_at_ms.cmp(&a.record.started_at_ms).then(b.record.id.cmp(&a.record.id)));
        all
    }

    pub fn job(&self, id: &str) -> Result<JobStatus, ServiceError> {
        self.jobs.table.lock().get(id).map(|j| j.status()).ok_or_else(|| ServiceError::JobNotFound(id.to_owned()))
    }

    /// Cancels a running job (its shadow is dropped, the collection stays as it is), or forgets
    /// a finished one.
    pub fn cancel_job(&self, id: &str) -> Result<JobStatus, ServiceError> {
        let job = self.jobs.table.lock().get(id).cloned().ok_or_else(|| ServiceError::JobNotFound(id.to_owned()))?;
        if job.record.lock().state == JobState::Running {
            job.cancel.store(true, Ordering::Release);
            return Ok(job.status());
        }
        self.jobs.table.lock().remove(id);
        self.engine.store().put_job(id, None).map_err(EngineError::from)?;
        Ok(job.status())
    }

    /// At startup: loads the jobs the store records, resumes those that were running and drops
    /// shadow collections no running job owns.
    pub fn resume_jobs(&self) -> Result<(), ServiceError> {
        let mut running = Vec::new();
        for (id, bytes) in self.engine.store().jobs().map_err(EngineError::from)? {
            let Ok(record) = serde_json::from_slice::<JobRecord>(&bytes) else {
                tracing::warn!(job = %id, "unreadable job record; forgetting it");
                let _ = self.engine.store().put_job(&id, None);
                continue;
            };
            let job = Arc::new(Job { record: Mutex::new(record), cancel: AtomicBool::new(false), started: Instant::now(), done_at_start: 0 });
            if job.record.lock().state == JobState::Running {
                running.push(job.clone());
            }
            self.jobs.table.lock().insert(id, job);
        }
        let owned: Vec<String> = running.iter().map(|j| j.record.lock().shadow.clone()).collect();
        for collection in self.engine.all_collections() {
            let name = collection.name();
            if name.starts_with(&format!("{INTERNAL_PREFIX}reembed-")) && !owned.iter().any(|o| **o == *name) {
                tracing::info!(collection = %name, "dropping a re-embed shadow no running job owns");
                self.engine.drop_collection(&name)?;
            }
        }
        for job in running {
            let (id, collection) = {
                let record = job.record.lock();
                (record.id.clone(), record.collection.clone())
            };
            tracing::info!(job = %id, collection = %collection, "resuming a re-embed");
            self.spawn(job)?;
        }
        Ok(())
    }

    fn save(&self, job: &Job) -> Result<(), ServiceError> {
        let record = job.record.lock().clone();
        let bytes = serde_json::to_vec(&record).map_err(|e| ServiceError::Worker(e.to_string()))?;
        self.engine.store().put_job(&record.id, Some(&bytes)).map_err(EngineError::from)?;
        Ok(())
    }

    fn spawn(&self, job: Arc<Job>) -> Result<(), ServiceError> {
        let service = self.clone();
        let name = format!("akidb-reembed-{}", &job.record.lock().id[24..]);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                crate::engine::run_as_background_thread();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| service.run(&job)))
                    .unwrap_or_else(|_| Err(ServiceError::Worker("the re-embed thread panicked".into())));
                service.finish(&job, result);
            })
            .map(|_| ())
            .map_err(|e| ServiceError::Worker(e.to_string()))
    }

    /// Records how a run ended; a job that did not switch drops its shadow.
    fn finish(&self, job: &Job, result: Result<bool, ServiceError>) {
        let (state, error) = match result {
            Ok(true) => (JobState::Done, None),
            Ok(false) => (JobState::Cancelled, None),
            Err(err) => (JobState::Failed, Some(err.to_string())),
        };
        let shadow = {
            let mut record = job.record.lock();
            record.state = state;
            record.error = error.clone();
            record.finished_at_ms = Some(now_ms());
            record.shadow.clone()
        };
        if state != JobState::Done && self.engine.collection(&shadow).is_ok() {
            if let Err(err) = self.engine.drop_collection(&shadow) {
                tracing::error!(collection = %shadow, %err, "could not drop a re-embed shadow; the next start drops it");
            }
        }
        let id = job.record.lock().id.clone();
        match &error {
            Some(error) => tracing::error!(job = %id, %error, "re-embed failed"),
            None => tracing::info!(job = %id, state = ?state, "re-embed ended"),
        }
        if let Err(err) = self.save(job) {
            tracing::error!(%err, "could not save a re-embed job's end");
        }
    }

    /// The job's work; `Ok(false)` when cancelled.
    fn run(&self, job: &Job) -> Result<bool, ServiceError> {
        let record = job.record.lock().clone();
        let source = self.engine.collection(&record.collection)?;
        if !record.shadow_id.is_empty() && source.id() == record.shadow_id {
            // The switch was made and the process stopped before recording it.
            return Ok(true);
        }
        // Counted again from the start: every document is read again (only changed ones are embedded).
        job.record.lock().done = 0;
        if source.id() != record.source_id {
            return Err(ServiceError::Conflict(format!("collection '{}' was replaced while it was re-embedded", record.collection)));
        }
        let shadow = self.engine.collection(&record.shadow)?;
        let provider = self.model_named(&record.model).ok_or_else(|| ServiceError::ModelNotLoaded { collection: record.collection.clone(), model: record.model.clone() })?.clone();
        let splitter = Splitter::new(shadow.config.chunking, provider.encoder().clone()).map_err(|message| ServiceError::Invalid { code: "invalid_chunking", message })?;
        let copier = Copier { source: &source, shadow: &shadow, provider: &provider, splitter };
        // From before the first read: every later write is read again.
        let changes = source.watch_changes()?;
        let mut saved = Instant::now();
        {
            let mut ids = source.document_ids()?;
            loop {
                if job.cancel.load(Ordering::Acquire) {
                    return Ok(false);
                }
                let batch: Vec<String> = ids.by_ref().take(BATCH).collect::<Result<_, _>>()?;
                if batch.is_empty() {
                    break;
                }
                fail::fail_point!("reembed.batch");
                copier.copy(&batch)?;
                {
                    // Documents written meanwhile may take it past the count at the start.
                    let mut record = job.record.lock();
                    record.done += batch.len() as u64;
                    record.total = record.total.max(record.done);
                }
                if saved.elapsed() > SAVE_EVERY {
                    self.save(job)?;
                    saved = Instant::now();
                }
            }
        }
        // Documents the shadow holds that the collection no longer does (deleted while this
        // server was down, between two runs of the job).
        let mut gone = Vec::new();
        for id in shadow.document_ids()? {
            let id = id?;
            if source.get_head(&id)?.is_none() {
                gone.push(id);
            }
        }
        if !gone.is_empty() {
            shadow.delete(&gone)?;
        }
        for _ in 0..MAX_CATCH_UP_PASSES {
            if changes.len() <= FINAL_AT_MOST {
                break;
            }
            if job.cancel.load(Ordering::Acquire) {
                return Ok(false);
            }
            let ids: Vec<String> = source.take_changes(&changes).into_iter().collect();
            for batch in ids.chunks(BATCH) {
                copier.copy(batch)?;
            }
        }
        if job.cancel.load(Ordering::Acquire) {
            return Ok(false);
        }
        // The switch: writes wait while the last changes are copied and the names move. Lock
        // order: aliases, then the collection's writer (as a restore's switch takes them).
        let aliases = self.aliases_lock.lock();
        // Drops take the alias lock too: the name is still this collection's for the switch.
        if !self.engine.collection(&record.collection).is_ok_and(|c| c.id() == source.id()) {
            return Err(ServiceError::Conflict(format!("collection '{}' was dropped or replaced while it was re-embedded", record.collection)));
        }
        let hold = source.hold_writes()?;
        let last: Vec<String> = changes.take().into_iter().collect();
        for batch in last.chunks(BATCH) {
            copier.copy(batch)?;
        }
        drop(changes);
        if self.aliases()?.iter().any(|(alias, _)| *alias == record.kept_as) {
            return Err(ServiceError::Conflict(format!("'{}', the name the old collection would keep, is now an alias", record.kept_as)));
        }
        // Writers waiting on the hold addressed the name, which is now the new collection's:
        // they find the old one renamed and are sent on (`Collection::addressed`).
        self.engine.switch(&[(record.collection.clone(), record.kept_as.clone()), (record.shadow.clone(), record.collection.clone())], None)?;
        drop(hold);
        drop(aliases);
        let total = shadow.stats().documents as u64;
        let mut record = job.record.lock();
        record.total = record.total.max(total);
        record.done = record.total;
        tracing::info!(collection = %record.collection, model = %record.model, kept_as = %record.kept_as, "re-embedded; switched");
        Ok(true)
    }
}

/// Copies documents from the collection into its shadow, re-embedding what changed.
struct Copier<'a> {
    source: &'a Arc<Collection>,
    shadow: &'a Arc<Collection>,
    provider: &'a Arc<OnnxProvider>,
    splitter: Splitter,
}

impl Copier<'_> {
    fn copy(&self, ids: &[String]) -> Result<(), ServiceError> {
        let mut wanted = Vec::new();
        let mut gone = Vec::new();
        for id in ids {
            let now = self.source.get(id)?;
            let copied = self.shadow.get(id)?;
            match (now, copied) {
                (None, Some(_)) => gone.push(id.clone()),
                (None, None) => {}
                (Some(now), Some(copied)) if now.text == copied.text && now.metadata == copied.metadata => {}
                (Some(now), _) => wanted.push(now),
            }
        }
        if !gone.is_empty() {
            self.shadow.delete(&gone)?;
        }
        if wanted.is_empty() {
            return Ok(());
        }
        if let Some(empty) = wanted.iter().find(|d| d.text.trim().is_empty()) {
            return Err(ServiceError::NotReembeddable(format!("document '{}' has no text (its vector was brought by a client): it cannot be embedded again", empty.id)));
        }
        let spans: Vec<_> = wanted.iter().map(|d| self.splitter.split(&d.text)).collect();
        let texts: Vec<String> = wanted.iter().zip(&spans).flat_map(|(d, s)| slices(&d.text, s).into_iter().map(str::to_owned)).collect();
        let mut vectors = self.provider.embed_documents(texts).wait()?.into_iter();
        let mut documents = Vec::with_capacity(wanted.len());
        for (doc, spans) in wanted.into_iter().zip(spans) {
            let mut passages = Vec::with_capacity(spans.len());
            for span in spans {
                let embedding = vectors.next().ok_or_else(|| ServiceError::Worker("the model returned fewer vectors than texts".into()))?;
                passages.push(NewPassage { span, vector: embedding.embedding });
            }
            documents.push(NewDocument { id: doc.id, text: doc.text, metadata: doc.metadata, passages });
        }
        self.shadow.upsert(documents)?;
        Ok(())
    }
}
