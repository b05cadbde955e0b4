//! Content-addressed node storage: keccak256(rlp) -> rlp.

use crate::primitives::{keccak256, B256};
use crate::trie::batch::NodeBatch;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hasher for keys that are already uniformly random (keccak outputs): takes 8 bytes.
/// Deterministic across processes, unlike `RandomState`.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
    }
}

/// A `HashMap` keyed by hashes, with a fixed cheap hasher. Only ever used for lookups: code
/// must not let its iteration order affect behaviour.
pub type HashKeyed<V> = HashMap<B256, V, BuildHasherDefault<KeyHasher>>;

/// Anything nodes can be read from by hash.
pub trait NodeSource {
    /// The RLP of the node with this hash, if held.
    fn node(&self, hash: &B256) -> Option<&[u8]>;
}

/// A node store that can also be written (by hash, which the caller computed).
pub trait NodeDb: NodeSource {
    /// Stores a node.
    fn put(&mut self, hash: B256, rlp: &[u8]);
}

impl NodeDb for MemNodes {
    fn put(&mut self, hash: B256, rlp: &[u8]) {
        self.insert_hashed(hash, rlp);
    }
}

/// Bytes before a node's RLP in the arena: its hash, then its length (u32, little-endian).
const RECORD_HEADER: usize = 36;
/// Size of the first arena chunk; chunks double up to [`MAX_CHUNK`].
const FIRST_CHUNK: usize = 64 << 10;
/// Largest regular arena chunk (a larger node gets a chunk of its own).
const MAX_CHUNK: usize = 1 << 22;
/// Records start at multiples of this many bytes, so a location counts in these units.
const ALIGN: usize = 8;
/// Bits of an arena location holding the offset in its chunk (in [`ALIGN`]-byte units).
const OFFSET_BITS: u32 = MAX_CHUNK.trailing_zeros() - ALIGN.trailing_zeros();
/// Bits of an arena location holding the chunk index.
const CHUNK_INDEX_BITS: u32 = 14;
/// Most arena chunks (64 GiB of regular chunks).
const MAX_CHUNKS: usize = 1 << CHUNK_INDEX_BITS;

/// An in-memory content-addressed node map.
///
/// Nodes live in an append-only arena of large chunks (`hash ‖ len ‖ rlp` records, no
/// allocation per node, nodes written together stay together); a table of
/// `(hash tag, arena location)` slots finds them. Only lookups: nothing iterates the
/// table, so its order cannot affect behaviour.
#[derive(Default, Clone)]
pub struct MemNodes {
    index: Index,
    chunks: Vec<Vec<u8>>,
    bytes: usize,
    /// Scratch of [`MemNodes::insert_batch`]: (tag, location, length) of each record appended.
    placed: Vec<(u64, u64, usize)>,
}

/// Open-addressing table (linear probing) of 8-byte slots, eight to a cache line: a slot holds
/// a 31-bit tag (the top bits of the hash's first 8 bytes, never 0, so that 0 marks an empty
/// slot) above a 33-bit arena location ([`MemNodes::append`]: a 14-bit chunk index above a
/// 19-bit offset in 8-byte units). The tag's top bits pick the home slot, so growth re-places
/// entries without touching the arena; a tag match is confirmed against the full hash in the
/// arena. Neighbours share the home bits, so a tag tells them apart by its remaining bits only:
/// 31 - log2(table size) of them, 7 for 16M slots, so that an absent node's probe reads a
/// record (a second cache miss) about once in a hundred lookups. The slot can be prefetched
/// ([`MemNodes::prefetch`]).
#[derive(Default, Clone)]
struct Index {
    slots: Vec<u64>,
    len: usize,
}

/// Most lookups [`MemNodes::get_many`] overlaps at once.
const GROUP: usize = 64;

/// Bits of a slot holding the arena location.
const LOC_BITS: u32 = CHUNK_INDEX_BITS + OFFSET_BITS;
/// Mask of the location bits.
const LOC_MASK: u64 = (1 << LOC_BITS) - 1;

impl Index {
    /// Smallest table allocated.
    const MIN_SLOTS: usize = 1 << 10;

