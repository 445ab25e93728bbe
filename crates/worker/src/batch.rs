//! Batches (Sidekiq Pro batches, BullMQ flows): a parent of type
//! [`BATCH_TYPE`](tether_model::tree::BATCH_TYPE) with no handler of its own. Every worker
//! registers this one: it spawns the batch's jobs as its children, waits for them all,
//! and then enqueues the batch's `then` job once, with a summary of the outcomes as its
//! input.

use serde_json::{Value, json};
use tether_model::Status;
use tether_model::tree::{BatchInput, FailurePolicy, child_id};

use crate::{Check, Handler, JobContext, JobError, Step};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Batch;

impl Handler for Batch {
    type Input = BatchInput;
    type Progress = usize;
    type Output = Value;

    async fn handle(
        &self,
        ctx: &JobContext,
        input: &BatchInput,
    ) -> Result<Step<usize, Value>, JobError> {
        for spec in &input.jobs {
            ctx.spawn(spec.clone()).await?;
        }
        Ok(Step::Started(input.jobs.len()))
    }

    async fn check_complete(
        &self,
        ctx: &JobContext,
        input: &BatchInput,
        spawned: &mut usize,
    ) -> Result<Check<Value>, JobError> {
        let Some(children) = ctx.fan_in(FailurePolicy::WaitAll).await? else {
            return Ok(Check::Pending);
        };
        if children.len() < *spawned {
            return Ok(Check::Pending);
        }
        let count = |status: Status| children.iter().filter(|c| c.status == Some(status)).count();
        let failed: Vec<String> = children
            .iter()
            .filter(|c| c.status != Some(Status::Success))
            .map(|c| c.id.to_string())
            .collect();
        let summary = json!({
            "batch": ctx.id().to_string(),
            "total": children.len(),
            "succeeded": count(Status::Success),
            "failed": count(Status::Failure),
            "cancelled": count(Status::Cancelled),
            "failed_ids": failed,
        });
        // The summary is `then`'s input; one that has an input of its own gets the
        // summary beside it, under `summary`.
        let mut then = input.then.clone();
        then.input = match then.input.take() {
            Value::Null => summary.clone(),
            Value::Object(mut own) => {
                own.insert("summary".into(), summary.clone());
                Value::Object(own)
            }
            own => json!({"summary": summary, "input": own}),
        };
        let mut summary = summary;
        // Its id is derived from the batch: a fan-in that runs again (a worker died after
        // the enqueue) finds it written, so `then` is enqueued once.
        let then_id = child_id(ctx.id(), "then");
        // `then` is the batch's owner's, in the owner's groups, whatever its spec says, as
        // the jobs are (a spawn makes a child its parent's owner's): the spec came from
        // the batch's creator. Nor is it anyone's child (a spawn sets a parent).
        if let Some(owner) = ctx.owner().await? {
            then = then.owned_by(&owner);
        }
        then.parent = None;
        ctx.enqueue_once(then, then_id).await?;
        summary["then"] = json!(then_id.to_string());
        Ok(Check::Done(summary))
    }

    fn check_interval(&self) -> (std::time::Duration, std::time::Duration) {
        (
            std::time::Duration::from_millis(20),
            std::time::Duration::from_millis(500),
        )
    }
}
