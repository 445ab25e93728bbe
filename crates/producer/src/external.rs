//! External tasks: created by a service and driven by it, not run by a worker.

use std::time::Duration;

use serde::Serialize;
use tether_model::SpecError;

use crate::{Drive, Driven, Error, Job, JobId, JobSpec, Producer};

/// A handle on an external task: the calls of its driver (vSphere `UpdateProgress`,
/// `SetTaskDescription`, `SetTaskState`; `HttpNfcLeaseProgress`, `Complete`, `Abort`).
/// Each call is checked against the task's state in Redis: after a final state every
/// call is refused with `InvalidState` and changes nothing.
///
/// ```no_run
/// use std::time::Duration;
/// use tether_producer::{JobSpec, Producer};
///
/// # async fn demo() -> Result<(), tether_producer::Error> {
/// let producer = Producer::connect("redis://127.0.0.1:6380").await?;
/// let task = producer
///     .create_external(JobSpec::new("export").name("export vm-42"), Duration::from_secs(30))
///     .await?;
/// for pct in [10, 50, 90] {
///     let answer = task.progress(pct, Some("copying disks")).await?;
///     if answer.cancel_requested {
///         task.abort(Some("RequestCanceled"), Some("stopped on request")).await?;
///         return Ok(());
///     }
/// }
/// task.complete(Some(&serde_json::json!({"url": "https://example.com/vm-42.ova"})))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ExternalTask {
    producer: Producer,
    id: JobId,
}

impl ExternalTask {
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Reports progress (clamped to 0–100) and renews the lease; the first report moves the
    /// task to `processing`. The answer says whether a cancel was requested and when the
    /// lease lapses unless renewed.
    pub async fn progress(&self, percent: i64, message: Option<&str>) -> Result<Driven, Error> {
        self.producer
            .drive(self.id, &Drive::Progress { percent, message })
            .await
    }

    /// Spawns `spec` as a child of this task, in any queue: a tree whose root no worker
    /// runs (its driver ends it, e.g. once every child of
    /// [`Producer::children`] is final). The child is identified by this task and `key`
    /// (1-256 bytes): the same key again spawns nothing and returns the same id. It gets
    /// the task's owner and tree root; cancelling the task cancels it too.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tether_producer::{JobSpec, Producer};
    ///
    /// # async fn demo() -> Result<(), tether_producer::Error> {
    /// let producer = Producer::connect("redis://127.0.0.1:6380").await?;
    /// let task = producer
    ///     .create_external(JobSpec::new("migrate"), Duration::from_secs(30))
    ///     .await?;
    /// for disk in ["disk-0", "disk-1"] {
    ///     let copy = JobSpec::new("copy").queue("disks").input(&disk).unwrap();
    ///     task.spawn(disk, copy).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn spawn(&self, key: &str, spec: JobSpec) -> Result<JobId, Error> {
        self.producer.spawn_under_external(self.id, key, spec).await
    }

    /// Sets the phase text (`progress_message`); does not renew the lease.
    pub async fn describe(&self, description: &str) -> Result<Driven, Error> {
        self.producer
            .drive(self.id, &Drive::Describe(description))
            .await
    }

    /// Ends the task with success and this result.
    pub async fn complete<T: Serialize + ?Sized>(
        &self,
        result: Option<&T>,
    ) -> Result<Driven, Error> {
        let result = result
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| Error::Spec(SpecError::Input(format!("result: {e}"))))?;
        self.producer
            .drive(self.id, &Drive::Complete(result.as_ref()))
            .await
    }

    /// Ends the task with failure: this error code (`Aborted` when none) and message.
    pub async fn abort(
        &self,
        error_code: Option<&str>,
        message: Option<&str>,
    ) -> Result<Driven, Error> {
        self.producer
            .drive(
                self.id,
                &Drive::Abort {
                    error_code,
                    message,
                },
            )
            .await
    }
}

impl Producer {
    /// Creates an external task (vSphere `TaskManager.CreateTask`): no worker runs it; the
    /// returned handle drives it. It starts `pending`, and fails with `Timedout` when no
    /// progress report comes within `lease_timeout` (1 s to 7 days) of its creation or of
    /// the last report (the workers serving its queue end it).
    pub async fn create_external(
        &self,
        spec: JobSpec,
        lease_timeout: Duration,
    ) -> Result<ExternalTask, Error> {
        let id = self.enqueue(spec.external(lease_timeout)).await?;
        Ok(self.external_task(id))
    }

    /// Like [`create_external`](Self::create_external), returning the record as created.
    pub async fn create_external_returning(
        &self,
        spec: JobSpec,
        lease_timeout: Duration,
    ) -> Result<Job, Error> {
        self.enqueue_returning(spec.external(lease_timeout)).await
    }

    /// A handle on an existing external task (nothing is read: the first call finds out
    /// whether it exists and is this producer's to drive).
    pub fn external_task(&self, id: JobId) -> ExternalTask {
        ExternalTask {
            producer: self.clone(),
            id,
        }
    }

    /// Spawns `spec` as the child `key` of the external task `parent` (see
    /// [`ExternalTask::spawn`]). A producer scoped to an owner spawns only under that
    /// owner's tasks (others are `NotFound`); a job workers run is `NotSupported` (its
    /// handler spawns its children), one that ended `InvalidState`.
    pub async fn spawn_under_external(
        &self,
        parent: JobId,
        key: &str,
        spec: JobSpec,
    ) -> Result<JobId, Error> {
        let queue = self.locate(parent).await?;
        let spec = self.scoped(spec);
        let spawned = self
            .store
            .spawn_under_external(&queue, parent, self.owner.as_deref(), key, spec.clone())
            .await?;
        self.remember(spawned.id, &spec.queue);
        Ok(spawned.id)
    }

    /// One call of an external task's driver. A producer scoped to an owner drives only
    /// that owner's tasks (others are `NotFound`); a job workers run is `NotSupported`.
    pub async fn drive(&self, id: JobId, call: &Drive<'_>) -> Result<Driven, Error> {
        let queue = self.locate(id).await?;
        Ok(self
            .store
            .drive(&queue, id, self.owner.as_deref(), call)
            .await?)
    }
}
