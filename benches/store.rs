//! Node storage benchmarks, on the trie of 100,000 accounts (138,645 hashed nodes):
//!
//! - `store/commit_range_nodes_1000_accounts`: committing the trie nodes of a verified
//!   1,000-account range (the 1,375 nodes lying wholly inside it, which the downloader's
//!   `generate_chunk` stores) plus the flat accounts into an empty `MemStore`, one `WriteBatch`;
//! - `store/build_and_commit_range_1000_accounts`: the same with the nodes built (and hashed)
//!   from the range's leaves first, as the downloader does once a chunk is fetched;
//! - `store/node_by_hash_1000` / `store/node_by_hash_miss_1000`: 1,000 lookups by hash
//!   (present / absent nodes) in the populated store (the same 1,000 each time: hot cache);
//! - `store/node_by_path_1000`: 1,000 `node_at_path` lookups from the root, as a peer serves
//!   GetTrieNodes;
//! - `store/account_by_key_1000`: 1,000 `walk::get` lookups of account leaves by key;
//! - `store/serve_account_range_1000`: a peer serving a 1,000-account range: `iter_from` over
//!   the leaves, slim re-encoding, and `prove_range` for the edge proof;
//! - `store/heal_top_4_levels`: healing a store that lacks the top four levels of the trie
//!   (4,369 nodes): `Healer` scheduling in batches of 1,024, the peer's `node_at_path`,
//!   `match_nodes` hashing, and `Healer::on_node` with its `has_node` checks of every child.
//!
//! Run: `cargo bench --bench store` (add e.g. `-- --warm-up-time 1 --measurement-time 3` for
//! a quick run, or a filter such as `-- store/node_by_hash`).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use syncsim_node::account::Account;
use syncsim_node::primitives::{keccak256, B256, U256};
use syncsim_node::store::{MemStore, SyncStore, WriteBatch};
use syncsim_node::sync::heal::{match_nodes, Healer};
use syncsim_node::trie::build::build;
use syncsim_node::trie::nibbles::{max_key_with_prefix, min_key_with_prefix};
use syncsim_node::trie::walk::{get, iter_from, node_at_path};
use syncsim_node::trie::{prove_range, MemNodes, NodeBatch, NodeSource};

/// `n` random accounts (one in ten with storage and code), sorted by key.
fn accounts(n: usize) -> Vec<(B256, Account)> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut v: Vec<(B256, Account)> = (0..n)
        .map(|i| {
            let mut a = Account {
                nonce: rng.random_range(0..1000),
                balance: U256::from(rng.random::<u64>()),
                ..Default::default()
            };
            if i % 10 == 0 {
                a.storage_root = B256::from(rng.random::<[u8; 32]>());
                a.code_hash = B256::from(rng.random::<[u8; 32]>());
            }
            (B256::from(rng.random::<[u8; 32]>()), a)
        })
        .collect();
    v.sort();
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

/// The nodes over `leaves` whose whole key range lies in `first..=last` (what the downloader
/// stores for a fetched chunk; boundary nodes are left to healing).
fn range_nodes(leaves: &[(B256, Vec<u8>)], first: &B256, last: &B256, out: &mut NodeBatch) {
    build(leaves, &mut |n| {
        if !n.path.is_empty() && min_key_with_prefix(n.path) >= *first && max_key_with_prefix(n.path) <= *last
        {
            out.push(n.hash, n.rlp);
        }
    });
}

