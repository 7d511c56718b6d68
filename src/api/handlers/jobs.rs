//! Re-embedding a collection into another model, and the jobs that do it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use crate::api::middleware::WriteGate;
use crate::api::state::AppState;
use crate::api::types::{ChunkingConfig, JobInfo, JobList, JobStateName, ReembedRequest};
use crate::service::reembed::{JobState, JobStatus};

fn job_info(status: JobStatus) -> JobInfo {
    let r = status.record;
    JobInfo {
        id: r.id,
        collection: r.collection,
        model: r.model,
        chunking: r.chunking.map(|c| ChunkingConfig { max_tokens: c.max_tokens, overlap_tokens: c.overlap_tokens }),
        state: match r.state {
            JobState::Running => JobStateName::Running,
            JobState::Done => JobStateName::Done,
            JobState::Failed => JobStateName::Failed,
            JobState::Cancelled => JobStateName::Cancelled,
        },
        documents_done: r.done,
        documents_total: r.total,
        rate_per_second: status.rate,
        eta_seconds: status.eta_seconds,
        kept_as: r.kept_as,
        started_at_ms: r.started_at_ms,
        finished_at_ms: r.finished_at_ms,
        error: r.error,
    }
}

#[utoipa::path(post, path = "/collections/{name}/reembed", tag = "jobs", summary = "Re-embed a collection into another model, then switch atomically",
    description = "Starts a background job that builds a new collection from the stored texts with `model` (and `chunking`), at bulk priority while searches and writes go on, catches up with the writes made meanwhile, and then switches names in one step: the new collection takes this name, the old one is kept under `kept_as` (in the answer) until you delete it. Writes waiting during the switch land in the new collection. Follow it with `GET /jobs/{id}`; `DELETE /jobs/{id}` cancels it. A restart resumes it. Collections of vectors brought by clients cannot be re-embedded (409 `not_reembeddable`).",
    params(("name" = String, Path)), request_body = ReembedRequest,
    responses((status = 202, description = "The job", body = JobInfo), (status = 400, description = "Bad chunking, or a model this server has not loaded (`model_not_found`)", body = ErrorBody),
              (status = 404, description = "No such collection", body = ErrorBody), (status = 409, description = "A re-embed of this collection is running, or its vectors were brought by clients", body = ErrorBody)))]
pub async fn start_reembed(
    State(state): State<Arc<AppState>>,
    Extension(gate): Extension<WriteGate>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<ReembedRequest>,
) -> Result<(StatusCode, Json<JobInfo>), ApiError> {
    let service = state.loaded()?.clone();
    let chunking = super::collections::chunking_choice(request.chunking);
    gate.commit()?;
    let status = tokio::task::spawn_blocking(move || service.start_reembed(&name, &request.model, chunking)).await?.map_err(|err| match err {
        // The collection in the path exists; the model in the body is the request's mistake.
        crate::service::ServiceError::ModelNotFound { .. } => ApiError::new(StatusCode::BAD_REQUEST, "model_not_found", err.to_string()),
        other => ApiError::from(other),
    })?;
    Ok((StatusCode::ACCEPTED, Json(job_info(status))))
}

#[utoipa::path(get, path = "/jobs", tag = "jobs", summary = "Re-embed jobs, running and finished", responses((status = 200, description = "Newest first", body = JobList)))]
pub async fn list_jobs(State(state): State<Arc<AppState>>) -> Result<Json<JobList>, ApiError> {
    Ok(Json(JobList { jobs: state.loaded()?.jobs().into_iter().map(job_info).collect() }))
}

#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", summary = "A job's progress: documents done of total, rate, ETA", params(("id" = String, Path)),
    responses((status = 200, description = "The job", body = JobInfo), (status = 404, description = "No such job", body = ErrorBody)))]
pub async fn get_job(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<JobInfo>, ApiError> {
    Ok(Json(job_info(state.loaded()?.job(&id)?)))
}

#[utoipa::path(delete, path = "/jobs/{id}", tag = "jobs", summary = "Cancel a running job (the collection stays as it was), or forget a finished one", params(("id" = String, Path)),
    responses((status = 200, description = "The job as it was (a cancelled job shows `cancelled` once it stopped)", body = JobInfo), (status = 404, description = "No such job", body = ErrorBody)))]
pub async fn delete_job(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<JobInfo>, ApiError> {
    let service = state.loaded()?.clone();
    let status = tokio::task::spawn_blocking(move || service.cancel_job(&id)).await??;
    Ok(Json(job_info(status)))
}
