//! The sans-IO state downloader. Inputs: peer events, decoded replies, the clock. Outputs:
//! requests to send and verdicts on peers. No I/O, no clock of its own, no randomness: it is
//! driven by [`crate::driver`] on tokio, or directly by unit tests.

use crate::account::Account;
use crate::codec::{
    AccountRange, ByteCodes, GetAccountRange, GetByteCodes, GetStorageRanges, GetTrieNodes, Message,
    StorageRanges, TrieNodes,
};
use crate::primitives::{keccak256, Bytes, B256, EMPTY_CODE, EMPTY_ROOT};
use crate::store::{SyncStore, WriteBatch};
use crate::sync::config::{caps, PlantedBug, SyncConfig};
use crate::sync::heal::{match_nodes, HealItem, Healer};
use crate::sync::peers::{Kind, PeerId, PeerState};
use crate::sync::progress::{inc, AccountTask, Need, Progress, StorageTask};
use crate::trie::build::build;
use crate::trie::nibbles::{max_key_with_prefix, min_key_with_prefix};
use crate::trie::stitch::{Collected, RangeNodes, TaskRanges};
use crate::trie::{verify_range, verify_range_nodes};
use std::collections::{BTreeMap, BTreeSet};
use tracing::debug;

/// How long an empty reply keeps a peer out of work for the same root (ms).
const STATELESS_FOR_MS: u64 = 60_000;

/// Trie nodes as (hash, rlp).
type NodeList = Vec<(B256, Vec<u8>)>;

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this request to the peer.
    Send {
        /// Destination.
        peer: PeerId,
        /// The request.
        msg: Message,
    },
    /// Disconnect the peer: it misbehaved provably or repeatedly.
    Drop {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
}

/// Per-kind request counters, as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KindStats {
    /// Requests sent.
    pub sent: u64,
    /// Replies accepted (including partial ones).
    pub ok: u64,
    /// Replies rejected, empty, or lost to a disconnect.
    pub failed: u64,
    /// Requests that timed out.
    pub timed_out: u64,
    /// Reply bytes received.
    pub bytes_in: u64,
}

/// Downloader counters.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SyncStats {
    /// GetAccountRange.
    pub account_range: KindStats,
    /// GetStorageRanges.
    pub storage_ranges: KindStats,
    /// GetByteCodes.
    pub bytecodes: KindStats,
    /// GetTrieNodes.
    pub trie_nodes: KindStats,
    /// Nodes fetched by healing.
    pub healed_nodes: u64,
    /// Codes fetched by healing.
    pub healed_codes: u64,
    /// Replies to unknown or expired request ids (ignored).
    pub unexpected_replies: u64,
    /// Times the root changed under the sync.
    pub pivot_moves: u64,
}

impl SyncStats {
    fn kind(&mut self, k: Kind) -> &mut KindStats {
        match k {
            Kind::Accounts => &mut self.account_range,
            Kind::Storage => &mut self.storage_ranges,
            Kind::Codes => &mut self.bytecodes,
            Kind::TrieNodes => &mut self.trie_nodes,
        }
    }
}

/// The work a request carries; put back on failure.
#[derive(Debug, Clone)]
enum Work {
    Accounts { chunk: usize, origin: B256, limit: B256 },
    Storage { accounts: Vec<(B256, B256)>, origin: B256 },
    Codes { hashes: Vec<B256>, heal: bool },
    Heal { items: Vec<HealItem> },
}

#[derive(Debug, Clone)]
struct InFlight {
    peer: PeerId,
    kind: Kind,
    root: B256,
    sent_at: u64,
    deadline: u64,
    bytes: u64,
    work: Work,
}

/// Outcome of checking a reply.
enum Verdict {
    Ok,
    /// The peer lacks the root: no more work for it until the root changes.
    Stateless,
    /// Provably wrong.
    Fault(String),
}

/// The snap/1 state downloader.
pub struct Syncer {
    cfg: SyncConfig,
    progress: Progress,
    next_id: u64,
    peers: BTreeMap<PeerId, PeerState>,
    /// Peers that answered empty for the current root, until when (ms): a single empty reply
    /// may come from a request corrupted in transit, so the mark expires.
    stateless: BTreeMap<PeerId, u64>,
    requests: BTreeMap<u64, InFlight>,
    storage_in_flight: BTreeSet<B256>,
    codes_in_flight: BTreeSet<B256>,
    healer: Option<Healer>,
    stats: SyncStats,
    last_progress_at: u64,
    dirty: bool,
    penalised: BTreeSet<PeerId>,
    /// Nodes of verified ranges kept for generating their tasks' tries (memory only).
    ranges: TaskRanges,
    /// Planted-bug state (tests only).
    stuck_chunks: BTreeSet<usize>,
    lost_root_chunks: BTreeSet<usize>,
}

