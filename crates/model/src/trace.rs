//! The W3C trace context a job carries from its enqueue to its worker
//! (<https://www.w3.org/TR/trace-context/>): a `traceparent` and an optional
//! `tracestate`, both checked and bounded before they are stored with the job.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::JobId;

/// The longest `tracestate` kept (the W3C limit a vendor must propagate is 512
/// characters); a longer one, or one that is not a list of `key=value` members, is
/// dropped and the `traceparent` alone kept, as the W3C recommendation says.
pub const MAX_TRACESTATE_LEN: usize = 512;

/// Length of a version-00 `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`.
const TRACEPARENT_LEN: usize = 55;

/// A checked W3C trace context. It can only be built from a valid `traceparent`
/// (version 00, lower-case hex, trace id and span id not all zero).
///
/// ```
/// use tether_model::TraceContext;
/// let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let cx = TraceContext::parse(tp, Some("congo=t61rcWkgMzE")).unwrap();
/// assert_eq!(cx.traceparent(), tp);
/// assert_eq!(cx.tracestate(), Some("congo=t61rcWkgMzE"));
/// assert_eq!(TraceContext::decode(&cx.encode()), Some(cx));
/// assert!(TraceContext::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None).is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceContext {
    // The `traceparent`, then (when there is one) a space and the `tracestate`: the
    // stored form, so storing it copies nothing.
    encoded: String,
}

impl TraceContext {
    /// Checks a `traceparent` header and an optional `tracestate`; `None` when the
    /// `traceparent` is not valid (an invalid `tracestate` is dropped).
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let traceparent = traceparent.trim();
        if !valid_traceparent(traceparent) {
            return None;
        }
        let mut encoded = String::with_capacity(TRACEPARENT_LEN + 1 + MAX_TRACESTATE_LEN);
        encoded.push_str(traceparent);
        if let Some(state) = tracestate.map(str::trim).filter(|s| valid_tracestate(s)) {
            encoded.push(' ');
            encoded.push_str(state);
        }
        Some(TraceContext { encoded })
    }

    /// A context from its parts (such as a span's), sampled or not.
    pub fn from_ids(trace_id: [u8; 16], span_id: [u8; 8], sampled: bool) -> Option<Self> {
        let traceparent = format!(
            "00-{}-{}-{:02x}",
            hex(&trace_id),
            hex(&span_id),
            u8::from(sampled)
        );
        TraceContext::parse(&traceparent, None)
    }

    /// The stored form (one job field): what [`decode`](Self::decode) reads back.
    pub fn encode(&self) -> &str {
        &self.encoded
    }

    /// Reads the stored form back, checking it again (it comes from Redis).
    pub fn decode(stored: &str) -> Option<Self> {
        match stored.split_once(' ') {
            Some((parent, state)) => TraceContext::parse(parent, Some(state)),
            None => TraceContext::parse(stored, None),
        }
    }

    pub fn traceparent(&self) -> &str {
        &self.encoded[..TRACEPARENT_LEN]
    }

    pub fn tracestate(&self) -> Option<&str> {
        self.encoded.get(TRACEPARENT_LEN + 1..)
    }

    pub fn trace_id(&self) -> [u8; 16] {
        let mut id = [0; 16];
        unhex(&self.encoded[3..35], &mut id);
        id
    }

    pub fn span_id(&self) -> [u8; 8] {
        let mut id = [0; 8];
        unhex(&self.encoded[36..52], &mut id);
        id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        let mut flags = [0; 1];
        unhex(&self.encoded[53..55], &mut flags);
        flags[0]
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TraceContext").field(&self.encoded).finish()
    }
}

impl Serialize for TraceContext {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encoded)
    }
}

impl<'de> Deserialize<'de> for TraceContext {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TraceContext::decode(&s).ok_or_else(|| serde::de::Error::custom("invalid trace context"))
    }
}

/// The span id of a job's attempt, derived from the job id and the attempt number, so
/// that attempt `n` can link to attempt `n - 1` with nothing stored between them.
///
/// ```
/// use tether_model::{JobId, trace::attempt_span_id};
/// let id = JobId::new();
/// assert_eq!(attempt_span_id(id, 2), attempt_span_id(id, 2));
/// assert_ne!(attempt_span_id(id, 1), attempt_span_id(id, 2));
/// ```
pub fn attempt_span_id(job: JobId, attempt: u32) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(job.to_string().as_bytes())
        .chain_update(attempt.to_be_bytes())
        .finalize();
    let mut id = [0; 8];
    id.copy_from_slice(&digest[..8]);
    if id == [0; 8] {
        id[7] = 1; // all zeros is the invalid span id
    }
    id
}

/// The trace id of a job enqueued with no trace context: its id (a UUID v7, never
/// zero), so that every attempt of the job lands in one trace.
pub fn job_trace_id(job: JobId) -> [u8; 16] {
    *job.as_uuid().as_bytes()
}

