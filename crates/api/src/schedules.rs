//! `/v2/schedules`: a caller's schedules (Tether extension). A schedule belongs to
//! the caller's owner, like the tasks it fires; names are unique per owner. Admins
//! list every owner's schedules.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tether_producer::{
    CatchUp, JobOptions, JobSpec, Overlap, Producer, Schedule, ScheduleSpec, Trigger,
};

use std::time::Duration;

use tether_model::{limits, schedule};

use crate::AppState;
use crate::error::ApiError;
use crate::routes::{self, Authed, Span, json_body};

/// `POST /v2/schedules` body, and `PATCH /v2/schedules/{name}` (where every field is
/// optional: the ones given replace the schedule's).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleBody {
    /// Unique per owner: 1-64 characters from A-Z a-z 0-9 _ . -, not . or .. (POST only).
    #[serde(default, deserialize_with = "given")]
    pub name: Option<String>,
    /// The task type each firing creates.
    #[serde(rename = "type", default, deserialize_with = "given")]
    pub task_type: Option<String>,
    #[schema(value_type = Object)]
    pub input: Option<Value>,
    pub queue: Option<String>,
    /// Cron pattern: 5 fields, or 6 with seconds first.
    #[serde(default, deserialize_with = "given")]
    pub cron: Option<String>,
    /// IANA time zone of `cron` (default UTC).
    #[serde(default, deserialize_with = "given")]
    pub tz: Option<String>,
    /// Instead of `cron`: an interval, seconds or text like "1m".
    #[serde(default, deserialize_with = "given")]
    pub every: Option<Span>,
    /// `skip` (default), `allow` or `cancel_previous`.
    #[serde(default, deserialize_with = "given")]
    pub overlap: Option<String>,
    /// `last` (default), `none`, or a window (seconds or text like "1h").
    #[serde(default, deserialize_with = "given")]
    pub catch_up: Option<Span>,
    #[serde(default, deserialize_with = "crate::routes::opt_whole")]
    pub max_attempts: Option<u32>,
    /// Seconds, or text like "5m".
    pub timeout: Option<Span>,
}

/// A field that may be left out but, when given, is not `null` (the document does
/// not call these nullable: `{"cron": null, "every": 5}` would name two triggers).
fn given<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A schedule's interval (`every`, a catch-up window): seconds, or one number and a
/// unit ([`limits::interval`]).
fn interval(span: &Span, field: &str) -> Result<Duration, ApiError> {
    // (An interval's floor of 1 s is the trigger's own check; a catch-up window takes
    // any length above 0.)
    let invalid = || {
        ApiError::bad_request(format!(
            "field {field}: use seconds (above 0) or one number and a unit (s, m, h, d, w), \
             at most 366 days"
        ))
    };
    match span {
        // Above zero stays above zero, however small: schedules keep milliseconds.
        Span::Seconds(s) => crate::routes::seconds(*s)
            .filter(|_| *s > 0.0)
            .map(|d| d.max(Duration::from_millis(1)))
            .ok_or_else(invalid),
        Span::Text(t) => limits::interval::parse(t).ok_or_else(invalid),
    }
}

/// The cron pattern, in the grammar the document states ([`limits::cron`]).
fn cron_pattern(cron: String) -> Result<String, ApiError> {
    if limits::cron::accepts(&cron) {
        Ok(cron)
    } else {
        Err(ApiError::bad_request(format!(
            "field cron: {:?} is not 5 or 6 fields of *, */step, values, a-b and a-b/step \
             (names and other forms are not taken here)",
            cron.chars().take(64).collect::<String>()
        )))
    }
}

/// A time zone the document lists (an IANA name).
fn time_zone(tz: String) -> Result<String, ApiError> {
    if schedule::time_zones().any(|z| z == tz) {
        Ok(tz)
    } else {
        Err(ApiError::bad_request(format!(
            "field tz: {:?} is not an IANA time zone name",
            tz.chars().take(64).collect::<String>()
        )))
    }
}

fn schedule_not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("no schedule {name}"),
    )
}

/// A schedule's answer: its spec and firing state, the next five fire times and links.
/// A schedule as `viewer` (the caller's owner) sees it: its `self` link names its owner
/// when that is another (an admin's view of a tenant's schedule).
fn schedule_body(s: &Schedule, viewer: &str) -> Value {
    let mut value = serde_json::to_value(s).unwrap_or_default();
    let mut next = Vec::new();
    let mut t = s.next_fire_time;
    while let Some(at) = t
        && next.len() < 5
    {
        next.push(at);
        t = s.spec.trigger.next_after(at, s.anchor);
    }
    value["next_fire_times"] = json!(next);
    value["self"] = json!(match s.owner.as_deref() {
        Some(owner) if owner != viewer => format!(
            "/v2/schedules/{}?{}",
            s.spec.name,
            form_urlencoded::Serializer::new(String::new())
                .append_pair("owner", owner)
                .finish()
        ),
        _ => format!("/v2/schedules/{}", s.spec.name),
    });
    value
}

