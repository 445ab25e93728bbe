//! The scheduler: every worker fires due schedules, and there is no leader.
//!
//! Each pass takes the schedules that are due (leasing each for a moment so other
//! workers leave it alone), fires them, and moves each to its next fire time. A
//! firing's job id is derived from (owner, schedule, fire time), so when two workers
//! do fire the same time (a lease lapsed under a stalled worker), the second enqueue
//! finds the job written: each fire time yields at most one job. Firings due less than
//! [`LATE_GRACE`] ago are fired whatever the catch-up policy; older ones (every worker
//! was down) follow the schedule's `catch_up`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use tether_model::JobId;
use tether_model::schedule::{
    CatchUp, LATE_GRACE, MAX_FIRINGS_PER_PASS, Overlap, ScheduleSpec, firing_id,
};
use tether_store::DueSchedule;
use tokio_util::sync::CancellationToken;

use super::Shared;

/// Most schedules taken in one call.
const TAKE_LIMIT: usize = 100;
/// How long a taken schedule is left to its taker.
const FIRING_LEASE: Duration = Duration::from_secs(3);
/// Longest pause between two looks at the due schedules (a schedule created meanwhile
/// is seen within it).
const MAX_PAUSE: Duration = Duration::from_millis(500);

pub(super) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut failures = 0u32;
    loop {
        let pause = match shared
            .store
            .take_due_schedules(TAKE_LIMIT, FIRING_LEASE)
            .await
        {
            Ok((now, wait, due)) => {
                failures = 0;
                let taken_at = Instant::now();
                let full = due.len() >= TAKE_LIMIT;
                for schedule in due {
                    if stop.is_cancelled() {
                        return;
                    }
                    fire(&shared, schedule, now, taken_at).await;
                }
                if full {
                    Duration::ZERO
                } else {
                    wait.unwrap_or(MAX_PAUSE).min(MAX_PAUSE)
                }
            }
            Err(e) => {
                shared.redis_error("schedule");
                tracing::debug!(error = %e, "cannot read due schedules");
                failures += 1;
                Duration::from_millis(100 * 2u64.pow(failures.min(5)))
            }
        };
        // Workers woken by the same due time spread over a few milliseconds.
        let jitter = Duration::from_millis(rand::rng().random_range(0..10));
        tokio::select! { _ = tokio::time::sleep(pause + jitter) => {}, _ = stop.cancelled() => return }
    }
}

/// The fire times of one pass over a due schedule, and where it goes next.
#[derive(Debug, PartialEq)]
struct Plan {
    fire: Vec<DateTime<Utc>>,
    /// Due firings not fired under the catch-up policy.
    missed: usize,
    next: Option<DateTime<Utc>>,
}

