//! The OpenAPI document: what the handlers' annotations generate, completed here
//! with what a generated client or a fuzzer needs and annotations cannot say.
//!
//! * Request constraints (lengths, name patterns, ranges, the duration syntax) come
//!   from [`tether_model::limits`], which the validation reads too, so the document
//!   and the handlers cannot disagree; the registered task types and the allowed
//!   queues, when configured, become enums.
//! * Every operation's answers: the success body's schema and every error status it
//!   can return, each `{code, message}` or (for OpenStack clients) OpenStack's
//!   envelope, from [`OPERATIONS`].
//! * Links from the calls that return a task, a queue or a schedule to every
//!   operation taking its id or name, so clients and stateful testing can chain them.
//! * The event stream's events, each a JSON task (or an `error` event).

use serde_json::{Map, Value, json};
use tether_model::limits::{self, span};
use tether_model::schedule;

use crate::ApiConfig;
use crate::glance::task_schema;

/// Each operation's success status, its body schema and its error statuses.
struct Operation {
    id: &'static str,
    ok: u16,
    /// A component schema name, or `None` for no body.
    body: Option<&'static str>,
    errors: &'static [u16],
    /// Needs a token (every operation but the schemas and the version document).
    authed: bool,
}

const fn op(
    id: &'static str,
    ok: u16,
    body: Option<&'static str>,
    errors: &'static [u16],
) -> Operation {
    Operation {
        id,
        ok,
        body,
        errors,
        authed: true,
    }
}

const fn public(id: &'static str) -> Operation {
    Operation {
        id,
        ok: 200,
        body: None,
        errors: &[],
        authed: false,
    }
}

/// Every operation of the document. A body-taking operation can answer 413 and
/// 415; every authenticated one 401 and 503 (the job store unreachable).
const OPERATIONS: &[Operation] = &[
    op("create_task", 201, Some("Task"), &[400, 403, 413, 415, 429]),
    op("list_tasks", 200, Some("TaskList"), &[400, 403, 404]),
    op("show_task", 200, Some("Task"), &[404]),
    op("patch_task", 200, Some("Task"), &[400, 404, 409, 413, 415]),
    op("cancel_task", 202, Some("Task"), &[400, 403, 404, 409]),
    op("retry_task", 202, Some("Task"), &[404, 409, 429]),
    op("task_events", 200, None, &[404, 429]),
    op(
        "bulk_tasks",
        200,
        Some("BulkResult"),
        &[400, 403, 404, 413, 415],
    ),
    op("search", 200, Some("SearchResult"), &[400]),
    // An external task's driver: a final task is 409 InvalidState, a task a worker runs
    // 409 NotSupported.
    op("progress", 200, Some("Task"), &[400, 404, 409, 413, 415]),
    op("describe", 200, Some("Task"), &[400, 404, 409, 413, 415]),
    op("complete", 200, Some("Task"), &[400, 404, 409, 413, 415]),
    op("abort", 200, Some("Task"), &[400, 404, 409, 413, 415]),
    op(
        "spawn_child",
        201,
        Some("Task"),
        &[400, 403, 404, 409, 413, 415, 429],
    ),
    public("schema_task"),
    public("schema_tasks"),
    public("versions_doc"),
    op("list_queues", 200, Some("QueueList"), &[403]),
    op("show_queue", 200, Some("Queue"), &[400, 403]),
    op("patch_queue", 200, Some("Queue"), &[400, 403, 413, 415]),
    op("pause_queue", 200, Some("Queue"), &[400, 403, 413, 415]),
    op("resume_queue", 200, Some("Queue"), &[400, 403, 413, 415]),
    op("retry_dead", 200, Some("BulkResult"), &[400, 404, 413, 415]),
    op("purge_dead", 200, Some("BulkResult"), &[400, 404, 413, 415]),
    op("throughput", 200, Some("Throughput"), &[400, 403]),
    op(
        "create_schedule",
        201,
        Some("Schedule"),
        &[400, 403, 409, 413, 415, 429],
    ),
    op("list_schedules", 200, Some("ScheduleList"), &[]),
    op("show_schedule", 200, Some("Schedule"), &[400, 404]),
    op(
        "patch_schedule",
        200,
        Some("Schedule"),
        &[400, 403, 404, 413, 415],
    ),
    op("delete_schedule", 204, None, &[400, 404]),
    op("pause_schedule", 200, Some("Schedule"), &[400, 404]),
    op("resume_schedule", 200, Some("Schedule"), &[400, 404]),
    op("trigger_schedule", 202, Some("Task"), &[400, 403, 404, 429]),
];

