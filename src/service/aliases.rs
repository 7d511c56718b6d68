//! Aliases: other names for collections, kept in the store and read by both APIs (a request
//! for an alias reaches its collection). Changes are applied together, in one store batch, so a
//! switch from one collection to another is atomic.

use super::{blocking, Service, ServiceError};
use crate::engine::{validate_collection_name, EngineError};

/// One change of a `change_aliases` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasChange {
    /// Points `alias` at `collection` (replacing what it pointed at).
    Create { alias: String, collection: String },
    Delete { alias: String },
    Rename { from: String, to: String },
}

impl Service {
    /// Every alias with its collection, by alias.
    pub fn aliases(&self) -> Result<Vec<(String, String)>, ServiceError> {
        Ok(self.engine.store().aliases().map_err(EngineError::from)?)
    }

    /// The collection a name names: itself, or the collection of an alias of that name.
    pub(crate) fn resolve_name(&self, name: &str) -> Result<String, ServiceError> {
        if self.engine.collection(name).is_ok() {
            return Ok(name.to_owned());
        }
        Ok(self.aliases()?.into_iter().find(|(alias, _)| alias == name).map_or_else(|| name.to_owned(), |(_, target)| target))
    }

    /// Applies the changes in order, all or none: an alias must be a valid name that is not a
    /// collection's, and must point at an existing collection; deleting or renaming a missing
    /// alias is refused.
    pub async fn change_aliases(&self, changes: Vec<AliasChange>) -> Result<(), ServiceError> {
        let engine = self.engine.clone();
        let lock = self.aliases_lock.clone();
        blocking(move || {
            // One change at a time: each reads the table, then writes it back.
            let _held = lock.lock();
            let before: std::collections::BTreeMap<String, String> = engine.store().aliases().map_err(EngineError::from)?.into_iter().collect();
            let mut table = before.clone();
            let invalid = |code: &'static str, message: String| ServiceError::Invalid { code, message };
            for change in changes {
                match change {
                    AliasChange::Create { alias, collection } => {
                        validate_collection_name(&alias).map_err(|e| invalid("invalid_alias", format!("alias: {e}")))?;
                        if crate::engine::is_internal(&collection) {
                            return Err(EngineError::CollectionNotFound(collection).into());
                        }
                        engine.collection(&collection)?;
                        if engine.collection(&alias).is_ok() {
                            return Err(ServiceError::AliasIsCollection(alias));
                        }
                        table.insert(alias, collection);
                    }
                    AliasChange::Delete { alias } => {
                        table.remove(&alias).ok_or(ServiceError::AliasNotFound(alias))?;
                    }
                    AliasChange::Rename { from, to } => {
                        validate_collection_name(&to).map_err(|e| invalid("invalid_alias", format!("alias: {e}")))?;
                        if engine.collection(&to).is_ok() {
                            return Err(ServiceError::AliasIsCollection(to));
                        }
                        let target = table.remove(&from).ok_or(ServiceError::AliasNotFound(from))?;
                        table.insert(to, target);
                    }
                }
            }
            let mut changes: Vec<(String, Option<String>)> = before.keys().filter(|a| !table.contains_key(*a)).map(|a| (a.clone(), None)).collect();
            changes.extend(table.into_iter().filter(|(a, t)| before.get(a) != Some(t)).map(|(a, t)| (a, Some(t))));
            engine.store().change_aliases(&changes).map_err(EngineError::from)?;
            Ok(())
        })
        .await
    }
}
