//! Schedules in Redis: their specs and firing state, and the two steps of a firing
//! (take what is due; record what was fired and move on).
//!
//! All schedules live in one cluster slot (`{~sched}`); the jobs they fire go to
//! their queues' slots like any enqueue. A firing is therefore not one atomic step:
//! the firer enqueues a job whose id is derived from (owner, schedule, fire time)
//! (so a repeated enqueue of the same firing finds it written), then advances the
//! schedule with a compare-and-set on its next fire time. A firer that dies between
//! the two leaves the schedule due; whoever takes it next enqueues the same ids and
//! advances it.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::{AsyncCommands, Script};
use tether_model::JobId;
use tether_model::schedule::ScheduleSpec;

use crate::codec::ms_to_time;
use crate::{Store, StoreError, keys, reply};

/// A schedule script, prefixed with the schedule scripts' prelude (and numbers.lua,
/// which the function library shares).
macro_rules! schedule_script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("../lua/numbers.lua"),
                include_str!("../lua/schedules/common.lua"),
                include_str!(concat!("../lua/schedules/", $file))
            ))
        })
    };
}

static PUT: LazyLock<Script> = schedule_script!("put.lua");
static TAKE: LazyLock<Script> = schedule_script!("take.lua");
static ADVANCE: LazyLock<Script> = schedule_script!("advance.lua");
static STATE: LazyLock<Script> = schedule_script!("state.lua");

/// A schedule as stored, with its firing state.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredSchedule {
    pub owner: Option<String>,
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    pub paused: bool,
    /// Where an interval counts from (the schedule's creation).
    pub anchor: DateTime<Utc>,
    /// When it fires next (`None` while paused, or when a pattern never fires again).
    pub next_fire_time: Option<DateTime<Utc>>,
    pub last_fire_time: Option<DateTime<Utc>>,
    pub last_job_id: Option<JobId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A due schedule taken by this worker to fire.
#[derive(Debug, Clone)]
pub struct DueSchedule {
    member: String,
    expected_next: String,
    pub owner: Option<String>,
    pub spec: ScheduleSpec,
    pub anchor: DateTime<Utc>,
    /// The first fire time not yet handled.
    pub next_fire_time: DateTime<Utc>,
    pub last_fire_time: Option<DateTime<Utc>>,
    pub last_job_id: Option<JobId>,
}

/// Most schedules one owner may have: every schedule costs each worker's scheduler a
/// look, and one firing every second at the most.
pub const MAX_SCHEDULES_PER_OWNER: usize = 1000;

/// What `put_schedule` may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutMode {
    /// A new schedule; an existing one of the same name is an error.
    Create,
    /// Replaces an existing schedule's spec, keeping its history.
    Replace,
}

/// The owner part of a schedule's key. Owners are bounded like every other name that
/// becomes a key; a name has no `/`, so the last `/` splits a member unambiguously.
fn member(owner: Option<&str>, name: &str) -> Result<String, StoreError> {
    tether_model::schedule::validate_schedule_name(name)?;
    let owner = owner.unwrap_or("");
    if owner.len() > 256 {
        return Err(StoreError::NotFound(name.to_owned()));
    }
    Ok(format!("{owner}/{name}"))
}

fn split(member: &str) -> (Option<String>, &str) {
    match member.rsplit_once('/') {
        Some(("", name)) => (None, name),
        Some((owner, name)) => (Some(owner.to_owned()), name),
        None => (None, member),
    }
}

fn time(ms: &str) -> Option<DateTime<Utc>> {
    ms.parse::<i64>().ok().filter(|ms| *ms >= 0).map(ms_to_time)
}

fn ms(t: Option<DateTime<Utc>>) -> i64 {
    t.map(|t| t.timestamp_millis()).unwrap_or(-1)
}

fn decode_spec(json: &str) -> Result<ScheduleSpec, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::decode("schedule", e))
}

impl Store {
    /// The Redis server's clock: schedules are computed on it, like leases.
    pub async fn redis_now(&self) -> Result<DateTime<Utc>, StoreError> {
        let (secs, micros): (i64, i64) = self
            .idempotent(|| async { Ok(redis::cmd("TIME").query_async(&mut self.conn()).await?) })
            .await?;
        Ok(ms_to_time(secs * 1000 + micros / 1000))
    }