impl Syncer {
    /// Resumes from the store's progress when it targets `root` or an older root (pivot
    /// moved), else starts a fresh split. `id_base` keeps request ids unique across restarts.
    pub fn new(cfg: SyncConfig, root: B256, store: &dyn SyncStore, id_base: u64) -> Self {
        let progress = store
            .progress()
            .and_then(Progress::from_bytes)
            .unwrap_or_else(|| Progress::fresh(root, cfg.account_chunks));
        let mut s = Syncer {
            cfg,
            progress,
            next_id: id_base,
            peers: BTreeMap::new(),
            stateless: BTreeMap::new(),
            requests: BTreeMap::new(),
            storage_in_flight: BTreeSet::new(),
            codes_in_flight: BTreeSet::new(),
            healer: None,
            stats: SyncStats::default(),
            last_progress_at: 0,
            dirty: false,
            penalised: BTreeSet::new(),
            ranges: TaskRanges::default(),
            stuck_chunks: BTreeSet::new(),
            lost_root_chunks: BTreeSet::new(),
        };
        if s.progress.root != root {
            s.retarget(root);
        }
        s
    }

    /// The root being synced.
    pub fn root(&self) -> B256 {
        self.progress.root
    }

    /// Counters.
    pub fn stats(&self) -> SyncStats {
        let mut st = self.stats.clone();
        if let Some(h) = &self.healer {
            st.healed_nodes += h.healed;
            st.healed_codes += h.healed_codes;
        }
        st
    }

    /// Per-peer state (for reports).
    pub fn peer(&self, id: PeerId) -> Option<&PeerState> {
        self.peers.get(&id)
    }

    /// Peers that timed out or sent bad data at least once.
    pub fn penalised(&self) -> &BTreeSet<PeerId> {
        &self.penalised
    }

    /// Virtual time of the last accepted data.
    pub fn last_progress_at(&self) -> u64 {
        self.last_progress_at
    }

    /// A peer connected.
    pub fn add_peer(&mut self, peer: PeerId) {
        self.peers.entry(peer).or_default();
    }

    /// A peer disconnected (or was dropped): its requests go back to the queues.
    pub fn remove_peer(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
        self.stateless.remove(&peer);
        let ids: Vec<u64> = self.requests.iter().filter(|(_, r)| r.peer == peer).map(|(id, _)| *id).collect();
        for id in ids {
            if let Some(r) = self.requests.remove(&id) {
                self.stats.kind(r.kind).failed += 1;
                self.revert(r.work);
            }
        }
    }

    /// Moves the sync to a new root (pivot move): keeps fetched ranges, drops in-flight work,
    /// abandons unfinished storage (healing repairs it) and restarts healing.
    pub fn set_root(&mut self, root: B256) {
        if root != self.progress.root {
            self.stats.pivot_moves += 1;
            self.retarget(root);
        }
    }

    fn retarget(&mut self, root: B256) {
        for (_, r) in std::mem::take(&mut self.requests) {
            if let Some(p) = self.peers.get_mut(&r.peer) {
                p.finished(r.kind);
            }
            self.revert(r.work);
        }
        self.progress.root = root;
        self.stateless.clear();
        let abandoned: Vec<B256> =
            self.progress.storage.iter().filter(|(_, t)| !t.complete).map(|(a, _)| *a).collect();
        for a in abandoned {
            if let Some(t) = self.progress.storage.remove(&a) {
                self.progress.tasks[t.chunk].pending.remove(&(a, Need::Storage));
            }
        }
        if let Some(h) = self.healer.take() {
            self.stats.healed_nodes += h.healed;
            self.stats.healed_codes += h.healed_codes;
        }
        self.dirty = true;
    }

    fn revert(&mut self, work: Work) {
        match work {
            Work::Accounts { chunk, .. } => match self.cfg.planted {
                Some(PlantedBug::RequestedNeverReset) => {
                    self.stuck_chunks.insert(chunk);
                }
                Some(PlantedBug::RetryLosesRoot) => {
                    self.lost_root_chunks.insert(chunk);
                }
                _ => {}
            },
            Work::Storage { .. } if self.cfg.planted == Some(PlantedBug::StorageNoRetry) => {}
            Work::Storage { accounts, .. } => {
                for (a, _) in accounts {
                    self.storage_in_flight.remove(&a);
                }
            }
            Work::Codes { hashes, heal } => {
                for h in &hashes {
                    self.codes_in_flight.remove(h);
                }
                if heal {
                    if let Some(hl) = &mut self.healer {
                        hl.requeue_codes(hashes);
                    }
                }
            }
            Work::Heal { items } => {
                if let Some(hl) = &mut self.healer {
                    hl.requeue_nodes(items);
                }
            }
        }
    }

