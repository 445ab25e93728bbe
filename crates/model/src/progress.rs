//! Progress clamping and the ETA estimate.
//!
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use tether_model::progress::{clamp, eta};
//! assert_eq!(clamp(-5), 0);
//! assert_eq!(clamp(250), 100);
//! let start = Utc.timestamp_opt(1_000, 0).unwrap();
//! let now = start + Duration::seconds(10);
//! // 25% done after 10 s: 30 s more at that rate.
//! assert_eq!(eta(start, now, 25), Some(now + Duration::seconds(30)));
//! ```

use chrono::{DateTime, Duration, Utc};

/// vSphere `UpdateProgress`: values below 0 become 0, above 100 become 100; never an error.
pub fn clamp(pct: i64) -> u8 {
    pct.clamp(0, 100) as u8
}

/// Xen `eta`: the completion time if the job keeps the rate it has shown since `started`.
///
/// `None` until there is some progress to extrapolate from.
pub fn eta(started: DateTime<Utc>, now: DateTime<Utc>, progress: u8) -> Option<DateTime<Utc>> {
    if progress == 0 {
        return None;
    }
    if progress >= 100 {
        return Some(now);
    }
    let elapsed_ms = (now - started).num_milliseconds().max(0);
    let remaining_ms = elapsed_ms * i64::from(100 - progress) / i64::from(progress);
    Some(now + Duration::milliseconds(remaining_ms))
}
