//! A whole small scenario, end to end: state and chain built, the node synced over the
//! simulated network (adaptive sizing, pipelined requests), the oracle's root checked.
//! `cargo bench -p syncsim --bench scenario`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::Path;
use syncsim::runner::{run, RunOptions};
use syncsim::scenario::Scenario;

const SMALL: &str = r#"
name = "bench-small"
seed = 3

[state]
accounts = 3000
contracts = 60
storage_slots = 6000
unique_codes = 10

[chain]
blocks = 0
block_time = "1h"

[[peers]]
count = 4
latency = "20ms..60ms"
bandwidth = "1MiB/s"

[[peers]]
count = 2
latency = "200ms"
bandwidth = "256KiB/s"
"#;

fn bench(c: &mut Criterion) {
    let sc = Scenario::parse(SMALL, Path::new("bench-small.toml")).expect("scenario");
    let first = run(&sc, &RunOptions::default()).expect("run");
    assert!(first.converged, "{}", first.summary());
    let mut g = c.benchmark_group("scenario");
    g.sample_size(10);
    g.bench_function("small_heterogeneous_sync", |b| {
        b.iter(|| {
            let r = run(&sc, &RunOptions::default()).expect("run");
            assert!(r.converged);
            r.virtual_time_ms
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
