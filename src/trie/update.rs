//! Copy-on-write updates: applying inserts and deletes to a trie in a [`NodeDb`] yields a
//! new root while every older root stays readable (nodes are immutable and shared).

use crate::primitives::{keccak256, B256, EMPTY_ROOT};
use crate::trie::db::NodeDb;
use crate::trie::nibbles::nibble;
use crate::trie::node::{ChildRef, Node};
use crate::trie::walk::{load, WalkError};

/// One change: `Some(value)` sets the key, `None` deletes it.
pub type Update = (B256, Option<Vec<u8>>);

/// Applies `updates` (keys strictly increasing; values non-empty) to the trie at `root`,
/// storing new nodes in `db`, and returns the new root.
pub fn apply<D: NodeDb + ?Sized>(db: &mut D, root: B256, updates: &[Update]) -> Result<B256, WalkError> {
    if updates.is_empty() {
        return Ok(root);
    }
    let current = if root == EMPTY_ROOT { None } else { Some(load(db, &ChildRef::Hash(root))?.0) };
    match update(db, current, 0, updates)? {
        None => Ok(EMPTY_ROOT),
        Some(node) => {
            let rlp = node.encode();
            let h = keccak256(&rlp);
            db.put(h, &rlp);
            Ok(h)
        }
    }
}

fn store<D: NodeDb + ?Sized>(db: &mut D, node: &Node) -> ChildRef {
    let rlp = node.encode();
    if rlp.len() < 32 {
        ChildRef::Inline(rlp)
    } else {
        let h = keccak256(&rlp);
        db.put(h, &rlp);
        ChildRef::Hash(h)
    }
}

fn update<D: NodeDb + ?Sized>(
    db: &mut D,
    node: Option<Node>,
    depth: usize,
    ups: &[Update],
) -> Result<Option<Node>, WalkError> {
    match node {
        None => {
            let leaves: Vec<(B256, Vec<u8>)> =
                ups.iter().filter_map(|(k, v)| v.clone().map(|v| (*k, v))).collect();
            Ok(fresh(db, &leaves, depth))
        }
        Some(Node::Leaf { path, value }) => {
            let mut key_nibbles: Vec<u8> = (0..depth).map(|i| nibble(&ups[0].0, i)).collect();
            key_nibbles.extend_from_slice(&path);
            let key =
                crate::trie::nibbles::pack(&key_nibbles).ok_or(WalkError::KeyLength(key_nibbles.len()))?;
            let mut leaves: Vec<(B256, Vec<u8>)> = Vec::with_capacity(ups.len() + 1);
            let mut existing = Some((key, value));
            for (k, v) in ups {
                if let Some((ek, _)) = &existing {
                    if ek < k {
                        leaves.extend(existing.take());
                    } else if ek == k {
                        existing = None;
                    }
                }
                if let Some(v) = v {
                    leaves.push((*k, v.clone()));
                }
            }
            leaves.extend(existing);
            Ok(fresh(db, &leaves, depth))
        }
        Some(Node::Extension { path, child }) => {
            let diverges =
                ups.iter().any(|(k, _)| path.iter().enumerate().any(|(i, n)| nibble(k, depth + i) != *n));
            if diverges {
                // Re-express the extension as a branch at `depth`, then update that.
                let rest = path[1..].to_vec();
                let sub =
                    if rest.is_empty() { child } else { store(db, &Node::Extension { path: rest, child }) };
                let mut children: [Option<ChildRef>; 16] = Default::default();
                children[path[0] as usize] = Some(sub);
                return update(
                    db,
                    Some(Node::Branch { children: Box::new(children), value: None }),
                    depth,
                    ups,
                );
            }
            let (child_node, _) = load(db, &child)?;
            let new_child = update(db, Some(child_node), depth + path.len(), ups)?;
            Ok(new_child.map(|c| prepend(db, path, c)))
        }
        Some(Node::Branch { mut children, value }) => {
            let mut start = 0;
            while start < ups.len() {
                let nib = nibble(&ups[start].0, depth);
                let mut end = start + 1;
                while end < ups.len() && nibble(&ups[end].0, depth) == nib {
                    end += 1;
                }
                let slot = &mut children[nib as usize];
                let old = match slot.take() {
                    Some(r) => Some(load(db, &r)?.0),
                    None => None,
                };
                *slot = update(db, old, depth + 1, &ups[start..end])?.map(|n| store(db, &n));
                start = end;
            }
            let live: Vec<usize> = (0..16).filter(|i| children[*i].is_some()).collect();
            match live.as_slice() {
                [] => Ok(None),
                [only] if value.is_none() => {
                    let r = children[*only].take().expect("live child");
                    let (n, _) = load(db, &r)?;
                    Ok(Some(prepend(db, vec![*only as u8], n)))
                }
                _ => Ok(Some(Node::Branch { children, value })),
            }
        }
    }
}

/// The node `prefix ++ node`: merges paths into leaves/extensions, wraps branches.
fn prepend<D: NodeDb + ?Sized>(db: &mut D, mut prefix: Vec<u8>, node: Node) -> Node {
    match node {
        Node::Leaf { path, value } => {
            prefix.extend_from_slice(&path);
            Node::Leaf { path: prefix, value }
        }
        Node::Extension { path, child } => {
            prefix.extend_from_slice(&path);
            Node::Extension { path: prefix, child }
        }
        branch @ Node::Branch { .. } => Node::Extension { path: prefix, child: store(db, &branch) },
    }
}

/// A new subtree holding `leaves` (sorted) below `depth`, nodes stored in `db`.
fn fresh<D: NodeDb + ?Sized>(db: &mut D, leaves: &[(B256, Vec<u8>)], depth: usize) -> Option<Node> {
    match leaves {
        [] => None,
        [(k, v)] => Some(Node::Leaf { path: (depth..64).map(|i| nibble(k, i)).collect(), value: v.clone() }),
        _ => {
            let first = &leaves[0].0;
            let last = &leaves[leaves.len() - 1].0;
            let mut cp = depth;
            while cp < 64 && nibble(first, cp) == nibble(last, cp) {
                cp += 1;
            }
            let mut children: [Option<ChildRef>; 16] = Default::default();
            let mut start = 0;
            while start < leaves.len() {
                let nib = nibble(&leaves[start].0, cp);
                let mut end = start + 1;
                while end < leaves.len() && nibble(&leaves[end].0, cp) == nib {
                    end += 1;
                }
                let child = fresh(db, &leaves[start..end], cp + 1).expect("non-empty");
                children[nib as usize] = Some(store(db, &child));
                start = end;
            }
            let branch = Node::Branch { children: Box::new(children), value: None };
            if cp > depth {
                let path = (depth..cp).map(|i| nibble(first, i)).collect();
                Some(Node::Extension { path, child: store(db, &branch) })
            } else {
                Some(branch)
            }
        }
    }
}
