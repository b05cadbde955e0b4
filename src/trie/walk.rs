//! Reading a trie held in a [`NodeSource`]: lookups, proofs, nodes by path and ordered
//! iteration. This is how peers serve state: every root shares the one node store.

use crate::primitives::{B256, EMPTY_ROOT};
use crate::trie::db::NodeSource;
use crate::trie::nibbles::{nibble, pack};
use crate::trie::node::{ChildRef, Node, NodeError, NodeView, RefView};

/// Why a walk failed: the trie in the store is incomplete or corrupt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// A referenced node is not in the store.
    #[error("missing trie node {0}")]
    Missing(B256),
    /// A stored node does not decode.
    #[error("bad trie node: {0}")]
    Bad(#[from] NodeError),
    /// A leaf whose key is not 32 bytes long.
    #[error("leaf at depth {0} does not end at 64 nibbles")]
    KeyLength(usize),
}

/// Loads the node a reference points at; returns it with its RLP when it is hashed.
pub fn load<'a, S: NodeSource + ?Sized>(
    db: &'a S,
    r: &'a ChildRef,
) -> Result<(Node, Option<&'a [u8]>), WalkError> {
    match r {
        ChildRef::Hash(h) => {
            let rlp = db.node(h).ok_or(WalkError::Missing(*h))?;
            Ok((Node::decode(rlp)?, Some(rlp)))
        }
        ChildRef::Inline(raw) => Ok((Node::decode(raw)?, None)),
    }
}

/// The value stored under `key`, if any.
pub fn get<S: NodeSource + ?Sized>(db: &S, root: B256, key: &B256) -> Result<Option<Vec<u8>>, WalkError> {
    let mut proof = Vec::new();
    descend(db, root, key, &mut proof)
}

/// The proof of `key` (present or absent): every hashed node on its path, root first.
pub fn prove<S: NodeSource + ?Sized>(db: &S, root: B256, key: &B256) -> Result<Vec<Vec<u8>>, WalkError> {
    let mut proof = Vec::new();
    descend(db, root, key, &mut proof)?;
    Ok(proof)
}

fn descend<S: NodeSource + ?Sized>(
    db: &S,
    root: B256,
    key: &B256,
    proof: &mut Vec<Vec<u8>>,
) -> Result<Option<Vec<u8>>, WalkError> {
    if root == EMPTY_ROOT {
        return Ok(None);
    }
    let mut cur = ChildRef::Hash(root);
    let mut depth = 0;
    loop {
        let (node, rlp) = load(db, &cur)?;
        if let Some(rlp) = rlp {
            proof.push(rlp.to_vec());
        }
        match node {
            Node::Leaf { path, value } => {
                let matches = depth + path.len() == 64
                    && path.iter().enumerate().all(|(i, n)| nibble(key, depth + i) == *n);
                return Ok(matches.then_some(value));
            }
            Node::Extension { path, child } => {
                if depth + path.len() > 64
                    || !path.iter().enumerate().all(|(i, n)| nibble(key, depth + i) == *n)
                {
                    return Ok(None);
                }
                depth += path.len();
                cur = child;
            }
            Node::Branch { mut children, .. } => {
                if depth >= 64 {
                    return Err(WalkError::KeyLength(depth));
                }
                match children[nibble(key, depth) as usize].take() {
                    Some(c) => cur = c,
                    None => return Ok(None),
                }
                depth += 1;
            }
        }
    }
}

/// The RLP of the hashed node sitting exactly at nibble `path` (as GetTrieNodes asks), or
/// `None` if no hashed node starts there.
pub fn node_at_path<S: NodeSource + ?Sized>(db: &S, root: B256, path: &[u8]) -> Option<Vec<u8>> {
    if root == EMPTY_ROOT {
        return None;
    }
    let mut cur = ChildRef::Hash(root);
    let mut depth = 0;
    loop {
        let (node, rlp) = load(db, &cur).ok()?;
        if depth == path.len() {
            return rlp.map(|r| r.to_vec());
        }
        match node {
            Node::Leaf { .. } => return None,
            Node::Extension { path: ext, child } => {
                if path.len() < depth + ext.len() || path[depth..depth + ext.len()] != ext[..] {
                    return None;
                }
                depth += ext.len();
                cur = child;
            }
            Node::Branch { mut children, .. } => {
                let n = *path.get(depth)? as usize;
                cur = children.get_mut(n)?.take()?;
                depth += 1;
            }
        }
    }
}

