//! Snapshots while serving, and restores: one file per collection at one moment
//! (`crate::snapshot` is the format), kept in `data_dir/snapshots/<collection>/`.
//!
//! A snapshot reads the collection through `Collection::begin_snapshot` (a point-in-time view
//! while writes go on) on a background-priority thread and writes the file atomically. A
//! restore first reads the whole file and checks it (nothing is created for a damaged file),
//! then writes its documents into an internal collection (`.restore-…`), indexes built as it
//! goes, and finally gives it its name in one store transaction (replacing the collection of
//! that name when asked, whose writers are held and sent on to the new one). A crash before
//! that switch leaves the internal collection, which the next open drops: the name and its
//! collection are untouched.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;

use crate::embed::EmbeddingProvider;

use super::{blocking, Service, ServiceError};
use crate::domain::CollectionConfig;
use crate::engine::{validate_collection_name, Collection, EngineError, RESTORE_PREFIX};
use crate::snapshot::{self, Header, SnapshotError, SnapshotWriter, Totals, EXTENSION};

/// Documents per frame written and per batch restored.
const BATCH: usize = 256;
/// A snapshot syncs its file every this many bytes and rests after each batch as long as the
/// batch took (half the time working). Writes during back-to-back SciFact snapshots (23 MB
/// each, Intel Xeon, 2 vCPUs) had a p99 1.62–1.88× their p99 without, when snapshots wrote as
/// fast as they could and synced once at the end (the disk busy with ~180 MB/s of writeback
/// that every store flush queued behind); with both, 1.36× (benches/peers/lifecycle.py).
const SYNC_EVERY: u64 = 4 << 20;

#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotInfo {
    pub name: String,
    pub size: u64,
    /// Unix time, milliseconds (of the moment for a new snapshot; the file's mtime in a listing).
    pub created_at_ms: u64,
    /// Known for a snapshot just made.
    pub documents: Option<u64>,
    pub passages: Option<u64>,
    /// CRC-32 of the file's body, as its trailer holds it (new snapshots).
    pub checksum: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub collection: String,
    pub documents: u64,
    pub passages: u64,
    /// The file's size.
    pub bytes: u64,
    pub seconds: f64,
    /// A collection of that name existed and was replaced.
    pub replaced: bool,
}

impl From<SnapshotError> for ServiceError {
    fn from(err: SnapshotError) -> Self {
        match err {
            SnapshotError::Invalid(_) => ServiceError::Invalid { code: "invalid_snapshot", message: err.to_string() },
            SnapshotError::Io { .. } => ServiceError::Worker(err.to_string()),
        }
    }
}

/// `2026-12-07T21:04:05.123Z` and `2026-12-07-21-04-05` for a Unix time in milliseconds.
pub fn iso_time(ms: u64) -> (String, String) {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (y, mo, d, h, mi, s) = (t.year(), t.month() as u8, t.day(), t.hour(), t.minute(), t.second());
    (format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z", ms % 1000), format!("{y:04}-{mo:02}-{d:02}-{h:02}-{mi:02}-{s:02}"))
}

/// A snapshot file name as clients give it: a plain name of ours, never a path.
fn check_file_name(name: &str) -> Result<(), ServiceError> {
    let ok = name.len() <= 200
        && name.ends_with(&format!(".{EXTENSION}"))
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::Invalid { code: "invalid_snapshot_name", message: format!("'{}' is not a snapshot name (letters, digits, - _ . ending in .{EXTENSION})", name.chars().take(80).collect::<String>()) })
    }
}

impl Service {
    fn snapshot_dir(&self, collection: &str) -> PathBuf {
        self.engine.snapshot_root().join(collection)
    }