    fn account_chunk_busy(&self, chunk: usize) -> bool {
        self.stuck_chunks.contains(&chunk)
            || self.requests.values().any(|r| matches!(r.work, Work::Accounts { chunk: c, .. } if c == chunk))
    }

    /// The next moment something is due: a request deadline, or a benched peer's return.
    pub fn next_deadline(&self, now: u64) -> Option<u64> {
        let d = self.requests.values().map(|r| r.deadline).min();
        let bench = self.peers.values().map(|p| p.benched_until).filter(|b| *b > now).min();
        match (d, bench) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True once every phase is finished and the root node is stored. The caller then walks
    /// the trie ([`crate::sync::walk::verify_complete`]) before trusting it.
    pub fn is_done(&self, store: &dyn SyncStore) -> bool {
        if self.cfg.planted == Some(PlantedBug::SkipFinalCheck) {
            return self.progress.tasks.iter().all(|t| t.fetched);
        }
        self.accounts_done()
            && self.progress.storage.is_empty()
            && self.progress.codes.is_empty()
            && (self.progress.root == EMPTY_ROOT || store.has_node(&self.progress.root))
    }

    fn accounts_done(&self) -> bool {
        self.progress.tasks.iter().all(|t| t.generated)
    }

    /// Whether every connected peer is unusable for the current root.
    pub fn all_peers_stateless(&self) -> bool {
        self.peers.keys().all(|p| self.stateless.contains_key(p))
    }

    /// Expires requests whose deadline passed.
    pub fn on_tick(&mut self, now: u64) -> Vec<Action> {
        let expired: Vec<u64> =
            self.requests.iter().filter(|(_, r)| r.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(r) = self.requests.remove(&id) {
                debug!(id, peer = r.peer, kind = ?r.kind, "request timed out");
                self.stats.kind(r.kind).timed_out += 1;
                if let Some(p) = self.peers.get_mut(&r.peer) {
                    p.finished(r.kind);
                    p.timed_out(now);
                }
                self.penalised.insert(r.peer);
                self.revert(r.work);
            }
        }
        Vec::new()
    }

    /// A message from `peer` that failed to decode: a fault.
    pub fn on_undecodable(&mut self, peer: PeerId, reason: &str) -> Vec<Action> {
        // Bytes that don't decode may be a transit fault: penalise, and drop only a peer whose
        // messages are mostly garbage.
        self.penalised.insert(peer);
        let Some(p) = self.peers.get_mut(&peer) else { return Vec::new() };
        p.garbage += 1;
        if p.garbage >= 3 && p.garbage * 2 > p.messages {
            self.remove_peer(peer);
            return vec![Action::Drop { peer, reason: format!("undecodable messages: {reason}") }];
        }
        Vec::new()
    }

    /// Counts a message from `peer` that decoded (any kind).
    pub fn note_message(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.messages += 1;
        }
    }

    fn fault(&mut self, peer: PeerId, reason: String) -> Vec<Action> {
        self.penalised.insert(peer);
        let drop = self.peers.get_mut(&peer).is_some_and(|p| p.strike());
        if drop {
            self.remove_peer(peer);
            vec![Action::Drop { peer, reason }]
        } else {
            Vec::new()
        }
    }

