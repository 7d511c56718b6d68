//! Collections over the store and the index: create, write, delete, search, compact, dump.
//!
//! Engine calls block (sled, fsync, graph work): async callers run them on a blocking thread.

pub mod condition;
mod collection;
pub mod calibrate;
mod graph;
pub mod watch;
pub mod payload;
pub mod filter;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub use collection::{Addressed, Collection, SnapshotReader, WatchGuard, WriteHold, FilterStrategy, Found, IndexStats, Scored, COMPACT_RATIO, DELETE_BATCH, EXACT_FILTER_MAX, EXACT_FILTER_SHARE, MAX_COMPONENT};
pub use condition::{Clause, Condition};
pub use filter::Filter;

use crate::index::{dump, validate_spec, IndexError, IndexSpec};
use crate::store::{CollectionConfig, DocumentStore, SledStore, StoreError};

/// Longest document id, in bytes.
/// Longest document id, in characters (what a JSON schema's maxLength counts).
pub const MAX_ID_CHARS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid collection name '{0}': use 1 to 64 characters from A-Z a-z 0-9 _ -")]
    InvalidName(String),
    #[error("collection '{0}' already exists")]
    CollectionExists(String),
    #[error("collection '{0}' not found")]
    CollectionNotFound(String),
    #[error("vector has {got} dimensions, the collection expects {expected}")]
    DimensionMismatch { expected: usize, got: usize },
    #[error("invalid vector: {0}")]
    InvalidVector(String),
    #[error("invalid document id: {0}")]
    InvalidId(String),
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Lexical(#[from] crate::lexical::LexicalError),
    #[error(transparent)]
    Store(StoreError),
    /// The collection was switched for another under its name while this request was on its way
    /// (a restore or a re-embed): the service retries by name.
    #[error("collection '{0}' was replaced while the request was on its way; retry it")]
    Moved(String),
    /// One snapshot per collection at a time: each costs a thread, a watch and before-images.
    #[error("a snapshot of collection '{0}' is being written; try again when it is done")]
    SnapshotRunning(String),
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::CollectionExists(name) => EngineError::CollectionExists(name),
            StoreError::CollectionNotFound(name) => EngineError::CollectionNotFound(name),
            other => EngineError::Store(other),
        }
    }
}

pub fn validate_collection_name(name: &str) -> Result<(), EngineError> {
    let ok = (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidName(name.chars().take(80).collect()))
    }
}

pub fn validate_document_id(id: &str) -> Result<(), EngineError> {
    if id.is_empty() {
        return Err(EngineError::InvalidId("an id must not be empty".into()));
    }
    let chars = id.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(EngineError::InvalidId(format!("ids are at most {MAX_ID_CHARS} characters, got {chars}")));
    }
    Ok(())
}

/// Names of collections the engine makes for itself (a restore in progress, a re-embed's
/// shadow) start with this: users cannot create them (`validate_collection_name`), listings
/// leave them out.
pub const INTERNAL_PREFIX: char = '.';
/// A restore writes into a collection of this prefix and renames it when complete: one found
/// at open is a restore a crash cut short, and is dropped.
pub const RESTORE_PREFIX: &str = ".restore-";

pub fn is_internal(name: &str) -> bool {
    name.starts_with(INTERNAL_PREFIX)
}

/// All collections of one data directory.
///
/// `collections` is only ever held for a map lookup or update: async handlers take it on tokio's
/// workers. Creating and dropping collections (sled flushes, `drop_tree`, index directories) is
/// serialized by `ddl` instead, which only blocking threads take.
pub struct Engine {
    store: Arc<dyn DocumentStore>,
    index_root: PathBuf,
    collections: RwLock<HashMap<String, Arc<Collection>>>,
    ddl: Mutex<()>,
}

impl Engine {
    /// Opens `data_dir/store` (sled) and every collection's index under `data_dir/index`.
    pub fn open(data_dir: &Path) -> Result<Self, EngineError> {
        Self::open_with_cache(data_dir, crate::store::DEFAULT_CACHE_BYTES)
    }

    /// `open` with the size of the store's page cache.
    pub fn open_with_cache(data_dir: &Path, cache_bytes: u64) -> Result<Self, EngineError> {
        let store: Arc<dyn DocumentStore> = Arc::new(SledStore::open_configured(&data_dir.join("store"), Some(500), cache_bytes)?);
        Self::with_store(store, data_dir.join("index"))
    }