/// Decides which of a schedule's due fire times to fire at `now`; `first` is the first
/// fire time not handled yet.
fn plan(
    spec: &ScheduleSpec,
    anchor: DateTime<Utc>,
    first: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Plan {
    let trigger = &spec.trigger;
    let just_before = |t: DateTime<Utc>| t - chrono::Duration::milliseconds(1);
    // Fire times in [from, to], at most `max`.
    let within = |from: DateTime<Utc>, to: DateTime<Utc>, max: usize| {
        if from > to {
            Vec::new()
        } else {
            trigger.between(just_before(from), to, anchor, max)
        }
    };
    let late_from = now - chrono::Duration::from_std(LATE_GRACE).unwrap_or_default();
    let late = within(first.max(late_from), now, MAX_FIRINGS_PER_PASS);
    let missed_times = within(first, just_before(late_from), MAX_FIRINGS_PER_PASS);
    let mut fire = match spec.catch_up {
        CatchUp::None => Vec::new(),
        CatchUp::Last if late.is_empty() => trigger
            .last_at_or_before(just_before(late_from), anchor)
            .filter(|t| *t >= first)
            .into_iter()
            .collect(),
        CatchUp::Last => Vec::new(),
        CatchUp::Window(window) => {
            let from = now - chrono::Duration::from_std(window).unwrap_or_default();
            within(
                first.max(from),
                just_before(late_from),
                MAX_FIRINGS_PER_PASS,
            )
        }
    };
    // How many due firings were passed over (counted up to the pass's bound).
    let missed = missed_times.len().saturating_sub(fire.len());
    let capped = fire.len() >= MAX_FIRINGS_PER_PASS;
    if !capped {
        fire.extend(late);
    }
    fire.truncate(MAX_FIRINGS_PER_PASS);
    let next = match fire.last() {
        // More firings are due than one pass fires: carry on from the last one fired.
        Some(last) if capped => trigger.next_after(*last, anchor),
        _ => trigger.next_after(now, anchor),
    };
    Plan { fire, missed, next }
}

async fn fire(shared: &Shared, s: DueSchedule, now: DateTime<Utc>, taken_at: Instant) {
    let Plan { fire, missed, next } = plan(&s.spec, s.anchor, s.next_fire_time, now);
    let m = &shared.metrics;
    m.schedule_firings
        .with_label_values(&["missed"])
        .inc_by(missed as u64);
    let queue = s.spec.job.queue.clone();
    let owner = s.owner.as_deref();
    let mut previous = s.last_job_id;
    let mut last_fired: Option<(DateTime<Utc>, JobId)> = None;
    for t in fire {
        if let Some(prev) = previous
            && s.spec.overlap != Overlap::Allow
            && still_running(shared, &queue, prev).await
        {
            if s.spec.overlap == Overlap::Skip {
                m.schedule_firings.with_label_values(&["skipped"]).inc();
                continue;
            }
            if let Err(e) = shared.store.cancel_with(&queue, prev, None, true).await {
                tracing::debug!(schedule = %s.spec.name, job = %prev, error = %e, "previous firing not cancelled");
            }
        }
        let id = firing_id(owner, &s.spec.name, t);
        let job = s.spec.job.clone().firing_of(s.spec.name.clone(), t);
        match shared.store.enqueue_as(&job, id).await {
            Ok(enqueued) => {
                let result = if enqueued.written_now {
                    "fired"
                } else {
                    "duplicate"
                };
                m.schedule_firings.with_label_values(&[result]).inc();
                let enqueued_at =
                    now + chrono::Duration::from_std(taken_at.elapsed()).unwrap_or_default();
                m.schedule_lag
                    .observe((enqueued_at - t).num_milliseconds().max(0) as f64 / 1000.0);
                previous = Some(id);
                last_fired = Some((t, id));
            }
            Err(e) if e.is_retryable() => {
                // Leave the schedule due: whoever takes it next fires from here, and the
                // firings made so far are found written.
                shared.redis_error("schedule");
                tracing::warn!(schedule = %s.spec.name, error = %e, "schedule firing failed; it stays due");
                if let Some((t, id)) = last_fired {
                    let resume_at = s.spec.trigger.next_after(t, s.anchor);
                    let _ = shared
                        .store
                        .advance_schedule(&s, resume_at, Some((t, id)))
                        .await;
                }
                return;
            }
            Err(e) => {
                // Refused for good (a quota, a queue no longer allowed): this firing is
                // missed, the schedule goes on.
                m.schedule_firings.with_label_values(&["missed"]).inc();
                tracing::warn!(schedule = %s.spec.name, fire_time = %t, error = %e, "schedule firing refused");
            }
        }
    }
    match shared.store.advance_schedule(&s, next, last_fired).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(schedule = %s.spec.name, "schedule changed while firing; left as it is")
        }
        Err(e) => {
            shared.redis_error("schedule");
            tracing::warn!(schedule = %s.spec.name, error = %e, "schedule not advanced; its firings are found written next time");
        }
    }
}

