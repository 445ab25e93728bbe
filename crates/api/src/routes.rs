//! The handlers. Each one authenticates, scopes a producer to the caller, and
//! maps storage answers to Glance's status codes.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tether_model::limits;
use tether_producer::{JobId, JobOptions, ListQuery, Producer, SortDir, SortKey, Status};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::glance::{task_body, task_schema, tasks_schema, versions};

/// The authenticated caller; 401 otherwise.
pub(crate) struct Authed(pub Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let token = header("authorization")
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .or_else(|| header("x-auth-token"))
            .map(str::trim);
        state
            .config
            .auth
            .caller(token)
            .map(Authed)
            .ok_or_else(ApiError::unauthorized)
    }
}

impl AppState {
    /// A producer that sees what `caller` may see.
    pub(crate) fn producer(&self, caller: &Caller) -> Producer {
        if caller.admin {
            self.producer.clone()
        } else {
            self.producer.for_owner(&caller.owner)
        }
    }
}

pub(crate) fn parse_id(id: &str) -> Result<JobId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found(id))
}

/// Parses a JSON body, naming the field at fault.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("expected Content-Type: application/json, got {content_type:?}"),
        ));
    }
    let body = body.map_err(|e| {
        if let Some(slow) = crate::server::too_slow(&e) {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeout",
                slow.to_string(),
            )
        } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                "the request body is over the size limit",
            )
        } else {
            ApiError::bad_request(e.body_text())
        }
    })?;
    // Every body is an object; serde would read a struct from an array too.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::bad_request(format!("invalid JSON body: {}", e.inner()))
        } else {
            ApiError::bad_request(format!("field {path}: {}", e.inner()))
        }
    })
}

/// A duration given as seconds (a number below [`limits::MAX_SECONDS`]) or as text
/// like `10s`, `5m`, `1h 30m` ([`limits::span`]).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum Span {
    Seconds(f64),
    Text(String),
}

/// `seconds` as a duration, when it is one the API accepts.
pub(crate) fn seconds(s: f64) -> Option<Duration> {
    (s.is_finite() && (0.0..limits::MAX_SECONDS).contains(&s)).then(|| Duration::from_secs_f64(s))
}

impl Span {
    pub(crate) fn to_duration(&self, field: &str) -> Result<Duration, ApiError> {
        match self {
            Span::Seconds(s) => seconds(*s).ok_or_else(|| {
                ApiError::bad_request(format!("field {field}: {s} is not a duration in seconds"))
            }),
            Span::Text(t) => limits::span::parse(t).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "field {field}: {:?} is not a duration (examples: 30, \"10s\", \"5m\", \"1h 30m\")",
                    t.chars().take(64).collect::<String>()
                ))
            }),
        }
    }
}

/// A task's time limit: under 1 ms (`0`, `"0s"`) means none, as the document says
/// (a limit of nothing would fail every attempt at once).
pub(crate) fn time_limit(span: Option<&Span>) -> Result<Option<Duration>, ApiError> {
    let limit = span.map(|t| t.to_duration("timeout")).transpose()?;
    Ok(limit.filter(|t| t.as_millis() >= 1))
}

/// A JSON number that is a whole number, `3` or `3.0`, as JSON Schema's `integer`
/// counts them.
pub(crate) fn whole(n: &serde_json::Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f))
            .map(|f| f as u64)
    })
}

/// An optional whole-number field of a JSON body (`null` is absent).
pub(crate) fn opt_whole<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => whole(&n)
            .and_then(|w| T::try_from(w).ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("{n} is not a whole number in range"))),
        Some(other) => Err(D::Error::custom(format!(
            "expected a whole number, not {other}"
        ))),
    }
}

/// An optional whole-number query parameter: `3`, or `3.0` as a client that writes
/// every number as a float sends it.
pub(crate) fn query_whole<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let n = text.parse::<u64>().ok().or_else(|| {
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f))
            .map(|f| f as u64)
    });
    n.and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{text:?} is not a whole number in range")))
}