    /// The collection's name, through an alias; for a collection that is gone, the name itself
    /// when snapshots of it are still on disk.
    fn snapshots_of(&self, name: &str) -> Result<String, ServiceError> {
        match self.collection(name) {
            Ok(collection) => Ok(collection.name().to_string()),
            Err(err) => {
                if validate_collection_name(name).is_ok() && self.snapshot_dir(name).is_dir() {
                    Ok(name.to_owned())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Writes a snapshot of the collection as it is now; writes go on meanwhile.
    pub async fn create_snapshot(&self, name: &str) -> Result<SnapshotInfo, ServiceError> {
        let collection = self.collection(name)?;
        let annex = self.engine.store().annex(collection.id()).map_err(EngineError::from)?;
        let dir = self.snapshot_dir(&collection.name());
        blocking(move || {
            // A snapshot reads the whole collection: at background priority, like dumps.
            let thread = std::thread::Builder::new().name("akidb-snapshot".into()).spawn(move || {
                crate::engine::run_as_background_thread();
                write_snapshot(&collection, annex, &dir)
            });
            thread.map_err(|e| ServiceError::Worker(e.to_string()))?.join().map_err(|_| ServiceError::Worker("the snapshot thread panicked".into()))?
        })
        .await
    }

    /// The snapshots kept for a collection, newest first.
    pub async fn list_snapshots(&self, name: &str) -> Result<Vec<SnapshotInfo>, ServiceError> {
        let dir = self.snapshot_dir(&self.snapshots_of(name)?);
        blocking(move || {
            let mut all = Vec::new();
            let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(all) };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if check_file_name(&name).is_err() {
                    continue;
                }
                let Ok(meta) = entry.metadata() else { continue };
                let created_at_ms = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as u64);
                all.push(SnapshotInfo { name, size: meta.len(), created_at_ms, documents: None, passages: None, checksum: None });
            }
            all.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then(b.name.cmp(&a.name)));
            Ok(all)
        })
        .await
    }

    /// The path of a kept snapshot (for a download).
    pub fn snapshot_file(&self, collection: &str, snapshot: &str) -> Result<PathBuf, ServiceError> {
        check_file_name(snapshot)?;
        let path = self.snapshot_dir(&self.snapshots_of(collection)?).join(snapshot);
        if !path.is_file() {
            return Err(ServiceError::SnapshotNotFound(format!("no snapshot '{snapshot}' of collection '{collection}'")));
        }
        Ok(path)
    }

    pub async fn delete_snapshot(&self, collection: &str, snapshot: &str) -> Result<(), ServiceError> {
        let path = self.snapshot_file(collection, snapshot)?;
        blocking(move || std::fs::remove_file(&path).map_err(|e| ServiceError::Worker(format!("{}: {e}", path.display())))).await
    }

    /// Where uploads are received before they are restored (then removed).
    pub fn upload_path(&self) -> PathBuf {
        self.engine.snapshot_root().join(".uploads").join(format!("{}.tmp", uuid::Uuid::now_v7()))
    }

    /// Restores a snapshot file into `target` (default: the name it was taken from). An
    /// existing collection of that name is refused unless `replace`. The file is checked whole
    /// before anything is written; the collection appears complete, or not at all.
    pub async fn restore_snapshot(&self, path: PathBuf, target: Option<String>, replace: bool) -> Result<Restored, ServiceError> {
        let service = self.clone();
        blocking(move || service.restore_blocking(&path, target, replace)).await
    }

    fn restore_blocking(&self, path: &Path, target: Option<String>, replace: bool) -> Result<Restored, ServiceError> {
        let started = Instant::now();
        let bytes = std::fs::metadata(path).map_err(|e| ServiceError::Worker(format!("{}: {e}", path.display())))?.len();
        let (header, totals) = snapshot::verify(path)?;
        let target = target.unwrap_or_else(|| header.config.name.clone());
        validate_collection_name(&target)?;
        if self.aliases()?.iter().any(|(alias, _)| *alias == target) {
            return Err(ServiceError::Invalid { code: "name_is_alias", message: format!("'{target}' is an alias; restore under another name or delete the alias") });
        }
        let exists = self.engine.collection(&target).is_ok();
        if exists && !replace {
            return Err(EngineError::CollectionExists(target).into());
        }
        self.check_restorable(&header.config)?;
        let annex = header.annex.as_deref().map(|a| base64::engine::general_purpose::STANDARD.decode(a)).transpose().map_err(|e| ServiceError::Invalid { code: "invalid_snapshot", message: format!("not a valid akidb snapshot: its annex is not base64: {e}") })?;
        let internal = format!("{RESTORE_PREFIX}{}", uuid::Uuid::now_v7().simple());
        let config = CollectionConfig { id: String::new(), name: internal.clone(), created_at_ms: header.config.created_at_ms, ..header.config.clone() };
        let collection = self.engine.create_collection_with(config, annex)?;
        let filled = (|| -> Result<Totals, ServiceError> {
            let mut reader = snapshot::SnapshotReader::open(path)?;
            while let Some(documents) = reader.next_documents()? {
                fail::fail_point!("snapshot.restore.batch");
                for chunk in documents.chunks(BATCH) {
                    collection.upsert_as_is(chunk.to_vec())?;
                }
            }
            Ok(reader.totals())
        })();
        let result = filled.and_then(|written| {
            if written != totals {
                return Err(ServiceError::Worker(format!("the snapshot changed while it was restored ({written:?} read, {totals:?} verified)")));
            }
            self.put_in_place(&collection, &internal, &target, replace)
        });
        match result {
            Ok(replaced) => {
                tracing::info!(collection = %target, documents = totals.documents, bytes, seconds = started.elapsed().as_secs_f64(), "snapshot restored");
                Ok(Restored { collection: target, documents: totals.documents, passages: totals.passages, bytes, seconds: started.elapsed().as_secs_f64(), replaced })
            }
            Err(err) => {
                if let Err(drop_err) = self.engine.drop_collection(&internal) {
                    tracing::error!(collection = %internal, %drop_err, "could not drop an unfinished restore; the next start drops it");
                }
                Err(err)
            }
        }
    }

