//! Building trie nodes from sorted leaves, reporting every hashed node with its path and the
//! leaves beneath it (so callers can store only the nodes they can vouch for).
//!
//! The builder encodes each node's RLP straight into one reusable buffer: no node is ever
//! materialised as a [`crate::trie::node::Node`]. Children are built first (post-order); each
//! leaves its reference on a byte stack, already RLP-encoded (`0xa0` and its hash, or its whole
//! RLP when shorter than 32 bytes), and the parent copies the references into its own RLP once
//! all are known. Hex-prefix paths are packed from the keys' bytes. The only allocations are
//! the three scratch buffers of a build.

use crate::primitives::{keccak256, B256, EMPTY_ROOT};
use crate::trie::nibbles::nibble;
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
    let mut builder = Builder::new(sink);
    match builder.node(&KeyLeaves(leaves), 0, leaves.len(), 0) {
        Built::Rlp => builder.emit_root(leaves.len()),
        Built::Hash(hash) => hash,
    }
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
    if !well_formed(items) {
        return None;
    }
    if items.is_empty() {
        return Some(EMPTY_ROOT);
    }
    let mut builder = Builder::new(sink);
    match builder.node(&Items(items), 0, items.len(), 0) {
        Built::Rlp => Some(builder.emit_root(items.len())),
        Built::Hash(hash) => Some(hash),
    }
}

