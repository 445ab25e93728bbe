//! The driver's routes of an external task (vSphere `UpdateProgress`,
//! `SetTaskDescription`, `SetTaskState`; `HttpNfcLeaseProgress`, `Complete`, `Abort`).
//! Like every route, each scopes the producer to its caller: a tenant drives only its own
//! tasks (another's are 404), an admin any.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use tether_producer::Drive;

use crate::AppState;
use crate::error::ApiError;
use crate::glance::{glance_time, task_body};
use crate::routes::{Authed, json_body, parse_id};

/// `POST /v2/tasks/{id}/progress` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProgressBody {
    /// Percent done; values outside 0–100 are clamped, never refused.
    pub percent: f64,
    pub message: Option<String>,
}

/// `POST /v2/tasks/{id}/description` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DescriptionBody {
    /// The phase text, shown as `progress_message`.
    pub description: String,
}

/// `POST /v2/tasks/{id}/complete` body (may be empty).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteBody {
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
}

/// `POST /v2/tasks/{id}/abort` body (may be empty).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AbortBody {
    /// The fault: `[A-Za-z0-9_.:-]{1,128}`; `Aborted` when none.
    pub error_code: Option<String>,
    pub message: Option<String>,
}

/// `POST /v2/tasks/{id}/children` body: a child run by workers.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpawnBody {
    /// The child's key among the task's children (1-64 characters): the same key again
    /// spawns nothing and answers the same child.
    pub key: String,
    #[serde(rename = "type")]
    pub task_type: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Value,
    pub queue: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Its weight in the progress of its parent's tree (at least 1; default 1).
    #[serde(default, deserialize_with = "crate::routes::opt_whole")]
    pub weight: Option<u32>,
}

/// The longest child key of the API, in characters (at most 256 bytes).
pub(crate) const MAX_SPAWN_KEY_CHARS: usize = 64;

#[utoipa::path(post, path = "/v2/tasks/{id}/children", tag = "external tasks", params(("id" = String, Path)),
    request_body = SpawnBody,
    responses((status = 201, description = "The child, run by workers (the same one again for a key spawned before)", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, description = "QueueNotAllowed", body = ApiError), (status = 404, body = ApiError),
        (status = 409, description = "InvalidState: the task is final; NotSupported: not an external task (a worker's job spawns its own children)", body = ApiError),
        (status = 429, description = "QuotaExceeded: too many unfinished tasks of this owner", body = ApiError)))]
pub(crate) async fn spawn_child(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let parent = parse_id(&id)?;
    let req: SpawnBody = json_body(&headers, body)?;
    let chars = req.key.chars().count();
    if chars == 0 || chars > MAX_SPAWN_KEY_CHARS {
        return Err(ApiError::bad_request(format!(
            "field key: 1-{MAX_SPAWN_KEY_CHARS} characters"
        )));
    }
    crate::routes::known_type(&state, &req.task_type)?;
    let queue = crate::routes::allowed_queue(&state, req.queue)?;
    let mut spec = tether_producer::JobOptions {
        queue: Some(queue),
        input: Some(req.input),
        name: req.name,
        description: req.description,
        ..tether_producer::JobOptions::default()
    }
    .spec(req.task_type);
    if let Some(weight) = req.weight {
        spec = spec.weight(weight);
    }
    spec.validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    crate::routes::batch_allowed(&state, &spec)?;
    let producer = state.producer(&caller);
    let child = producer
        .spawn_under_external(parent, &req.key, spec)
        .await?;
    let job = producer
        .get(child)
        .await?
        .ok_or_else(|| ApiError::internal(format!("the spawned child {child} is not found")))?;
    Ok((
        axum::http::StatusCode::CREATED,
        [(axum::http::header::LOCATION, format!("/v2/tasks/{child}"))],
        Json(task_body(&job, true)),
    )
        .into_response())
}

/// A driver's body: how it is read and which call it makes.
trait DriverBody: serde::de::DeserializeOwned + Default {
    /// Whether the body may be left out (no bytes at all).
    const OPTIONAL: bool = false;
    fn call(&self) -> Result<Drive<'_>, ApiError>;
}

