//! Brings an older store up to `SCHEMA_VERSION`, one step at a time. The steps live in the
//! top-level `migrations/` folder.

use std::path::Path;

use super::sled_store::{read_schema_version, write_schema_version};
use super::{StoreError, SCHEMA_VERSION};

#[path = "../../migrations/v1_to_v2.rs"]
mod v1_to_v2;

type Step = fn(&sled::Db) -> Result<(), StoreError>;

/// `STEPS[i]` migrates from version `i + 1` to `i + 2`.
const STEPS: [Step; (SCHEMA_VERSION - 1) as usize] = [v1_to_v2::migrate];

pub(crate) fn bring_up_to_date(db: &sled::Db, path: &Path) -> Result<(), StoreError> {
    let found = match read_schema_version(db)? {
        Some(version) => version,
        None if db.is_empty() && db.tree_names().len() <= 1 => {
            write_schema_version(db, SCHEMA_VERSION)?;
            return Ok(());
        }
        None => return Err(StoreError::Migration { from: 0, message: "the store has data but no schema version".into() }),
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew { path: path.to_owned(), found, supported: SCHEMA_VERSION });
    }
    if found == 0 {
        return Err(StoreError::Migration { from: 0, message: "schema version 0 does not exist".into() });
    }
    for version in found..SCHEMA_VERSION {
        tracing::info!(from = version, to = version + 1, "migrating store");
        STEPS[(version - 1) as usize](db)?;
        write_schema_version(db, version + 1)?;
    }
    Ok(())
}