    /// Creates a schedule, or replaces one's spec (its anchor and history stay).
    pub async fn put_schedule(
        &self,
        owner: Option<&str>,
        spec: &ScheduleSpec,
        mode: PutMode,
    ) -> Result<StoredSchedule, StoreError> {
        spec.validate()?;
        let member = member(owner, &spec.name)?;
        let mut spec = spec.clone();
        spec.job.owner = owner.map(str::to_owned);
        // Refused now, not at every firing: an input over the payload limit.
        self.prepare(&spec.job, None)?;
        let now = self.redis_now().await?;
        let anchor = match mode {
            PutMode::Create => now,
            PutMode::Replace => {
                self.schedule(owner, &spec.name)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(spec.name.clone()))?
                    .anchor
            }
        };
        let next = spec.trigger.next_after(now, anchor);
        let json = serde_json::to_string(&spec).map_err(|e| StoreError::decode("schedule", e))?;
        let word: String = self
            .idempotent(|| async {
                Ok(PUT
                    .key(keys::SCHEDULES)
                    .key(keys::SCHEDULES_DUE)
                    .key(keys::schedule(&member))
                    .arg(&member)
                    .arg(&json)
                    .arg(anchor.timestamp_millis())
                    .arg(ms(next))
                    .arg(match mode {
                        PutMode::Create => "create",
                        PutMode::Replace => "replace",
                    })
                    .arg(format!("{}/", owner.unwrap_or("")))
                    .arg(MAX_SCHEDULES_PER_OWNER)
                    .invoke_async(&mut self.conn())
                    .await?)
            })
            .await?;
        match word.as_str() {
            "OK" => self
                .schedule(owner, &spec.name)
                .await?
                .ok_or_else(|| StoreError::NotFound(spec.name.clone())),
            "EXISTS" => Err(StoreError::ScheduleExists(spec.name.clone())),
            "LIMIT" => Err(StoreError::TooManySchedules {
                limit: MAX_SCHEDULES_PER_OWNER,
            }),
            refused => Err(reply::refusal("put", refused, &spec.name)),
        }
    }

    /// One schedule of `owner` (`None`: a schedule without owner).
    pub async fn schedule(
        &self,
        owner: Option<&str>,
        name: &str,
    ) -> Result<Option<StoredSchedule>, StoreError> {
        let member = member(owner, name)?;
        Ok(self.read_schedules(&[member]).await?.pop())
    }

    /// Every schedule of `owner`, by name; `None`: every schedule of every owner.
    pub async fn schedules(&self, owner: Option<&str>) -> Result<Vec<StoredSchedule>, StoreError> {
        let members: Vec<String> = match owner {
            Some(owner) if owner.len() > 256 => Vec::new(),
            Some(owner) => {
                // The members `<owner>/…`: '0' is the character after '/'.
                let (min, max) = (format!("[{owner}/"), format!("({owner}0"));
                let found: Vec<String> = self
                    .idempotent(|| async {
                        Ok(self.conn().zrangebylex(keys::SCHEDULES, &min, &max).await?)
                    })
                    .await?;
                // An owner that is a prefix of another (`a` and `a/b`) shares the range.
                found
                    .into_iter()
                    .filter(|m| split(m).0.as_deref() == Some(owner))
                    .collect()
            }
            None => {
                self.idempotent(|| async { Ok(self.conn().zrange(keys::SCHEDULES, 0, -1).await?) })
                    .await?
            }
        };
        let mut found = self.read_schedules(&members).await?;
        found.sort_by(|a, b| (&a.owner, &a.spec.name).cmp(&(&b.owner, &b.spec.name)));
        Ok(found)
    }

    async fn read_schedules(&self, members: &[String]) -> Result<Vec<StoredSchedule>, StoreError> {
        const FIELDS: [&str; 8] = [
            "spec", "anchor", "next", "last", "job", "paused", "ct", "ut",
        ];
        let mut out = Vec::with_capacity(members.len());
        for chunk in members.chunks(500) {
            let rows: Vec<Vec<Option<String>>> = self
                .idempotent(|| async {
                    let mut pipe = redis::pipe();
                    for member in chunk {
                        pipe.cmd("HMGET")
                            .arg(keys::schedule(member))
                            .arg(&FIELDS[..]);
                    }
                    Ok(pipe.query_async(&mut self.conn()).await?)
                })
                .await?;
            for (member, row) in chunk.iter().zip(rows) {
                let [spec, anchor, next, last, job, paused, ct, ut]: [Option<String>; 8] = row
                    .try_into()
                    .map_err(|_| StoreError::decode("schedule", "short reply"))?;
                let Some(spec) = spec else { continue };
                let at = |v: &Option<String>| v.as_deref().and_then(time);
                let paused = paused.as_deref() == Some("1");
                out.push(StoredSchedule {
                    owner: split(member).0,
                    spec: decode_spec(&spec)?,
                    paused,
                    anchor: at(&anchor).unwrap_or_default(),
                    next_fire_time: if paused { None } else { at(&next) },
                    last_fire_time: at(&last),
                    last_job_id: job.as_deref().and_then(|j| j.parse().ok()),
                    created_at: at(&ct).unwrap_or_default(),
                    updated_at: at(&ut).unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    async fn schedule_state(
        &self,
        owner: Option<&str>,
        name: &str,
        action: &str,
        args: &[String],
    ) -> Result<(), StoreError> {
        let member = member(owner, name)?;
        let word: String = self
            .idempotent(|| async {
                let mut inv = STATE.key(keys::SCHEDULES);
                inv.key(keys::SCHEDULES_DUE)
                    .key(keys::schedule(&member))
                    .arg(&member)
                    .arg(action);
                for arg in args {
                    inv.arg(arg);
                }
                Ok(inv.invoke_async(&mut self.conn()).await?)
            })
            .await?;
        reply::ok("state", &word, name)
    }

    /// Pauses a schedule: it does not fire until resumed.
    pub async fn pause_schedule(&self, owner: Option<&str>, name: &str) -> Result<(), StoreError> {
        self.schedule_state(owner, name, "pause", &[]).await
    }

    /// Resumes a schedule at its next fire time from now (what it missed while paused
    /// is not fired).
    pub async fn resume_schedule(&self, owner: Option<&str>, name: &str) -> Result<(), StoreError> {
        let schedule = self
            .schedule(owner, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))?;
        let now = self.redis_now().await?;
        let next = schedule.spec.trigger.next_after(now, schedule.anchor);
        self.schedule_state(owner, name, "resume", &[ms(next).to_string()])
            .await
    }

    /// Deletes a schedule; the jobs it fired stay.
    pub async fn delete_schedule(&self, owner: Option<&str>, name: &str) -> Result<(), StoreError> {
        self.schedule_state(owner, name, "delete", &[]).await
    }

    /// Records a firing made outside the schedule's times (a manual trigger).
    pub async fn record_firing(
        &self,
        owner: Option<&str>,
        name: &str,
        fire_time: DateTime<Utc>,
        job: JobId,
    ) -> Result<(), StoreError> {
        let args = [fire_time.timestamp_millis().to_string(), job.to_string()];
        self.schedule_state(owner, name, "record", &args).await
    }

    /// Takes up to `limit` due schedules for this worker to fire, leasing each for
    /// `lease`. Returns Redis's time, how long until the next schedule is due (`None`:
    /// none is), and the taken schedules.
    pub async fn take_due_schedules(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<(DateTime<Utc>, Option<Duration>, Vec<DueSchedule>), StoreError> {
        type Row = (String, String, String, String, String, String);
        let (now, wait, rows): (i64, i64, Vec<Row>) = TAKE
            .key(keys::SCHEDULES_DUE)
            .arg(keys::SCHEDULE_PREFIX)
            .arg(limit.max(1))
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut self.conn())
            .await?;
        let mut due = Vec::with_capacity(rows.len());
        for (member, spec, anchor, next, last, job) in rows {
            let spec = match decode_spec(&spec) {
                Ok(spec) => spec,
                Err(e) => {
                    tracing::warn!(schedule = %member, error = %e, "unreadable schedule skipped");
                    continue;
                }
            };
            let Some(next_fire_time) = time(&next) else {
                continue;
            };
            due.push(DueSchedule {
                owner: split(&member).0,
                expected_next: next,
                spec,
                anchor: time(&anchor).unwrap_or(next_fire_time),
                next_fire_time,
                last_fire_time: time(&last),
                last_job_id: job.parse().ok(),
                member,
            });
        }
        let wait = (wait >= 0).then(|| Duration::from_millis(wait as u64));
        Ok((ms_to_time(now), wait, due))
    }

    /// Moves a taken schedule on to `next` and records its last firing; `false` when
    /// the schedule changed meanwhile (edited, paused, deleted, or advanced by another
    /// worker whose lease had lapsed), in which case nothing is written.
    pub async fn advance_schedule(
        &self,
        due: &DueSchedule,
        next: Option<DateTime<Utc>>,
        last: Option<(DateTime<Utc>, JobId)>,
    ) -> Result<bool, StoreError> {
        let (last_ms, job) = match last {
            Some((t, id)) => (t.timestamp_millis().to_string(), id.to_string()),
            None => (String::new(), String::new()),
        };
        let word: String = self
            .idempotent(|| async {
                Ok(ADVANCE
                    .key(keys::SCHEDULES_DUE)
                    .key(keys::schedule(&due.member))
                    .arg(&due.member)
                    .arg(&due.expected_next)
                    .arg(ms(next))
                    .arg(&last_ms)
                    .arg(&job)
                    .invoke_async(&mut self.conn())
                    .await?)
            })
            .await?;
        reply::ok_or("advance", &word, "STALE")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_split_at_the_last_slash() {
        assert_eq!(split("/tick"), (None, "tick"));
        assert_eq!(split("alice/tick"), (Some("alice".into()), "tick"));
        assert_eq!(split("a/b/tick"), (Some("a/b".into()), "tick"));
        assert!(member(Some("alice"), "bad/name").is_err());
    }
}