/// Whether `items` meet [`build_items`]'s requirements.
fn well_formed(items: &[BuildItem<'_>]) -> bool {
    let mut prev: Option<B256> = None;
    for it in items {
        match it {
            BuildItem::Leaf(_, []) => return false,
            BuildItem::Subtree(p, _) if p.is_empty() || p.len() > 64 || p.iter().any(|n| *n > 15) => {
                return false
            }
            _ => {}
        }
        let (lo, hi) = it.span();
        if prev.is_some_and(|p| p >= lo) {
            return false;
        }
        prev = Some(hi);
    }
    true
}

/// A hex-prefix (compact) encoded path: at most 64 nibbles, so at most 33 bytes.
struct HexPrefix {
    bytes: [u8; 33],
    len: usize,
}

impl HexPrefix {
    /// Flag bits of a leaf path's first byte (the odd-length bit, 0x10, is added as needed).
    const LEAF: u8 = 0x20;
    /// Flag bits of an extension path's first byte.
    const EXTENSION: u8 = 0x00;

    /// Nibbles `from..to` of `key` (`to <= 64`), read a byte at a time.
    fn of_key(key: &B256, from: usize, to: usize, flag: u8) -> Self {
        let mut hp = HexPrefix { bytes: [0; 33], len: 1 };
        let mut start = from;
        if (to - from) % 2 == 1 {
            hp.bytes[0] = flag | 0x10 | nibble(key, from);
            start += 1;
        } else {
            hp.bytes[0] = flag;
        }
        // an even number of nibbles remains
        let pairs = (to - start) / 2;
        let first = start / 2;
        let out = &mut hp.bytes[1..1 + pairs];
        if start.is_multiple_of(2) {
            out.copy_from_slice(&key[first..first + pairs]);
        } else {
            for (j, byte) in out.iter_mut().enumerate() {
                *byte = (key[first + j] << 4) | (key[first + j + 1] >> 4);
            }
        }
        hp.len += pairs;
        hp
    }

    /// A path given one nibble (`0..16`) per byte, at most 64 of them.
    fn of_nibbles(path: &[u8], flag: u8) -> Self {
        let mut hp = HexPrefix { bytes: [0; 33], len: 1 };
        let rest = if path.len() % 2 == 1 {
            hp.bytes[0] = flag | 0x10 | path[0];
            &path[1..]
        } else {
            hp.bytes[0] = flag;
            path
        };
        for pair in rest.chunks_exact(2) {
            hp.bytes[hp.len] = (pair[0] << 4) | pair[1];
            hp.len += 1;
        }
        hp
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// RLP offset of a string header.
const STRING: u8 = 0x80;
/// RLP offset of a list header.
const LIST: u8 = 0xc0;

/// Length of an RLP header for a payload of `len` bytes.
fn header_len(len: usize) -> usize {
    if len < 56 {
        1
    } else {
        1 + usize::BITS as usize / 8 - len.leading_zeros() as usize / 8
    }
}

/// Appends the header of a string (`offset` [`STRING`]) or list ([`LIST`]) of `len` bytes.
fn put_header(out: &mut Vec<u8>, offset: u8, len: usize) {
    if len < 56 {
        out.push(offset + len as u8);
    } else {
        let be = len.to_be_bytes();
        let skip = len.leading_zeros() as usize / 8;
        out.push(offset + 55 + (be.len() - skip) as u8);
        out.extend_from_slice(&be[skip..]);
    }
}

/// Length of `s` encoded as an RLP string.
fn string_len(s: &[u8]) -> usize {
    match s {
        [b] if *b < STRING => 1,
        _ => header_len(s.len()) + s.len(),
    }
}

/// Appends `s` encoded as an RLP string.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    match s {
        [b] if *b < STRING => out.push(*b),
        _ => {
            put_header(out, STRING, s.len());
            out.extend_from_slice(s);
        }
    }
}

/// The node standing for a single item at some depth.
enum Single<'a> {
    /// A leaf: its hex-prefix path and value.
    Leaf(HexPrefix, &'a [u8]),
    /// An extension (hex-prefix path) to a subtree known by hash.
    Extension(HexPrefix, B256),
    /// The subtree itself, known by hash: nothing to encode.
    Hash(B256),
}

/// The inputs of a build, read by index: leaves, or leaves and subtrees.
trait Source {
    /// Nibble `i` of the keys under item `idx`; 16 past a subtree's path.
    fn nibble(&self, idx: usize, i: usize) -> u8;

    /// The first nibble index from `depth` where item `a` ends or differs from item `b`
    /// (64 at most).
    fn common_prefix(&self, a: usize, b: usize, depth: usize) -> usize {
        let mut cp = depth;
        while cp < 64 && self.nibble(a, cp) < 16 && self.nibble(a, cp) == self.nibble(b, cp) {
            cp += 1;
        }
        cp
    }

    /// The nibble at `depth` of item `start` (wrapped into `0..16`) and the end of the run of
    /// items from `start` (before `end`) having it.
    fn run(&self, start: usize, end: usize, depth: usize) -> (u8, usize) {
        let nib = self.nibble(start, depth) & 0x0f;
        let mut stop = start + 1;
        while stop < end && self.nibble(stop, depth) & 0x0f == nib {
            stop += 1;
        }
        (nib, stop)
    }

    /// Appends nibbles `from..to` of item `idx` to `path`.
    fn extend_path(&self, idx: usize, from: usize, to: usize, path: &mut Vec<u8>) {
        path.extend((from..to).map(|i| self.nibble(idx, i)));
    }

    /// The extension path made of nibbles `from..to` of item `idx` (all below 16).
    fn extension_path(&self, idx: usize, from: usize, to: usize) -> HexPrefix;

    /// The node standing for item `idx` alone at `depth`.
    fn single(&self, idx: usize, depth: usize) -> Single<'_>;
}

/// Plain leaves (the input of [`build`]).
struct KeyLeaves<'a, V>(&'a [(B256, V)]);

