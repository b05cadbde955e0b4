//! Wire codec benchmarks: `Message::encode` and `Message::decode` (default `Limits`) of
//! the snap/1 and block messages at typical reply sizes. Each benchmark reports bytes/s of the
//! encoded message (code byte included):
//!
//! - `codec/account_range_{encode,decode}`: 1,000 accounts (slim bodies, one in ten with
//!   storage and code) from a 100,000-account trie, with their real edge proof;
//! - `codec/storage_ranges_{encode,decode}`: a complete 24-slot storage range followed by a
//!   1,000-slot range of a 10,000-slot storage trie, with its edge proof;
//! - `codec/byte_codes_{encode,decode}`: 84 codes (the downloader's default batch) of
//!   200 B..24 KiB;
//! - `codec/trie_nodes_{encode,decode}`: 1,024 nodes of the state trie (the default heal
//!   batch size);
//! - `codec/get_account_range_{encode,decode}`: one request;
//! - `codec/block_headers_{encode,decode}`: 192 headers;
//! - `codec/block_bodies_{encode,decode}`: 128 bodies of 40 account changes each.
//!
//! Run: `cargo bench --bench codec` (add e.g. `-- --warm-up-time 1 --measurement-time 3` for
//! a quick run, or a filter such as `-- codec/account_range`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use syncsim_node::account::Account;
use syncsim_node::codec::{
    AccountChange, AccountData, AccountRange, BlockBodies, BlockBody, BlockHeaders, ByteCodes,
    GetAccountRange, Header, Limits, Message, StorageChange, StorageData, StorageRanges, TrieNodes,
};
use syncsim_node::primitives::{Bytes, B256, U256};
use syncsim_node::trie::build::build;
use syncsim_node::trie::{prove_range, MemNodes};

fn hash(rng: &mut ChaCha8Rng) -> B256 {
    B256::from(rng.random::<[u8; 32]>())
}

/// A trie over `leaves` (sorted by key) stored in a fresh `MemNodes`; returns the store, the
/// root and every hashed node's RLP.
fn trie(leaves: &[(B256, Vec<u8>)]) -> (MemNodes, B256, Vec<Vec<u8>>) {
    let mut db = MemNodes::default();
    let mut nodes = Vec::new();
    let root = build(leaves, &mut |n| {
        db.insert_hashed(n.hash, n.rlp);
        nodes.push(n.rlp.to_vec());
    });
    (db, root, nodes)
}

