//! OpenTelemetry traces from a REST create through the worker's spans, received by an
//! OTLP/HTTP receiver that decodes the protocol's own protobuf messages: `tether api`
//! and `tether worker` processes export to it as they would to a collector.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use tether_model::JobId;
use tether_model::trace::attempt_span_id;
use tether_suite::{ApiProcess, WorkerProcess};
use tether_testkit::{RedisEndpoint, TestRedis, Topology, eventually_blocking};

/// A span as received.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: BTreeMap<String, String>,
    /// (trace id, span id) of each link.
    links: Vec<(String, String)>,
    error: bool,
    start: u64,
}

type Received = Arc<Mutex<Vec<Got>>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => s.clone(),
                AnyValue::IntValue(i) => i.to_string(),
                AnyValue::BoolValue(b) => b.to_string(),
                other => format!("{other:?}"),
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

/// `POST /v1/traces` of OTLP/HTTP with protobuf bodies.
async fn receive(received: Received, body: Bytes) -> impl axum::response::IntoResponse {
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(request) => request,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                e.to_string().into_bytes(),
            );
        }
    };
    let mut spans = received.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = text(
            &resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default(),
        );
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            spans.push(Got {
                service: service.clone(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent: hex(&span.parent_span_id),
                attributes: text(&span.attributes),
                links: span
                    .links
                    .iter()
                    .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                    .collect(),
                // STATUS_CODE_ERROR
                error: span.status.is_some_and(|s| s.code == 2),
                start: span.start_time_unix_nano,
            });
        }
    }
    (
        axum::http::StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

/// Starts the receiver on a free loopback port, on a thread of its own.
fn start_receiver() -> (Received, u16) {
    let received: Received = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let state = received.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/traces",
                post(move |body: Bytes| receive(state.clone(), body)),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (received, port)
}

/// Creates a task through the API with a `traceparent`; returns its id.
fn create(port: u16, traceparent: &str, body: &str) -> JobId {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /v2/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\ntraceparent: {traceparent}\r\ntracestate: tether=test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    answer
        .split("\"id\":\"")
        .nth(1)
        .and_then(|s| s.get(..36))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no task id in {answer}"))
}

/// The received spans as an indented tree, children in start order; links shown.
fn tree(spans: &[Got]) -> String {
    fn walk(spans: &[Got], parent: &Got, depth: usize, out: &mut String) {
        let mut children: Vec<&Got> = spans
            .iter()
            .filter(|s| s.parent == parent.span_id && s.trace_id == parent.trace_id)
            .collect();
        children.sort_by_key(|s| s.start);
        for child in children {
            line(child, depth, out);
            walk(spans, child, depth + 1, out);
        }
    }
    fn line(s: &Got, depth: usize, out: &mut String) {
        let attrs: Vec<String> = s
            .attributes
            .iter()
            .filter(|(k, _)| k.starts_with("tether."))
            .map(|(k, v)| format!("{}={v}", k.trim_start_matches("tether.")))
            .collect();
        let links: String = s
            .links
            .iter()
            .map(|(_, span)| format!(" link→{span}"))
            .collect();
        out.push_str(&format!(
            "{}{} [{}] span={}{}{} {}\n",
            "  ".repeat(depth),
            s.name,
            s.service,
            s.span_id,
            if s.error { " ERROR" } else { "" },
            links,
            attrs.join(" ")
        ));
    }
    let mut out = String::new();
    let mut traces: Vec<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    traces.sort();
    traces.dedup();
    for trace in traces {
        out.push_str(&format!("trace {trace}\n"));
        let ids: Vec<&str> = spans
            .iter()
            .filter(|s| s.trace_id == trace)
            .map(|s| s.span_id.as_str())
            .collect();
        // Roots here: spans whose parent is remote (the caller's) or absent.
        let mut roots: Vec<&Got> = spans
            .iter()
            .filter(|s| s.trace_id == trace && !ids.contains(&s.parent.as_str()))
            .collect();
        roots.sort_by_key(|s| s.start);
        for root in roots {
            out.push_str(&format!("  (parent {})\n", root.parent));
            line(root, 1, &mut out);
            walk(spans, root, 2, &mut out);
        }
    }
    out
}

fn one<'a>(spans: &'a [Got], what: &str, pred: impl Fn(&Got) -> bool) -> &'a Got {
    let found: Vec<&Got> = spans.iter().filter(|s| pred(s)).collect();
    assert_eq!(found.len(), 1, "{what}: {found:#?}");
    found[0]
}