/// The operations taking a task id, a queue name or a schedule name, by the
/// parameter they take.
const TASK_OPS: [&str; 10] = [
    "show_task",
    "patch_task",
    "cancel_task",
    "retry_task",
    "task_events",
    "progress",
    "describe",
    "complete",
    "abort",
    "spawn_child",
];
const QUEUE_OPS: [&str; 7] = [
    "show_queue",
    "patch_queue",
    "pause_queue",
    "resume_queue",
    "retry_dead",
    "purge_dead",
    "throughput",
];
const SCHEDULE_OPS: [&str; 6] = [
    "show_schedule",
    "patch_schedule",
    "delete_schedule",
    "pause_schedule",
    "resume_schedule",
    "trigger_schedule",
];

/// The complete document for a server configured as `config`.
pub(crate) fn document(generated: &utoipa::openapi::OpenApi, config: &ApiConfig) -> Value {
    let mut doc = serde_json::to_value(generated).expect("the document serialises");
    let schemas = components(config);
    doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has component schemas")
        .extend(schemas);
    // `--insecure-no-auth`: no token is asked for, so the document asks for none.
    let tokens = !matches!(config.auth, crate::Auth::Disabled);
    if tokens {
        doc["components"]["securitySchemes"] = json!({
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "A token of the API's tokens file"},
        "x_auth_token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                         "description": "The same token, as OpenStack clients send it"}
        });
    }
    let paths = doc["paths"].as_object_mut().expect("paths");
    let mut seen = Vec::new();
    for (path, item) in paths.iter_mut() {
        for (_, operation) in item.as_object_mut().expect("path item").iter_mut() {
            let id = operation["operationId"]
                .as_str()
                .expect("operation id")
                .to_owned();
            let spec = OPERATIONS
                .iter()
                .find(|o| o.id == id)
                .unwrap_or_else(|| panic!("{id} is not in OPERATIONS"));
            complete(operation, spec, tokens);
            match id.as_str() {
                "patch_schedule" => {
                    operation["requestBody"]["content"]["application/json"]["schema"] =
                        json!({"$ref": "#/components/schemas/PatchScheduleBody"});
                }
                // Their body is optional: without one the whole queue pauses or resumes,
                // the task completes without a result or aborts with the default fault.
                "bulk_tasks" => {
                    operation["requestBody"]["content"]["application/json"]["schema"] =
                        json!({"$ref": "#/components/schemas/BulkBody"});
                }
                "retry_dead" | "purge_dead" => {
                    operation["requestBody"]["content"]["application/json"]["schema"] =
                        json!({"$ref": "#/components/schemas/DeadBody"});
                    operation["requestBody"]["required"] = json!(false)
                }
                "pause_queue" | "resume_queue" | "complete" | "abort" => {
                    operation["requestBody"]["required"] = json!(false)
                }
                _ => {}
            }
            constrain_parameters(operation, path);
            seen.push(id);
        }
    }
    for o in OPERATIONS {
        assert!(seen.iter().any(|s| s == o.id), "{} is not routed", o.id);
    }
    link(&mut doc);
    doc
}