/// `POST /v2/tasks` body: Glance's `type` and `input`, plus Tether's options.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTask {
    #[serde(rename = "type")]
    pub task_type: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Value,
    pub queue: Option<String>,
    /// Seconds, or text like "10s".
    pub delay: Option<Span>,
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, deserialize_with = "opt_whole")]
    pub max_attempts: Option<u32>,
    /// Seconds, or text like "5m".
    pub timeout: Option<Span>,
    pub idempotency_key: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub cancelable: Option<bool>,
    /// 0 (runs first) to 9; default 5.
    #[serde(default, deserialize_with = "opt_whole")]
    pub priority: Option<u8>,
    /// Fairness group (default: the owner): groups of one priority take turns.
    pub group: Option<String>,
    /// Not started by then, the task fails with `Expired`: seconds or text like "30s"
    /// from now, or an RFC 3339 time.
    #[schema(value_type = Option<String>)]
    pub start_by: Option<Value>,
    /// An external task: no worker runs it; its creator drives it through
    /// `/v2/tasks/{id}/progress`, `/description`, `/complete` and `/abort`.
    pub external: Option<bool>,
    /// An external task's lease: seconds or text like "30s" (default 30 s). No progress
    /// report within it, the task fails with `Timedout`.
    pub lease_timeout: Option<Span>,
}

/// An external task's lease when the body names none.
const DEFAULT_EXTERNAL_LEASE: Duration = Duration::from_secs(30);

/// `start_by` as given: seconds (a number), a span ("30s") or an RFC 3339 time.
fn start_by(value: &Value) -> Result<tether_model::StartBy, ApiError> {
    let invalid =
        || ApiError::bad_request("start_by: use seconds, a span like \"30s\" or an RFC 3339 time");
    match value {
        Value::Number(n) => n
            .as_f64()
            .and_then(seconds)
            .map(tether_model::StartBy::Within)
            .ok_or_else(invalid),
        Value::String(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Ok(tether_model::StartBy::At(t.with_timezone(&chrono::Utc))),
            Err(_) => limits::span::parse(s)
                .map(tether_model::StartBy::Within)
                .ok_or_else(invalid),
        },
        _ => Err(invalid()),
    }
}

#[utoipa::path(post, path = "/v2/tasks", tag = "tasks", request_body = CreateTask,
    params(
        ("traceparent" = Option<String>, Header, description = "W3C trace context \
            (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`): the task's spans, and \
            those of the children it spawns, join the caller's trace. An invalid one is \
            ignored, never refused."),
        ("tracestate" = Option<String>, Header, description = "W3C vendor trace state, \
            kept with a valid `traceparent`."),
    ),
    responses((status = 201, description = "Created", body = Object), (status = 400, body = ApiError),
        (status = 401, body = ApiError), (status = 403, description = "QueueNotAllowed", body = ApiError),
        (status = 413, body = ApiError), (status = 415, body = ApiError),
        (status = 429, description = "QuotaExceeded: too many unfinished tasks of this owner", body = ApiError)))]
pub(crate) async fn create_task(
    State(state): State<AppState>,
    Authed(caller): Authed,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CreateTask = json_body(&headers, body)?;
    #[cfg(feature = "otel")]
    let span = crate::trace::create_span(&headers);
    caller_group(req.group.as_deref(), "field group")?;
    let external = req.external.unwrap_or(false);
    if req.lease_timeout.is_some() && !external {
        return Err(ApiError::bad_request(
            "field lease_timeout: only for an external task (\"external\": true)",
        ));
    }
    // An external task's type names what it does; no handler has to know it.
    if !external {
        known_type(&state, &req.task_type)?;
    }
    let queue = allowed_queue(&state, req.queue)?;
    let spec = JobOptions {
        queue: Some(queue),
        input: Some(req.input),
        owner: Some(caller.owner.clone()),
        cancelable: req.cancelable,
        delay: req.delay.map(|d| d.to_duration("delay")).transpose()?,
        run_at: req.run_at,
        max_attempts: req.max_attempts,
        timeout: time_limit(req.timeout.as_ref())?,
        idempotency_key: req.idempotency_key,
        name: req.name,
        description: req.description,
        priority: req.priority,
        group: req.group,
        start_by: req.start_by.as_ref().map(start_by).transpose()?,
        external_lease: match (external, &req.lease_timeout) {
            (false, _) => None,
            (true, None) => Some(DEFAULT_EXTERNAL_LEASE),
            (true, Some(lease)) => Some(lease.to_duration("lease_timeout")?),
        },
        ..JobOptions::default()
    }
    .spec(req.task_type);
    #[cfg(feature = "otel")]
    let spec = tether_model::JobSpec {
        trace: span.as_ref().and_then(crate::trace::job_context),
        ..spec
    };
    spec.validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    batch_allowed(&state, &spec)?;
    let (queue, job_type) = (spec.queue.clone(), spec.job_type.clone());
    let producer = state.producer(&caller);
    let job = producer.enqueue_returning(spec).await;
    #[cfg(feature = "otel")]
    if let Some(span) = &span {
        crate::trace::created(span, &job, |j| j.id.to_string(), &queue, &job_type);
    }
    let job = job?;
    state
        .metrics
        .enqueued
        .with_label_values(&[&queue, &job_type])
        .inc();
    let location = format!("/v2/tasks/{}", job.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(task_body(&job, true)),
    )
        .into_response())
}

