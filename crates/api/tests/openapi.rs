//! The OpenAPI document is part of the API: it states every constraint the handlers
//! enforce, every answer of every operation, links between the calls, and the
//! events of the event stream; and the handlers accept what it calls valid. Each
//! mismatch a schema fuzzer (Schemathesis, `tests/schemathesis.rs`) found is pinned
//! here.

mod common;
use common::{call, call_text};

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tether_api::{ApiConfig, Auth};
use tether_model::limits;
use tether_producer::Producer;
use tether_store::{Store, StoreConfig};
use tether_testkit::{RedisOptions, RedisServer};
use tether_worker::{CancellationToken, Worker};
use tower::ServiceExt;

const ALICE: &str = "alice-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

struct Env {
    _redis: RedisServer,
    app: Router,
    stop: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn env(with_worker: bool) -> Env {
    let redis = RedisServer::start(RedisOptions::default());
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let auth = Auth::from_toml(&format!(
        "[[tokens]]\ntoken = \"{ALICE}\"\nowner = \"alice\"\n\
         [[tokens]]\ntoken = \"{ADMIN}\"\nowner = \"ops\"\nrole = \"admin\"\n"
    ))
    .unwrap();
    let config = ApiConfig {
        auth,
        job_types: Some(vec!["noop".into(), "sleep".into()]),
        ..ApiConfig::default()
    };
    let stop = CancellationToken::new();
    let (app, _) = tether_api::router(Producer::from_store(store.clone()), config, stop.clone());
    if with_worker {
        let worker = tether_demo_handlers::register(Worker::builder(store), &redis.url())
            .build()
            .unwrap();
        let token = stop.clone();
        tokio::spawn(async move { worker.run(token).await.unwrap() });
    }
    Env {
        _redis: redis,
        app,
        stop,
    }
}

async fn document(app: &Router) -> Value {
    let (status, doc) = call(app, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    doc
}

fn matches(pattern: &str, text: &str) -> bool {
    regex::Regex::new(pattern).unwrap().is_match(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_states_the_constraints_the_handlers_enforce() {
    let env = env(false).await;
    let doc = document(&env.app).await;
    // A task workers run, or one its creator drives.
    let create = &doc["components"]["schemas"]["CreateTask"]["oneOf"][0];
    let props = &create["properties"];
    assert_eq!(create["additionalProperties"], json!(false));
    let external = &doc["components"]["schemas"]["CreateTask"]["oneOf"][1];
    assert_eq!(external["additionalProperties"], json!(false));
    assert_eq!(external["properties"]["external"]["const"], json!(true));
    let lease = &external["properties"]["lease_timeout"]["anyOf"][0];
    assert_eq!(
        (&lease["minimum"], &lease["maximum"]),
        (
            &json!(tether_model::MIN_EXTERNAL_LEASE.as_secs()),
            &json!(tether_model::MAX_EXTERNAL_LEASE.as_secs())
        )
    );
    // Any type name: no worker has to know it. Nothing that starts a run.
    assert_eq!(
        external["properties"]["type"]["pattern"],
        json!(limits::JOB_TYPE.pattern())
    );
    for field in ["delay", "run_at", "start_by", "timeout"] {
        assert!(external["properties"][field].is_null(), "{field}");
    }
    // An external task's result is any JSON value, as a worker's is.
    let result = &doc["components"]["schemas"]["CompleteBody"]["properties"]["result"];
    assert!(
        result.is_object() && result.get("type").is_none(),
        "{result}"
    );
    // The configured task types are the only ones the schema allows.
    assert_eq!(props["type"]["enum"], json!(["noop", "sleep"]));
    let alt = |p: &Value, i: usize| p["anyOf"][i].clone();
    let queue = alt(&props["queue"], 0);
    assert_eq!(queue["pattern"], json!(limits::QUEUE_NAME.pattern()));
    assert_eq!(queue["maxLength"], json!(limits::QUEUE_NAME.max_len));
    assert_eq!(alt(&props["max_attempts"], 0)["minimum"], json!(1));
    assert_eq!(
        alt(&props["priority"], 0)["maximum"],
        json!(tether_model::MAX_PRIORITY)
    );
    let group = alt(&props["group"], 0);
    assert_eq!(group["maxLength"], json!(limits::MAX_CALLER_GROUP_LEN));
    assert_eq!(group["pattern"], json!(limits::GROUP_PATTERN));
    let timeout = alt(&props["timeout"], 0);
    assert_eq!(
        timeout["oneOf"][1]["pattern"],
        json!(limits::span::pattern())
    );
    assert_eq!(
        alt(&props["idempotency_key"], 0)["maxLength"],
        json!(limits::MAX_IDEMPOTENCY_KEY_LEN)
    );

    // The trace context a create continues (an invalid one is ignored, never refused).
    let parameters = doc["paths"]["/v2/tasks"]["post"]["parameters"]
        .as_array()
        .expect("the create's parameters");
    for name in ["traceparent", "tracestate"] {
        let header = parameters
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is documented"));
        assert_eq!(header["in"], "header");
        assert_eq!(header["required"], json!(false));
        assert_eq!(header["schema"]["type"], "string");
    }

    // The issue's examples: invalid by the document, and refused.
    let span = limits::span::pattern();
    assert!(!matches(&span, ""));
    let refused = [
        json!({"type": ""}),
        json!({"type": "noop", "timeout": ""}),
        json!({"type": "noop", "max_attempts": 0}),
        json!({"type": "noop", "priority": 10}),
        json!({"type": "noop", "timeout": "1.5h"}),
        json!({"type": "noop", "group": "a\u{85}b"}),
        json!({"type": "noop", "queue": "no spaces"}),
    ];
    // And what it calls valid is accepted, at the edges of each bound.
    let accepted = [
        json!({"type": "noop", "delay": "1h 30m", "timeout": 999_999_999.999_999_9}),
        json!({"type": "noop", "max_attempts": 3.0, "priority": 9.0}),
        json!({"type": "noop", "group": "é".repeat(limits::MAX_CALLER_GROUP_LEN)}),
        json!({"type": "noop", "name": "ü".repeat(limits::MAX_TASK_NAME_LEN)}),
        json!({"type": "noop", "idempotency_key": "ß".repeat(limits::MAX_IDEMPOTENCY_KEY_LEN)}),
        json!({"type": "noop", "start_by": "2 days", "queue": "q".repeat(64)}),
        json!({"type": "noop", "timeout": "999999999y 999999999y"}),
    ];
    let cases = (refused.into_iter().map(|b| (b, StatusCode::BAD_REQUEST)))
        .chain(accepted.into_iter().map(|b| (b, StatusCode::CREATED)));
    for (body, expected) in cases {
        let (status, answer) = call(
            &env.app,
            "POST",
            "/v2/tasks",
            Some(ALICE),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, expected, "{body} → {answer}");
    }

    let list = &doc["paths"]["/v2/tasks"]["get"]["parameters"];
    for p in list.as_array().unwrap() {
        assert_eq!(p["in"], "query", "{p}");
    }
    let param = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]
            .clone()
    };
    assert_eq!(param("dead")["type"], "boolean");
    assert_eq!(param("limit")["maximum"], json!(1000));
    assert_eq!(
        param("queue")["pattern"],
        json!(limits::QUEUE_NAME.pattern())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrongly_typed_query_parameter_is_a_400_naming_it() {
    let env = env(false).await;
    for (query, name) in [
        ("dead=abc", "dead"),
        ("limit=many", "limit"),
        ("priority=1.5", "priority"),
    ] {
        let (status, answer) = call(
            &env.app,
            "GET",
            &format!("/v2/tasks?{query}"),
            Some(ALICE),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query} → {answer}");
        assert_eq!(answer["code"], "BadRequest");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("query parameter {name}")),
            "{answer}"
        );
    }
    for (query, expected) in [
        ("priority=10", 400),
        ("queue=a%20b", 400),
        ("type=", 400),
        ("group=a%0Ab", 400),
        // Whole numbers written as floats are whole numbers.
        ("limit=5.0&priority=1", 200),
        // A well-formed marker naming no visible task is not found (not malformed).
        ("marker=e3e70682-c209-1cac-a29f-6fbed82c07cd", 404),
    ] {
        let uri = format!("/v2/tasks?{query}");
        let (status, answer) = call(&env.app, "GET", &uri, Some(ALICE), None).await;
        assert_eq!(status.as_u16(), expected, "{query} → {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_objects_and_limits_whole_numbers() {
    let env = env(false).await;
    let (_, task) = call(
        &env.app,
        "POST",
        "/v2/tasks",
        Some(ALICE),
        Some(json!({"type": "noop", "delay": 60})),
    )
    .await;
    let id = task["id"].as_str().unwrap();
    let queue = "/v2/queues/default".to_owned();
    for (method, uri, body, expected) in [
        ("PATCH", format!("/v2/tasks/{id}"), "[null, null]", 400),
        ("PATCH", queue.clone(), "[null, null]", 400),
        ("POST", "/v2/tasks".to_owned(), "[null, null]", 400),
        ("POST", "/v2/schedules".to_owned(), "[null, null]", 400),
        ("PATCH", queue.clone(), r#"{"rate": "0123"}"#, 400),
        (
            "PATCH",
            queue,
            r#"{"rate": 5.0, "concurrency": "none"}"#,
            200,
        ),
    ] {
        let (status, answer) =
            call_text(&env.app, method, &uri, Some(ADMIN), Some(body.into())).await;
        assert_eq!(
            status.as_u16(),
            expected,
            "{method} {uri} {body} → {answer}"
        );
        if expected == 200 {
            assert_eq!(answer["rate"], json!(5));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_beyond_the_horizon_is_a_policy_refusal() {
    let env = env(false).await;
    let (status, answer) = call(
        &env.app,
        "POST",
        "/v2/tasks",
        Some(ALICE),
        Some(json!({"type": "noop", "run_at": "9999-12-31T00:00:00Z"})),
    )
    .await;
    // Well-formed by the document, refused by the server's configured horizon.
    assert_eq!(
        (status, &answer["code"]),
        (StatusCode::FORBIDDEN, &json!("BeyondHorizon")),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_take_what_their_schema_states() {
    let env = env(false).await;
    let create = |body: Value| call(&env.app, "POST", "/v2/schedules", Some(ALICE), Some(body));
    // A tiny catch-up window is still a window once stored (in milliseconds).
    let (status, answer) =
        create(json!({"name": "w", "type": "noop", "every": 60, "catch_up": 1e-9})).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = call(
        &env.app,
        "PATCH",
        "/v2/schedules/w",
        Some(ALICE),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Fields the document does not call nullable refuse null.
    for field in ["tz", "cron", "every", "overlap", "catch_up", "type"] {
        let body = json!({ field: null });
        let (status, answer) = call(
            &env.app,
            "PATCH",
            "/v2/schedules/w",
            Some(ALICE),
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
    }
    // The name is the path's: a body naming one is a rename.
    let (status, _) = call(
        &env.app,
        "PATCH",
        "/v2/schedules/w",
        Some(ALICE),
        Some(json!({"name": "w"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for (ok, body) in [
        (
            true,
            json!({"name": "c1", "type": "noop", "cron": "0,30 9-17/2 * 1-12 1-5", "tz": "Europe/Paris"}),
        ),
        (true, json!({"name": "c2", "type": "noop", "every": "366d"})),
        (
            false,
            json!({"name": "c3", "type": "noop", "every": "367d"}),
        ),
        (
            false,
            json!({"name": "c4", "type": "noop", "cron": "5-1 * * * *"}),
        ),
        (
            false,
            json!({"name": "c5", "type": "noop", "cron": "* * * * *", "tz": ""}),
        ),
        (false, json!({"name": "c6", "type": "noop", "every": "1ms"})),
    ] {
        let (status, answer) = create(body.clone()).await;
        let expected = if ok {
            StatusCode::CREATED
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(status, expected, "{body} → {answer}");
        let cron = body["cron"].as_str().unwrap_or("* * * * *");
        let every = body["every"].as_str().unwrap_or("1s");
        assert_eq!(
            ok,
            matches(&limits::cron::pattern(), cron)
                && matches(&limits::interval::pattern(), every)
                && body["tz"].as_str() != Some(""),
            "{body}: the document agrees"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_documents_every_answer_and_links() {
    let env = env(false).await;
    let doc = document(&env.app).await;
    let public = ["/v2/schemas/task", "/v2/schemas/tasks", "/versions"];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            if !public.contains(&path.as_str()) {
                for status in ["401", "503"] {
                    let error = &responses[status]["content"]["application/json"]["schema"];
                    assert_eq!(
                        error["anyOf"],
                        json!([{"$ref": "#/components/schemas/ApiError"},
                               {"$ref": "#/components/schemas/OpenStackError"}]),
                        "{method} {path} {status}"
                    );
                }
                assert_ne!(op["security"], json!([]), "{method} {path}");
            }
            for (status, response) in responses {
                if status.starts_with('2') && status != "204" {
                    assert!(response["content"].is_object(), "{method} {path} {status}");
                }
            }
        }
    }
    let create = &doc["paths"]["/v2/tasks"]["post"]["responses"];
    for status in ["201", "400", "401", "403", "413", "415", "429", "503"] {
        assert!(
            create[status].is_object(),
            "POST /v2/tasks answers {status}"
        );
    }
    for (path, method, status, at) in [
        ("/v2/tasks", "post", "201", "$response.body#/id"),
        ("/v2/tasks", "get", "200", "$response.body#/tasks/0/id"),
    ] {
        let links = &doc["paths"][path][method]["responses"][status]["links"];
        for op in [
            "show_task",
            "patch_task",
            "cancel_task",
            "retry_task",
            "task_events",
        ] {
            assert_eq!(links[op]["operationId"], op);
            assert_eq!(links[op]["parameters"]["id"], at, "{method} {path} → {op}");
        }
    }
    let links = &doc["paths"]["/v2/schedules"]["post"]["responses"]["201"]["links"];
    assert_eq!(
        links["trigger_schedule"]["parameters"]["name"],
        "$response.body#/name"
    );
    let links = &doc["paths"]["/v2/queues"]["get"]["responses"]["200"]["links"];
    assert_eq!(
        links["pause_queue"]["parameters"]["queue"],
        "$response.body#/queues/0/queue"
    );
    // Pausing a whole queue takes no body.
    assert_eq!(
        doc["paths"]["/v2/queues/{queue}/pause"]["post"]["requestBody"]["required"],
        json!(false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_authentication_the_document_asks_for_no_token() {
    let redis = RedisServer::start(RedisOptions::default());
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let config = ApiConfig {
        auth: Auth::Disabled,
        ..ApiConfig::default()
    };
    let stop = CancellationToken::new();
    let (app, _) = tether_api::router(Producer::from_store(store), config, stop.clone());
    let doc = document(&app).await;
    let create = &doc["paths"]["/v2/tasks"]["post"];
    assert_eq!(create["security"], json!([]));
    assert!(create["responses"]["401"].is_null());
    assert!(doc["components"]["securitySchemes"].is_null());
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_matches_its_documented_events() {
    let env = env(true).await;
    let doc = document(&env.app).await;
    let content = &doc["paths"]["/v2/tasks/{id}/events"]["get"]["responses"]["200"]["content"];
    let schema = &content["text/event-stream"]["schema"];
    assert_eq!(
        schema["$ref"], "#/components/schemas/TaskEvent",
        "{content}"
    );
    let event_schema = &doc["components"]["schemas"]["TaskEvent"];
    let names = event_schema["oneOf"][0]["properties"]["event"]["enum"].clone();
    let task_required = doc["components"]["schemas"]["Task"]["required"].clone();

    let (_, task) = call(
        &env.app,
        "POST",
        "/v2/tasks",
        Some(ALICE),
        Some(json!({"type": "sleep", "input": {"ms": 200}})),
    )
    .await;
    let id = task["id"].as_str().unwrap();
    let req = Request::builder()
        .uri(format!("/v2/tasks/{id}/events"))
        .header(header::AUTHORIZATION, format!("Bearer {ALICE}"))
        .body(Body::empty())
        .unwrap();
    let resp = env.app.clone().oneshot(req).await.unwrap();
    let body = tokio::time::timeout(Duration::from_secs(30), resp.into_body().collect())
        .await
        .expect("the stream ends when the task is final")
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    // Every key a task answer has is in the schema (the list's summaries are a subset).
    let (_, shown) = call(
        &env.app,
        "GET",
        &format!("/v2/tasks/{id}"),
        Some(ALICE),
        None,
    )
    .await;
    let properties = &doc["components"]["schemas"]["Task"]["properties"];
    for key in shown.as_object().unwrap().keys() {
        assert!(properties.get(key).is_some(), "Task documents {key}");
    }
    let mut seen = 0;
    for block in text.split("\n\n").filter(|b| b.contains("data:")) {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .map(str::trim)
                .unwrap()
                .to_owned()
        };
        let event = field("event");
        assert!(names.as_array().unwrap().contains(&json!(event)), "{event}");
        let data: Value = serde_json::from_str(&field("data")).unwrap();
        for key in task_required.as_array().unwrap() {
            assert!(
                data.get(key.as_str().unwrap()).is_some(),
                "{event} lacks {key}"
            );
        }
        seen += 1;
    }
    assert!(seen >= 2, "{text}");
}

/// An external task's driver bodies carry their constraints (a schema fuzzer sent
/// `{"error_code": ""}`, valid by the document, and got a 400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_bodies_state_their_constraints() {
    let env = env(false).await;
    let doc = document(&env.app).await;
    let schemas = &doc["components"]["schemas"];
    let abort = &schemas["AbortBody"]["properties"];
    let code = &abort["error_code"]["anyOf"][0];
    assert_eq!(code["minLength"], json!(1), "{abort}");
    assert_eq!(code["pattern"], json!(limits::JOB_TYPE.pattern()));
    assert_eq!(
        abort["message"]["anyOf"][0]["maxLength"],
        json!(limits::MAX_ABORT_MESSAGE_LEN)
    );
    let progress = &schemas["ProgressBody"]["properties"];
    assert_eq!(
        progress["message"]["anyOf"][0]["maxLength"],
        json!(limits::MAX_PROGRESS_MESSAGE_LEN)
    );
    assert_eq!(
        schemas["DescriptionBody"]["properties"]["description"]["maxLength"],
        json!(limits::MAX_PROGRESS_MESSAGE_LEN)
    );
}

/// A well-formed marker that is no child of the parent names nothing in that list: a
/// 404, as any unknown marker is (a schema fuzzer found a 400 here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_that_is_no_child_is_not_found() {
    let env = env(false).await;
    let (status, created) = call(
        &env.app,
        "POST",
        "/v2/tasks",
        Some(ALICE),
        Some(json!({"type": "noop"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let parent = created["id"].as_str().unwrap().to_owned();
    let stranger = "e3e70682-c209-1cac-a29f-6fbed82c07cd";
    let (status, body) = call(
        &env.app,
        "GET",
        &format!("/v2/tasks?parent={parent}&marker={stranger}"),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

/// The document's pattern for queue and schedule names and the server's check agree
/// at every edge of the rule, `.` and `..` (refused: they are the URL's own path
/// segments) among them.
#[test]
fn the_name_pattern_and_the_check_agree_at_the_edges() {
    let pattern = limits::QUEUE_NAME.pattern();
    let names = [
        ".".to_owned(),
        "..".into(),
        "...".into(),
        ".x".into(),
        "..x".into(),
        "x.".into(),
        "x..".into(),
        "a".into(),
        "q".repeat(64),
        "q".repeat(65),
        format!(".{}", "q".repeat(63)),
        format!(".{}", "q".repeat(64)),
        format!("..{}", "q".repeat(62)),
        format!("..{}", "q".repeat(63)),
        ".".repeat(64),
        ".".repeat(65),
        "a b".into(),
        String::new(),
    ];
    for name in names {
        let by_document = matches(&pattern, &name) && name.chars().count() <= 64;
        assert_eq!(by_document, limits::QUEUE_NAME.accepts(&name), "{name:?}");
        assert_eq!(
            by_document,
            !matches!(name.as_str(), "." | ".." | "" | "a b") && name.len() <= 64,
            "{name:?}"
        );
    }
}
