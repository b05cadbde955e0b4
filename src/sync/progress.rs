//! The downloader's resumable progress: account chunks, storage work and code wants. It is
//! serialised into the store in the same batch as the data it describes.

use crate::primitives::B256;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What an account is waiting for before its chunk may build trie nodes over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Need {
    /// Its storage trie.
    Storage,
    /// Its code.
    Code,
}

/// One chunk of the account hash space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountTask {
    /// First hash of the chunk.
    pub start: B256,
    /// Last hash of the chunk (inclusive).
    pub last: B256,
    /// Next hash to request.
    pub next: B256,
    /// Every account of the chunk has been fetched.
    pub fetched: bool,
    /// Accounts of the chunk still waiting for storage or code.
    pub pending: BTreeSet<(B256, Need)>,
    /// Trie nodes over the chunk have been built and stored.
    pub generated: bool,
}

/// Storage still to fetch for one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageTask {
    /// The storage root the account had when fetched.
    pub root: B256,
    /// Next slot hash to request (zero = from the start).
    pub next: B256,
    /// Index of the owning account chunk.
    pub chunk: usize,
    /// All slots fetched; its trie still to build.
    pub complete: bool,
    /// Its trie nodes are already stored (the whole trie came in one verified set).
    #[serde(default)]
    pub built: bool,
}

/// Everything the downloader must remember across a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The state root being synced.
    pub root: B256,
    /// The account chunks.
    pub tasks: Vec<AccountTask>,
    /// Storage work by account hash.
    pub storage: BTreeMap<B256, StorageTask>,
    /// Codes to fetch: code hash -> accounts waiting for it.
    pub codes: BTreeMap<B256, BTreeSet<B256>>,
}

impl Progress {
    /// A fresh split of the hash space into `chunks` equal chunks.
    pub fn fresh(root: B256, chunks: usize) -> Self {
        let chunks = chunks.clamp(1, 256);
        let mut tasks = Vec::with_capacity(chunks);
        for i in 0..chunks {
            let start = boundary(i, chunks);
            let last = if i + 1 == chunks { B256::repeat_byte(0xff) } else { dec(boundary(i + 1, chunks)) };
            tasks.push(AccountTask {
                start,
                last,
                next: start,
                fetched: false,
                pending: BTreeSet::new(),
                generated: false,
            });
        }
        Self { root, tasks, storage: BTreeMap::new(), codes: BTreeMap::new() }
    }

    /// Index of the chunk holding `key`.
    pub fn chunk_of(&self, key: &B256) -> usize {
        self.tasks.partition_point(|t| t.last < *key).min(self.tasks.len().saturating_sub(1))
    }

    /// Serialised form.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a serialised form.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The i-th of n equal boundaries of the 256-bit space.
fn boundary(i: usize, n: usize) -> B256 {
    let v = alloy_primitives::U256::MAX / alloy_primitives::U256::from(n) * alloy_primitives::U256::from(i);
    let v = if i == 0 { alloy_primitives::U256::ZERO } else { v + alloy_primitives::U256::from(i) };
    B256::from(v)
}

/// `h - 1` (saturating at zero).
pub fn dec(h: B256) -> B256 {
    let v = alloy_primitives::U256::from_be_bytes(h.0);
    B256::from(v.saturating_sub(alloy_primitives::U256::from(1)))
}

/// `h + 1`, or `None` past the end of the space.
pub fn inc(h: B256) -> Option<B256> {
    let v = alloy_primitives::U256::from_be_bytes(h.0);
    v.checked_add(alloy_primitives::U256::from(1)).map(B256::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_tile_the_space() {
        for n in [1, 2, 16, 7] {
            let p = Progress::fresh(B256::ZERO, n);
            assert_eq!(p.tasks[0].start, B256::ZERO);
            assert_eq!(p.tasks[n - 1].last, B256::repeat_byte(0xff));
            for w in p.tasks.windows(2) {
                assert_eq!(inc(w[0].last), Some(w[1].start));
            }
            assert_eq!(p.chunk_of(&B256::repeat_byte(0xff)), n - 1);
            assert_eq!(p.chunk_of(&B256::ZERO), 0);
        }
        let p = Progress::fresh(B256::ZERO, 16);
        assert_eq!(p.tasks[1].start.0[0], 0x10);
        assert_eq!(p.tasks[0].last, {
            let mut b = [0xffu8; 32];
            b[0] = 0x0f;
            B256::from(b)
        });
    }
}
