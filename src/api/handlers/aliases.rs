//! Aliases: another name for a collection, answered by every collection route of both APIs.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use crate::api::middleware::WriteGate;
use crate::api::state::AppState;
use crate::api::types::{AliasDeleted, AliasInfo, AliasList, AliasRequest};
use crate::service::aliases::AliasChange;

#[utoipa::path(get, path = "/aliases", tag = "aliases", summary = "List aliases", responses((status = 200, description = "Every alias with its collection", body = AliasList)))]
pub async fn list_aliases(State(state): State<Arc<AppState>>) -> Result<Json<AliasList>, ApiError> {
    let aliases = state.loaded()?.aliases()?.into_iter().map(|(alias, collection)| AliasInfo { alias, collection }).collect();
    Ok(Json(AliasList { aliases }))
}

#[utoipa::path(put, path = "/aliases/{alias}", tag = "aliases", summary = "Point an alias at a collection (atomically replacing its old target)",
    description = "Searches, reads and writes addressed to the alias reach the collection; moving an alias from one collection to another is atomic, which is how a rebuilt or re-embedded collection replaces the one clients use. Deleting a collection deletes its aliases.",
    params(("alias" = String, Path, description = "Not a collection's name", pattern = "^[A-Za-z0-9_-]{1,64}$")), request_body = AliasRequest,
    responses((status = 200, description = "The alias", body = AliasInfo), (status = 400, description = "An invalid alias name", body = ErrorBody),
              (status = 404, description = "No such collection", body = ErrorBody), (status = 409, description = "The alias is the name of a collection", body = ErrorBody)))]
pub async fn put_alias(
    State(state): State<Arc<AppState>>,
    Extension(gate): Extension<WriteGate>,
    Path(alias): Path<String>,
    ApiJson(request): ApiJson<AliasRequest>,
) -> Result<Json<AliasInfo>, ApiError> {
    let service = state.loaded()?;
    gate.commit()?;
    service.change_aliases(vec![AliasChange::Create { alias: alias.clone(), collection: request.collection.clone() }]).await?;
    Ok(Json(AliasInfo { alias, collection: request.collection }))
}

#[utoipa::path(delete, path = "/aliases/{alias}", tag = "aliases", summary = "Delete an alias (its collection stays)", params(("alias" = String, Path)),
    responses((status = 200, description = "Deleted", body = AliasDeleted), (status = 404, description = "No such alias", body = ErrorBody)))]
pub async fn delete_alias(State(state): State<Arc<AppState>>, Extension(gate): Extension<WriteGate>, Path(alias): Path<String>) -> Result<Json<AliasDeleted>, ApiError> {
    let service = state.loaded()?;
    gate.commit()?;
    service.change_aliases(vec![AliasChange::Delete { alias }]).await?;
    Ok(Json(AliasDeleted { deleted: 1 }))
}
