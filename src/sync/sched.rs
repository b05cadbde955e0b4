//! State of the adaptive scheduler beyond the per-peer link models: large contracts' storage
//! split into parallel chunks, and how much storage a bundled account brings.
//!
//! Large contracts' storage is fetched as parallel chunks. A contract whose
//! storage did not fit one reply would otherwise be fetched as one chain of requests, each
//! waiting for the last: on one peer's bandwidth, at the end of the sync. Instead the key space
//! after what was fetched is split evenly into chunks, each its own chain of requests (from
//! its next key, bounded by its last), in flight in parallel to several peers. The contract is
//! complete once every chunk is; its trie is then built from all its slots at once, so it needs
//! no healing. Chunks are not persisted: after a restart the contract continues from the lowest
//! key not yet fetched (the storage task's `next`), refetching what later chunks had.

use crate::primitives::{B256, U256};
use crate::sync::progress::inc;
use std::collections::BTreeMap;

/// The adaptive scheduler's own state (not persisted: rebuilt after a restart).
#[derive(Debug, Clone, Default)]
pub struct Sched {
    /// Large contracts fetched in parallel chunks.
    pub splits: BTreeMap<B256, Split>,
    /// Storage bundles in flight: request id -> (byte budget, accounts).
    pub bundles: BTreeMap<u64, (u64, Vec<B256>)>,
    /// Expected storage bytes per bundled account (0 until a bundle came back).
    pub bundle_bytes: f64,
}

impl Sched {
    /// Learns from a bundle that came back: `delivered` of its `asked` accounts were served
    /// (whole or partly) within `budget` bytes. A bundle that stopped early was bounded by its
    /// budget: its accounts averaged `budget / delivered` bytes; one served whole held fewer.
    pub fn bundle_done(&mut self, budget: u64, asked: usize, delivered: usize) {
        if delivered == 0 {
            return;
        }
        if delivered < asked {
            let per = budget as f64 / delivered as f64;
            self.bundle_bytes =
                if self.bundle_bytes == 0.0 { per } else { 0.8 * self.bundle_bytes + 0.2 * per };
        } else if self.bundle_bytes > 0.0 {
            // all served within the budget: fewer bytes each than assumed
            self.bundle_bytes *= 0.8;
        }
    }
}

/// One chunk of a split contract's slot hash space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotChunk {
    /// Next slot hash to request.
    pub next: B256,
    /// Last slot hash of the chunk (inclusive).
    pub last: B256,
    /// Every slot of the chunk has been fetched.
    pub done: bool,
    /// The request fetching it, while one is (or was) in flight.
    pub req: Option<u64>,
}

/// A contract whose storage is fetched in parallel chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The storage root the chunks are proven against.
    pub root: B256,
    /// The chunks, in key order.
    pub chunks: Vec<SlotChunk>,
    /// Expected reply bytes per unit of key space (the whole space is 1.0).
    pub density: f64,
}

/// Position of a hash in the key space, in [0, 1].
pub fn fraction(h: &B256) -> f64 {
    let top = u64::from_be_bytes(h.0[..8].try_into().unwrap_or_default());
    top as f64 / u64::MAX as f64
}

impl Split {
    /// Splits `[from, 0xff..ff]` evenly into `count` chunks (at least one).
    pub fn new(root: B256, from: B256, count: usize, density: f64) -> Self {
        let count = count.max(1);
        let start = U256::from_be_bytes(from.0);
        let width = (U256::MAX - start) / U256::from(count);
        let chunks = (0..count)
            .map(|i| {
                let first = start + width * U256::from(i);
                let last = if i + 1 == count { U256::MAX } else { first + width - U256::from(1) };
                SlotChunk { next: B256::from(first), last: B256::from(last), done: false, req: None }
            })
            .collect();
        Split { root, chunks, density }
    }

    /// Whether every chunk is fetched.
    pub fn complete(&self) -> bool {
        self.chunks.iter().all(|c| c.done)
    }

    /// The lowest slot hash not yet fetched (where a restart would continue).
    pub fn lowest_next(&self) -> Option<B256> {
        self.chunks.iter().find(|c| !c.done).map(|c| c.next)
    }

    /// Expected reply bytes for the rest of chunk `i`.
    pub fn expected_bytes(&self, i: usize) -> u64 {
        self.chunks.get(i).map_or(0, |c| {
            let left = (fraction(&c.last) - fraction(&c.next)).max(0.0);
            (self.density * left) as u64
        })
    }

    /// A verified reply for the chunk requested from `origin`: `last_key` is the last slot
    /// returned (if any) and `more` whether the trie holds anything after it.
    pub fn delivered(&mut self, origin: B256, last_key: Option<B256>, more: bool) {
        let reached = last_key.unwrap_or(origin);
        for c in &mut self.chunks {
            if c.done {
                continue;
            }
            if c.next == origin {
                match (more, last_key) {
                    (true, Some(k)) if k < c.last => match inc(k) {
                        Some(n) => c.next = n,
                        None => c.done = true,
                    },
                    _ => c.done = true,
                }
            } else if !more && c.next > reached {
                // nothing is left after the reply's last key: later chunks are empty
                c.done = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_rest_of_the_space_without_overlap() {
        let from = B256::repeat_byte(0x40);
        let s = Split::new(B256::ZERO, from, 5, 1000.0);
        assert_eq!(s.chunks.len(), 5);
        assert_eq!(s.chunks[0].next, from);
        assert_eq!(s.chunks[4].last, B256::repeat_byte(0xff));
        for w in s.chunks.windows(2) {
            assert_eq!(inc(w[0].last), Some(w[1].next));
        }
        assert_eq!(s.lowest_next(), Some(from));
    }

    #[test]
    fn replies_advance_or_close_chunks() {
        let mut s = Split::new(B256::ZERO, B256::ZERO, 4, 1000.0);
        let c1 = s.chunks[1].clone();
        // a partial reply advances the chunk
        let mid = B256::from(U256::from_be_bytes(c1.next.0) + U256::from(10));
        s.delivered(c1.next, Some(mid), true);
        assert_eq!(s.chunks[1].next, inc(mid).unwrap());
        assert!(!s.chunks[1].done);
        // a reply reaching past the chunk's end closes it
        s.delivered(s.chunks[1].next, Some(s.chunks[2].next), true);
        assert!(s.chunks[1].done);
        // nothing after the last key: this and every later chunk is done
        let c0 = s.chunks[0].next;
        s.delivered(c0, Some(B256::repeat_byte(0x01)), false);
        assert!(s.complete());
        assert_eq!(s.lowest_next(), None);
    }
}
