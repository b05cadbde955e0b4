//! Range proofs with go-ethereum's `VerifyRangeProof` semantics: the server side builds the
//! edge proofs, the client side checks that a run of leaves is exactly the trie's content
//! between `first_key` and the last key, and learns whether more lies to the right.
//!
//! Verification rebuilds the root with [`build_items`]: the subtrees left of the
//! left edge and right of the right edge come from the proof (as opaque hashes, or as leaves
//! for nodes embedded in their parents), the leaves in between from the reply. Any gap,
//! extra key or altered value changes the root.

use crate::primitives::{keccak256, B256};
use crate::trie::build::{build_items, BuildItem, BuiltNode};
use crate::trie::db::{HashKeyed, NodeSource};
use crate::trie::nibbles::{nibble, pack};
use crate::trie::node::{ChildRef, Node, NodeError};
use crate::trie::walk::{prove, WalkError};

/// Why a range proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeProofError {
    /// `keys.len() != values.len()`.
    #[error("{keys} keys but {values} values")]
    LengthMismatch {
        /// Keys given.
        keys: usize,
        /// Values given.
        values: usize,
    },
    /// Keys not strictly increasing (reordered or duplicated).
    #[error("keys not strictly increasing at index {0}")]
    KeysOutOfOrder(usize),
    /// An empty value (a deletion) in a range.
    #[error("empty value at index {0}")]
    EmptyValue(usize),
    /// The first key lies before the requested origin.
    #[error("first key is before the range origin")]
    FirstKeyBeforeOrigin,
    /// A node the proof must contain is missing.
    #[error("proof node {0} missing")]
    MissingNode(B256),
    /// A proof node does not decode.
    #[error("bad proof node: {0}")]
    BadNode(#[from] NodeError),
    /// A proof path does not end at a 32-byte key.
    #[error("proof path has a bad key length")]
    KeyLength,
    /// No keys were given but the proof shows entries at or after the origin.
    #[error("more entries available at or after the origin")]
    MoreEntries,
    /// The keys cannot belong to the trie the proof describes.
    #[error("keys lie outside the proven trie")]
    OutsideTrie,
    /// The rebuilt root differs from the expected one.
    #[error("root mismatch: expected {expected}, computed {computed}")]
    RootMismatch {
        /// The root asked for.
        expected: B256,
        /// The root the range and proof produce.
        computed: B256,
    },
}

/// An element of the rebuilt trie that is not one of the range's own leaves.
enum Item {
    Subtree(Vec<u8>, B256),
    Leaf(B256, Vec<u8>),
}

struct ProofMap<'a>(HashKeyed<&'a [u8]>);

impl ProofMap<'_> {
    fn resolve(&self, r: &ChildRef) -> Result<Node, RangeProofError> {
        match r {
            ChildRef::Hash(h) => {
                let rlp = self.0.get(h).ok_or(RangeProofError::MissingNode(*h))?;
                Ok(Node::decode(rlp)?)
            }
            ChildRef::Inline(raw) => Ok(Node::decode(raw)?),
        }
    }
}

/// Verifies that `keys`/`values` are exactly the leaves of the trie `root` from `first_key`
/// up to the last key. Returns `has_more`: whether the trie holds keys after the last one.
///
/// An empty `proof` means "no proof": the leaves must then be the whole trie.
pub fn verify_range<V: AsRef<[u8]>, P: AsRef<[u8]>>(
    root: B256,
    first_key: &B256,
    keys: &[B256],
    values: &[V],
    proof: &[P],
) -> Result<bool, RangeProofError> {
    verify_range_nodes(root, first_key, keys, values, proof, &mut |_| {})
}