/// Sets an operation's answers and security (`tokens`: the server asks for them).
fn complete(operation: &mut Value, spec: &Operation, tokens: bool) {
    let mut responses = Map::new();
    let ok = match (spec.id, spec.body) {
        ("task_events", _) => json!({
            "description": "Server-Sent Events until the task is final: `snapshot` first, then \
                            `progress` and `status` as they happen, `finished` last; each event's \
                            data is the task. A quiet stream carries keep-alive comments.",
            "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/TaskEvent"}}}
        }),
        (_, Some(body)) => json!({
            "description": ok_description(spec.id),
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}
        }),
        (_, None) if spec.ok == 204 => json!({"description": "Done; no body"}),
        (_, None) => json!({
            "description": "The document",
            "content": {"application/json": {"schema": {"type": "object"}}}
        }),
    };
    responses.insert(spec.ok.to_string(), ok);
    if spec.id == "create_task" || spec.id == "spawn_child" {
        responses["201"]["headers"] = json!({"Location": {
            "description": "The task's path", "schema": {"type": "string"}}});
    }
    let mut errors: Vec<u16> = spec.errors.to_vec();
    if spec.authed {
        errors.push(503);
        if tokens {
            errors.push(401);
        }
    }
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        responses.insert(status.to_string(), error_response(status));
    }
    operation["responses"] = Value::Object(responses);
    operation["security"] = if spec.authed && tokens {
        json!([{"bearer": []}, {"x_auth_token": []}])
    } else {
        json!([])
    };
}

fn ok_description(id: &str) -> &'static str {
    match id {
        "create_task" | "create_schedule" | "spawn_child" => "Created",
        "cancel_task" => "Cancelled, or cancel requested from its worker",
        "retry_task" => "Re-queued",
        "trigger_schedule" => "Fired now; the body is the task it created",
        "list_tasks" => "A page of task summaries",
        _ => "OK",
    }
}

fn error_response(status: u16) -> Value {
    let description = match status {
        400 => "BadRequest, UnknownTaskType: the request breaks a rule of this document",
        401 => "Unauthorized: no valid token",
        403 => {
            "Forbidden (admins only), QueueNotAllowed, BeyondHorizon (a start later than \
             the server's horizon)"
        }
        404 => "NotFound",
        409 => "InvalidState, NotSupported (not cancelable), Conflict (the name exists)",
        413 => "PayloadTooLarge: the body or the task's input is over the limit",
        415 => "UnsupportedMediaType: the body is not application/json",
        429 => {
            "QuotaExceeded, TooManySchedules, or too many open event streams; retry after \
             Retry-After"
        }
        503 => "ServiceUnavailable, NotReplicated: the job store is unreachable or full",
        _ => "Error",
    };
    let mut response = json!({
        "description": description,
        "content": {"application/json": {"schema": {"anyOf": [
            {"$ref": "#/components/schemas/ApiError"},
            {"$ref": "#/components/schemas/OpenStackError"}
        ]}}}
    });
    if matches!(status, 429 | 503) {
        response["headers"] = json!({"Retry-After": {
            "description": "Seconds to wait", "schema": {"type": "string"}}});
    }
    response
}

fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

fn name_schema(rule: limits::NameRule) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": rule.max_len, "pattern": rule.pattern()})
}

fn queue_schema(config: &ApiConfig) -> Value {
    match &config.allowed_queues {
        Some(allowed) => json!({"type": "string", "enum": allowed}),
        None => name_schema(limits::QUEUE_NAME),
    }
}

fn type_schema(config: &ApiConfig) -> Value {
    match &config.job_types {
        Some(types) => json!({"type": "string", "enum": types}),
        None => name_schema(limits::JOB_TYPE),
    }
}

fn text(max: usize) -> Value {
    json!({"type": "string", "maxLength": max})
}

fn group_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": limits::MAX_CALLER_GROUP_LEN,
           "pattern": limits::GROUP_PATTERN})
}

fn seconds_schema() -> Value {
    json!({"type": "number", "minimum": 0, "exclusiveMaximum": limits::MAX_SECONDS,
           "description": "Seconds"})
}

fn span_text_schema() -> Value {
    json!({"type": "string", "maxLength": span::MAX_LEN, "pattern": span::pattern(),
           "description": "Parts of a number and a unit: 10s, 5m, 1h 30m, 2 days"})
}

/// A duration: seconds, or text (longer than the largest number counts as that).
fn span_schema() -> Value {
    json!({"oneOf": [seconds_schema(), span_text_schema()],
           "description": "A duration: seconds (a number) or text like \"10s\", \"5m\", \"1h 30m\""})
}

/// `schema` with its description replaced.
fn with_description(mut schema: Value, description: &str) -> Value {
    schema["description"] = json!(description);
    schema
}

