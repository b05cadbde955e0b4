use super::*;
use rand::Rng;
use std::path::{Path, PathBuf};
use std::time::Instant;
use syncsim_node::trie::NodeSource;

fn small_spec() -> SyntheticSpec {
    SyntheticSpec {
        accounts: 2_000,
        contracts: 100,
        storage_slots: 5_000,
        storage_skew: 1.1,
        code_size: (50, 300),
        unique_codes: 20,
        boundary_keys: false,
    }
}

const PARAMS: ChainParams = ChainParams { changes_per_block: 30, block_time_ms: 12_000 };

fn small_chain(seed: u64, blocks: u64) -> Chain {
    let mut chain = Chain::new(synthetic_state(&small_spec(), seed), PARAMS, seed);
    chain.produce_blocks(blocks);
    chain
}

/// The trie at `root` holds exactly the accounts (and storage) of `expected`.
fn assert_trie_holds(chain: &Chain, root: B256, expected: &State, rng: &mut ChaCha8Rng) {
    let nodes = chain.nodes();
    let keys: Vec<&B256> = expected.accounts.keys().collect();
    for _ in 0..8 {
        let key = keys[rng.random_range(0..keys.len())];
        let data = &expected.accounts[key];
        let leaf = walk::get(nodes, root, key).expect("complete trie").expect("account present");
        let account = Account::decode_full(&leaf).unwrap();
        assert_eq!(account, data.to_account(data.storage_root()));
        if let Some((slot, value)) = data.storage.iter().next() {
            let got = walk::get(nodes, account.storage_root, slot).unwrap().unwrap();
            assert_eq!(got, storage_value_rlp(*value));
        }
        if account.has_code() {
            assert!(chain.code(&account.code_hash).is_some());
        }
    }
    let absent = B256::from(rng.random::<[u8; 32]>());
    assert_eq!(walk::get(nodes, root, &absent).unwrap(), None);
}

#[test]
fn blocks_match_the_oracle() {
    let chain = small_chain(11, 50);
    assert_eq!(chain.head_number(), 50);
    let initial = chain.initial_state();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    for n in 0..=50u64 {
        let block = chain.block(n).unwrap();
        let expected = state_at(initial, chain.blocks(), n);
        let root = oracle_root(&expected);
        assert_eq!(block.header.state_root, root, "block {n}");
        assert_eq!(chain.state_root(n), Some(root));
        assert_eq!(block.header.number, n);
        assert_eq!(block.header.timestamp, n * 12_000);
        assert_eq!(block.header.body_hash, block.body.hash());
        assert_eq!(chain.block_hash(n), Some(block.header.hash()));
        let parent = if n == 0 { B256::ZERO } else { chain.block(n - 1).unwrap().header.hash() };
        assert_eq!(block.header.parent_hash, parent);
        if n > 0 {
            assert_eq!(block.body.changes.len(), 30);
            let accts: Vec<B256> = block.body.changes.iter().map(|c| c.account()).collect();
            assert!(accts.windows(2).all(|w| w[0] < w[1]), "changes sorted by account");
            for c in &block.body.changes {
                if let AccountChange::Set { storage, .. } = c {
                    assert!(storage.windows(2).all(|w| w[0].slot < w[1].slot), "slots sorted");
                }
            }
        }
        assert_eq!(chain.header(n), Some(&block.header));
        assert_eq!(chain.body(&block.header.hash()), Some(&block.body));
        // Old roots stay readable.
        assert_trie_holds(&chain, root, &expected, &mut rng);
    }
    assert_eq!(chain.header(51), None);
    let head = state_at(initial, chain.blocks(), 50);
    assert_eq!(chain.live_state(), &head);

    // The head trie holds exactly the head state's accounts.
    let mut count = 0;
    walk::iter_from(chain.nodes(), chain.state_root(50).unwrap(), &B256::ZERO, &mut |k, _| {
        assert!(head.accounts.contains_key(&k));
        count += 1;
        true
    })
    .unwrap();
    assert_eq!(count, head.accounts.len());

    let s = chain.change_stats();
    eprintln!("{s:?}");
    for (name, v) in [
        ("balance_nonce", s.balance_nonce),
        ("storage_updates", s.storage_updates),
        ("new_slots", s.new_slots),
        ("modified_slots", s.modified_slots),
        ("deleted_slots", s.deleted_slots),
        ("cleared_storages", s.cleared_storages),
        ("new_accounts", s.new_accounts),
        ("new_contracts", s.new_contracts),
        ("new_codes", s.new_codes),
        ("deleted_accounts", s.deleted_accounts),
        ("deleted_contracts", s.deleted_contracts),
    ] {
        assert!(v > 0, "no change of kind {name}");
    }
    // Some contract ended up with code but no storage after having had some.
    let emptied = initial
        .accounts
        .iter()
        .filter(|(k, a)| !a.storage.is_empty() && head.accounts.get(*k).is_some_and(|h| h.storage.is_empty()))
        .count();
    assert!(emptied > 0);
    assert_eq!(
        s.balance_nonce + s.storage_updates + s.new_accounts + s.new_contracts + s.deleted_accounts,
        50 * 30
    );
}