/// Whether the job is there and not final (an expired record counts as final).
async fn still_running(shared: &Shared, queue: &str, id: JobId) -> bool {
    match shared.store.get(queue, id).await {
        Ok(job) => job.is_some_and(|j| !j.status.is_final()),
        // Unknown: do not pile a firing on top of one that may still run.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_model::JobSpec;
    use tether_model::schedule::Trigger;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn every_second(catch_up: CatchUp) -> ScheduleSpec {
        ScheduleSpec::new(
            "tick",
            JobSpec::new("noop"),
            Trigger::every(Duration::from_secs(1)).unwrap(),
        )
        .catch_up(catch_up)
    }

    const ANCHOR: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn on_time_and_late_firings_fire_each_once() {
        let spec = every_second(CatchUp::None);
        let p = plan(
            &spec,
            at(ANCHOR),
            at("2026-01-01T00:00:05Z"),
            at("2026-01-01T00:00:07.5Z"),
        );
        assert_eq!(
            p.fire,
            [
                at("2026-01-01T00:00:05Z"),
                at("2026-01-01T00:00:06Z"),
                at("2026-01-01T00:00:07Z")
            ]
        );
        assert_eq!((p.missed, p.next), (0, Some(at("2026-01-01T00:00:08Z"))));
    }

    #[test]
    fn after_an_outage_catch_up_decides_what_is_fired() {
        // Every worker was down from 00:00:05 to 01:00:00.5.
        let (first, now) = (at("2026-01-01T00:00:05Z"), at("2026-01-01T01:00:00.5Z"));
        let late = |p: &Plan| {
            p.fire
                .iter()
                .filter(|t| **t > now - chrono::Duration::seconds(11))
                .count()
        };
        let none = plan(&every_second(CatchUp::None), at(ANCHOR), first, now);
        assert_eq!(
            late(&none),
            none.fire.len(),
            "only the late ones: {:?}",
            none.fire
        );
        assert_eq!(none.fire.len(), 10);
        let last = plan(&every_second(CatchUp::Last), at(ANCHOR), first, now);
        assert_eq!(
            last.fire, none.fire,
            "late firings stand for the last missed one"
        );
        let window = plan(
            &every_second(CatchUp::Window(Duration::from_secs(60))),
            at(ANCHOR),
            first,
            now,
        );
        assert_eq!(window.fire.len(), 60, "each firing of the last minute");
        assert_eq!(window.next, Some(at("2026-01-01T01:00:01Z")));
    }

    #[test]
    fn a_daily_schedule_fires_the_last_missed_day_once() {
        let spec = ScheduleSpec::new(
            "nightly",
            JobSpec::new("noop"),
            Trigger::cron("0 3 * * *", "UTC").unwrap(),
        );
        // Down from before the 2nd's firing until the 5th at noon.
        let p = plan(
            &spec,
            at(ANCHOR),
            at("2026-01-02T03:00:00Z"),
            at("2026-01-05T12:00:00Z"),
        );
        assert_eq!(p.fire, [at("2026-01-05T03:00:00Z")]);
        assert_eq!(p.missed, 3);
        assert_eq!(p.next, Some(at("2026-01-06T03:00:00Z")));
        let none = plan(
            &spec.clone().catch_up(CatchUp::None),
            at(ANCHOR),
            at("2026-01-02T03:00:00Z"),
            at("2026-01-05T12:00:00Z"),
        );
        assert!(none.fire.is_empty());
        assert_eq!(none.missed, 4);
    }

    #[test]
    fn a_pass_fires_a_bounded_number_and_carries_on_next_time() {
        let spec = every_second(CatchUp::Window(Duration::from_secs(3600)));
        let p = plan(
            &spec,
            at(ANCHOR),
            at("2026-01-01T00:00:01Z"),
            at("2026-01-01T02:00:00Z"),
        );
        assert_eq!(p.fire.len(), MAX_FIRINGS_PER_PASS);
        assert_eq!(
            p.next,
            Some(*p.fire.last().unwrap() + chrono::Duration::seconds(1))
        );
    }
}
