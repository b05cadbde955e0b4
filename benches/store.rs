//! Node storage benchmarks: inserting trie nodes into `MemNodes` (hashing included, and by a
//! hash already known) and looking them up, hits and misses. `cargo bench --bench store`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use syncsim_node::primitives::{keccak256, B256};
use syncsim_node::trie::{MemNodes, NodeSource};

/// `n` node-sized blobs (branch nodes are ~532 bytes, leaves ~100) with their hashes.
fn nodes(n: usize) -> Vec<(B256, Vec<u8>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..n)
        .map(|i| {
            let len = if i % 4 == 0 { 532 } else { rng.random_range(70..140) };
            let rlp: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            (keccak256(&rlp), rlp)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let list = nodes(100_000);
    let mut g = c.benchmark_group("store");
    g.sample_size(10);
    g.bench_function("memnodes_insert_100k_hashing", |b| {
        b.iter_batched(
            MemNodes::default,
            |mut db| {
                for (_, rlp) in &list {
                    db.insert(rlp);
                }
                db
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("memnodes_insert_100k_hashed", |b| {
        b.iter_batched(
            MemNodes::default,
            |mut db| {
                for (h, rlp) in &list {
                    db.insert_hashed(*h, rlp);
                }
                db
            },
            BatchSize::LargeInput,
        )
    });
    let mut db = MemNodes::default();
    for (h, rlp) in &list {
        db.insert_hashed(*h, rlp);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let hits: Vec<B256> = (0..10_000).map(|_| list[rng.random_range(0..list.len())].0).collect();
    let misses: Vec<B256> = (0..10_000).map(|_| B256::from(rng.random::<[u8; 32]>())).collect();
    g.sample_size(50);
    g.bench_function("memnodes_lookup_10k_hits", |b| {
        b.iter(|| hits.iter().filter_map(|h| db.node(h)).map(|n| n.len()).sum::<usize>())
    });
    g.bench_function("memnodes_lookup_10k_misses", |b| {
        b.iter(|| misses.iter().filter(|h| db.contains(h)).count())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
