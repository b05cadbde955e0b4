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

    /// Serialised form: a compact binary encoding (see [`Progress::from_bytes`]). It is written
    /// with every reply, so it avoids text: hashes as raw 32 bytes, counts as u32 LE.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    /// [`Progress::to_bytes`] into `out` (cleared first; its capacity is reused).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.clear();
        let pending: usize = self.tasks.iter().map(|t| t.pending.len()).sum();
        let waiting: usize = self.codes.values().map(|w| 36 + 32 * w.len()).sum();
        out.reserve(
            1 + 32 + 4 + self.tasks.len() * 105 + pending * 33 + 4 + self.storage.len() * 101 + 4 + waiting,
        );
        out.push(BINARY_MAGIC);
        out.extend_from_slice(self.root.as_slice());
        put_len(out, self.tasks.len());
        for t in &self.tasks {
            out.extend_from_slice(t.start.as_slice());
            out.extend_from_slice(t.last.as_slice());
            out.extend_from_slice(t.next.as_slice());
            out.push(u8::from(t.fetched) | (u8::from(t.generated) << 1));
            put_len(out, t.pending.len());
            for (a, need) in &t.pending {
                out.extend_from_slice(a.as_slice());
                out.push(match need {
                    Need::Storage => 0,
                    Need::Code => 1,
                });
            }
        }
        put_len(out, self.storage.len());
        for (a, t) in &self.storage {
            out.extend_from_slice(a.as_slice());
            out.extend_from_slice(t.root.as_slice());
            out.extend_from_slice(t.next.as_slice());
            put_len(out, t.chunk);
            out.push(u8::from(t.complete) | (u8::from(t.built) << 1));
        }
        put_len(out, self.codes.len());
        for (h, waiting) in &self.codes {
            out.extend_from_slice(h.as_slice());
            put_len(out, waiting.len());
            for a in waiting {
                out.extend_from_slice(a.as_slice());
            }
        }
    }

    /// Parses a serialised form: the binary encoding of [`Progress::to_bytes`], or the JSON one
    /// earlier versions wrote. `None` for anything malformed.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes.split_first() {
            Some((&BINARY_MAGIC, rest)) => Self::decode_binary(&mut Reader(rest)),
            _ => serde_json::from_slice(bytes).ok(),
        }
    }

    fn decode_binary(r: &mut Reader<'_>) -> Option<Self> {
        let root = r.hash()?;
        let n = r.len()?;
        let mut tasks = Vec::with_capacity(n.min(256));
        for _ in 0..n {
            let (start, last, next) = (r.hash()?, r.hash()?, r.hash()?);
            let flags = r.byte()?;
            let mut pending = BTreeSet::new();
            for _ in 0..r.len()? {
                let a = r.hash()?;
                let need = match r.byte()? {
                    0 => Need::Storage,
                    1 => Need::Code,
                    _ => return None,
                };
                pending.insert((a, need));
            }
            tasks.push(AccountTask {
                start,
                last,
                next,
                fetched: flags & 1 != 0,
                pending,
                generated: flags & 2 != 0,
            });
        }
        let mut storage = BTreeMap::new();
        for _ in 0..r.len()? {
            let a = r.hash()?;
            let (root, next) = (r.hash()?, r.hash()?);
            let chunk = r.len()?;
            let flags = r.byte()?;
            storage.insert(
                a,
                StorageTask { root, next, chunk, complete: flags & 1 != 0, built: flags & 2 != 0 },
            );
        }
        let mut codes = BTreeMap::new();
        for _ in 0..r.len()? {
            let h = r.hash()?;
            let mut waiting = BTreeSet::new();
            for _ in 0..r.len()? {
                waiting.insert(r.hash()?);
            }
            codes.insert(h, waiting);
        }
        r.0.is_empty().then_some(Self { root, tasks, storage, codes })
    }
}

/// First byte of the binary encoding (JSON starts with `{`).
const BINARY_MAGIC: u8 = 0x01;

/// Appends a count or index as u32 LE (progress counts are far below 2^32).
fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

/// A bounds-checked cursor over the binary encoding.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn byte(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn len(&mut self) -> Option<usize> {
        self.take::<4>().map(|b| u32::from_le_bytes(b) as usize)
    }
    fn hash(&mut self) -> Option<B256> {
        self.take::<32>().map(B256::from)
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

    fn sample() -> Progress {
        let mut p = Progress::fresh(B256::repeat_byte(7), 4);
        p.tasks[1].fetched = true;
        p.tasks[2].generated = true;
        p.tasks[2].next = B256::repeat_byte(0x9a);
        p.tasks[0].pending.insert((B256::repeat_byte(1), Need::Storage));
        p.tasks[0].pending.insert((B256::repeat_byte(2), Need::Code));
        p.storage.insert(
            B256::repeat_byte(1),
            StorageTask {
                root: B256::repeat_byte(3),
                next: B256::repeat_byte(4),
                chunk: 0,
                complete: false,
                built: true,
            },
        );
        p.storage.insert(
            B256::repeat_byte(5),
            StorageTask {
                root: B256::repeat_byte(6),
                next: B256::ZERO,
                chunk: 3,
                complete: true,
                built: false,
            },
        );
        p.codes.entry(B256::repeat_byte(8)).or_default().insert(B256::repeat_byte(2));
        p.codes.entry(B256::repeat_byte(8)).or_default().insert(B256::repeat_byte(9));
        p
    }

    #[test]
    fn binary_round_trip_and_json_still_read() {
        let p = sample();
        let bytes = p.to_bytes();
        assert_eq!(Progress::from_bytes(&bytes), Some(p.clone()));
        assert_eq!(Progress::from_bytes(&serde_json::to_vec(&p).unwrap()), Some(p));
        // every truncation and a trailing byte are rejected, never a panic
        for cut in 0..bytes.len() {
            assert_eq!(Progress::from_bytes(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(Progress::from_bytes(&long), None);
    }

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
