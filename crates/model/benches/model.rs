//! The model's hot paths: every enqueue validates a spec; the retry policy and ETA
//! run once per failed attempt and per progress report.

use std::hint::black_box;

use chrono::{Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use tether_model::machine::{JobState, Op};
use tether_model::{JobSpec, RetryPolicy, progress};

fn model(c: &mut Criterion) {
    let spec = JobSpec::new("import")
        .queue("images")
        .input_json(serde_json::json!({"size_mb": 40, "url": "https://example.com/a.qcow2"}))
        .idempotency_key("image-7731")
        .name("nightly import");
    c.bench_function("spec_validate", |b| b.iter(|| black_box(&spec).validate()));

    let life = [
        Op::Claim,
        Op::Progress(40),
        Op::Fail { transient: true },
        Op::Claim,
        Op::Progress(250),
        Op::Complete,
    ];
    c.bench_function("state_machine_life_of_a_job", |b| {
        b.iter(|| {
            let mut job = JobState::new(5, true);
            for op in black_box(&life) {
                let _ = job.apply(*op);
            }
            job
        })
    });

    let policy = RetryPolicy::default();
    c.bench_function("retry_delay", |b| {
        b.iter(|| policy.delay(black_box(7), black_box(0.3)))
    });

    let start = Utc.timestamp_opt(1_000_000, 0).unwrap();
    let now = start + Duration::seconds(17);
    c.bench_function("eta", |b| {
        b.iter(|| progress::eta(black_box(start), black_box(now), black_box(37)))
    });
}

criterion_group!(benches, model);
criterion_main!(benches);
