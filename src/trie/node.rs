//! Merkle-Patricia trie nodes: decoding from and encoding to their RLP form.

use crate::primitives::{keccak256, B256};
use crate::trie::nibbles::{hex_prefix_decode, hex_prefix_encode};
use alloy_rlp::{Encodable, Header};

/// How a parent refers to a child: by hash, or by embedding a node whose RLP is < 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildRef {
    /// keccak256 of the child's RLP (child RLP >= 32 bytes).
    Hash(B256),
    /// The child's full RLP, embedded in the parent.
    Inline(Vec<u8>),
}

impl ChildRef {
    /// The reference a parent holds for a node with this RLP.
    pub fn of_rlp(rlp: &[u8]) -> Self {
        if rlp.len() < 32 {
            ChildRef::Inline(rlp.to_vec())
        } else {
            ChildRef::Hash(keccak256(rlp))
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ChildRef::Hash(h) => h.encode(out),
            ChildRef::Inline(raw) => out.extend_from_slice(raw),
        }
    }

    fn len(&self) -> usize {
        match self {
            ChildRef::Hash(_) => 33,
            ChildRef::Inline(raw) => raw.len(),
        }
    }
}

/// A decoded trie node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// 16 children and an optional value (values in branches never occur with 32-byte keys).
    Branch {
        /// Child references by nibble.
        children: Box<[Option<ChildRef>; 16]>,
        /// Value terminating at this branch.
        value: Option<Vec<u8>>,
    },
    /// A shared path segment followed by one child (always a branch in a canonical trie).
    Extension {
        /// Path segment (nibbles).
        path: Vec<u8>,
        /// The child.
        child: ChildRef,
    },
    /// The remaining key path and the value.
    Leaf {
        /// Remaining path (nibbles).
        path: Vec<u8>,
        /// Leaf value.
        value: Vec<u8>,
    },
}

/// Why bytes are not a trie node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// Not valid RLP.
    #[error("node rlp: {0}")]
    Rlp(String),
    /// An RLP list with a number of items other than 2 or 17.
    #[error("node has {0} items, expected 2 or 17")]
    ItemCount(usize),
    /// Bad hex-prefix path.
    #[error("bad hex-prefix path")]
    BadPath,
    /// A child reference that is neither empty, a 32-byte hash nor an embedded node < 32 bytes.
    #[error("bad child reference")]
    BadChild,
    /// Bytes after the node's list.
    #[error("trailing bytes after node")]
    Trailing,
}

impl From<alloy_rlp::Error> for NodeError {
    fn from(e: alloy_rlp::Error) -> Self {
        Self::Rlp(e.to_string())
    }
}

/// Splits one RLP item off `buf`: returns (is_list, payload, whole item bytes).
fn take_item<'a>(buf: &mut &'a [u8]) -> Result<(bool, &'a [u8], &'a [u8]), NodeError> {
    let start = *buf;
    let header = Header::decode(buf)?;
    let payload = buf.get(..header.payload_length).ok_or_else(|| NodeError::Rlp("short item".into()))?;
    *buf = &buf[header.payload_length..];
    let whole = &start[..start.len() - buf.len()];
    Ok((header.list, payload, whole))
}

fn decode_child(is_list: bool, payload: &[u8], whole: &[u8]) -> Result<Option<ChildRef>, NodeError> {
    if is_list {
        if whole.len() >= 32 {
            return Err(NodeError::BadChild);
        }
        return Ok(Some(ChildRef::Inline(whole.to_vec())));
    }
    match payload.len() {
        0 => Ok(None),
        32 => Ok(Some(ChildRef::Hash(B256::from_slice(payload)))),
        _ => Err(NodeError::BadChild),
    }
}

impl Node {
    /// Decodes a node from its RLP; never panics.
    pub fn decode(rlp: &[u8]) -> Result<Node, NodeError> {
        let mut buf = rlp;
        let (is_list, payload, _) = take_item(&mut buf)?;
        if !buf.is_empty() {
            return Err(NodeError::Trailing);
        }
        if !is_list {
            return Err(NodeError::Rlp("node is not a list".into()));
        }
        let mut items = payload;
        let mut parsed: Vec<(bool, &[u8], &[u8])> = Vec::with_capacity(17);
        while !items.is_empty() {
            if parsed.len() == 17 {
                return Err(NodeError::ItemCount(18));
            }
            parsed.push(take_item(&mut items)?);
        }
        match parsed.len() {
            2 => {
                let (l0, p0, _) = parsed[0];
                if l0 {
                    return Err(NodeError::BadPath);
                }
                let (path, leaf) = hex_prefix_decode(p0).ok_or(NodeError::BadPath)?;
                let (l1, p1, w1) = parsed[1];
                if leaf {
                    if l1 {
                        return Err(NodeError::Rlp("leaf value is a list".into()));
                    }
                    Ok(Node::Leaf { path, value: p1.to_vec() })
                } else {
                    if path.is_empty() {
                        return Err(NodeError::BadPath);
                    }
                    let child = decode_child(l1, p1, w1)?.ok_or(NodeError::BadChild)?;
                    Ok(Node::Extension { path, child })
                }
            }
            17 => {
                let mut children: [Option<ChildRef>; 16] = Default::default();
                for (i, slot) in children.iter_mut().enumerate() {
                    let (l, p, w) = parsed[i];
                    *slot = decode_child(l, p, w)?;
                }
                let (l16, p16, _) = parsed[16];
                if l16 {
                    return Err(NodeError::Rlp("branch value is a list".into()));
                }
                let value = if p16.is_empty() { None } else { Some(p16.to_vec()) };
                Ok(Node::Branch { children: Box::new(children), value })
            }
            n => Err(NodeError::ItemCount(n)),
        }
    }

