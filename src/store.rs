//! The syncing node's persistent store: content-addressed trie nodes, codes, flat account and
//! storage tables, and the downloader's progress, all written in atomic batches. A crash loses
//! exactly what was not committed.

use crate::account::Account;
use crate::primitives::{keccak256, Bytes, B256};
use crate::trie::batch::NodeBatch;
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
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    /// Trie nodes (hash, rlp); the hash was computed by the writer.
    pub nodes: NodeBatch,
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
        self.nodes.push(keccak256(&rlp), &rlp);
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
    /// Calls `f` on each flat account with `from <= key <= to`, in key order, without
    /// copying them out (the default goes through [`SyncStore::accounts_in`]).
    fn for_each_account_in(&self, from: &B256, to: &B256, f: &mut dyn FnMut(&B256, &Account)) {
        for (k, a) in self.accounts_in(from, to) {
            f(&k, &a);
        }
    }
    /// Flat storage of one account, in slot order (borrowed: no copy of a large contract's
    /// slots).
    fn slots_of(&self, account: &B256) -> &[(B256, SlotValue)];
    /// The last committed downloader progress.
    fn progress(&self) -> Option<&[u8]>;
    /// A buffer of a progress record that a commit replaced, if the store kept one: the
    /// downloader writes the next record into it (cleared) instead of a fresh allocation. The
    /// default keeps none.
    fn spare_progress(&mut self) -> Option<Vec<u8>> {
        None
    }
    /// An empty batch whose buffers a commit no longer needed, if the store kept one: the
    /// downloader fills it instead of growing fresh buffers for every reply. The default
    /// keeps none.
    fn spare_batch(&mut self) -> Option<WriteBatch> {
        None
    }
    /// A named record written with [`WriteBatch::meta`].
    fn meta(&self, key: &str) -> Option<&[u8]>;
    /// Applies a batch atomically.
    fn commit(&mut self, batch: WriteBatch);
    /// Writes one trie node at once (content-addressed, so harmless if nothing refers to it).
    fn put_node(&mut self, hash: B256, rlp: &[u8]);
    /// A hint that `account` will hold about `slots` storage slots (a large contract about to
    /// be fetched in parallel chunks): the store may make room for them at once instead of
    /// growing step by step. No effect on results; the default does nothing.
    fn expect_slots(&mut self, _account: &B256, _slots: usize) {}
    /// A hint that `node(hash)` follows soon (a walk queues it): start fetching where it is
    /// indexed. No effect on results; the default does nothing.
    fn prefetch_node(&self, _hash: &B256) {}
    /// Pushes onto `out` what `node(hash)` gives for each of `hashes`, in order: for walks
    /// that know several nodes they need next, so that a store can overlap their fetches. The
    /// default looks them up one by one.
    fn nodes<'s>(&'s self, hashes: &[B256], out: &mut Vec<Option<&'s [u8]>>) {
        out.extend(hashes.iter().map(|h| self.node(h)));
    }
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

/// Merges `run` (one account's (account, slot, value) writes, ascending, unique slot hashes)
/// into the sorted, unique `slots`; a slot already
/// held takes the new value. Appending past the last slot (the common case) moves nothing.
fn merge_slots(slots: &mut Vec<(B256, SlotValue)>, run: &[(B256, B256, SlotValue)]) {
    let (Some(first), Some(last)) = (run.first().map(|r| r.1), run.last().map(|r| r.1)) else { return };
    let at = slots.partition_point(|(s, _)| *s < first);
    let end = at + slots[at..].partition_point(|(s, _)| *s <= last);
    let new = run.iter().map(|(_, s, v)| (*s, v.clone()));
    if at == end {
        // no overlap (appended, or a chunk of a split contract landing between chunks already
        // held): at most one move of the tail
        reserve_slots(slots, run.len());
        slots.splice(at..at, new);
        return;
    }
    // merge only the held slots between the run's first and last key
    let mut merged = Vec::with_capacity(end - at + run.len());
    let mut old = slots[at..end].iter().cloned().peekable();
    let mut new = new.peekable();
    loop {
        let next = match (old.peek().map(|o| o.0), new.peek().map(|n| n.0)) {
            (Some(o), Some(n)) if n < o => new.next(),
            (Some(o), Some(n)) if n == o => {
                old.next(); // replaced by the new value
                new.next()
            }
            (Some(_), _) => old.next(),
            (None, Some(_)) => new.next(),
            (None, None) => break,
        };
        merged.extend(next);
    }
    reserve_slots(slots, merged.len().saturating_sub(end - at));
    slots.splice(at..end, merged);
}

