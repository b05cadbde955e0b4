//! Drawing a block's random changes against the live state, and the undo records that let a
//! reorg roll the live state back.

use super::synth::{random_balance, random_code, random_key, random_slot_value};
use alloy_primitives::{Bytes, B256, U256};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use syncsim_node::state::State;
use syncsim_node::trie::db::HashKeyed;

/// Size range (bytes, inclusive) of code created by new contracts that do not reuse a code.
pub const NEW_CODE_SIZE: (u64, u64) = (32, 2048);
/// Contracts with at most this many slots may have their whole storage cleared in one change.
pub const CLEARABLE_SLOTS: usize = 64;

/// A set of keys with O(1) insert, remove and uniform sampling (swap-remove plus an index).
/// Only ever iterated through its `Vec`, so its order is deterministic.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeySet {
    keys: Vec<B256>,
    index: HashKeyed<usize>,
}

impl KeySet {
    pub(crate) fn insert(&mut self, key: B256) {
        if !self.index.contains_key(&key) {
            self.index.insert(key, self.keys.len());
            self.keys.push(key);
        }
    }

    pub(crate) fn remove(&mut self, key: &B256) {
        if let Some(i) = self.index.remove(key) {
            self.keys.swap_remove(i);
            if let Some(moved) = self.keys.get(i) {
                self.index.insert(*moved, i);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> Option<B256> {
        (!self.keys.is_empty()).then(|| self.keys[rng.random_range(0..self.keys.len())])
    }
}

/// How many changes of each kind were drawn, over every block produced (forks included).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChangeStats {
    /// Balance and/or nonce changes of existing accounts.
    pub balance_nonce: u64,
    /// Storage-writing changes to existing contracts.
    pub storage_updates: u64,
    /// Slots created in existing contracts.
    pub new_slots: u64,
    /// Existing slots given a new non-zero value.
    pub modified_slots: u64,
    /// Existing slots deleted (written 0).
    pub deleted_slots: u64,
    /// Contracts that had every slot deleted in one change.
    pub cleared_storages: u64,
    /// New accounts without code.
    pub new_accounts: u64,
    /// New contracts (code, maybe storage).
    pub new_contracts: u64,
    /// New contracts whose code was new rather than reused from the pool.
    pub new_codes: u64,
    /// Accounts removed (`Delete`).
    pub deleted_accounts: u64,
    /// Of those, contracts.
    pub deleted_contracts: u64,
}

/// One drafted change of an account, before it is applied.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    Delete,
    Set { nonce: u64, balance: U256, code: Bytes, storage: BTreeMap<B256, U256> },
}

/// What an account looked like before a block touched it.
#[derive(Debug)]
pub(crate) enum Prior {
    /// The account did not exist.
    Absent,
    /// It existed with these fields; `storage` restores its slots.
    Existed { nonce: u64, balance: U256, code_hash: B256, storage: PriorStorage },
}

/// The storage to restore.
#[derive(Debug)]
pub(crate) enum PriorStorage {
    /// Previous values of the written slots (`None`: the slot did not exist).
    Slots(Vec<(B256, Option<U256>)>),
    /// The whole storage of a deleted account.
    Whole(BTreeMap<B256, U256>),
}

/// Everything needed to roll the live state back over one block.
#[derive(Debug, Default)]
pub(crate) struct Undo {
    pub(crate) accounts: Vec<(B256, Prior)>,
    /// Codes this block added to the live state's code table.
    pub(crate) new_codes: Vec<B256>,
}

/// Read-only inputs of drafting plus the rng and the counters.
pub(crate) struct Drafter<'a> {
    pub(crate) rng: &'a mut ChaCha8Rng,
    pub(crate) live: &'a State,
    pub(crate) accounts: &'a KeySet,
    pub(crate) contracts: &'a KeySet,
    pub(crate) code_pool: &'a [B256],
    pub(crate) codes: &'a HashKeyed<Bytes>,
    pub(crate) stats: &'a mut ChangeStats,
}