/// The schedule, if the tasks it fires are ones the API would create: of a registered
/// type, in an allowed queue, a batch's jobs too (a schedule is a task created later,
/// many times).
fn allowed(state: &AppState, spec: ScheduleSpec) -> Result<ScheduleSpec, ApiError> {
    routes::known_type(state, &spec.job.job_type)?;
    routes::allowed_queue(state, Some(spec.job.queue.clone()))?;
    routes::batch_allowed(state, &spec.job)?;
    Ok(spec)
}

/// Builds the spec from `body` over `base` (the current spec for PATCH).
fn spec_from(body: ScheduleBody, base: Option<ScheduleSpec>) -> Result<ScheduleSpec, ApiError> {
    let name = match (&base, body.name) {
        (Some(b), _) => b.name.clone(),
        (None, Some(n)) => n,
        (None, None) => return Err(ApiError::bad_request("field name: required")),
    };
    let job = match (&base, body.task_type) {
        (Some(b), t) => {
            let mut job = b.job.clone();
            if let Some(t) = t {
                job.job_type = t;
            }
            job
        }
        (None, Some(t)) => JobSpec::new(t),
        (None, None) => return Err(ApiError::bad_request("field type: required")),
    };
    let job = JobOptions {
        input: body.input,
        queue: body.queue,
        max_attempts: body.max_attempts,
        timeout: routes::time_limit(body.timeout.as_ref())?,
        ..JobOptions::default()
    }
    .apply(job);
    let tz = body.tz.map(time_zone).transpose()?;
    let trigger = match (body.cron, body.every) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give either cron or every, not both"));
        }
        (Some(cron), None) => Trigger::cron(cron_pattern(cron)?, tz.unwrap_or_default())?,
        (None, Some(every)) => Trigger::every(interval(&every, "every")?)?,
        (None, None) => match &base {
            Some(b) => match (&b.trigger, tz) {
                (Trigger::Cron { cron, .. }, Some(tz)) => Trigger::cron(cron.clone(), tz)?,
                (trigger, _) => trigger.clone(),
            },
            None => return Err(ApiError::bad_request("give cron or every")),
        },
    };
    let mut spec = ScheduleSpec::new(name, job, trigger);
    if let Some(b) = &base {
        spec.overlap = b.overlap;
        spec.catch_up = b.catch_up;
    }
    if let Some(overlap) = body.overlap {
        spec.overlap = match overlap.as_str() {
            "skip" => Overlap::Skip,
            "allow" => Overlap::Allow,
            "cancel_previous" | "cancel-previous" => Overlap::CancelPrevious,
            other => {
                return Err(ApiError::bad_request(format!(
                    "field overlap: {other:?} is not skip, allow or cancel_previous"
                )));
            }
        };
    }
    if let Some(catch_up) = body.catch_up {
        spec.catch_up = match &catch_up {
            Span::Text(t) if t == "none" => CatchUp::None,
            Span::Text(t) if t == "last" => CatchUp::Last,
            window => CatchUp::Window(interval(window, "catch_up")?),
        };
    }
    spec.validate()?;
    Ok(spec)
}

fn scoped(state: &AppState, caller: &crate::auth::Caller) -> Producer {
    state.producer.for_owner(&caller.owner)
}

/// `?owner=` of the routes of one schedule: whose schedule the name is. Admins only
/// name another owner (as the list's `self` links do); the default is the caller.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct OwnerParam {
    /// Admins only: the owner whose schedule the name is (default: the caller).
    pub owner: Option<String>,
}

/// The producer of the schedule's owner, when the caller may act on it.
fn owner_scoped(
    state: &AppState,
    caller: &crate::auth::Caller,
    param: Result<Query<OwnerParam>, QueryRejection>,
) -> Result<Producer, ApiError> {
    let Query(param) = param.map_err(routes::query_error)?;
    match param.owner {
        None => Ok(scoped(state, caller)),
        Some(owner) if owner == caller.owner => Ok(scoped(state, caller)),
        Some(owner) if caller.admin => {
            // (Bounded as the list's owner filter is; a name no owner has finds nothing.)
            if limits::char_len(&owner) > limits::MAX_OWNER_LEN {
                return Err(ApiError::bad_request(format!(
                    "owner: at most {} characters",
                    limits::MAX_OWNER_LEN
                )));
            }
            Ok(state.producer.for_owner(owner))
        }
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "only admins may name another owner's schedule",
        )),
    }
}

#[utoipa::path(post, path = "/v2/schedules", tag = "schedules", request_body = ScheduleBody,
    responses((status = 201, description = "Created", body = Object), (status = 400, body = ApiError),
        (status = 401, body = ApiError), (status = 403, description = "The queue is not one tasks may be created in", body = ApiError),
        (status = 409, description = "A schedule of that name exists", body = ApiError),
        (status = 415, body = ApiError)))]
pub(crate) async fn create_schedule(
    State(state): State<AppState>,
    Authed(caller): Authed,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: ScheduleBody = json_body(&headers, body)?;
    let spec = allowed(&state, spec_from(body, None)?)?;
    let schedule = scoped(&state, &caller).create_schedule(spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(schedule_body(&schedule, &caller.owner)),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v2/schedules", tag = "schedules",
    responses((status = 200, description = "The caller's schedules (an admin's: every owner's)", body = Object),
        (status = 401, body = ApiError)))]
