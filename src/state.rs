//! A whole world state in the form the trie commits to: accounts keyed by hashed address,
//! storage keyed by hashed slot, codes by hash. Used by genesis loading, the simulator's chain
//! and its oracle.

use crate::account::Account;
use crate::primitives::{keccak256, Bytes, B256, EMPTY_CODE, U256};
use crate::trie::root::{root_from_sorted, storage_value_rlp};
use std::collections::BTreeMap;

/// One account's contents (storage as a map; its root is derived).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountData {
    /// Nonce.
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
    /// Hash of the code (EMPTY_CODE for none); the code itself lives in [`State::codes`].
    pub code_hash: B256,
    /// Storage: hashed slot -> non-zero value.
    pub storage: BTreeMap<B256, U256>,
}

impl AccountData {
    /// An account with no code and no storage.
    pub fn plain(nonce: u64, balance: U256) -> Self {
        Self { nonce, balance, code_hash: EMPTY_CODE, storage: BTreeMap::new() }
    }

    /// Root of this account's storage trie.
    pub fn storage_root(&self) -> B256 {
        let leaves: Vec<(B256, Vec<u8>)> =
            self.storage.iter().map(|(k, v)| (*k, storage_value_rlp(*v))).collect();
        root_from_sorted(leaves.iter().map(|(k, v)| (*k, v.as_slice())))
    }

    /// The trie account, given its (already computed) storage root.
    pub fn to_account(&self, storage_root: B256) -> Account {
        Account { nonce: self.nonce, balance: self.balance, storage_root, code_hash: self.code_hash }
    }
}

/// A complete state: the accounts and the codes they reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// keccak(address) -> account.
    pub accounts: BTreeMap<B256, AccountData>,
    /// keccak(code) -> code.
    pub codes: BTreeMap<B256, Bytes>,
}

/// Summary counts of a state, as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StateStats {
    /// Number of accounts.
    pub accounts: u64,
    /// Accounts with code.
    pub contracts: u64,
    /// Storage slots over all accounts.
    pub storage_slots: u64,
    /// Bytes of distinct code.
    pub code_bytes: u64,
}

impl State {
    /// Adds code to the code table and returns its hash.
    pub fn insert_code(&mut self, code: Bytes) -> B256 {
        if code.is_empty() {
            return EMPTY_CODE;
        }
        let hash = keccak256(&code);
        self.codes.insert(hash, code);
        hash
    }

    /// The state root: storage roots first, then the account trie, each from sorted leaves
    /// with alloy-trie's `HashBuilder`.
    pub fn root(&self) -> B256 {
        let leaves: Vec<(B256, Vec<u8>)> =
            self.accounts.iter().map(|(k, a)| (*k, a.to_account(a.storage_root()).encode_full())).collect();
        root_from_sorted(leaves.iter().map(|(k, v)| (*k, v.as_slice())))
    }

    /// Counts for the report.
    pub fn stats(&self) -> StateStats {
        StateStats {
            accounts: self.accounts.len() as u64,
            contracts: self.accounts.values().filter(|a| a.code_hash != EMPTY_CODE).count() as u64,
            storage_slots: self.accounts.values().map(|a| a.storage.len() as u64).sum(),
            code_bytes: self.codes.values().map(|c| c.len() as u64).sum(),
        }
    }
}
