//! Collections over the store and the index: create, write, delete, search, compact, dump.
//!
//! Engine calls block (sled, fsync, graph work): async callers run them on a blocking thread.

mod collection;
pub mod filter;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

pub use collection::{Collection, FilterStrategy, Found, IndexStats, COMPACT_RATIO, EXACT_FILTER_MAX, EXACT_FILTER_SHARE};
pub use filter::Filter;

use crate::index::{validate_params, IndexError};
use crate::store::{CollectionConfig, DocumentStore, SledStore, StoreError};

/// Longest document id, in bytes.
pub const MAX_ID_BYTES: usize = 256;

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
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Store(StoreError),
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
    if id.len() > MAX_ID_BYTES {
        return Err(EngineError::InvalidId(format!("ids are at most {MAX_ID_BYTES} bytes, got {}", id.len())));
    }
    Ok(())
}

/// All collections of one data directory.
pub struct Engine {
    store: Arc<dyn DocumentStore>,
    index_root: PathBuf,
    collections: RwLock<HashMap<String, Arc<Collection>>>,
}

impl Engine {
    /// Opens `data_dir/store` (sled) and every collection's index under `data_dir/index`.
    pub fn open(data_dir: &Path) -> Result<Self, EngineError> {
        let store: Arc<dyn DocumentStore> = Arc::new(SledStore::open(&data_dir.join("store"))?);
        Self::with_store(store, data_dir.join("index"))
    }

    pub fn with_store(store: Arc<dyn DocumentStore>, index_root: PathBuf) -> Result<Self, EngineError> {
        let mut collections = HashMap::new();
        for config in store.collections()? {
            let name = config.name.clone();
            collections.insert(name, Arc::new(Collection::open(config, store.clone(), &index_root)?));
        }
        Ok(Engine { store, index_root, collections: RwLock::new(collections) })
    }

    pub fn create_collection(&self, config: CollectionConfig) -> Result<Arc<Collection>, EngineError> {
        validate_collection_name(&config.name)?;
        validate_params(&config.hnsw)?;
        let mut collections = self.collections.write();
        if collections.contains_key(&config.name) {
            return Err(EngineError::CollectionExists(config.name));
        }
        // A dump left by an earlier collection of the same name must not be mistaken for this one's.
        let _ = std::fs::remove_dir_all(crate::index::dump::collection_dir(&self.index_root, &config.name));
        self.store.create_collection(&config)?;
        self.store.flush()?;
        let collection = Arc::new(Collection::open(config, self.store.clone(), &self.index_root)?);
        collections.insert(collection.name().to_owned(), collection.clone());
        Ok(collection)
    }

    pub fn collection(&self, name: &str) -> Result<Arc<Collection>, EngineError> {
        self.collections.read().get(name).cloned().ok_or_else(|| EngineError::CollectionNotFound(name.to_owned()))
    }

    pub fn collections(&self) -> Vec<Arc<Collection>> {
        let mut all: Vec<_> = self.collections.read().values().cloned().collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }

    pub fn drop_collection(&self, name: &str) -> Result<(), EngineError> {
        let mut collections = self.collections.write();
        let collection = collections.remove(name).ok_or_else(|| EngineError::CollectionNotFound(name.to_owned()))?;
        self.store.drop_collection(name)?;
        self.store.flush()?;
        let _ = std::fs::remove_dir_all(collection.index_dir());
        Ok(())
    }

    /// Dumps every collection's index (periodically and at shutdown).
    pub fn dump_all(&self) -> Result<(), EngineError> {
        for collection in self.collections() {
            collection.dump()?;
        }
        Ok(())
    }

    pub fn store(&self) -> &Arc<dyn DocumentStore> {
        &self.store
    }
}