impl Drafter<'_> {
    /// Draws `count` changes, each to a different account, sorted by account.
    pub(crate) fn draft(&mut self, count: u32) -> BTreeMap<B256, Pending> {
        let mut out = BTreeMap::new();
        for _ in 0..count {
            let roll = self.rng.random_range(0u32..100);
            let drafted = match roll {
                0..50 => self.balance_nonce(&out),
                50..75 => self.storage_write(&out).or_else(|| self.balance_nonce(&out)),
                75..85 => None,
                85..92 => Some(self.new_contract()),
                _ => self.delete(&out),
            };
            let (key, change) = drafted.unwrap_or_else(|| self.new_account());
            out.insert(key, change);
        }
        out
    }

    /// An existing account not yet touched in this block, if one turns up in a few draws.
    fn untouched(&mut self, set: &KeySet, touched: &BTreeMap<B256, Pending>) -> Option<B256> {
        (0..8).filter_map(|_| set.sample(self.rng)).find(|k| !touched.contains_key(k))
    }

    fn fresh_key(&mut self) -> B256 {
        loop {
            let k = random_key(self.rng);
            if !self.live.accounts.contains_key(&k) {
                return k;
            }
        }
    }

    fn balance_nonce(&mut self, touched: &BTreeMap<B256, Pending>) -> Option<(B256, Pending)> {
        let set = self.accounts;
        let key = self.untouched(set, touched)?;
        let acct = &self.live.accounts[&key];
        let mut nonce = acct.nonce;
        let mut balance = acct.balance;
        let what = self.rng.random_range(0u8..4);
        if what != 0 {
            let delta = U256::from(self.rng.random_range(1u64..=1_000_000_000_000_000_000));
            balance = match self.rng.random_range(0u8..5) {
                0 => random_balance(self.rng),
                1 | 2 => balance.saturating_sub(delta),
                _ => balance.saturating_add(delta),
            };
        }
        if what != 1 {
            nonce = nonce.saturating_add(1);
        }
        self.stats.balance_nonce += 1;
        Some((key, Pending::Set { nonce, balance, code: Bytes::new(), storage: BTreeMap::new() }))
    }

    fn storage_write(&mut self, touched: &BTreeMap<B256, Pending>) -> Option<(B256, Pending)> {
        let (set, live) = (self.contracts, self.live);
        let key = self.untouched(set, touched)?;
        let acct = &live.accounts[&key];
        let mut writes = BTreeMap::new();
        let len = acct.storage.len();
        if len > 0 && len <= CLEARABLE_SLOTS && self.rng.random_bool(0.08) {
            writes.extend(acct.storage.keys().map(|k| (*k, U256::ZERO)));
            self.stats.deleted_slots += len as u64;
            self.stats.cleared_storages += 1;
        } else {
            for _ in 0..self.rng.random_range(1u32..=6) {
                let op = self.rng.random_range(0u8..10);
                if op < 4 || acct.storage.is_empty() {
                    writes.insert(random_key(self.rng), random_slot_value(self.rng));
                    self.stats.new_slots += 1;
                    continue;
                }
                // A random existing slot: the first at or after a random key (wrapping).
                let probe = random_key(self.rng);
                let slot = acct.storage.range(probe..).next().or_else(|| acct.storage.iter().next());
                let Some((slot, _)) = slot else { continue };
                if op < 8 {
                    writes.insert(*slot, random_slot_value(self.rng));
                    self.stats.modified_slots += 1;
                } else {
                    writes.insert(*slot, U256::ZERO);
                    self.stats.deleted_slots += 1;
                }
            }
        }
        self.stats.storage_updates += 1;
        Some((
            key,
            Pending::Set { nonce: acct.nonce, balance: acct.balance, code: Bytes::new(), storage: writes },
        ))
    }

    fn new_account(&mut self) -> (B256, Pending) {
        let key = self.fresh_key();
        let nonce = if self.rng.random_bool(0.5) { 0 } else { 1 };
        let balance = U256::from(self.rng.random_range(1u64..=u64::MAX));
        self.stats.new_accounts += 1;
        (key, Pending::Set { nonce, balance, code: Bytes::new(), storage: BTreeMap::new() })
    }

    fn new_contract(&mut self) -> (B256, Pending) {
        let key = self.fresh_key();
        let reuse = !self.code_pool.is_empty() && self.rng.random_bool(0.7);
        let code = if reuse {
            let h = self.code_pool[self.rng.random_range(0..self.code_pool.len())];
            self.codes[&h].clone()
        } else {
            self.stats.new_codes += 1;
            random_code(self.rng, NEW_CODE_SIZE)
        };
        let slots = self.rng.random_range(0usize..=16);
        let storage = (0..slots).map(|_| (random_key(self.rng), random_slot_value(self.rng))).collect();
        let balance = if self.rng.random_bool(0.5) { U256::ZERO } else { random_balance(self.rng) };
        self.stats.new_contracts += 1;
        (key, Pending::Set { nonce: 1, balance, code, storage })
    }

    fn delete(&mut self, touched: &BTreeMap<B256, Pending>) -> Option<(B256, Pending)> {
        if self.accounts.len() <= 1 {
            return None;
        }
        let set = self.accounts;
        let key = self.untouched(set, touched)?;
        self.stats.deleted_accounts += 1;
        if self.contracts.index.contains_key(&key) {
            self.stats.deleted_contracts += 1;
        }
        Some((key, Pending::Delete))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn key_set_swap_remove() {
        let mut s = KeySet::default();
        let keys: Vec<B256> = (1..=5u8).map(B256::repeat_byte).collect();
        for k in &keys {
            s.insert(*k);
        }
        s.insert(keys[0]);
        assert_eq!(s.len(), 5);
        s.remove(&keys[0]);
        s.remove(&keys[0]);
        s.remove(&keys[4]);
        assert_eq!(s.len(), 3);
        for (k, i) in s.keys.iter().zip(0..) {
            assert_eq!(s.index[k], i);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let k = s.sample(&mut rng).unwrap();
            assert!(k != keys[0] && k != keys[4]);
        }
        assert!(KeySet::default().sample(&mut rng).is_none());
    }
}
