//! Glance v2 shapes: the task body, list answer, schemas and version document.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tether_producer::Job;

/// Glance writes times as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn glance_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn opt_time(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| Value::String(glance_time(t)))
        .unwrap_or(Value::Null)
}

/// A task as Glance shows it, plus Tether's extensions. `full` adds `input` and `result`
/// (Glance leaves them out of list summaries).
pub fn task_body(job: &Job, full: bool) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(job.id.to_string()));
    m.insert("type".into(), json!(job.job_type));
    m.insert("status".into(), json!(job.status.as_str()));
    m.insert("owner".into(), json!(job.owner.clone().unwrap_or_default()));
    m.insert("message".into(), json!(job.message));
    m.insert("created_at".into(), json!(glance_time(job.created_at)));
    m.insert("updated_at".into(), json!(glance_time(job.updated_at)));
    if job.expires_at.is_some() {
        m.insert("expires_at".into(), opt_time(job.expires_at));
    }
    m.insert("self".into(), json!(format!("/v2/tasks/{}", job.id)));
    m.insert("schema".into(), json!("/v2/schemas/task"));
    if full {
        m.insert("input".into(), job.input.clone());
        m.insert("result".into(), job.result.clone().unwrap_or(Value::Null));
    }
    // Extensions (vSphere Task, Xen task).
    m.insert("queue".into(), json!(job.queue));
    m.insert("progress".into(), json!(job.progress));
    m.insert("progress_message".into(), json!(job.progress_message));
    m.insert("phase".into(), json!(job.phase.map(|p| p.as_str())));
    m.insert("eta".into(), opt_time(job.eta));
    m.insert("priority".into(), json!(job.priority));
    m.insert("group".into(), json!(job.group));
    m.insert("start_by".into(), opt_time(job.start_by));
    m.insert("attempts".into(), json!(job.attempts));
    m.insert("max_attempts".into(), json!(job.max_attempts));
    m.insert(
        "error_code".into(),
        json!(job.error_code.as_ref().map(|c| c.as_str())),
    );
    m.insert("error_info".into(), json!(job.error_info));
    m.insert("cancelable".into(), json!(job.cancelable));
    m.insert("cancel_requested".into(), json!(job.cancel_requested));
    m.insert("worker".into(), json!(job.worker));
    m.insert("name".into(), json!(job.name));
    m.insert("description".into(), json!(job.description));
    m.insert("started_at".into(), opt_time(job.started_at));
    m.insert("finished_at".into(), opt_time(job.finished_at));
    m.insert("run_at".into(), opt_time(job.run_at));
    m.insert("lease_expires_at".into(), opt_time(job.lease_expires_at));
    // Set on the jobs a schedule fired: which schedule, and the fire time (one job each).
    m.insert("schedule".into(), json!(job.schedule));
    m.insert("fire_time".into(), opt_time(job.fire_time));
    // External tasks: driven by their creator, under a lease of `lease_timeout` seconds.
    // Task trees (vSphere parentTaskKey / rootTaskKey, Xen subtask_of / subtasks):
    // `subtasks` lists the first children, `subtask_count` counts them all, and
    // `subtasks_link` lists them all (paged).
    m.insert(
        "parent_id".into(),
        json!(job.parent_id.map(|p| p.to_string())),
    );
    m.insert("root_id".into(), json!(job.root_id.map(|r| r.to_string())));
    m.insert(
        "subtasks".into(),
        json!(
            job.subtasks
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
        ),
    );
    m.insert("subtask_count".into(), json!(job.subtask_count));
    m.insert(
        "subtasks_link".into(),
        json!(format!("/v2/tasks?parent={}", job.id)),
    );
    m.insert("external".into(), json!(job.external));
    m.insert(
        "lease_timeout".into(),
        json!(job.lease_timeout_ms.map(|ms| ms as f64 / 1000.0)),
    );
    Value::Object(m)
}