#[test]
fn deterministic_per_seed() {
    let a = small_chain(5, 10);
    let b = small_chain(5, 10);
    assert_eq!(a.blocks(), b.blocks());
    assert_eq!(a.nodes().len(), b.nodes().len());
    let mut c = Chain::new(synthetic_state(&small_spec(), 5), PARAMS, 6);
    c.produce_blocks(10);
    assert_eq!(a.block(0), c.block(0));
    assert_ne!(a.block(1), c.block(1));
}

#[test]
fn reorg_replaces_the_tail() {
    let mut chain = small_chain(21, 20);
    let old: Vec<Block> = chain.blocks().to_vec();
    let old_hashes: Vec<B256> = old.iter().map(|b| b.header.hash()).collect();
    let nodes_before = chain.nodes().len();

    let fork = chain.reorg(5);
    assert_eq!(fork.len(), 5);
    assert_eq!(chain.head_number(), 20);
    assert_eq!(chain.reorgs(), 1);
    for n in 0..=20u64 {
        let h = chain.block_hash(n).unwrap();
        if n <= 15 {
            assert_eq!(h, old_hashes[n as usize], "block {n} kept");
        } else {
            assert_ne!(h, old_hashes[n as usize], "block {n} replaced");
            assert_eq!(chain.block(n), Some(&fork[(n - 16) as usize]));
            assert!(chain.is_canonical(&h));
        }
    }
    assert_eq!(fork[0].header.parent_hash, old_hashes[15]);
    assert_eq!(chain.block(20).unwrap().header.timestamp, old[20].header.timestamp);
    // The fork's roots match the oracle replay of the new canonical chain.
    let initial = chain.initial_state();
    for n in 0..=20u64 {
        let root = oracle_root(&state_at(initial, chain.blocks(), n));
        assert_eq!(chain.state_root(n), Some(root), "block {n}");
        assert_eq!(chain.block(n).unwrap().header.state_root, root);
    }
    assert_eq!(chain.live_state(), &state_at(initial, chain.blocks(), 20));
    // Old blocks stay retrievable by hash, and their states readable.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    assert!(chain.nodes().len() > nodes_before);
    for (n, block) in old.iter().enumerate().skip(16) {
        let h = old_hashes[n];
        assert!(!chain.is_canonical(&h));
        assert_eq!(chain.block_by_hash(&h), Some(block));
        assert_eq!(chain.body(&h), Some(&block.body));
        let expected = state_at(initial, &old, n as u64);
        assert_eq!(oracle_root(&expected), block.header.state_root);
        assert!(chain.nodes().node(&block.header.state_root).is_some());
        assert_trie_holds(&chain, block.header.state_root, &expected, &mut rng);
    }
    assert_eq!(chain.orphans().len(), 5);

    // The chain grows on, and deeper / degenerate reorgs work.
    chain.produce_blocks(5);
    assert!(chain.reorg(0).is_empty());
    let fork2 = chain.reorg(8);
    assert_eq!(fork2.len(), 8);
    assert_eq!(chain.head_number(), 25);
    let all = chain.reorg(1_000);
    assert_eq!(all.len(), 25);
    assert_eq!(chain.block_hash(0), Some(old_hashes[0]));
    for n in [1u64, 10, 25] {
        let root = oracle_root(&state_at(chain.initial_state(), chain.blocks(), n));
        assert_eq!(chain.state_root(n), Some(root));
    }
    assert_eq!(chain.live_state(), &state_at(chain.initial_state(), chain.blocks(), 25));
    assert_eq!(chain.orphans().len(), 5 + 8 + 25);
}

