//! The server span of a task's creation: it continues the caller's `traceparent` and
//! its context is stored with the job, so the worker's spans join the same trace.

use axum::http::HeaderMap;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, global};
use tether_model::TraceContext;
use tether_model::trace::otel::exporting;

/// Opens `POST /v2/tasks`'s span, a child of the request's valid `traceparent` (else a
/// root); `None` while no span is exported.
pub(crate) fn create_span(headers: &HeaderMap) -> Option<Context> {
    if !exporting() {
        return None;
    }
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let parent = header("traceparent")
        .and_then(|tp| TraceContext::parse(tp, header("tracestate")))
        .map(|cx| Context::new().with_remote_span_context(cx.span_context()))
        .unwrap_or_default();
    let tracer = global::tracer("tether-api");
    let span = tracer
        .span_builder("POST /v2/tasks")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("http.route", "/v2/tasks"),
        ])
        .start_with_context(&tracer, &parent);
    Some(parent.with_span(span))
}

/// The context to store with the job: the server span's.
pub(crate) fn job_context(span: &Context) -> Option<TraceContext> {
    TraceContext::of_span(span.span().span_context())
}

/// Records the enqueue's result on the span (which ends when its context is dropped).
pub(crate) fn created<T, E: std::fmt::Display>(
    span: &Context,
    result: &Result<T, E>,
    id: impl Fn(&T) -> String,
    queue: &str,
    job_type: &str,
) {
    let span = span.span();
    span.set_attribute(KeyValue::new("tether.queue", queue.to_owned()));
    span.set_attribute(KeyValue::new("tether.job.type", job_type.to_owned()));
    match result {
        Ok(job) => span.set_attribute(KeyValue::new("tether.job.id", id(job))),
        Err(e) => span.set_status(Status::error(e.to_string())),
    }
}
