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

/// An input of [`build_items`]: a leaf, or a subtree known only by its hash (the node at that
/// nibble path, e.g. from a proof or built earlier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildItem<'a> {
    /// A leaf: full key and value.
    Leaf(B256, &'a [u8]),
    /// The hash of the node at a non-empty nibble path.
    Subtree(&'a [u8], B256),
}

impl BuildItem<'_> {
    /// Nibble `i` of every key under the item; 16 past a subtree's path (callers never ask).
    fn nibble(&self, i: usize) -> u8 {
        match self {
            BuildItem::Leaf(k, _) => nibble(k, i),
            BuildItem::Subtree(p, _) => p.get(i).copied().unwrap_or(16),
        }
    }

    /// The (first, last) key the item covers.
    pub fn span(&self) -> (B256, B256) {
        match self {
            BuildItem::Leaf(k, _) => (*k, *k),
            BuildItem::Subtree(p, _) => {
                (crate::trie::nibbles::min_key_with_prefix(p), crate::trie::nibbles::max_key_with_prefix(p))
            }
        }
    }
}

/// Builds the trie of `items` like [`build`], with some subtrees given by hash: they are
/// referenced, not rebuilt, and not reported. `BuiltNode::leaves` indexes `items`.
///
/// Returns `None` unless the items are well formed: subtree paths 1..=64 nibbles long, spans
/// strictly increasing and disjoint, values non-empty.
pub fn build_items(items: &[BuildItem<'_>], sink: &mut dyn FnMut(BuiltNode<'_>)) -> Option<B256> {
    let mut prev: Option<B256> = None;
    for it in items {
        match it {
            BuildItem::Leaf(_, []) => return None,
            BuildItem::Subtree(p, _) if p.is_empty() || p.len() > 64 || p.iter().any(|n| *n > 15) => {
                return None
            }
            _ => {}
        }
        let (lo, hi) = it.span();
        if prev.is_some_and(|p| p >= lo) {
            return None;
        }
        prev = Some(hi);
    }
    if items.is_empty() {
        return Some(EMPTY_ROOT);
    }
    let mut path = Vec::with_capacity(64);
    match item_node(items, 0, 0, &mut path, sink) {
        Built::Ref(ChildRef::Hash(h)) => Some(h),
        Built::Ref(ChildRef::Inline(_)) => None,
        Built::Node(node) => {
            let rlp = node.encode();
            let hash = keccak256(&rlp);
            sink(BuiltNode { path: &[], leaves: 0..items.len(), rlp: &rlp, hash });
            Some(hash)
        }
    }
}

/// A node being built, or a reference standing for a given subtree.
enum Built {
    Node(Node),
    Ref(ChildRef),
}

fn item_node(
    items: &[BuildItem<'_>],
    offset: usize,
    depth: usize,
    path: &mut Vec<u8>,
    sink: &mut dyn FnMut(BuiltNode<'_>),
) -> Built {
    if items.len() == 1 {
        return match items[0] {
            BuildItem::Leaf(key, value) => Built::Node(Node::Leaf {
                path: (depth..64).map(|i| nibble(&key, i)).collect(),
                value: value.to_vec(),
            }),
            BuildItem::Subtree(p, hash) if p.len() <= depth => Built::Ref(ChildRef::Hash(hash)),
            BuildItem::Subtree(p, hash) => {
                Built::Node(Node::Extension { path: p[depth..].to_vec(), child: ChildRef::Hash(hash) })
            }
        };
    }
    let first = &items[0];
    let last = &items[items.len() - 1];
    let mut cp = depth;
    while cp < 64 && first.nibble(cp) < 16 && first.nibble(cp) == last.nibble(cp) {
        cp += 1;
    }
    if cp > depth {
        let ext: Vec<u8> = (depth..cp).map(|i| first.nibble(i)).collect();
        let base = path.len();
        path.extend_from_slice(&ext);
        let branch = item_branch(items, offset, cp, path, sink);
        let child = emit(branch, items.len(), offset, path, sink);
        path.truncate(base);
        return Built::Node(Node::Extension { path: ext, child });
    }
    Built::Node(item_branch(items, offset, depth, path, sink))
}

fn item_branch(
    items: &[BuildItem<'_>],
    offset: usize,
    depth: usize,
    path: &mut Vec<u8>,
    sink: &mut dyn FnMut(BuiltNode<'_>),
) -> Node {
    let mut children: [Option<ChildRef>; 16] = Default::default();
    let mut start = 0;
    while start < items.len() {
        // a malformed group (a subtree ending here beside others) maps to nibble 0..15 anyway;
        // the caller's validation makes it unreachable
        let nib = items[start].nibble(depth) & 0x0f;
        let mut end = start + 1;
        while end < items.len() && items[end].nibble(depth) & 0x0f == nib {
            end += 1;
        }
        path.push(nib);
        let child = match item_node(&items[start..end], offset + start, depth + 1, path, sink) {
            Built::Ref(r) => r,
            Built::Node(n) => emit(n, end - start, offset + start, path, sink),
        };
        children[nib as usize] = Some(child);
        path.pop();
        start = end;
    }
    Node::Branch { children: Box::new(children), value: None }
}