impl<V: AsRef<[u8]>> Source for KeyLeaves<'_, V> {
    fn nibble(&self, idx: usize, i: usize) -> u8 {
        nibble(&self.0[idx].0, i)
    }

    fn common_prefix(&self, a: usize, b: usize, depth: usize) -> usize {
        key_common_prefix(&self.0[a].0, &self.0[b].0, depth)
    }

    fn run(&self, start: usize, end: usize, depth: usize) -> (u8, usize) {
        let (byte, shift) = (depth / 2, if depth.is_multiple_of(2) { 4 } else { 0 });
        let nib_of = |idx: usize| (self.0[idx].0[byte] >> shift) & 0x0f;
        let nib = nib_of(start);
        let mut stop = start + 1;
        while stop < end && nib_of(stop) == nib {
            stop += 1;
        }
        (nib, stop)
    }

    fn extension_path(&self, idx: usize, from: usize, to: usize) -> HexPrefix {
        HexPrefix::of_key(&self.0[idx].0, from, to, HexPrefix::EXTENSION)
    }

    fn single(&self, idx: usize, depth: usize) -> Single<'_> {
        let (key, value) = &self.0[idx];
        Single::Leaf(HexPrefix::of_key(key, depth, 64, HexPrefix::LEAF), value.as_ref())
    }
}

/// Leaves and subtrees (the input of [`build_items`]).
struct Items<'a, 'b>(&'a [BuildItem<'b>]);

impl Source for Items<'_, '_> {
    fn nibble(&self, idx: usize, i: usize) -> u8 {
        self.0[idx].nibble(i)
    }

    fn common_prefix(&self, a: usize, b: usize, depth: usize) -> usize {
        match (&self.0[a], &self.0[b]) {
            (BuildItem::Leaf(ka, _), BuildItem::Leaf(kb, _)) => key_common_prefix(ka, kb, depth),
            (BuildItem::Subtree(pa, _), _) => {
                let mut cp = depth;
                while cp < pa.len() && pa[cp] < 16 && pa[cp] == self.0[b].nibble(cp) {
                    cp += 1;
                }
                cp
            }
            _ => {
                let mut cp = depth;
                while cp < 64 && self.nibble(a, cp) == self.nibble(b, cp) {
                    cp += 1;
                }
                cp
            }
        }
    }

    fn extend_path(&self, idx: usize, from: usize, to: usize, path: &mut Vec<u8>) {
        match &self.0[idx] {
            BuildItem::Subtree(p, _) if to <= p.len() => path.extend_from_slice(&p[from..to]),
            _ => path.extend((from..to).map(|i| self.nibble(idx, i))),
        }
    }

    fn extension_path(&self, idx: usize, from: usize, to: usize) -> HexPrefix {
        match &self.0[idx] {
            BuildItem::Leaf(key, _) => HexPrefix::of_key(key, from, to, HexPrefix::EXTENSION),
            BuildItem::Subtree(p, _) => HexPrefix::of_nibbles(&p[from..to], HexPrefix::EXTENSION),
        }
    }

    fn single(&self, idx: usize, depth: usize) -> Single<'_> {
        match self.0[idx] {
            BuildItem::Leaf(key, value) => {
                Single::Leaf(HexPrefix::of_key(&key, depth, 64, HexPrefix::LEAF), value)
            }
            BuildItem::Subtree(p, hash) if p.len() <= depth => Single::Hash(hash),
            BuildItem::Subtree(p, hash) => {
                Single::Extension(HexPrefix::of_nibbles(&p[depth..], HexPrefix::EXTENSION), hash)
            }
        }
    }
}

/// The first nibble index from `depth` (`<= 64`) where keys `a` and `b` differ; 64 if none.
fn key_common_prefix(a: &B256, b: &B256, depth: usize) -> usize {
    let mut byte = depth / 2;
    if depth % 2 == 1 {
        if nibble(a, depth) != nibble(b, depth) {
            return depth;
        }
        byte += 1;
    }
    match a[byte..].iter().zip(&b[byte..]).position(|(x, y)| x != y) {
        None => 64,
        Some(j) if (a[byte + j] ^ b[byte + j]) & 0xf0 != 0 => 2 * (byte + j),
        Some(j) => 2 * (byte + j) + 1,
    }
}

/// Where [`Builder::node`] left a node.
enum Built {
    /// Its RLP is in the builder's `rlp` buffer.
    Rlp,
    /// It is a subtree known by this hash.
    Hash(B256),
}

