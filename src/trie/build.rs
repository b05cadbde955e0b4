//! Building trie nodes from sorted leaves, reporting every hashed node with its path and the
//! leaves beneath it (so callers can store only the nodes they can vouch for).

use crate::primitives::{keccak256, B256, EMPTY_ROOT};
use crate::trie::nibbles::nibble;
use crate::trie::node::{ChildRef, Node};
use std::ops::Range;

/// A node produced by [`build`]: only nodes referenced by hash (and the root) are reported.
pub struct BuiltNode<'a> {
    /// Nibble path where the node sits.
    pub path: &'a [u8],
    /// Indices of the input leaves under this node.
    pub leaves: Range<usize>,
    /// The node's RLP.
    pub rlp: &'a [u8],
    /// keccak256(rlp).
    pub hash: B256,
}

/// Builds the trie of `leaves` (keys strictly increasing, values non-empty), calling `sink`
/// for every node referenced by hash and for the root (always hashed), and returns the root.
pub fn build<V: AsRef<[u8]>>(leaves: &[(B256, V)], sink: &mut dyn FnMut(BuiltNode<'_>)) -> B256 {
    if leaves.is_empty() {
        return EMPTY_ROOT;
    }
    let mut path = Vec::with_capacity(64);
    let node = build_node(leaves, 0, 0, &mut path, sink);
    let rlp = node.encode();
    let hash = keccak256(&rlp);
    sink(BuiltNode { path: &[], leaves: 0..leaves.len(), rlp: &rlp, hash });
    hash
}

/// Builds the node for `leaves` (all sharing `path`, of length `depth`); children that need a
/// hash are reported to `sink`. The returned node itself is reported by the caller.
fn build_node<V: AsRef<[u8]>>(
    leaves: &[(B256, V)],
    offset: usize,
    depth: usize,
    path: &mut Vec<u8>,
    sink: &mut dyn FnMut(BuiltNode<'_>),
) -> Node {
    if leaves.len() == 1 {
        let (key, value) = &leaves[0];
        return Node::Leaf {
            path: (depth..64).map(|i| nibble(key, i)).collect(),
            value: value.as_ref().to_vec(),
        };
    }
    let first = &leaves[0].0;
    let last = &leaves[leaves.len() - 1].0;
    let mut cp = depth;
    while cp < 64 && nibble(first, cp) == nibble(last, cp) {
        cp += 1;
    }
    if cp > depth {
        let ext: Vec<u8> = (depth..cp).map(|i| nibble(first, i)).collect();
        let base = path.len();
        path.extend_from_slice(&ext);
        let branch = build_branch(leaves, offset, cp, path, sink);
        let child = emit(branch, leaves.len(), offset, path, sink);
        path.truncate(base);
        return Node::Extension { path: ext, child };
    }
    build_branch(leaves, offset, depth, path, sink)
}

fn build_branch<V: AsRef<[u8]>>(
    leaves: &[(B256, V)],
    offset: usize,
    depth: usize,
    path: &mut Vec<u8>,
    sink: &mut dyn FnMut(BuiltNode<'_>),
) -> Node {
    let mut children: [Option<ChildRef>; 16] = Default::default();
    let mut start = 0;
    while start < leaves.len() {
        let nib = nibble(&leaves[start].0, depth);
        let mut end = start + 1;
        while end < leaves.len() && nibble(&leaves[end].0, depth) == nib {
            end += 1;
        }
        path.push(nib);
        let child = build_node(&leaves[start..end], offset + start, depth + 1, path, sink);
        children[nib as usize] = Some(emit(child, end - start, offset + start, path, sink));
        path.pop();
        start = end;
    }
    Node::Branch { children: Box::new(children), value: None }
}

fn emit(
    node: Node,
    count: usize,
    offset: usize,
    path: &[u8],
    sink: &mut dyn FnMut(BuiltNode<'_>),
) -> ChildRef {
    let rlp = node.encode();
    let child = ChildRef::of_rlp(&rlp);
    if let ChildRef::Hash(hash) = child {
        sink(BuiltNode { path, leaves: offset..offset + count, rlp: &rlp, hash });
    }
    child
}
