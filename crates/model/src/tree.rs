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

/// Calls `visit` on every job a batch `spec` carries, however deep: its jobs and `then`,
/// and theirs. A caller that holds a tenant to its queues, types and quota checks each
/// of them (a batch's jobs are enqueued later, by a worker, out of the API's reach).
/// Each is given without its input: the walk reads the batch's input in place and
/// copies no input, so a hostile batch costs no more memory than its own JSON. Nothing
/// is visited for a job of another type. A batch whose input its worker could not read
/// is refused here.
///
/// ```
/// use tether_model::JobSpec;
/// use tether_model::tree::{BATCH_TYPE, BatchInput, each_batch_job};
/// let batch = BatchInput { jobs: vec![JobSpec::new("resize")], then: JobSpec::new("notify") };
/// let spec = JobSpec::new(BATCH_TYPE).input(&batch).unwrap();
/// let mut types = Vec::new();
/// each_batch_job::<tether_model::SpecError>(&spec, &mut |job| {
///     types.push(job.job_type.clone());
///     Ok(())
/// })
/// .unwrap();
/// assert_eq!(types, ["resize", "notify"]);
/// ```
pub fn each_batch_job<E: From<crate::SpecError>>(
    spec: &crate::JobSpec,
    visit: &mut dyn FnMut(&crate::JobSpec) -> Result<(), E>,
) -> Result<(), E> {
    if spec.job_type == BATCH_TYPE {
        walk_batch(&spec.input, visit)?;
    }
    Ok(())
}

/// A batch input's `jobs` and `then`, in either form its worker reads: an object, or
/// the array `[jobs, then]` (serde reads a struct from a sequence too).
fn batch_parts(
    input: &serde_json::Value,
) -> (Option<&serde_json::Value>, Option<&serde_json::Value>) {
    match input {
        serde_json::Value::Array(parts) if parts.len() == 2 => (parts.first(), parts.get(1)),
        serde_json::Value::Array(_) => (None, None),
        input => (input.get("jobs"), input.get("then")),
    }
}

fn walk_batch<E: From<crate::SpecError>>(
    input: &serde_json::Value,
    visit: &mut dyn FnMut(&crate::JobSpec) -> Result<(), E>,
) -> Result<(), E> {
    let refused = |why: String| E::from(crate::SpecError::Batch(why));
    let (jobs, then) = batch_parts(input);
    let jobs = jobs
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| refused("field jobs: an array of jobs".into()))?;
    let then = then.ok_or_else(|| refused("field then: a job".into()))?;
    for job in jobs.iter().chain([then]) {
        let fields = job
            .as_object()
            .ok_or_else(|| refused("a job is an object".into()))?;
        // The job without its input (the one field of any size), read as the worker
        // would read it whole.
        let mut light: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .filter(|(name, _)| name.as_str() != "input")
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        if fields.contains_key("input") {
            light.insert("input".into(), serde_json::Value::Null);
        }
        let spec = crate::JobSpec::deserialize(serde_json::Value::Object(light))
            .map_err(|e| refused(e.to_string()))?;
        visit(&spec)?;
        if spec.job_type == BATCH_TYPE {
            let input = fields.get("input").unwrap_or(&serde_json::Value::Null);
            walk_batch(input, visit)?;
        }
    }
    Ok(())
}

/// Calls `rewrite` on the JSON object of every job a batch `spec` carries, however deep
/// (as [`each_batch_job`] visits them, which should have read the batch first: a part
/// of another shape is passed over). For a caller that scopes a batch's jobs as the
/// batch is scoped; the input is rewritten in place.
pub fn each_batch_job_mut(
    spec: &mut crate::JobSpec,
    rewrite: &mut dyn FnMut(&mut serde_json::Map<String, serde_json::Value>),
) {
    if spec.job_type == BATCH_TYPE {
        rewrite_batch(&mut spec.input, rewrite);
    }
}

