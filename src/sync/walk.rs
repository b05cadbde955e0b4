//! The completion check: walk the whole trie at the pivot root from the store, every node,
//! every storage trie and every code, before declaring the sync done.

use crate::account::Account;
use crate::primitives::{B256, EMPTY_CODE, EMPTY_ROOT};
use crate::store::SyncStore;
use crate::trie::db::HashKeyed;
use crate::trie::node::{Node, NodeView, RefView};
use crate::trie::walk::WalkError;

/// Counts from a complete walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WalkStats {
    /// Trie nodes visited (hashed ones).
    pub nodes: u64,
    /// Accounts.
    pub accounts: u64,
    /// Storage slots (each distinct storage trie counted once).
    pub slots: u64,
}

/// Why the state at a root is incomplete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncompleteState {
    /// A node is missing or corrupt.
    #[error(transparent)]
    Trie(#[from] WalkError),
    /// An account leaf does not decode.
    #[error("an account leaf does not decode")]
    BadAccount,
    /// Code is missing.
    #[error("code {0} missing")]
    MissingCode(B256),
}

/// Nodes looked up together: enough to keep many cache misses in flight, few enough that what
/// was fetched first is still cached when it is decoded.
const BATCH: usize = 64;

/// Walks the state trie at `root` and every storage trie; all must be present. Decodes
/// without allocating, walks each distinct storage trie once and checks each distinct code
/// once.
///
/// Every lookup is a cache miss, so the walk is depth-first in batches: it takes the [`BATCH`]
/// hashes on top of its stack, looks their nodes up together ([`SyncStore::nodes`], which
/// overlaps the misses), decodes them top first, and stacks their children so that those of the
/// first decoded come next, in key order (an embedded node is decoded with its parent). The
/// index entries of the next batch are prefetched as its hashes are found. The order depends
/// on the trie alone, so an incomplete state always reports the same first problem.
pub fn verify_complete(store: &dyn SyncStore, root: B256) -> Result<WalkStats, IncompleteState> {
    let mut walk = Walk {
        store,
        stats: WalkStats::default(),
        seen_storage: HashKeyed::default(),
        seen_code: HashKeyed::default(),
        children: Vec::new(),
    };
    if root == EMPTY_ROOT {
        return Ok(walk.stats);
    }
    // the hashes still to visit (the next on top), and whether each is in the account trie
    let mut stack = vec![root];
    let mut in_accounts = vec![true];
    let mut found = Vec::with_capacity(BATCH);
    while !stack.is_empty() {
        let from = stack.len().saturating_sub(BATCH);
        found.clear();
        store.nodes(&stack[from..], &mut found);
        for i in (from..stack.len()).rev() {
            walk.stats.nodes += 1;
            let rlp = found.get(i - from).copied().flatten().ok_or(WalkError::Missing(stack[i]))?;
            walk.visit(rlp, in_accounts[i])?;
        }
        stack.truncate(from);
        in_accounts.truncate(from);
        for (hash, account_trie) in walk.children.drain(..).rev() {
            stack.push(hash);
            in_accounts.push(account_trie);
        }
    }
    Ok(walk.stats)
}

/// The state of a [`verify_complete`] walk.
struct Walk<'s> {
    store: &'s dyn SyncStore,
    stats: WalkStats,
    /// Storage roots already queued.
    seen_storage: HashKeyed<()>,
    /// Codes already found.
    seen_code: HashKeyed<()>,
    /// The hashed children of the batch being decoded, in visiting order, and whether each is
    /// in the account trie.
    children: Vec<(B256, bool)>,
}

impl<'s> Walk<'s> {
    /// Decodes a node (of the account trie or a storage trie) and queues its children.
    fn visit(&mut self, rlp: &'s [u8], account_trie: bool) -> Result<(), IncompleteState> {
        let queued = self.children.len();
        if plain_branch(rlp, account_trie, &mut self.children) {
            self.prefetch_next_batch(queued);
            return Ok(());
        }
        if let Some(value) = plain_leaf(rlp) {
            self.leaf(value, account_trie)?;
            self.prefetch_next_batch(queued);
            return Ok(());
        }
        match Node::view(rlp).map_err(WalkError::from)? {
            NodeView::Leaf(_, value) => self.leaf(value, account_trie)?,
            NodeView::Extension(_, child) => self.child(child, account_trie)?,
            NodeView::Branch(children) => {
                for child in children.into_iter().flatten() {
                    self.child(child, account_trie)?;
                }
            }
        }
        self.prefetch_next_batch(queued);
        Ok(())
    }

