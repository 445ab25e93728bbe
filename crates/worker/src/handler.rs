//! What a job type's code implements: [`OneStep`] (input to output) or [`Handler`]
//! (Heat's `handle` then `check_complete`). The builder takes either through
//! [`IntoHandler`] and keeps both behind one erased trait.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tether_model::{ErrorCode, Phase};
use tether_store::{decode, encode};

use crate::JobContext;
use crate::trace::StepSpan;

/// What `handle` returns: the job is already done, or it started and `check_complete`
/// must be polled with this progress object.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Step<P, O> {
    /// Synchronous work: finished with this output.
    Done(O),
    /// Asynchronous work: started; poll `check_complete` with this progress object.
    Started(P),
    /// Not now: end this attempt without spending it, free the worker's slot, and run
    /// the job again after this delay (from the start).
    Snooze(Duration),
}

/// What one `check_complete` call found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Check<O> {
    /// Finished with this output.
    Done(O),
    /// Not yet; the progress object (possibly updated) is checkpointed and the check polled again.
    Pending,
    /// Not now: end this attempt without spending it; the job resumes at
    /// `check_complete` (from the last checkpoint) after this delay.
    Snooze(Duration),
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
#[non_exhaustive]
pub struct JobError {
    pub transient: bool,
    pub code: ErrorCode,
    pub message: String,
    pub info: Vec<String>,
    /// Set by [`JobError::snooze`] and [`JobError::rate_limited`]: not an error but a
    /// request to run again after this delay, without spending the attempt.
    pub snooze: Option<Duration>,
}

impl JobError {
    /// An error worth retrying (network blip, busy dependency).
    pub fn transient(message: impl Into<String>) -> Self {
        JobError {
            transient: true,
            code: ErrorCode::Custom("Error".into()),
            message: message.into(),
            info: Vec::new(),
            snooze: None,
        }
    }

    /// Ends the attempt without spending it and frees the worker's slot; the job runs
    /// again after `delay` (a resumable job from its last checkpoint).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tether_worker::JobError;
    /// let later = JobError::snooze(Duration::from_secs(5));
    /// assert_eq!(later.snooze, Some(Duration::from_secs(5)));
    /// ```
    pub fn snooze(delay: Duration) -> Self {
        JobError {
            snooze: Some(delay),
            ..Self::transient(format!("snoozed for {:.3}s", delay.as_secs_f64()))
        }
    }

    /// A downstream service said "too many requests" (HTTP 429): the same as
    /// [`JobError::snooze`] for `retry_after`.
    pub fn rate_limited(retry_after: Duration) -> Self {
        JobError {
            message: format!(
                "rate limited downstream; again in {:.3}s",
                retry_after.as_secs_f64()
            ),
            ..Self::snooze(retry_after)
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
            snooze: None,
        }
    }
}

/// A job that runs in one step, from its input to its output: the simple case.
///
/// A job taken over after a crash runs again from the start. Work that goes on
/// elsewhere and should resume where it was (an image import, a VM boot) is a
/// [`Handler`] instead.
///
/// Handler code that blocks a thread must use `tokio::task::spawn_blocking`.
///
/// ```
/// use tether_worker::{JobContext, JobError, OneStep};
///
/// struct Greet;
///
/// impl OneStep for Greet {
///     type Input = String;
///     type Output = String;
///
///     async fn run(&self, _ctx: &JobContext, name: String) -> Result<String, JobError> {
///         Ok(format!("hello, {name}"))
///     }
/// }
/// ```
pub trait OneStep: Send + Sync + 'static {
    type Input: DeserializeOwned + Send;
    type Output: Serialize + Send;

    /// Does the work.
    fn run(
        &self,
        ctx: &JobContext,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, JobError>> + Send;
}

/// A job type whose work continues after it starts: OpenStack Heat's `handle`, then
/// `check_complete` until done.
///
/// `handle` starts the work. Work that finishes there returns [`Step::Done`];
/// work that continues elsewhere (an image import, a VM boot) returns
/// [`Step::Started`] with a progress object, and the runtime then polls
/// `check_complete` with backoff, checkpointing the object in Redis after each
/// step. A job taken over after a crash resumes at `check_complete` with the
/// last checkpoint; `handle` does not run again once it has been checkpointed.
/// A job that needs no `check_complete` is a [`OneStep`].
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
///
/// `check_complete` is required, so a handler that forgets it does not compile:
///
/// ```compile_fail
/// use tether_worker::{Handler, JobContext, JobError, Step};
///
/// struct Boot;
///
/// impl Handler for Boot {
///     type Input = String;
///     type Progress = String;
///     type Output = ();
///
///     async fn handle(&self, _ctx: &JobContext, vm: &String) -> Result<Step<String, ()>, JobError> {
///         Ok(Step::Started(vm.clone()))
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
        ctx: &JobContext,
        input: &Self::Input,
        progress: &mut Self::Progress,
    ) -> impl Future<Output = Result<Check<Self::Output>, JobError>> + Send;

    /// First and largest pause between `check_complete` polls (doubling in between).
    fn check_interval(&self) -> (Duration, Duration) {
        (Duration::from_millis(100), Duration::from_secs(5))
    }
}

