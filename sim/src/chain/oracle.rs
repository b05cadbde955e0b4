//! The oracle: the expected state at any block, computed by an independent path.
//!
//! [`state_at`] replays block bodies onto a flat [`State`] and [`oracle_root`] hashes it with
//! alloy-trie's `HashBuilder` over sorted leaves. Nothing here reads the chain's node store or
//! its copy-on-write tries: a bug there cannot hide itself by agreeing with itself.

use alloy_primitives::B256;
use syncsim_node::codec::{AccountChange, Block, BlockBody};
use syncsim_node::state::{AccountData, State};

/// Applies one body's changes, in order, to a flat state.
///
/// `Set` creates the account if absent (no code, no storage), overwrites nonce and balance,
/// installs non-empty code (adding it to the code table) and applies the storage writes, a
/// zero value deleting the slot. `Delete` removes the account with all its storage.
pub fn apply_body(state: &mut State, body: &BlockBody) {
    for change in &body.changes {
        match change {
            AccountChange::Delete { account } => {
                state.accounts.remove(account);
            }
            AccountChange::Set { account, nonce, balance, code, storage } => {
                let code_hash = (!code.is_empty()).then(|| state.insert_code(code.clone()));
                let entry = state.accounts.entry(*account).or_insert_with(|| AccountData::plain(0, *balance));
                entry.nonce = *nonce;
                entry.balance = *balance;
                if let Some(h) = code_hash {
                    entry.code_hash = h;
                }
                for w in storage {
                    if w.value.is_zero() {
                        entry.storage.remove(&w.slot);
                    } else {
                        entry.storage.insert(w.slot, w.value);
                    }
                }
            }
        }
    }
}

/// The state after block `n`: the bodies of the blocks numbered `1..=n` in `blocks` (the
/// canonical chain, genesis first; blocks are picked by their header number, in slice order)
/// replayed onto a clone of `initial`, the state of block 0.
pub fn state_at(initial: &State, blocks: &[Block], n: u64) -> State {
    replay(initial.clone(), blocks, n)
}

/// Like [`state_at`], consuming the initial state instead of copying it.
pub fn replay(mut state: State, blocks: &[Block], n: u64) -> State {
    for block in blocks.iter().filter(|b| (1..=n).contains(&b.header.number)) {
        apply_body(&mut state, &block.body);
    }
    state
}

/// The expected state root: `state.root()`, i.e. alloy-trie's `HashBuilder` over sorted leaves.
pub fn oracle_root(state: &State) -> B256 {
    state.root()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Bytes, U256};
    use syncsim_node::codec::{Header, StorageChange};
    use syncsim_node::primitives::{keccak256, EMPTY_CODE, EMPTY_ROOT};

    fn block(number: u64, changes: Vec<AccountChange>) -> Block {
        Block { header: Header { number, ..Default::default() }, body: BlockBody { changes } }
    }

    #[test]
    fn replay_semantics() {
        let a = B256::repeat_byte(1);
        let b = B256::repeat_byte(2);
        let mut initial = State::default();
        initial.accounts.insert(a, AccountData::plain(1, U256::from(5u64)));
        let code = Bytes::from_static(&[0x60, 0x00]);
        let slot = |i: u8, v: u64| StorageChange { slot: B256::repeat_byte(i), value: U256::from(v) };
        let blocks = vec![
            block(0, vec![]),
            block(
                1,
                vec![AccountChange::Set {
                    account: b,
                    nonce: 1,
                    balance: U256::ZERO,
                    code: code.clone(),
                    storage: vec![slot(1, 10), slot(2, 20)],
                }],
            ),
            block(
                2,
                vec![
                    AccountChange::Delete { account: a },
                    AccountChange::Set {
                        account: b,
                        nonce: 2,
                        balance: U256::from(3u64),
                        code: Bytes::new(),
                        storage: vec![slot(1, 0), slot(2, 21)],
                    },
                ],
            ),
        ];
        assert_eq!(state_at(&initial, &blocks, 0), initial);
        let s1 = state_at(&initial, &blocks, 1);
        assert_eq!(s1.accounts.len(), 2);
        assert_eq!(s1.accounts[&b].code_hash, keccak256(&code));
        assert_eq!(s1.codes[&keccak256(&code)], code);
        assert_eq!(s1.accounts[&b].storage.len(), 2);
        let s2 = state_at(&initial, &blocks, 2);
        assert!(!s2.accounts.contains_key(&a));
        let acc = &s2.accounts[&b];
        assert_eq!((acc.nonce, acc.balance), (2, U256::from(3u64)));
        assert_eq!(acc.code_hash, keccak256(&code));
        assert_eq!(acc.storage.len(), 1);
        assert_eq!(acc.storage[&B256::repeat_byte(2)], U256::from(21u64));
        // Past the end: everything replayed.
        assert_eq!(state_at(&initial, &blocks, 99), s2);
        assert_ne!(oracle_root(&s1), oracle_root(&s2));
        assert_eq!(oracle_root(&State::default()), EMPTY_ROOT);
        assert_ne!(EMPTY_CODE, keccak256(&code));
    }
}
