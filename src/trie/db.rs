//! Content-addressed node storage: keccak256(rlp) -> rlp.

use crate::primitives::{keccak256, B256};
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
const MAX_CHUNK: usize = 4 << 20;

/// An in-memory content-addressed node map.
///
/// Nodes live in an append-only arena of large chunks (`hash ‖ len ‖ rlp` records, no
/// allocation per node, nodes written together stay together); a table of
/// `(first 8 bytes of the hash, arena location)` finds them. Only lookups: nothing iterates the
/// table, so its order cannot affect behaviour.
#[derive(Default, Clone)]
pub struct MemNodes {
    index: Index,
    chunks: Vec<Vec<u8>>,
    bytes: usize,
}

/// Open-addressing table (linear probing) of `(tag, arena location)` slots, 16 bytes each, four
/// to a cache line. The tag is the node hash's first 8 bytes with the low bit set (0 marks an
/// empty slot), and also picks the home slot; a match is confirmed against the full hash in the
/// arena. One cache miss per lookup, and the slot can be prefetched ([`MemNodes::prefetch`]).
/// Grows at 3/4 load without touching the arena (the tag alone places an entry).
#[derive(Default, Clone)]
struct Index {
    slots: Vec<(u64, u64)>,
    len: usize,
}

impl Index {
    /// Smallest table allocated.
    const MIN_SLOTS: usize = 1 << 10;

    /// Slot index mask (the table size is a power of two; wraps harmlessly when empty, where
    /// every `get` then misses).
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The home slot of a tag: its high bits (the low ones were forced to 1).
    fn home(&self, tag: u64) -> usize {
        (tag >> 8) as usize & self.mask()
    }

    /// The location of the entry with `tag` for which `is` holds.
    fn find(&self, tag: u64, is: impl Fn(u64) -> bool) -> Option<u64> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(tag);
        loop {
            let (t, loc) = self.slots[i];
            if t == 0 {
                return None;
            }
            if t == tag && is(loc) {
                return Some(loc);
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
        while self.slots[i].0 != 0 {
            i = (i + 1) & self.mask();
        }
        self.slots[i] = (tag, loc);
        self.len += 1;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(Self::MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![(0, 0); size]);
        self.len = 0;
        for (tag, loc) in old.into_iter().filter(|(t, _)| *t != 0) {
            let mut i = self.home(tag);
            while self.slots[i].0 != 0 {
                i = (i + 1) & self.mask();
            }
            self.slots[i] = (tag, loc);
            self.len += 1;
        }
    }

    /// Hints the CPU to fetch the home slot of `tag`.
    fn prefetch(&self, tag: u64) {
        if let Some(slot) = self.slots.get(self.home(tag)) {
            prefetch_read(slot as *const (u64, u64) as *const u8);
        }
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

/// The index tag of a node hash: keccak outputs are uniform, so 8 of their bytes suffice; the
/// low bit is set so that no tag is 0 (the empty slot).
fn prefix(hash: &B256) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(b) | 1
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
        let chunk = &self.chunks[(loc >> 32) as usize];
        let at = (loc & 0xffff_ffff) as usize;
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

    /// Hints the CPU to fetch the record of `hash` when its index slot says where it is (the
    /// slot itself is read: best after [`MemNodes::prefetch`] had time to bring it in).
    pub fn prefetch_record(&self, hash: &B256) {
        let tag = prefix(hash);
        if let Some(&(t, loc)) = self.index.slots.get(self.index.home(tag)) {
            if t == tag {
                if let Some(chunk) = self.chunks.get((loc >> 32) as usize) {
                    if let Some(at) = chunk.get((loc & 0xffff_ffff) as usize) {
                        prefetch_read(at);
                    }
                }
            }
        }
    }

    /// Appends a record to the arena, returning its location.
    fn append(&mut self, hash: &B256, rlp: &[u8]) -> u64 {
        let need = RECORD_HEADER + rlp.len();
        let fits = self.chunks.last().is_some_and(|c| c.capacity() - c.len() >= need);
        if !fits {
            let next = self.chunks.last().map_or(FIRST_CHUNK, |c| (c.capacity() * 2).min(MAX_CHUNK));
            self.chunks.push(Vec::with_capacity(next.max(need)));
        }
        let index = self.chunks.len() - 1;
        let chunk = &mut self.chunks[index];
        let at = chunk.len();
        chunk.extend_from_slice(hash.as_slice());
        // a trie node is far below 4 GiB; the length saturates rather than wraps if not
        chunk.extend_from_slice(&u32::try_from(rlp.len()).unwrap_or(u32::MAX).to_le_bytes());
        chunk.extend_from_slice(rlp);
        ((index as u64) << 32) | at as u64
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
