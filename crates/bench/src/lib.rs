//! What `tether bench` measures: throughput, latency and cost per job against a
//! private `redis-server` (or a given Redis) with real `tether worker` processes,
//! from Redis's own statistics. Every processing run counts its outcomes
//! (`verified`).
//!
//! The worker processes are the running executable started as `<exe> worker …`,
//! so these functions are meant to be called from the `tether` binary.
//!
//! * [`run`] — the whole [`Plan`], as [`Figures`];
//! * [`run_cluster`] — noop throughput on a 3-master Redis Cluster against one
//!   Redis, as [`ClusterFigures`];
//! * [`soak::run`] — a steady mixed workload for a long time, as
//!   [`soak::SoakFigures`].
//!
//! Each figures type serialises to the JSON object `tether bench --json` prints
//! (the keys are documented in `docs/BENCHMARKS.md`) and formats as a table.

mod figures;
mod flow;
mod latency;
mod plan;
mod process;
mod run;
pub mod soak;
mod target;
mod tree;
mod workers;

pub use figures::{ClusterFigures, Figures, RedisCeiling};
pub use plan::Plan;
pub use run::{CLUSTER_PHASES, PHASES, run, run_cluster};

/// Figures print as one JSON object with sorted keys (through a `serde_json::Value`,
/// whose map is ordered), the form scripts and docs have always read.
fn to_json<T: serde::Serialize>(figures: &T) -> String {
    serde_json::to_value(figures)
        .expect("figures serialise")
        .to_string()
}
