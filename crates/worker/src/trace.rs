//! The spans of an attempt (with the `otel` feature, while spans are exported): an
//! `attempt` span, a child of the trace context the job was enqueued with, and inside
//! it a `handle` span, one `check_complete` span per poll and an `outcome` span. Every
//! span carries the queue, the job type, the attempt and the job id as attributes.
//! Without the feature, or while nothing is exported, every call here does nothing.

#[cfg(feature = "otel")]
pub use ids::AttemptIds;

/// One attempt's trace (cheap to clone): its span's context and attributes.
#[derive(Clone, Default)]
pub(crate) struct AttemptTrace {
    #[cfg(feature = "otel")]
    cx: Option<(
        opentelemetry::Context,
        std::sync::Arc<[opentelemetry::KeyValue]>,
    )>,
}

impl std::fmt::Debug for AttemptTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttemptTrace")
    }
}

/// A span inside an attempt; it ends when dropped.
#[derive(Default)]
pub(crate) struct StepSpan {
    #[cfg(feature = "otel")]
    cx: Option<opentelemetry::Context>,
}

#[cfg(not(feature = "otel"))]
impl AttemptTrace {
    pub(crate) async fn start(_: &tether_store::Store, _: &tether_store::Claimed) -> Self {
        AttemptTrace {}
    }
    pub(crate) fn step(&self, _: &'static str) -> StepSpan {
        StepSpan {}
    }
    pub(crate) fn finish(&self, _: &'static str, _: Option<&str>) {}
    pub(crate) fn is_on(&self) -> bool {
        false
    }
}

#[cfg(not(feature = "otel"))]
impl StepSpan {
    pub(crate) fn run<F: std::future::Future>(&self, f: F) -> F {
        f
    }
    pub(crate) fn fail(&self, _: &str) {}
    pub(crate) fn outcome(&self, _: &'static str) {}
}

// Callers end a step by dropping it, with or without the feature.
#[cfg(not(feature = "otel"))]
impl Drop for StepSpan {
    fn drop(&mut self) {}
}

#[cfg(feature = "otel")]
mod on {
    use std::future::Future;

    use futures::future::Either;
    use opentelemetry::trace::{
        FutureExt, Span, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags,
        TraceId, TraceState, Tracer,
    };
    use opentelemetry::{Context, KeyValue, global};
    use tether_model::trace::otel::exporting;
    use tether_model::trace::{attempt_span_id, job_trace_id};
    use tether_store::{Claimed, Store};

    use super::{AttemptTrace, StepSpan, ids};

    const TRACER: &str = "tether-worker";

    impl AttemptTrace {
        /// Opens the attempt's span: a child of the job's stored trace context (read
        /// now: claims do not carry it), else a root in a trace whose id is the job
        /// id; its span id is derived from the job id and the attempt, so attempt `n`
        /// links to attempt `n - 1`.
        pub(crate) async fn start(store: &Store, claimed: &Claimed) -> Self {
            if !exporting() {
                return AttemptTrace { cx: None };
            }
            let (queue, id, attempt) = (&claimed.lease.queue, claimed.lease.id, claimed.attempts);
            let stored = match store.trace_context(queue, id).await {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::debug!(job = %id, error = %e, "cannot read the job's trace context");
                    None
                }
            };
            let (parent, trace_id) = match stored {
                Some(cx) => {
                    let sc = cx.span_context();
                    let trace_id = sc.trace_id();
                    (Context::new().with_remote_span_context(sc), trace_id)
                }
                None => (Context::new(), TraceId::from_bytes(job_trace_id(id))),
            };
            let tracer = global::tracer(TRACER);
            let wanted = SpanId::from_bytes(attempt_span_id(id, attempt));
            let attributes = attributes(claimed);
            let builder = tracer
                .span_builder("attempt")
                .with_kind(SpanKind::Consumer)
                .with_attributes(attributes.clone());
            let mut span = ids::chosen(trace_id, wanted, || {
                tracer.build_with_context(builder, &parent)
            });
            // Only with Tether's id generator is the previous attempt's span id known.
            if attempt > 1 && span.span_context().span_id() == wanted {
                let previous = SpanContext::new(
                    trace_id,
                    SpanId::from_bytes(attempt_span_id(id, attempt - 1)),
                    TraceFlags::SAMPLED,
                    false,
                    TraceState::default(),
                );
                span.add_link(
                    previous,
                    vec![KeyValue::new("tether.job.attempt", i64::from(attempt - 1))],
                );
            }
            AttemptTrace {
                cx: Some((parent.with_span(span), attributes.into())),
            }
        }

