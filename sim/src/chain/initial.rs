//! Building the tries of the start state into the node store.
//!
//! Large states are built by two worker threads (each half of the storage by slot count, then
//! one for the account trie) that stream the nodes they hash to the calling thread, which
//! inserts them into the store: hashing and inserting overlap. The store is content-addressed,
//! so the result does not depend on the interleaving: same nodes, same roots.

use alloy_primitives::{B256, U256};
use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use syncsim_node::primitives::EMPTY_ROOT;
use syncsim_node::state::{AccountData, State};
use syncsim_node::trie::build::build;
use syncsim_node::trie::root::storage_value_rlp;
use syncsim_node::trie::MemNodes;

/// Below this many leaves (slots plus accounts) everything is built on the calling thread.
const PARALLEL_MIN_LEAVES: usize = 100_000;
/// Nodes per message from a worker.
const BATCH: usize = 4096;

type Batch = Vec<(B256, Box<[u8]>)>;

/// Builds the storage trie of `storage`, reusing `leaves` as scratch space; nodes go to `sink`.
fn build_storage(
    storage: &BTreeMap<B256, U256>,
    leaves: &mut Vec<(B256, Vec<u8>)>,
    sink: &mut dyn FnMut(B256, &[u8]),
) -> B256 {
    if storage.is_empty() {
        return EMPTY_ROOT;
    }
    leaves.clear();
    leaves.extend(storage.iter().map(|(k, v)| (*k, storage_value_rlp(*v))));
    build(leaves, &mut |n| sink(n.hash, n.rlp))
}

/// The account trie of `accounts` given their storage roots (same order).
fn build_accounts<'a>(
    accounts: impl Iterator<Item = (&'a B256, &'a AccountData)>,
    storage_roots: &[B256],
    sink: &mut dyn FnMut(B256, &[u8]),
) -> B256 {
    let leaves: Vec<(B256, Vec<u8>)> =
        accounts.zip(storage_roots).map(|((k, a), r)| (*k, a.to_account(*r).encode_full())).collect();
    build(&leaves, &mut |n| sink(n.hash, n.rlp))
}

/// Sends nodes to the inserting thread in batches.
struct Streamer {
    tx: SyncSender<Batch>,
    batch: Batch,
}

impl Streamer {
    fn push(&mut self, hash: B256, rlp: &[u8]) {
        self.batch.push((hash, rlp.into()));
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        // The receiver outlives every worker; a failed send means it panicked, which will
        // surface when the scope joins.
        let _ = self.tx.send(batch);
    }
}

fn drain(nodes: &mut MemNodes, rx: Receiver<Batch>) {
    for batch in rx {
        for (hash, rlp) in batch {
            nodes.insert_hashed(hash, &rlp);
        }
    }
}

/// Builds every storage trie and then the account trie of `state` into a new node store;
/// returns the store, the state root and every account's storage root (in key order).
pub(crate) fn build_state(state: &State) -> (MemNodes, B256, Vec<B256>) {
    let mut nodes = MemNodes::default();
    let slots: usize = state.accounts.values().map(|a| a.storage.len()).sum();
    if slots + state.accounts.len() < PARALLEL_MIN_LEAVES {
        let mut sink = |h: B256, rlp: &[u8]| nodes.insert_hashed(h, rlp);
        let mut scratch = Vec::new();
        let roots: Vec<B256> =
            state.accounts.values().map(|a| build_storage(&a.storage, &mut scratch, &mut sink)).collect();
        let root = build_accounts(state.accounts.iter(), &roots, &mut sink);
        return (nodes, root, roots);
    }

    // Split the accounts in two runs holding about half the slots each.
    let all: Vec<&AccountData> = state.accounts.values().collect();
    let mut split = 0;
    let mut seen = 0;
    while split < all.len() && seen * 2 < slots {
        seen += all[split].storage.len();
        split += 1;
    }
    let (first, second) = all.split_at(split);

    let storage_roots: Vec<B256> = std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Batch>(32);
        let workers: Vec<_> = [first, second]
            .into_iter()
            .map(|part| {
                let tx = tx.clone();
                s.spawn(move || {
                    let mut out = Streamer { tx, batch: Vec::with_capacity(BATCH) };
                    let mut scratch = Vec::new();
                    let roots: Vec<B256> = part
                        .iter()
                        .map(|a| build_storage(&a.storage, &mut scratch, &mut |h, r| out.push(h, r)))
                        .collect();
                    out.flush();
                    roots
                })
            })
            .collect();
        drop(tx);
        drain(&mut nodes, rx);
        workers.into_iter().flat_map(|w| w.join().expect("storage trie worker")).collect()
    });

    let root = std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Batch>(32);
        let worker = s.spawn(|| {
            let mut out = Streamer { tx, batch: Vec::with_capacity(BATCH) };
            let root = build_accounts(state.accounts.iter(), &storage_roots, &mut |h, r| out.push(h, r));
            out.flush();
            root
        });
        drain(&mut nodes, rx);
        worker.join().expect("account trie worker")
    });
    (nodes, root, storage_roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::synth::{synthetic_state, SyntheticSpec};
    use syncsim_node::trie::{walk, NodeSource};

    #[test]
    fn parallel_and_serial_builds_agree() {
        let spec = SyntheticSpec {
            accounts: 30_000,
            contracts: 300,
            storage_slots: 120_000,
            storage_skew: 1.1,
            code_size: (10, 100),
            unique_codes: 10,
            boundary_keys: false,
        };
        let state = synthetic_state(&spec, 2);
        let (nodes, root, _) = build_state(&state);
        assert_eq!(root, state.root());
        // Every account and slot is readable from the parallel-built store.
        let mut count = 0;
        walk::iter_from(&nodes, root, &B256::ZERO, &mut |_, _| {
            count += 1;
            true
        })
        .unwrap();
        assert_eq!(count, state.accounts.len());
        let mut serial = MemNodes::default();
        let mut scratch = Vec::new();
        for a in state.accounts.values().filter(|a| !a.storage.is_empty()) {
            let r = build_storage(&a.storage, &mut scratch, &mut |h, rlp| serial.insert_hashed(h, rlp));
            assert_eq!(r, a.storage_root());
            assert!(nodes.node(&r).is_some());
        }
        assert!(nodes.len() > serial.len());
        assert_eq!(nodes.len(), build_state_serial_len(&state));
    }

    fn build_state_serial_len(state: &State) -> usize {
        let mut nodes = MemNodes::default();
        let mut sink = |h: B256, rlp: &[u8]| nodes.insert_hashed(h, rlp);
        let mut scratch = Vec::new();
        let roots: Vec<B256> =
            state.accounts.values().map(|a| build_storage(&a.storage, &mut scratch, &mut sink)).collect();
        build_accounts(state.accounts.iter(), &roots, &mut sink);
        nodes.len()
    }
}