fn rewrite_batch(
    input: &mut serde_json::Value,
    rewrite: &mut dyn FnMut(&mut serde_json::Map<String, serde_json::Value>),
) {
    // (The same two parts as `batch_parts`, borrowed to be rewritten.)
    let parts: Vec<(&str, &mut serde_json::Value)> = match input {
        serde_json::Value::Object(batch) => batch
            .iter_mut()
            .map(|(name, value)| (name.as_str(), value))
            .collect(),
        serde_json::Value::Array(parts) if parts.len() == 2 => {
            ["jobs", "then"].into_iter().zip(parts.iter_mut()).collect()
        }
        _ => return,
    };
    let mut jobs: Vec<&mut serde_json::Value> = Vec::new();
    for part in parts {
        match part {
            ("jobs", serde_json::Value::Array(list)) => jobs.extend(list.iter_mut()),
            ("then", then) => jobs.push(then),
            _ => {}
        }
    }
    for job in jobs {
        let Some(fields) = job.as_object_mut() else {
            continue;
        };
        rewrite(fields);
        let is_batch =
            fields.get("job_type").and_then(serde_json::Value::as_str) == Some(BATCH_TYPE);
        if is_batch && let Some(input) = fields.get_mut("input") {
            rewrite_batch(input, rewrite);
        }
    }
}

/// How many unfinished jobs `spec` amounts to: 1, and for a batch 1 more for each job it
/// carries, however deep (a quota counts them when the batch is enqueued). A batch its
/// worker could not read counts as 1 (it will fail without spawning).
pub fn job_weight(spec: &crate::JobSpec) -> u64 {
    let mut weight = 1;
    let walked = each_batch_job::<crate::SpecError>(spec, &mut |_| {
        weight += 1;
        Ok(())
    });
    if walked.is_ok() { weight } else { 1 }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JobSpec;

    fn batch(jobs: Vec<JobSpec>, then: JobSpec) -> JobSpec {
        JobSpec::new(BATCH_TYPE)
            .input(&BatchInput { jobs, then })
            .unwrap()
    }

    #[test]
    fn a_batch_weighs_every_job_it_carries_however_deep() {
        let mut spec = batch(vec![JobSpec::new("a")], JobSpec::new("then"));
        for _ in 0..30 {
            spec = batch(vec![spec, JobSpec::new("b")], JobSpec::new("then"));
        }
        // Each level: the batch, "b" and `then`; the innermost: the batch, "a", `then`.
        assert_eq!(job_weight(&spec), 1 + 30 * 3 + 2);
        assert_eq!(job_weight(&JobSpec::new("plain")), 1);
    }

    #[test]
    fn a_batch_its_worker_could_not_read_is_refused_and_weighs_one() {
        let mut unreadable = Vec::new();
        for input in [
            serde_json::json!({"jobs": "all"}),
            serde_json::json!({"jobs": []}),
            serde_json::json!({"jobs": [7], "then": JobSpec::new("t")}),
            // A job with no input is not read by the worker either.
            serde_json::json!({"jobs": [], "then": {"queue": "default", "job_type": "t"}}),
        ] {
            let spec = JobSpec::new(BATCH_TYPE).input_json(input.clone());
            let walked = each_batch_job::<crate::SpecError>(&spec, &mut |_| Ok(()));
            assert!(matches!(walked, Err(crate::SpecError::Batch(_))), "{input}");
            assert_eq!(job_weight(&spec), 1);
            unreadable.push(serde_json::from_value::<BatchInput>(input).is_err());
        }
        assert_eq!(unreadable, [true; 4], "the worker refuses each of them too");
    }

    #[test]
    fn the_array_form_the_worker_reads_is_walked_and_rewritten() {
        let inner = serde_json::json!([[JobSpec::new("a"), JobSpec::new("b")], JobSpec::new("t")]);
        assert!(serde_json::from_value::<BatchInput>(inner.clone()).is_ok());
        let mut spec = batch(
            vec![JobSpec::new(BATCH_TYPE).input_json(inner)],
            JobSpec::new("then"),
        );
        assert_eq!(job_weight(&spec), 1 + 1 + 3 + 1);
        each_batch_job_mut(&mut spec, &mut |job| {
            job.insert("owner".into(), "alice".into());
        });
        let mut owners = Vec::new();
        each_batch_job::<crate::SpecError>(&spec, &mut |job| {
            owners.push(job.owner.clone().unwrap_or_default());
            Ok(())
        })
        .unwrap();
        assert_eq!(owners, ["alice"; 5]);
    }
}