/// Refuses a type no worker registered, when the server was told the types.
pub(crate) fn known_type(state: &AppState, task_type: &str) -> Result<(), ApiError> {
    match &state.config.job_types {
        Some(types) if !types.iter().any(|t| t == task_type) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownTaskType",
            format!(
                "unknown task type {task_type:?}; registered types: {}",
                types.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// Checks a group as a caller gives it: the caller's part only (a tenant's owner name
/// goes in front of it later, within the stored group's bound).
fn caller_group(group: Option<&str>, field: &str) -> Result<(), ApiError> {
    match group {
        Some(g) if !limits::caller_group_ok(g) => Err(ApiError::bad_request(format!(
            "{field}: 1-{} characters, no control characters",
            limits::MAX_CALLER_GROUP_LEN
        ))),
        _ => Ok(()),
    }
}

/// Holds a batch's jobs (and `then`, and any batch among them) to what its caller could
/// create itself: a worker enqueues them later, where the API's checks do not reach.
/// (The store counts them all against the owner's quota when the batch is enqueued, and
/// the producer makes them the owner's.)
pub(crate) fn batch_allowed(
    state: &AppState,
    spec: &tether_model::JobSpec,
) -> Result<(), ApiError> {
    tether_model::tree::each_batch_job(spec, &mut |job| {
        job.validate()?;
        caller_group(job.group.as_deref(), "a batch's job: group")?;
        // An external task's type names what it does; no handler has to know it.
        if job.external_lease.is_none() {
            known_type(state, &job.job_type)?;
        }
        allowed_queue(state, Some(job.queue.clone()))?;
        Ok(())
    })
}

/// The queue a body names (else the default one), if tasks may be created in it.
pub(crate) fn allowed_queue(state: &AppState, queue: Option<String>) -> Result<String, ApiError> {
    let queue = queue.unwrap_or_else(|| state.config.default_queue.clone());
    match &state.config.allowed_queues {
        Some(allowed) if !allowed.contains(&queue) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "QueueNotAllowed",
            format!(
                "tasks cannot be created in queue {queue:?}; allowed queues: {}",
                allowed.join(", ")
            ),
        )),
        _ => Ok(queue),
    }
}

/// `GET /v2/tasks` query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    #[serde(default, deserialize_with = "query_whole")]
    pub limit: Option<usize>,
    pub marker: Option<String>,
    pub sort_key: Option<String>,
    pub sort_dir: Option<String>,
    pub status: Option<String>,
    #[serde(rename = "type")]
    pub task_type: Option<String>,
    /// Admins only.
    pub owner: Option<String>,
    /// Tether extension.
    pub queue: Option<String>,
    /// Tether extension: only dead tasks (failed with no attempts left; re-queueable).
    pub dead: Option<bool>,
    /// Tether extension: only tasks of this priority (0-9).
    #[serde(default, deserialize_with = "query_whole")]
    pub priority: Option<u8>,
    /// Tether extension: only tasks of this fairness group.
    pub group: Option<String>,
    /// Tether extension: the children of this task, in spawn order (with `limit` and
    /// `marker` only).
    pub parent: Option<String>,
}

/// Most tasks in one page.
pub(crate) const MAX_PAGE: usize = 1000;

/// A query string that does not deserialize: 400 naming the parameter, without
/// axum's wording.
pub(crate) fn query_error(e: QueryRejection) -> ApiError {
    let text = e.body_text();
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    ApiError::bad_request(format!("query parameter {detail}"))
}

