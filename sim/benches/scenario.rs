//! Whole-scenario benchmark: `scenario/quickstart_to_verdict` loads `scenarios/quickstart.toml`
//! (5,000 accounts, 20,000 slots, an 80-block chain, seven peers of four behaviours, a lossy
//! network) and runs it to its verdict with `syncsim::runner::run`: start state and chain
//! built, the node synced in virtual time, the oracle consulted. Every run must converge and
//! meet the scenario's expectations. Ten flat samples (a run takes a few hundred ms), so the
//! default 5 s measurement time gives about 20 runs.
//!
//! Run: `cargo bench -p syncsim --bench scenario` (from the workspace root; plain
//! `cargo bench --bench scenario` also works, as the bench name is unique).

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use std::hint::black_box;
use std::path::PathBuf;
use syncsim::runner::{run, RunOptions};
use syncsim::scenario::Scenario;

fn bench(c: &mut Criterion) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/quickstart.toml");
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions::default();
    let mut g = c.benchmark_group("scenario");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("quickstart_to_verdict", |b| {
        b.iter(|| {
            let report = run(black_box(&scenario), &opts).expect("run");
            assert!(report.converged && report.passed(), "{}", report.summary());
            report
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