    /// Slot index mask (the table size is a power of two; wraps harmlessly when empty, where
    /// every `get` then misses).
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The home slot of a tag: its top bits (a table of more than 2^31 slots spreads the tags
    /// over every 2^(k-31)-th slot: still correct, only more clustered).
    fn home(&self, tag: u64) -> usize {
        let bits = self.slots.len().trailing_zeros();
        if bits == 0 {
            return 0;
        }
        ((tag << LOC_BITS) >> (64 - bits)) as usize
    }

    /// The location of the entry with `tag` for which `is` holds.
    fn find(&self, tag: u64, is: impl Fn(u64) -> bool) -> Option<u64> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(tag);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if s >> LOC_BITS == tag && is(s & LOC_MASK) {
                return Some(s & LOC_MASK);
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Adds an entry known to be absent.
    fn insert(&mut self, tag: u64, loc: u64) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mut i = self.home(tag);
        while self.slots[i] != 0 {
            i = (i + 1) & self.mask();
        }
        self.slots[i] = (tag << LOC_BITS) | loc;
        self.len += 1;
    }

    /// Grows the table until `extra` more entries fit without another growth.
    fn reserve(&mut self, extra: usize) {
        while (self.len + extra) * 4 > self.slots.len() * 3 {
            self.grow();
        }
    }

    /// Doubles the table (to at least [`Index::MIN_SLOTS`]), re-placing every entry by its tag.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(Self::MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, crate::trie::mem::populated_zeros(size));
        for s in old.into_iter().filter(|s| *s != 0) {
            let mut i = self.home(s >> LOC_BITS);
            while self.slots[i] != 0 {
                i = (i + 1) & self.mask();
            }
            self.slots[i] = s;
        }
    }

    /// Hints the CPU to fetch the home slot of `tag`.
    fn prefetch(&self, tag: u64) {
        if let Some(slot) = self.slots.get(self.home(tag)) {
            prefetch_read(slot as *const u64 as *const u8);
        }
    }
}

/// Most bytes of a node [`MemNodes::get_many`] prefetches (a branch of 16 hashes has 532).
const PREFETCH_MAX: usize = 1024;

/// Hints the CPU to fetch every cache line of `bytes`, up to [`PREFETCH_MAX`] bytes (no
/// effect on behaviour).
fn prefetch_slice(bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(PREFETCH_MAX)];
    for line in bytes.chunks(64) {
        prefetch_read(line.as_ptr());
    }
    if let Some(last) = bytes.last() {
        prefetch_read(last);
    }
}

/// A read prefetch hint (no effect on behaviour; a no-op off x86-64).
#[inline(always)]
fn prefetch_read(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is only a hint; it never faults, even on an invalid address, and
    // `ptr` points into a live allocation anyway.
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_prefetch(ptr.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

impl std::fmt::Debug for MemNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemNodes").field("nodes", &self.len()).field("bytes", &self.bytes).finish()
    }
}

/// The index tag of a node hash: keccak outputs are uniform, so its first 31 bits suffice to
/// place it; a tag of 0 becomes 1, so that no slot is 0 (the empty slot).
fn prefix(hash: &B256) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash[..8]);
    (u64::from_be_bytes(b) >> LOC_BITS).max(1)
}

/// The chunk index and byte offset of an arena location.
fn split_loc(loc: u64) -> (usize, usize) {
    ((loc >> OFFSET_BITS) as usize, ((loc & ((1 << OFFSET_BITS) - 1)) as usize) * ALIGN)
}

impl MemNodes {
    /// Stores a node, returning its hash.
    pub fn insert(&mut self, rlp: &[u8]) -> B256 {
        let hash = keccak256(rlp);
        self.insert_hashed(hash, rlp);
        hash
    }

    /// The record at arena location `loc`: (hash, rlp).
    fn record(&self, loc: u64) -> (&[u8], &[u8]) {
        let (index, at) = split_loc(loc);
        let chunk = &self.chunks[index];
        let mut len = [0u8; 4];
        len.copy_from_slice(&chunk[at + 32..at + RECORD_HEADER]);
        let len = u32::from_le_bytes(len) as usize;
        (&chunk[at..at + 32], &chunk[at + RECORD_HEADER..at + RECORD_HEADER + len])
    }

    /// The arena location of a node.
    fn find(&self, hash: &B256) -> Option<u64> {
        self.index.find(prefix(hash), |loc| self.record(loc).0 == hash.as_slice())
    }

    /// Hints the CPU to fetch the index slot of `hash` (a walk about to look it up soon).
    pub fn prefetch(&self, hash: &B256) {
        self.index.prefetch(prefix(hash));
    }

