//! What the console needs to operate queues, not only to look at them (Tether
//! extensions): one request acting on many tasks (`POST /v2/tasks/bulk`, and a queue's
//! dead tasks at once), a search by id, id prefix or name (`GET /v2/search`), and a
//! queue's throughput over the last hour (`GET /v2/queues/{queue}/throughput`).
//!
//! A request's work is bounded: at most [`MAX_BULK_IDS`] ids, or a walk of at most
//! [`ACT_BUDGET`] tasks ([`COUNT_BUDGET`] for a dry run) of the filter's queues in
//! steps of at most 500 (a few ms of Redis time each); where a walk stopped, the answer's
//! `next` is the `cursor` of the request that goes on. Owners act on their own tasks
//! only; a filter over other owners' tasks is for admins.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tether_model::limits;
use tether_producer::{
    BulkAction, Cursor, ErrorKind, FoundMany, Job, JobId, ListQuery, Producer, Status,
};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::glance::task_body;
use crate::routes::{Authed, check_filter, json_body, query_error, query_whole};

/// Most ids in one bulk request.
pub(crate) const MAX_BULK_IDS: usize = 1000;
/// Most tasks one acting request walks (a dry run: [`COUNT_BUDGET`]).
pub(crate) const ACT_BUDGET: usize = 2000;
/// Most tasks one dry run walks.
pub(crate) const COUNT_BUDGET: usize = 20_000;
/// Most reads (ids × queues) one request by ids may take to find tasks of no named queue.
pub(crate) const MAX_ID_LOOKUPS: usize = 20_000;
/// Longest cursor accepted (a queue name, a time and an id).
pub(crate) const MAX_CURSOR_LEN: usize = 200;
/// Longest search text.
pub(crate) const MAX_SEARCH_LEN: usize = 200;
/// About how many tasks a search looks at, the newest of each queue (the budget
/// shared between the queues, at least 200 each).
pub(crate) const SEARCH_BUDGET: usize = 20_000;
/// Actions in flight at once within one request.
const PARALLEL: usize = 16;

/// `POST /v2/tasks/bulk` body: an action and either explicit ids or a filter.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkBody {
    /// `cancel` (unfinished tasks), `retry` (dead tasks) or `delete` (finished tasks).
    #[schema(value_type = String)]
    pub action: BulkAction,
    /// These tasks (at most 1,000).
    pub ids: Option<Vec<String>>,
    /// With `ids`: the queue that holds them. Without it, ids are looked for in every
    /// queue, which is refused when ids × queues exceeds [`MAX_ID_LOOKUPS`].
    pub queue: Option<String>,
    /// Every task matching this filter.
    pub filter: Option<BulkFilter>,
    /// Count what the action would apply to; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Go on from a previous answer's `next` (with the same filter).
    pub cursor: Option<String>,
}

/// The tasks a filter selects: the list's filters.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkFilter {
    pub queue: Option<String>,
    pub status: Option<String>,
    #[serde(rename = "type")]
    pub task_type: Option<String>,
    /// Admins only (another owner's tasks).
    pub owner: Option<String>,
    pub dead: Option<bool>,
    #[serde(default, deserialize_with = "crate::routes::opt_whole")]
    pub priority: Option<u8>,
    pub group: Option<String>,
}

/// `POST /v2/queues/{queue}/dead/retry` and `/dead/purge` body (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeadBody {
    #[serde(default)]
    pub dry_run: bool,
    pub cursor: Option<String>,
}

/// What a bulk request did.
#[derive(Debug, Default, Serialize)]
pub(crate) struct BulkAnswer {
    action: &'static str,
    dry_run: bool,
    /// Tasks selected that the action applies to (their state when read).
    matched: usize,
    /// Tasks changed.
    acted: usize,
    /// Matched but left as they were: changed meanwhile, or refusing the action (a
    /// cancel of a task created with `cancelable: false`).
    skipped: usize,
    /// Selected, but in a state the action does not apply to.
    ignored: usize,
    /// Ids naming no task the caller sees.
    not_found: usize,
    /// Tasks read.
    examined: usize,
    /// The `cursor` of the request that goes on; `null` when the walk is complete.
    next: Option<String>,
}

fn bounded_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if limits::char_len(value) > max || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "field {field}: at most {max} characters, no control characters"
        )));
    }
    Ok(())
}

/// The filter as a list query, checked as the list's parameters are; another owner's
/// tasks are for admins.
fn filter_query(filter: &BulkFilter, caller: &Caller) -> Result<ListQuery, ApiError> {
    check_filter(
        filter.queue.as_deref(),
        filter.task_type.as_deref(),
        filter.group.as_deref(),
        filter.owner.as_deref(),
        filter.priority,
    )?;
    if filter
        .owner
        .as_ref()
        .is_some_and(|o| !caller.admin && *o != caller.owner)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "only admins may act on other owners' tasks",
        ));
    }
    let status = filter
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("field filter.status: {e}")))?;
    Ok(ListQuery {
        queues: filter.queue.iter().cloned().collect(),
        status,
        job_type: filter.task_type.clone(),
        owner: filter.owner.clone(),
        dead_only: filter.dead.unwrap_or(false),
        priority: filter.priority,
        group: filter.group.clone(),
        ..ListQuery::default()
    })
}

