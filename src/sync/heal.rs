//! Trie healing: fetch, by path, every node of the target root the store lacks. A node is
//! committed only once all its children are stored, so a stored node always has a complete
//! subtree (storage tries and code under account leaves included).

use crate::account::Account;
use crate::primitives::{keccak256, B256, EMPTY_CODE, EMPTY_ROOT};
use crate::store::{SlotValue, SyncStore, WriteBatch};
use crate::trie::db::HashKeyed;
use crate::trie::nibbles::{hex_prefix_encode, pack};
use crate::trie::node::{ChildRef, Node};
use std::cmp::Reverse;
use std::collections::BTreeMap;

/// Where a missing node sits: account trie path, or (account, storage trie path).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HealPath {
    /// The account whose storage trie holds the node; `None` for the account trie.
    pub account: Option<B256>,
    /// Nibble path within that trie.
    pub path: Vec<u8>,
}

impl HealPath {
    /// The wire form: compact-encoded path (storage paths are grouped by the caller).
    pub fn compact(&self) -> Vec<u8> {
        hex_prefix_encode(&self.path, false)
    }
}

/// One node to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealItem {
    /// Its hash.
    pub hash: B256,
    /// Its location.
    pub path: HealPath,
}

type QueueKey = (Reverse<usize>, HealPath);

struct Pending {
    rlp: Vec<u8>,
    missing: usize,
}

/// The heal scheduler for one root.
#[derive(Default)]
pub struct Healer {
    queue: BTreeMap<QueueKey, B256>,
    codes: BTreeMap<B256, ()>,
    pending: HashKeyed<Pending>,
    /// hash of a wanted node or code -> parents waiting for it.
    parents: HashKeyed<Vec<B256>>,
    /// Nodes written by this healer (also in the batch not yet committed).
    written: HashKeyed<()>,
    /// Verified nodes not (yet) wanted: delivered for an earlier root's heal (their requests
    /// outlive a pivot move), or waiting for children when the pivot moved. A node wanted
    /// later is taken from here instead of being fetched again; unchanged subtrees of a new
    /// root cost nothing.
    cache: HashKeyed<Vec<u8>>,
    /// Wanted nodes found in `cache`, to process (see [`Healer::drain_cached`]).
    ready: Vec<HealItem>,
    /// Nodes healed so far.
    pub healed: u64,
    /// Codes healed so far.
    pub healed_codes: u64,
}

impl Healer {
    /// Most nodes kept in the cache of verified, unwanted nodes.
    pub const CACHE_NODES: usize = 1 << 20;

    /// Starts healing towards `root`.
    pub fn new(root: B256, store: &dyn SyncStore) -> Self {
        Self::with_cache(root, store, HashKeyed::default())
    }

    /// Starts healing towards `root` with verified nodes from earlier heals (see
    /// [`Healer::into_cache`]); call [`Healer::drain_cached`] before asking for work.
    pub fn with_cache(root: B256, store: &dyn SyncStore, cache: HashKeyed<Vec<u8>>) -> Self {
        let mut h = Healer { cache, ..Healer::default() };
        if root != EMPTY_ROOT && !store.has_node(&root) {
            h.want_node(root, HealPath { account: None, path: Vec::new() }, None);
        }
        h
    }

    /// The verified nodes this healer holds uncommitted (cached, or waiting for children),
    /// for the healer of the next root.
    pub fn into_cache(mut self) -> HashKeyed<Vec<u8>> {
        for (hash, p) in self.pending.drain() {
            if self.cache.len() < Self::CACHE_NODES {
                self.cache.insert(hash, p.rlp);
            }
        }
        self.cache
    }

    /// Keeps a node verified to hash to `hash` that no one wants yet.
    pub fn cache_node(&mut self, store: &dyn SyncStore, hash: B256, rlp: Vec<u8>) {
        if self.cache.len() < Self::CACHE_NODES && !self.present(store, &hash) {
            self.cache.insert(hash, rlp);
        }
    }

    /// Processes the wanted nodes found in the cache (which may want more of them).
    pub fn drain_cached(&mut self, store: &dyn SyncStore, batch: &mut WriteBatch) {
        while let Some(item) = self.ready.pop() {
            match self.cache.remove(&item.hash) {
                Some(rlp) => self.on_node(store, batch, &item, rlp),
                None => self.requeue_nodes([item]),
            }
        }
    }