/// What [`WorkerBuilder::handler`](crate::WorkerBuilder::handler) and
/// [`WorkerBuilder::register`](crate::WorkerBuilder::register) take: every
/// [`OneStep`] and every [`Handler`]. `Kind` only tells the two apart; it is
/// inferred, never written.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a job handler",
    note = "implement `OneStep` (input to output) or `Handler` (`handle`, then `check_complete`)"
)]
pub trait IntoHandler<Kind>: Send + Sync + 'static {
    /// The input its jobs carry.
    type Input;

    #[doc(hidden)]
    fn into_erased(self) -> Arc<dyn ErasedHandler>;
}

/// The [`IntoHandler`] kinds.
pub mod kind {
    /// A [`OneStep`](crate::OneStep).
    #[derive(Debug)]
    pub enum OneStep {}
    /// A [`Handler`](crate::Handler).
    #[derive(Debug)]
    pub enum Resumable {}
}

impl<H: OneStep> IntoHandler<kind::OneStep> for H {
    type Input = H::Input;
    fn into_erased(self) -> Arc<dyn ErasedHandler> {
        Arc::new(Single(self))
    }
}

impl<H: Handler> IntoHandler<kind::Resumable> for H {
    type Input = H::Input;
    fn into_erased(self) -> Arc<dyn ErasedHandler> {
        Arc::new(Resumable(self))
    }
}

/// A handler with its types erased, so handlers of any types share one registry.
#[doc(hidden)]
pub trait ErasedHandler: Send + Sync {
    /// Runs the job; returns the encoded output.
    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Vec<u8>, JobError>>;
}

struct Single<H>(H);

impl<H: OneStep> ErasedHandler for Single<H> {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Vec<u8>, JobError>> {
        Box::pin(async move {
            let input: H::Input = decode_payload("input", ctx.raw_input())?;
            // A one-step job has nothing to resume: it runs from the start.
            ctx.set_phase(Phase::Handle);
            let span = ctx.trace().step("handle");
            let output = traced(&span, span.run(self.0.run(ctx, input)).await)?;
            encode_output(&output)
        })
    }
}

struct Resumable<H>(H);

/// The Heat loop: `handle` unless a checkpoint says it ran, then `check_complete`
/// with backoff, checkpointing the progress object after each step.
impl<H: Handler> ErasedHandler for Resumable<H> {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Vec<u8>, JobError>> {
        let handler = &self.0;
        Box::pin(async move {
            let input: H::Input = decode_payload("input", ctx.raw_input())?;
            let mut progress: H::Progress = match ctx.resume_checkpoint() {
                Some(bytes) => decode_payload("checkpoint", bytes)?,
                None => {
                    ctx.set_phase(Phase::Handle);
                    let span = ctx.trace().step("handle");
                    let step = traced(&span, span.run(handler.handle(ctx, &input)).await)?;
                    drop(span);
                    match step {
                        Step::Done(output) => return encode_output(&output),
                        Step::Snooze(delay) => return Err(JobError::snooze(delay)),
                        Step::Started(progress) => {
                            ctx.checkpoint(Phase::Check, &encode_output(&progress)?)
                                .await?;
                            progress
                        }
                    }
                }
            };
            ctx.set_phase(Phase::Check);
            let (mut pause, max_pause) = handler.check_interval();
            loop {
                let span = ctx.trace().step("check_complete");
                let check = span
                    .run(handler.check_complete(ctx, &input, &mut progress))
                    .await;
                let check = traced(&span, check)?;
                drop(span);
                match check {
                    Check::Done(output) => return encode_output(&output),
                    Check::Snooze(delay) => {
                        // What the check learnt is kept: the next attempt resumes here.
                        ctx.checkpoint(Phase::Check, &encode_output(&progress)?)
                            .await?;
                        return Err(JobError::snooze(delay));
                    }
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

/// Marks a step's span failed when the step failed.
fn traced<T>(span: &StepSpan, result: Result<T, JobError>) -> Result<T, JobError> {
    if let Err(e) = &result
        && e.snooze.is_none()
    {
        span.fail(&e.message);
    }
    result
}

/// Decodes the job's input or checkpoint; a payload of the wrong shape fails the job
/// fatally (`InvalidPayload`): no retry can change it.
fn decode_payload<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, JobError> {
    decode(what, bytes).map_err(|e| {
        JobError::reserved(
            ErrorCode::InvalidPayload,
            false,
            format!("cannot decode the job's input: {e}"),
        )
    })
}

fn encode_output<T: Serialize>(value: &T) -> Result<Vec<u8>, JobError> {
    encode(value).map_err(|e| JobError::fatal(format!("cannot encode the handler's value: {e}")))
}