/// `GET /v2/schemas/task`, in Glance's form. `types` lists the registered job types when known.
pub fn task_schema(types: Option<&[String]>) -> Value {
    let mut type_prop =
        json!({"type": "string", "description": "The type of task represented by this content"});
    if let Some(types) = types {
        type_prop["enum"] = json!(types);
    }
    let nullable_time = |d: &str| json!({"type": ["null", "string"], "description": d});
    let mut schema = json!({
        "name": "task",
        "properties": {
            "id": {"type": "string", "description": "An identifier for the task",
                   "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
            "type": type_prop,
            "status": {"type": "string", "description": "The current status of this task",
                       "enum": ["pending", "processing", "success", "failure", "cancelled"]},
            "input": {"description": "The parameters required by task, JSON blob"},
            "result": {"description": "The result of current task, JSON blob"},
            "owner": {"type": "string", "description": "An identifier for the owner of this task"},
            "message": {"type": "string", "description": "Human-readable informative message only included when appropriate (usually on failure)"},
            "expires_at": nullable_time("Datetime when this resource would be subject to removal"),
            "created_at": {"type": "string", "description": "Datetime when this resource was created"},
            "updated_at": {"type": "string", "description": "Datetime when this resource was updated"},
            "self": {"type": "string"},
            "schema": {"type": "string"},
            "queue": {"type": "string", "description": "Tether extension: the queue"},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100, "description": "Tether extension: percent done"},
            "progress_message": {"type": ["null", "string"]},
            "phase": {"type": ["null", "string"], "enum": [null, "handle", "check"]},
            "eta": nullable_time("Estimated completion while running; the finish time once finished"),
            "priority": {"type": "integer", "minimum": 0, "maximum": tether_model::MAX_PRIORITY,
                         "description": "Tether extension: 0 runs first"},
            "group": {"type": ["null", "string"], "description": "Tether extension: the fairness group"},
            "start_by": nullable_time("Not started by then, the task fails with Expired"),
            "attempts": {"type": "integer"},
            "max_attempts": {"type": "integer"},
            "error_code": {"type": ["null", "string"]},
            "error_info": {"type": "array", "items": {"type": "string"}},
            "cancelable": {"type": "boolean"},
            "cancel_requested": {"type": "boolean"},
            "worker": {"type": ["null", "string"]},
            "name": {"type": ["null", "string"]},
            "description": {"type": ["null", "string"]},
            "started_at": nullable_time("When the current attempt started"),
            "finished_at": nullable_time("When the task finished"),
            "run_at": nullable_time("When a delayed task becomes due"),
            "lease_expires_at": nullable_time("When the current lease lapses unless renewed"),
            "schedule": {"type": ["null", "string"], "description": "The schedule whose firing created the task"},
            "fire_time": nullable_time("The fire time of that firing")
        }
    });
    // Later extensions, a second part: one json! of every field passes the macro's
    // recursion limit.
    let more = json!({
        "external": {"type": "boolean", "description": "Driven by its creator, not run by a worker"},
        "lease_timeout": {"type": ["null", "number"], "description": "An external task's lease in seconds: no progress report within it, the task fails with Timedout"},
        "parent_id": {"type": ["null", "string"], "description": "The parent task in a tree (vSphere parentTaskKey)"},
        "root_id": {"type": ["null", "string"], "description": "The root of the tree (vSphere rootTaskKey)"},
        "subtasks": {"type": "array", "items": {"type": "string"}, "description": "The first 1000 children's ids, in spawn order (Xen subtasks)"},
        "subtask_count": {"type": "integer", "description": "How many children the task has"},
        "subtasks_link": {"type": "string", "description": "Lists every child: /v2/tasks?parent=<id>"}
    });
    if let (Some(props), Value::Object(more)) = (schema["properties"].as_object_mut(), more) {
        props.extend(more);
    }
    schema
}

/// `GET /v2/schemas/tasks`.
pub fn tasks_schema(types: Option<&[String]>) -> Value {
    json!({
        "name": "tasks",
        "properties": {
            "tasks": {"type": "array", "items": task_schema(types)},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"}
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"}
        ]
    })
}

/// Glance's version document (`GET /versions`, `GET /`).
pub fn versions(base: &str) -> Value {
    let version = |id: &str, status: &str| json!({"id": id, "status": status, "links": [{"rel": "self", "href": format!("{base}/v2/")}]});
    json!({"versions": [version("v2.16", "CURRENT"), version("v2.15", "SUPPORTED")]})
}

/// Where links in answers point: the configured public URL, else `http://` and the
/// request's Host header when it is a plain `host[:port]`, else `http://localhost`.
/// The Host header is the client's to choose, so it is never copied unchecked.
pub fn base_url(public_url: Option<&str>, host: Option<&str>) -> String {
    if let Some(url) = public_url {
        return url.trim_end_matches('/').to_owned();
    }
    match host {
        Some(host) if is_plain_host(host) => format!("http://{host}"),
        _ => "http://localhost".into(),
    }
}

/// `name[:port]`, `a.b.c.d[:port]` or `[v6][:port]`: letters, digits, `.`, `-`
/// (`:` inside brackets), at most 255 bytes; a port of 1-5 digits.
pub fn is_plain_host(host: &str) -> bool {
    if host.is_empty() || host.len() > 255 {
        return false;
    }
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("v6", Some(port)),
                None => return false,
            },
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let name_ok = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()));
    name_ok && port_ok
}

/// A usable public URL: `http://` or `https://`, then a plain host, an optional
/// path of safe characters.
pub fn is_valid_public_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    is_plain_host(host)
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_hosts_make_links() {
        for good in [
            "localhost",
            "api.example:9292",
            "10.0.0.1:80",
            "[::1]:9292",
            "[::1]",
        ] {
            assert!(is_plain_host(good), "{good}");
        }
        for bad in [
            "", "evil\"", "a b", "x/y", "x@y", "x:port", "x:123456", "[::1", "a..b", "[zz]",
        ] {
            assert!(!is_plain_host(bad), "{bad}");
        }
        assert!(is_valid_public_url("https://tasks.example.com/api/"));
        assert!(!is_valid_public_url("ftp://x"));
        assert!(!is_valid_public_url("https://x/\"y"));
    }
}