/// A cursor not of the documented form is a 400; one of that form that names no place
/// (a queue name no queue can have, a time past the range) names nothing: 404.
fn parse_cursor(cursor: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    let Some(text) = cursor else { return Ok(None) };
    let mut parts = text.rsplitn(3, '/');
    let shaped = limits::char_len(text) <= MAX_CURSOR_LEN
        && matches!(
            (parts.next(), parts.next(), parts.next()),
            (Some(id), Some(ms), Some(queue))
                if !queue.is_empty() && !queue.contains('/')
                    && !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit())
                    && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        );
    if !shaped {
        return Err(ApiError::bad_request(
            "field cursor: <queue>/<ms>/<id>, as an answer's next gives it",
        ));
    }
    text.parse().map(Some).map_err(|e: String| {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("cursor: {e}"))
    })
}

/// Applies the action to the matched tasks, [`PARALLEL`] at a time, and counts. An
/// unavailable store ends the request (what was done stays done; sending it again goes
/// on, as tasks already acted on are no longer matched or are skipped).
async fn act(
    producer: &Producer,
    action: BulkAction,
    jobs: Vec<Job>,
    answer: &mut BulkAnswer,
) -> Result<(), ApiError> {
    let mut results = futures::stream::iter(jobs)
        .map(|job| async move { producer.apply(action, &job).await })
        .buffer_unordered(PARALLEL);
    while let Some(result) = results.next().await {
        match result {
            Ok(()) => answer.acted += 1,
            Err(e) => match e.kind() {
                ErrorKind::NotFound { .. }
                | ErrorKind::InvalidState { .. }
                | ErrorKind::NotSupported => answer.skipped += 1,
                _ => return Err(e.into()),
            },
        }
    }
    Ok(())
}

async fn bulk(
    state: &AppState,
    caller: &Caller,
    body: BulkBody,
) -> Result<Json<BulkAnswer>, ApiError> {
    let producer = state.producer(caller);
    let action = body.action;
    let mut answer = BulkAnswer {
        action: action.as_str(),
        dry_run: body.dry_run,
        ..BulkAnswer::default()
    };
    let selected = match (body.ids, body.filter) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either ids or a filter, not both",
            ));
        }
        (None, None) => return Err(ApiError::bad_request("give ids or a filter")),
        (Some(ids), None) => {
            if body.cursor.is_some() {
                return Err(ApiError::bad_request("field cursor: only with a filter"));
            }
            if ids.is_empty() || ids.len() > MAX_BULK_IDS {
                return Err(ApiError::bad_request(format!(
                    "field ids: 1 to {MAX_BULK_IDS} task ids"
                )));
            }
            let mut parsed: Vec<JobId> = Vec::with_capacity(ids.len());
            for id in &ids {
                let Ok(id) = id.parse::<JobId>() else {
                    return Err(ApiError::bad_request(format!(
                        "field ids: {:?} is not a task id",
                        id.chars().take(64).collect::<String>()
                    )));
                };
                parsed.push(id);
            }
            parsed.sort();
            parsed.dedup();
            if let Some(queue) = &body.queue {
                tether_model::validate_queue_name(queue)
                    .map_err(|e| ApiError::bad_request(format!("field queue: {e}")))?;
            }
            let jobs = match producer
                .find_many(&parsed, body.queue.as_deref(), MAX_ID_LOOKUPS)
                .await?
            {
                FoundMany::Jobs { jobs, missing } => {
                    answer.not_found = missing;
                    jobs
                }
                FoundMany::TooWide { lookups } => {
                    return Err(ApiError::bad_request(format!(
                        "field queue: finding these ids in every queue takes {lookups} reads, \
                         more than {MAX_ID_LOOKUPS}: name their queue"
                    )));
                }
            };
            answer.examined = jobs.len();
            jobs
        }
        (None, Some(_)) if body.queue.is_some() => {
            return Err(ApiError::bad_request(
                "field queue: only with ids (a filter names its own queue)",
            ));
        }
        (None, Some(filter)) => {
            let query = filter_query(&filter, caller)?;
            let cursor = parse_cursor(body.cursor.as_deref())?;
            let budget = if body.dry_run {
                COUNT_BUDGET
            } else {
                ACT_BUDGET
            };
            let walked = producer.walk(&query, cursor.as_ref(), budget).await?;
            answer.examined = walked.examined;
            answer.next = walked.next.map(|c| c.to_string());
            walked.jobs
        }
    };
    let (applicable, ignored): (Vec<Job>, Vec<Job>) =
        selected.into_iter().partition(|j| action.applies_to(j));
    answer.matched = applicable.len();
    answer.ignored = ignored.len();
    if !body.dry_run {
        act(&producer, action, applicable, &mut answer).await?;
    }
    Ok(Json(answer))
}

