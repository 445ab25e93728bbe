//! Flow control: a queue's limits and pause state (read by every claim, in
//! `claim.lua`), start deadlines, and snoozing a running job.

use std::collections::HashMap;
use std::time::Duration;

use tether_model::{JobId, LimitsPatch, QueueSettings, validate_queue_name};

use crate::keys::QueueKeys;
use crate::scripts::SCRIPTS;
use crate::worker_ops::{Lease, LeaseError};
use crate::{MAX_BATCH, Store, StoreError};

/// What a snooze did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnoozeOutcome {
    /// The job is due again after the delay; the attempt was not spent.
    Snoozed,
    /// A cancel had been requested: the job is recorded cancelled instead.
    Cancelled,
    /// This lease had ended already (a resend after a lost reply, or an outcome
    /// recorded before): nothing was written.
    AlreadyEnded,
}

/// A queue's flow control and what it holds back now (`tether queue show`). It
/// serialises flat: the settings' keys (`paused`, `concurrency`, `rate`,
/// `group_concurrency`, `group_rate`, `paused_types`) beside the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct FlowState {
    #[serde(flatten)]
    pub settings: QueueSettings,
    /// Jobs running under a live lease.
    pub running: u64,
    /// Starts in the last second (counted only while a rate limit is set).
    pub starts_last_second: u64,
    /// Entries in the priority and group lists and the held lists (stale ones included).
    pub queued_in_lists: u64,
    /// Priorities that have jobs in lists, lowest number first.
    pub priorities: Vec<u8>,
}