fn bench(c: &mut Criterion) {
    let accs = accounts(100_000);
    let leaves: Vec<(B256, Vec<u8>)> = accs.iter().map(|(k, a)| (*k, a.encode_full())).collect();

    // The full trie (a peer's store), every hashed node with its path.
    let mut peer = MemNodes::default();
    let mut paths: Vec<(Vec<u8>, B256)> = Vec::new();
    let root = build(&leaves, &mut |n| {
        peer.insert_hashed(n.hash, n.rlp);
        paths.push((n.path.to_vec(), n.hash));
    });
    let mut full = MemStore::default();
    full.commit(WriteBatch {
        nodes: paths.iter().map(|(_, h)| (*h, peer.node(h).unwrap().to_vec())).collect(),
        accounts: accs.clone(),
        ..Default::default()
    });

    // A verified range of 1,000 accounts.
    let (start, end) = (40_000, 41_000);
    let range_leaves = &leaves[start..end];
    let (first, last) = (range_leaves[0].0, range_leaves[999].0);
    let mut nodes = NodeBatch::default();
    range_nodes(range_leaves, &first, &last, &mut nodes);
    assert!(nodes.len() > 900, "{} range nodes", nodes.len());
    let range_accounts = accs[start..end].to_vec();

    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("commit_range_nodes_1000_accounts", |b| {
        b.iter_batched(
            || WriteBatch { nodes: nodes.clone(), accounts: range_accounts.clone(), ..Default::default() },
            |batch| {
                let mut store = MemStore::default();
                store.commit(batch);
                black_box(store)
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("build_and_commit_range_1000_accounts", |b| {
        b.iter(|| {
            let mut batch = WriteBatch { accounts: range_accounts.clone(), ..Default::default() };
            range_nodes(black_box(range_leaves), &first, &last, &mut batch.nodes);
            let mut store = MemStore::default();
            store.commit(batch);
            black_box(store)
        })
    });

    // Lookups in the populated store.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let sample: Vec<&(Vec<u8>, B256)> = paths.choose_multiple(&mut rng, 1000).collect();
    let hashes: Vec<B256> = sample.iter().map(|(_, h)| *h).collect();
    let absent: Vec<B256> = (0..1000).map(|_| B256::from(rng.random::<[u8; 32]>())).collect();
    let keys: Vec<B256> = accs.choose_multiple(&mut rng, 1000).map(|(k, _)| *k).collect();
    g.bench_function("node_by_hash_1000", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for h in black_box(&hashes) {
                bytes += full.node(h).map_or(0, <[u8]>::len);
            }
            bytes
        })
    });
    g.bench_function("node_by_hash_miss_1000", |b| {
        b.iter(|| black_box(&absent).iter().filter(|h| full.has_node(h)).count())
    });
    g.bench_function("node_by_path_1000", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for (path, _) in black_box(&sample) {
                bytes += node_at_path(&full, root, path).map_or(0, |n| n.len());
            }
            bytes
        })
    });
    g.bench_function("account_by_key_1000", |b| {
        b.iter(|| {
            let mut found = 0;
            for k in black_box(&keys) {
                found += usize::from(get(&full, root, k).unwrap().is_some());
            }
            found
        })
    });
    g.bench_function("serve_account_range_1000", |b| {
        b.iter(|| {
            let mut served = Vec::with_capacity(1000);
            iter_from(&peer, root, black_box(&first), &mut |hash, leaf| {
                let body = Account::decode_full(leaf).unwrap().encode_slim();
                served.push((hash, body));
                served.len() < 1000
            })
            .unwrap();
            let proof = prove_range(&peer, root, &first, served.last().map(|(h, _)| h)).unwrap();
            (served, proof)
        })
    });

    // Healing: the client holds every node at depth 4 or deeper; the peer serves by path.
    let mut partial = MemStore::default();
    partial.commit(WriteBatch {
        nodes: paths
            .iter()
            .filter(|(p, _)| p.len() >= 4)
            .map(|(_, h)| (*h, peer.node(h).unwrap().to_vec()))
            .collect(),
        ..Default::default()
    });
    let heal = |store: &MemStore| {
        let mut healer = Healer::new(root, store);
        let mut batch = WriteBatch::default();
        while !healer.is_done() {
            let items = healer.take_nodes(1024);
            assert!(!items.is_empty(), "healer stuck");
            let reply: Vec<Vec<u8>> =
                items.iter().filter_map(|it| node_at_path(&peer, root, &it.path.path)).collect();
            let (delivered, missing) = match_nodes(&items, reply).unwrap();
            assert!(missing.is_empty());
            for (item, rlp) in delivered {
                healer.on_node(store, &mut batch, &item, rlp);
            }
        }
        (healer.healed, batch)
    };
    let (healed, batch) = heal(&partial);
    assert_eq!(healed, 1 + 16 + 256 + 4096);
    assert!(batch.nodes.iter().all(|(h, rlp)| keccak256(rlp) == *h));
    g.throughput(Throughput::Elements(healed));
    g.sample_size(20);
    g.bench_function("heal_top_4_levels", |b| b.iter(|| heal(black_box(&partial))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