    /// Handles a decoded reply. Commits what it accepts to `store`.
    pub fn on_message(
        &mut self,
        now: u64,
        peer: PeerId,
        msg: Message,
        store: &mut dyn SyncStore,
    ) -> Vec<Action> {
        let Some(id) = msg.request_id() else { return Vec::new() };
        let Some(req) = self.requests.get(&id) else {
            self.stats.unexpected_replies += 1;
            return Vec::new();
        };
        if req.peer != peer {
            self.stats.unexpected_replies += 1;
            return Vec::new();
        }
        let Some(req) = self.requests.remove(&id) else { return Vec::new() };
        let size = msg.encoded_len();
        let elapsed = now.saturating_sub(req.sent_at);
        self.stats.kind(req.kind).bytes_in += size as u64;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.finished(req.kind);
        }
        let mut batch = WriteBatch::default();
        let verdict = match (msg, req.work.clone()) {
            (Message::AccountRange(r), Work::Accounts { chunk, origin, limit }) => {
                self.on_accounts(store, &mut batch, &req, r, chunk, origin, limit)
            }
            (Message::StorageRanges(r), Work::Storage { accounts, origin }) => {
                self.on_storage(&mut batch, &req, r, accounts, origin)
            }
            (Message::ByteCodes(r), Work::Codes { hashes, heal }) => {
                self.on_codes(&mut batch, r, hashes, heal)
            }
            (Message::TrieNodes(r), Work::Heal { items }) => self.on_trie_nodes(store, &mut batch, r, items),
            (other, _) => {
                Verdict::Fault(format!("{} in reply to a {:?} request", other.kind_name(), req.kind))
            }
        };
        let mut actions = Vec::new();
        match verdict {
            Verdict::Ok => {
                self.stats.kind(req.kind).ok += 1;
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.measured(size, elapsed);
                }
                self.last_progress_at = now;
            }
            Verdict::Stateless => {
                self.stats.kind(req.kind).failed += 1;
                self.stateless.insert(peer, now + STATELESS_FOR_MS);
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.measured(size, elapsed);
                }
                self.revert(req.work);
            }
            Verdict::Fault(reason) => {
                debug!(peer, %reason, "bad reply");
                self.stats.kind(req.kind).failed += 1;
                self.revert(req.work);
                actions = self.fault(peer, reason);
            }
        }
        self.flush(store, batch);
        actions
    }

    #[allow(clippy::too_many_arguments)]
    fn on_accounts(
        &mut self,
        store: &dyn SyncStore,
        batch: &mut WriteBatch,
        req: &InFlight,
        r: AccountRange,
        chunk: usize,
        origin: B256,
        limit: B256,
    ) -> Verdict {
        if r.accounts.is_empty() && r.proof.is_empty() {
            return Verdict::Stateless;
        }
        if r.proof.len() > caps::MAX_PROOF_NODES {
            return Verdict::Fault(format!("{} proof nodes", r.proof.len()));
        }
        let body_bytes: usize = r.accounts.iter().map(|a| 32 + a.body.len()).sum();
        if body_bytes as u64 > 2 * req.bytes.max(caps::MIN_RESPONSE_BYTES) + 4096 {
            return Verdict::Fault(format!("{body_bytes} account bytes for a {} budget", req.bytes));
        }
        let mut keys = Vec::with_capacity(r.accounts.len());
        let mut accounts = Vec::with_capacity(r.accounts.len());
        let mut values = Vec::with_capacity(r.accounts.len());
        for a in &r.accounts {
            match Account::decode_slim(&a.body) {
                Ok(acc) => {
                    keys.push(a.hash);
                    values.push(acc.encode_full());
                    accounts.push(acc);
                }
                Err(e) => return Verdict::Fault(format!("bad account body: {e}")),
            }
        }
        let mut built = Collected::default();
        let has_more =
            match verify_range_nodes(req.root, &origin, &keys, &values, &r.proof, &mut |n| built.push(n)) {
                Ok(m) => m,
                Err(e) => return Verdict::Fault(format!("account range proof: {e}")),
            };
        let Some(task) = self.progress.tasks.get(chunk) else { return Verdict::Ok };
        if task.fetched || task.next != origin {
            return Verdict::Ok; // stale reply for work already done (e.g. after a restart)
        }
        let mut reached_end = !has_more;
        let mut last_kept = None;
        let mut dirty = Vec::with_capacity(keys.len());
        for (i, (key, acc)) in keys.iter().zip(&accounts).enumerate() {
            if *key > limit {
                reached_end = true;
                break;
            }
            last_kept = Some(i);
            dirty.push(
                (acc.storage_root != EMPTY_ROOT && !store.has_node(&acc.storage_root))
                    || (acc.code_hash != EMPTY_CODE && store.code(&acc.code_hash).is_none()),
            );
            batch.accounts.push((*key, *acc));
            if acc.storage_root != EMPTY_ROOT
                && !store.has_node(&acc.storage_root)
                && !self.progress.storage.contains_key(key)
            {
                self.progress.storage.insert(
                    *key,
                    StorageTask {
                        root: acc.storage_root,
                        next: B256::ZERO,
                        chunk,
                        complete: false,
                        built: false,
                    },
                );
                self.progress.tasks[chunk].pending.insert((*key, Need::Storage));
            }
            if acc.code_hash != EMPTY_CODE && store.code(&acc.code_hash).is_none() {
                self.progress.codes.entry(acc.code_hash).or_default().insert(*key);
                self.progress.tasks[chunk].pending.insert((*key, Need::Code));
            }
        }
        let kept = dirty.len();
        self.ranges.accounts.entry(chunk).or_default().add(
            built,
            &keys,
            kept,
            &|i| dirty[i],
            &mut batch.nodes,
        );
        let task = &mut self.progress.tasks[chunk];
        match last_kept.map(|i| keys[i]) {
            Some(k) if k == limit => task.fetched = true,
            Some(k) if !reached_end => match inc(k) {
                Some(n) => task.next = n,
                None => task.fetched = true,
            },
            _ => task.fetched = true,
        }
        if reached_end {
            task.fetched = true;
        }
        self.dirty = true;
        Verdict::Ok
    }

    fn on_storage(
        &mut self,
        batch: &mut WriteBatch,
        req: &InFlight,
        r: StorageRanges,
        accounts: Vec<(B256, B256)>,
        origin: B256,
    ) -> Verdict {
        for (a, _) in &accounts {
            self.storage_in_flight.remove(a);
        }
        if r.slots.is_empty() && r.proof.is_empty() {
            return Verdict::Stateless;
        }
        if r.slots.len() > accounts.len() {
            return Verdict::Fault(format!("{} slot sets for {} accounts", r.slots.len(), accounts.len()));
        }
        if r.proof.len() > caps::MAX_PROOF_NODES {
            return Verdict::Fault(format!("{} proof nodes", r.proof.len()));
        }
        let bytes: usize = r.slots.iter().flatten().map(|s| 32 + s.data.len()).sum();
        if bytes as u64 > 2 * req.bytes.max(caps::MIN_RESPONSE_BYTES) + 4096 {
            return Verdict::Fault(format!("{bytes} storage bytes for a {} budget", req.bytes));
        }
        // Verify everything before accepting anything.
        let n = r.slots.len();
        let mut outcome: Vec<(B256, bool /*complete*/, Option<B256> /*next*/)> = Vec::with_capacity(n.max(1));
        let mut built_nodes: Vec<(B256, NodeList)> = Vec::new();
        let mut proven_nodes: Option<(B256, B256, Vec<B256>, Collected)> = None;
        if n == 0 {
            // proof that nothing is left at or after the origin of the first account
            let (acct, root) = accounts[0];
            match verify_range::<Vec<u8>, _>(root, &origin, &[], &[], &r.proof) {
                Ok(_) => outcome.push((acct, true, None)),
                Err(e) => return Verdict::Fault(format!("storage proof: {e}")),
            }
        }
        for (i, set) in r.slots.iter().enumerate() {
            let (acct, root) = accounts[i];
            let first_origin = if i == 0 { origin } else { B256::ZERO };
            let keys: Vec<B256> = set.iter().map(|s| s.hash).collect();
            let values: Vec<&[u8]> = set.iter().map(|s| &s.data[..]).collect();
            let last = i + 1 == n;
            let proven = last && !r.proof.is_empty();
            if proven {
                let mut built = Collected::default();
                match verify_range_nodes(root, &first_origin, &keys, &values, &r.proof, &mut |n| {
                    built.push(n)
                }) {
                    Ok(more) => outcome.push((
                        acct,
                        !more,
                        if more { keys.last().and_then(|k| inc(*k)) } else { None },
                    )),
                    Err(e) => return Verdict::Fault(format!("storage proof: {e}")),
                }
                proven_nodes = Some((acct, root, keys, built));
            } else {
                if first_origin != B256::ZERO {
                    return Verdict::Fault("continuation without proof".into());
                }
                for w in keys.windows(2) {
                    if w[0] >= w[1] {
                        return Verdict::Fault("slots out of order".into());
                    }
                }
                if values.iter().any(|v| v.is_empty()) {
                    return Verdict::Fault("empty slot value".into());
                }
                // Verify by building the trie: when the root matches, its nodes are exactly the
                // account's storage trie, stored at once instead of rebuilt later.
                let pairs: Vec<(B256, &[u8])> = keys.iter().copied().zip(values.iter().copied()).collect();
                let mut nodes = Vec::new();
                let computed = build(&pairs, &mut |n| nodes.push((n.hash, n.rlp.to_vec())));
                if computed != root {
                    return Verdict::Fault(format!("storage set {i} does not hash to its root"));
                }
                built_nodes.push((acct, nodes));
                outcome.push((acct, true, None));
            }
        }
        for (i, set) in r.slots.iter().enumerate() {
            let acct = accounts[i].0;
            for s in set {
                batch.slots.push((acct, s.hash, s.data.to_vec()));
            }
        }
        for (acct, nodes) in built_nodes {
            if let Some(t) = self.progress.storage.get_mut(&acct) {
                if t.next == B256::ZERO && !t.complete {
                    t.built = true;
                    batch.nodes.extend(nodes);
                }
            }
        }
        if let Some((acct, root, keys, built)) = proven_nodes {
            if self.progress.storage.get(&acct).is_some_and(|t| t.root == root && !t.complete) {
                let ranges = self.ranges.storage.entry(acct).or_default();
                if ranges.tag != root {
                    *ranges = RangeNodes::new(root);
                }
                ranges.add(built, &keys, keys.len(), &|_| false, &mut batch.nodes);
            }
        }
        for (acct, complete, next) in outcome {
            if let Some(t) = self.progress.storage.get_mut(&acct) {
                if complete {
                    t.complete = true;
                } else if let Some(n) = next {
                    t.next = n;
                } else {
                    t.complete = true;
                }
            }
        }
        self.dirty = true;
        Verdict::Ok
    }

    fn on_codes(&mut self, batch: &mut WriteBatch, r: ByteCodes, hashes: Vec<B256>, heal: bool) -> Verdict {
        for h in &hashes {
            self.codes_in_flight.remove(h);
        }
        if r.codes.is_empty() {
            if heal {
                if let Some(hl) = &mut self.healer {
                    hl.requeue_codes(hashes);
                }
            }
            return Verdict::Stateless;
        }
        if r.codes.len() > hashes.len() {
            return Verdict::Fault("more codes than asked".into());
        }
        let mut j = 0;
        let mut got = Vec::new();
        for code in r.codes {
            let h = keccak256(&code);
            while j < hashes.len() && hashes[j] != h {
                j += 1;
            }
            if j == hashes.len() {
                if heal {
                    if let Some(hl) = &mut self.healer {
                        hl.requeue_codes(hashes.clone());
                    }
                }
                return Verdict::Fault("unrequested or out-of-order code".into());
            }
            got.push((h, code));
            j += 1;
        }
        let delivered: BTreeSet<B256> = got.iter().map(|(h, _)| *h).collect();
        for (h, code) in got {
            if heal {
                if let Some(hl) = &mut self.healer {
                    hl.on_code(batch, h, code.to_vec());
                }
            } else if let Some(waiting) = self.progress.codes.remove(&h) {
                batch.codes.push((h, code));
                for a in waiting {
                    let c = self.progress.chunk_of(&a);
                    self.progress.tasks[c].pending.remove(&(a, Need::Code));
                }
            }
        }
        if heal {
            if let Some(hl) = &mut self.healer {
                hl.requeue_codes(hashes.into_iter().filter(|h| !delivered.contains(h)));
            }
        }
        self.dirty = true;
        Verdict::Ok
    }

    fn on_trie_nodes(
        &mut self,
        store: &dyn SyncStore,
        batch: &mut WriteBatch,
        r: TrieNodes,
        items: Vec<HealItem>,
    ) -> Verdict {
        let Some(mut healer) = self.healer.take() else { return Verdict::Ok };
        let verdict = if r.nodes.is_empty() {
            healer.requeue_nodes(items);
            Verdict::Stateless
        } else if r.nodes.len() > items.len() {
            healer.requeue_nodes(items);
            Verdict::Fault("more trie nodes than asked".into())
        } else {
            match match_nodes(&items, r.nodes.into_iter().map(|b| b.to_vec()).collect()) {
                Err(_) => {
                    healer.requeue_nodes(items);
                    Verdict::Fault("unrequested or out-of-order trie node".into())
                }
                Ok((delivered, missing)) => {
                    for (item, rlp) in delivered {
                        healer.on_node(store, batch, &item, rlp);
                    }
                    healer.requeue_nodes(missing);
                    Verdict::Ok
                }
            }
        };
        self.healer = Some(healer);
        verdict
    }

    /// Commits `batch` with progress, then builds trie nodes for finished storage and chunks.
    fn flush(&mut self, store: &mut dyn SyncStore, mut batch: WriteBatch) {
        if self.dirty {
            batch.progress = Some(self.progress.to_bytes());
        }
        if !batch.is_empty() {
            store.commit(batch);
        }
        if self.dirty {
            self.dirty = false;
            self.generate(store);
        }
    }

    /// Builds and stores trie nodes over finished storage tries and account chunks.
    pub fn generate(&mut self, store: &mut dyn SyncStore) {
        let mut batch = WriteBatch::default();
        let done: Vec<B256> =
            self.progress.storage.iter().filter(|(_, t)| t.complete).map(|(a, _)| *a).collect();
        for acct in &done {
            let ranges = self.ranges.storage.remove(acct);
            if let Some(t) = self.progress.storage.get(acct).filter(|t| !t.built) {
                let ranges = ranges.filter(|r| r.tag == t.root).unwrap_or_default();
                let slots = store.slots_of(acct);
                ranges.generate(&slots, &|_| true, &|_| true, &mut batch.nodes);
            }
            if let Some(t) = self.progress.storage.remove(acct) {
                self.progress.tasks[t.chunk].pending.remove(&(*acct, Need::Storage));
            }
        }
        if !done.is_empty() {
            // storage nodes must be visible before account chunks check for them
            store.commit(std::mem::take(&mut batch));
        }
        for i in 0..self.progress.tasks.len() {
            let t = &self.progress.tasks[i];
            if t.generated || !t.fetched || !t.pending.is_empty() {
                continue;
            }
            let ranges = self.ranges.accounts.remove(&i).unwrap_or_default();
            generate_chunk(store, t, ranges, &mut batch);
            self.progress.tasks[i].generated = true;
        }
        batch.progress = Some(self.progress.to_bytes());
        store.commit(batch);
    }

    fn send(&mut self, now: u64, peer: PeerId, kind: Kind, bytes: u64, work: Work, msg: Message) -> Action {
        let p = self.peers.entry(peer).or_default();
        p.sent(kind);
        let deadline = now + p.timeout_ms(&self.cfg);
        let id = msg.request_id().unwrap_or_default();
        self.requests.insert(
            id,
            InFlight { peer, kind, root: self.progress.root, sent_at: now, deadline, bytes, work },
        );
        self.stats.kind(kind).sent += 1;
        Action::Send { peer, msg }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Assigns queued work to idle peers.
    pub fn poll(&mut self, now: u64, store: &mut dyn SyncStore) -> Vec<Action> {
        let mut out = Vec::new();
        if self.dirty {
            // e.g. a pivot move abandoned storage work: chunks may be ready to build now
            self.flush(store, WriteBatch::default());
        }
        if self.healer.is_none()
            && self.accounts_done()
            && self.progress.storage.is_empty()
            && self.progress.codes.is_empty()
        {
            self.healer = Some(Healer::new(self.progress.root, store));
        }
        let mut order: Vec<(PeerId, f64)> = self
            .peers
            .iter()
            .filter(|(id, p)| {
                self.stateless.get(id).is_none_or(|until| *until <= now) && p.benched_until <= now
            })
            .map(|(id, p)| (*id, p.score()))
            .collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (peer, _) in order {
            for kind in [Kind::TrieNodes, Kind::Storage, Kind::Codes, Kind::Accounts] {
                if self.requests.len() >= self.cfg.concurrency {
                    return out;
                }
                let idle = self.peers.get(&peer).is_some_and(|p| p.idle(kind, now));
                if !idle {
                    continue;
                }
                if let Some(a) = self.assign(now, peer, kind) {
                    out.push(a);
                }
            }
        }
        out
    }

    fn assign(&mut self, now: u64, peer: PeerId, kind: Kind) -> Option<Action> {
        let p = self.peers.get(&peer)?.clone();
        let root = self.progress.root;
        match kind {
            Kind::Accounts => {
                let chunk = (0..self.progress.tasks.len())
                    .find(|i| !self.progress.tasks[*i].fetched && !self.account_chunk_busy(*i))?;
                let t: &AccountTask = &self.progress.tasks[chunk];
                let (origin, limit) = (t.next, t.last);
                let bytes = p.range_bytes(&self.cfg, self.cfg.account_bytes);
                let id = self.id();
                let root = if self.lost_root_chunks.contains(&chunk) { B256::ZERO } else { root };
                let msg = Message::GetAccountRange(GetAccountRange {
                    request_id: id,
                    root,
                    starting_hash: origin,
                    limit_hash: limit,
                    response_bytes: bytes,
                });
                Some(self.send(now, peer, kind, bytes, Work::Accounts { chunk, origin, limit }, msg))
            }
            Kind::Storage => {
                let bytes = p.range_bytes(&self.cfg, self.cfg.storage_bytes);
                // a continuation (large contract) goes alone, with its origin
                let cont = self.progress.storage.iter().find(|(a, t)| {
                    !t.complete && t.next != B256::ZERO && !self.storage_in_flight.contains(*a)
                });
                let (accounts, origin) = if let Some((a, t)) = cont {
                    (vec![(*a, t.root)], t.next)
                } else {
                    let max = ((bytes / 1024) as usize).clamp(1, caps::MAX_STORAGE_ACCOUNTS);
                    let accts: Vec<(B256, B256)> = self
                        .progress
                        .storage
                        .iter()
                        .filter(|(a, t)| !t.complete && !self.storage_in_flight.contains(*a))
                        .take(max)
                        .map(|(a, t)| (*a, t.root))
                        .collect();
                    (accts, B256::ZERO)
                };
                if accounts.is_empty() {
                    return None;
                }
                for (a, _) in &accounts {
                    self.storage_in_flight.insert(*a);
                }
                let id = self.id();
                let msg = Message::GetStorageRanges(GetStorageRanges {
                    request_id: id,
                    root,
                    account_hashes: accounts.iter().map(|(a, _)| *a).collect(),
                    starting_hash: (origin != B256::ZERO).then_some(origin),
                    limit_hash: None,
                    response_bytes: bytes,
                });
                Some(self.send(now, peer, kind, bytes, Work::Storage { accounts, origin }, msg))
            }
            Kind::Codes => {
                let n = p.item_count(&self.cfg, self.cfg.max_codes, caps::MAX_CODES);
                let (hashes, heal) = match &mut self.healer {
                    Some(h) => (h.take_codes(n), true),
                    None => {
                        let hs: Vec<B256> = self
                            .progress
                            .codes
                            .keys()
                            .filter(|h| !self.codes_in_flight.contains(*h))
                            .take(n)
                            .copied()
                            .collect();
                        (hs, false)
                    }
                };
                if hashes.is_empty() {
                    return None;
                }
                self.codes_in_flight.extend(hashes.iter().copied());
                let bytes = p.range_bytes(&self.cfg, self.cfg.account_bytes);
                let id = self.id();
                let msg = Message::GetByteCodes(GetByteCodes {
                    request_id: id,
                    hashes: hashes.clone(),
                    response_bytes: bytes,
                });
                Some(self.send(now, peer, kind, bytes, Work::Codes { hashes, heal }, msg))
            }
            Kind::TrieNodes => {
                let n = p.item_count(&self.cfg, self.cfg.max_trie_nodes, caps::MAX_TRIE_NODES);
                let items = self.healer.as_mut()?.take_nodes(n);
                if items.is_empty() {
                    return None;
                }
                let mut paths: Vec<Vec<Bytes>> = Vec::new();
                let mut last_account: Option<B256> = None;
                for it in &items {
                    match it.path.account {
                        None => {
                            paths.push(vec![Bytes::from(it.path.compact())]);
                            last_account = None;
                        }
                        Some(a) => {
                            if last_account == Some(a) {
                                if let Some(set) = paths.last_mut() {
                                    set.push(Bytes::from(it.path.compact()));
                                }
                            } else {
                                paths.push(vec![
                                    Bytes::copy_from_slice(a.as_slice()),
                                    Bytes::from(it.path.compact()),
                                ]);
                                last_account = Some(a);
                            }
                        }
                    }
                }
                let bytes = p.range_bytes(&self.cfg, self.cfg.account_bytes);
                let id = self.id();
                let msg = Message::GetTrieNodes(GetTrieNodes {
                    request_id: id,
                    root,
                    paths,
                    response_bytes: bytes,
                });
                Some(self.send(now, peer, kind, bytes, Work::Heal { items }, msg))
            }
        }
    }

    /// Debug check: every unit of work is in exactly one place. Returns a description of the
    /// first violation.
    pub fn check_accounting(&self) -> Result<(), String> {
        let mut storage_live = BTreeSet::new();
        let mut code_live = BTreeSet::new();
        let mut chunks_live = BTreeSet::new();
        for (id, r) in &self.requests {
            if !self.peers.contains_key(&r.peer) {
                return Err(format!("request {id} belongs to a departed peer"));
            }
            match &r.work {
                Work::Accounts { chunk, .. } => {
                    if !chunks_live.insert(*chunk) {
                        return Err(format!("chunk {chunk} in flight twice"));
                    }
                }
                Work::Storage { accounts, .. } => {
                    for (a, _) in accounts {
                        if !storage_live.insert(*a) {
                            return Err(format!("storage of {a} in flight twice"));
                        }
                    }
                }
                Work::Codes { hashes, .. } => {
                    for h in hashes {
                        code_live.insert(*h);
                    }
                }
                Work::Heal { .. } => {}
            }
        }
        if storage_live != self.storage_in_flight {
            return Err("storage in-flight set out of step with the request table".into());
        }
        if code_live != self.codes_in_flight {
            return Err("code in-flight set out of step with the request table".into());
        }
        for (i, t) in self.progress.tasks.iter().enumerate() {
            for (a, need) in &t.pending {
                let tracked = match need {
                    Need::Storage => self.progress.storage.get(a).is_some_and(|s| s.chunk == i),
                    Need::Code => self.progress.codes.values().any(|w| w.contains(a)),
                };
                if !tracked {
                    return Err(format!("account {a} waits for {need:?} that nobody fetches"));
                }
            }
        }
        Ok(())
    }
}