/// A task's time limit: a duration, under 1 ms (0) meaning none.
fn time_limit_schema() -> Value {
    json!({"oneOf": [seconds_schema(), span_text_schema()],
           "description": "The time limit of one attempt: seconds (a number) or text like \"10s\", \"5m\"; under 1 ms (0) is no limit"})
}

fn count(min: u64, max: u64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

/// `POST /v2/tasks`: a task workers run, or (`"external": true`) one its creator drives
/// under a lease: any type name, no delay, run_at, start_by or timeout.
fn create_task_schema(config: &ApiConfig) -> Value {
    let common = json!({
        "input": {"description": "The task's input: any JSON value"},
        "queue": nullable(queue_schema(config)),
        "max_attempts": nullable(count(limits::MIN_MAX_ATTEMPTS.into(), u32::MAX.into())),
        "idempotency_key": nullable(json!({"type": "string", "minLength": 1,
            "maxLength": limits::MAX_IDEMPOTENCY_KEY_LEN})),
        "name": nullable(text(limits::MAX_TASK_NAME_LEN)),
        "description": nullable(text(limits::MAX_DESCRIPTION_LEN)),
        "cancelable": nullable(json!({"type": "boolean"})),
        "priority": nullable(count(0, tether_model::MAX_PRIORITY.into())),
        "group": nullable(group_schema()),
    });
    let with = |extra: Value| {
        let mut properties = common.clone();
        if let (Some(all), Value::Object(extra)) = (properties.as_object_mut(), extra) {
            all.extend(extra);
        }
        properties
    };
    let run_by_workers = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["type"],
        "title": "A task workers run",
        "properties": with(json!({
            "type": type_schema(config),
            "external": {"enum": [false, null]},
            "delay": nullable(with_description(span_schema(),
                "Run no sooner than this long from now; with run_at, the later of the two")),
            "run_at": nullable(json!({"type": "string", "format": "date-time",
                "description": "Run no sooner than this time; with delay, the later of the two"})),
            "timeout": nullable(time_limit_schema()),
            "start_by": nullable(json!({"oneOf": [
                seconds_schema(), span_text_schema(),
                {"type": "string", "format": "date-time"}
            ], "description": "Not started by then, the task fails with Expired"})),
        })),
    });
    let lease = json!({"type": "number",
        "minimum": tether_model::MIN_EXTERNAL_LEASE.as_secs(),
        "maximum": tether_model::MAX_EXTERNAL_LEASE.as_secs(),
        "description": "Seconds (text like \"30s\" is accepted too): no progress report \
                        within it, the task fails with Timedout (default 30)"});
    let external = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["type", "external"],
        "title": "A task its creator drives (POST /v2/tasks/{id}/progress, complete, abort)",
        "properties": with(json!({
            "type": name_schema(limits::JOB_TYPE),
            "external": {"const": true},
            "lease_timeout": nullable(lease),
        })),
    });
    json!({"oneOf": [run_by_workers, external]})
}

