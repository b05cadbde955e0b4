//! A batch of trie nodes to write, in one flat buffer.
//!
//! A synced state is millions of small nodes; giving each its own `Vec` costs an allocation
//! and a free per node on the way to the store. A [`NodeBatch`] appends every node's RLP to
//! one byte buffer and keeps (hash, end offset) pairs beside it, so a batch costs a few
//! buffer growths and the store copies each node once, straight into its own memory.

use crate::primitives::B256;

/// Trie nodes (hash, rlp) in insertion order, the RLP of all of them in one buffer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeBatch {
    /// (hash, end of the node's RLP in `bytes`); a node starts where the previous one ends.
    ends: Vec<(B256, usize)>,
    bytes: Vec<u8>,
}

impl NodeBatch {
    /// An empty batch with room for `nodes` nodes of `bytes` RLP bytes in all.
    pub fn with_capacity(nodes: usize, bytes: usize) -> Self {
        Self { ends: Vec::with_capacity(nodes), bytes: Vec::with_capacity(bytes) }
    }

    /// Appends a node; `hash` is keccak256 of `rlp`, computed by the caller.
    pub fn push(&mut self, hash: B256, rlp: &[u8]) {
        self.bytes.extend_from_slice(rlp);
        self.ends.push((hash, self.bytes.len()));
    }

    /// Moves every node of `other` to the end of this batch.
    pub fn append(&mut self, other: &mut NodeBatch) {
        let base = self.bytes.len();
        self.bytes.append(&mut other.bytes);
        self.ends.extend(other.ends.drain(..).map(|(h, end)| (h, base + end)));
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the batch holds no node.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Total RLP bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Reserves room for `nodes` more nodes of `bytes` RLP bytes in all.
    pub fn reserve(&mut self, nodes: usize, bytes: usize) {
        self.ends.reserve(nodes);
        self.bytes.reserve(bytes);
    }

    /// Removes every node, keeping the buffers.
    pub fn clear(&mut self) {
        self.ends.clear();
        self.bytes.clear();
    }

    /// Removes every node after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        if len < self.ends.len() {
            self.ends.truncate(len);
            self.bytes.truncate(self.ends.last().map_or(0, |e| e.1));
        }
    }

    /// The `i`-th node (hash, rlp).
    pub fn get(&self, i: usize) -> Option<(&B256, &[u8])> {
        let (hash, end) = self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1].1 };
        Some((hash, &self.bytes[start..*end]))
    }

    /// The nodes in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&B256, &[u8])> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |(hash, end)| {
            let rlp = &self.bytes[start..*end];
            start = *end;
            (hash, rlp)
        })
    }
}

impl<V: AsRef<[u8]>> FromIterator<(B256, V)> for NodeBatch {
    fn from_iter<I: IntoIterator<Item = (B256, V)>>(iter: I) -> Self {
        let mut batch = NodeBatch::default();
        for (hash, rlp) in iter {
            batch.push(hash, rlp.as_ref());
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_append_truncate_iterate() {
        let mut a = NodeBatch::default();
        a.push(B256::repeat_byte(1), b"one");
        a.push(B256::repeat_byte(2), b"");
        let mut b = NodeBatch::with_capacity(2, 8);
        b.push(B256::repeat_byte(3), b"three");
        a.append(&mut b);
        assert!(b.is_empty());
        let got: Vec<(B256, Vec<u8>)> = a.iter().map(|(h, r)| (*h, r.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (B256::repeat_byte(1), b"one".to_vec()),
                (B256::repeat_byte(2), vec![]),
                (B256::repeat_byte(3), b"three".to_vec())
            ]
        );
        assert_eq!(a.get(2), Some((&B256::repeat_byte(3), &b"three"[..])));
        assert_eq!(a.byte_len(), 8);
        a.truncate(1);
        assert_eq!(a.len(), 1);
        assert_eq!(a.byte_len(), 3);
        assert_eq!(a.get(1), None);
    }
}