    pub fn with_store(store: Arc<dyn DocumentStore>, index_root: PathBuf) -> Result<Self, EngineError> {
        // Taken away before anything is opened: a crash from here on is not a clean shutdown.
        let clean = take_clean_mark(&index_root);
        let mut configs = Vec::new();
        for config in store.collections()? {
            if config.name.starts_with(RESTORE_PREFIX) {
                tracing::info!(collection = %config.name, "dropping a restore that did not finish");
                store.drop_collection(&config.name)?;
                continue;
            }
            configs.push(config);
        }
        // In parallel, one thread per core at most: each open reads its own files and trees.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).max(1);
        let mut collections = HashMap::new();
        for batch in configs.chunks(threads) {
            let opened: Vec<Result<Collection, EngineError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = batch.iter().map(|config| scope.spawn(|| Collection::open_after(config.clone(), store.clone(), &index_root, clean))).collect();
                handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
            });
            for collection in opened {
                let collection = collection?;
                let collection = Arc::new(collection);
                collection.finish_open();
                collections.insert(collection.config.name.clone(), collection);
            }
        }
        remove_orphan_index_dirs(&index_root, &collections);
        release_free_memory();
        if let Some(data_dir) = index_root.parent() {
            remove_unfinished_snapshot_files(&data_dir.join("snapshots"));
        }
        Ok(Engine { store, index_root, collections: RwLock::new(collections), ddl: Mutex::new(()) })
    }

    /// Creates a collection under a fresh id (`config.id` is ignored).
    pub fn create_collection(&self, config: CollectionConfig) -> Result<Arc<Collection>, EngineError> {
        self.create_collection_with(config, None)
    }

    /// `create_collection` with an interface's annex for it (see `DocumentStore::annex`),
    /// written in the same transaction: no crash leaves the collection without it.
    pub fn create_collection_with(&self, mut config: CollectionConfig, annex: Option<Vec<u8>>) -> Result<Arc<Collection>, EngineError> {
        match config.name.strip_prefix(INTERNAL_PREFIX) {
            Some(rest) => validate_collection_name(rest)?,
            None => validate_collection_name(&config.name)?,
        }
        validate_spec(&IndexSpec::of(&config))?;
        let _ddl = self.ddl.lock();
        if self.collections.read().contains_key(&config.name) {
            return Err(EngineError::CollectionExists(config.name));
        }
        config.id = uuid::Uuid::now_v7().to_string();
        self.store.create_collection(&config, annex.as_deref())?;
        self.store.flush()?;
        let collection = Arc::new(Collection::open(config, self.store.clone(), &self.index_root)?);
        self.collections.write().insert(collection.name().to_string(), collection.clone());
        Ok(collection)
    }

    pub fn collection(&self, name: &str) -> Result<Arc<Collection>, EngineError> {
        self.collections.read().get(name).cloned().ok_or_else(|| EngineError::CollectionNotFound(name.to_owned()))
    }

    /// The collections users see, by name (not the engine's own: see `INTERNAL_PREFIX`).
    pub fn collections(&self) -> Vec<Arc<Collection>> {
        let mut all = self.all_collections();
        all.retain(|c| !is_internal(&c.name()));
        all
    }

    /// Every collection, internal ones included, by name.
    pub fn all_collections(&self) -> Vec<Arc<Collection>> {
        let mut all: Vec<_> = self.collections.read().values().cloned().collect();
        all.sort_by_key(|c| c.name());
        all
    }

    /// Renames collections and drops one in one store transaction, then in the name map (see
    /// `DocumentStore::switch`). A caller replacing a collection that is being written holds
    /// its writes (`Collection::hold_writes`) across this and retires it.
    pub fn switch(&self, renames: &[(String, String)], drop: Option<&str>) -> Result<(), EngineError> {
        let _ddl = self.ddl.lock();
        {
            let map = self.collections.read();
            for name in renames.iter().map(|(from, _)| from.as_str()).chain(drop) {
                if !map.contains_key(name) {
                    return Err(EngineError::CollectionNotFound(name.to_owned()));
                }
            }
        }
        self.store.switch(renames, drop)?;
        let mut map = self.collections.write();
        let dropped = drop.and_then(|name| map.remove(name));
        let moved: Vec<(String, Arc<Collection>)> = renames.iter().filter_map(|(from, to)| map.remove(from).map(|c| (to.clone(), c))).collect();
        for (to, collection) in moved {
            collection.set_name(&to);
            map.insert(to, collection);
        }
        std::mem::drop(map);
        if let Some(collection) = dropped {
            let _ = std::fs::remove_dir_all(collection.index_dir());
        }
        Ok(())
    }

    /// Drops a collection: gone from lookups at once, from the store in one transaction. Writes
    /// still in flight for it fail with `CollectionNotFound`, even if the name is reused.
    pub fn drop_collection(&self, name: &str) -> Result<(), EngineError> {
        let _ddl = self.ddl.lock();
        let collection = self.collections.write().remove(name).ok_or_else(|| EngineError::CollectionNotFound(name.to_owned()))?;
        if let Err(err) = self.store.drop_collection(name) {
            // Still in the store: keep serving it rather than hide what exists.
            self.collections.write().insert(name.to_owned(), collection);
            return Err(err.into());
        }
        let _ = std::fs::remove_dir_all(collection.index_dir());
        Ok(())
    }

    /// Dumps every collection's index (periodically and at shutdown). One collection's failure
    /// does not stop the others' dumps; the first error is returned after all were tried.
    pub fn dump_all(&self) -> Result<(), EngineError> {
        let mut first = None;
        for collection in self.all_collections() {
            if let Err(err) = collection.dump() {
                tracing::error!(collection = %collection.name(), %err, "index dump failed");
                first.get_or_insert(err);
            }
        }
        // A dump's copies (payload index, encoded files) are freed by now.
        release_free_memory();
        first.map_or(Ok(()), Err)
    }

    /// Measures the default search breadth of every collection that grew or shrank by half since
    /// it was last measured (`calibrate.rs`). Background work: the periodic dumper runs it.
    pub fn calibrate_all(&self) {
        for collection in self.all_collections() {
            collection.calibrate_if_stale();
        }
    }

    /// Records that every collection was dumped and the store flushed at shutdown: the next open
    /// trusts the lexical index's files without reading them all to check their checksums.
    ///
    /// The lexical index writes without fsync (sled is its source of truth): every file under
    /// the index root is synced first (Linux `syncfs`), or no mark is written where that is not
    /// available, so a power loss after a clean stop cannot leave a torn file unchecked.
    pub fn mark_clean_shutdown(&self) -> Result<(), EngineError> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let root = std::fs::File::open(&self.index_root).map_err(|source| IndexError::Io { path: self.index_root.clone(), source })?;
            // SAFETY: syncfs takes a valid open descriptor, alive for the call.
            if unsafe { libc::syncfs(root.as_raw_fd()) } != 0 {
                return Err(IndexError::Io { path: self.index_root.clone(), source: std::io::Error::last_os_error() }.into());
            }
            dump::write_atomically(&self.index_root.join(CLEAN_MARK), b"clean\n")?;
        }
        Ok(())
    }

    /// Where snapshot files are kept: `data_dir/snapshots`, beside `index`.
    pub fn snapshot_root(&self) -> PathBuf {
        self.index_root.parent().map_or_else(|| PathBuf::from("snapshots"), |p| p.join("snapshots"))
    }

    pub fn store(&self) -> &Arc<dyn DocumentStore> {
        &self.store
    }
}

