//! A queue's flow-control settings: limits, and whether it is paused.

use serde::{Deserialize, Serialize};

/// The most a limit may be set to (concurrency in jobs, rate in starts per second).
pub const MAX_LIMIT: u32 = 1_000_000;

/// A queue's flow control, stored in Redis and enforced by every claim.
///
/// `None` is no limit. Rates are starts per sliding second: no more than `rate`
/// claims of the queue's jobs in any 1,000 ms (likewise `group_rate` per group).
///
/// ```
/// use tether_model::QueueSettings;
/// let s = QueueSettings { concurrency: Some(10), rate: Some(50), ..Default::default() };
/// s.validate()?;
/// assert!(s.any_limit());
/// # Ok::<(), tether_model::SettingsError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSettings {
    /// Jobs of the queue running at once, cluster-wide.
    pub concurrency: Option<u32>,
    /// Starts per second, cluster-wide.
    pub rate: Option<u32>,
    /// Jobs of one group running at once.
    pub group_concurrency: Option<u32>,
    /// Starts per second of one group.
    pub group_rate: Option<u32>,
    /// Nothing of the queue starts while it is paused.
    pub paused: bool,
    /// Job types paused in this queue (their jobs wait; the others run).
    pub paused_types: Vec<String>,
}

/// A limit that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be 1-{MAX_LIMIT} (or none)")]
pub struct SettingsError {
    pub field: &'static str,
}

impl QueueSettings {
    /// Checks every limit.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (field, value) in self.limits() {
            if value.is_some_and(|v| v == 0 || v > MAX_LIMIT) {
                return Err(SettingsError { field });
            }
        }
        Ok(())
    }

    /// The four limits by their names (the names of the CLI, the API and the JSON).
    pub fn limits(&self) -> [(&'static str, Option<u32>); 4] {
        [
            ("concurrency", self.concurrency),
            ("rate", self.rate),
            ("group_concurrency", self.group_concurrency),
            ("group_rate", self.group_rate),
        ]
    }

    /// Whether any limit is set.
    pub fn any_limit(&self) -> bool {
        self.limits().iter().any(|(_, v)| v.is_some())
    }
}

/// A change to some of a queue's limits: `Some(None)` clears one, `None` leaves it.
///
/// ```
/// use tether_model::{LimitsPatch, QueueSettings};
/// let mut s = QueueSettings { rate: Some(5), ..Default::default() };
/// LimitsPatch { concurrency: Some(Some(3)), rate: Some(None), ..Default::default() }.apply(&mut s);
/// assert_eq!((s.concurrency, s.rate), (Some(3), None));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsPatch {
    pub concurrency: Option<Option<u32>>,
    pub rate: Option<Option<u32>>,
    pub group_concurrency: Option<Option<u32>>,
    pub group_rate: Option<Option<u32>>,
}

impl LimitsPatch {
    /// Applies the change.
    pub fn apply(&self, settings: &mut QueueSettings) {
        for (patch, field) in [
            (self.concurrency, &mut settings.concurrency),
            (self.rate, &mut settings.rate),
            (self.group_concurrency, &mut settings.group_concurrency),
            (self.group_rate, &mut settings.group_rate),
        ] {
            if let Some(value) = patch {
                *field = value;
            }
        }
    }

    /// Checks every limit it sets.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut settings = QueueSettings::default();
        self.apply(&mut settings);
        settings.validate()
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == LimitsPatch::default()
    }
}

/// Reads a limit as people type it: a positive number, or `0` / `none` to clear it.
///
/// ```
/// use tether_model::parse_limit;
/// assert_eq!(parse_limit("25"), Ok(Some(25)));
/// assert_eq!(parse_limit("none"), Ok(None));
/// assert_eq!(parse_limit("0"), Ok(None));
/// assert!(parse_limit("-1").is_err());
/// ```
pub fn parse_limit(s: &str) -> Result<Option<u32>, String> {
    match s.trim() {
        "none" | "0" => Ok(None),
        n => match n.parse::<u32>() {
            Ok(v) if v <= MAX_LIMIT => Ok(Some(v)),
            _ => Err(format!(
                "{n:?} is not a limit: use 1-{MAX_LIMIT}, or 0 / none to clear it"
            )),
        },
    }
}