    /// True when nothing is queued, in flight or waiting.
    pub fn is_done(&self) -> bool {
        self.parents.is_empty() && self.pending.is_empty() && self.ready.is_empty()
    }

    /// Nodes queued and not in flight.
    pub fn queued_nodes(&self) -> usize {
        self.queue.len()
    }

    /// Codes queued and not in flight.
    pub fn queued_codes(&self) -> usize {
        self.codes.len()
    }

    fn present(&self, store: &dyn SyncStore, hash: &B256) -> bool {
        self.written.contains_key(hash) || store.has_node(hash)
    }

    fn want_node(&mut self, hash: B256, path: HealPath, parent: Option<B256>) -> bool {
        let fresh = !self.parents.contains_key(&hash);
        let entry = self.parents.entry(hash).or_default();
        entry.extend(parent);
        if fresh {
            if self.cache.contains_key(&hash) {
                self.ready.push(HealItem { hash, path });
            } else {
                self.queue.insert((Reverse(path.path.len() + path.account.map_or(0, |_| 64)), path), hash);
            }
        }
        true
    }

    fn want_code(&mut self, hash: B256, parent: B256) {
        let fresh = !self.parents.contains_key(&hash);
        self.parents.entry(hash).or_default().push(parent);
        if fresh {
            self.codes.insert(hash, ());
        }
    }

