//! Bounded sets of metric label values.
//!
//! Every distinct label value is a time series kept for the life of a process, so
//! a value a client can choose (a queue name, a job type, an HTTP method) must
//! not become a label unchecked: a few hundred made-up names would grow
//! `/metrics` and the monitoring system without bound. A [`LabelSet`] admits the
//! values it was configured with, plus the first `capacity` other well-formed
//! values it sees, and maps everything else to [`OTHER`].
//!
//! ```
//! use tether_model::labels::{LabelSet, OTHER};
//! let queues = LabelSet::new(["default"], 2);
//! assert_eq!(queues.label("default"), "default");
//! assert_eq!(queues.label("a"), "a");
//! assert_eq!(queues.label("b"), "b");
//! assert_eq!(queues.label("c"), OTHER); // capacity reached
//! assert_eq!(queues.label("a"), "a"); // admitted values stay admitted
//! assert_eq!(LabelSet::http_methods().label("BREW"), OTHER);
//! ```

use std::collections::HashSet;
use std::sync::Mutex;

/// The label value standing for every value outside the set.
pub const OTHER: &str = "other";

/// Longest value admitted as a label (queue names are at most 64 bytes).
pub const MAX_LABEL_LEN: usize = 64;

/// A bounded set of label values: the configured ones, plus up to `capacity`
/// others in the order they are first seen. Thread-safe; share it by reference
/// or in an `Arc`.
#[derive(Debug)]
pub struct LabelSet {
    known: HashSet<String>,
    seen: Mutex<HashSet<String>>,
    capacity: usize,
}

impl LabelSet {
    /// Admits `known` always, and at most `capacity` other values.
    pub fn new<I, S>(known: I, capacity: usize) -> LabelSet
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        LabelSet {
            known: known.into_iter().map(Into::into).collect(),
            seen: Mutex::new(HashSet::new()),
            capacity,
        }
    }

    /// Exactly `known`; everything else is [`OTHER`].
    pub fn fixed<I, S>(known: I) -> LabelSet
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(known, 0)
    }

    /// The standard HTTP methods.
    pub fn http_methods() -> LabelSet {
        Self::fixed([
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
        ])
    }

    /// `value` when it is in the set or can still join it, else [`OTHER`].
    /// Values that are empty, longer than [`MAX_LABEL_LEN`] or hold anything but
    /// ASCII letters, digits and `_ . - :` never join.
    pub fn label<'a>(&self, value: &'a str) -> &'a str {
        if self.known.contains(value) {
            return value;
        }
        if self.capacity == 0 || !well_formed(value) {
            return OTHER;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(value) {
            return value;
        }
        if seen.len() < self.capacity {
            seen.insert(value.to_owned());
            return value;
        }
        OTHER
    }

    /// How many values this set can ever yield, [`OTHER`] included.
    pub fn bound(&self) -> usize {
        self.known.len() + self.capacity + 1
    }
}

fn well_formed(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LABEL_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_beyond_capacity_or_malformed_are_other() {
        let set = LabelSet::new(["q"], 3);
        assert_eq!(set.label("q"), "q");
        for v in ["", "a b", "x\"y", &"z".repeat(65)] {
            assert_eq!(set.label(v), OTHER, "{v:?}");
        }
        let labels: HashSet<String> = (0..100)
            .map(|i| set.label(&format!("n{i}")).to_owned())
            .collect();
        assert_eq!(labels.len(), 4, "{labels:?}"); // n0, n1, n2, other
        assert!(labels.len() <= set.bound());
        assert_eq!(LabelSet::http_methods().label("GET"), "GET");
        assert_eq!(LabelSet::http_methods().label("get"), OTHER);
    }
}
