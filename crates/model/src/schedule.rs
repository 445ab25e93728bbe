//! Schedules: a job template fired on a cron pattern or at a fixed interval.
//!
//! Everything here is pure calculation; the store keeps schedules and the worker
//! runtime fires them. A firing's job id is derived from (owner, schedule, fire
//! time) by [`firing_id`], so workers racing to fire the same time enqueue one job.
//!
//! Time zones (`tz`, an IANA name, default UTC): cron patterns are matched on the
//! zone's wall clock. A wall-clock time that does not exist (the hour skipped when
//! DST starts) is skipped; one that exists twice (the hour repeated when DST ends)
//! fires once, at its first occurrence.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use tether_model::schedule::Trigger;
//! let every_minute = Trigger::cron("0 * * * * *", "Europe/Paris").unwrap();
//! let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 30).unwrap();
//! let anchor = t;
//! assert_eq!(
//!     every_minute.next_after(t, anchor),
//!     Some(Utc.with_ymd_and_hms(2026, 1, 1, 12, 1, 0).unwrap())
//! );
//! ```

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{JobId, JobSpec, SpecError};

/// Shortest interval of an `every` schedule.
pub const MIN_EVERY: Duration = Duration::from_secs(1);
/// Longest interval of an `every` schedule, and widest catch-up window.
pub const MAX_SPAN: Duration = Duration::from_secs(366 * 24 * 3600);
/// Firings due less than this long ago are late, not missed: they fire whatever the
/// catch-up policy (a worker that took over a stalled one's firing, a brief outage).
pub const LATE_GRACE: Duration = Duration::from_secs(10);
/// Most firings one pass over a schedule enqueues.
pub const MAX_FIRINGS_PER_PASS: usize = 1000;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A cron pattern (5 fields, or 6 with seconds first) on the wall clock of `tz`.
    Cron { cron: String, tz: String },
    /// Every `every`, counted from the schedule's creation.
    Every {
        #[serde(with = "millis")]
        every: Duration,
    },
}

/// What a firing does while the previous firing's job is not final.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Do not fire (the firing is counted as skipped).
    #[default]
    Skip,
    /// Fire anyway.
    Allow,
    /// Cancel the previous job, then fire.
    CancelPrevious,
}

/// Which missed firings (due more than [`LATE_GRACE`] ago, typically because every
/// worker was down) are fired when the schedule is next looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// None of them.
    None,
    /// The most recent one only.
    #[default]
    Last,
    /// Each one due within this window, once.
    Window(#[serde(with = "millis")] Duration),
}

/// What a producer asks for: a named job template and when to fire it.
///
/// ```
/// use std::time::Duration;
/// use tether_model::JobSpec;
/// use tether_model::schedule::{ScheduleSpec, Trigger};
/// let nightly = ScheduleSpec::new(
///     "nightly-report",
///     JobSpec::new("report").queue("reports"),
///     Trigger::cron("0 3 * * *", "America/New_York")?,
/// );
/// nightly.validate()?;
/// let ticker = ScheduleSpec::new("tick", JobSpec::new("noop"), Trigger::every(Duration::from_secs(1))?);
/// # Ok::<(), tether_model::SpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Unique per owner: `[A-Za-z0-9_.-]{1,64}`.
    pub name: String,
    /// The job each firing enqueues; its `owner` is the schedule's owner.
    pub job: JobSpec,
    pub trigger: Trigger,
    #[serde(default)]
    pub overlap: Overlap,
    #[serde(default)]
    pub catch_up: CatchUp,
}