/// The list's filters are bounded as the names they match are.
fn check_filters(p: &ListParams) -> Result<(), ApiError> {
    check_filter(
        p.queue.as_deref(),
        p.task_type.as_deref(),
        p.group.as_deref(),
        p.owner.as_deref(),
        p.priority,
    )
}

/// A filter's queue, type, group, owner and priority, bounded as the names they match are.
pub(crate) fn check_filter(
    queue: Option<&str>,
    task_type: Option<&str>,
    group: Option<&str>,
    owner: Option<&str>,
    priority: Option<u8>,
) -> Result<(), ApiError> {
    let bad = |what: &str, value: &str| {
        Err(ApiError::bad_request(format!(
            "{what} {:?} is not a valid name",
            value.chars().take(64).collect::<String>()
        )))
    };
    if let Some(q) = queue.filter(|q| !limits::QUEUE_NAME.accepts(q)) {
        return bad("queue", q);
    }
    if let Some(t) = task_type.filter(|t| !limits::JOB_TYPE.accepts(t)) {
        return bad("type", t);
    }
    if let Some(g) = group.filter(|g| tether_model::validate_group(g).is_err()) {
        return bad("group", g);
    }
    if let Some(o) = owner.filter(|o| limits::char_len(o) > limits::MAX_OWNER_LEN) {
        return bad("owner", o);
    }
    if priority.is_some_and(|n| n > tether_model::MAX_PRIORITY) {
        return Err(ApiError::bad_request(format!(
            "priority must be 0-{}",
            tether_model::MAX_PRIORITY
        )));
    }
    Ok(())
}

#[utoipa::path(get, path = "/v2/tasks", tag = "tasks", params(ListParams),
    responses((status = 200, description = "A page of task summaries", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub(crate) async fn list_tasks(
    State(state): State<AppState>,
    Authed(caller): Authed,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params.map_err(query_error)?;
    let limit = p.limit.unwrap_or(25);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    check_filters(&p)?;
    let sort_key = match p.sort_key.as_deref().unwrap_or("created_at") {
        "created_at" => SortKey::CreatedAt,
        "updated_at" => SortKey::UpdatedAt,
        "status" => SortKey::Status,
        "type" => SortKey::Type,
        "id" => SortKey::Id,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown sort_key {other:?} (id, type, status, created_at, updated_at)"
            )));
        }
    };
    let sort_dir = match p.sort_dir.as_deref().unwrap_or("desc") {
        "asc" => SortDir::Asc,
        "desc" => SortDir::Desc,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown sort_dir {other:?} (asc, desc)"
            )));
        }
    };
    let status = p
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(ApiError::bad_request)?;
    if p.owner
        .as_ref()
        .is_some_and(|o| !caller.admin && *o != caller.owner)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "only admins may list other owners' tasks",
        ));
    }
    let marker = match &p.marker {
        Some(m) => Some(
            m.parse::<JobId>()
                .map_err(|_| ApiError::bad_request(format!("invalid marker {m:?}")))?,
        ),
        None => None,
    };
    if let Some(parent) = &p.parent {
        return list_children(&state, &caller, parent, marker, limit).await;
    }
    let query = ListQuery {
        queues: p.queue.iter().cloned().collect(),
        status,
        job_type: p.task_type.clone(),
        owner: p.owner.clone(),
        dead_only: p.dead.unwrap_or(false),
        priority: p.priority,
        group: p.group.clone(),
        sort_key,
        sort_dir,
        limit,
        marker,
    };
    let page = match state.producer(&caller).list(query).await {
        // A well-formed marker naming no task the caller sees: not found, as a task
        // id in a path is.
        Err(e) if e.is_not_found() => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!(
                    "marker {} is not a visible task",
                    p.marker.unwrap_or_default()
                ),
            ));
        }
        other => other?,
    };
    let mut answer = json!({
        "tasks": page.jobs.iter().map(|j| task_body(j, false)).collect::<Vec<_>>(),
        "first": "/v2/tasks",
        "schema": "/v2/schemas/tasks",
    });
    if let Some(next) = page.next_marker {
        // Every parameter but the marker, as given, escaped.
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("marker", &next.to_string())
            .append_pair("limit", &limit.to_string());
        let (dead, priority) = (
            p.dead.map(|d| d.to_string()),
            p.priority.map(|n| n.to_string()),
        );
        for (k, v) in [
            ("sort_key", &p.sort_key),
            ("sort_dir", &p.sort_dir),
            ("status", &p.status),
            ("type", &p.task_type),
            ("owner", &p.owner),
            ("queue", &p.queue),
            ("group", &p.group),
            ("priority", &priority),
            ("dead", &dead),
        ] {
            if let Some(v) = v {
                query.append_pair(k, v);
            }
        }
        answer["next"] = json!(format!("/v2/tasks?{}", query.finish()));
    }
    Ok(Json(answer))
}