/// The component schemas this module owns: bodies, answers, errors.
fn components(config: &ApiConfig) -> Map<String, Value> {
    let max_attempts = count(limits::MIN_MAX_ATTEMPTS.into(), u32::MAX.into());
    let limit = json!({"anyOf": [
        count(0, tether_model::MAX_LIMIT.into()),
        {"type": "string", "pattern": limits::limit_text_pattern()},
        {"type": "null"}
    ], "description": "null, 0 or \"none\" clears the limit; text like \"20\" is a number"});
    let mut task = task_schema(None);
    let mut properties = task["properties"].take();
    properties["type"] = name_schema(limits::JOB_TYPE);
    let required: Vec<&str> = properties
        .as_object()
        .expect("task properties")
        .keys()
        .map(String::as_str)
        .filter(|k| !["expires_at", "input", "result"].contains(k))
        .collect();
    let task = json!({"type": "object", "properties": properties, "required": required,
                      "description": "A task as Glance shows it, with Tether's extensions"});
    let schemas = json!({
        "CreateTask": create_task_schema(config),
        "PatchTask": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "name": nullable(text(limits::MAX_TASK_NAME_LEN)),
                "description": nullable(text(limits::MAX_DESCRIPTION_LEN)),
            }
        },
        "QueueSettingsBody": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "concurrency": limit, "rate": limit,
                "group_concurrency": limit, "group_rate": limit
            }
        },
        "ProgressBody": {
            "type": "object",
            "additionalProperties": false,
            "required": ["percent"],
            "properties": {
                "percent": {"type": "number", "description": "Clamped to 0-100"},
                "message": nullable(text(limits::MAX_PROGRESS_MESSAGE_LEN)),
            }
        },
        "CompleteBody": {
            "type": "object",
            "additionalProperties": false,
            "properties": {"result": {"description": "The task's result: any JSON value"}}
        },
        "DescriptionBody": {
            "type": "object",
            "additionalProperties": false,
            "required": ["description"],
            "properties": {"description": text(limits::MAX_PROGRESS_MESSAGE_LEN)}
        },
        "SpawnBody": {
            "type": "object",
            "additionalProperties": false,
            "required": ["key", "type"],
            "properties": {
                "key": {"type": "string", "minLength": 1,
                    "maxLength": crate::external::MAX_SPAWN_KEY_CHARS,
                    "description": "The child's key: the same key again answers the same child"},
                "type": type_schema(config),
                "input": {"description": "The child's input: any JSON value"},
                "queue": nullable(queue_schema(config)),
                "name": nullable(text(limits::MAX_TASK_NAME_LEN)),
                "description": nullable(text(limits::MAX_DESCRIPTION_LEN)),
                "weight": nullable(json!({"type": "integer", "minimum": 0, "maximum": u32::MAX,
                    "description": "Its weight in its parent's progress (0 counts as 1)"})),
            }
        },
        "AbortBody": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "error_code": nullable(name_schema(limits::JOB_TYPE)),
                "message": nullable(text(limits::MAX_ABORT_MESSAGE_LEN)),
            }
        },
        "PauseBody": {
            "type": "object",
            "additionalProperties": false,
            "properties": {"type": nullable(name_schema(limits::JOB_TYPE))}
        },
        "Task": task,
        "TaskSummary": {"allOf": [{"$ref": "#/components/schemas/Task"}],
                        "description": "A task without input and result"},
        "TaskList": {
            "type": "object",
            "required": ["tasks", "first", "schema"],
            "properties": {
                "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
                "first": {"type": "string"},
                "next": {"type": "string", "description": "The next page, when there is one"},
                "schema": {"type": "string"}
            }
        },
        "TaskEvent": {
            "description": "One event of a task's stream",
            "oneOf": [
                {"type": "object", "required": ["event", "data"], "properties": {
                    "event": {"enum": ["snapshot", "progress", "status", "finished"]},
                    "data": {"type": "string", "contentMediaType": "application/json",
                             "contentSchema": {"$ref": "#/components/schemas/Task"}}}},
                {"type": "object", "required": ["event", "data"], "properties": {
                    "event": {"const": "error"},
                    "data": {"type": "string", "contentMediaType": "application/json",
                             "contentSchema": {"$ref": "#/components/schemas/ApiError"}}}}
            ]
        },
        "Queue": {
            "type": "object",
            "required": ["queue", "self", "paused", "paused_types", "running"],
            "properties": {
                "queue": {"type": "string"},
                "self": {"type": "string"},
                "paused": {"type": "boolean"},
                "paused_types": {"type": "array", "items": {"type": "string"}},
                "concurrency": {"type": ["integer", "null"]},
                "rate": {"type": ["integer", "null"]},
                "group_concurrency": {"type": ["integer", "null"]},
                "group_rate": {"type": ["integer", "null"]},
                "running": {"type": "integer"},
                "starts_last_second": {"type": "integer"},
                "queued_in_lists": {"type": "integer"},
                "priorities": {"type": "array", "items": {"type": "integer"}}
            }
        },
        "QueueList": {
            "type": "object",
            "required": ["queues"],
            "properties": {"queues": {"type": "array", "items": {
                "type": "object",
                "required": ["queue", "pending", "scheduled", "processing", "dead"],
                "properties": {
                    "queue": {"type": "string"},
                    "pending": {"type": "integer"}, "scheduled": {"type": "integer"},
                    "processing": {"type": "integer"}, "dead": {"type": "integer"},
                    "success": {"type": "integer"}, "failure": {"type": "integer"},
                    "cancelled": {"type": "integer"}
                }
            }}}
        },
        "Schedule": {
            "type": "object",
            "required": ["name", "owner", "paused", "self", "next_fire_times", "trigger", "job"],
            "properties": {
                "name": {"type": "string"},
                "owner": {"type": ["string", "null"]},
                "paused": {"type": "boolean"},
                "self": {"type": "string"},
                "next_fire_time": {"type": ["string", "null"]},
                "next_fire_times": {"type": "array", "items": {"type": "string"}},
                "last_fire_time": {"type": ["string", "null"]},
                "last_job_id": {"type": ["string", "null"]},
                "last_job_status": {"type": ["string", "null"]},
                "trigger": {"type": "object"},
                "job": {"type": "object"},
                "overlap": {"enum": ["skip", "allow", "cancel_previous"]}
            }
        },
        "ScheduleList": {
            "type": "object",
            "required": ["schedules"],
            "properties": {"schedules": {"type": "array",
                                         "items": {"$ref": "#/components/schemas/Schedule"}}}
        },
        "ApiError": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code, e.g. InvalidState"},
                "message": {"type": "string"},
                "request_id": {"type": "string", "description": "Set on internal errors"}
            }
        },
        "OpenStackError": {
            "type": "object",
            "description": "The error as OpenStack clients (python-glanceclient, openstacksdk, \
                            keystoneauth1, by User-Agent) receive it",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "title", "message"],
                "properties": {
                    "code": {"type": "integer", "description": "The HTTP status"},
                    "title": {"type": "string", "description": "The stable code"},
                    "message": {"type": "string"}
                }
            }}
        }
    });
    let mut schemas = match schemas {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let mut schedule = schedule_body(config, max_attempts);
    schedules_bodies(&mut schedule, &mut schemas);
    console_schemas(config, &mut schemas);
    schemas
}

