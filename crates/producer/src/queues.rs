//! Steering a queue: its limits and pause state (flow control). Changing them is for
//! administrators: a producer scoped to an owner may read them but not change them.

use tether_model::{LimitsPatch, QueueSettings};
use tether_store::FlowState;

use crate::{Error, Producer};

impl Producer {
    /// A queue's flow-control settings (limits, paused, paused types).
    ///
    /// ```no_run
    /// # async fn demo(producer: tether_producer::Producer) -> Result<(), tether_producer::Error> {
    /// let settings = producer.queue_settings("images").await?;
    /// println!("paused: {}, concurrency: {:?}", settings.paused, settings.concurrency);
    /// # Ok(()) }
    /// ```
    pub async fn queue_settings(&self, queue: &str) -> Result<QueueSettings, Error> {
        Ok(self.store.queue_settings(queue).await?)
    }

    /// The settings with what flow control holds back now (running jobs, starts in
    /// the last second, jobs in priority and group lists).
    pub async fn queue_state(&self, queue: &str) -> Result<FlowState, Error> {
        Ok(self.store.flow_state(queue).await?)
    }

    /// Sets or clears limits (`Some(None)` clears one); every worker's next claim
    /// obeys them.
    ///
    /// ```no_run
    /// # async fn demo(producer: tether_producer::Producer) -> Result<(), tether_producer::Error> {
    /// use tether_producer::LimitsPatch;
    /// let limits = LimitsPatch { concurrency: Some(Some(20)), rate: Some(Some(100)), ..Default::default() };
    /// producer.set_queue_settings("mail", &limits).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_queue_settings(
        &self,
        queue: &str,
        limits: &LimitsPatch,
    ) -> Result<QueueSettings, Error> {
        self.admin_only("changing a queue's limits")?;
        limits.validate()?;
        Ok(self.store.set_limits(queue, limits).await?)
    }

    /// Pauses a queue: nothing new starts, running jobs finish, enqueues are accepted.
    pub async fn pause(&self, queue: &str) -> Result<QueueSettings, Error> {
        self.admin_only("pausing a queue")?;
        Ok(self.store.pause(queue, None).await?)
    }

    /// Resumes a paused queue.
    pub async fn resume(&self, queue: &str) -> Result<QueueSettings, Error> {
        self.admin_only("resuming a queue")?;
        Ok(self.store.resume(queue, None).await?)
    }

    /// Pauses one job type in a queue; the queue's other types keep running.
    pub async fn pause_type(&self, queue: &str, job_type: &str) -> Result<QueueSettings, Error> {
        self.admin_only("pausing a job type")?;
        tether_model::validate_job_type(job_type)?;
        Ok(self.store.pause(queue, Some(job_type)).await?)
    }

    /// Resumes a paused job type: its jobs become ready again, in their order.
    pub async fn resume_type(&self, queue: &str, job_type: &str) -> Result<QueueSettings, Error> {
        self.admin_only("resuming a job type")?;
        tether_model::validate_job_type(job_type)?;
        Ok(self.store.resume(queue, Some(job_type)).await?)
    }

    fn admin_only(&self, what: &'static str) -> Result<(), Error> {
        match self.owner {
            Some(_) => Err(Error::NotPermitted(what)),
            None => Ok(()),
        }
    }
}