impl ScheduleSpec {
    pub fn new(name: impl Into<String>, job: JobSpec, trigger: Trigger) -> Self {
        ScheduleSpec {
            name: name.into(),
            job,
            trigger,
            overlap: Overlap::default(),
            catch_up: CatchUp::default(),
        }
    }

    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    pub fn catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// Checks the name, the job template and the trigger.
    pub fn validate(&self) -> Result<(), SpecError> {
        validate_schedule_name(&self.name)?;
        let mut job = self.job.clone();
        // Firings choose their own run time and identity.
        if job.run_at.is_some() || job.delay.is_some() || job.idempotency_key.is_some() {
            return Err(SpecError::Schedule(
                "a schedule's job cannot have run_at, delay or an idempotency key".into(),
            ));
        }
        job.idempotency_key = None;
        job.validate()?;
        self.trigger.validate()?;
        if let CatchUp::Window(w) = self.catch_up
            && (w.is_zero() || w > MAX_SPAN)
        {
            return Err(SpecError::Schedule(format!(
                "catch-up window must be above 0 and at most {} days",
                MAX_SPAN.as_secs() / 86400
            )));
        }
        Ok(())
    }
}

/// Checks a schedule name: `[A-Za-z0-9_.-]{1,64}`, like a queue name.
pub fn validate_schedule_name(name: &str) -> Result<(), SpecError> {
    crate::validate_queue_name(name).map_err(|_| SpecError::ScheduleName(name.to_owned()))
}

impl Trigger {
    /// A cron trigger; `tz` is an IANA zone name (`UTC` when empty).
    pub fn cron(pattern: impl Into<String>, tz: impl Into<String>) -> Result<Trigger, SpecError> {
        let mut tz = tz.into();
        if tz.is_empty() {
            tz = "UTC".into();
        }
        let trigger = Trigger::Cron {
            cron: pattern.into(),
            tz,
        };
        trigger.validate()?;
        Ok(trigger)
    }