fn sorted(mut v: Vec<(B256, Vec<u8>)>) -> Vec<(B256, Vec<u8>)> {
    v.sort();
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

/// The edge proof of `leaves[range]` in the trie `db`/`root`.
fn proof(db: &MemNodes, root: B256, leaves: &[(B256, Vec<u8>)]) -> Vec<Bytes> {
    let last = leaves.last().map(|(k, _)| k);
    prove_range(db, root, &leaves[0].0, last).unwrap().into_iter().map(Bytes::from).collect()
}

/// The messages benchmarked, by name.
fn messages() -> Vec<(&'static str, Message)> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);

    // State trie of 100k accounts; the reply covers 1,000 of them.
    let accounts: Vec<(B256, Account)> = (0..100_000)
        .map(|i| {
            let mut a = Account {
                nonce: rng.random_range(0..1000),
                balance: U256::from(rng.random::<u64>()),
                ..Default::default()
            };
            if i % 10 == 0 {
                a.storage_root = hash(&mut rng);
                a.code_hash = hash(&mut rng);
            }
            (hash(&mut rng), a)
        })
        .collect();
    let by_key: std::collections::BTreeMap<B256, Account> = accounts.into_iter().collect();
    let leaves = sorted(by_key.iter().map(|(k, a)| (*k, a.encode_full())).collect());
    let (db, root, state_nodes) = trie(&leaves);
    let range = &leaves[40_000..41_000];
    let account_range = AccountRange {
        request_id: 7,
        accounts: range
            .iter()
            .map(|(k, _)| AccountData { hash: *k, body: by_key[k].encode_slim().into() })
            .collect(),
        proof: proof(&db, root, range),
    };

    // Storage: a small complete trie, then part of a 10k-slot trie with its proof.
    let slot = |rng: &mut ChaCha8Rng| {
        let value = U256::from(rng.random::<u64>()) << rng.random_range(0..192);
        (hash(rng), alloy_rlp::encode(value))
    };
    let small = sorted((0..24).map(|_| slot(&mut rng)).collect());
    let big = sorted((0..10_000).map(|_| slot(&mut rng)).collect());
    let (sdb, sroot, _) = trie(&big);
    let big_range = &big[3_000..4_000];
    let as_data = |s: &[(B256, Vec<u8>)]| -> Vec<StorageData> {
        s.iter().map(|(k, v)| StorageData { hash: *k, data: Bytes::copy_from_slice(v) }).collect()
    };
    let storage_ranges = StorageRanges {
        request_id: 8,
        slots: vec![as_data(&small), as_data(big_range)],
        proof: proof(&sdb, sroot, big_range),
    };

    let byte_codes = ByteCodes {
        request_id: 9,
        codes: (0..84)
            .map(|_| {
                let mut code = vec![0u8; rng.random_range(200..24 * 1024)];
                rng.fill(&mut code[..]);
                Bytes::from(code)
            })
            .collect(),
    };

    let trie_nodes =
        TrieNodes { request_id: 10, nodes: state_nodes.into_iter().take(1024).map(Bytes::from).collect() };

    let get_account_range = GetAccountRange {
        request_id: 11,
        root,
        starting_hash: range[0].0,
        limit_hash: B256::repeat_byte(0xff),
        response_bytes: 512 * 1024,
    };

    let mut parent = hash(&mut rng);
    let headers: Vec<Header> = (0..192)
        .map(|number| {
            let h = Header {
                parent_hash: parent,
                number: 1_000_000 + number,
                state_root: hash(&mut rng),
                body_hash: hash(&mut rng),
                timestamp: 1_700_000_000 + 12 * number,
                extra: Bytes::from(rng.random::<[u8; 32]>().to_vec()),
            };
            parent = h.hash();
            h
        })
        .collect();

    let bodies: Vec<BlockBody> = (0..128)
        .map(|_| BlockBody {
            changes: (0..40)
                .map(|i| match i % 10 {
                    0 => AccountChange::Delete { account: hash(&mut rng) },
                    1 => AccountChange::Set {
                        account: hash(&mut rng),
                        nonce: 1,
                        balance: U256::ZERO,
                        code: Bytes::from(vec![0x60; rng.random_range(200..2048)]),
                        storage: Vec::new(),
                    },
                    _ => AccountChange::Set {
                        account: hash(&mut rng),
                        nonce: rng.random_range(0..1000),
                        balance: U256::from(rng.random::<u64>()),
                        code: Bytes::new(),
                        storage: (0..rng.random_range(0..4))
                            .map(|_| StorageChange {
                                slot: hash(&mut rng),
                                value: U256::from(rng.random::<u64>()),
                            })
                            .collect(),
                    },
                })
                .collect(),
        })
        .collect();

    vec![
        ("account_range", account_range.into()),
        ("storage_ranges", storage_ranges.into()),
        ("byte_codes", byte_codes.into()),
        ("trie_nodes", trie_nodes.into()),
        ("get_account_range", get_account_range.into()),
        ("block_headers", BlockHeaders { request_id: 12, headers }.into()),
        ("block_bodies", BlockBodies { request_id: 13, bodies }.into()),
    ]
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("codec");
    for (name, msg) in messages() {
        let wire = msg.encode();
        assert_eq!(Message::decode(&wire, &limits).as_ref(), Ok(&msg), "{name} round trip");
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_function(format!("{name}_encode"), |b| b.iter(|| black_box(&msg).encode()));
        g.bench_function(format!("{name}_decode"), |b| {
            b.iter(|| Message::decode(black_box(&wire), &limits).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
