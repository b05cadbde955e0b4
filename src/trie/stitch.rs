//! Generating a task's trie nodes from the nodes its verified ranges already produced.
//!
//! Verifying a range rebuilds the range's part of the trie ([`verify_range_nodes`]); the nodes
//! whose whole subtree lies inside the range are then exact, so they are stored at once (or
//! held while an account under them still lacks storage or code). Once the task's key span
//! is complete, [`RangeNodes::generate`] builds only the nodes above those subtrees, taking
//! each subtree by its hash instead of re-hashing its leaves; leaves no verified range
//! covered (after a restart this is all of them) are built from the flat data as before.
//!
//! [`verify_range_nodes`]: crate::trie::range::verify_range_nodes

use crate::primitives::B256;
use crate::trie::batch::NodeBatch;
use crate::trie::build::{build_items, BuildItem, BuiltNode};
use std::collections::BTreeMap;
use std::ops::Range;

/// A maximal subtree of one verified range: every leaf under it came in that range.
#[derive(Debug, Clone)]
struct Exact {
    path: Vec<u8>,
    hash: B256,
    first: B256,
    last: B256,
    leaves: usize,
}

/// A node not written yet because an account under it lacked storage or code.
#[derive(Debug, Clone)]
struct Held {
    first: B256,
    last: B256,
    hash: B256,
    rlp: Vec<u8>,
}

/// A reported node: (path, leaf indices, hash, rlp), path and rlp as ranges of
/// [`Collected`]'s byte buffer.
type Reported = (Range<usize>, Range<usize>, B256, Range<usize>);

/// Nodes a range verification reported, children first. Paths and RLP are appended to one
/// buffer (no allocation per node); [`RangeNodes::add`] copies out only what it keeps.
#[derive(Debug, Default)]
pub struct Collected {
    nodes: Vec<Reported>,
    bytes: Vec<u8>,
}

impl Collected {
    /// Bytes reserved per node: a short path and a typical node's RLP.
    const BYTES_PER_NODE: usize = 96;

    /// Room for `n` nodes (a range of `k` leaves reports fewer than `2k`).
    pub fn with_capacity(n: usize) -> Self {
        Self { nodes: Vec::with_capacity(n), bytes: Vec::with_capacity(n * Self::BYTES_PER_NODE) }
    }

    /// Forgets every node, keeping the buffers.
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.bytes.clear();
    }

    /// Makes room for `n` more nodes.
    pub fn reserve(&mut self, n: usize) {
        self.nodes.reserve(n);
        self.bytes.reserve(n * Self::BYTES_PER_NODE);
    }

    /// Records one reported node.
    pub fn push(&mut self, n: BuiltNode<'_>) {
        let path = self.bytes.len()..self.bytes.len() + n.path.len();
        self.bytes.extend_from_slice(n.path);
        let rlp = self.bytes.len()..self.bytes.len() + n.rlp.len();
        self.bytes.extend_from_slice(n.rlp);
        self.nodes.push((path, n.leaves, n.hash, rlp));
    }
}

/// The verified ranges of one task (an account chunk, or one contract's storage), kept in
/// memory until the task's key span is complete. Losing them (a restart) costs only hashing.
#[derive(Debug, Default, Clone)]
pub struct RangeNodes {
    /// What the ranges were verified against (a storage root; zero for account chunks).
    pub tag: B256,
    subtrees: Vec<Exact>,
    held: Vec<Held>,
}

/// The per-task [`RangeNodes`] of a downloader.
#[derive(Debug, Default, Clone)]
pub struct TaskRanges {
    /// By account chunk index.
    pub accounts: BTreeMap<usize, RangeNodes>,
    /// By account hash.
    pub storage: BTreeMap<B256, RangeNodes>,
}

impl RangeNodes {
    /// No ranges yet, for ranges verified against `tag`.
    pub fn new(tag: B256) -> Self {
        Self { tag, ..Self::default() }
    }

    /// Takes in the nodes of a verified range whose leaves are `keys`, of which the first
    /// `kept` belong to the task. Nodes over kept leaves only are written to `out` when no
    /// leaf under them is `dirty`, else held for [`RangeNodes::generate`].
    pub fn add(
        &mut self,
        nodes: &Collected,
        keys: &[B256],
        kept: usize,
        dirty: &dyn Fn(usize) -> bool,
        out: &mut NodeBatch,
    ) {
        let mut dirty_before = Vec::with_capacity(kept + 1);
        dirty_before.push(0u32);
        for i in 0..kept {
            dirty_before.push(dirty_before[i] + u32::from(dirty(i)));
        }
        // (leaves, path in `nodes.bytes`, exact subtree without its path yet)
        let mut maximal: Vec<(Range<usize>, Range<usize>, Exact)> = Vec::new();
        for (path, leaves, hash, rlp) in nodes.nodes.iter().cloned() {
            if leaves.is_empty() || leaves.end > kept {
                continue;
            }
            // children come first: the ones this node covers are no longer maximal
            while maximal.last().is_some_and(|(r, _, _)| r.start >= leaves.start && r.end <= leaves.end) {
                maximal.pop();
            }
            let (first, last) = (keys[leaves.start], keys[leaves.end - 1]);
            let exact = Exact { path: Vec::new(), hash, first, last, leaves: leaves.len() };
            if dirty_before[leaves.end] == dirty_before[leaves.start] {
                out.push(hash, &nodes.bytes[rlp]);
            } else {
                self.held.push(Held { first, last, hash, rlp: nodes.bytes[rlp].to_vec() });
            }
            maximal.push((leaves, path, exact));
        }
        self.subtrees.extend(maximal.into_iter().map(|(_, path, mut e)| {
            e.path = nodes.bytes[path].to_vec();
            e
        }));
    }