/// Where a branch's child reference lies on the reference stack (`len` 0: no child).
#[derive(Clone, Copy, Default)]
struct Slot {
    start: usize,
    len: usize,
}

/// Largest branch RLP: a 3-byte header, 16 hash references, the empty value.
const BRANCH_MAX: usize = 3 + 16 * 33 + 1;

/// Scratch state of one build.
struct Builder<'s> {
    /// RLP of the node just encoded.
    rlp: Vec<u8>,
    /// Stack of encoded child references, pending until their parent is encoded.
    refs: Vec<u8>,
    /// Nibble path of the node being built.
    path: Vec<u8>,
    /// Receives every hashed node.
    sink: &'s mut dyn FnMut(BuiltNode<'_>),
}

impl<'s> Builder<'s> {
    fn new(sink: &'s mut dyn FnMut(BuiltNode<'_>)) -> Self {
        Builder {
            // room for a branch of 16 hashes, and for the references of a few pending levels
            rlp: Vec::with_capacity(BRANCH_MAX),
            refs: Vec::with_capacity(4 * BRANCH_MAX),
            path: Vec::with_capacity(64),
            sink,
        }
    }

    /// Builds the node for items `lo..hi` (all sharing `self.path`, of length `depth`): its RLP
    /// goes to `self.rlp` (the caller reports it) unless it is a subtree known by hash.
    /// Children that need a hash are reported to the sink.
    fn node<S: Source>(&mut self, src: &S, lo: usize, hi: usize, depth: usize) -> Built {
        if hi - lo == 1 {
            return self.single(src.single(lo, depth));
        }
        let cp = src.common_prefix(lo, hi - 1, depth);
        if cp == depth {
            self.branch(src, lo, hi, depth);
            return Built::Rlp;
        }
        let base = self.path.len();
        src.extend_path(lo, depth, cp, &mut self.path);
        let child = self.refs.len();
        self.branch(src, lo, hi, cp);
        self.emit(lo..hi);
        self.path.truncate(base);
        self.extension(&src.extension_path(lo, depth, cp), child);
        Built::Rlp
    }

    /// Encodes a lone item's node.
    fn single(&mut self, single: Single<'_>) -> Built {
        match single {
            Single::Leaf(hp, value) => {
                let hp = hp.as_slice();
                self.rlp.clear();
                put_header(&mut self.rlp, LIST, string_len(hp) + string_len(value));
                put_string(&mut self.rlp, hp);
                put_string(&mut self.rlp, value);
            }
            Single::Extension(hp, hash) => {
                let child = self.refs.len();
                self.push_hash(&hash);
                self.extension(&hp, child);
            }
            Single::Hash(hash) => return Built::Hash(hash),
        }
        Built::Rlp
    }

    /// Encodes an extension whose child reference is on top of the stack from `child`, and pops it.
    fn extension(&mut self, hp: &HexPrefix, child: usize) {
        let hp = hp.as_slice();
        self.rlp.clear();
        put_header(&mut self.rlp, LIST, string_len(hp) + self.refs.len() - child);
        put_string(&mut self.rlp, hp);
        self.rlp.extend_from_slice(&self.refs[child..]);
        self.refs.truncate(child);
    }

    /// Encodes the branch of items `lo..hi` at `depth` after building its children.
    fn branch<S: Source>(&mut self, src: &S, lo: usize, hi: usize, depth: usize) {
        let base = self.refs.len();
        let mut slots = [Slot::default(); 16];
        let mut start = lo;
        while start < hi {
            // a malformed group (a subtree ending here beside others) maps to nibble 0..15 anyway;
            // build_items' validation makes it unreachable
            let (nib, end) = src.run(start, hi, depth);
            self.path.push(nib);
            let at = self.refs.len();
            match self.node(src, start, end, depth + 1) {
                Built::Rlp => self.emit(start..end),
                Built::Hash(hash) => self.push_hash(&hash),
            }
            slots[nib as usize] = Slot { start: at, len: self.refs.len() - at };
            self.path.pop();
            start = end;
        }
        self.encode_branch(&slots, base);
    }

    /// Encodes a branch whose child references are on the stack from `base` (where `slots`
    /// say), and pops them.
    fn encode_branch(&mut self, slots: &[Slot; 16], base: usize) {
        // each child is its reference, or 0x80 when empty; then 0x80 for the empty value
        let payload = 1 + slots.iter().map(|s| s.len.max(1)).sum::<usize>();
        self.rlp.clear();
        put_header(&mut self.rlp, LIST, payload);
        for s in slots {
            if s.len == 0 {
                self.rlp.push(STRING);
            } else {
                self.rlp.extend_from_slice(&self.refs[s.start..s.start + s.len]);
            }
        }
        self.rlp.push(STRING);
        self.refs.truncate(base);
    }

    /// Pushes the reference to the node in `self.rlp` (covering items `leaves`): its RLP when
    /// shorter than 32 bytes, else its hash, reporting the node to the sink.
    fn emit(&mut self, leaves: Range<usize>) {
        if self.rlp.len() < 32 {
            self.refs.extend_from_slice(&self.rlp);
            return;
        }
        let hash = keccak256(&self.rlp);
        (self.sink)(BuiltNode { path: &self.path, leaves, rlp: &self.rlp, hash });
        self.push_hash(&hash);
    }

    /// Hashes and reports the root in `self.rlp` (covering items `0..count`), and returns its hash.
    fn emit_root(&mut self, count: usize) -> B256 {
        let hash = keccak256(&self.rlp);
        (self.sink)(BuiltNode { path: &[], leaves: 0..count, rlp: &self.rlp, hash });
        hash
    }

    /// Pushes a reference by hash: the 32-byte RLP string.
    fn push_hash(&mut self, hash: &B256) {
        self.refs.push(STRING + 32);
        self.refs.extend_from_slice(hash.as_slice());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The builder this module replaced, kept as the reference: it materialises a `Node` per
    /// node and encodes it with `Node::encode`.
    mod reference {
        use super::super::{BuildItem, BuiltNode};
        use crate::primitives::{keccak256, B256, EMPTY_ROOT};
        use crate::trie::nibbles::nibble;
        use crate::trie::node::{ChildRef, Node};

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
                    BuildItem::Subtree(p, hash) => Built::Node(Node::Extension {
                        path: p[depth..].to_vec(),
                        child: ChildRef::Hash(hash),
                    }),
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
    }

    /// One sink call: path, leaves, rlp, hash.
    type Call = (Vec<u8>, Range<usize>, Vec<u8>, B256);

    /// Runs a builder, recording its sink calls.
    fn record<R>(f: impl FnOnce(&mut dyn FnMut(BuiltNode<'_>)) -> R) -> (R, Vec<Call>) {
        let mut calls = Vec::new();
        let r = f(&mut |n| calls.push((n.path.to_vec(), n.leaves, n.rlp.to_vec(), n.hash)));
        (r, calls)
    }

    /// Both builders on `leaves`: same root, same sink calls (which it returns).
    fn check_build(leaves: &[(B256, Vec<u8>)]) -> Vec<Call> {
        let (root, calls) = record(|s| build(leaves, s));
        let (want_root, want_calls) = record(|s| reference::build(leaves, s));
        assert_eq!(calls, want_calls);
        assert_eq!(root, want_root);
        calls
    }

    /// Both builders on `items`: same result, same sink calls.
    fn check_items(items: &[BuildItem<'_>]) -> Option<B256> {
        let (root, calls) = record(|s| build_items(items, s));
        let (want_root, want_calls) = record(|s| reference::build_items(items, s));
        assert_eq!(calls, want_calls);
        assert_eq!(root, want_root);
        root
    }

    /// Copies the first `n` nibbles of `from` into `to`.
    fn copy_nibbles(to: &mut [u8; 32], from: &B256, n: usize) {
        to[..n / 2].copy_from_slice(&from[..n / 2]);
        if n % 2 == 1 {
            to[n / 2] = (from[n / 2] & 0xf0) | (to[n / 2] & 0x0f);
        }
    }

    /// About `n` distinct sorted keys, many sharing long prefixes with others.
    fn random_keys(rng: &mut ChaCha8Rng, n: usize) -> Vec<B256> {
        let mut keys: Vec<B256> = Vec::with_capacity(n);
        for _ in 0..n {
            let mut k: [u8; 32] = rng.random();
            if !keys.is_empty() && rng.random_bool(0.6) {
                let other = keys[rng.random_range(0..keys.len())];
                let shared =
                    if rng.random_bool(0.5) { rng.random_range(54..64) } else { rng.random_range(0..64) };
                copy_nibbles(&mut k, &other, shared);
            }
            keys.push(B256::from(k));
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// A non-empty value, often 1..=3 bytes so that short nodes get embedded.
    fn random_value(rng: &mut ChaCha8Rng) -> Vec<u8> {
        let len = if rng.random_bool(0.3) { rng.random_range(1..=3) } else { rng.random_range(1..=100) };
        (0..len).map(|_| rng.random()).collect()
    }

    fn random_leaves(rng: &mut ChaCha8Rng, n: usize) -> Vec<(B256, Vec<u8>)> {
        random_keys(rng, n).into_iter().map(|k| (k, random_value(rng))).collect()
    }

    /// An owned [`BuildItem`].
    #[derive(Clone)]
    enum Owned {
        Leaf(B256, Vec<u8>),
        Subtree(Vec<u8>, B256),
    }

    fn borrow(items: &[Owned]) -> Vec<BuildItem<'_>> {
        items
            .iter()
            .map(|it| match it {
                Owned::Leaf(k, v) => BuildItem::Leaf(*k, v),
                Owned::Subtree(p, h) => BuildItem::Subtree(p, *h),
            })
            .collect()
    }

    /// Items covering `leaves` in order: runs of leaves replaced by the real trie's nodes over
    /// them (`nodes`: the non-root sink calls of a build), some leaves dropped; when `complete`,
    /// none dropped.
    fn random_items(
        rng: &mut ChaCha8Rng,
        leaves: &[(B256, Vec<u8>)],
        nodes: &[Call],
        complete: bool,
    ) -> Vec<Owned> {
        let mut items = Vec::new();
        let mut i = 0;
        while i < leaves.len() {
            let roll = rng.random_range(0..10);
            let under: Vec<&Call> = nodes.iter().filter(|c| c.1.start == i).collect();
            if roll < 4 && !under.is_empty() {
                let (path, range, _, hash) = under[rng.random_range(0..under.len())];
                items.push(Owned::Subtree(path.clone(), *hash));
                i = range.end;
            } else if roll == 4 && !complete {
                i += 1;
            } else {
                items.push(Owned::Leaf(leaves[i].0, leaves[i].1.clone()));
                i += 1;
            }
        }
        items
    }

    /// Damages `items` in one random way, which may or may not leave them well formed.
    fn mutate(rng: &mut ChaCha8Rng, items: &mut Vec<Owned>) {
        if items.is_empty() {
            return;
        }
        let i = rng.random_range(0..items.len());
        match rng.random_range(0..8) {
            0 if items.len() > 1 => {
                let j = rng.random_range(0..items.len());
                items.swap(i, j);
            }
            1 => items.insert(i, items[i].clone()),
            2 => {
                if let Owned::Leaf(_, v) = &mut items[i] {
                    v.clear();
                }
            }
            // (a path an earlier damage emptied is left alone)
            3 => {
                if let Owned::Subtree(p, _) = &mut items[i] {
                    if !p.is_empty() {
                        let keep = rng.random_range(0..p.len());
                        p.truncate(keep);
                    }
                }
            }
            4 => {
                if let Owned::Subtree(p, _) = &mut items[i] {
                    if !p.is_empty() {
                        let at = rng.random_range(0..p.len());
                        p[at] = rng.random_range(0..=16);
                    }
                }
            }
            5 => {
                if let Owned::Subtree(p, _) = &mut items[i] {
                    p.resize(rng.random_range(p.len()..=65), rng.random_range(0..16));
                }
            }
            6 => {
                let len = rng.random_range(1..=64);
                let path = (0..len).map(|_| rng.random_range(0..16)).collect();
                items.insert(i, Owned::Subtree(path, B256::from(rng.random::<[u8; 32]>())));
            }
            _ => {
                items.remove(i);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// `build` matches the reference on random key sets.
        #[test]
        fn build_matches_reference(seed in any::<u64>(), n in 1..3000usize) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            check_build(&random_leaves(&mut rng, n));
        }

        /// `build_items` matches the reference on leaves mixed with real subtrees, well formed
        /// (a complete cover gives the trie's root) or damaged.
        #[test]
        fn build_items_matches_reference(seed in any::<u64>(), n in 1..600usize) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let leaves = random_leaves(&mut rng, n);
            let mut calls = check_build(&leaves);
            let root = calls.pop().map(|c| c.3);
            let complete = random_items(&mut rng, &leaves, &calls, true);
            prop_assert_eq!(check_items(&borrow(&complete)), root);
            for _ in 0..8 {
                let mut items = random_items(&mut rng, &leaves, &calls, false);
                check_items(&borrow(&items));
                for _ in 0..rng.random_range(1..=3) {
                    mutate(&mut rng, &mut items);
                }
                check_items(&borrow(&items));
            }
        }

        /// Even unsorted (distinct) keys, outside `build`'s contract, give the same output.
        #[test]
        fn unsorted_build_matches_reference(seed in any::<u64>(), n in 1..60usize) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut leaves: Vec<(B256, Vec<u8>)> =
                (0..n).map(|_| (B256::from(rng.random::<[u8; 32]>()), random_value(&mut rng))).collect();
            leaves.shuffle(&mut rng);
            check_build(&leaves);
        }
    }

    /// Leaves of 32 bytes or more are hashed; shorter ones are embedded, so only their branch
    /// and the root get hashed.
    #[test]
    fn short_nodes_are_embedded() {
        // keys 0x1i1i..1i: they part at nibble 1
        let leaves: Vec<(B256, Vec<u8>)> =
            (0..16u8).map(|i| (B256::repeat_byte(0x10 | i), vec![i])).collect();
        let calls = check_build(&leaves);
        assert_eq!(calls.len(), 1 + 16 + 1, "16 leaves hashed at depth 1, one branch, the root");
        let last16: Vec<(B256, Vec<u8>)> = (0..16u8)
            .map(|i| {
                let mut k = [0x5a; 32];
                k[31] = 0x50 | i;
                (B256::from(k), vec![i])
            })
            .collect();
        let calls = check_build(&last16);
        assert_eq!(calls.len(), 2, "the branch at depth 63 and the root extension");
        assert_eq!(calls[0].0.len(), 63);
    }

    /// Edge shapes: one leaf, two leaves differing in the last nibble, a lone subtree, an
    /// empty input.
    #[test]
    fn edge_shapes() {
        check_build(&[(B256::ZERO, vec![1])]);
        check_build(&[(B256::ZERO, vec![0x80; 60])]);
        let mut one = [0u8; 32];
        one[31] = 1;
        check_build(&[(B256::ZERO, vec![1]), (B256::from(one), vec![2])]);
        assert_eq!(build(&Vec::<(B256, Vec<u8>)>::new(), &mut |_| panic!()), EMPTY_ROOT);
        assert_eq!(check_items(&[]), Some(EMPTY_ROOT));
        let path = [3u8; 64];
        for len in [1, 2, 63, 64] {
            check_items(&[BuildItem::Subtree(&path[..len], B256::repeat_byte(9))]);
        }
        check_items(&[BuildItem::Subtree(&[], B256::ZERO)]);
        check_items(&[BuildItem::Leaf(B256::ZERO, &[])]);
    }
}
