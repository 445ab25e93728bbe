//! `/v2/queues/{queue}`: a queue's flow control (Tether extension; admins only): its
//! limits, whether it (or one of its types) is paused, and what that holds back now.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tether_producer::{FlowState, LimitsPatch};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::{Authed, json_body};

/// `PATCH /v2/queues/{queue}` body: the limits to change (absent fields stay).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueSettingsBody {
    /// Jobs of the queue running at once, cluster-wide.
    #[serde(default, deserialize_with = "limit")]
    #[schema(value_type = Option<u32>)]
    pub(crate) concurrency: Option<Option<u32>>,
    /// Starts per second (no more than this many in any sliding second).
    #[serde(default, deserialize_with = "limit")]
    #[schema(value_type = Option<u32>)]
    pub(crate) rate: Option<Option<u32>>,
    /// Jobs of one group running at once.
    #[serde(default, deserialize_with = "limit")]
    #[schema(value_type = Option<u32>)]
    pub(crate) group_concurrency: Option<Option<u32>>,
    /// Starts per second of one group.
    #[serde(default, deserialize_with = "limit")]
    #[schema(value_type = Option<u32>)]
    pub(crate) group_rate: Option<Option<u32>>,
}

/// A present field: `null`, `0` or `"none"` clears the limit; 1 to MAX_LIMIT sets it
/// (a whole number, `5` or `5.0`, or as text, `"5"`).
fn limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    let value: Option<Value> = Option::deserialize(d)?;
    let text = match value {
        None | Some(Value::Null) => return Ok(Some(None)),
        Some(Value::String(s)) if tether_model::limits::limit_text_ok(&s) => s,
        Some(Value::Number(n)) => match crate::routes::whole(&n) {
            Some(w) => w.to_string(),
            None => n.to_string(),
        },
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a whole number 0-{}, \"none\" or null, not {other}",
                tether_model::MAX_LIMIT
            )));
        }
    };
    tether_model::parse_limit(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `POST /v2/queues/{queue}/pause` and `/resume` body (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PauseBody {
    /// Pause or resume only this job type of the queue.
    #[serde(rename = "type")]
    pub(crate) job_type: Option<String>,
}

fn admins_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.admin {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "a queue's flow control covers every owner: admins only",
        ))
    }
}

fn valid_queue(queue: &str) -> Result<(), ApiError> {
    tether_model::validate_queue_name(queue).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The answer: the queue's flow control under the names `tether queue` uses.
fn queue_body(queue: &str, state: &FlowState) -> Value {
    let mut body = serde_json::to_value(state).unwrap_or_default();
    body["queue"] = json!(queue);
    body["self"] = json!(format!("/v2/queues/{queue}"));
    body
}

async fn answer(state: &AppState, queue: &str) -> Result<Json<Value>, ApiError> {
    let flow = state.producer.queue_state(queue).await?;
    Ok(Json(queue_body(queue, &flow)))
}

#[utoipa::path(get, path = "/v2/queues/{queue}", tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    responses((status = 200, description = "The queue's flow control: limits, paused, what runs now", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub(crate) async fn show_queue(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(queue): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admins_only(&caller)?;
    valid_queue(&queue)?;
    answer(&state, &queue).await
}

#[utoipa::path(patch, path = "/v2/queues/{queue}", tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    request_body = QueueSettingsBody,
    responses((status = 200, description = "The queue's flow control after the change", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub(crate) async fn patch_queue(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    admins_only(&caller)?;
    valid_queue(&queue)?;
    let body: QueueSettingsBody = json_body(&headers, body)?;
    let patch = LimitsPatch {
        concurrency: body.concurrency,
        rate: body.rate,
        group_concurrency: body.group_concurrency,
        group_rate: body.group_rate,
    };
    if !patch.is_empty() {
        state.producer.set_queue_settings(&queue, &patch).await?;
    }
    answer(&state, &queue).await
}

async fn pause_or_resume(
    state: &AppState,
    caller: &Caller,
    queue: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    pause: bool,
) -> Result<Json<Value>, ApiError> {
    admins_only(caller)?;
    valid_queue(queue)?;
    let empty = matches!(&body, Ok(b) if b.is_empty());
    let body: PauseBody = if empty {
        PauseBody::default()
    } else {
        json_body(headers, body)?
    };
    let producer = &state.producer;
    match (body.job_type.as_deref(), pause) {
        (None, true) => producer.pause(queue).await?,
        (None, false) => producer.resume(queue).await?,
        (Some(t), true) => producer.pause_type(queue, t).await?,
        (Some(t), false) => producer.resume_type(queue, t).await?,
    };
    answer(state, queue).await
}

#[utoipa::path(post, path = "/v2/queues/{queue}/pause", tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = PauseBody, description = "Optional: pause only one job type"),
    responses((status = 200, description = "Paused: nothing new starts; running jobs finish; enqueues are accepted", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub(crate) async fn pause_queue(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    pause_or_resume(&state, &caller, &queue, &headers, body, true).await
}

#[utoipa::path(post, path = "/v2/queues/{queue}/resume", tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = PauseBody, description = "Optional: resume only one job type"),
    responses((status = 200, description = "Resumed", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub(crate) async fn resume_queue(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    pause_or_resume(&state, &caller, &queue, &headers, body, false).await
}