fn traced_end_to_end(topology: Topology) {
    let redis = TestRedis::start(topology);
    let (received, receiver_port) = start_receiver();
    let endpoint = format!("http://127.0.0.1:{receiver_port}");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let api = ApiProcess::start_with_env(&redis, &["--insecure-no-auth"], &env);
    let _worker = WorkerProcess::start_with_env(
        &redis,
        &[
            "--concurrency",
            "4",
            "--queue",
            "default",
            "--queue",
            "kids",
        ],
        &env,
    );

    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{caller_trace}-{caller_span}-01");
    // Two steps: handle, then check_complete polled until 3 MB are imported.
    let import = create(
        api.port,
        &traceparent,
        r#"{"type": "import", "input": {"size_mb": 3, "chunk_ms": 10}}"#,
    );
    // Fails its first attempt, succeeds on the retry.
    let retried_trace = "0af7651916cd43dd8448eb211c80319c";
    let flaky = create(
        api.port,
        &format!("00-{retried_trace}-b7ad6b7169203331-01"),
        r#"{"type": "flaky", "input": {"fail_times": 1}, "max_attempts": 3}"#,
    );
    // A parent spawning two children (in another queue).
    let tree_trace = "5c3e5a1d2b7f4e6a9d8c7b6a5f4e3d2c";
    let fanout = create(
        api.port,
        &format!("00-{tree_trace}-1a2b3c4d5e6f7081-01"),
        r#"{"type": "fanout", "input": {"children": 2, "child_ms": 10, "child_queue": "kids"}}"#,
    );

    // An attempt of one of the parent's children (the only `sleep` jobs).
    let child_attempt = |s: &Got| {
        s.name == "attempt"
            && s.attributes
                .get("tether.job.type")
                .is_some_and(|t| t == "sleep")
    };
    let outcome_of = |id: JobId, attempt: &'static str| {
        let id = id.to_string();
        move |s: &Got| {
            s.name == "outcome"
                && s.attributes.get("tether.job.id") == Some(&id)
                && s.attributes.get("tether.job.attempt").map(String::as_str) == Some(attempt)
        }
    };
    let spans = eventually_blocking(Duration::from_secs(30), "the spans of both jobs", || {
        let spans = received.lock().unwrap().clone();
        let children = spans.iter().filter(|s| child_attempt(s)).count();
        let done = spans.iter().any(outcome_of(import, "1"))
            && spans.iter().any(outcome_of(flaky, "2"))
            && spans.iter().any(outcome_of(fanout, "1"))
            && children >= 2
            && spans.iter().filter(|s| s.name == "attempt").count() >= 3;
        let count = spans.len();
        done.then_some(spans)
            .ok_or_else(|| format!("{count} spans so far"))
    });
    println!("received trace tree ({topology:?}):\n{}", tree(&spans));

    // The import: API create → attempt → handle, check_complete polls, outcome.
    let in_trace = |trace: &'static str| move |s: &Got| s.trace_id == trace;
    assert!(
        spans
            .iter()
            .filter(|s| s.attributes.get("tether.job.id") == Some(&import.to_string()))
            .all(in_trace(caller_trace)),
        "every span of the import is in the caller's trace"
    );
    let create_span = one(&spans, "the import's create", |s| {
        s.name == "POST /v2/tasks" && s.trace_id == caller_trace
    });
    assert_eq!(create_span.service, "tether-api");
    assert_eq!(
        create_span.parent, caller_span,
        "the create continues the caller's span"
    );
    assert_eq!(
        create_span.attributes.get("tether.job.id"),
        Some(&import.to_string())
    );
    let attempt = one(&spans, "the import's attempt", |s| {
        s.name == "attempt" && s.trace_id == caller_trace
    });
    assert_eq!(attempt.service, "tether-worker");
    assert_eq!(
        attempt.parent, create_span.span_id,
        "the attempt is a child of the create"
    );
    assert_eq!(attempt.span_id, hex(&attempt_span_id(import, 1)));
    for (key, value) in [
        ("tether.queue", "default"),
        ("tether.job.type", "import"),
        ("tether.job.attempt", "1"),
        ("tether.job.outcome", "success"),
    ] {
        assert_eq!(
            attempt.attributes.get(key).map(String::as_str),
            Some(value),
            "{key}"
        );
    }
    let children: Vec<&Got> = spans
        .iter()
        .filter(|s| s.parent == attempt.span_id)
        .collect();
    let named = |name: &str| children.iter().filter(|s| s.name == name).count();
    assert_eq!(named("handle"), 1, "{children:#?}");
    assert!(
        named("check_complete") >= 3,
        "one span per poll: {children:#?}"
    );
    assert_eq!(named("outcome"), 1, "{children:#?}");
    assert_eq!(
        children.len(),
        named("handle") + named("check_complete") + 1
    );

    // The retried job: two attempts in its caller's trace, the second linked to the first.
    let first = one(&spans, "the first attempt", |s| {
        s.name == "attempt"
            && s.attributes.get("tether.job.id") == Some(&flaky.to_string())
            && s.attributes.get("tether.job.attempt").map(String::as_str) == Some("1")
    });
    let second = one(&spans, "the second attempt", |s| {
        s.name == "attempt"
            && s.attributes.get("tether.job.id") == Some(&flaky.to_string())
            && s.attributes.get("tether.job.attempt").map(String::as_str) == Some("2")
    });
    let flaky_create = one(&spans, "the retried job's create", |s| {
        s.name == "POST /v2/tasks" && s.trace_id == retried_trace
    });
    for attempt in [first, second] {
        assert_eq!(attempt.trace_id, retried_trace);
        assert_eq!(attempt.parent, flaky_create.span_id);
    }
    assert!(first.error, "the failed attempt's status is an error");
    assert_eq!(first.attributes["tether.job.outcome"], "retrying");
    assert_eq!(second.attributes["tether.job.outcome"], "success");
    assert!(first.links.is_empty());
    assert_eq!(
        second.links,
        vec![(retried_trace.to_owned(), first.span_id.clone())],
        "the retry links to the attempt before it"
    );
    let failed_handle = one(&spans, "the failed handle", |s| {
        s.name == "handle" && s.parent == first.span_id
    });
    assert!(failed_handle.error);

    // The tree: each child's attempt is in its parent's trace, a child of the parent's
    // step that spawned it.
    let parent_attempt = one(&spans, "the parent's attempt", |s| {
        s.name == "attempt" && s.attributes.get("tether.job.id") == Some(&fanout.to_string())
    });
    assert_eq!(parent_attempt.trace_id, tree_trace);
    let spawning = one(&spans, "the parent's handle", |s| {
        s.name == "handle" && s.parent == parent_attempt.span_id
    });
    let children: Vec<&Got> = spans.iter().filter(|s| child_attempt(s)).collect();
    assert_eq!(children.len(), 2, "{children:#?}");
    for child in children {
        assert_eq!(child.trace_id, tree_trace, "{child:#?}");
        assert_eq!(child.parent, spawning.span_id, "{child:#?}");
        assert_eq!(child.attributes["tether.queue"], "kids");
    }
}