/// The bulk request and its answer, the search's and the throughput's answers.
fn console_schemas(config: &ApiConfig, schemas: &mut Map<String, Value>) {
    use crate::console::{MAX_BULK_IDS, MAX_CURSOR_LEN, MAX_ID_LOOKUPS};
    let cursor = json!({"type": ["string", "null"], "maxLength": MAX_CURSOR_LEN,
        "pattern": "^[^/]+/[0-9]+/[0-9a-fA-F-]*$",
        "description": "A previous answer's next, to go on with the same request"});
    let bulk = json!({
        "BulkBody": {
            "type": "object",
            "additionalProperties": false,
            "required": ["action"],
            "description": "One action on many tasks: explicit ids, or every task a filter \
                            matches (another owner's tasks: admins only)",
            "properties": {
                "action": {"enum": ["cancel", "retry", "delete"],
                           "description": "cancel (unfinished tasks), retry (dead tasks), delete (finished tasks)"},
                "ids": {"anyOf": [{"type": "null"}, {"type": "array", "minItems": 1,
                        "maxItems": MAX_BULK_IDS, "items": {"type": "string", "format": "uuid"}}]},
                "queue": {"anyOf": [{"type": "null"}, queue_schema(config)],
                          "description": format!("With ids: the queue that holds them (without \
                                          it, ids × queues is at most {MAX_ID_LOOKUPS})")},
                "filter": {"anyOf": [{"type": "null"}, {
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "queue": nullable(queue_schema(config)),
                        "status": {"enum": tether_model::Status::ALL.map(|s| s.as_str()).into_iter()
                                   .map(Value::from).chain([Value::Null]).collect::<Vec<_>>()},
                        "type": nullable(name_schema(limits::JOB_TYPE)),
                        "owner": {"type": ["string", "null"], "maxLength": limits::MAX_OWNER_LEN},
                        "dead": {"type": ["boolean", "null"]},
                        "priority": nullable(count(0, tether_model::MAX_PRIORITY.into())),
                        "group": nullable(json!({"type": "string", "minLength": 1,
                            "maxLength": limits::MAX_GROUP_LEN, "pattern": limits::GROUP_PATTERN}))
                    }}]},
                "dry_run": {"type": "boolean", "description": "Count only; nothing changes"},
                "cursor": cursor.clone()
            },
            "oneOf": [
                {"required": ["ids"], "properties": {"ids": {"type": "array"},
                    "filter": {"type": "null"}, "cursor": {"type": "null"}}},
                {"required": ["filter"], "properties": {"filter": {"type": "object"},
                    "ids": {"type": "null"}, "queue": {"type": "null"}}}
            ]
        },
        "DeadBody": {
            "type": "object",
            "additionalProperties": false,
            "properties": {"dry_run": {"type": "boolean"}, "cursor": cursor}
        },
        "BulkResult": {
            "type": "object",
            "required": ["action", "dry_run", "matched", "acted", "skipped", "ignored",
                         "not_found", "examined", "next"],
            "properties": {
                "action": {"enum": ["cancel", "retry", "delete"]},
                "dry_run": {"type": "boolean"},
                "matched": {"type": "integer", "description": "Selected tasks the action applies to"},
                "acted": {"type": "integer", "description": "Tasks changed"},
                "skipped": {"type": "integer", "description": "Matched, but changed meanwhile or refusing the action"},
                "ignored": {"type": "integer", "description": "Selected, in a state the action does not apply to"},
                "not_found": {"type": "integer", "description": "Ids naming no task the caller sees"},
                "examined": {"type": "integer"},
                "next": {"type": ["string", "null"], "description": "The cursor that goes on; null when complete"}
            }
        },
        "SearchResult": {
            "type": "object",
            "required": ["tasks", "complete"],
            "properties": {
                "tasks": {"type": "array", "items": {"type": "object"}},
                "complete": {"type": "boolean", "description": "Every task was looked at"}
            }
        },
        "Throughput": {
            "type": "object",
            "required": ["queue", "start", "interval_seconds", "created", "finished"],
            "properties": {
                "queue": {"type": "string"},
                "start": {"type": "string", "format": "date-time"},
                "interval_seconds": {"type": "integer"},
                "created": {"type": "array", "items": {"type": "integer"}},
                "finished": {"type": "array", "items": {"type": "integer"}}
            }
        }
    });
    if let Value::Object(bulk) = bulk {
        schemas.extend(bulk);
    }
}