    /// Looks up many nodes at once, pushing onto `out` what [`NodeSource::node`] gives for each
    /// of `hashes`, in order. A lookup is two cache misses (an index slot, then a record), each
    /// waited for in turn when lookups follow one another; here every index slot of a group is
    /// requested before any is read, then every record before any is confirmed, so the misses
    /// of a group overlap. The rest of each node found is requested too, for the caller about
    /// to decode it.
    pub fn get_many<'s>(&'s self, hashes: &[B256], out: &mut Vec<Option<&'s [u8]>>) {
        for group in hashes.chunks(GROUP) {
            self.get_group(group, out);
        }
    }

    /// [`MemNodes::get_many`] for at most [`GROUP`] hashes.
    fn get_group<'s>(&'s self, hashes: &[B256], out: &mut Vec<Option<&'s [u8]>>) {
        for h in hashes {
            self.index.prefetch(prefix(h));
        }
        // the first entry with each tag: almost always the node itself (another node with the
        // same tag is confirmed against the full hash below)
        let mut candidates = [None; GROUP];
        for (c, h) in candidates.iter_mut().zip(hashes) {
            *c = self.index.find(prefix(h), |_| true);
            if let Some(loc) = *c {
                self.prefetch_at(loc);
            }
        }
        for (c, h) in candidates.iter().zip(hashes) {
            let found = match *c {
                Some(loc) => match self.record(loc) {
                    (hash, rlp) if hash == h.as_slice() => {
                        prefetch_slice(rlp);
                        Some(rlp)
                    }
                    _ => self.node(h),
                },
                None => None,
            };
            out.push(found);
        }
    }

    /// Hints the CPU to fetch the start of the record at arena location `loc`.
    fn prefetch_at(&self, loc: u64) {
        let (index, at) = split_loc(loc);
        if let Some(chunk) = self.chunks.get(index) {
            if let Some(at) = chunk.get(at) {
                prefetch_read(at);
            }
        }
    }

    /// Appends a record to the arena, returning its location.
    fn append(&mut self, hash: &B256, rlp: &[u8]) -> u64 {
        let need = RECORD_HEADER + rlp.len();
        // a record past a chunk's start must end within MAX_CHUNK (its offset fits
        // OFFSET_BITS); a larger one starts a chunk of its own
        let fits = self.chunks.last().is_some_and(|c| {
            let at = c.len().next_multiple_of(ALIGN);
            at + need <= c.capacity() && at + need <= MAX_CHUNK
        });
        if !fits {
            let next = self.chunks.last().map_or(FIRST_CHUNK, |c| (c.capacity() * 2).min(MAX_CHUNK));
            self.chunks.push(crate::trie::mem::populated_bytes(next.max(need)));
        }
        let index = self.chunks.len() - 1;
        assert!(index < MAX_CHUNKS, "node arena beyond {MAX_CHUNKS} chunks (64 GiB)");
        let chunk = &mut self.chunks[index];
        let at = chunk.len().next_multiple_of(ALIGN);
        chunk.resize(at, 0);
        chunk.extend_from_slice(hash.as_slice());
        // a trie node is far below 4 GiB; the length saturates rather than wraps if not
        chunk.extend_from_slice(&u32::try_from(rlp.len()).unwrap_or(u32::MAX).to_le_bytes());
        chunk.extend_from_slice(rlp);
        ((index as u64) << OFFSET_BITS) | (at / ALIGN) as u64
    }

    /// Stores every node of a batch (as [`MemNodes::insert_hashed`] does one by one). The
    /// records are appended first, in batch order, so nodes written together stay together;
    /// the index entries follow in a tight loop that prefetches their slots well ahead, so
    /// that the index's cache misses (one per node: slots are spread at random) overlap
    /// instead of coming one after another. A node already held keeps its first record (the
    /// new copy stays in the arena, unindexed).
    pub fn insert_batch(&mut self, batch: &NodeBatch) {
        /// Index slots requested ahead of the entry being placed.
        const AHEAD: usize = 16;
        self.index.reserve(batch.len());
        let mut placed = std::mem::take(&mut self.placed);
        placed.clear();
        for (hash, rlp) in batch.iter() {
            placed.push((prefix(hash), self.append(hash, rlp), rlp.len()));
        }
        for (i, ((hash, _), &(tag, loc, len))) in batch.iter().zip(&placed).enumerate() {
            if let Some(&(ahead, _, _)) = placed.get(i + AHEAD) {
                self.index.prefetch(ahead);
            }
            if self.index.find(tag, |l| self.record(l).0 == hash.as_slice()).is_none() {
                self.index.insert(tag, loc);
                self.bytes += len;
            }
        }
        self.placed = placed;
    }

    /// Stores a node whose hash the caller computed.
    pub fn insert_hashed(&mut self, hash: B256, rlp: &[u8]) {
        if self.find(&hash).is_some() {
            return;
        }
        let loc = self.append(&hash, rlp);
        self.bytes += rlp.len();
        self.index.insert(prefix(&hash), loc);
    }

    /// Whether the node is held.
    pub fn contains(&self, hash: &B256) -> bool {
        self.find(hash).is_some()
    }

    /// Number of nodes held.
    pub fn len(&self) -> usize {
        self.index.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.index.len == 0
    }

    /// Total RLP bytes held.
    pub fn byte_size(&self) -> usize {
        self.bytes
    }
}