        /// A child span of the attempt (`handle`, `check_complete`, `outcome`).
        pub(crate) fn step(&self, name: &'static str) -> StepSpan {
            let Some((cx, attributes)) = &self.cx else {
                return StepSpan { cx: None };
            };
            let tracer = global::tracer(TRACER);
            // The attempt's attributes, repeated so that each span stands alone.
            let span = tracer
                .span_builder(name)
                .with_kind(SpanKind::Internal)
                .with_attributes(attributes.to_vec())
                .start_with_context(&tracer, cx);
            StepSpan {
                cx: Some(cx.with_span(span)),
            }
        }

        pub(crate) fn is_on(&self) -> bool {
            self.cx.is_some()
        }

        /// Ends the attempt's span with how it ended, and an error status with `error`.
        pub(crate) fn finish(&self, outcome: &'static str, error: Option<&str>) {
            if let Some((cx, _)) = &self.cx {
                let span = cx.span();
                span.set_attribute(KeyValue::new("tether.job.outcome", outcome));
                if let Some(message) = error {
                    span.set_status(Status::error(message.to_owned()));
                }
                span.end();
            }
        }
    }

    impl StepSpan {
        /// Runs `f` with this span current, so spans the handler opens, and jobs it
        /// enqueues, are its children.
        /// Untraced, `f` runs as it is (a context attached at every poll costs).
        pub(crate) fn run<F: Future>(&self, f: F) -> impl Future<Output = F::Output> {
            match &self.cx {
                Some(cx) => Either::Left(f.with_context(cx.clone())),
                None => Either::Right(f),
            }
        }

        pub(crate) fn fail(&self, message: &str) {
            if let Some(cx) = &self.cx {
                cx.span().set_status(Status::error(message.to_owned()));
            }
        }

        pub(crate) fn outcome(&self, outcome: &'static str) {
            if let Some(cx) = &self.cx {
                cx.span()
                    .set_attribute(KeyValue::new("tether.job.outcome", outcome));
            }
        }
    }

    impl Drop for StepSpan {
        fn drop(&mut self) {
            if let Some(cx) = &self.cx {
                cx.span().end();
            }
        }
    }

    fn attributes(claimed: &Claimed) -> Vec<KeyValue> {
        vec![
            KeyValue::new("tether.queue", claimed.lease.queue.clone()),
            KeyValue::new("tether.job.type", claimed.job_type.clone()),
            KeyValue::new("tether.job.attempt", i64::from(claimed.attempts)),
            KeyValue::new("tether.job.id", claimed.lease.id.to_string()),
        ]
    }
}

#[cfg(feature = "otel")]
mod ids {
    use std::cell::Cell;

    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

    thread_local! {
        static CHOSEN: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
    }

    /// The id generator of a tracer provider that Tether's workers export to: random
    /// ids, except for an attempt's span, whose span id (and, for a job enqueued with
    /// no trace context, trace id) the worker derives from the job id and the attempt,
    /// so that a retry's span links to the previous attempt's with nothing stored.
    /// Without it, attempts are traced with no link between them.
    ///
    /// ```
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
    ///     .with_id_generator(tether_worker::AttemptIds::default())
    ///     .build();
    /// # drop(provider);
    /// ```
    #[derive(Debug, Default)]
    pub struct AttemptIds(RandomIdGenerator);

    impl IdGenerator for AttemptIds {
        fn new_trace_id(&self) -> TraceId {
            match CHOSEN.with(Cell::get) {
                Some((trace_id, _)) => trace_id,
                None => self.0.new_trace_id(),
            }
        }

        fn new_span_id(&self) -> SpanId {
            match CHOSEN.with(Cell::get) {
                Some((_, span_id)) => span_id,
                None => self.0.new_span_id(),
            }
        }
    }

    /// Builds a span (synchronously, on this thread) with the ids given, when the
    /// provider's generator is [`AttemptIds`].
    pub(super) fn chosen<T>(trace_id: TraceId, span_id: SpanId, build: impl FnOnce() -> T) -> T {
        CHOSEN.set(Some((trace_id, span_id)));
        let built = build();
        CHOSEN.set(None);
        built
    }
}