    /// A child reference: a hash is queued; an embedded node is decoded at once (shorter than
    /// a hash, it embeds no hashes, so nothing of it is queued and its parent bounds its
    /// nesting).
    fn child(&mut self, child: RefView<'s>, account_trie: bool) -> Result<(), IncompleteState> {
        match child {
            RefView::Hash(hash) => self.children.push((hash, account_trie)),
            RefView::Inline(rlp) => self.visit(rlp, account_trie)?,
        }
        Ok(())
    }

    /// A leaf's value. An account's code must be present and its storage trie is queued (each
    /// distinct code and storage root once).
    fn leaf(&mut self, value: &[u8], account_trie: bool) -> Result<(), IncompleteState> {
        if !account_trie {
            self.stats.slots += 1;
            return Ok(());
        }
        self.stats.accounts += 1;
        let acc = Account::decode_full(value).map_err(|_| IncompleteState::BadAccount)?;
        if acc.code_hash != EMPTY_CODE && self.seen_code.insert(acc.code_hash, ()).is_none() {
            self.store.code(&acc.code_hash).ok_or(IncompleteState::MissingCode(acc.code_hash))?;
        }
        if acc.storage_root != EMPTY_ROOT && self.seen_storage.insert(acc.storage_root, ()).is_none() {
            self.children.push((acc.storage_root, false));
        }
        Ok(())
    }

    /// Hints the store to start fetching the index entries of the children queued from
    /// `queued` on that the next batch will look up.
    fn prefetch_next_batch(&self, queued: usize) {
        let next_batch = self.children.len().min(BATCH);
        for (hash, _) in self.children.get(queued..next_batch).unwrap_or_default() {
            self.store.prefetch_node(hash);
        }
    }
}

/// Queues the children of a branch node in the shape of (nearly) every branch of a state trie
/// (canonical RLP, each child a hash or empty, no value) straight from its bytes, in key order,
/// and returns true; for anything else it queues nothing and returns false, leaving the node
/// to [`Node::view`] (which decodes such a branch to the same children).
fn plain_branch(rlp: &[u8], account_trie: bool, out: &mut Vec<(B256, bool)>) -> bool {
    let queued = out.len();
    let plain = push_plain_children(rlp, account_trie, out).is_some();
    if !plain {
        out.truncate(queued);
    }
    plain
}

/// [`plain_branch`]'s parse: `None` where the node is not such a branch (having pushed some
/// children maybe).
fn push_plain_children(rlp: &[u8], account_trie: bool, out: &mut Vec<(B256, bool)>) -> Option<()> {
    let mut at = list_payload_start(rlp)?;
    for _ in 0..16 {
        match *rlp.get(at)? {
            0x80 => at += 1,
            0xa0 => {
                let hash = rlp.get(at + 1..at + 33)?;
                out.push((B256::from_slice(hash), account_trie));
                at += 33;
            }
            _ => return None,
        }
    }
    // then an empty value, ending the node
    (rlp.get(at..)? == [0x80]).then_some(())
}

/// The value of a leaf node in its usual shape (canonical RLP: a list of a string path with a
/// leaf flag and a string value, each under 64 KiB); `None` for anything else, which
/// [`Node::view`] then decodes (to a leaf with the same value, or not to a leaf).
fn plain_leaf(rlp: &[u8]) -> Option<&[u8]> {
    let start = list_payload_start(rlp)?;
    let (path, at) = string_item(rlp, start)?;
    // the hex-prefix flag of a leaf: 2 (even path) or 3 (odd path)
    if !matches!(path.first()? >> 4, 2 | 3) {
        return None;
    }
    let (value, end) = string_item(rlp, at)?;
    (end == rlp.len()).then_some(value)
}

/// The payload of the canonically encoded RLP string at `at` in `rlp` (under 64 KiB), and
/// where the next item starts.
fn string_item(rlp: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let (start, len) = match *rlp.get(at)? {
        0..=0x7f => (at, 1),
        b @ 0x80..=0xb7 => {
            let len = usize::from(b - 0x80);
            // a single byte below 0x80 is its own encoding
            if len == 1 && *rlp.get(at + 1)? < 0x80 {
                return None;
            }
            (at + 1, len)
        }
        0xb8 => match *rlp.get(at + 1)? {
            len @ 56.. => (at + 2, usize::from(len)),
            _ => return None,
        },
        0xb9 => match (*rlp.get(at + 1)?, *rlp.get(at + 2)?) {
            (0, _) => return None,
            (hi, lo) => (at + 3, usize::from(u16::from_be_bytes([hi, lo]))),
        },
        _ => return None,
    };
    Some((rlp.get(start..start + len)?, start + len))
}