    /// A snapshot's collection can live on this server: its model is loaded and the same.
    fn check_restorable(&self, config: &CollectionConfig) -> Result<(), ServiceError> {
        let Some(binding) = &config.model else { return Ok(()) };
        let provider = self.model_named(&binding.name).ok_or_else(|| ServiceError::ModelNotLoaded { collection: config.name.clone(), model: binding.name.clone() })?;
        let info = provider.info();
        if info.dims != binding.dims || info.pooling != binding.pooling {
            return Err(ServiceError::ModelMismatch(config.name.clone(), format!("the snapshot's vectors have {} dims ({:?} pooling); the loaded model makes {} ({:?})", binding.dims, binding.pooling, info.dims, info.pooling)));
        }
        Ok(())
    }

    /// Gives the restored collection its name, replacing the collection there (whose writers
    /// are held across the switch and then sent on by name). Returns whether one was replaced.
    fn put_in_place(&self, restored: &Arc<Collection>, internal: &str, target: &str, replace: bool) -> Result<bool, ServiceError> {
        restored.dump()?;
        let _aliases = self.aliases_lock.lock();
        match self.engine.collection(target) {
            Ok(existing) if replace => {
                let hold = existing.hold_writes()?;
                self.engine.switch(&[(internal.to_owned(), target.to_owned())], Some(target))?;
                hold.retire();
                Ok(true)
            }
            Ok(_) => Err(EngineError::CollectionExists(target.to_owned()).into()),
            Err(_) => {
                self.engine.switch(&[(internal.to_owned(), target.to_owned())], None)?;
                Ok(false)
            }
        }
    }
}

/// Reads the collection at one moment and writes it to a new file in `dir`.
fn write_snapshot(collection: &Arc<Collection>, annex: Option<Vec<u8>>, dir: &Path) -> Result<SnapshotInfo, ServiceError> {
    let mut reader = collection.begin_snapshot()?;
    let created_at_ms = super::now_ms();
    let name = format!("{}-{}-{}.{EXTENSION}", collection.name(), iso_time(created_at_ms).1, &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let header = Header {
        config: collection.config.clone(),
        annex: annex.map(|a| base64::engine::general_purpose::STANDARD.encode(a)),
        created_at_ms,
        akidb_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let header = Header { config: CollectionConfig { name: collection.name().to_string(), ..header.config }, ..header };
    let path = dir.join(&name);
    let (totals, crc) = snapshot::write_atomically(&path, |out| {
        let mut writer = SnapshotWriter::new(out, &header)?;
        let mut synced = 0u64;
        loop {
            let started = std::time::Instant::now();
            let batch = reader.next_batch(BATCH).map_err(std::io::Error::other)?;
            if batch.is_empty() {
                break;
            }
            fail::fail_point!("snapshot.write.batch");
            writer.documents(&batch)?;
            if writer.written() - synced > SYNC_EVERY {
                use std::io::Write as _;
                writer.inner_mut().flush()?;
                writer.inner_mut().get_ref().sync_data()?;
                synced = writer.written();
            }
            // Rests as long as it worked: half the disk and a core left to requests.
            std::thread::sleep(started.elapsed());
        }
        let (_, totals, crc) = writer.finish()?;
        Ok((totals, crc))
    })?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let checksum = Some(format!("{crc:08x}"));
    tracing::info!(collection = %collection.name(), snapshot = %name, documents = totals.documents, size, "snapshot written");
    Ok(SnapshotInfo { name, size, created_at_ms, documents: Some(totals.documents), passages: Some(totals.passages), checksum })
}