    /// Builds the task's trie over `leaves` (its whole flat key span, in key order): verified
    /// subtrees whose leaves are all still there and all `clean` stand in by hash (their held
    /// nodes are written); other leaves are built, and only their values are asked for. A
    /// built node goes to `out` when `keep` accepts its path and every leaf under it is clean.
    pub fn generate<L: Leaves + ?Sized>(
        mut self,
        leaves: &L,
        clean: &dyn Fn(usize) -> bool,
        keep: &dyn Fn(&[u8]) -> bool,
        out: &mut NodeBatch,
    ) {
        self.subtrees.sort_by_key(|e| e.first);
        // what to build: a verified subtree (by index) or a leaf (by index)
        enum Plan {
            Subtree(usize),
            Leaf(usize),
        }
        let mut plan: Vec<Plan> = Vec::with_capacity(self.subtrees.len() + 1024);
        let mut item_dirty: Vec<bool> = Vec::with_capacity(plan.capacity());
        let mut released: Vec<(B256, B256)> = Vec::new();
        let (mut i, mut s) = (0, 0);
        let n = leaves.count();
        while i < n {
            let key = leaves.key(i);
            while s < self.subtrees.len() && self.subtrees[s].first < key {
                s += 1; // a subtree whose first leaf is gone (or already passed)
            }
            if let Some(sub) = self.subtrees.get(s).filter(|sub| sub.first == key) {
                let mut j = i;
                while j < n && leaves.key(j) <= sub.last {
                    j += 1;
                }
                if j - i == sub.leaves && (i..j).all(clean) {
                    plan.push(Plan::Subtree(s));
                    item_dirty.push(false);
                    released.push((sub.first, sub.last));
                    s += 1;
                    i = j;
                    continue;
                }
                s += 1;
            }
            plan.push(Plan::Leaf(i));
            item_dirty.push(!clean(i));
            i += 1;
        }
        // the values of the leaves to build, in one buffer
        let mut values = Vec::new();
        let mut ends = Vec::new();
        for p in &plan {
            if let Plan::Leaf(i) = p {
                leaves.value_into(*i, &mut values);
                ends.push(values.len());
            }
        }
        let mut start = 0;
        let mut next_value = ends.iter().map(|&end| {
            let v = &values[start..end];
            start = end;
            v
        });
        let items: Vec<BuildItem<'_>> = plan
            .iter()
            .map(|p| match *p {
                Plan::Subtree(s) => BuildItem::Subtree(&self.subtrees[s].path, self.subtrees[s].hash),
                Plan::Leaf(i) => BuildItem::Leaf(leaves.key(i), next_value.next().unwrap_or_default()),
            })
            .collect();
        let before = out.len();
        if !build_dirty_aware(&items, &item_dirty, keep, out) {
            // malformed subtrees (cannot happen for verified ranges): build every leaf
            out.truncate(before);
            released.clear();
            let mut values = Vec::new();
            let mut ends = Vec::with_capacity(n);
            for i in 0..n {
                leaves.value_into(i, &mut values);
                ends.push(values.len());
            }
            let items: Vec<BuildItem<'_>> = (0..n)
                .map(|i| {
                    BuildItem::Leaf(leaves.key(i), &values[i.checked_sub(1).map_or(0, |p| ends[p])..ends[i]])
                })
                .collect();
            let dirty: Vec<bool> = (0..n).map(|i| !clean(i)).collect();
            build_dirty_aware(&items, &dirty, keep, out);
        }
        for h in self.held {
            let at = released.partition_point(|(first, _)| *first <= h.first);
            if at > 0 && released[at - 1].1 >= h.last {
                out.push(h.hash, &h.rlp);
            }
        }
    }
}

/// The leaves [`RangeNodes::generate`] builds over, in key order: every key, and a leaf's
/// value only when it is built (most leaves stand in verified subtrees, so a source that must
/// encode its values, as flat accounts must, encodes few).
pub trait Leaves {
    /// Number of leaves.
    fn count(&self) -> usize;
    /// Key of leaf `i`.
    fn key(&self, i: usize) -> B256;
    /// Appends the value of leaf `i` to `out`.
    fn value_into(&self, i: usize, out: &mut Vec<u8>);
}