impl NodeSource for MemNodes {
    fn node(&self, hash: &B256) -> Option<&[u8]> {
        self.find(hash).map(|loc| self.record(loc).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_node_across_growth_and_large_records() {
        let mut db = MemNodes::default();
        let mut hashes = Vec::new();
        for i in 0u32..50_000 {
            // every 10_000th node is larger than a chunk: it gets a chunk of its own
            let len = if i % 10_000 == 7 { MAX_CHUNK + 5 } else { 1 + (i as usize % 300) };
            let mut rlp = i.to_le_bytes().to_vec();
            rlp.extend((0..len).map(|j| (i as usize + j) as u8));
            hashes.push((db.insert(&rlp), rlp));
        }
        assert_eq!(db.len(), hashes.len());
        for (h, rlp) in &hashes {
            assert_eq!(db.node(h), Some(&rlp[..]));
        }
        assert!(!db.contains(&keccak256(b"absent")));
        let before = db.len();
        db.insert(&hashes[3].1);
        assert_eq!(db.len(), before);
    }

    /// A batch insert stores what inserting its nodes one by one stores: nodes already held
    /// and nodes repeated within the batch are kept once, every node is found, sizes agree.
    #[test]
    fn insert_batch_matches_one_by_one() {
        let mut one = MemNodes::default();
        let mut many = MemNodes::default();
        let mut all = Vec::new();
        for round in 0u32..40 {
            let mut batch = NodeBatch::default();
            for i in 0..(round * 97 % 3000) {
                // a fifth of the nodes repeat earlier ones (earlier batches or this one)
                let n = if i % 5 == 0 { i / 2 } else { round * 10_000 + i };
                let rlp: Vec<u8> =
                    n.to_le_bytes().iter().cycle().take(20 + (n % 90) as usize).copied().collect();
                let hash = keccak256(&rlp);
                batch.push(hash, &rlp);
                one.insert_hashed(hash, &rlp);
                all.push((hash, rlp));
            }
            many.insert_batch(&batch);
            assert_eq!((many.len(), many.byte_size()), (one.len(), one.byte_size()));
        }
        for (h, rlp) in &all {
            assert_eq!(many.node(h), Some(&rlp[..]));
        }
    }

    /// `get_many` answers as `node` does, also for hashes that share their index tag (only the
    /// full hash tells them apart) and for absent ones.
    #[test]
    fn get_many_matches_node() {
        let mut db = MemNodes::default();
        let mut queries = Vec::new();
        for i in 0u8..40 {
            let rlp = vec![i; 40 + usize::from(i)];
            queries.push(db.insert(&rlp));
            // same first 8 bytes as the node above, so the same tag: stored for even i only
            let mut twin = queries[queries.len() - 1];
            twin[31] ^= 0xff;
            if i % 2 == 0 {
                db.insert_hashed(twin, &[i, i]);
            }
            queries.push(twin);
            queries.push(keccak256([i]));
        }
        let mut out = Vec::new();
        db.get_many(&queries, &mut out);
        let want: Vec<Option<&[u8]>> = queries.iter().map(|h| db.node(h)).collect();
        assert_eq!(out, want);
        assert_eq!(out.iter().filter(|n| n.is_some()).count(), 60);
        let empty = MemNodes::default();
        let mut none = Vec::new();
        empty.get_many(&queries, &mut none);
        assert_eq!(none, vec![None; queries.len()]);
    }
}