fn valid_traceparent(s: &str) -> bool {
    let b = s.as_bytes();
    let lower_hex = |r: std::ops::Range<usize>| {
        b[r].iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    let not_zero = |r: std::ops::Range<usize>| b[r].iter().any(|&c| c != b'0');
    b.len() == TRACEPARENT_LEN
        && s.starts_with("00-")
        && b[35] == b'-'
        && b[52] == b'-'
        && lower_hex(3..35)
        && lower_hex(36..52)
        && lower_hex(53..55)
        && not_zero(3..35)
        && not_zero(36..52)
}

/// A bounded list of `key=value` members of printable ASCII (empty members allowed).
fn valid_tracestate(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TRACESTATE_LEN
        && s.bytes().all(|c| (0x20..=0x7e).contains(&c))
        && s.split(',').map(str::trim).all(|member| {
            member.is_empty()
                || member
                    .split_once('=')
                    .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty() && !v.contains('='))
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes checked lower-case hex into `out`.
fn unhex(s: &str, out: &mut [u8]) {
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| {
            if c.is_ascii_digit() {
                c - b'0'
            } else {
                c - b'a' + 10
            }
        };
        out[i] = digit(pair[0]) << 4 | digit(pair[1]);
    }
}

/// OpenTelemetry's side: conversions and the switch that says whether spans are
/// exported at all.
#[cfg(feature = "otel")]
pub mod otel {
    use std::sync::atomic::{AtomicBool, Ordering};

    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

    use super::TraceContext;

    static EXPORTING: AtomicBool = AtomicBool::new(false);

    /// Says that a tracer provider exporting spans is installed (the `tether` binary
    /// does so when `OTEL_EXPORTER_OTLP_ENDPOINT` is set); until then the API and the
    /// worker create no span at all.
    pub fn set_exporting(on: bool) {
        EXPORTING.store(on, Ordering::Relaxed);
    }

    /// Whether spans are exported (see [`set_exporting`]).
    pub fn exporting() -> bool {
        EXPORTING.load(Ordering::Relaxed)
    }

    impl TraceContext {
        /// The context of the span current on this task, if it is valid.
        pub fn current() -> Option<Self> {
            // Borrowed, not cloned: every enqueue asks, traced or not.
            opentelemetry::Context::map_current(|cx| {
                cx.has_active_span()
                    .then(|| TraceContext::of_span(cx.span().span_context()))
                    .flatten()
            })
        }

        /// The context of a span, if it is valid (with its `tracestate`).
        pub fn of_span(sc: &SpanContext) -> Option<Self> {
            if !sc.is_valid() {
                return None;
            }
            let parent = TraceContext::from_ids(
                sc.trace_id().to_bytes(),
                sc.span_id().to_bytes(),
                sc.is_sampled(),
            )?;
            let state = sc.trace_state().header();
            TraceContext::parse(
                parent.traceparent(),
                Some(state.as_str()).filter(|s| !s.is_empty()),
            )
        }

        /// This context as a remote parent.
        pub fn span_context(&self) -> SpanContext {
            SpanContext::new(
                TraceId::from_bytes(self.trace_id()),
                SpanId::from_bytes(self.span_id()),
                TraceFlags::new(self.flags()),
                true,
                self.tracestate()
                    .and_then(|s| s.parse::<TraceState>().ok())
                    .unwrap_or_default(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn only_a_valid_traceparent_is_kept() {
        let cx = TraceContext::parse(TP, None).unwrap();
        assert_eq!(cx.trace_id()[0], 0x4b);
        assert_eq!(cx.span_id()[7], 0xb7);
        assert_eq!(cx.flags(), 1);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\u{e9}",
        ] {
            assert_eq!(TraceContext::parse(bad, None), None, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_or_oversized_tracestate_is_dropped() {
        let long = format!("k={}", "v".repeat(MAX_TRACESTATE_LEN));
        for bad in ["novalue", "a=b\u{7}c", "=x", long.as_str(), "a=b=c"] {
            let cx = TraceContext::parse(TP, Some(bad)).unwrap();
            assert_eq!(cx.tracestate(), None, "{bad:?}");
            assert_eq!(cx.encode(), TP);
        }
        let cx = TraceContext::parse(TP, Some("a=1, b=two words")).unwrap();
        assert_eq!(cx.tracestate(), Some("a=1, b=two words"));
        assert_eq!(TraceContext::decode(cx.encode()), Some(cx.clone()));
        let json = serde_json::to_string(&cx).unwrap();
        assert_eq!(serde_json::from_str::<TraceContext>(&json).unwrap(), cx);
        assert!(serde_json::from_str::<TraceContext>("\"00-xyz\"").is_err());
    }

    #[test]
    fn ids_round_trip() {
        let cx = TraceContext::from_ids([7; 16], [9; 8], false).unwrap();
        assert_eq!(
            (cx.trace_id(), cx.span_id(), cx.flags()),
            ([7; 16], [9; 8], 0)
        );
        assert_eq!(TraceContext::from_ids([0; 16], [9; 8], true), None);
    }
}