fn settings_from(fields: HashMap<String, String>) -> QueueSettings {
    let limit = |f: &str| fields.get(f).and_then(|v| v.parse().ok());
    QueueSettings {
        concurrency: limit("conc"),
        rate: limit("rate"),
        group_concurrency: limit("gconc"),
        group_rate: limit("grate"),
        paused: fields.get("paused").is_some_and(|v| v == "1"),
        paused_types: fields
            .get("ptypes")
            .map(|t| t.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    }
}

impl Store {
    /// A queue's flow-control settings.
    pub async fn queue_settings(&self, queue: &str) -> Result<QueueSettings, StoreError> {
        validate_queue_name(queue)?;
        let keys = QueueKeys::new(queue);
        let fields: HashMap<String, String> = self
            .idempotent(|| async {
                Ok(redis::cmd("HGETALL")
                    .arg(keys.settings())
                    .query_async(&mut self.conn())
                    .await?)
            })
            .await?;
        Ok(settings_from(fields))
    }

    /// The settings and what flow control holds back now.
    pub async fn flow_state(&self, queue: &str) -> Result<FlowState, StoreError> {
        validate_queue_name(queue)?;
        let keys = QueueKeys::new(queue);
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL")
            .arg(keys.settings())
            .cmd("TIME")
            .cmd("HGET")
            .arg(keys.counts())
            .arg("queued")
            .cmd("ZRANGE")
            .arg(keys.priorities())
            .arg(0)
            .arg(-1);
        type Reply = (HashMap<String, String>, (i64, i64), Option<i64>, Vec<u8>);
        let (fields, (secs, micros), queued, priorities): Reply = self
            .idempotent(|| async { Ok(pipe.query_async(&mut self.conn()).await?) })
            .await?;
        let now = secs * 1000 + micros / 1000;
        let mut counts = redis::pipe();
        counts
            .cmd("ZCOUNT")
            .arg(keys.leases())
            .arg(format!("({now}"))
            .arg("+inf")
            .cmd("ZCOUNT")
            .arg(keys.starts())
            .arg(format!("({}", now - 1000))
            .arg("+inf");
        let (running, starts): (u64, u64) = self
            .idempotent(|| async { Ok(counts.query_async(&mut self.conn()).await?) })
            .await?;
        Ok(FlowState {
            settings: settings_from(fields),
            running,
            starts_last_second: starts,
            queued_in_lists: queued.unwrap_or(0).max(0) as u64,
            priorities,
        })
    }

    /// Sets or clears some of a queue's limits; every claim sees them at once.
    pub async fn set_limits(
        &self,
        queue: &str,
        patch: &LimitsPatch,
    ) -> Result<QueueSettings, StoreError> {
        patch
            .validate()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let mut changes = Vec::new();
        for (field, value) in [
            ("conc", patch.concurrency),
            ("rate", patch.rate),
            ("gconc", patch.group_concurrency),
            ("grate", patch.group_rate),
        ] {
            if let Some(value) = value {
                changes.push((field, value.map(|v| v.to_string()).unwrap_or_default()));
            }
        }
        self.change_settings(queue, &changes).await
    }

    /// Pauses a queue (nothing of it starts; running jobs finish; enqueues are
    /// accepted), or only one job type in it.
    pub async fn pause(
        &self,
        queue: &str,
        job_type: Option<&str>,
    ) -> Result<QueueSettings, StoreError> {
        match job_type {
            None => self.change_settings(queue, &[("paused", "1".into())]).await,
            Some(t) => {
                self.change_settings(queue, &[("pause_type", t.to_owned())])
                    .await
            }
        }
    }

    /// Resumes a paused queue, or one paused job type (whose held jobs become ready
    /// again, in batches of [`MAX_BATCH`]).
    pub async fn resume(
        &self,
        queue: &str,
        job_type: Option<&str>,
    ) -> Result<QueueSettings, StoreError> {
        let Some(t) = job_type else {
            return self
                .change_settings(queue, &[("paused", String::new())])
                .await;
        };
        let settings = self
            .change_settings(queue, &[("resume_type", t.to_owned())])
            .await?;
        // A failure from here on leaves held jobs behind: the workers' maintenance
        // (`release_held`) puts them back.
        self.unhold(queue, t).await?;
        Ok(settings)
    }

    /// Puts back the held jobs of every type that is no longer paused (what a resume
    /// interrupted by a crash or an error left behind). Workers call this in their
    /// maintenance pass.
    pub async fn release_held(&self, queue: &str) -> Result<(), StoreError> {
        validate_queue_name(queue)?;
        let keys = QueueKeys::new(queue);
        let types: Vec<String> = self
            .idempotent(|| async {
                Ok(redis::cmd("SMEMBERS")
                    .arg(keys.held_types())
                    .query_async(&mut self.conn())
                    .await?)
            })
            .await?;
        // `unhold.lua` leaves a type that is still paused alone, atomically.
        for t in types {
            self.unhold(queue, &t).await?;
        }
        Ok(())
    }

    async fn unhold(&self, queue: &str, job_type: &str) -> Result<(), StoreError> {
        let keys = QueueKeys::new(queue);
        let t = job_type;
        // Bounded: every call takes up to MAX_BATCH entries off a list nothing refills
        // while the type is not paused.
        for _ in 0..100_000 {
            let moved: usize = self
                .idempotent(|| async {
                    let mut inv = Self::invocation(&SCRIPTS.unhold, &keys);
                    inv.arg(t).arg(MAX_BATCH);
                    Ok(inv.invoke_async(&mut self.conn()).await?)
                })
                .await?;
            if moved == 0 {
                break;
            }
        }
        Ok(())
    }

    async fn change_settings(
        &self,
        queue: &str,
        changes: &[(&str, String)],
    ) -> Result<QueueSettings, StoreError> {
        validate_queue_name(queue)?;
        let keys = QueueKeys::new(queue);
        let fields: HashMap<String, String> = self
            .idempotent(|| async {
                let mut inv = Self::invocation(&SCRIPTS.settings, &keys);
                for (field, value) in changes {
                    inv.arg(*field).arg(value);
                }
                Ok(inv.invoke_async(&mut self.conn()).await?)
            })
            .await?;
        Ok(settings_from(fields))
    }

    /// Fails up to `limit` jobs whose start deadline passed before they started
    /// (`Expired`, 0 attempts); returns their ids.
    pub async fn expire_unstarted(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<Vec<JobId>, StoreError> {
        let keys = QueueKeys::new(queue);
        let mut inv = Self::invocation(&SCRIPTS.deadline, &keys);
        inv.arg(limit.clamp(1, MAX_BATCH))
            .arg(self.config().retention.as_millis() as u64);
        let ids: Vec<String> = inv.invoke_async(&mut self.conn()).await?;
        ids.iter()
            .map(|id| id.parse().map_err(|e| StoreError::decode("id", e)))
            .collect()
    }

    /// Ends a running attempt without spending it: the lease (and its concurrency
    /// slot) is freed and the job is due again after `delay`.
    pub async fn snooze(
        &self,
        lease: &Lease,
        delay: Duration,
    ) -> Result<SnoozeOutcome, LeaseError> {
        let keys = QueueKeys::new(&lease.queue);
        let mut inv = Self::invocation(&SCRIPTS.snooze, &keys);
        inv.arg(self.config().retention.as_millis() as u64)
            .arg(delay.as_millis() as u64)
            .arg(lease.id.to_string())
            .arg(lease.token.as_str());
        let word: String = inv.invoke_async(&mut self.conn()).await?;
        match word.as_str() {
            "OK" => Ok(SnoozeOutcome::Snoozed),
            "CANCELLED" => Ok(SnoozeOutcome::Cancelled),
            w if w.starts_with("ALREADY:") => Ok(SnoozeOutcome::AlreadyEnded),
            _ => Err(LeaseError::Lost),
        }
    }
}