/// `ScheduleBody`, as POST (name, type and one trigger required) and as PATCH
/// (no name: it is the path's).
fn schedule_body(config: &ApiConfig, max_attempts: Value) -> Value {
    let interval = json!({"oneOf": [
        {"type": "number", "exclusiveMinimum": 0,
         "maximum": schedule::MAX_SPAN.as_secs(), "description": "Seconds"},
        {"type": "string", "pattern": limits::interval::pattern(),
         "description": "One number and a unit: 30s, 5m, 2h, 1d, 1w"}
    ]});
    let mut every = interval.clone();
    every["oneOf"][0] = json!({"type": "number", "minimum": schedule::MIN_EVERY.as_secs(),
        "maximum": schedule::MAX_SPAN.as_secs(), "description": "Seconds"});
    let mut catch_up = interval;
    catch_up["oneOf"]
        .as_array_mut()
        .expect("alternatives")
        .push(json!({"type": "string", "enum": ["none", "last"]}));
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "name": name_schema(limits::SCHEDULE_NAME),
            "type": type_schema(config),
            "input": {"description": "Each firing's input: any JSON value"},
            "queue": nullable(queue_schema(config)),
            "cron": {"type": "string", "maxLength": limits::cron::MAX_LEN,
                     "pattern": limits::cron::pattern(),
                     "description": "5 fields, or 6 with seconds first"},
            "tz": {"type": "string", "enum": schedule::time_zones().collect::<Vec<_>>(),
                   "description": "The IANA time zone of cron (default UTC)"},
            "every": every,
            "overlap": {"type": "string", "enum": ["skip", "allow", "cancel_previous", "cancel-previous"]},
            "catch_up": catch_up,
            "max_attempts": nullable(max_attempts),
            "timeout": nullable(time_limit_schema()),
        }
    })
}

