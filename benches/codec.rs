//! Codec benchmarks: encoding and decoding (with the default limits) a big `AccountRange`
//! (2 MiB of slim accounts plus an edge proof) and a big `StorageRanges` (many small slot sets
//! and a long last one). `cargo bench --bench codec`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use syncsim_node::account::Account;
use syncsim_node::codec::{AccountData, AccountRange, Limits, Message, StorageData, StorageRanges};
use syncsim_node::primitives::{Bytes, B256, EMPTY_CODE, EMPTY_ROOT, U256};

fn proof(rng: &mut ChaCha8Rng) -> Vec<Bytes> {
    (0..12).map(|_| Bytes::from((0..532).map(|_| rng.random::<u8>()).collect::<Vec<u8>>())).collect()
}

/// An account range of about `bytes` bytes: mostly plain accounts, one in eight a contract.
fn account_range(bytes: usize) -> Message {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut accounts = Vec::new();
    let mut size = 0;
    while size < bytes {
        let contract = rng.random_range(0..8) == 0;
        let a = Account {
            nonce: rng.random_range(0..10_000),
            balance: U256::from(rng.random::<u64>()) * U256::from(1_000_000_000u64),
            storage_root: if contract { B256::from(rng.random::<[u8; 32]>()) } else { EMPTY_ROOT },
            code_hash: if contract { B256::from(rng.random::<[u8; 32]>()) } else { EMPTY_CODE },
        };
        let body = Bytes::from(a.encode_slim());
        size += 32 + body.len();
        accounts.push(AccountData { hash: B256::from(rng.random::<[u8; 32]>()), body });
    }
    accounts.sort_by_key(|a| a.hash);
    Message::AccountRange(AccountRange { request_id: 7, accounts, proof: proof(&mut rng) })
}

/// Storage ranges of about `bytes` bytes: sets of 1..64 slots, then one long partial set.
fn storage_ranges(bytes: usize) -> Message {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut slots = Vec::new();
    let mut size = 0;
    while size < bytes {
        let n = if size > bytes * 3 / 4 { 5_000 } else { rng.random_range(1..64) };
        let mut set: Vec<StorageData> = (0..n)
            .map(|_| {
                let v = U256::from(rng.random::<u64>());
                StorageData { hash: B256::from(rng.random::<[u8; 32]>()), data: alloy_rlp::encode(v).into() }
            })
            .collect();
        set.sort_by_key(|s| s.hash);
        size += set.iter().map(|s| 32 + s.data.len()).sum::<usize>();
        slots.push(set);
    }
    Message::StorageRanges(StorageRanges { request_id: 9, slots, proof: proof(&mut rng) })
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("codec");
    g.sample_size(30);
    for (name, msg) in
        [("account_range_2mib", account_range(2 << 20)), ("storage_ranges_2mib", storage_ranges(2 << 20))]
    {
        let bytes = msg.encode();
        assert!(matches!(Message::decode(&bytes, &limits), Ok(m) if m == msg));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("encode_{name}"), |b| b.iter(|| msg.encode()));
        g.bench_function(format!("decode_{name}"), |b| b.iter(|| Message::decode(&bytes, &limits)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
