//! What a job type's code implements: Heat's `handle` then `check_complete`.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tether_model::{ErrorCode, Phase};
use tether_store::{decode, encode};

use crate::JobContext;

/// What `handle` returns: the job is already done, or it started and `check_complete`
/// must be polled with this progress object.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<P, O> {
    /// Synchronous work: finished with this output.
    Done(O),
    /// Asynchronous work: started; poll `check_complete` with this progress object.
    Started(P),
}

/// What one `check_complete` call found.
#[derive(Debug, Clone, PartialEq)]
pub enum Check<O> {
    Done(O),
    /// Not yet; the progress object (possibly updated) is checkpointed and the check polled again.
    Pending,
}

/// A handler's error. Transient errors retry with the job's backoff while attempts
/// remain; fatal ones fail the job at once.
///
/// ```
/// use tether_worker::JobError;
/// let e = JobError::fatal("bad image").with_code("CorruptImage").with_info(["sector 7"]);
/// assert!(!e.transient);
/// assert_eq!(e.code.as_str(), "CorruptImage");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct JobError {
    pub transient: bool,
    pub code: ErrorCode,
    pub message: String,
    pub info: Vec<String>,
}

impl JobError {
    /// An error worth retrying (network blip, busy dependency).
    pub fn transient(message: impl Into<String>) -> Self {
        JobError {
            transient: true,
            code: ErrorCode::Custom("Error".into()),
            message: message.into(),
            info: Vec::new(),
        }
    }

    /// An error no retry can fix (bad input, permanent refusal).
    pub fn fatal(message: impl Into<String>) -> Self {
        JobError {
            transient: false,
            ..Self::transient(message)
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = ErrorCode::from(code.into().as_str());
        self
    }

    pub fn with_info<I: IntoIterator<Item = S>, S: Into<String>>(mut self, info: I) -> Self {
        self.info = info.into_iter().map(Into::into).collect();
        self
    }

    pub(crate) fn reserved(code: ErrorCode, transient: bool, message: impl Into<String>) -> Self {
        JobError {
            transient,
            code,
            message: message.into(),
            info: Vec::new(),
        }
    }
}

/// A job type's code.
///
/// `handle` starts the work. Work that finishes there returns [`Step::Done`];
/// work that continues elsewhere (an image import, a VM boot) returns
/// [`Step::Started`] with a progress object, and the runtime then polls
/// `check_complete` with backoff, checkpointing the object in Redis after each
/// step. A job taken over after a crash resumes at `check_complete` with the
/// last checkpoint; `handle` does not run again once it has been checkpointed.
///
/// Handler code that blocks a thread must use `tokio::task::spawn_blocking`.
///
/// ```
/// use tether_worker::{Handler, JobContext, JobError, Step, Check};
///
/// struct Resize;
///
/// impl Handler for Resize {
///     type Input = u32;
///     type Progress = u32;   // pixels done
///     type Output = String;
///
///     async fn handle(&self, _ctx: &JobContext, width: &u32) -> Result<Step<u32, String>, JobError> {
///         if *width == 0 { return Err(JobError::fatal("width must be positive")); }
///         Ok(Step::Started(0))
///     }
///
///     async fn check_complete(&self, ctx: &JobContext, width: &u32, done: &mut u32) -> Result<Check<String>, JobError> {
///         *done += 1;
///         ctx.set_progress((*done * 100 / *width) as i64, "resizing").await?;
///         Ok(if done == width { Check::Done(format!("{width}px")) } else { Check::Pending })
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    type Input: DeserializeOwned + Send + Sync;
    type Progress: Serialize + DeserializeOwned + Send + Sync;
    type Output: Serialize + Send;

    /// Starts (or does) the work.
    fn handle(
        &self,
        ctx: &JobContext,
        input: &Self::Input,
    ) -> impl Future<Output = Result<Step<Self::Progress, Self::Output>, JobError>> + Send;

    /// Polled after `handle` returned [`Step::Started`], until done or failed.
    fn check_complete(
        &self,
        _ctx: &JobContext,
        _input: &Self::Input,
        _progress: &mut Self::Progress,
    ) -> impl Future<Output = Result<Check<Self::Output>, JobError>> + Send {
        async { Err(JobError::fatal("this handler has no check_complete step")) }
    }

    /// First and largest pause between `check_complete` polls (doubling in between).
    fn check_interval(&self) -> (Duration, Duration) {
        (Duration::from_millis(100), Duration::from_secs(5))
    }
}

/// A handler with its types erased, so handlers of any types share one registry.
pub(crate) trait ErasedHandler: Send + Sync {
    /// Runs the Heat loop; returns the encoded output.
    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Vec<u8>, JobError>>;
}

impl<H: Handler> ErasedHandler for H {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Vec<u8>, JobError>> {
        Box::pin(async move {
            let invalid = |e: tether_store::StoreError| {
                JobError::reserved(
                    ErrorCode::InvalidPayload,
                    false,
                    format!("cannot decode the job's input: {e}"),
                )
            };
            let input: H::Input = decode("input", ctx.raw_input()).map_err(invalid)?;
            let mut progress: H::Progress = match ctx.resume_checkpoint() {
                Some(bytes) => decode("checkpoint", bytes).map_err(invalid)?,
                None => {
                    ctx.set_phase(Phase::Handle);
                    match self.handle(ctx, &input).await? {
                        Step::Done(output) => return encode_output(&output),
                        Step::Started(progress) => {
                            ctx.checkpoint(Phase::Check, &encode_output(&progress)?)
                                .await?;
                            progress
                        }
                    }
                }
            };
            ctx.set_phase(Phase::Check);
            let (mut pause, max_pause) = self.check_interval();
            loop {
                match self.check_complete(ctx, &input, &mut progress).await? {
                    Check::Done(output) => return encode_output(&output),
                    Check::Pending => {
                        ctx.checkpoint(Phase::Check, &encode_output(&progress)?)
                            .await?;
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(max_pause);
                    }
                }
            }
        })
    }
}

fn encode_output<T: Serialize>(value: &T) -> Result<Vec<u8>, JobError> {
    encode(value).map_err(|e| JobError::fatal(format!("cannot encode the handler's value: {e}")))
}
