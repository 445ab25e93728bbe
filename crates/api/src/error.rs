//! Every error answer is JSON `{"code": ..., "message": ...}` with a stable code.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tether_producer::Error as ProducerError;
use tether_store::StoreError;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    /// Stable machine-readable code, e.g. `InvalidState`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: status.as_u16(),
            code: code.into(),
            message: message.into(),
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
    pub fn unavailable(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("the job store is unavailable: {message}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let unavailable = status == StatusCode::SERVICE_UNAVAILABLE;
        let mut response = (status, Json(self)).into_response();
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
        match e {
            ProducerError::Store(store) => store.into(),
            ProducerError::Spec(spec) => ApiError::bad_request(spec.to_string()),
            e @ ProducerError::NotPermitted(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "Forbidden", e.to_string())
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                other.to_string(),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            return ApiError::unavailable(&e);
        }
        match e {
            StoreError::NotFound(id) => ApiError::not_found(id),
            StoreError::InvalidState(status) => ApiError::new(
                StatusCode::CONFLICT,
                "InvalidState",
                format!("the task is {status}"),
            ),
            StoreError::NotSupported => ApiError::new(
                StatusCode::CONFLICT,
                "NotSupported",
                "the task is not cancelable",
            ),
            StoreError::Spec(spec) => ApiError::bad_request(spec.to_string()),
            e @ StoreError::QuotaExceeded { .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "QuotaExceeded",
                e.to_string(),
            ),
            e @ StoreError::BeyondHorizon { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "BeyondHorizon", e.to_string())
            }
            StoreError::PayloadTooLarge { size, limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("input is {size} bytes encoded; the limit is {limit}"),
            ),
            StoreError::Redis(r) if r.is_connection_refusal() || r.is_io_error() => {
                ApiError::unavailable(&r)
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    other.to_string(),
                )
            }
        }
    }
}