#[utoipa::path(post, path = "/v2/tasks/bulk", tag = "tasks", request_body = BulkBody,
    responses((status = 200, description = "What was matched, done, skipped; `next` to go on", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub(crate) async fn bulk_tasks(
    State(state): State<AppState>,
    Authed(caller): Authed,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BulkAnswer>, ApiError> {
    let body: BulkBody = json_body(&headers, body)?;
    bulk(&state, &caller, body).await
}

async fn dead_action(
    state: &AppState,
    caller: &Caller,
    queue: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    action: BulkAction,
) -> Result<Json<BulkAnswer>, ApiError> {
    tether_model::validate_queue_name(queue).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let empty = matches!(&body, Ok(b) if b.is_empty());
    let body: DeadBody = if empty {
        DeadBody::default()
    } else {
        json_body(headers, body)?
    };
    let filter = BulkFilter {
        queue: Some(queue.to_owned()),
        dead: Some(true),
        ..BulkFilter::default()
    };
    let bulk_body = BulkBody {
        action,
        ids: None,
        queue: None,
        filter: Some(filter),
        dry_run: body.dry_run,
        cursor: body.cursor,
    };
    bulk(state, caller, bulk_body).await
}

#[utoipa::path(post, path = "/v2/queues/{queue}/dead/retry", tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = DeadBody, description = "Optional: a dry run, or a cursor to go on"),
    responses((status = 200, description = "The queue's dead tasks (the caller's; every owner's for admins) re-queued", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError)))]
pub(crate) async fn retry_dead(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BulkAnswer>, ApiError> {
    dead_action(&state, &caller, &queue, &headers, body, BulkAction::Retry).await
}

#[utoipa::path(post, path = "/v2/queues/{queue}/dead/purge", tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = DeadBody, description = "Optional: a dry run, or a cursor to go on"),
    responses((status = 200, description = "The queue's dead tasks (the caller's; every owner's for admins) deleted", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError)))]
pub(crate) async fn purge_dead(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BulkAnswer>, ApiError> {
    dead_action(&state, &caller, &queue, &headers, body, BulkAction::Delete).await
}

/// `GET /v2/search` query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParams {
    /// A task id, the start of one, or text in a task's name (case-insensitive).
    pub q: String,
    #[serde(default, deserialize_with = "query_whole")]
    pub limit: Option<usize>,
}

/// Most tasks a search answers (a page's most).
pub(crate) const MAX_SEARCH_RESULTS: usize = crate::routes::MAX_PAGE;

#[utoipa::path(get, path = "/v2/search", tag = "tasks", params(SearchParams),
    responses((status = 200, description = "Tasks found, newest first", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError)))]
pub(crate) async fn search(
    State(state): State<AppState>,
    Authed(caller): Authed,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params.map_err(query_error)?;
    if p.q.is_empty() {
        return Err(ApiError::bad_request(
            "query parameter q: search text required",
        ));
    }
    bounded_text("q", &p.q, MAX_SEARCH_LEN)?;
    let limit = p.limit.unwrap_or(25);
    if !(1..=MAX_SEARCH_RESULTS).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_SEARCH_RESULTS}"
        )));
    }
    let text = p.q.trim();
    if text.is_empty() {
        return Ok(Json(json!({"tasks": [], "complete": true})));
    }
    let found = state
        .producer(&caller)
        .search(text, limit, SEARCH_BUDGET)
        .await?;
    Ok(Json(json!({
        "tasks": found.jobs.iter().map(|j| task_body(j, false)).collect::<Vec<_>>(),
        "complete": found.complete,
    })))
}

/// A throughput chart's intervals: one minute each, the last hour.
const CHART_INTERVAL: Duration = Duration::from_secs(60);
const CHART_INTERVALS: usize = 60;

#[utoipa::path(get, path = "/v2/queues/{queue}/throughput", tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    responses((status = 200, description = "Tasks created and finished per minute over the last hour", body = Object),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub(crate) async fn throughput(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(queue): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !caller.admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "a queue's throughput covers every owner: admins only",
        ));
    }
    tether_model::validate_queue_name(&queue).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let t = state
        .producer
        .throughput(&queue, CHART_INTERVALS, CHART_INTERVAL)
        .await?;
    let start = chrono::DateTime::from_timestamp_millis(t.start_ms).unwrap_or_default();
    Ok(Json(json!({
        "queue": queue,
        "start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "interval_seconds": CHART_INTERVAL.as_secs(),
        "created": t.created,
        "finished": t.finished,
    })))
}