pub(crate) async fn list_schedules(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Value>, ApiError> {
    let producer = state.producer(&caller);
    let schedules = producer.schedules().await?;
    Ok(Json(
        json!({"schedules": schedules.iter().map(|s| schedule_body(s, &caller.owner)).collect::<Vec<_>>()}),
    ))
}

/// A producer error, with "not found" naming the schedule (not a task).
fn about(name: &str) -> impl FnOnce(tether_producer::Error) -> ApiError + '_ {
    move |e| {
        if e.is_not_found() {
            schedule_not_found(name)
        } else {
            e.into()
        }
    }
}

async fn one(producer: &Producer, name: &str) -> Result<Schedule, ApiError> {
    producer.schedule(name).await.map_err(about(name))
}

#[utoipa::path(get, path = "/v2/schedules/{name}", tag = "schedules", params(("name" = String, Path), OwnerParam),
    responses((status = 200, description = "The schedule, its next five fire times, its last task and that task's status", body = Object),
        (status = 403, description = "Another owner's schedule, named by a caller who is no admin", body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn show_schedule(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
    owner: Result<Query<OwnerParam>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let producer = owner_scoped(&state, &caller, owner)?;
    let schedule = one(&producer, &name).await?;
    let mut body = schedule_body(&schedule, &caller.owner);
    if let Some(id) = schedule.last_job_id {
        let job = producer.get(id).await?;
        body["last_job_status"] = json!(job.map(|j| j.status.as_str()));
    }
    Ok(Json(body))
}

#[utoipa::path(patch, path = "/v2/schedules/{name}", tag = "schedules", params(("name" = String, Path), OwnerParam),
    request_body = ScheduleBody,
    responses((status = 200, description = "Changed", body = Object), (status = 400, body = ApiError),
        (status = 403, description = "The queue is not one tasks may be created in, or another owner's schedule named by a caller who is no admin", body = ApiError),
        (status = 404, body = ApiError), (status = 415, body = ApiError)))]
pub(crate) async fn patch_schedule(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
    owner: Result<Query<OwnerParam>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let producer = owner_scoped(&state, &caller, owner)?;
    let body: ScheduleBody = json_body(&headers, body)?;
    // The name is the path's: a body naming it would be a rename.
    if body.name.is_some() {
        return Err(ApiError::bad_request(
            "field name: a schedule cannot be renamed (its name is in the path)",
        ));
    }
    let current = one(&producer, &name).await?;
    let spec = allowed(&state, spec_from(body, Some(current.spec))?)?;
    let schedule = producer.update_schedule(spec).await?;
    Ok(Json(schedule_body(&schedule, &caller.owner)))
}

#[utoipa::path(delete, path = "/v2/schedules/{name}", tag = "schedules", params(("name" = String, Path), OwnerParam),
    responses((status = 204, description = "Deleted (the tasks it fired stay)"), (status = 403, description = "Another owner's schedule, named by a caller who is no admin", body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn delete_schedule(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
    owner: Result<Query<OwnerParam>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    owner_scoped(&state, &caller, owner)?
        .delete_schedule(&name)
        .await
        .map_err(about(&name))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v2/schedules/{name}/pause", tag = "schedules", params(("name" = String, Path), OwnerParam),
    responses((status = 200, description = "Paused", body = Object), (status = 403, description = "Another owner's schedule, named by a caller who is no admin", body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn pause_schedule(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
    owner: Result<Query<OwnerParam>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let producer = owner_scoped(&state, &caller, owner)?;
    producer.pause_schedule(&name).await.map_err(about(&name))?;
    Ok(Json(schedule_body(
        &one(&producer, &name).await?,
        &caller.owner,
    )))
}

#[utoipa::path(post, path = "/v2/schedules/{name}/resume", tag = "schedules", params(("name" = String, Path), OwnerParam),
    responses((status = 200, description = "Resumed at its next fire time from now", body = Object),
        (status = 403, description = "Another owner's schedule, named by a caller who is no admin", body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn resume_schedule(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
    owner: Result<Query<OwnerParam>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let producer = owner_scoped(&state, &caller, owner)?;
    producer
        .resume_schedule(&name)
        .await
        .map_err(about(&name))?;
    Ok(Json(schedule_body(
        &one(&producer, &name).await?,
        &caller.owner,
    )))
}

#[utoipa::path(post, path = "/v2/schedules/{name}/trigger", tag = "schedules", params(("name" = String, Path), OwnerParam),
    responses((status = 202, description = "Fired now; the body is the task it created", body = Object),
        (status = 403, description = "Another owner's schedule, named by a caller who is no admin", body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn trigger_schedule(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
    owner: Result<Query<OwnerParam>, QueryRejection>,
) -> Result<Response, ApiError> {
    let producer = owner_scoped(&state, &caller, owner)?;
    let id = producer.trigger_now(&name).await.map_err(about(&name))?;
    let job = producer
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(crate::glance::task_body(&job, true)),
    )
        .into_response())
}