    /// An interval trigger, [`MIN_EVERY`] to [`MAX_SPAN`].
    pub fn every(every: Duration) -> Result<Trigger, SpecError> {
        let trigger = Trigger::Every { every };
        trigger.validate()?;
        Ok(trigger)
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        match self {
            Trigger::Cron { cron, tz } => {
                if cron.len() > 256 {
                    return Err(SpecError::TooLong {
                        field: "cron",
                        max: 256,
                    });
                }
                parse_cron(cron)?;
                parse_tz(tz)?;
                Ok(())
            }
            Trigger::Every { every } => {
                if *every < MIN_EVERY || *every > MAX_SPAN {
                    Err(SpecError::Schedule(format!(
                        "every must be 1s to {} days",
                        MAX_SPAN.as_secs() / 86400
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The first fire time strictly after `t`. `anchor` is where an interval starts
    /// counting (the schedule's creation). `None` when the pattern never fires again.
    pub fn next_after(&self, t: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Trigger::Every { every } => {
                let step = every.as_millis() as i64;
                let since = (t - anchor).num_milliseconds();
                let k = if since < 0 { 0 } else { since / step + 1 };
                Some(anchor + chrono::Duration::milliseconds(k * step))
            }
            Trigger::Cron { cron, tz } => {
                let (cron, tz) = (parse_cron(cron).ok()?, parse_tz(tz).ok()?);
                // Start two hours of wall clock early: around a DST change the wall clock
                // of `t` can be ahead of occurrences that are still to come.
                let mut wall = t.with_timezone(&tz).naive_local() - chrono::Duration::hours(2);
                for _ in 0..10_000 {
                    wall = cron.find_next_occurrence(&wall, false).ok()?;
                    if let Some(at) = instant(&tz, wall)
                        && at > t
                    {
                        return Some(at);
                    }
                }
                None
            }
        }
    }

    /// The last fire time at or before `t`, if any since `anchor` (intervals) or ever.
    pub fn last_at_or_before(
        &self,
        t: DateTime<Utc>,
        anchor: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Trigger::Every { every } => {
                let step = every.as_millis() as i64;
                let since = (t - anchor).num_milliseconds();
                (since >= step)
                    .then(|| anchor + chrono::Duration::milliseconds(since / step * step))
            }
            Trigger::Cron { cron, tz } => {
                let (cron, tz) = (parse_cron(cron).ok()?, parse_tz(tz).ok()?);
                let mut wall = t.with_timezone(&tz).naive_local() + chrono::Duration::hours(2);
                for _ in 0..10_000 {
                    wall = cron.find_previous_occurrence(&wall, false).ok()?;
                    if let Some(at) = instant(&tz, wall)
                        && at <= t
                    {
                        return Some(at);
                    }
                }
                None
            }
        }
    }

    /// Up to `max` fire times in `(after, up_to]`, in order.
    pub fn between(
        &self,
        after: DateTime<Utc>,
        up_to: DateTime<Utc>,
        anchor: DateTime<Utc>,
        max: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < max {
            match self.next_after(t, anchor) {
                Some(next) if next <= up_to => {
                    out.push(next);
                    t = next;
                }
                _ => break,
            }
        }
        out
    }
}

/// The instant a wall-clock time names in `tz`: `None` in a DST gap (skipped); the
/// first of the two in a DST repeat (so it fires once).
fn instant(tz: &Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

fn parse_cron(pattern: &str) -> Result<Cron, SpecError> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(pattern)
        .map_err(|e| SpecError::Schedule(format!("invalid cron pattern {pattern:?}: {e}")))
}

/// Every IANA time zone name a cron schedule may name.
pub fn time_zones() -> impl Iterator<Item = &'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
}

fn parse_tz(tz: &str) -> Result<Tz, SpecError> {
    Tz::from_str(tz).map_err(|_| SpecError::Schedule(format!("unknown time zone {tz:?}")))
}

/// The job id of a schedule's firing: a UUID v7 whose time is the fire time and whose
/// other bits are a hash of (owner, name, fire time), so every worker derives the same id.
pub fn firing_id(owner: Option<&str>, name: &str, fire_time: DateTime<Utc>) -> JobId {
    let ms = fire_time.timestamp_millis().max(0) as u64;
    let mut hash = Sha256::new();
    hash.update(owner.unwrap_or("").as_bytes());
    hash.update([0]);
    hash.update(name.as_bytes());
    hash.update([0]);
    hash.update(ms.to_be_bytes());
    let digest = hash.finalize();
    let mut bits = [0u8; 10];
    bits.copy_from_slice(&digest[..10]);
    JobId::from_uuid(uuid::Builder::from_unix_timestamp_millis(ms, &bits).into_uuid())
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next_n(trigger: &Trigger, from: &str, n: usize) -> Vec<String> {
        let mut t = utc(from);
        (0..n)
            .map(|_| {
                t = trigger.next_after(t, utc(from)).unwrap();
                t.to_rfc3339()
            })
            .collect()
    }

    #[test]
    fn five_and_six_field_patterns() {
        let minutes = Trigger::cron("*/15 * * * *", "UTC").unwrap();
        assert_eq!(
            next_n(&minutes, "2026-03-01T10:07:30Z", 2),
            ["2026-03-01T10:15:00+00:00", "2026-03-01T10:30:00+00:00"]
        );
        let seconds = Trigger::cron("*/20 * * * * *", "UTC").unwrap();
        assert_eq!(
            next_n(&seconds, "2026-03-01T10:07:30Z", 2),
            ["2026-03-01T10:07:40+00:00", "2026-03-01T10:08:00+00:00"]
        );
        // POSIX weekdays: 1 is Monday. 2026-03-02 is a Monday.
        let mondays = Trigger::cron("0 9 * * 1", "UTC").unwrap();
        assert_eq!(
            next_n(&mondays, "2026-03-01T00:00:00Z", 1),
            ["2026-03-02T09:00:00+00:00"]
        );
    }

    #[test]
    fn a_time_skipped_by_dst_does_not_fire() {
        // New York skips 02:00-03:00 on 2026-03-08.
        let t = Trigger::cron("30 2 * * *", "America/New_York").unwrap();
        assert_eq!(
            next_n(&t, "2026-03-07T00:00:00Z", 2),
            [
                "2026-03-07T07:30:00+00:00", // 02:30 EST on the 7th
                "2026-03-09T06:30:00+00:00"  // 02:30 EDT on the 9th; none on the 8th
            ]
        );
    }

    #[test]
    fn a_time_repeated_by_dst_fires_once() {
        // New York repeats 01:00-02:00 on 2026-11-01 (EDT, then EST).
        let t = Trigger::cron("30 1 * * *", "America/New_York").unwrap();
        assert_eq!(
            next_n(&t, "2026-10-31T12:00:00Z", 2),
            [
                "2026-11-01T05:30:00+00:00", // 01:30 EDT, the first of the two
                "2026-11-02T06:30:00+00:00"  // the next day; not 01:30 EST
            ]
        );
        let hourly = Trigger::cron("0 * * * *", "America/New_York").unwrap();
        let fired = hourly.between(
            utc("2026-11-01T03:30:00Z"),
            utc("2026-11-01T08:30:00Z"),
            utc("2026-11-01T00:00:00Z"),
            100,
        );
        // 00:00 EDT, 01:00 EDT, 02:00 EST, 03:00 EST: the repeated 01:00 EST is skipped.
        let fired: Vec<String> = fired.iter().map(|t| t.to_rfc3339()).collect();
        assert_eq!(
            fired,
            [
                "2026-11-01T04:00:00+00:00",
                "2026-11-01T05:00:00+00:00",
                "2026-11-01T07:00:00+00:00",
                "2026-11-01T08:00:00+00:00"
            ]
        );
    }

    #[test]
    fn last_at_or_before_agrees_with_next_after() {
        let t = Trigger::cron("30 1 * * *", "America/New_York").unwrap();
        let at = utc("2026-11-01T06:45:00Z"); // 01:45 EST, in the repeated hour
        assert_eq!(
            t.last_at_or_before(at, at),
            Some(utc("2026-11-01T05:30:00Z"))
        );
        let every = Trigger::every(Duration::from_secs(10)).unwrap();
        let anchor = utc("2026-01-01T00:00:00Z");
        assert_eq!(
            every.last_at_or_before(utc("2026-01-01T00:00:35Z"), anchor),
            Some(utc("2026-01-01T00:00:30Z"))
        );
        assert_eq!(
            every.next_after(utc("2026-01-01T00:00:30Z"), anchor),
            Some(utc("2026-01-01T00:00:40Z"))
        );
        assert_eq!(every.last_at_or_before(anchor, anchor), None);
    }

    #[test]
    fn bad_triggers_are_refused() {
        assert!(Trigger::cron("61 * * * *", "UTC").is_err());
        assert!(Trigger::cron("* * * *", "UTC").is_err());
        assert!(Trigger::cron("* * * * *", "Mars/Olympus").is_err());
        assert!(Trigger::every(Duration::from_millis(500)).is_err());
        assert!(
            ScheduleSpec::new(
                "bad name",
                JobSpec::new("t"),
                Trigger::every(MIN_EVERY).unwrap()
            )
            .validate()
            .is_err()
        );
    }

    #[test]
    fn firing_ids_are_the_same_for_everyone_and_differ_per_firing() {
        let t = utc("2026-01-01T00:00:00Z");
        let a = firing_id(Some("alice"), "tick", t);
        assert_eq!(a, firing_id(Some("alice"), "tick", t));
        assert_ne!(a, firing_id(Some("bob"), "tick", t));
        assert_ne!(a, firing_id(Some("alice"), "tock", t));
        assert_ne!(
            a,
            firing_id(Some("alice"), "tick", t + chrono::Duration::seconds(1))
        );
        assert_eq!(a.as_uuid().get_version_num(), 7);
    }
}