/// Hands the allocator's free memory back to the system. Opening reads each dump into a buffer
/// as large as the graph and decodes it beside it; glibc keeps such freed blocks for reuse (its
/// mmap threshold rises after the first large free), which left the server's RSS a third above
/// what it holds.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Present only between a clean shutdown and the next open (`mark_clean_shutdown`).
const CLEAN_MARK: &str = "CLEAN";

/// Whether the last run ended cleanly; removes the mark (durably) so that a crash after this
/// open is not taken for a clean stop.
fn take_clean_mark(index_root: &Path) -> bool {
    let mark = index_root.join(CLEAN_MARK);
    if !mark.exists() {
        return false;
    }
    let removed = std::fs::remove_file(&mark).is_ok() && dump::fsync_dir(index_root).is_ok();
    if !removed {
        tracing::warn!(path = %mark.display(), "could not remove the clean-shutdown mark; checking every index file");
    }
    removed
}

/// Lowers the calling thread's CPU priority (nice 10) for background maintenance (dumps,
/// compactions): on a machine busy embedding, they take the cores only when requests leave them.
pub fn run_as_background_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority with PRIO_PROCESS and id 0 changes only the calling thread on Linux;
    // it reads no memory of ours.
    unsafe {
        if libc::setpriority(libc::PRIO_PROCESS, 0, 10) != 0 {
            tracing::debug!("could not lower a background thread's priority");
        }
    }
}

/// Index directories are named by collection id: any other is left over from a dropped
/// collection (or from before ids existed) and is removed.
fn remove_orphan_index_dirs(index_root: &Path, collections: &HashMap<String, Arc<Collection>>) {
    let Ok(entries) = std::fs::read_dir(index_root) else { return };
    let ids: std::collections::HashSet<&str> = collections.values().map(|c| c.id()).collect();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if entry.path().is_dir() && !ids.contains(name.to_string_lossy().as_ref()) {
            tracing::info!(dir = %entry.path().display(), "removing an index directory no collection owns");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Snapshot files a crash left half written (dot files: temp files and uploads), never listed,
/// are removed at open: the next start is clean.
fn remove_unfinished_snapshot_files(root: &Path) {
    let Ok(dirs) = std::fs::read_dir(root) else { return };
    for dir in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(dir.path()) else { continue };
        let uploads = dir.file_name() == ".uploads";
        for file in files.flatten() {
            if uploads || file.file_name().to_string_lossy().starts_with('.') {
                tracing::info!(file = %file.path().display(), "removing a snapshot file a crash left unfinished");
                let _ = std::fs::remove_file(file.path());
            }
        }
    }
}
