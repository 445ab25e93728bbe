//! Waiting for a condition: bounded polling with a short pause between probes.
//!
//! A probe returns `Ok(value)` once the condition holds and `Err(observation)`
//! while it does not; the last observation is what a timed-out wait reports, so
//! it is `Display` (a number, a JSON value, an error, or a `format!` of the state).

use std::fmt::Display;
use std::time::{Duration, Instant};

/// The first pause between two probes; it doubles up to [`MAX_PAUSE`], so a
/// condition that holds soon is seen soon and a long wait does not spin.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Polls `probe` until it returns `Ok`, for at most `timeout`, and returns that value.
///
/// In a task that must be `Send` (`tokio::spawn`), pass a `move` closure returning an
/// owned future (`move || { let p = p.clone(); async move { … } }`): the compiler
/// cannot yet prove `Send` for a future that borrows from an async closure.
///
/// # Panics
///
/// When `timeout` passes first, with `what` (phrased as the failure, "… never …")
/// and the last observation:
///
/// ```no_run
/// # async fn f(redis: &tether_testkit::RedisServer) {
/// use std::time::Duration;
/// let mut conn = redis.connection();
/// let len: usize = tether_testkit::eventually(Duration::from_secs(5), "the list never filled up", async || {
///     let len: usize = redis::cmd("LLEN").arg("list").query(&mut conn).unwrap();
///     if len >= 10 { Ok(len) } else { Err(len) }
/// })
/// .await;
/// # }
/// ```
pub async fn eventually<T, S: Display>(
    timeout: Duration,
    what: impl Display,
    probe: impl AsyncFnMut() -> Result<T, S>,
) -> T {
    match poll(timeout, probe).await {
        Ok(value) => value,
        Err(last) => timed_out(timeout, what, last),
    }
}

/// Polls `probe` until it returns `Ok`, for at most `timeout`: its first `Ok`, or
/// its last `Err` once `timeout` has passed. The probe runs at least once.
pub async fn poll<T, S>(
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, S>,
) -> Result<T, S> {
    let deadline = Instant::now() + timeout;
    let mut pause = FIRST_PAUSE;
    loop {
        match probe().await {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// [`eventually`] for a probe that blocks the thread (no runtime needed).
pub fn eventually_blocking<T, S: Display>(
    timeout: Duration,
    what: impl Display,
    probe: impl FnMut() -> Result<T, S>,
) -> T {
    match poll_blocking(timeout, probe) {
        Ok(value) => value,
        Err(last) => timed_out(timeout, what, last),
    }
}

/// [`poll`] for a probe that blocks the thread (no runtime needed).
pub fn poll_blocking<T, S>(
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, S>,
) -> Result<T, S> {
    let deadline = Instant::now() + timeout;
    let mut pause = FIRST_PAUSE;
    loop {
        match probe() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => {}
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

fn timed_out(timeout: Duration, what: impl Display, last: impl Display) -> ! {
    panic!("{what} within {timeout:?}; last observed: {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_ok_and_reports_the_last_observation() {
        let mut n = 0;
        let value = eventually_blocking(Duration::from_secs(5), "never three", || {
            n += 1;
            if n == 3 { Ok(n) } else { Err(n) }
        });
        assert_eq!(value, 3);

        let mut n = 0;
        let last = poll_blocking(Duration::from_millis(50), || -> Result<(), _> {
            n += 1;
            Err(n)
        });
        assert_eq!(last, Err(n));
        assert!(n >= 2, "polled again before giving up: {n}");

        let panic = std::panic::catch_unwind(|| {
            eventually_blocking(
                Duration::ZERO,
                "the count never grew",
                || -> Result<(), _> { Err(7) },
            )
        })
        .unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert_eq!(message, "the count never grew within 0ns; last observed: 7");
    }

    #[tokio::test]
    async fn the_async_probe_may_borrow_mutably() {
        let mut seen = Vec::new();
        let value = eventually(Duration::from_secs(5), "never two", async || {
            seen.push(());
            if seen.len() == 2 {
                Ok("done")
            } else {
                Err(seen.len())
            }
        })
        .await;
        assert_eq!((value, seen.len()), ("done", 2));
    }
}
