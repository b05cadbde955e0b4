//! Trie benchmarks: the root of 100,000 accounts from sorted leaves (`trie/root_100k_*`),
//! building all their nodes (`trie/build_100k_*`), and verifying and proving a 1,000-key range
//! (`trie/verify_range_1000_keys`, `trie/prove_range_1000_keys`). `cargo bench --bench trie`.

use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use syncsim_node::account::Account;
use syncsim_node::primitives::{B256, U256};
use syncsim_node::trie::build::build;
use syncsim_node::trie::root::root_from_sorted;
use syncsim_node::trie::{prove_range, verify_range, MemNodes};

fn accounts(n: usize) -> Vec<(B256, Vec<u8>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut v: Vec<(B256, Vec<u8>)> = (0..n)
        .map(|_| {
            let a = Account {
                nonce: rng.random_range(0..1000),
                balance: U256::from(rng.random::<u64>()),
                ..Default::default()
            };
            (B256::from(rng.random::<[u8; 32]>()), a.encode_full())
        })
        .collect();
    v.sort();
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

fn bench(c: &mut Criterion) {
    let leaves = accounts(100_000);
    let mut g = c.benchmark_group("trie");
    g.sample_size(10);
    g.bench_function("root_100k_accounts_hashbuilder", |b| {
        b.iter(|| root_from_sorted(leaves.iter().map(|(k, v)| (*k, v.as_slice()))))
    });
    g.bench_function("build_100k_accounts_all_nodes", |b| {
        b.iter(|| {
            let mut n = 0usize;
            build(&leaves, &mut |x| n += x.rlp.len());
            n
        })
    });
    let mut db = MemNodes::default();
    let root = build(&leaves, &mut |n| db.insert_hashed(n.hash, n.rlp));
    let start = 40_000;
    let keys: Vec<B256> = leaves[start..start + 1000].iter().map(|(k, _)| *k).collect();
    let values: Vec<&[u8]> = leaves[start..start + 1000].iter().map(|(_, v)| v.as_slice()).collect();
    let proof = prove_range(&db, root, &keys[0], keys.last()).unwrap();
    assert_eq!(verify_range(root, &keys[0], &keys, &values, &proof), Ok(true));
    g.sample_size(50);
    g.bench_function("verify_range_1000_keys", |b| {
        b.iter(|| verify_range(root, &keys[0], &keys, &values, &proof))
    });
    g.bench_function("prove_range_1000_keys", |b| b.iter(|| prove_range(&db, root, &keys[0], keys.last())));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