/// Builds trie nodes over one fully fetched account chunk and stores those it can vouch for:
/// nodes whose whole key range lies inside the chunk and whose accounts all have their
/// storage and code stored. Boundary nodes are left for healing.
fn generate_chunk(store: &dyn SyncStore, t: &AccountTask, ranges: RangeNodes, batch: &mut WriteBatch) {
    let accounts = store.accounts_in(&t.start, &t.last);
    if accounts.is_empty() {
        return;
    }
    let mut dirty_before = Vec::with_capacity(accounts.len() + 1);
    dirty_before.push(0u32);
    let mut leaves = Vec::with_capacity(accounts.len());
    for (k, a) in &accounts {
        let clean = (a.storage_root == EMPTY_ROOT || store.has_node(&a.storage_root))
            && (a.code_hash == EMPTY_CODE || store.code(&a.code_hash).is_some());
        dirty_before.push(dirty_before.last().copied().unwrap_or(0) + u32::from(!clean));
        leaves.push((*k, a.encode_full()));
    }
    let whole = t.start == B256::ZERO && t.last == B256::repeat_byte(0xff);
    let inside = |path: &[u8]| {
        min_key_with_prefix(path) >= t.start
            && max_key_with_prefix(path) <= t.last
            && (!path.is_empty() || whole)
    };
    let clean = |i: usize| dirty_before[i + 1] == dirty_before[i];
    ranges.generate(&leaves, &clean, &inside, &mut batch.nodes);
}
