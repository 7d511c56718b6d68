//! Schema v1 → v2. See migrations/README.md.
//!
//! v1 layout: `collections`: name → JSON `CollectionConfig`; `docs/<name>`: id → JSON
//! `{"text", "metadata", "vector": [f32]}`. No point ids, no counters.

use serde::Deserialize;

use crate::store::codec::{encode, vector_to_bytes, DocRecord};
use crate::store::sled_store::{docs_tree, points_tree, COLLECTIONS, COUNTERS};
use crate::store::{CollectionConfig, StoreError};

#[derive(Deserialize)]
struct V1Document {
    text: String,
    metadata: serde_json::Map<String, serde_json::Value>,
    vector: Vec<f32>,
}

fn fail(message: impl std::fmt::Display) -> StoreError {
    StoreError::Migration { from: 1, message: message.to_string() }
}

pub fn migrate(db: &sled::Db) -> Result<(), StoreError> {
    let collections = db.open_tree(COLLECTIONS)?;
    let counters = db.open_tree(COUNTERS)?;
    for entry in collections.iter() {
        let (name_bytes, config_bytes) = entry?;
        let name = String::from_utf8(name_bytes.to_vec()).map_err(fail)?;
        // Already re-encoded by an interrupted earlier run of this step?
        if counters.contains_key(&name_bytes)? {
            continue;
        }
        let config: CollectionConfig = serde_json::from_slice(&config_bytes).map_err(|e| fail(format!("collection {name}: {e}")))?;
        let docs = db.open_tree(docs_tree(&name))?;
        let points = db.open_tree(points_tree(&name))?;
        let mut batch_docs = sled::Batch::default();
        let mut batch_points = sled::Batch::default();
        let mut next: u64 = 0;
        for doc in docs.iter() {
            let (id, json) = doc?;
            let old: V1Document = serde_json::from_slice(&json).map_err(|e| fail(format!("{name}/{}: {e}", String::from_utf8_lossy(&id))))?;
            let record = DocRecord {
                point: next,
                text: old.text,
                metadata: serde_json::Value::Object(old.metadata).to_string(),
                vector: vector_to_bytes(&old.vector),
            };
            batch_docs.insert(id.clone(), encode(&record));
            batch_points.insert(&next.to_be_bytes(), id);
            next += 1;
        }
        docs.apply_batch(batch_docs)?;
        points.apply_batch(batch_points)?;
        collections.insert(&name_bytes, encode(&config))?;
        // Written last: its presence marks this collection as migrated.
        counters.insert(&name_bytes, &next.to_be_bytes())?;
        db.flush()?;
    }
    Ok(())
}