    /// Encodes the node to RLP.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        match self {
            Node::Leaf { path, value } => {
                let hp = hex_prefix_encode(path, true);
                let len = hp.as_slice().length() + value.as_slice().length();
                Header { list: true, payload_length: len }.encode(&mut out);
                hp.as_slice().encode(&mut out);
                value.as_slice().encode(&mut out);
            }
            Node::Extension { path, child } => {
                let hp = hex_prefix_encode(path, false);
                let len = hp.as_slice().length() + child.len();
                Header { list: true, payload_length: len }.encode(&mut out);
                hp.as_slice().encode(&mut out);
                child.encode(&mut out);
            }
            Node::Branch { children, value } => {
                let mut len: usize = children.iter().map(|c| c.as_ref().map_or(1, |c| c.len())).sum();
                len += value.as_ref().map_or(1, |v| v.as_slice().length());
                Header { list: true, payload_length: len }.encode(&mut out);
                for c in children.iter() {
                    match c {
                        Some(c) => c.encode(&mut out),
                        None => out.push(0x80),
                    }
                }
                match value {
                    Some(v) => v.as_slice().encode(&mut out),
                    None => out.push(0x80),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_each_kind() {
        let leaf = Node::Leaf { path: vec![1, 2, 3], value: vec![9; 40] };
        let ext = Node::Extension { path: vec![4, 5], child: ChildRef::Hash(B256::repeat_byte(3)) };
        let mut children: [Option<ChildRef>; 16] = Default::default();
        children[2] = Some(ChildRef::Hash(B256::repeat_byte(7)));
        children[9] = Some(ChildRef::of_rlp(&Node::Leaf { path: vec![1], value: vec![5] }.encode()));
        let branch = Node::Branch { children: Box::new(children), value: None };
        for n in [leaf, ext, branch] {
            assert_eq!(Node::decode(&n.encode()).unwrap(), n);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for bytes in [&[][..], &[0xc0], &[0x80], &[0xc2, 0x80, 0x80], &[0xf8, 0xff]] {
            assert!(Node::decode(bytes).is_err());
        }
    }
}

/// A child reference borrowed from a node's RLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefView<'a> {
    /// By hash.
    Hash(B256),
    /// Embedded node RLP.
    Inline(&'a [u8]),
}

/// A node decoded without allocating: everything borrows from the RLP. (Large by design: it
/// lives on the stack of walkers, never in collections.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeView<'a> {
    /// Branch: its children.
    Branch([Option<RefView<'a>>; 16]),
    /// Extension: its compact (hex-prefix) path and its child.
    Extension(&'a [u8], RefView<'a>),
    /// Leaf: its compact (hex-prefix) path and its value.
    Leaf(&'a [u8], &'a [u8]),
}

fn view_child<'a>(
    is_list: bool,
    payload: &'a [u8],
    whole: &'a [u8],
) -> Result<Option<RefView<'a>>, NodeError> {
    if is_list {
        if whole.len() >= 32 {
            return Err(NodeError::BadChild);
        }
        return Ok(Some(RefView::Inline(whole)));
    }
    match payload.len() {
        0 => Ok(None),
        32 => Ok(Some(RefView::Hash(B256::from_slice(payload)))),
        _ => Err(NodeError::BadChild),
    }
}

impl Node {
    /// Decodes a node's shape without allocating (for walks over whole tries).
    pub fn view(rlp: &[u8]) -> Result<NodeView<'_>, NodeError> {
        let mut buf = rlp;
        let (is_list, payload, _) = take_item(&mut buf)?;
        if !buf.is_empty() {
            return Err(NodeError::Trailing);
        }
        if !is_list {
            return Err(NodeError::Rlp("node is not a list".into()));
        }
        let mut items = payload;
        let first = take_item(&mut items)?;
        let second = take_item(&mut items)?;
        if items.is_empty() {
            let (l0, p0, _) = first;
            if l0 {
                return Err(NodeError::BadPath);
            }
            let flag = p0.first().ok_or(NodeError::BadPath)? >> 4;
            let (l1, p1, w1) = second;
            return match flag {
                2 | 3 if !l1 => Ok(NodeView::Leaf(p0, p1)),
                0 | 1 => Ok(NodeView::Extension(p0, view_child(l1, p1, w1)?.ok_or(NodeError::BadChild)?)),
                _ => Err(NodeError::BadPath),
            };
        }
        let mut children: [Option<RefView<'_>>; 16] = [None; 16];
        children[0] = view_child(first.0, first.1, first.2)?;
        children[1] = view_child(second.0, second.1, second.2)?;
        for slot in children.iter_mut().skip(2) {
            let (l, p, w) = take_item(&mut items)?;
            *slot = view_child(l, p, w)?;
        }
        let _value = take_item(&mut items)?;
        if !items.is_empty() {
            return Err(NodeError::ItemCount(18));
        }
        Ok(NodeView::Branch(children))
    }
}