#[test]
fn reorg_without_changes_still_forks() {
    let params = ChainParams { changes_per_block: 0, block_time_ms: 500 };
    let mut chain = Chain::new(synthetic_state(&small_spec(), 1), params, 1);
    chain.produce_blocks(3);
    let before = chain.block_hash(3).unwrap();
    chain.reorg(2);
    assert_ne!(chain.block_hash(3).unwrap(), before);
    assert_eq!(chain.state_root(3), chain.state_root(0));
    assert_eq!(chain.block(3).unwrap().header.timestamp, 1_500);
}

#[test]
fn empty_initial_state() {
    let mut chain = Chain::new(State::default(), PARAMS, 4);
    assert_eq!(chain.state_root(0), Some(EMPTY_ROOT));
    chain.produce_blocks(10);
    for n in [1u64, 5, 10] {
        assert_eq!(
            chain.state_root(n),
            Some(oracle_root(&state_at(chain.initial_state(), chain.blocks(), n)))
        );
    }
}

fn fixture(rel: &str) -> PathBuf {
    let near = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures").join(rel);
    if near.exists() {
        near
    } else {
        Path::new("/work/shared/fixtures").join(rel)
    }
}

#[test]
fn holesky_genesis_root() {
    let states = syncsim_node::genesis::load_genesis(&fixture("genesis/holesky-genesis.json")).unwrap();
    let (_, state) = states.into_iter().next().unwrap();
    let mut chain = Chain::new(state, PARAMS, 0);
    let expected: B256 =
        "0x69d8c9d72f6fa4ad42d4702b433707212f90db395eb54dc20bc85de253788783".parse().unwrap();
    assert_eq!(chain.state_root(0), Some(expected));
    assert_eq!(chain.header(0).unwrap().state_root, expected);
    chain.produce_blocks(5);
    assert_eq!(chain.state_root(5), Some(oracle_root(&state_at(chain.initial_state(), chain.blocks(), 5))));
}

/// `cargo test --release -p syncsim -- --ignored --nocapture million`
#[test]
#[ignore]
fn million_accounts_timing() {
    let spec = SyntheticSpec {
        accounts: 1_000_000,
        contracts: 20_000,
        storage_slots: 5_000_000,
        storage_skew: 1.1,
        code_size: (100, 24 * 1024),
        unique_codes: 500,
        boundary_keys: false,
    };
    let t = Instant::now();
    let state = synthetic_state(&spec, 1);
    let synth = t.elapsed();
    let t = Instant::now();
    let mut chain = Chain::new(state, PARAMS, 1);
    let build = t.elapsed();
    let t = Instant::now();
    chain.produce_blocks(100);
    let produce = t.elapsed();
    let t = Instant::now();
    let root = oracle_root(chain.live_state());
    let oracle = t.elapsed();
    assert_eq!(Some(root), chain.state_root(100));
    eprintln!(
        "synthetic_state {synth:?}, Chain::new {build:?} ({} nodes, {} MiB), 100 blocks {produce:?}, \
         oracle root {oracle:?}",
        chain.nodes().len(),
        chain.nodes().byte_size() >> 20
    );
}
