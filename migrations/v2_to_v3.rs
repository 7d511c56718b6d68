//! Schema v2 → v3: every collection gets an immutable id, and its trees and counter move from
//! its name to that id. See migrations/README.md.
//!
//! Crash-safe by steps recorded in the `migration_v3` tree (name → `planned:<id>` | `done:<id>`):
//! 1. an id is chosen and recorded (flushed) before anything is copied, so a re-run copies into
//!    the same trees;
//! 2. `docs/<name>` and `points/<name>` are copied into `c/<id>/docs` and `c/<id>/points`
//!    (idempotent: a re-run overwrites the same keys with the same values);
//! 3. one transaction rewrites the config (v3, with the id), moves the counter from the name to
//!    the id and marks the collection done;
//! 4. the v2 trees are dropped (a re-run of a done collection drops them again).
//!
//! The bookkeeping tree outlives the version bump and is dropped at the next open
//! (`is_leftover_tree`), so that no crash can make a finished collection look unstarted.

use sled::transaction::{ConflictableTransactionError, Transactional};

use super::frozen::{decode, encode, v2, v3};
use crate::store::sled_store::{unwrap_tx, COLLECTIONS, COUNTERS};
use crate::store::StoreError;

pub const PROGRESS_TREE: &str = "migration_v3";

fn fail(message: impl std::fmt::Display) -> StoreError {
    StoreError::Migration { from: 2, message: message.to_string() }
}

fn copy_tree(from: &sled::Tree, to: &sled::Tree) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    let mut pending = 0usize;
    for entry in from.iter() {
        let (key, value) = entry?;
        batch.insert(key, value);
        pending += 1;
        if pending == 10_000 {
            to.apply_batch(std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    to.apply_batch(batch)?;
    Ok(())
}

pub fn migrate(db: &sled::Db) -> Result<(), StoreError> {
    let collections = db.open_tree(COLLECTIONS)?;
    let counters = db.open_tree(COUNTERS)?;
    let progress = db.open_tree(PROGRESS_TREE)?;
    let names: Vec<sled::IVec> = collections.iter().keys().collect::<Result<_, _>>()?;
    for name_bytes in names {
        let name = String::from_utf8(name_bytes.to_vec()).map_err(fail)?;
        let state = progress.get(&name_bytes)?.map(|v| String::from_utf8_lossy(&v).into_owned());
        let id = match state.as_deref().and_then(|s| s.split_once(':')) {
            Some(("done", id)) => {
                db.drop_tree(v2::docs_tree(&name))?;
                db.drop_tree(v2::points_tree(&name))?;
                tracing::debug!(collection = %name, %id, "already migrated to v3");
                continue;
            }
            Some(("planned", id)) => id.to_owned(),
            Some(_) => return Err(fail(format!("collection {name}: unreadable migration state {state:?}"))),
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                progress.insert(&name_bytes, format!("planned:{id}").as_bytes())?;
                db.flush()?;
                id
            }
        };
        let config_bytes = collections.get(&name_bytes)?.ok_or_else(|| fail(format!("collection {name} vanished")))?;
        let old: v2::CollectionConfig = decode(&config_bytes).map_err(|e| fail(format!("collection {name}: {e}")))?;
        let config = v3::CollectionConfig { id: id.clone(), name: old.name, model: old.model, metric: old.metric, hnsw: old.hnsw, created_at_ms: old.created_at_ms };
        copy_tree(&db.open_tree(v2::docs_tree(&name))?, &db.open_tree(v3::docs_tree(&id))?)?;
        db.flush()?;
        fail::fail_point!("migrate.v2_to_v3.half_copied");
        copy_tree(&db.open_tree(v2::points_tree(&name))?, &db.open_tree(v3::points_tree(&id))?)?;
        db.flush()?;
        fail::fail_point!("migrate.v2_to_v3.copied");
        (&collections, &counters, &progress)
            .transaction(|(collections, counters, progress)| {
                let next = counters
                    .get(name.as_bytes())?
                    .ok_or_else(|| ConflictableTransactionError::Abort(fail(format!("collection {name} has no counter"))))?;
                counters.insert(id.as_bytes(), next)?;
                counters.remove(name.as_bytes())?;
                collections.insert(name.as_bytes(), encode(&config))?;
                progress.insert(name.as_bytes(), format!("done:{id}").as_bytes())?;
                Ok(())
            })
            .map_err(unwrap_tx)?;
        db.flush()?;
        fail::fail_point!("migrate.v2_to_v3.committed");
        db.drop_tree(v2::docs_tree(&name))?;
        db.drop_tree(v2::points_tree(&name))?;
    }
    Ok(())
}