impl<V: AsRef<[u8]>> Leaves for [(B256, V)] {
    fn count(&self) -> usize {
        self.len()
    }
    fn key(&self, i: usize) -> B256 {
        self[i].0
    }
    fn value_into(&self, i: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(self[i].1.as_ref());
    }
}

/// Builds `items`, writing each built node that `keep` accepts and that has no dirty item
/// under it. False when the items are malformed.
fn build_dirty_aware(
    items: &[BuildItem<'_>],
    dirty: &[bool],
    keep: &dyn Fn(&[u8]) -> bool,
    out: &mut NodeBatch,
) -> bool {
    let mut dirty_before = Vec::with_capacity(dirty.len() + 1);
    dirty_before.push(0u32);
    for (i, d) in dirty.iter().enumerate() {
        dirty_before.push(dirty_before[i] + u32::from(*d));
    }
    build_items(items, &mut |n| {
        if dirty_before[n.leaves.end] == dirty_before[n.leaves.start] && keep(n.path) {
            out.push(n.hash, n.rlp);
        }
    })
    .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::keccak256;
    use crate::trie::build::build;
    use crate::trie::range::{prove_range, verify_range_nodes};
    use crate::trie::MemNodes;
    use std::collections::BTreeSet;

    fn leaves(n: u32) -> Vec<(B256, Vec<u8>)> {
        let mut v: Vec<(B256, Vec<u8>)> =
            (0..n).map(|i| (keccak256(i.to_be_bytes()), vec![0x42; 40 + (i % 7) as usize])).collect();
        v.sort();
        v
    }

    /// Ranges verified in pieces, then generated, store exactly the nodes a whole build does.
    #[test]
    fn stitched_equals_whole_build() {
        for (n, piece, dirty_every) in
            [(1u32, 1usize, 0usize), (40, 7, 0), (500, 61, 0), (500, 33, 17), (2000, 450, 101)]
        {
            let all = leaves(n);
            let mut db = MemNodes::default();
            let mut whole = BTreeSet::new();
            let root = build(&all, &mut |b| {
                db.insert_hashed(b.hash, b.rlp);
                whole.insert(b.hash);
            });
            let dirty = |i: usize| dirty_every > 0 && i % dirty_every == 3;
            let mut ranges = RangeNodes::default();
            let mut out = NodeBatch::default();
            let mut start = 0;
            while start < all.len() {
                let end = (start + piece).min(all.len());
                let origin = if start == 0 { B256::ZERO } else { all[start].0 };
                let keys: Vec<B256> = all[start..end].iter().map(|l| l.0).collect();
                let values: Vec<&[u8]> = all[start..end].iter().map(|l| &l.1[..]).collect();
                let proof = if start == 0 && end == all.len() {
                    Vec::new()
                } else {
                    prove_range(&db, root, &origin, keys.last()).unwrap()
                };
                let mut got = Collected::default();
                verify_range_nodes(root, &origin, &keys, &values, &proof, &mut |b| got.push(b)).unwrap();
                ranges.add(&got, &keys, keys.len(), &|i| dirty(start + i), &mut out);
                start = end;
            }
            // before generation nothing above a dirty leaf was written
            assert!(out.iter().all(|(h, _)| whole.contains(h)));
            ranges.generate(&all[..], &|_| true, &|_| true, &mut out);
            let stored: BTreeSet<B256> = out
                .iter()
                .map(|(h, rlp)| {
                    assert_eq!(keccak256(rlp), *h);
                    *h
                })
                .collect();
            assert_eq!(stored, whole, "n={n} piece={piece}");
        }
    }

    /// A leaf still dirty at generation keeps every node above it out.
    #[test]
    fn dirty_leaf_keeps_ancestors_out() {
        let all = leaves(300);
        let mut ranges = RangeNodes::default();
        let mut got = Collected::default();
        let keys: Vec<B256> = all.iter().map(|l| l.0).collect();
        let root = verify_range_nodes(
            build(&all, &mut |_| {}),
            &B256::ZERO,
            &keys,
            &all.iter().map(|l| &l.1[..]).collect::<Vec<_>>(),
            &Vec::<Vec<u8>>::new(),
            &mut |b| got.push(b),
        );
        assert_eq!(root, Ok(false));
        let mut out = NodeBatch::default();
        ranges.add(&got, &keys, keys.len(), &|i| i == 10, &mut out);
        ranges.generate(&all[..], &|i| i != 10, &|_| true, &mut out);
        let whole_root = build(&all, &mut |_| {});
        assert!(out.iter().all(|(h, _)| *h != whole_root));
        assert!(!out.is_empty());
    }
}
