//! The completion check: walk the whole trie at the pivot root from the store, every node,
//! every storage trie and every code, before declaring the sync done.

use crate::account::Account;
use crate::primitives::{B256, EMPTY_CODE, EMPTY_ROOT};
use crate::store::SyncStore;
use crate::trie::db::HashKeyed;
use crate::trie::node::{Node, NodeView, RefView};
use crate::trie::walk::WalkError;

/// Counts from a complete walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WalkStats {
    /// Trie nodes visited (hashed ones).
    pub nodes: u64,
    /// Accounts.
    pub accounts: u64,
    /// Storage slots (each distinct storage trie counted once).
    pub slots: u64,
}

/// Why the state at a root is incomplete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncompleteState {
    /// A node is missing or corrupt.
    #[error(transparent)]
    Trie(#[from] WalkError),
    /// An account leaf does not decode.
    #[error("an account leaf does not decode")]
    BadAccount,
    /// Code is missing.
    #[error("code {0} missing")]
    MissingCode(B256),
}

/// Walks the state trie at `root` and every storage trie; all must be present. Decodes
/// without allocating and walks each distinct storage trie once.
pub fn verify_complete(store: &dyn SyncStore, root: B256) -> Result<WalkStats, IncompleteState> {
    let mut stats = WalkStats::default();
    if root == EMPTY_ROOT {
        return Ok(stats);
    }
    let mut seen_storage: HashKeyed<()> = HashKeyed::default();
    let mut stack: Vec<(RefView<'_>, bool)> = vec![(RefView::Hash(root), true)];
    // Lookups are cache misses: an index slot is prefetched when its reference is pushed, and
    // the node itself two visits ahead. Hints only: the visiting order is plain DFS.
    fn push<'a>(
        store: &dyn SyncStore,
        stack: &mut Vec<(RefView<'a>, bool)>,
        r: RefView<'a>,
        account_trie: bool,
    ) {
        if let RefView::Hash(h) = r {
            store.prefetch_node(&h);
        }
        stack.push((r, account_trie));
    }
    while let Some((r, account_trie)) = stack.pop() {
        if let Some((RefView::Hash(h), _)) = stack.len().checked_sub(2).map(|i| stack[i]) {
            store.prefetch_node_data(&h);
        }
        let rlp = match r {
            RefView::Hash(h) => {
                stats.nodes += 1;
                store.node(&h).ok_or(WalkError::Missing(h))?
            }
            RefView::Inline(raw) => raw,
        };
        match Node::view(rlp).map_err(WalkError::from)? {
            NodeView::Leaf(_, value) => {
                if account_trie {
                    stats.accounts += 1;
                    let acc = Account::decode_full(value).map_err(|_| IncompleteState::BadAccount)?;
                    if acc.code_hash != EMPTY_CODE && store.code(&acc.code_hash).is_none() {
                        return Err(IncompleteState::MissingCode(acc.code_hash));
                    }
                    if acc.storage_root != EMPTY_ROOT && seen_storage.insert(acc.storage_root, ()).is_none() {
                        push(store, &mut stack, RefView::Hash(acc.storage_root), false);
                    }
                } else {
                    stats.slots += 1;
                }
            }
            NodeView::Extension(_, child) => push(store, &mut stack, child, account_trie),
            NodeView::Branch(children) => {
                for c in children.into_iter().flatten() {
                    push(store, &mut stack, c, account_trie);
                }
            }
        }
    }
    Ok(stats)
}
