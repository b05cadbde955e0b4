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

/// An in-memory content-addressed node map.
#[derive(Debug, Default, Clone)]
pub struct MemNodes {
    nodes: HashKeyed<Box<[u8]>>,
    bytes: usize,
}

impl MemNodes {
    /// Stores a node, returning its hash.
    pub fn insert(&mut self, rlp: &[u8]) -> B256 {
        let hash = keccak256(rlp);
        self.insert_hashed(hash, rlp);
        hash
    }

    /// Stores a node whose hash the caller computed.
    pub fn insert_hashed(&mut self, hash: B256, rlp: &[u8]) {
        self.nodes.entry(hash).or_insert_with(|| {
            self.bytes += rlp.len();
            rlp.into()
        });
    }

    /// Whether the node is held.
    pub fn contains(&self, hash: &B256) -> bool {
        self.nodes.contains_key(hash)
    }

    /// Number of nodes held.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Total RLP bytes held.
    pub fn byte_size(&self) -> usize {
        self.bytes
    }
}

impl NodeSource for MemNodes {
    fn node(&self, hash: &B256) -> Option<&[u8]> {
        self.nodes.get(hash).map(|b| &b[..])
    }
}