/// [`verify_range`], reporting to `sink` the trie nodes it rebuilt whose whole subtree is made
/// of the given leaves (`BuiltNode::leaves` indexes `keys`), in post-order (children first).
/// When the proof checks out, these are exactly the real trie's nodes, so a caller can store
/// them without hashing them again; on an error, it must discard what it was given.
pub fn verify_range_nodes<V: AsRef<[u8]>, P: AsRef<[u8]>>(
    root: B256,
    first_key: &B256,
    keys: &[B256],
    values: &[V],
    proof: &[P],
    sink: &mut dyn FnMut(BuiltNode<'_>),
) -> Result<bool, RangeProofError> {
    if keys.len() != values.len() {
        return Err(RangeProofError::LengthMismatch { keys: keys.len(), values: values.len() });
    }
    for i in 1..keys.len() {
        if keys[i] <= keys[i - 1] {
            return Err(RangeProofError::KeysOutOfOrder(i));
        }
    }
    if let Some(i) = values.iter().position(|v| v.as_ref().is_empty()) {
        return Err(RangeProofError::EmptyValue(i));
    }
    if proof.is_empty() {
        let leaves: Vec<BuildItem<'_>> =
            keys.iter().zip(values).map(|(k, v)| BuildItem::Leaf(*k, v.as_ref())).collect();
        let computed = build_items(&leaves, sink).ok_or(RangeProofError::OutsideTrie)?;
        return check_root(root, computed).map(|_| false);
    }
    let map = ProofMap(proof.iter().map(|p| (keccak256(p.as_ref()), p.as_ref())).collect());
    let Some(last_key) = keys.last() else {
        return verify_empty(&map, root, first_key);
    };
    if *first_key > keys[0] {
        return Err(RangeProofError::FirstKeyBeforeOrigin);
    }
    let left = edge(&map, root, first_key, Side::Left)?;
    let right = edge(&map, root, last_key, Side::Right)?;
    let has_more = !right.is_empty();
    let mut items: Vec<BuildItem<'_>> = Vec::with_capacity(left.len() + keys.len() + right.len());
    for item in &left {
        items.push(as_build(item)?);
    }
    items.extend(keys.iter().zip(values).map(|(k, v)| BuildItem::Leaf(*k, v.as_ref())));
    for item in &right {
        items.push(as_build(item)?);
    }
    // The builder needs disjoint, increasing key spans; a key that falls under a subtree the
    // proof vouches for (e.g. beside an extension's path) cannot be in the trie.
    let (first, end) = (left.len(), left.len() + keys.len());
    let computed = build_items(&items, &mut |n| {
        if n.leaves.start >= first && n.leaves.end <= end {
            sink(BuiltNode { leaves: n.leaves.start - first..n.leaves.end - first, ..n });
        }
    })
    .ok_or(RangeProofError::OutsideTrie)?;
    check_root(root, computed).map(|_| has_more)
}

fn check_root(expected: B256, computed: B256) -> Result<(), RangeProofError> {
    if expected == computed {
        Ok(())
    } else {
        Err(RangeProofError::RootMismatch { expected, computed })
    }
}

/// Zero keys with a proof: nothing may exist at or after `origin`.
fn verify_empty(map: &ProofMap<'_>, root: B256, origin: &B256) -> Result<bool, RangeProofError> {
    let right = edge(map, root, origin, Side::Right)?;
    if !right.is_empty() {
        return Err(RangeProofError::MoreEntries);
    }
    // A leaf exactly at the origin is "at or after" too: the right edge skips equal keys.
    let mut cur = ChildRef::Hash(root);
    let mut depth = 0;
    loop {
        match map.resolve(&cur)? {
            Node::Leaf { path, .. } => {
                if depth + path.len() == 64
                    && path.iter().enumerate().all(|(i, n)| nibble(origin, depth + i) == *n)
                {
                    return Err(RangeProofError::MoreEntries);
                }
                return Ok(false);
            }
            Node::Extension { path, child } => {
                if depth + path.len() > 64
                    || path.iter().enumerate().any(|(i, n)| nibble(origin, depth + i) != *n)
                {
                    return Ok(false);
                }
                depth += path.len();
                cur = child;
            }
            Node::Branch { mut children, .. } => {
                if depth >= 64 {
                    return Err(RangeProofError::KeyLength);
                }
                match children[nibble(origin, depth) as usize].take() {
                    Some(c) => cur = c,
                    None => return Ok(false),
                }
                depth += 1;
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// Walks the proof along `key`, collecting the subtrees strictly left (or right) of it, in
/// the order a `HashBuilder` must receive them.
fn edge(map: &ProofMap<'_>, root: B256, key: &B256, side: Side) -> Result<Vec<Item>, RangeProofError> {
    use std::cmp::Ordering::*;
    let mut levels: Vec<Vec<Item>> = Vec::new();
    let mut cur = ChildRef::Hash(root);
    let mut path: Vec<u8> = Vec::with_capacity(64);
    loop {
        let node = map.resolve(&cur)?;
        let mut level = Vec::new();
        let next = match node {
            Node::Branch { mut children, .. } => {
                let depth = path.len();
                if depth >= 64 {
                    return Err(RangeProofError::KeyLength);
                }
                let n = nibble(key, depth) as usize;
                let range = if side == Side::Left { 0..n } else { n + 1..16 };
                for i in range {
                    if let Some(c) = &children[i] {
                        path.push(i as u8);
                        push_item(map, &mut level, &path, c)?;
                        path.pop();
                    }
                }
                let next = children[n].take();
                if next.is_some() {
                    path.push(n as u8);
                }
                next
            }
            Node::Extension { path: ext, child } => {
                let depth = path.len();
                if depth + ext.len() > 64 {
                    return Err(RangeProofError::KeyLength);
                }
                let ord = ext
                    .iter()
                    .enumerate()
                    .map(|(i, n)| n.cmp(&nibble(key, depth + i)))
                    .find(|o| *o != Equal)
                    .unwrap_or(Equal);
                match (ord, side) {
                    (Equal, _) => {
                        path.extend_from_slice(&ext);
                        Some(child)
                    }
                    (Less, Side::Left) | (Greater, Side::Right) => {
                        push_item(map, &mut level, &path, &cur)?;
                        None
                    }
                    _ => None,
                }
            }
            Node::Leaf { path: rest, value } => {
                let mut full = path.clone();
                full.extend_from_slice(&rest);
                let leaf_key = pack(&full).ok_or(RangeProofError::KeyLength)?;
                let outside = match side {
                    Side::Left => leaf_key < *key,
                    Side::Right => leaf_key > *key,
                };
                if outside {
                    level.push(Item::Leaf(leaf_key, value));
                }
                None
            }
        };
        levels.push(level);
        match next {
            Some(c) => cur = c,
            None => break,
        }
    }
    if side == Side::Right {
        levels.reverse();
    }
    Ok(levels.into_iter().flatten().collect())
}

/// Adds the subtree at `path` referenced by `r`: a hash stays opaque; an embedded node is
/// expanded into its leaves.
fn push_item(
    map: &ProofMap<'_>,
    out: &mut Vec<Item>,
    path: &[u8],
    r: &ChildRef,
) -> Result<(), RangeProofError> {
    match r {
        ChildRef::Hash(h) => {
            out.push(Item::Subtree(path.to_vec(), *h));
            Ok(())
        }
        ChildRef::Inline(_) => {
            let mut p = path.to_vec();
            inline_leaves(map, out, &mut p, map.resolve(r)?)
        }
    }
}

fn inline_leaves(
    map: &ProofMap<'_>,
    out: &mut Vec<Item>,
    path: &mut Vec<u8>,
    node: Node,
) -> Result<(), RangeProofError> {
    let base = path.len();
    match node {
        Node::Leaf { path: rest, value } => {
            path.extend_from_slice(&rest);
            out.push(Item::Leaf(pack(path).ok_or(RangeProofError::KeyLength)?, value));
        }
        Node::Extension { path: ext, child } => {
            path.extend_from_slice(&ext);
            if path.len() > 64 {
                return Err(RangeProofError::KeyLength);
            }
            push_item(map, out, path, &child)?;
        }
        Node::Branch { children, .. } => {
            if path.len() >= 64 {
                return Err(RangeProofError::KeyLength);
            }
            for (i, c) in children.iter().enumerate() {
                if let Some(c) = c {
                    path.push(i as u8);
                    push_item(map, out, path, c)?;
                    path.pop();
                }
            }
        }
    }
    path.truncate(base);
    Ok(())
}

/// The proof a server sends for the range `origin ..= last` of the trie at `root`: the nodes
/// on both edge paths, each once, in a deterministic order.
pub fn prove_range<S: NodeSource + ?Sized>(
    db: &S,
    root: B256,
    origin: &B256,
    last: Option<&B256>,
) -> Result<Vec<Vec<u8>>, WalkError> {
    let mut nodes = prove(db, root, origin)?;
    if let Some(last) = last {
        for n in prove(db, root, last)? {
            if !nodes.contains(&n) {
                nodes.push(n);
            }
        }
    }
    Ok(nodes)
}

/// A proof item as builder input; the root itself is never an opaque subtree.
fn as_build(item: &Item) -> Result<BuildItem<'_>, RangeProofError> {
    Ok(match item {
        Item::Subtree(path, _) if path.is_empty() => return Err(RangeProofError::OutsideTrie),
        Item::Subtree(path, hash) => BuildItem::Subtree(path, *hash),
        Item::Leaf(key, value) => BuildItem::Leaf(*key, value),
    })
}