/// `GET /v2/tasks?parent=ID`: the children of a task the caller can see.
async fn list_children(
    state: &AppState,
    caller: &Caller,
    parent: &str,
    marker: Option<JobId>,
    limit: usize,
) -> Result<Json<Value>, ApiError> {
    let parent_id = parse_id(parent)?;
    let page = match state
        .producer(caller)
        .children(parent_id, marker, limit)
        .await
    {
        // A well-formed marker that is no child of this task names nothing in the list.
        Err(e) if e.is_not_found() && marker.is_some() => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the marker is not a child of this task",
            ));
        }
        other => other?,
    };
    let mut answer = json!({
        "tasks": page.jobs.iter().map(|j| task_body(j, false)).collect::<Vec<_>>(),
        "first": format!("/v2/tasks?parent={parent_id}"),
        "schema": "/v2/schemas/tasks",
    });
    if let Some(next) = page.next_marker {
        answer["next"] = json!(format!(
            "/v2/tasks?parent={parent_id}&marker={next}&limit={limit}"
        ));
    }
    Ok(Json(answer))
}

#[utoipa::path(get, path = "/v2/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, description = "The task", body = Object), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn show_task(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let job = state
        .producer(&caller)
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    Ok(Json(task_body(&job, true)))
}

async fn after_action(producer: &Producer, id: JobId) -> Result<Response, ApiError> {
    let job = producer
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    Ok((StatusCode::ACCEPTED, Json(task_body(&job, true))).into_response())
}

/// `POST /v2/tasks/{id}/cancel` query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelParams {
    /// Admins only: cancel even a task created with `cancelable: false`.
    pub force: Option<bool>,
}

#[utoipa::path(post, path = "/v2/tasks/{id}/cancel", tag = "tasks", params(("id" = String, Path), CancelParams),
    responses((status = 202, description = "Cancelled, or cancel requested from its worker", body = Object),
        (status = 403, description = "force=true by a non-admin", body = ApiError),
        (status = 404, body = ApiError), (status = 409, description = "InvalidState or NotSupported", body = ApiError)))]
pub(crate) async fn cancel_task(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    params: Result<Query<CancelParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(query_error)?;
    let id = parse_id(&id)?;
    let producer = state.producer(&caller);
    if p.force.unwrap_or(false) {
        // `cancelable: false` binds owners, not administrators: they must be able to
        // stop a job that would otherwise hold a worker slot for ever.
        if !caller.admin {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "only admins may force a cancel",
            ));
        }
        producer.force_cancel(id).await?;
    } else {
        producer.cancel(id).await?;
    }
    after_action(&producer, id).await
}

#[utoipa::path(post, path = "/v2/tasks/{id}/retry", tag = "tasks", params(("id" = String, Path)),
    responses((status = 202, description = "Re-queued", body = Object), (status = 404, body = ApiError),
        (status = 409, description = "The task is not dead", body = ApiError)))]
pub(crate) async fn retry_task(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let producer = state.producer(&caller);
    producer.retry(id).await?;
    after_action(&producer, id).await
}

/// `PATCH /v2/tasks/{id}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchTask {
    pub name: Option<String>,
    pub description: Option<String>,
}