/// Where the payload of `rlp` starts, when `rlp` is one canonically encoded RLP list (payload
/// under 64 KiB: any branch or leaf) with nothing after it.
fn list_payload_start(rlp: &[u8]) -> Option<usize> {
    let (start, len) = match *rlp.first()? {
        b @ 0xc0..=0xf7 => (1, usize::from(b - 0xc0)),
        0xf8 => match *rlp.get(1)? {
            len @ 56.. => (2, usize::from(len)),
            _ => return None,
        },
        0xf9 => match (*rlp.get(1)?, *rlp.get(2)?) {
            (0, _) => return None,
            (hi, lo) => (3, usize::from(u16::from_be_bytes([hi, lo]))),
        },
        _ => return None,
    };
    (start + len == rlp.len()).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::{keccak256, Bytes, U256};
    use crate::store::{MemStore, WriteBatch};
    use crate::trie::build::build;
    use crate::trie::root::storage_value_rlp;

    /// A state to walk: its root, every hashed node, and its codes.
    struct State {
        root: B256,
        nodes: Vec<(B256, Vec<u8>)>,
        codes: Vec<(B256, Bytes)>,
        /// Distinct storage roots and codes, to count what the walk must visit.
        storage_slots: u64,
    }

    /// The trie of `leaves` (sorted here), its nodes appended to `nodes`.
    fn trie(mut leaves: Vec<(B256, Vec<u8>)>, nodes: &mut Vec<(B256, Vec<u8>)>) -> B256 {
        leaves.sort();
        build(&leaves, &mut |n| nodes.push((n.hash, n.rlp.to_vec())))
    }

    /// `n` slots of storage trie number `seed`.
    fn storage(seed: u64, n: u64) -> Vec<(B256, Vec<u8>)> {
        (0..n)
            .map(|i| (keccak256((seed * 1000 + i).to_be_bytes()), storage_value_rlp(U256::from(i + 1))))
            .collect()
    }

    /// Sixteen slots whose keys differ in the last nibble only: an extension above a branch of
    /// embedded leaves (nodes shorter than a hash).
    fn embedded_storage() -> Vec<(B256, Vec<u8>)> {
        (0..16u8)
            .map(|i| {
                let mut key = B256::repeat_byte(0x42);
                key[31] = 0x40 | i;
                (key, storage_value_rlp(U256::from(u64::from(i) + 1)))
            })
            .collect()
    }

    /// 300 accounts: every tenth has storage (two share a storage trie, one has the embedded
    /// one) and code (shared by several), `bad` (if any) has an undecodable body.
    fn state(bad: Option<usize>) -> State {
        let mut nodes = Vec::new();
        let shared = trie(storage(1, 40), &mut nodes);
        let embedded = trie(embedded_storage(), &mut nodes);
        let codes: Vec<(B256, Bytes)> = (0..3u8)
            .map(|i| {
                let code = Bytes::from(vec![0x60, i, 0x00]);
                (keccak256(&code), code)
            })
            .collect();
        let mut storage_slots = 40 + 16;
        let accounts: Vec<(B256, Vec<u8>)> = (0..300u64)
            .map(|i| {
                let mut acc = Account { nonce: i, balance: U256::from(i * 7), ..Default::default() };
                if i % 10 == 0 {
                    acc.code_hash = codes[(i / 10) as usize % codes.len()].0;
                    acc.storage_root = match i {
                        0 | 100 => shared,
                        50 => embedded,
                        _ => {
                            storage_slots += 1 + i / 8;
                            trie(storage(i, 1 + i / 8), &mut nodes)
                        }
                    };
                }
                let body = if bad == Some(i as usize) { vec![0xc1, 0xc0] } else { acc.encode_full() };
                (keccak256(i.to_be_bytes()), body)
            })
            .collect();
        let root = trie(accounts, &mut nodes);
        nodes.sort();
        nodes.dedup();
        State { root, nodes, codes, storage_slots }
    }

    /// A store holding `state` but for the node `without` and the codes `without_code`.
    fn store(state: &State, without: Option<B256>, without_code: Option<B256>) -> MemStore {
        let mut store = MemStore::default();
        store.commit(WriteBatch {
            nodes: state.nodes.iter().filter(|(h, _)| Some(*h) != without).cloned().collect(),
            codes: state.codes.iter().filter(|(h, _)| Some(*h) != without_code).cloned().collect(),
            ..Default::default()
        });
        store
    }

    #[test]
    fn counts_a_complete_state() {
        let state = state(None);
        let stats = verify_complete(&store(&state, None, None), state.root).unwrap();
        assert_eq!(
            stats,
            WalkStats { nodes: state.nodes.len() as u64, accounts: 300, slots: state.storage_slots }
        );
        assert_eq!(verify_complete(&MemStore::default(), EMPTY_ROOT), Ok(WalkStats::default()));
    }

    /// Any missing node (interior, leaf, storage root, the root itself) is reported.
    #[test]
    fn reports_each_missing_node() {
        let state = state(None);
        for (hash, _) in &state.nodes {
            let store = store(&state, Some(*hash), None);
            assert_eq!(
                verify_complete(&store, state.root),
                Err(IncompleteState::Trie(WalkError::Missing(*hash))),
                "node {hash}"
            );
        }
    }

    #[test]
    fn reports_missing_code_and_bad_accounts() {
        let state_ok = state(None);
        for (code, _) in &state_ok.codes {
            let store = store(&state_ok, None, Some(*code));
            assert_eq!(verify_complete(&store, state_ok.root), Err(IncompleteState::MissingCode(*code)));
        }
        for bad in [0, 17, 299] {
            let state = state(Some(bad));
            let store = store(&state, None, None);
            assert_eq!(verify_complete(&store, state.root), Err(IncompleteState::BadAccount));
        }
    }

    #[test]
    fn reports_undecodable_nodes() {
        let state = state(None);
        for (hash, _) in state.nodes.iter().step_by(7) {
            let mut store = store(&state, Some(*hash), None);
            store.put_node(*hash, &[0xc3, 0x80, 0x80, 0x80]);
            assert!(
                matches!(verify_complete(&store, state.root), Err(IncompleteState::Trie(WalkError::Bad(_)))),
                "node {hash}"
            );
        }
    }

    /// A store with only the required methods: lookups one by one, no hints.
    struct Plain(MemStore);

    impl crate::trie::db::NodeSource for Plain {
        fn node(&self, hash: &B256) -> Option<&[u8]> {
            self.0.node(hash)
        }
    }

    impl SyncStore for Plain {
        fn code(&self, hash: &B256) -> Option<&[u8]> {
            self.0.code(hash)
        }
        fn accounts_in(&self, from: &B256, to: &B256) -> Vec<(B256, Account)> {
            self.0.accounts_in(from, to)
        }
        fn slots_of(&self, account: &B256) -> &[(B256, crate::store::SlotValue)] {
            self.0.slots_of(account)
        }
        fn progress(&self) -> Option<&[u8]> {
            self.0.progress()
        }
        fn meta(&self, key: &str) -> Option<&[u8]> {
            self.0.meta(key)
        }
        fn commit(&mut self, batch: WriteBatch) {
            self.0.commit(batch)
        }
        fn put_node(&mut self, hash: B256, rlp: &[u8]) {
            self.0.put_node(hash, rlp)
        }
    }

    #[test]
    fn default_lookups_give_the_same_answers() {
        let state = state(None);
        let full = store(&state, None, None);
        assert_eq!(verify_complete(&Plain(full.clone()), state.root), verify_complete(&full, state.root));
        let missing = state.nodes[state.nodes.len() / 2].0;
        assert_eq!(
            verify_complete(&Plain(store(&state, Some(missing), None)), state.root),
            Err(IncompleteState::Trie(WalkError::Missing(missing)))
        );
    }

    /// Bytes that mean something in RLP (and some that do not), to put anywhere.
    const BYTES: [u8; 14] =
        [0x00, 0x01, 0x37, 0x38, 0x7f, 0x80, 0x81, 0xa0, 0xb8, 0xb9, 0xc0, 0xf8, 0xf9, 0xff];

    /// Node encodings to parse: those of the test state, their embedded nodes, and variants
    /// of each (every byte changed several ways, cut short, extended).
    fn encodings() -> Vec<Vec<u8>> {
        let state = state(None);
        let mut nodes: Vec<Vec<u8>> = state.nodes.into_iter().map(|(_, rlp)| rlp).collect();
        let embedded: Vec<Vec<u8>> = nodes
            .iter()
            .filter_map(|rlp| match Node::view(rlp) {
                Ok(NodeView::Branch(children)) => Some(children),
                _ => None,
            })
            .flat_map(|children| children.into_iter().flatten())
            .filter_map(|c| match c {
                RefView::Inline(rlp) => Some(rlp.to_vec()),
                RefView::Hash(_) => None,
            })
            .collect();
        assert!(embedded.len() >= 16, "the test state embeds nodes");
        nodes.extend(embedded);
        nodes.truncate(400);
        let mut variants = Vec::new();
        for rlp in &nodes {
            variants.extend(reencoded(rlp));
            for i in 0..rlp.len() {
                for b in BYTES {
                    let mut v = rlp.clone();
                    v[i] = b;
                    variants.push(v);
                }
                variants.push(rlp[..i].to_vec());
            }
            let mut longer = rlp.clone();
            longer.push(0x80);
            variants.push(longer);
        }
        nodes.extend(variants);
        nodes
    }

    /// An RLP header for `len` bytes: `short` (0x80 strings, 0xc0 lists) and `long` (0xb7,
    /// 0xf7) the codes of each form; non-canonical when `long_form` is chosen for a short
    /// length (or padded with a zero byte when the length needs the long form anyway).
    fn header(len: usize, short: u8, long: u8, long_form: bool) -> Vec<u8> {
        match (len, long_form) {
            (0..=55, false) => vec![short + len as u8],
            (0..=255, true) if len < 56 => vec![long + 1, len as u8],
            (_, true) => vec![long + 3, 0, (len >> 8) as u8, len as u8],
            _ => vec![long + 2, (len >> 8) as u8, len as u8],
        }
    }

    fn string(bytes: &[u8], long_form: bool, spell_single: bool) -> Vec<u8> {
        if bytes.len() == 1 && bytes[0] < 0x80 && !spell_single && !long_form {
            return bytes.to_vec();
        }
        let mut out = header(bytes.len(), 0x80, 0xb7, long_form);
        out.extend_from_slice(bytes);
        out
    }

    fn list(payload: &[u8], long_form: bool) -> Vec<u8> {
        let mut out = header(payload.len(), 0xc0, 0xf7, long_form);
        out.extend_from_slice(payload);
        out
    }

    /// `rlp` spelled otherwise: non-canonical headers, an extra item in its list, and for a
    /// leaf its path and value each spelled every way.
    fn reencoded(rlp: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if let Some(start) = list_payload_start(rlp) {
            let payload = &rlp[start..];
            out.push(list(payload, true));
            out.push(list(&[payload, &[0x80]].concat(), false));
            out.push(list(&[payload, &[0x80, 0x80]].concat(), false));
        }
        if let Ok(NodeView::Leaf(path, value)) = Node::view(rlp) {
            for form in 0..9 {
                let path = string(path, form % 3 == 1, form % 3 == 2);
                let value = string(value, form / 3 == 1, form / 3 == 2);
                out.push(list(&[path, value].concat(), false));
            }
        }
        out
    }

    /// The fast paths accept only what `Node::view` decodes the same way, and take the usual
    /// branches and leaves.
    #[test]
    fn fast_paths_agree_with_node_view() {
        let (mut branches, mut leaves) = (0, 0);
        for rlp in encodings() {
            let view = Node::view(&rlp);
            let mut children = Vec::new();
            if plain_branch(&rlp, true, &mut children) {
                let Ok(NodeView::Branch(all)) = view else { panic!("{rlp:x?} is not a branch: {view:?}") };
                let want: Vec<(B256, bool)> = all
                    .into_iter()
                    .flatten()
                    .map(|c| match c {
                        RefView::Hash(h) => (h, true),
                        RefView::Inline(_) => panic!("{rlp:x?}: embedded child taken as a hash"),
                    })
                    .collect();
                assert_eq!(children, want, "{rlp:x?}");
                branches += 1;
            } else {
                assert!(children.is_empty(), "{rlp:x?}");
                assert!(
                    !matches!(view, Ok(NodeView::Branch(c)) if c.iter().flatten().all(|c| matches!(c, RefView::Hash(_)))
                        && rlp.ends_with(&[0x80]) && list_payload_start(&rlp).is_some()),
                    "{rlp:x?}: a plain branch not taken"
                );
            }
            if let Some(value) = plain_leaf(&rlp) {
                assert!(matches!(view, Ok(NodeView::Leaf(_, v)) if v == value), "{rlp:x?}: {view:?}");
                leaves += 1;
            }
        }
        assert!(branches > 100 && leaves > 1000, "{branches} branches, {leaves} leaves");
    }
}