fn schedules_bodies(body: &mut Value, schemas: &mut Map<String, Value>) {
    let mut create = body.clone();
    create["required"] = json!(["name", "type"]);
    // One trigger: cron or every, not both.
    create["oneOf"] = json!([{"required": ["cron"]}, {"required": ["every"]}]);
    schemas.insert("ScheduleBody".into(), create);
    body["properties"]
        .as_object_mut()
        .expect("properties")
        .remove("name");
    body["not"] = json!({"required": ["cron", "every"]});
    schemas.insert("PatchScheduleBody".into(), body.take());
}

/// Path and query parameters: the same bounds as the bodies.
fn constrain_parameters(operation: &mut Value, path: &str) {
    let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for p in parameters {
        let name = p["name"].as_str().unwrap_or_default().to_owned();
        let schema = match (p["in"].as_str(), name.as_str()) {
            (Some("path"), "id") => json!({"type": "string", "format": "uuid"}),
            (Some("path"), "queue") => name_schema(limits::QUEUE_NAME),
            (Some("path"), "name") => name_schema(limits::SCHEDULE_NAME),
            (Some("query"), "limit") => count(1, crate::routes::MAX_PAGE as u64),
            (Some("query"), "marker" | "parent") => json!({"type": "string", "format": "uuid"}),
            (Some("query"), "sort_key") => json!({"type": "string",
                "enum": ["id", "type", "status", "created_at", "updated_at"]}),
            (Some("query"), "sort_dir") => json!({"type": "string", "enum": ["asc", "desc"]}),
            (Some("query"), "status") => json!({"type": "string",
                "enum": tether_model::Status::ALL.map(|s| s.as_str())}),
            (Some("query"), "type") => name_schema(limits::JOB_TYPE),
            (Some("query"), "queue") => name_schema(limits::QUEUE_NAME),
            (Some("query"), "owner") => {
                json!({"type": "string", "maxLength": limits::MAX_OWNER_LEN})
            }
            (Some("query"), "group") => json!({"type": "string", "minLength": 1,
                "maxLength": limits::MAX_GROUP_LEN, "pattern": limits::GROUP_PATTERN}),
            (Some("query"), "priority") => count(0, tether_model::MAX_PRIORITY.into()),
            (Some("query"), "dead" | "force") => json!({"type": "boolean"}),
            (Some("query"), "q") => json!({"type": "string", "minLength": 1,
                "maxLength": crate::console::MAX_SEARCH_LEN,
                "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}),
            // Any text: one that is no trace context is ignored.
            (Some("header"), "traceparent" | "tracestate") => json!({"type": "string"}),
            (place, other) => panic!("{path}: parameter {other} in {place:?} has no bounds"),
        };
        p["schema"] = schema;
    }
}

/// Links from each answer naming a task, a queue or a schedule to the operations
/// taking it.
fn link(doc: &mut Value) {
    let links = |ops: &[&str], param: &str, at: &str| -> Value {
        ops.iter()
            .map(|op| {
                (
                    (*op).to_owned(),
                    json!({"operationId": op, "parameters": {param: format!("$response.body#{at}")}}),
                )
            })
            .collect::<Map<String, Value>>()
            .into()
    };
    let task = links(&TASK_OPS, "id", "/id");
    let queue = links(&QUEUE_OPS, "queue", "/queue");
    let schedule = links(&SCHEDULE_OPS, "name", "/name");
    for (path, method, status, value) in [
        ("/v2/tasks", "post", "201", task.clone()),
        (
            "/v2/tasks",
            "get",
            "200",
            links(&TASK_OPS, "id", "/tasks/0/id"),
        ),
        ("/v2/tasks/{id}", "get", "200", task.clone()),
        ("/v2/schedules/{name}/trigger", "post", "202", task),
        (
            "/v2/queues",
            "get",
            "200",
            links(&QUEUE_OPS, "queue", "/queues/0/queue"),
        ),
        ("/v2/queues/{queue}", "get", "200", queue),
        ("/v2/schedules", "post", "201", schedule.clone()),
        (
            "/v2/schedules",
            "get",
            "200",
            links(&SCHEDULE_OPS, "name", "/schedules/0/name"),
        ),
        ("/v2/schedules/{name}", "get", "200", schedule),
    ] {
        let response = &mut doc["paths"][path][method]["responses"][status];
        assert!(response.is_object(), "{method} {path} answers {status}");
        response["links"] = value;
    }
}