impl Default for ProgressBody {
    fn default() -> Self {
        ProgressBody {
            percent: 0.0,
            message: None,
        }
    }
}

impl DriverBody for ProgressBody {
    fn call(&self) -> Result<Drive<'_>, ApiError> {
        if !self.percent.is_finite() {
            return Err(ApiError::bad_request("field percent: not a number"));
        }
        // Clamped here as in the store: a percent past i64 is still just "done".
        Ok(Drive::Progress {
            percent: self.percent.clamp(0.0, 100.0) as i64,
            message: self.message.as_deref(),
        })
    }
}

impl DriverBody for DescriptionBody {
    fn call(&self) -> Result<Drive<'_>, ApiError> {
        Ok(Drive::Describe(&self.description))
    }
}

impl DriverBody for CompleteBody {
    const OPTIONAL: bool = true;
    fn call(&self) -> Result<Drive<'_>, ApiError> {
        Ok(Drive::Complete(self.result.as_ref()))
    }
}

impl DriverBody for AbortBody {
    const OPTIONAL: bool = true;
    fn call(&self) -> Result<Drive<'_>, ApiError> {
        Ok(Drive::Abort {
            error_code: self.error_code.as_deref(),
            message: self.message.as_deref(),
        })
    }
}

/// Reads the body, makes the call as the caller, and answers the task after it: its body,
/// with what the call itself answered (whether a cancel was requested, the lease's
/// deadline) on top.
async fn drive<B: DriverBody>(
    (State(state), Authed(caller), Path(id), headers): Driver,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let body: B = match &body {
        Ok(bytes) if B::OPTIONAL && bytes.is_empty() => B::default(),
        _ => json_body(&headers, body)?,
    };
    let producer = state.producer(&caller);
    let driven = producer.drive(id, &body.call()?).await?;
    let mut answer = match producer.get(id).await? {
        Some(job) => task_body(&job, true),
        None => json!({"id": id.to_string(), "self": format!("/v2/tasks/{id}")}),
    };
    answer["status"] = json!(driven.status.as_str());
    answer["progress"] = json!(driven.progress);
    answer["cancel_requested"] = json!(driven.cancel_requested);
    answer["lease_expires_at"] = json!(driven.lease_expires_at.map(glance_time));
    Ok(Json(answer))
}

/// The arguments every driver's route takes.
type Driver = (State<AppState>, Authed, Path<String>, HeaderMap);

#[utoipa::path(post, path = "/v2/tasks/{id}/progress", tag = "external tasks", params(("id" = String, Path)),
    request_body = ProgressBody,
    responses((status = 200, description = "Recorded; the lease is renewed until lease_expires_at. cancel_requested: end the task (abort or complete)", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError),
        (status = 409, description = "InvalidState: the task is final (its lease may have lapsed: Timedout); NotSupported: not an external task", body = ApiError)))]
pub(crate) async fn progress(
    driver: Driver,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    drive::<ProgressBody>(driver, body).await
}

#[utoipa::path(post, path = "/v2/tasks/{id}/description", tag = "external tasks", params(("id" = String, Path)),
    request_body = DescriptionBody,
    responses((status = 200, description = "The phase text is set", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError),
        (status = 409, body = ApiError)))]
pub(crate) async fn describe(
    driver: Driver,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    drive::<DescriptionBody>(driver, body).await
}

#[utoipa::path(post, path = "/v2/tasks/{id}/complete", tag = "external tasks", params(("id" = String, Path)),
    request_body = CompleteBody,
    responses((status = 200, description = "Ended with success", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError),
        (status = 409, body = ApiError), (status = 413, body = ApiError)))]
pub(crate) async fn complete(
    driver: Driver,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    drive::<CompleteBody>(driver, body).await
}

#[utoipa::path(post, path = "/v2/tasks/{id}/abort", tag = "external tasks", params(("id" = String, Path)),
    request_body = AbortBody,
    responses((status = 200, description = "Ended with failure and this fault", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 404, body = ApiError),
        (status = 409, body = ApiError)))]
pub(crate) async fn abort(
    driver: Driver,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    drive::<AbortBody>(driver, body).await
}