#[test]
fn a_trace_runs_from_the_api_create_through_every_attempt() {
    traced_end_to_end(Topology::Single);
}

#[test]
#[ignore = "full tier: starts a three-master cluster"]
fn a_trace_runs_from_the_api_create_through_every_attempt_on_a_cluster() {
    traced_end_to_end(Topology::Cluster);
}

/// The library's enqueue stores the context of the span current on the caller's task
/// (and nothing when there is none), for one job and for a batch.
async fn library_enqueue_stores_the_current_context(topology: Topology) {
    use opentelemetry::trace::{
        FutureExt, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    let redis = TestRedis::start(topology);
    let producer = tether_producer::Producer::connect(&redis.url())
        .await
        .unwrap();
    let config = tether_store::StoreConfig::new(redis.url());
    let store = tether_store::Store::connect(config).await.unwrap();
    let caller = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("vendor", "v1")]).unwrap(),
    );
    let cx = opentelemetry::Context::new().with_remote_span_context(caller);
    let spec = || tether_model::JobSpec::new("noop").queue("traced");
    let traced = producer
        .enqueue(spec())
        .with_context(cx.clone())
        .await
        .unwrap();
    let batch = producer
        .enqueue_many(vec![spec(), spec()])
        .with_context(cx)
        .await
        .unwrap();
    let untraced = producer.enqueue(spec()).await.unwrap();
    let stored = |id| {
        let store = store.clone();
        async move {
            store
                .trace_context("traced", id)
                .await
                .unwrap()
                .map(|cx| cx.encode().to_owned())
        }
    };
    let expected = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 vendor=v1";
    for id in std::iter::once(traced).chain(batch) {
        assert_eq!(stored(id).await.as_deref(), Some(expected));
    }
    assert_eq!(stored(untraced).await, None, "no span, no field");
}

#[tokio::test]
async fn the_library_enqueue_stores_the_current_context() {
    library_enqueue_stores_the_current_context(Topology::Single).await;
}

#[tokio::test]
#[ignore = "full tier: starts a three-master cluster"]
async fn the_library_enqueue_stores_the_current_context_on_a_cluster() {
    library_enqueue_stores_the_current_context(Topology::Cluster).await;
}

/// With no OTLP endpoint set, nothing is exported and no trace context is stored.
#[test]
fn without_an_endpoint_nothing_is_traced() {
    let redis = TestRedis::start(Topology::Single);
    let (received, receiver_port) = start_receiver();
    // Only the schedule delay: no endpoint, so the receiver must hear nothing.
    let env = [("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let api = ApiProcess::start_with_env(&redis, &["--insecure-no-auth"], &env);
    let id = create(
        api.port,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        r#"{"type": "noop"}"#,
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stored: Option<String> = runtime.block_on(async {
        let config = tether_store::StoreConfig::new(redis.url());
        let store = tether_store::Store::connect(config).await.unwrap();
        store
            .trace_context("default", id)
            .await
            .unwrap()
            .map(|cx| cx.encode().to_owned())
    });
    assert_eq!(
        stored, None,
        "no trace context stored while nothing is exported"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(received.lock().unwrap().is_empty());
    let _ = receiver_port;
}
