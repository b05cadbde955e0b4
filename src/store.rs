//! The syncing node's persistent store: content-addressed trie nodes, codes, flat account and
//! storage tables, and the downloader's progress, all written in atomic batches. A crash loses
//! exactly what was not committed.

use crate::account::Account;
use crate::primitives::{keccak256, Bytes, B256};
use crate::trie::db::{HashKeyed, MemNodes, NodeSource};
use std::collections::BTreeMap;

/// Longest slot value kept inline: the RLP of a 256-bit integer (a prefix byte and 32 bytes).
const INLINE_SLOT: usize = 33;

/// A storage slot's leaf value (the RLP of a non-zero integer), held inline when it is at most
/// 33 bytes long, as every value of a well-formed storage trie is: no allocation per slot. A
/// longer value (never produced by honest state, but verified data is stored as it is) goes to
/// the heap.
#[derive(Clone, PartialEq, Eq)]
pub enum SlotValue {
    /// Up to 33 bytes: the length, then the bytes (zero-padded).
    Inline(u8, [u8; INLINE_SLOT]),
    /// Anything longer.
    Heap(Box<[u8]>),
}

impl SlotValue {
    /// The value's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            SlotValue::Inline(len, bytes) => &bytes[..usize::from(*len)],
            SlotValue::Heap(bytes) => bytes,
        }
    }
}

impl From<&[u8]> for SlotValue {
    fn from(v: &[u8]) -> Self {
        if v.len() <= INLINE_SLOT {
            let mut bytes = [0u8; INLINE_SLOT];
            bytes[..v.len()].copy_from_slice(v);
            // fits: v.len() <= 33
            SlotValue::Inline(v.len() as u8, bytes)
        } else {
            SlotValue::Heap(v.into())
        }
    }
}

impl AsRef<[u8]> for SlotValue {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::ops::Deref for SlotValue {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for SlotValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x")?;
        self.as_slice().iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A set of writes applied atomically by [`SyncStore::commit`].
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// Trie nodes (hash, rlp); the hash was computed by the writer.
    pub nodes: Vec<(B256, Vec<u8>)>,
    /// Codes (hash, code).
    pub codes: Vec<(B256, Bytes)>,
    /// Flat accounts.
    pub accounts: Vec<(B256, Account)>,
    /// Flat storage slots (account, slot, leaf value).
    pub slots: Vec<(B256, B256, SlotValue)>,
    /// Downloader progress to persist with these writes.
    pub progress: Option<Vec<u8>>,
    /// Other named records (pipeline progress) to persist with these writes.
    pub meta: Vec<(String, Vec<u8>)>,
}

impl WriteBatch {
    /// Adds a node, hashing it.
    pub fn node(&mut self, rlp: Vec<u8>) {
        self.nodes.push((keccak256(&rlp), rlp));
    }

    /// True when nothing would be written.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.codes.is_empty()
            && self.accounts.is_empty()
            && self.slots.is_empty()
            && self.progress.is_none()
            && self.meta.is_empty()
    }
}

/// Storage the downloader syncs into. Implementations must apply a batch atomically.
pub trait SyncStore: NodeSource {
    /// Whether a trie node is stored. A stored node implies its whole subtree is stored.
    fn has_node(&self, hash: &B256) -> bool {
        self.node(hash).is_some()
    }
    /// Code by hash.
    fn code(&self, hash: &B256) -> Option<&[u8]>;
    /// Flat accounts with `from <= key <= to`, in key order.
    fn accounts_in(&self, from: &B256, to: &B256) -> Vec<(B256, Account)>;
    /// Flat storage of one account, in slot order.
    fn slots_of(&self, account: &B256) -> Vec<(B256, SlotValue)>;
    /// The last committed downloader progress.
    fn progress(&self) -> Option<&[u8]>;
    /// A named record written with [`WriteBatch::meta`].
    fn meta(&self, key: &str) -> Option<&[u8]>;
    /// Applies a batch atomically.
    fn commit(&mut self, batch: WriteBatch);
    /// Writes one trie node at once (content-addressed, so harmless if nothing refers to it).
    fn put_node(&mut self, hash: B256, rlp: &[u8]);
    /// A hint that `node(hash)` follows soon (a walk queues it): start fetching where it is
    /// indexed. No effect on results; the default does nothing.
    fn prefetch_node(&self, _hash: &B256) {}
    /// A hint that `node(hash)` follows next: start fetching the node itself (best after
    /// [`SyncStore::prefetch_node`]). No effect on results; the default does nothing.
    fn prefetch_node_data(&self, _hash: &B256) {}
}

/// A [`SyncStore`] seen as a writable trie node store.
pub struct StoreNodes<'a>(pub &'a mut dyn SyncStore);

impl NodeSource for StoreNodes<'_> {
    fn node(&self, hash: &B256) -> Option<&[u8]> {
        self.0.node(hash)
    }
}

impl crate::trie::db::NodeDb for StoreNodes<'_> {
    fn put(&mut self, hash: B256, rlp: &[u8]) {
        self.0.put_node(hash, rlp);
    }
}

/// In-memory [`SyncStore`]; the simulator keeps it across a node crash and restart.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    nodes: MemNodes,
    codes: HashKeyed<Bytes>,
    accounts: BTreeMap<B256, Account>,
    slots: BTreeMap<(B256, B256), SlotValue>,
    progress: Option<Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
    commits: u64,
}

impl MemStore {
    /// Number of trie nodes stored.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
    /// Number of batches committed.
    pub fn commits(&self) -> u64 {
        self.commits
    }
}

impl NodeSource for MemStore {
    fn node(&self, hash: &B256) -> Option<&[u8]> {
        self.nodes.node(hash)
    }
}

impl SyncStore for MemStore {
    fn has_node(&self, hash: &B256) -> bool {
        self.nodes.contains(hash)
    }
    fn code(&self, hash: &B256) -> Option<&[u8]> {
        self.codes.get(hash).map(|c| &c[..])
    }
    fn accounts_in(&self, from: &B256, to: &B256) -> Vec<(B256, Account)> {
        if from > to {
            return Vec::new();
        }
        self.accounts.range(*from..=*to).map(|(k, a)| (*k, *a)).collect()
    }
    fn slots_of(&self, account: &B256) -> Vec<(B256, SlotValue)> {
        self.slots
            .range((*account, B256::ZERO)..=(*account, B256::repeat_byte(0xff)))
            .map(|((_, s), v)| (*s, v.clone()))
            .collect()
    }
    fn progress(&self) -> Option<&[u8]> {
        self.progress.as_deref()
    }
    fn commit(&mut self, batch: WriteBatch) {
        for (h, rlp) in batch.nodes {
            self.nodes.insert_hashed(h, &rlp);
        }
        for (h, c) in batch.codes {
            self.codes.insert(h, c);
        }
        self.accounts.extend(batch.accounts);
        for (a, s, v) in batch.slots {
            self.slots.insert((a, s), v);
        }
        if let Some(p) = batch.progress {
            self.progress = Some(p);
        }
        self.meta.extend(batch.meta);
        self.commits += 1;
    }
    fn meta(&self, key: &str) -> Option<&[u8]> {
        self.meta.get(key).map(|v| &v[..])
    }
    fn put_node(&mut self, hash: B256, rlp: &[u8]) {
        self.nodes.insert_hashed(hash, rlp);
    }
    fn prefetch_node(&self, hash: &B256) {
        self.nodes.prefetch(hash);
    }
    fn prefetch_node_data(&self, hash: &B256) {
        self.nodes.prefetch_record(hash);
    }
}