/// Visits leaves with key >= `start` in key order until `visit` returns false.
pub fn iter_from<S: NodeSource + ?Sized>(
    db: &S,
    root: B256,
    start: &B256,
    visit: &mut dyn FnMut(B256, &[u8]) -> bool,
) -> Result<(), WalkError> {
    if root == EMPTY_ROOT {
        return Ok(());
    }
    let mut path = Vec::with_capacity(64);
    walk(db, RefView::Hash(root), &mut path, Some(start), visit)?;
    Ok(())
}

/// Compares `path` (a prefix of some keys) with the same-length prefix of `key`.
fn cmp_prefix(path: &[u8], key: &B256) -> std::cmp::Ordering {
    for (i, n) in path.iter().enumerate() {
        match n.cmp(&nibble(key, i)) {
            std::cmp::Ordering::Equal => {}
            o => return o,
        }
    }
    std::cmp::Ordering::Equal
}

/// Appends the nibbles of a compact (hex-prefix) path.
fn push_compact(path: &mut Vec<u8>, compact: &[u8]) -> Result<(), WalkError> {
    let first = *compact.first().ok_or(WalkError::Bad(NodeError::BadPath))?;
    if first & 0x10 != 0 {
        path.push(first & 0x0f);
    }
    for b in &compact[1..] {
        path.push(b >> 4);
        path.push(b & 0x0f);
    }
    Ok(())
}

/// In-order walk; `bound` is `Some(start)` while `path` is still a prefix of `start`.
/// Returns false when the visitor asked to stop. Decodes without allocating.
fn walk<S: NodeSource + ?Sized>(
    db: &S,
    r: RefView<'_>,
    path: &mut Vec<u8>,
    bound: Option<&B256>,
    visit: &mut dyn FnMut(B256, &[u8]) -> bool,
) -> Result<bool, WalkError> {
    let rlp = match r {
        RefView::Hash(h) => db.node(&h).ok_or(WalkError::Missing(h))?,
        RefView::Inline(raw) => raw,
    };
    let base = path.len();
    let result = match Node::view(rlp)? {
        NodeView::Leaf(compact, value) => {
            push_compact(path, compact)?;
            let key = pack(path).ok_or(WalkError::KeyLength(path.len()))?;
            if bound.is_some_and(|s| key < *s) {
                true
            } else {
                visit(key, value)
            }
        }
        NodeView::Extension(compact, child) => {
            push_compact(path, compact)?;
            if path.len() > 64 {
                return Err(WalkError::KeyLength(path.len()));
            }
            match bound.map(|s| cmp_prefix(path, s)) {
                Some(std::cmp::Ordering::Less) => true,
                Some(std::cmp::Ordering::Equal) => walk(db, child, path, bound, visit)?,
                _ => walk(db, child, path, None, visit)?,
            }
        }
        NodeView::Branch(children) => {
            if path.len() >= 64 {
                return Err(WalkError::KeyLength(path.len()));
            }
            let from = bound.map_or(0, |s| nibble(s, base));
            let mut go = true;
            for (i, c) in children.iter().enumerate().skip(from as usize) {
                let Some(c) = c else { continue };
                path.push(i as u8);
                let b = if bound.is_some() && i as u8 == from { bound } else { None };
                go = walk(db, *c, path, b, visit)?;
                path.pop();
                if !go {
                    break;
                }
            }
            go
        }
    };
    path.truncate(base);
    Ok(result)
}