    /// Takes up to `n` node items to request, deepest first.
    pub fn take_nodes(&mut self, n: usize) -> Vec<HealItem> {
        let mut out = Vec::with_capacity(n.min(self.queue.len()));
        while out.len() < n {
            let Some(((_, path), hash)) = self.queue.pop_first() else { break };
            out.push(HealItem { hash, path });
        }
        // group storage paths by account, account-trie paths first, each in path order
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Puts undelivered items back.
    pub fn requeue_nodes(&mut self, items: impl IntoIterator<Item = HealItem>) {
        for it in items {
            if self.parents.contains_key(&it.hash) && !self.pending.contains_key(&it.hash) {
                self.queue.insert(
                    (Reverse(it.path.path.len() + it.path.account.map_or(0, |_| 64)), it.path),
                    it.hash,
                );
            }
        }
    }

    /// Takes up to `n` code hashes to request.
    pub fn take_codes(&mut self, n: usize) -> Vec<B256> {
        let mut out = Vec::new();
        while out.len() < n {
            let Some((h, ())) = self.codes.pop_first() else { break };
            out.push(h);
        }
        out
    }

    /// Puts undelivered code hashes back.
    pub fn requeue_codes(&mut self, hashes: impl IntoIterator<Item = B256>) {
        for h in hashes {
            if self.parents.contains_key(&h) {
                self.codes.insert(h, ());
            }
        }
    }

    /// Processes a node already verified to hash to `item.hash`.
    pub fn on_node(&mut self, store: &dyn SyncStore, batch: &mut WriteBatch, item: &HealItem, rlp: Vec<u8>) {
        if !self.parents.contains_key(&item.hash) {
            // asked for an earlier root, or delivered twice: keep it in case it is wanted
            if !self.pending.contains_key(&item.hash) {
                self.cache_node(store, item.hash, rlp);
            }
            return;
        }
        if self.pending.contains_key(&item.hash) {
            return; // duplicate delivery
        }
        let Ok(node) = Node::decode(&rlp) else {
            // the hash matched, so this is the real node; an undecodable real node cannot occur
            return;
        };
        let mut missing = 0;
        let mut leaves: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        self.scan(store, &node, &item.path, item.hash, &mut missing, &mut leaves);
        for (path, value) in leaves {
            let Some(key) = pack(&path) else { continue };
            match item.path.account {
                None => {
                    if let Ok(acc) = Account::decode_full(&value) {
                        batch.accounts.push((key, acc));
                        if acc.storage_root != EMPTY_ROOT && !self.present(store, &acc.storage_root) {
                            missing += 1;
                            self.want_node(
                                acc.storage_root,
                                HealPath { account: Some(key), path: Vec::new() },
                                Some(item.hash),
                            );
                        }
                        if acc.code_hash != EMPTY_CODE && store.code(&acc.code_hash).is_none() {
                            missing += 1;
                            self.want_code(acc.code_hash, item.hash);
                        }
                    }
                }
                Some(account) => batch.slots.push((account, key, SlotValue::from(&value[..]))),
            }
        }
        if missing == 0 {
            self.commit(batch, item.hash, rlp);
        } else {
            self.pending.insert(item.hash, Pending { rlp, missing });
        }
    }

    /// Collects hashed children to fetch and leaves (full nibble paths) under `node`.
    fn scan(
        &mut self,
        store: &dyn SyncStore,
        node: &Node,
        at: &HealPath,
        me: B256,
        missing: &mut usize,
        leaves: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) {
        let child_at =
            |this: &mut Self, path: Vec<u8>, r: &ChildRef, missing: &mut usize, leaves: &mut Vec<_>| {
                let p = HealPath { account: at.account, path };
                match r {
                    ChildRef::Hash(h) => {
                        if !this.present(store, h) {
                            *missing += 1;
                            this.want_node(*h, p, Some(me));
                        }
                    }
                    ChildRef::Inline(raw) => {
                        if let Ok(n) = Node::decode(raw) {
                            this.scan(store, &n, &p, me, missing, leaves);
                        }
                    }
                }
            };
        match node {
            Node::Leaf { path, value } => {
                let mut full = at.path.clone();
                full.extend_from_slice(path);
                leaves.push((full, value.clone()));
            }
            Node::Extension { path, child } => {
                let mut p = at.path.clone();
                p.extend_from_slice(path);
                child_at(self, p, child, missing, leaves);
            }
            Node::Branch { children, .. } => {
                for (i, c) in children.iter().enumerate() {
                    if let Some(c) = c {
                        let mut p = at.path.clone();
                        p.push(i as u8);
                        child_at(self, p, c, missing, leaves);
                    }
                }
            }
        }
    }

    /// Processes a code verified to hash to `hash`.
    pub fn on_code(&mut self, batch: &mut WriteBatch, hash: B256, code: Vec<u8>) {
        if !self.parents.contains_key(&hash) {
            return;
        }
        batch.codes.push((hash, code.into()));
        self.healed_codes += 1;
        self.resolve(batch, hash);
    }

    fn commit(&mut self, batch: &mut WriteBatch, hash: B256, rlp: Vec<u8>) {
        batch.nodes.push(hash, &rlp);
        self.written.insert(hash, ());
        self.healed += 1;
        self.resolve(batch, hash);
    }

    /// `hash` is now stored: release the parents waiting on it.
    fn resolve(&mut self, batch: &mut WriteBatch, hash: B256) {
        let mut work = vec![hash];
        while let Some(h) = work.pop() {
            for parent in self.parents.remove(&h).unwrap_or_default() {
                let Some(p) = self.pending.get_mut(&parent) else { continue };
                p.missing = p.missing.saturating_sub(1);
                if p.missing == 0 {
                    if let Some(p) = self.pending.remove(&parent) {
                        batch.nodes.push(parent, &p.rlp);
                        self.written.insert(parent, ());
                        self.healed += 1;
                        work.push(parent);
                    }
                }
            }
        }
    }
}

/// A TrieNodes reply held a node that was not asked for, or came out of order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unrequested or out-of-order trie node")]
pub struct Unrequested;

/// Trie-node reply matched against the request: delivered (item, node) pairs, undelivered items.
pub type Matched = (Vec<(HealItem, Vec<u8>)>, Vec<HealItem>);

/// Matches a TrieNodes reply against the items asked, in order (gaps allowed).
pub fn match_nodes(asked: &[HealItem], nodes: Vec<Vec<u8>>) -> Result<Matched, Unrequested> {
    let mut delivered = Vec::new();
    let mut missing = Vec::new();
    let mut j = 0;
    for node in nodes {
        let h = keccak256(&node);
        while j < asked.len() && asked[j].hash != h {
            missing.push(asked[j].clone());
            j += 1;
        }
        if j == asked.len() {
            return Err(Unrequested);
        }
        delivered.push((asked[j].clone(), node));
        j += 1;
    }
    missing.extend(asked[j..].iter().cloned());
    Ok((delivered, missing))
}