#[utoipa::path(patch, path = "/v2/tasks/{id}", tag = "tasks", params(("id" = String, Path)), request_body = PatchTask,
    responses((status = 200, description = "Updated", body = Object), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn patch_task(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let patch: PatchTask = json_body(&headers, body)?;
    let producer = state.producer(&caller);
    for (value, max, field) in [
        (&patch.name, limits::MAX_TASK_NAME_LEN, "name"),
        (
            &patch.description,
            limits::MAX_DESCRIPTION_LEN,
            "description",
        ),
    ] {
        if value.as_ref().is_some_and(|v| limits::char_len(v) > max) {
            return Err(ApiError::bad_request(format!(
                "field {field}: longer than {max} characters"
            )));
        }
    }
    if let Some(name) = &patch.name {
        producer.set_name(id, name).await?;
    }
    if let Some(desc) = &patch.description {
        producer.set_description(id, desc).await?;
    }
    let job = producer
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    Ok(Json(task_body(&job, true)))
}

#[utoipa::path(get, path = "/v2/tasks/{id}/events", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, description = "Server-Sent Events: snapshot, progress, status, finished", content_type = "text/event-stream", body = String),
        (status = 404, body = ApiError), (status = 429, description = "Too many open event streams", body = ApiError)))]
pub(crate) async fn task_events(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let id = parse_id(&id)?;
    // Taken before any Redis work; held by the stream and given back when it is dropped.
    let slot = state.streams.acquire(&caller.owner)?;
    let producer = state.producer(&caller);
    producer
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let events = producer.watch(id).await?;
    let shutdown = state.shutdown.clone();
    let stream = events
        .take_until(async move { shutdown.cancelled_owned().await })
        .map(move |event| {
            let _held = &slot;
            Ok(match event {
                Ok(event) => SseEvent::default()
                    .event(event.name())
                    .data(task_body(event.job(), true).to_string()),
                Err(e) => SseEvent::default()
                    .event("error")
                    .data(json!({"code": "StreamError", "message": e.to_string()}).to_string()),
            })
        });
    // Keep-alives well within the idle timeout, so a quiet stream is not cut off.
    let keep_alive = Duration::from_secs(15).min(state.config.idle_timeout / 3);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(keep_alive)))
}

#[utoipa::path(get, path = "/v2/schemas/task", tag = "schemas", responses((status = 200, body = Object)))]
pub(crate) async fn schema_task(State(state): State<AppState>) -> Json<Value> {
    Json(task_schema(state.config.job_types.as_deref()))
}

#[utoipa::path(get, path = "/v2/schemas/tasks", tag = "schemas", responses((status = 200, body = Object)))]
pub(crate) async fn schema_tasks(State(state): State<AppState>) -> Json<Value> {
    Json(tasks_schema(state.config.job_types.as_deref()))
}

fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    crate::glance::base_url(state.config.public_url.as_deref(), host)
}

#[utoipa::path(get, path = "/versions", tag = "versions", responses((status = 200, body = Object)))]
pub(crate) async fn versions_doc(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    Json(versions(&base_url(&state, &headers)))
}

/// `GET /`: Glance answers 300 Multiple Choices with its version document.
pub(crate) async fn root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if crate::ui::wants_html(&headers) {
        return axum::response::Redirect::to("/ui/").into_response();
    }
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(versions(&base_url(&state, &headers))),
    )
        .into_response()
}

#[utoipa::path(get, path = "/v2/queues", tag = "queues",
    responses((status = 200, description = "Every queue's counts by state (Tether extension; admins only)", body = Object),
        (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub(crate) async fn list_queues(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    if !caller.admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "queue counts cover every owner: admins only",
        ));
    }
    let stats = state.producer.stats(&[]).await?;
    // Each queue's flow control beside its counts (one read per queue, concurrently).
    let settings = futures::future::join_all(
        stats
            .iter()
            .map(|s| state.producer.queue_settings(&s.queue)),
    )
    .await;
    let queues: Vec<Value> = stats
        .iter()
        .zip(settings)
        .map(|(s, settings)| {
            let mut q = serde_json::to_value(s).unwrap_or_default();
            if let Ok(settings) = settings {
                q["paused"] = json!(settings.paused);
                q["paused_types"] = json!(settings.paused_types);
                for (name, value) in settings.limits() {
                    q[name] = json!(value);
                }
            }
            q
        })
        .collect();
    Ok(Json(json!({ "queues": queues })))
}

pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.producer.ping().await.map_err(ApiError::unavailable)?;
    Ok("ready\n")
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    metrics_text(&state.metrics)
}

pub(crate) fn metrics_text(metrics: &crate::ApiMetrics) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such route")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "method not allowed on this route",
    )
}
