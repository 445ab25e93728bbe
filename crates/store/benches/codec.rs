//! Encoding costs paid per job: the input is encoded once at enqueue and decoded by
//! the worker into the handler's type; the result is encoded once at finish.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct ImportRequest {
    url: String,
    size_mb: u32,
    checksum: String,
    tags: Vec<String>,
}

fn codec(c: &mut Criterion) {
    let input = serde_json::json!({
        "url": "https://images.example.com/debian-12-genericcloud-amd64.qcow2",
        "size_mb": 412,
        "checksum": "sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "tags": ["debian", "cloud", "amd64"],
    });
    c.bench_function("encode_input_json_to_msgpack", |b| {
        b.iter(|| tether_store::encode(black_box(&input)).unwrap())
    });
    let bytes = tether_store::encode(&input).unwrap();
    c.bench_function("decode_input_to_handler_type", |b| {
        b.iter(|| tether_store::decode::<ImportRequest>("in", black_box(&bytes)).unwrap())
    });
    c.bench_function("decode_input_to_json_for_display", |b| {
        b.iter(|| tether_store::decode::<serde_json::Value>("in", black_box(&bytes)).unwrap())
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
