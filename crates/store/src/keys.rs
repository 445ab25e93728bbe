//! The keyspace. Nothing outside this crate builds a key.
//!
//! Every key of a queue carries the hash tag `{<queue>}`, so all of a queue's
//! keys live in one cluster slot and each script runs on one node. Queue names
//! cannot contain braces (see `validate_queue_name`), so the tag is exact.

/// Version of the key layout and encodings, stored in `tether:meta` (docs/STORAGE.md).
/// 2: fields equal to their defaults (`max`, `bo`, `ut` while it equals `ct`) are not
/// stored, which a layout 1 worker would misread.
/// 3: a job enqueued straight onto the stream has an `n` entry and no `jobs` entry
/// until it leaves the stream; an older worker would trim `n` entries as stale.
/// 4: a job enqueued straight onto the stream with no option and no field but its type
/// and input has no record until it leaves the stream: it is a field of `waiting` and
/// its entry is `w=<16 bytes>`, which an older worker would trim as stale.
/// 5: the value of a field of `waiting` names its stream entry in 8 bytes instead of
/// spelling it out, which a layout 4 worker would read as malformed and trim the entry
/// as stale.
pub(crate) const LAYOUT_VERSION: u32 = 5;
/// Hash with `version` (layout) and `created` fields.
pub(crate) const META: &str = "tether:meta";
/// Set of every queue name that was ever enqueued to or served.
pub(crate) const QUEUES: &str = "tether:queues";
/// Sorted set: worker id → last heartbeat (ms).
pub(crate) const WORKERS: &str = "tether:workers";
/// The queue's consumer group, created with it. Claims read the stream from its head
/// and no longer move the group; it is kept for processes built before that, which read
/// from its cursor.
pub(crate) const GROUP: &str = "workers";

/// Every schedule, as `<owner>/<name>` members of a sorted set (all scores 0, so one
/// owner's schedules are a lexical range). The hash tag `{~sched}` cannot be a queue's
/// (queue names have no `~`), so schedules never share keys with a queue; all of them
/// live in one cluster slot, where each schedule script runs.
pub(crate) const SCHEDULES: &str = "tether:{~sched}:all";
/// Active schedules' `<owner>/<name>` → next fire time (ms).
pub(crate) const SCHEDULES_DUE: &str = "tether:{~sched}:due";
/// Prefix of a schedule's hash: `tether:{~sched}:s:<owner>/<name>`.
pub(crate) const SCHEDULE_PREFIX: &str = "tether:{~sched}:s:";

/// A schedule's hash (spec, anchor, next, last fire, last job, paused, lease, times).
pub(crate) fn schedule(member: &str) -> String {
    format!("{SCHEDULE_PREFIX}{member}")
}

/// A worker's self-description (hash, expires unless refreshed).
pub(crate) fn worker(id: &str) -> String {
    format!("tether:worker:{id}")
}

/// The fixed keys of one queue, in the order every script takes them.
#[derive(Debug, Clone)]
pub(crate) struct QueueKeys {
    pub(crate) prefix: String,
    pub(crate) fixed: [String; 7],
}

impl QueueKeys {
    pub(crate) fn new(queue: &str) -> Self {
        let prefix = format!("tether:{{{queue}}}:");
        let fixed = [
            "stream", "delayed", "leases", "jobs", "done", "dead", "counts",
        ]
        .map(|name| format!("{prefix}{name}"));
        QueueKeys { prefix, fixed }
    }
    pub(crate) fn stream(&self) -> &str {
        &self.fixed[0]
    }
    pub(crate) fn delayed(&self) -> &str {
        &self.fixed[1]
    }
    pub(crate) fn leases(&self) -> &str {
        &self.fixed[2]
    }
    pub(crate) fn jobs(&self) -> &str {
        &self.fixed[3]
    }
    pub(crate) fn done(&self) -> &str {
        &self.fixed[4]
    }
    pub(crate) fn dead(&self) -> &str {
        &self.fixed[5]
    }
    pub(crate) fn counts(&self) -> &str {
        &self.fixed[6]
    }
    pub(crate) fn job(&self, id: &str) -> String {
        format!("{}job:{id}", self.prefix)
    }
    /// A parent's children (zset: `<child id> <child queue>` → spawn index).
    pub(crate) fn kids(&self, id: &str) -> String {
        format!("{}kids:{id}", self.prefix)
    }
    /// Cancelled parents whose subtree's cancel is not confirmed done (zset: id → when
    /// the cancel was recorded, ms).
    pub(crate) fn cascade(&self) -> String {
        format!("{}cascade", self.prefix)
    }
    /// An owner's retained jobs by creation time (zset). The owner is the key's tail,
    /// so any characters are data; callers bound its length first.
    pub(crate) fn owner_jobs(&self, owner: &str) -> String {
        format!("{}owner:{owner}", self.prefix)
    }
    /// Owner → how many of its jobs are not final (hash; the pending quota). Only the
    /// scripts write it; here for the test that every key carries the queue's tag.
    #[cfg(test)]
    pub(crate) fn active(&self) -> String {
        format!("{}active", self.prefix)
    }
    /// Time of the last enqueue (ms); absent once the registry forgot the queue.
    pub(crate) fn used(&self) -> String {
        format!("{}used", self.prefix)
    }
    /// Flow control: limits and pause state (hash; see `lua/flow.lua`).
    pub(crate) fn settings(&self) -> String {
        format!("{}settings", self.prefix)
    }
    /// Priorities that have lists (zset scored by priority).
    pub(crate) fn priorities(&self) -> String {
        format!("{}prios", self.prefix)
    }
    /// Job types that have a held list (set).
    pub(crate) fn held_types(&self) -> String {
        format!("{}held_types", self.prefix)
    }
    /// Starts in the last second, while a rate limit is set (zset by time).
    pub(crate) fn starts(&self) -> String {
        format!("{}starts", self.prefix)
    }
    /// Jobs that wait on the stream with no record (hash: the UUID's 16 bytes →
    /// `<entry id> <type> <input>`; docs/STORAGE.md, layout 4).
    pub(crate) fn waiting(&self) -> String {
        format!("{}waiting", self.prefix)
    }
    /// Pub/sub channel on which a job's changes are announced (no payload).
    pub(crate) fn events(&self, id: &str) -> String {
        format!("{}ev:{id}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_queue_shares_its_hash_tag() {
        let keys = QueueKeys::new("mail");
        for key in keys.fixed.iter().cloned().chain([
            keys.job("x"),
            keys.events("x"),
            keys.owner_jobs("x"),
            keys.active(),
            keys.used(),
            keys.settings(),
            keys.priorities(),
            keys.starts(),
            keys.waiting(),
        ]) {
            assert!(key.starts_with("tether:{mail}:"), "{key}");
        }
    }
}
