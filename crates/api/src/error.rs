//! Every error answer is JSON `{"code": ..., "message": ...}` with a stable code.
//!
//! Answers never carry internal detail (Redis replies, script SHAs, addresses):
//! an internal error is a 500 whose body and `X-Request-Id` header name a request
//! id, and the detail goes to the log under that id; 503 means only that the
//! job store cannot be reached (or could not confirm a write) right now.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tether_producer::{Error as ProducerError, ErrorKind};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    /// Stable machine-readable code, e.g. `InvalidState`.
    pub code: String,
    pub message: String,
    /// Set on internal errors: the id under which the detail was logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: status.as_u16(),
            code: code.into(),
            message: message.into(),
            request_id: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", format!("no task {what}"))
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "a valid token is required (Authorization: Bearer … or X-Auth-Token)",
        )
    }
    /// 503: the job store cannot be reached. `detail` goes to the log only.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "job store unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the job store is unavailable; retry later",
        )
    }
    /// 500 with a fresh request id; `detail` is logged under that id and not answered.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        tracing::error!(request_id = %id, error = %detail, "internal error");
        ApiError {
            request_id: Some(id.clone()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("internal error; quote request id {id} to the operator"),
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let unavailable = matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        );
        let request_id = self
            .request_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok());
        let mut response = (status, Json(self)).into_response();
        if let Some(id) = request_id {
            response.headers_mut().insert("x-request-id", id);
        }
        if unavailable {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}

impl From<ProducerError> for ApiError {
    fn from(e: ProducerError) -> Self {
        match e.kind() {
            ErrorKind::Unavailable => ApiError::unavailable(&e),
            ErrorKind::NotFound { what } => ApiError::not_found(what),
            ErrorKind::InvalidState { status } => ApiError::new(
                StatusCode::CONFLICT,
                "InvalidState",
                format!("the task is {status}"),
            ),
            ErrorKind::NotSupported => ApiError::new(
                StatusCode::CONFLICT,
                "NotSupported",
                "the task is not cancelable",
            ),
            ErrorKind::InvalidSpec { message } => ApiError::bad_request(message),
            ErrorKind::QuotaExceeded => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "QuotaExceeded",
                e.to_string(),
            ),
            ErrorKind::TooManySchedules => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManySchedules",
                e.to_string(),
            ),
            ErrorKind::ScheduleExists { name } => ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!("a schedule named {name} exists"),
            ),
            // A well-formed request the server's policy refuses, as QueueNotAllowed.
            ErrorKind::BeyondHorizon => {
                ApiError::new(StatusCode::FORBIDDEN, "BeyondHorizon", e.to_string())
            }
            ErrorKind::PayloadTooLarge { size, limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("input is {size} bytes encoded; the limit is {limit}"),
            ),
            ErrorKind::NotPermitted => {
                ApiError::new(StatusCode::FORBIDDEN, "Forbidden", e.to_string())
            }
            // Redis at maxmemory (noeviction) refuses writes: unavailable, not broken.
            ErrorKind::StoreFull => {
                tracing::warn!(error = %e, "job store full");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the job store is full; retry later",
                )
            }
            ErrorKind::NotReplicated { confirmed, wanted } => {
                tracing::warn!(confirmed, wanted, "enqueue not confirmed by replicas");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "NotReplicated",
                    "written, but not confirmed by enough replicas in time; \
                     resend with the same idempotency key",
                )
            }
            // Script failures, wrong-type keys, undecodable records: our fault or
            // the operator's, never the client's, and nothing a retry would fix.
            _ => ApiError::internal(e),
        }
    }
}

impl From<tether_producer::SpecError> for ApiError {
    fn from(e: tether_producer::SpecError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}
