//! Caps on open event streams, in total and per caller: each stream holds a
//! connection, a task and a pub/sub subscription for as long as the client
//! likes, so one token must not be able to hold them all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use crate::error::ApiError;

/// Counts of open streams.
#[derive(Debug)]
pub(crate) struct StreamSlots {
    total_max: usize,
    per_caller_max: usize,
    open: Mutex<(usize, HashMap<String, usize>)>,
}

/// One open stream's slot, given back when dropped (when the stream ends or its
/// client goes away).
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<StreamSlots>,
    owner: String,
}

impl StreamSlots {
    pub(crate) fn new(total_max: usize, per_caller_max: usize) -> Arc<StreamSlots> {
        Arc::new(StreamSlots {
            total_max,
            per_caller_max,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A slot for `owner`, or 429 when either cap is reached.
    pub(crate) fn acquire(self: &Arc<Self>, owner: &str) -> Result<Slot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_caller) = &mut *open;
        let mine = per_caller.get(owner).copied().unwrap_or(0);
        if mine >= self.per_caller_max {
            return Err(too_many(format!(
                "this caller already has {mine} open event streams (the limit)"
            )));
        }
        if *total >= self.total_max {
            return Err(too_many(
                "the server has as many open event streams as it allows".into(),
            ));
        }
        *total += 1;
        *per_caller.entry(owner.to_owned()).or_insert(0) += 1;
        Ok(Slot {
            slots: self.clone(),
            owner: owner.to_owned(),
        })
    }
}

fn too_many(message: String) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyStreams",
        format!("{message}; close one or retry later"),
    )
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_caller) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_caller.get_mut(&self.owner) {
            *n -= 1;
            if *n == 0 {
                per_caller.remove(&self.owner);
            }
        }
    }
}