/// Makes room for `extra` more slots, doubling; a large new buffer has its pages faulted in
/// at once (see `trie::mem`) instead of a trap per page as it fills.
fn reserve_slots(slots: &mut Vec<(B256, SlotValue)>, extra: usize) {
    let need = slots.len() + extra;
    if need <= slots.capacity() {
        return;
    }
    grow_slots(slots, need.max(slots.capacity() * 2));
}

/// Moves `slots` into a buffer of capacity `cap` whose pages are faulted in at once.
fn grow_slots(slots: &mut Vec<(B256, SlotValue)>, cap: usize) {
    let mut grown: Vec<(B256, SlotValue)> = Vec::with_capacity(cap);
    crate::trie::mem::populate(grown.as_ptr().cast(), cap * std::mem::size_of::<(B256, SlotValue)>());
    grown.append(slots);
    *slots = grown;
}

/// In-memory [`SyncStore`]; the simulator keeps it across a node crash and restart.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    nodes: MemNodes,
    codes: HashKeyed<Bytes>,
    accounts: BTreeMap<B256, Account>,
    /// Per account, its slots sorted by slot hash, each once: batches mostly append (ranges
    /// arrive in key order), so a sorted vector beats a map of (account, slot) keys in memory
    /// (no per-entry key copy or tree nodes) and in time.
    slots: BTreeMap<B256, Vec<(B256, SlotValue)>>,
    progress: Option<Vec<u8>>,
    /// The progress buffer the last commit replaced ([`SyncStore::spare_progress`]).
    spare_progress: Option<Vec<u8>>,
    /// The last committed batch, emptied ([`SyncStore::spare_batch`]).
    spare_batch: Option<WriteBatch>,
    meta: BTreeMap<String, Vec<u8>>,
    commits: u64,
    /// Storage slots held over all accounts (kept as batches merge, for [`MemStore::slot_count`]).
    slot_count: u64,
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
    /// Number of flat accounts stored.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }
    /// Number of distinct codes stored.
    pub fn code_count(&self) -> usize {
        self.codes.len()
    }
    /// Number of flat storage slots stored, over all accounts.
    pub fn slot_count(&self) -> u64 {
        self.slot_count
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
    fn for_each_account_in(&self, from: &B256, to: &B256, f: &mut dyn FnMut(&B256, &Account)) {
        if from <= to {
            self.accounts.range(*from..=*to).for_each(|(k, a)| f(k, a));
        }
    }
    fn slots_of(&self, account: &B256) -> &[(B256, SlotValue)] {
        self.slots.get(account).map_or(&[], |v| &v[..])
    }
    fn progress(&self) -> Option<&[u8]> {
        self.progress.as_deref()
    }
    fn spare_progress(&mut self) -> Option<Vec<u8>> {
        self.spare_progress.take()
    }
    fn spare_batch(&mut self) -> Option<WriteBatch> {
        self.spare_batch.take()
    }
    fn commit(&mut self, mut batch: WriteBatch) {
        self.nodes.insert_batch(&batch.nodes);
        for (h, c) in batch.codes.drain(..) {
            self.codes.insert(h, c);
        }
        self.accounts.extend(batch.accounts.drain(..));
        let batch_slots = &mut batch.slots;
        if !batch_slots.is_sorted_by(|x, y| (x.0, x.1) < (y.0, y.1)) {
            // one run per account; of a slot written twice the later write wins (the sort is
            // stable; reversed, dedup keeps the first of equal keys)
            batch_slots.sort_by_key(|x| (x.0, x.1));
            batch_slots.reverse();
            batch_slots.dedup_by(|dup, kept| (dup.0, dup.1) == (kept.0, kept.1));
            batch_slots.reverse();
        }
        for run in batch_slots.chunk_by(|x, y| x.0 == y.0) {
            let held = self.slots.entry(run[0].0).or_default();
            let before = held.len();
            merge_slots(held, run);
            self.slot_count += held.len().saturating_sub(before) as u64;
        }
        if let Some(p) = batch.progress.take() {
            self.spare_progress = self.progress.replace(p);
        }
        self.meta.extend(batch.meta.drain(..));
        batch.nodes.clear();
        batch.slots.clear();
        self.spare_batch = Some(batch);
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
    fn expect_slots(&mut self, account: &B256, slots: usize) {
        let held = self.slots.entry(*account).or_default();
        if slots > held.capacity() {
            grow_slots(held, slots);
        }
    }
    fn nodes<'s>(&'s self, hashes: &[B256], out: &mut Vec<Option<&'s [u8]>>) {
        self.nodes.get_many(hashes, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(b: u8) -> SlotValue {
        SlotValue::from(&[b][..])
    }

    /// The slot table behaves like a map of (account, slot): appends, merges into the middle,
    /// overwrites, unsorted batches and repeated writes within one batch (the last wins).
    #[test]
    fn slot_table_matches_a_map_on_random_runs() {
        // runs of sorted slots from a small key space: appends, middle inserts, overlaps, and
        // vectors large enough to take the pre-faulted growth path
        let mut store = MemStore::default();
        let mut model: BTreeMap<B256, SlotValue> = BTreeMap::new();
        let acct = B256::repeat_byte(9);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..300u64 {
            let start = next() % 60_000;
            let len = 1 + next() % if round % 10 == 0 { 8_000 } else { 40 };
            let step = 1 + next() % 3;
            let mut b = WriteBatch::default();
            for k in 0..len {
                let mut key = [0u8; 32];
                key[24..].copy_from_slice(&(start + k * step).to_be_bytes());
                let val = v((round % 251) as u8);
                b.slots.push((acct, B256::from(key), val.clone()));
                model.insert(B256::from(key), val);
            }
            store.commit(b);
        }
        let want: Vec<(B256, SlotValue)> = model.into_iter().collect();
        assert_eq!(store.slots_of(&acct), want);
        assert_eq!(store.slot_count(), want.len() as u64);
    }

    #[test]
    fn slot_table_matches_a_map() {
        let mut store = MemStore::default();
        let mut model: BTreeMap<(B256, B256), SlotValue> = BTreeMap::new();
        let batches: Vec<Vec<(u8, u8, u8)>> = vec![
            vec![(1, 10, 1), (1, 20, 2), (1, 30, 3), (2, 5, 4)],
            vec![(1, 40, 5), (1, 50, 6)],
            vec![(1, 15, 7), (1, 20, 8), (1, 45, 9), (1, 60, 10)],
            vec![(2, 1, 11), (1, 5, 12), (2, 5, 13), (1, 5, 14), (3, 9, 15)],
            vec![(1, 25, 16), (1, 10, 17), (1, 70, 18)],
        ];
        for batch in batches {
            let mut b = WriteBatch::default();
            for (a, s, x) in batch {
                b.slots.push((B256::repeat_byte(a), B256::repeat_byte(s), v(x)));
                model.insert((B256::repeat_byte(a), B256::repeat_byte(s)), v(x));
            }
            store.commit(b);
            for a in 1..=3u8 {
                let want: Vec<(B256, SlotValue)> = model
                    .iter()
                    .filter(|((acc, _), _)| *acc == B256::repeat_byte(a))
                    .map(|((_, s), x)| (*s, x.clone()))
                    .collect();
                assert_eq!(store.slots_of(&B256::repeat_byte(a)), want);
            }
        }
    }

    #[test]
    fn slot_values_inline_or_heap() {
        for len in [0usize, 1, 32, 33, 34, 100] {
            let bytes: Vec<u8> = (0..len as u8).collect();
            let value = SlotValue::from(&bytes[..]);
            assert_eq!(value.as_slice(), &bytes[..]);
            assert_eq!(matches!(value, SlotValue::Heap(_)), len > 33);
        }
    }
}
