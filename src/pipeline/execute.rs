//! Block insertion: applying a block's state changes to the synced state and checking the
//! resulting root against the header. Inserting a block the node already has is a no-op.

use super::stage::{Checkpoint, Stage, StageId, Unwind};
use crate::account::Account;
use crate::codec::{AccountChange, BlockBody, Header};
use crate::primitives::{keccak256, B256, EMPTY_CODE, EMPTY_ROOT};
use crate::store::{StoreNodes, SyncStore, WriteBatch};
use crate::trie::root::storage_value_rlp;
use crate::trie::update::{apply, Update};
use crate::trie::walk::{get, WalkError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What inserting a block did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The block was applied; the new head root.
    Applied(B256),
    /// The block was already inserted: nothing to do.
    Known,
}

/// Why a block could not be inserted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// The block does not extend the executed head.
    #[error("block {number} does not extend the executed head {head}")]
    NotNext {
        /// Its number.
        number: u64,
        /// The executed head.
        head: u64,
    },
    /// The body does not match the header's body hash.
    #[error("body does not match header {0}")]
    BodyMismatch(u64),
    /// The state after the block differs from the header's root.
    #[error("block {number}: state root {got} != header {want}")]
    RootMismatch {
        /// Block number.
        number: u64,
        /// Computed.
        got: B256,
        /// Header's.
        want: B256,
    },
    /// The state trie is incomplete.
    #[error(transparent)]
    Trie(#[from] WalkError),
    /// A stored account does not decode.
    #[error("stored account {0} does not decode")]
    BadAccount(B256),
    /// Test-only planted bug: a known block treated as an error.
    #[error("block {0} already known")]
    KnownBlock(u64),
}

/// The execution stage's persisted progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecProgress {
    /// The pivot block the state was synced at.
    pub pivot: u64,
    /// Executed block number -> (block hash, state root), from the pivot up.
    pub blocks: BTreeMap<u64, (B256, B256)>,
}

impl ExecProgress {
    /// Record key in the store.
    pub const KEY: &'static str = "exec";

    /// Highest executed block number.
    pub fn head(&self) -> Option<(u64, B256, B256)> {
        self.blocks.iter().next_back().map(|(n, (h, r))| (*n, *h, *r))
    }

    /// Whether a block with this hash was inserted.
    pub fn knows(&self, hash: &B256) -> bool {
        self.blocks.values().any(|(h, _)| h == hash)
    }

    /// Loads from the store.
    pub fn load(store: &dyn SyncStore) -> Option<Self> {
        store.meta(Self::KEY).and_then(|b| serde_json::from_slice(b).ok())
    }

    /// Persists.
    pub fn save(&self, store: &mut dyn SyncStore) {
        let mut batch = WriteBatch::default();
        batch.meta.push((Self::KEY.to_string(), serde_json::to_vec(self).unwrap_or_default()));
        store.commit(batch);
    }
}

impl Stage for ExecProgress {
    fn id(&self) -> StageId {
        StageId::Execution
    }

    /// The executed head.
    fn checkpoint(&self) -> Option<Checkpoint> {
        self.head().map(|(block, hash, _)| Checkpoint { block, hash })
    }

    /// Drops executed blocks above `to` (their nodes stay: content-addressed, unreferenced).
    /// When the pivot itself is above `to`, the synced state is void: every block is dropped
    /// and the result is `Reset`.
    fn unwind(&mut self, to: u64) -> Unwind {
        if self.pivot > to {
            self.blocks.clear();
            return Unwind::Reset;
        }
        self.blocks.retain(|n, _| *n <= to);
        Unwind::To(to)
    }
}

/// Inserts one block on top of the executed head. `known_fatal` plants the classic bug.
pub fn insert_block(
    store: &mut dyn SyncStore,
    exec: &mut ExecProgress,
    header: &Header,
    body: &BlockBody,
    known_fatal: bool,
) -> Result<Inserted, InsertError> {
    let hash = header.hash();
    if exec.knows(&hash) {
        return if known_fatal { Err(InsertError::KnownBlock(header.number)) } else { Ok(Inserted::Known) };
    }
    let Some((head, head_hash, root)) = exec.head() else {
        return Err(InsertError::NotNext { number: header.number, head: 0 });
    };
    if header.number != head + 1 || header.parent_hash != head_hash {
        return Err(InsertError::NotNext { number: header.number, head });
    }
    if body.hash() != header.body_hash {
        return Err(InsertError::BodyMismatch(header.number));
    }
    let new_root = apply_body(store, root, body)?;
    if new_root != header.state_root {
        return Err(InsertError::RootMismatch {
            number: header.number,
            got: new_root,
            want: header.state_root,
        });
    }
    exec.blocks.insert(header.number, (hash, new_root));
    exec.save(store);
    Ok(Inserted::Applied(new_root))
}

/// Applies a body's changes to the state at `root`, writing new nodes and codes; returns the
/// new root.
pub fn apply_body(store: &mut dyn SyncStore, root: B256, body: &BlockBody) -> Result<B256, InsertError> {
    let mut changes: Vec<&AccountChange> = body.changes.iter().collect();
    changes.sort_by_key(|c| c.account());
    let mut ups: Vec<Update> = Vec::with_capacity(changes.len());
    let mut codes = WriteBatch::default();
    for change in changes {
        match change {
            AccountChange::Delete { account } => ups.push((*account, None)),
            AccountChange::Set { account, nonce, balance, code, storage } => {
                let old = match get(&*store, root, account)? {
                    Some(v) => Some(Account::decode_full(&v).map_err(|_| InsertError::BadAccount(*account))?),
                    None => None,
                };
                let mut storage_root = old.map_or(EMPTY_ROOT, |a| a.storage_root);
                if !storage.is_empty() {
                    let mut slot_ups: Vec<Update> = storage
                        .iter()
                        .map(|s| (s.slot, (!s.value.is_zero()).then(|| storage_value_rlp(s.value))))
                        .collect();
                    slot_ups.sort_by_key(|u| u.0);
                    slot_ups.dedup_by_key(|u| u.0);
                    storage_root = apply(&mut StoreNodes(store), storage_root, &slot_ups)?;
                }
                let code_hash = if code.is_empty() {
                    old.map_or(EMPTY_CODE, |a| a.code_hash)
                } else {
                    let h = keccak256(code);
                    codes.codes.push((h, code.clone()));
                    h
                };
                let acc = Account { nonce: *nonce, balance: *balance, storage_root, code_hash };
                ups.push((*account, Some(acc.encode_full())));
            }
        }
    }
    ups.dedup_by_key(|u| u.0);
    if !codes.is_empty() {
        store.commit(codes);
    }
    Ok(apply(&mut StoreNodes(store), root, &ups)?)
}
