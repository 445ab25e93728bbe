//! Task trees (vSphere `parentTaskKey` / `rootTaskKey`, Xen `subtask_of` / `subtasks`): a
//! running job spawns children; each child knows its parent and the tree's root.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::JobId;

/// Where a child belongs: its parent (and the parent's queue, which may differ from the
/// child's) and the root of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentLink {
    pub id: JobId,
    pub queue: String,
    pub root: JobId,
}

/// What a child's failure (or cancel) does to a waiting parent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Wait for every child, then let the handler decide (the default).
    #[default]
    WaitAll,
    /// Fail the parent at once, cancelling the children still running.
    FailFast,
}

/// The job type of a batch's parent (`Producer::enqueue_batch`), whose handler every
/// worker has.
pub const BATCH_TYPE: &str = "tether.batch";

/// A batch parent's input: the jobs it spawns, and the job it enqueues once they are all
/// final.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchInput {
    pub jobs: Vec<crate::JobSpec>,
    pub then: crate::JobSpec,
}

/// Every job `spec` brings into being: itself first and, for a batch, its jobs and `then`
/// and theirs. A caller that holds a tenant to its queues, types and quota checks
/// each of them (a batch's jobs are enqueued later, by a worker, out of the API's reach).
/// A batch whose input is not a [`BatchInput`] is refused here (its worker would fail it).
///
/// ```
/// use tether_model::JobSpec;
/// use tether_model::tree::{BATCH_TYPE, BatchInput, jobs_of};
/// let batch = BatchInput { jobs: vec![JobSpec::new("resize")], then: JobSpec::new("notify") };
/// let spec = JobSpec::new(BATCH_TYPE).input(&batch).unwrap();
/// let types: Vec<String> = jobs_of(&spec).unwrap().into_iter().map(|s| s.job_type).collect();
/// assert_eq!(types, [BATCH_TYPE, "resize", "notify"]);
/// ```
pub fn jobs_of(spec: &crate::JobSpec) -> Result<Vec<crate::JobSpec>, crate::SpecError> {
    let mut found = vec![spec.clone()];
    // (Each batch's input is read from the one before it: nesting is bounded by the
    // depth its JSON could have, and the work by the payload's size times that depth.)
    let mut next = 0;
    while next < found.len() {
        if found[next].job_type == BATCH_TYPE {
            let batch = BatchInput::deserialize(&found[next].input)
                .map_err(|e| crate::SpecError::Batch(e.to_string()))?;
            found.extend(batch.jobs);
            found.push(batch.then);
        }
        next += 1;
    }
    Ok(found)
}

/// The most children ids a job's record shows in `subtasks`.
pub const MAX_SUBTASKS_SHOWN: usize = 1000;

/// The longest key a handler may give a child (bytes).
pub const MAX_CHILD_KEY: usize = 256;

/// The id of `parent`'s child of `key` (a key the handler gives, or the child's index as
/// `#<index>`): the same every time, so a handler that runs again after a crash spawns
/// the same children, and their enqueue finds them written. It carries the parent's
/// time, so children sort after their parent.
///
/// ```
/// use tether_model::{JobId, tree::child_id};
/// let parent = JobId::new();
/// assert_eq!(child_id(parent, "#0"), child_id(parent, "#0"));
/// assert_ne!(child_id(parent, "#0"), child_id(parent, "#1"));
/// assert!(child_id(parent, "#0") > parent);
/// ```
pub fn child_id(parent: JobId, key: &str) -> JobId {
    let uuid = parent.as_uuid();
    let ms = uuid
        .get_timestamp()
        .map(|t| {
            let (s, ns) = t.to_unix();
            s * 1000 + u64::from(ns) / 1_000_000
        })
        .unwrap_or(0);
    let mut hash = Sha256::new();
    hash.update(uuid.as_bytes());
    hash.update([0]);
    hash.update(key.as_bytes());
    let digest = hash.finalize();
    let mut bits = [0u8; 10];
    bits.copy_from_slice(&digest[..10]);
    // One millisecond after the parent: a child sorts after it, whatever its bits.
    JobId::from_uuid(uuid::Builder::from_unix_timestamp_millis(ms + 1, &bits).into_uuid())
}

/// A parent's progress from its children's: Σ wᵢ·pᵢ / Σ wᵢ, with a final child counting
/// 100 and each weight at least 1; 0 with no children.
///
/// ```
/// use tether_model::tree::roll_up;
/// assert_eq!(roll_up([(100, 1), (0, 1)]), 50);
/// assert_eq!(roll_up([(100, 3), (0, 1)]), 75);
/// assert_eq!(roll_up(std::iter::empty()), 0);
/// ```
pub fn roll_up(children: impl IntoIterator<Item = (u8, u32)>) -> u8 {
    let (mut done, mut total) = (0u64, 0u64);
    for (progress, weight) in children {
        let w = u64::from(weight.max(1));
        done += w * u64::from(progress.min(100));
        total += w;
    }
    done.checked_div(total).unwrap_or(0) as u8
}
