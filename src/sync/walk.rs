//! The completion check: walk the whole trie at the pivot root from the store, every node,
//! every storage trie and every code, before declaring the sync done.

use crate::account::Account;
use crate::primitives::{B256, EMPTY_CODE, EMPTY_ROOT};
use crate::store::SyncStore;
use crate::trie::node::{ChildRef, Node};
use crate::trie::walk::{load, WalkError};

/// Counts from a complete walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WalkStats {
    /// Trie nodes visited (hashed ones).
    pub nodes: u64,
    /// Accounts.
    pub accounts: u64,
    /// Storage slots.
    pub slots: u64,
}

/// Why the state at a root is incomplete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncompleteState {
    /// A node is missing or corrupt.
    #[error(transparent)]
    Trie(#[from] WalkError),
    /// An account leaf does not decode.
    #[error("account {0} does not decode")]
    BadAccount(B256),
    /// Code is missing.
    #[error("code {0} missing")]
    MissingCode(B256),
}

/// Walks the state trie at `root` and every storage trie; all must be present.
pub fn verify_complete(store: &dyn SyncStore, root: B256) -> Result<WalkStats, IncompleteState> {
    let mut stats = WalkStats::default();
    if root == EMPTY_ROOT {
        return Ok(stats);
    }
    let mut stack: Vec<(ChildRef, Vec<u8>, bool)> = vec![(ChildRef::Hash(root), Vec::new(), true)];
    while let Some((r, path, is_account_trie)) = stack.pop() {
        let (node, rlp) = load(store, &r)?;
        if rlp.is_some() {
            stats.nodes += 1;
        }
        match node {
            Node::Leaf { path: rest, value } => {
                if is_account_trie {
                    stats.accounts += 1;
                    let mut full = path.clone();
                    full.extend_from_slice(&rest);
                    let key = crate::trie::nibbles::pack(&full).unwrap_or_default();
                    let acc = Account::decode_full(&value).map_err(|_| IncompleteState::BadAccount(key))?;
                    if acc.code_hash != EMPTY_CODE && store.code(&acc.code_hash).is_none() {
                        return Err(IncompleteState::MissingCode(acc.code_hash));
                    }
                    if acc.storage_root != EMPTY_ROOT {
                        stack.push((ChildRef::Hash(acc.storage_root), Vec::new(), false));
                    }
                } else {
                    stats.slots += 1;
                }
            }
            Node::Extension { path: ext, child } => {
                let mut p = path;
                p.extend_from_slice(&ext);
                stack.push((child, p, is_account_trie));
            }
            Node::Branch { children, .. } => {
                for (i, c) in children.into_iter().enumerate().rev() {
                    if let Some(c) = c {
                        let mut p = path.clone();
                        p.push(i as u8);
                        stack.push((c, p, is_account_trie));
                    }
                }
            }
        }
    }
    Ok(stats)
}
