//! The sans-IO state downloader. Inputs: peer events, decoded replies, the clock. Outputs:
//! requests to send and verdicts on peers. No I/O, no clock of its own, no randomness: it is
//! driven by [`crate::driver`] on tokio, or directly by unit tests.

use crate::account::Account;
use crate::codec::{
    AccountRange, ByteCodes, GetAccountRange, GetByteCodes, GetStorageRanges, GetTrieNodes, Message,
    StorageRanges, TrieNodes,
};
use crate::primitives::{keccak256, Bytes, B256, EMPTY_CODE, EMPTY_ROOT};
use crate::store::{SlotValue, SyncStore, WriteBatch};
use crate::sync::config::{caps, PlantedBug, SizingPolicy, SyncConfig};
use crate::sync::heal::{match_nodes, HealItem, Healer};
use crate::sync::peers::{prior, Kind, PeerId, PeerState, Plan};
use crate::sync::progress::{inc, AccountTask, Need, Progress, StorageTask};
use crate::sync::sched::{fraction, Sched, Split};
use crate::trie::build::build;
use crate::trie::nibbles::{max_key_with_prefix, min_key_with_prefix};
use crate::trie::stitch::{Collected, Leaves, RangeNodes, TaskRanges};
use crate::trie::{verify_range, verify_range_nodes};
use std::collections::{BTreeMap, BTreeSet};
use tracing::debug;

/// How long an empty reply keeps a peer out of work for the same root (ms).
pub(crate) const STATELESS_FOR_MS: u64 = 60_000;
/// Most trie-node requests given up at pivot moves whose late replies are still taken.
const MAX_ORPHANS: usize = 4096;
/// Slots a contract must already hold before its total is estimated for
/// [`SyncStore::expect_slots`] (relative error about 1/sqrt of it).
const SLOT_HINT_MIN: usize = 2048;
/// Largest slot count ever hinted (a bound on what one estimate can make a store reserve).
const SLOT_HINT_MAX: usize = 1 << 26;

/// A progress record is written once the data committed since the last one reaches this many
/// times the last record's size ([`Syncer::record_due`]).
const RECORD_EVERY: u64 = 8;

/// Roughly the bytes a batch writes (nodes, flat entries, codes): what a crash before the next
/// progress record would have to fetch again.
fn batch_bytes(batch: &WriteBatch) -> u64 {
    let codes: usize = batch.codes.iter().map(|(_, c)| 32 + c.len()).sum();
    (batch.nodes.byte_len()
        + 32 * batch.nodes.len()
        + 104 * batch.accounts.len()
        + 100 * batch.slots.len()
        + codes) as u64
}

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
    /// For the record (traces, logs): a request went unanswered past its deadline; the peer
    /// is benched for a while and the work is queued again.
    TimedOut {
        /// The peer.
        peer: PeerId,
        /// What was asked.
        kind: Kind,
        /// The request's id.
        request_id: u64,
    },
    /// For the record: a reply failed decoding or verification; the peer is penalised (a
    /// `Drop` follows once its misbehaviour is provable or repeated).
    Penalise {
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
    /// Requests given up unanswered: dropped at a pivot move, or in flight when the node
    /// stopped (finished or crashed). Every request sent ends exactly one way:
    /// `sent == ok + failed + timed_out + cancelled` (see [`KindStats::unaccounted`]).
    pub cancelled: u64,
    /// Reply bytes received.
    pub bytes_in: u64,
}

impl KindStats {
    /// Requests sent that ended in none of the ways counted (0 when the books balance).
    pub fn unaccounted(&self) -> i64 {
        self.sent as i64 - (self.ok + self.failed + self.timed_out + self.cancelled) as i64
    }
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
    Accounts {
        chunk: usize,
        origin: B256,
        limit: B256,
    },
    Storage {
        accounts: Vec<(B256, B256)>,
        origin: B256,
    },
    /// One chunk of a large contract's storage split for parallel fetching (adaptive policy).
    StorageChunk {
        account: B256,
        root: B256,
        origin: B256,
    },
    Codes {
        hashes: Vec<B256>,
        heal: bool,
    },
    Heal {
        items: Vec<HealItem>,
    },
}

/// Which storage work a request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// Any: chunks and continuations of large contracts first, else a bundle.
    Any,
    /// Only a chain's next request: a chunk or continuation of a large contract.
    Serial,
    /// Only a bundle of small storage tries.
    Bundles,
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
    /// What was learnt about peers that disconnected, restored when they come back: a peer
    /// that never answers must not get a clean slate from every reconnect.
    departed: BTreeMap<PeerId, PeerState>,
    /// Peers that answered empty for the current root, until when (ms): a single empty reply
    /// may come from a request corrupted in transit, so the mark expires.
    stateless: BTreeMap<PeerId, u64>,
    /// How fully the reply being handled answers its request (see [`PeerState::fill`]).
    fill: f64,
    requests: BTreeMap<u64, InFlight>,
    storage_in_flight: BTreeSet<B256>,
    codes_in_flight: BTreeSet<B256>,
    /// The adaptive scheduler's state: split contracts, bundle statistics.
    sched: Sched,
    healer: Option<Healer>,
    /// Verified trie nodes kept over a pivot move for the next healer (see
    /// [`Healer::into_cache`]).
    heal_cache: crate::trie::db::HashKeyed<Vec<u8>>,
    /// Trie-node requests given up at a pivot move, by id: a late reply still feeds the cache.
    orphans: BTreeMap<u64, (PeerId, Vec<HealItem>)>,
    stats: SyncStats,
    last_progress_at: u64,
    dirty: bool,
    /// Accounts whose storage task turned complete since [`Syncer::build_finished`] last ran
    /// (it builds exactly these, instead of scanning every pending task per reply).
    newly_complete: Vec<B256>,
    /// Set when complete tasks may exist that `newly_complete` does not list (after a resume
    /// or a pivot move): the next build scans every task.
    rescan: bool,
    /// Bytes of data committed since the progress record was last written.
    unsaved_bytes: u64,
    /// Length of the last progress record written.
    record_len: u64,
    penalised: BTreeSet<PeerId>,
    /// Nodes of verified ranges kept for generating their tasks' tries (memory only).
    ranges: TaskRanges,
    /// A buffer for the nodes a range verification reports, reused reply after reply.
    scratch: Collected,
    /// An empty write batch nothing was committed from, kept for its buffers.
    spare: Option<WriteBatch>,
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
            departed: BTreeMap::new(),
            stateless: BTreeMap::new(),
            fill: 1.0,
            requests: BTreeMap::new(),
            storage_in_flight: BTreeSet::new(),
            codes_in_flight: BTreeSet::new(),
            sched: Sched::default(),
            healer: None,
            heal_cache: Default::default(),
            orphans: BTreeMap::new(),
            stats: SyncStats::default(),
            last_progress_at: 0,
            dirty: false,
            newly_complete: Vec::new(),
            rescan: true,
            unsaved_bytes: 0,
            record_len: 0,
            penalised: BTreeSet::new(),
            ranges: TaskRanges::default(),
            scratch: Collected::default(),
            spare: None,
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
        // requests still in flight are given up when the node stops
        for r in self.requests.values() {
            st.kind(r.kind).cancelled += 1;
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
        if !self.peers.contains_key(&peer) {
            let known = self.departed.remove(&peer).unwrap_or_default();
            self.peers.insert(peer, known);
        }
    }

    /// A peer disconnected (or was dropped): its requests go back to the queues.
    pub fn remove_peer(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.remove(&peer) {
            self.departed.insert(peer, p.departed());
        }
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
        self.rescan = true;
        // every request is given up (its peer is free for the new root's work), but a
        // trie-node reply that still comes is kept: its nodes are checked by hash and seed the
        // new root's healer (most of a trie outlives a pivot move)
        for (id, r) in std::mem::take(&mut self.requests) {
            if let Some(p) = self.peers.get_mut(&r.peer) {
                p.finished(r.kind);
            }
            self.stats.kind(r.kind).cancelled += 1;
            match r.work {
                Work::Heal { items } => {
                    self.orphans.insert(id, (r.peer, items));
                    while self.orphans.len() > MAX_ORPHANS {
                        self.orphans.pop_first();
                    }
                }
                work => self.revert(work),
            }
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
            self.heal_cache = h.into_cache();
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
            // a chunk is in flight only while its request is (see `assign`)
            Work::StorageChunk { .. } => {}
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
        // a peer's "lacks the root" mark expiring makes it usable again
        let stateless = self.stateless.values().copied().filter(|t| *t > now).min();
        [d, bench, stateless].into_iter().flatten().min()
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
        let mut out = Vec::with_capacity(expired.len());
        for id in expired {
            if let Some(r) = self.requests.remove(&id) {
                out.push(Action::TimedOut { peer: r.peer, kind: r.kind, request_id: id });
                debug!(id, peer = r.peer, kind = ?r.kind, "request timed out");
                self.stats.kind(r.kind).timed_out += 1;
                if let Some(p) = self.peers.get_mut(&r.peer) {
                    p.finished(r.kind);
                    p.timed_out(now);
                    if !p.link.known() {
                        // never answered: for all we know it does not; rank it behind every peer
                        // not yet tried (a reply clears this)
                        let age = now.saturating_sub(r.sent_at) as f64;
                        p.link.floor_ms = p.link.floor_ms.max(4.0 * age);
                    }
                }
                self.penalised.insert(r.peer);
                self.revert(r.work);
            }
        }
        out
    }

    /// A message from `peer` that failed to decode: a fault.
    pub fn on_undecodable(&mut self, peer: PeerId, reason: &str) -> Vec<Action> {
        // Bytes that don't decode may be a transit fault: penalise, and drop only a peer whose
        // messages are mostly garbage.
        self.penalised.insert(peer);
        let Some(p) = self.peers.get_mut(&peer) else { return Vec::new() };
        p.garbage += 1;
        let mut out = vec![Action::Penalise { peer, reason: format!("undecodable message: {reason}") }];
        if p.garbage >= 3 && p.garbage * 2 > p.messages {
            self.remove_peer(peer);
            out.push(Action::Drop { peer, reason: format!("undecodable messages: {reason}") });
        }
        out
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
        let mut out = vec![Action::Penalise { peer, reason: reason.clone() }];
        if drop {
            self.remove_peer(peer);
            out.push(Action::Drop { peer, reason });
        }
        out
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
            match (self.orphans.remove(&id), msg) {
                (Some((asked, items)), Message::TrieNodes(r)) if asked == peer => self.adopt(store, r, items),
                _ => self.stats.unexpected_replies += 1,
            }
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
        let mut batch = self.take_batch(store);
        self.fill = 1.0;
        let verdict = match (msg, req.work.clone()) {
            (Message::AccountRange(r), Work::Accounts { chunk, origin, limit }) => {
                self.on_accounts(store, &mut batch, &req, r, chunk, origin, limit)
            }
            (Message::StorageRanges(r), Work::Storage { accounts, origin }) => {
                self.on_storage(&mut batch, &req, r, accounts, origin)
            }
            (Message::StorageRanges(r), Work::StorageChunk { account, root, origin }) => {
                self.on_storage_chunk(&mut batch, &req, r, account, root, origin)
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
                    p.answered(self.fill);
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
        // every leaf's full encoding in one buffer: no allocation per account
        let mut encoded = Vec::with_capacity(r.accounts.len() * 80);
        let mut ends = Vec::with_capacity(r.accounts.len());
        for a in &r.accounts {
            match Account::decode_slim(&a.body) {
                Ok(acc) => {
                    keys.push(a.hash);
                    acc.encode_full_into(&mut encoded);
                    ends.push(encoded.len());
                    accounts.push(acc);
                }
                Err(e) => return Verdict::Fault(format!("bad account body: {e}")),
            }
        }
        let values: Vec<&[u8]> =
            ends.iter().scan(0, |start, &end| Some(&encoded[std::mem::replace(start, end)..end])).collect();
        let mut built = self.take_scratch(keys.len());
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
        if has_more {
            self.fill = body_bytes as f64 / req.bytes.max(1) as f64;
        }
        let mut last_kept = None;
        let mut dirty = Vec::with_capacity(keys.len());
        batch.accounts.reserve(keys.len());
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
            &built,
            &keys,
            kept,
            &|i| dirty[i],
            &mut batch.nodes,
        );
        self.return_scratch(built);
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
        // complete sets' trie nodes go straight into the batch (taken out again on a fault)
        let nodes_start = batch.nodes.len();
        let mut built_sets: Vec<B256> = Vec::new();
        let mut proven_nodes: Option<(B256, B256, Vec<B256>, Collected)> = None;
        if n == 0 {
            // proof that nothing is left at or after the origin of the first account
            let (acct, root) = accounts[0];
            match verify_range::<Vec<u8>, _>(root, &origin, &[], &[], &r.proof) {
                Ok(_) => outcome.push((acct, true, None)),
                Err(e) => return Verdict::Fault(format!("storage proof: {e}")),
            }
        }
        // one (key, value) buffer for every unproven set of the reply
        let mut pairs: Vec<(B256, &[u8])> = Vec::new();
        for (i, set) in r.slots.iter().enumerate() {
            let (acct, root) = accounts[i];
            let first_origin = if i == 0 { origin } else { B256::ZERO };
            let last = i + 1 == n;
            let proven = last && !r.proof.is_empty();
            if proven {
                let keys: Vec<B256> = set.iter().map(|s| s.hash).collect();
                let values: Vec<&[u8]> = set.iter().map(|s| &s.data[..]).collect();
                let mut built = self.take_scratch(keys.len());
                match verify_range_nodes(root, &first_origin, &keys, &values, &r.proof, &mut |n| {
                    built.push(n)
                }) {
                    Ok(more) => outcome.push((
                        {
                            if more {
                                self.fill = bytes as f64 / req.bytes.max(1) as f64;
                            }
                            acct
                        },
                        !more,
                        if more { keys.last().and_then(|k| inc(*k)) } else { None },
                    )),
                    Err(e) => {
                        batch.nodes.truncate(nodes_start);
                        return Verdict::Fault(format!("storage proof: {e}"));
                    }
                }
                proven_nodes = Some((acct, root, keys, built));
            } else {
                let malformed = if first_origin != B256::ZERO {
                    Some("continuation without proof")
                } else if set.windows(2).any(|w| w[0].hash >= w[1].hash) {
                    Some("slots out of order")
                } else if set.iter().any(|s| s.data.is_empty()) {
                    Some("empty slot value")
                } else {
                    None
                };
                if let Some(reason) = malformed {
                    batch.nodes.truncate(nodes_start);
                    return Verdict::Fault(reason.into());
                }
                // Verify by building the trie: when the root matches, its nodes are exactly the
                // account's storage trie, stored at once instead of rebuilt later.
                pairs.clear();
                pairs.extend(set.iter().map(|s| (s.hash, &s.data[..])));
                let before = batch.nodes.len();
                batch.nodes.reserve(2 * pairs.len(), 96 * pairs.len());
                let computed = build(&pairs, &mut |n| batch.nodes.push(n.hash, n.rlp));
                if computed != root {
                    batch.nodes.truncate(nodes_start);
                    return Verdict::Fault(format!("storage set {i} does not hash to its root"));
                }
                // kept only for a task still waiting for its whole trie
                if self.progress.storage.get(&acct).is_some_and(|t| t.next == B256::ZERO && !t.complete) {
                    built_sets.push(acct);
                } else {
                    batch.nodes.truncate(before);
                }
                outcome.push((acct, true, None));
            }
        }
        batch.slots.reserve(r.slots.iter().map(Vec::len).sum());
        for (i, set) in r.slots.iter().enumerate() {
            let acct = accounts[i].0;
            for s in set {
                batch.slots.push((acct, s.hash, SlotValue::from(&s.data[..])));
            }
        }
        for acct in built_sets {
            if let Some(t) = self.progress.storage.get_mut(&acct) {
                t.built = true;
            }
        }
        if let Some((acct, root, keys, built)) = proven_nodes {
            if self.progress.storage.get(&acct).is_some_and(|t| t.root == root && !t.complete) {
                let ranges = self.ranges.storage.entry(acct).or_default();
                if ranges.tag != root {
                    *ranges = RangeNodes::new(root);
                }
                ranges.add(&built, &keys, keys.len(), &|_| false, &mut batch.nodes);
            }
            self.return_scratch(built);
        }
        for (acct, complete, next) in outcome {
            if let Some(t) = self.progress.storage.get_mut(&acct) {
                match next {
                    Some(n) if !complete => t.next = n,
                    _ => {
                        t.complete = true;
                        self.newly_complete.push(acct);
                    }
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
        self.fill = got.len() as f64 / hashes.len().max(1) as f64;
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

    /// A trie-node reply to a request given up at a pivot move: what hashes right is kept for
    /// the healer (no verdict on the peer either way: the request no longer counts).
    fn adopt(&mut self, store: &dyn SyncStore, r: TrieNodes, items: Vec<HealItem>) {
        if r.nodes.len() > items.len() {
            return;
        }
        let Ok((delivered, _)) = match_nodes(&items, r.nodes.into_iter().map(|b| b.to_vec()).collect())
        else {
            return;
        };
        for (item, rlp) in delivered {
            match &mut self.healer {
                Some(h) => h.cache_node(store, item.hash, rlp),
                None => {
                    if self.heal_cache.len() < Healer::CACHE_NODES && !store.has_node(&item.hash) {
                        self.heal_cache.insert(item.hash, rlp);
                    }
                }
            }
        }
        self.dirty = true;
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
                    self.fill = delivered.len() as f64 / items.len().max(1) as f64;
                    for (item, rlp) in delivered {
                        healer.on_node(store, batch, &item, rlp);
                    }
                    healer.drain_cached(store, batch);
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
        self.unsaved_bytes += batch_bytes(&batch);
        if self.dirty && self.record_due() {
            batch.progress = Some(self.progress_record(store));
        }
        self.commit(store, batch);
        if self.dirty {
            self.dirty = false;
            self.build_finished(store, false);
        }
    }

    /// The progress serialised, into the buffer of a record the store no longer needs when it
    /// kept one (a record is megabytes once many contracts are pending: no fresh pages per reply).
    fn progress_record(&mut self, store: &mut dyn SyncStore) -> Vec<u8> {
        let mut out = store.spare_progress().unwrap_or_default();
        self.progress.write_to(&mut out);
        self.unsaved_bytes = 0;
        self.record_len = out.len() as u64;
        out
    }

    /// Whether enough data was committed since the last progress record to write another.
    /// The record is rewritten whole (megabytes while thousands of contracts wait for their
    /// storage), so writing it with every reply would cost more than the data itself; a record
    /// every [`RECORD_EVERY`] times its own size keeps that cost a fraction of the data's,
    /// and a crash then refetches at most that much. A lagging record is safe: it never claims
    /// data that is not committed, and everything is written idempotently.
    fn record_due(&self) -> bool {
        self.unsaved_bytes >= RECORD_EVERY * self.record_len
    }

    /// The reusable node buffer, emptied, with room for a range of `leaves` leaves; give it
    /// back with [`Syncer::return_scratch`].
    fn take_scratch(&mut self, leaves: usize) -> Collected {
        let mut c = std::mem::take(&mut self.scratch);
        c.clear();
        c.reserve(2 * leaves);
        c
    }

    fn return_scratch(&mut self, c: Collected) {
        self.scratch = c;
    }

    /// Builds and stores trie nodes over finished storage tries and account chunks, and
    /// persists the progress.
    pub fn generate(&mut self, store: &mut dyn SyncStore) {
        self.build_finished(store, true);
    }

    /// [`Syncer::generate`]; the progress is written when it changed here or when `persist`
    /// (callers that have just committed it pass false and save a copy per reply).
    fn build_finished(&mut self, store: &mut dyn SyncStore, persist: bool) {
        let mut batch = self.take_batch(store);
        let done: Vec<B256> = if std::mem::take(&mut self.rescan) {
            self.newly_complete.clear();
            self.progress.storage.iter().filter(|(_, t)| t.complete).map(|(a, _)| *a).collect()
        } else {
            // in key order, each once: as the scan of every task would give them
            let mut done = std::mem::take(&mut self.newly_complete);
            done.sort_unstable();
            done.dedup();
            done.retain(|a| self.progress.storage.get(a).is_some_and(|t| t.complete));
            done
        };
        for acct in &done {
            let ranges = self.ranges.storage.remove(acct);
            if let Some(t) = self.progress.storage.get(acct).filter(|t| !t.built) {
                let ranges = ranges.filter(|r| r.tag == t.root).unwrap_or_default();
                let slots = store.slots_of(acct);
                ranges.generate(slots, &|_| true, &|_| true, &mut batch.nodes);
            }
            if let Some(t) = self.progress.storage.remove(acct) {
                self.progress.tasks[t.chunk].pending.remove(&(*acct, Need::Storage));
            }
        }
        let mut changed = !done.is_empty();
        if changed {
            // storage nodes must be visible before account chunks check for them
            store.commit(std::mem::take(&mut batch));
            batch = self.take_batch(store);
        }
        for i in 0..self.progress.tasks.len() {
            let t = &self.progress.tasks[i];
            if t.generated || !t.fetched || !t.pending.is_empty() {
                continue;
            }
            let ranges = self.ranges.accounts.remove(&i).unwrap_or_default();
            generate_chunk(store, t, ranges, &mut batch);
            self.progress.tasks[i].generated = true;
            changed = true;
        }
        self.unsaved_bytes += batch_bytes(&batch);
        if persist || (changed && self.record_due()) {
            batch.progress = Some(self.progress_record(store));
        }
        self.commit(store, batch);
    }

    /// An empty write batch, reusing the buffers of an earlier one when there is one.
    fn take_batch(&mut self, store: &mut dyn SyncStore) -> WriteBatch {
        self.spare.take().or_else(|| store.spare_batch()).unwrap_or_default()
    }

    /// Commits `batch` unless it is empty, in which case its buffers are kept for the next.
    fn commit(&mut self, store: &mut dyn SyncStore, batch: WriteBatch) {
        if batch.is_empty() {
            self.spare = Some(batch);
        } else {
            store.commit(batch);
        }
    }

    fn send(&mut self, now: u64, peer: PeerId, kind: Kind, bytes: u64, work: Work, msg: Message) -> Action {
        let expect = self.expected_reply(bytes, &work);
        let p = self.peers.entry(peer).or_default();
        p.sent(kind);
        let finish = p.plan.finish(now, expect);
        let deadline = now + p.deadline_ms(&self.cfg, now, finish);
        if self.cfg.sizing == SizingPolicy::Adaptive {
            p.plan.add(now, expect);
        }
        let id = msg.request_id().unwrap_or_default();
        self.requests.insert(
            id,
            InFlight { peer, kind, root: self.progress.root, sent_at: now, deadline, bytes, work },
        );
        self.stats.kind(kind).sent += 1;
        Action::Send { peer, msg }
    }

    /// The reply size a request is expected to bring: its byte budget, or less when it asks for
    /// few items (codes, trie nodes, a small storage bundle) or for the rest of an account
    /// chunk holding fewer bytes than that (from the density of the accounts fetched so far).
    fn expected_reply(&self, bytes: u64, work: &Work) -> u64 {
        let items = |n: usize, each: u64| bytes.min(n as u64 * each).max(1);
        match work {
            Work::Codes { hashes, .. } => items(hashes.len(), prior::CODE_BYTES),
            Work::Heal { items: list } => items(list.len(), prior::NODE_BYTES),
            Work::Storage { accounts, origin } if *origin == B256::ZERO => {
                items(accounts.len(), self.bundle_bytes())
            }
            Work::Storage { .. } => bytes,
            Work::StorageChunk { account, origin, .. } => {
                let i = self
                    .sched
                    .splits
                    .get(account)
                    .and_then(|s| s.chunks.iter().position(|c| c.next == *origin));
                match (self.sched.splits.get(account), i) {
                    (Some(s), Some(i)) => bytes.min(s.expected_bytes(i) + 4096),
                    _ => bytes,
                }
            }
            Work::Accounts { origin, limit, .. } => {
                let frac = |h: &B256| {
                    u64::from_be_bytes(h.0[..8].try_into().unwrap_or_default()) as f64 / u64::MAX as f64
                };
                let fetched: f64 = self
                    .progress
                    .tasks
                    .iter()
                    .map(|t| {
                        if t.fetched {
                            frac(&t.last) - frac(&t.start)
                        } else {
                            frac(&t.next) - frac(&t.start)
                        }
                    })
                    .sum();
                if fetched < 1e-3 {
                    return bytes;
                }
                let density = self.stats.account_range.bytes_in as f64 / fetched;
                let left = (frac(limit) - frac(origin)).max(0.0);
                // a little over, so an estimate on the short side does not starve the link
                bytes.min((density * left * 1.25) as u64 + 4096)
            }
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Assigns queued work to idle peers.
    pub fn poll(&mut self, now: u64, store: &mut dyn SyncStore) -> Vec<Action> {
        let mut out = Vec::new();
        if self.progress.root == EMPTY_ROOT {
            // an empty state has no ranges to fetch (a peer's empty reply would read as
            // "lacks the root")
            for t in self.progress.tasks.iter_mut().filter(|t| !t.fetched) {
                t.fetched = true;
                self.dirty = true;
            }
        }
        if self.dirty {
            // e.g. a pivot move abandoned storage work: chunks may be ready to build now
            self.flush(store, WriteBatch::default());
        }
        if self.healer.is_none()
            && self.accounts_done()
            && self.progress.storage.is_empty()
            && self.progress.codes.is_empty()
        {
            let mut healer =
                Healer::with_cache(self.progress.root, store, std::mem::take(&mut self.heal_cache));
            let mut batch = WriteBatch::default();
            healer.drain_cached(store, &mut batch);
            self.healer = Some(healer);
            if !batch.is_empty() {
                self.flush(store, batch);
            }
        }
        if self.cfg.sizing == SizingPolicy::Adaptive {
            return self.poll_adaptive(now, store);
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
        // Peers that never answered and timed out twice in a row sit out while a peer that
        // answers is usable (their benches expiring would otherwise hand them work, to lose it
        // for a whole timeout, at every round); they are asked again when no such peer is left.
        let unproven = |p: &PeerState| p.ok == 0 && p.timeouts_in_row >= 2;
        if order.iter().any(|(id, _)| self.peers.get(id).is_some_and(|p| p.ok > 0)) {
            order.retain(|(id, _)| self.peers.get(id).is_some_and(|p| !unproven(p)));
        }
        // Healing is pipelined whatever the sizing policy: a heal walks the trie level by level,
        // and with one request in flight per peer every lost message would stall the whole walk
        // for a timeout - on a churning chain with few peers the heal then never catches up with
        // the pivot (geth's healing-never-ends weakness). Range requests keep the policies' own
        // one-per-peer-per-kind discipline, which is what the sizing comparisons measure.
        // Extra heal requests go only to peers that answer (a reply and no timeout since).
        let heal_depth = self.cfg.concurrency.clamp(1, HEAL_PIPELINE);
        for round in 0..heal_depth {
            for (peer, _) in &order {
                let peer = *peer;
                for kind in [Kind::TrieNodes, Kind::Storage, Kind::Codes, Kind::Accounts] {
                    if self.requests.len() >= self.cfg.concurrency {
                        return out;
                    }
                    let healing = self.healer.is_some() && matches!(kind, Kind::TrieNodes | Kind::Codes);
                    if round > 0
                        && !(healing
                            && self.peers.get(&peer).is_some_and(|p| p.ok > 0 && p.timeouts_in_row == 0))
                    {
                        continue;
                    }
                    let room = self.peers.get(&peer).is_some_and(|p| {
                        p.benched_until <= now
                            && p.in_flight[kind.index()] < if healing { heal_depth as u32 } else { 1 }
                    });
                    if !room {
                        continue;
                    }
                    if let Some(a) = self.assign(now, peer, kind, Pick::Any) {
                        out.push(a);
                    }
                }
            }
        }
        out
    }

    /// The adaptive scheduler. Each peer is modelled as a round trip plus a reply bandwidth
    /// ([`Plan`]); several requests may be in flight to it, enough to keep its link busy. Work
    /// goes to the peer that would deliver it first, serial work (account chunks, continued
    /// storage of a large contract, healing) only to peers close to the best, and work held by a
    /// peer much slower than one with room moves over: critical work at once, the rest once
    /// nothing else is left to do.
    fn poll_adaptive(&mut self, now: u64, store: &mut dyn SyncStore) -> Vec<Action> {
        let mut out = Vec::new();
        self.learn_bundles();
        self.split_large_contracts(store);
        let arrivals = self.plan_peers(now);
        let usable: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| {
                self.stateless.get(id).is_none_or(|until| *until <= now) && p.benched_until <= now
            })
            .map(|(id, _)| *id)
            .collect();
        if usable.is_empty() {
            return out;
        }
        self.explore(now, &usable, &mut out);
        let limit = 2 * usable.len();
        let mut moves = 0;
        loop {
            // serial or stalled work first moves to the peer that answers it much sooner...
            if moves < limit {
                if let Some((id, thief)) = self.move_candidate(now, &usable, &arrivals, false) {
                    out.extend(self.take_back(now, id, &arrivals));
                    moves += 1;
                    out.extend(self.assign_next(now, thief, true));
                    continue;
                }
            }
            // ...then peers with room get work, and once it runs out, the work that would
            // finish last moves too
            let exhausted = self.fill(now, &usable, &mut out);
            if !exhausted || moves >= limit {
                break;
            }
            match self.move_candidate(now, &usable, &arrivals, true) {
                Some((id, thief)) => {
                    out.extend(self.take_back(now, id, &arrivals));
                    moves += 1;
                    out.extend(self.assign_next(now, thief, true));
                }
                None => break,
            }
        }
        out
    }

    /// Asks every peer about as quick as the best, once, for codes if it was never asked for
    /// any: a peer serving bad codes shows early, not in the last requests of the sync (range
    /// replies are checked from the first request every peer gets, an account range).
    fn explore(&mut self, now: u64, usable: &[PeerId], out: &mut Vec<Action>) {
        let reference = 256 * 1024;
        let finish =
            |s: &Self, p: &PeerId| s.peers.get(p).map_or(f64::MAX, |x| x.plan.finish(now, reference));
        let best = usable.iter().map(|p| finish(self, p)).fold(f64::MAX, f64::min);
        for (kind, pick) in [(Kind::Codes, Pick::Any)] {
            for peer in usable {
                if self.requests.len() >= self.cfg.concurrency {
                    return;
                }
                let Some(p) = self.peers.get(peer) else { continue };
                if p.asked[kind.index()] > 0 || !p.plan.known || !p.plan.room(now) {
                    continue;
                }
                if finish(self, peer) - now as f64 > 2.0 * (best - now as f64) + 20.0 {
                    continue;
                }
                if let Some(a) = self.assign(now, *peer, kind, pick) {
                    out.push(a);
                }
            }
        }
    }

    /// The next request for `peer`, work in order of priority: discovery first (accounts, then
    /// storage bundles, which find the large contracts, to be split into chunks that keep every
    /// peer busy until the end), codes, chains of a split contract, healing. Serial work
    /// (accounts, chains, healing) only if `serial`.
    fn assign_next(&mut self, now: u64, peer: PeerId, serial: bool) -> Option<Action> {
        for (kind, pick) in [
            (Kind::Accounts, Pick::Any),
            (Kind::Storage, Pick::Bundles),
            (Kind::Codes, Pick::Any),
            (Kind::Storage, Pick::Serial),
            (Kind::TrieNodes, Pick::Any),
        ] {
            let chain = matches!(kind, Kind::Accounts | Kind::TrieNodes) || pick == Pick::Serial;
            if chain && !serial {
                continue;
            }
            if let Some(a) = self.assign(now, peer, kind, pick) {
                return Some(a);
            }
        }
        None
    }

    /// Folds reply timings into each peer's link model and plans every peer: effective round
    /// trip and bandwidth, and when its requests in flight will have been answered. Returns the
    /// expected arrival (ms) of every request in flight.
    fn plan_peers(&mut self, now: u64) -> BTreeMap<u64, f64> {
        for p in self.peers.values_mut() {
            p.link.absorb(now);
            p.link.adaptive = true;
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        };
        let rtt0 = median(self.peers.values().filter(|p| p.link.known()).map(|p| p.link.rtt_ms).collect())
            .unwrap_or(prior::RTT_MS);
        let rtt_min =
            self.peers.values().filter(|p| p.link.known()).map(|p| p.link.rtt_ms).fold(rtt0, f64::min);
        let bw0 = median(self.peers.values().filter(|p| p.link.bw > 0.0).map(|p| p.link.bw).collect())
            .unwrap_or(prior::BW);
        let mut by_peer: BTreeMap<PeerId, Vec<(u64, u64, u64)>> = BTreeMap::new();
        for (id, r) in &self.requests {
            // a peer that answers only part of what it is asked (it caps its replies) sends
            // that much less: its link is free sooner, and more requests fit in flight
            let fill = self.peers.get(&r.peer).map_or(1.0, |p| p.fill.clamp(0.05, 1.0));
            let exp = (self.expected_reply(r.bytes, &r.work) as f64 * fill) as u64;
            by_peer.entry(r.peer).or_default().push((*id, r.sent_at, exp.max(1)));
        }
        let usable_peers = self
            .peers
            .iter()
            .filter(|(id, p)| {
                self.stateless.get(id).is_none_or(|until| *until <= now) && p.benched_until <= now
            })
            .count()
            .max(1) as u64;
        // the work left is shared among the requests that can be in flight at once: no more
        // than the usable peers, nor than the concurrency allows (with one request at a time,
        // that one takes everything)
        let parallel = usable_peers.min(self.cfg.concurrency.max(1) as u64);
        let fair = self.queued_bytes().map_or(u64::MAX, |q| q / parallel);
        let mut arrivals = BTreeMap::new();
        for (id, p) in self.peers.iter_mut() {
            let known = p.link.known();
            // a peer never asked is assumed quicker than the quickest measured one, so it gets
            // asked once: with few requests in flight (low concurrency) a peer assumed merely
            // average would never be tried, however fast it is
            let untried = !known && p.ok == 0 && p.timeouts_in_row == 0 && p.asked.iter().all(|n| *n == 0);
            let prior_rtt = if untried { 0.5 * rtt_min } else { rtt0 };
            let mut rtt = if known { p.link.rtt_ms } else { prior_rtt }.max(p.link.floor_ms).max(1.0);
            let bw = if p.link.bw > 0.0 { p.link.bw } else { bw0 };
            let depth = (self.cfg.concurrency as u64 / usable_peers).max(2) as u32;
            let list = by_peer.get(id).map(Vec::as_slice).unwrap_or_default();
            let mut late = 0.0;
            if let Some(&(_, sent, exp)) = list.first() {
                // the oldest reply is overdue: the peer is slower than measured, by as much again
                let due = (sent as f64 + rtt).max(p.link.busy_until) + exp as f64 * 1000.0 / bw;
                let slack = (2.0 * p.link.rtt_dev).max(0.5 * (due - sent as f64)).max(20.0);
                if due + slack < now as f64 {
                    late = now as f64 - due;
                    rtt += 2.0 * late;
                }
            }
            let mut free = f64::MIN;
            let mut next = f64::MAX;
            for &(rid, sent, exp) in list {
                free = free.max(sent as f64 + rtt) + exp as f64 * 1000.0 / bw;
                next = next.min(free);
                arrivals.insert(rid, free);
            }
            let rtt_high = rtt + 2.0 * p.link.rtt_dev;
            let base_rtt =
                if known { p.link.rtt_ms } else { prior_rtt }.max(p.link.floor_ms) + 2.0 * p.link.rtt_dev;
            p.plan = Plan {
                rtt,
                base_rtt,
                // half the request timeout, but never so short that no reply fits in it
                horizon: (0.5 * self.cfg.request_timeout_ms as f64).max(2.0 * rtt_high),
                share: fair,
                rtt_high,
                bw,
                free_at: free.max(now as f64).max(p.link.busy_until),
                next_at: next,
                in_flight: list.len() as u32,
                known,
                bw_known: p.link.bw > 0.0,
                depth,
                late,
            };
        }
        arrivals
    }

    /// Gives work to peers with room, best first, until none has room or the work runs out
    /// (returns true then).
    fn fill(&mut self, now: u64, usable: &[PeerId], out: &mut Vec<Action>) -> bool {
        let reference = 256 * 1024;
        let mut skip: BTreeSet<PeerId> = BTreeSet::new();
        loop {
            if self.requests.len() >= self.cfg.concurrency {
                return false;
            }
            let finish =
                |s: &Self, p: PeerId| s.peers.get(&p).map_or(f64::MAX, |x| x.plan.finish(now, reference));
            let best_any = usable.iter().map(|p| finish(self, *p)).fold(f64::MAX, f64::min);
            let Some(peer) = usable
                .iter()
                .copied()
                .filter(|p| !skip.contains(p) && self.peers.get(p).is_some_and(|x| x.plan.room(now)))
                .min_by(|a, b| finish(self, *a).total_cmp(&finish(self, *b)).then(a.cmp(b)))
            else {
                return false;
            };
            // serial work only to a peer about as quick as the best one
            let critical_ok = finish(self, peer) - now as f64 <= 1.5 * (best_any - now as f64) + 20.0;
            match self.assign_next(now, peer, critical_ok) {
                Some(a) => out.push(a),
                None if critical_ok => return true,
                None => {
                    skip.insert(peer);
                }
            }
        }
    }

    /// The request in flight that another peer with room would answer much sooner, the largest
    /// gain first: any request of a peer that is late (slower than measured); a request in a
    /// chain (account chunk, storage chunk, healing) when the other peer is at least twice as
    /// quick; and once nothing else is left to do (`any`), one of those that finish last.
    fn move_candidate(
        &self,
        now: u64,
        usable: &[PeerId],
        arrivals: &BTreeMap<u64, f64>,
        any: bool,
    ) -> Option<(u64, PeerId)> {
        let now_f = now as f64;
        let end = arrivals.values().fold(now_f, |a, b| a.max(*b));
        let mut best: Option<(f64, u64, PeerId)> = None;
        for (id, r) in &self.requests {
            let Some(&due) = arrivals.get(id) else { continue };
            let Some(owner) = self.peers.get(&r.peer) else { continue };
            let critical =
                matches!(r.work, Work::Accounts { .. } | Work::Heal { .. } | Work::StorageChunk { .. })
                    || matches!(r.work, Work::Storage { origin, .. } if origin != B256::ZERO);
            // stalled: later than its peer's model says by more than the request should take
            // (a reply merely bigger than expected is late by less)
            let sent = r.sent_at as f64;
            let overdue = owner.plan.late > (2.0 * owner.plan.rtt_high).max(due - sent);
            let exp = self.expected_reply(r.bytes, &r.work);
            let Some((thief, to)) = usable
                .iter()
                .filter(|p| **p != r.peer)
                .filter_map(|p| self.peers.get(p).map(|x| (x, *p)))
                .filter(|(x, _)| x.plan.room(now))
                .map(|(x, p)| (x.plan.finish(now, exp), p))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
            else {
                continue;
            };
            // not one just sent to a measured peer, unless that peer stalls
            if !overdue && owner.plan.known && now_f - sent < 0.5 * owner.plan.rtt {
                continue;
            }
            let gain = due - thief;
            let margin = 40f64.max(0.5 * (thief - now_f)).max(0.25 * (due - now_f));
            let eligible = overdue
                || (critical && gain > (2.0 * (thief - now_f)).max(margin) && now_f - sent >= owner.plan.rtt)
                || (any && due >= end - margin);
            if eligible && gain > margin && best.is_none_or(|(g, _, _)| gain > g) {
                best = Some((gain, *id, to));
            }
        }
        best.map(|(_, id, to)| (id, to))
    }

    /// Takes a request back from its peer (no penalty: it is merely slow) and re-queues its work.
    /// Its reply, if it comes, is ignored; until then it still occupies the peer's link.
    /// Returns the `TimedOut` record when the request counts as timed out (its peer never
    /// answered).
    fn take_back(&mut self, now: u64, id: u64, arrivals: &BTreeMap<u64, f64>) -> Option<Action> {
        let r = self.requests.remove(&id)?;
        let mut timed_out = None;
        if let Some(p) = self.peers.get_mut(&r.peer) {
            p.finished(r.kind);
            let age = now.saturating_sub(r.sent_at) as f64;
            if !p.link.known() {
                // Never answered: for all we know it does not, so this counts as a timeout (but
                // no bench: its next probe, given four times as long, may show it merely slow).
                self.stats.kind(r.kind).timed_out += 1;
                timed_out = Some(Action::TimedOut { peer: r.peer, kind: r.kind, request_id: id });
                self.penalised.insert(r.peer);
                p.penalised = true;
                p.link.floor_ms = p.link.floor_ms.max(4.0 * age);
            } else {
                self.stats.kind(r.kind).cancelled += 1;
                if p.plan.late > 0.0 {
                    // slower than thought, but it may answer soon: the next request gets twice
                    // as long
                    p.link.floor_ms = p.link.floor_ms.max(2.0 * age);
                }
            }
            let due = arrivals.get(&id).copied().unwrap_or(now as f64);
            p.link.busy_until = p.link.busy_until.max(due);
            p.link.reassigned += 1;
            p.plan.in_flight = p.plan.in_flight.saturating_sub(1);
            p.plan.rtt = p.plan.rtt.max(p.link.floor_ms);
        }
        self.revert(r.work);
        timed_out
    }

    /// Builds one request of `kind` for `peer` from queued work; `pick` says which storage work.
    fn assign(&mut self, now: u64, peer: PeerId, kind: Kind, pick: Pick) -> Option<Action> {
        let adaptive = self.cfg.sizing == SizingPolicy::Adaptive;
        let p = self.peers.get(&peer)?.clone();
        let root = self.progress.root;
        match kind {
            Kind::Accounts => {
                let chunk = (0..self.progress.tasks.len())
                    .find(|i| !self.progress.tasks[*i].fetched && !self.account_chunk_busy(*i))?;
                let t: &AccountTask = &self.progress.tasks[chunk];
                let (origin, limit) = (t.next, t.last);
                let bytes = if adaptive {
                    p.plan.serial_bytes()
                } else {
                    p.range_bytes(&self.cfg, self.cfg.account_bytes)
                };
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
                let mut bytes = p.range_bytes(&self.cfg, self.cfg.storage_bytes);
                if pick != Pick::Bundles {
                    if let Some(a) = self.assign_chunk(now, peer, &p) {
                        return Some(a);
                    }
                }
                // a continuation (large contract) goes alone, with its origin
                let cont = self.progress.storage.iter().find(|(a, t)| {
                    pick != Pick::Bundles
                        && !t.complete
                        && t.next != B256::ZERO
                        && !self.storage_in_flight.contains(*a)
                        && !self.sched.splits.contains_key(*a)
                });
                let (accounts, origin) = if let Some((a, t)) = cont {
                    if adaptive {
                        bytes = p.plan.serial_bytes();
                    }
                    (vec![(*a, t.root)], t.next)
                } else {
                    let max = if adaptive {
                        // a budget of twice the claim: a large contract stops the reply there
                        let claim = p.plan.claim_bytes();
                        bytes = bytes.min((2 * claim).max(caps::MIN_RESPONSE_BYTES));
                        (claim / self.bundle_bytes().max(1)) as usize
                    } else {
                        (bytes / 1024) as usize
                    }
                    .clamp(1, caps::MAX_STORAGE_ACCOUNTS);
                    let accts: Vec<(B256, B256)> = self
                        .progress
                        .storage
                        .iter()
                        .filter(|(a, t)| {
                            pick != Pick::Serial
                                && !t.complete
                                && t.next == B256::ZERO
                                && !self.storage_in_flight.contains(*a)
                        })
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
                if adaptive && origin == B256::ZERO {
                    self.sched.bundles.insert(id, (bytes, accounts.iter().map(|(a, _)| *a).collect()));
                }
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
                let n = if adaptive {
                    p.adaptive_items(prior::CODE_BYTES, self.cfg.max_codes, caps::MAX_CODES)
                } else {
                    p.item_count(&self.cfg, self.cfg.max_codes, caps::MAX_CODES)
                };
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
                let n = if adaptive {
                    p.adaptive_items(prior::NODE_BYTES, self.cfg.max_trie_nodes, caps::MAX_TRIE_NODES)
                } else {
                    // no more nodes than the reply's byte budget holds (the rest would come back
                    // unanswered and wait for the next round trip): pipelined requests share them
                    let fit = (p.range_bytes(&self.cfg, self.cfg.account_bytes) / prior::NODE_BYTES).max(1);
                    p.item_count(&self.cfg, self.cfg.max_trie_nodes, caps::MAX_TRIE_NODES).min(fit as usize)
                };
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

    /// Bytes of the work queued and not in flight, roughly; `None` while the account ranges
    /// still hide an unknown amount of it.
    fn queued_bytes(&self) -> Option<u64> {
        if self.progress.tasks.iter().any(|t| !t.fetched) {
            return None;
        }
        let mut total = 0u64;
        let live = |req: Option<u64>| req.is_some_and(|id| self.requests.contains_key(&id));
        for (a, t) in &self.progress.storage {
            if t.complete || self.storage_in_flight.contains(a) {
                continue;
            }
            total += match self.sched.splits.get(a) {
                Some(s) => (0..s.chunks.len())
                    .filter(|i| !s.chunks[*i].done && !live(s.chunks[*i].req))
                    .map(|i| s.expected_bytes(i))
                    .sum(),
                None if t.next != B256::ZERO => 2 * SPLIT_CHUNK_BYTES as u64,
                None => self.bundle_bytes(),
            };
        }
        let codes = self.progress.codes.keys().filter(|h| !self.codes_in_flight.contains(*h)).count();
        total += codes as u64 * prior::CODE_BYTES;
        if let Some(h) = &self.healer {
            total +=
                h.queued_nodes() as u64 * prior::NODE_BYTES + h.queued_codes() as u64 * prior::CODE_BYTES;
        }
        Some(total)
    }

    /// Expected storage bytes per bundled account.
    fn bundle_bytes(&self) -> u64 {
        if self.sched.bundle_bytes > 0.0 {
            (self.sched.bundle_bytes as u64).clamp(256, 256 * 1024)
        } else {
            prior::STORAGE_BYTES
        }
    }

    /// Learns how much storage a bundled account brings from the bundles that came back.
    fn learn_bundles(&mut self) {
        let done: Vec<u64> =
            self.sched.bundles.keys().filter(|id| !self.requests.contains_key(*id)).copied().collect();
        for id in done {
            let Some((budget, accounts)) = self.sched.bundles.remove(&id) else { continue };
            let delivered = accounts
                .iter()
                .filter(|a| self.progress.storage.get(*a).is_none_or(|t| t.complete || t.next != B256::ZERO))
                .count();
            self.sched.bundle_done(budget, accounts.len(), delivered);
        }
    }

    /// Splits the storage of every contract being continued into parallel chunks, as many as
    /// its fetched slots, spread over the key space they cover, promise chunks' worth after
    /// them (one for a contract nearly done: a chain of one, whose size is then known).
    fn split_large_contracts(&mut self, store: &mut dyn SyncStore) {
        let storage = &self.progress.storage;
        self.sched.splits.retain(|a, s| storage.get(a).is_some_and(|t| !t.complete && t.root == s.root));
        let candidates: Vec<(B256, B256, B256)> = self
            .progress
            .storage
            .iter()
            .filter(|(a, t)| {
                !t.complete
                    && t.next != B256::ZERO
                    && !self.storage_in_flight.contains(*a)
                    && !self.sched.splits.contains_key(*a)
            })
            .map(|(a, t)| (*a, t.root, t.next))
            .collect();
        for (account, root, next) in candidates {
            let covered = fraction(&next);
            if covered <= 0.0 || covered >= 1.0 {
                continue;
            }
            let held = store.slots_of(&account);
            let fetched: u64 = held.iter().map(|(_, v)| 35 + v.len() as u64).sum();
            // hashed keys are uniform: the slots so far over the key space they cover tell the
            // total, within a few percent once there are thousands (from a handful, the guess
            // could be off by orders of magnitude: no hint then)
            if held.len() >= SLOT_HINT_MIN {
                let expected = (held.len() as f64 / covered * 1.03).min(SLOT_HINT_MAX as f64);
                store.expect_slots(&account, expected as usize);
            }
            let density = fetched as f64 / covered;
            let remaining = density * (1.0 - covered);
            let count = ((remaining / SPLIT_CHUNK_BYTES) as usize).clamp(1, MAX_SPLIT_CHUNKS);
            self.sched.splits.insert(account, Split::new(root, next, count, density));
        }
    }

    /// The next request of a split contract's chunk not in flight, if any.
    fn assign_chunk(&mut self, now: u64, peer: PeerId, p: &PeerState) -> Option<Action> {
        let live = |req: Option<u64>| req.is_some_and(|id| self.requests.contains_key(&id));
        let (account, root, i) = self.sched.splits.iter().find_map(|(a, s)| {
            s.chunks.iter().position(|c| !c.done && !live(c.req)).map(|i| (*a, s.root, i))
        })?;
        let bytes = p.plan.serial_bytes();
        let id = self.id();
        let split = self.sched.splits.get_mut(&account)?;
        let chunk = split.chunks.get_mut(i)?;
        chunk.req = Some(id);
        let (origin, last) = (chunk.next, chunk.last);
        let msg = Message::GetStorageRanges(GetStorageRanges {
            request_id: id,
            root: self.progress.root,
            account_hashes: vec![account],
            starting_hash: (origin != B256::ZERO).then_some(origin),
            limit_hash: (last != B256::repeat_byte(0xff)).then_some(last),
            response_bytes: bytes,
        });
        Some(self.send(now, peer, Kind::Storage, bytes, Work::StorageChunk { account, root, origin }, msg))
    }

    /// A reply to a chunk of a split contract: verified like any storage range (from the
    /// chunk's origin, a proof required unless it is the whole trie), stored, and the chunk
    /// advanced or closed; the contract is complete once all its chunks are.
    fn on_storage_chunk(
        &mut self,
        batch: &mut WriteBatch,
        req: &InFlight,
        r: StorageRanges,
        account: B256,
        root: B256,
        origin: B256,
    ) -> Verdict {
        if r.slots.is_empty() && r.proof.is_empty() {
            return Verdict::Stateless;
        }
        if r.slots.len() > 1 {
            return Verdict::Fault(format!("{} slot sets for 1 account", r.slots.len()));
        }
        if r.proof.len() > caps::MAX_PROOF_NODES {
            return Verdict::Fault(format!("{} proof nodes", r.proof.len()));
        }
        let set = r.slots.into_iter().next().unwrap_or_default();
        let bytes: usize = set.iter().map(|s| 32 + s.data.len()).sum();
        if bytes as u64 > 2 * req.bytes.max(caps::MIN_RESPONSE_BYTES) + 4096 {
            return Verdict::Fault(format!("{bytes} storage bytes for a {} budget", req.bytes));
        }
        let keys: Vec<B256> = set.iter().map(|s| s.hash).collect();
        let values: Vec<&[u8]> = set.iter().map(|s| &s.data[..]).collect();
        // the verified chunk's exact subtrees: stored now, and stood in by hash when the
        // contract's trie is generated, instead of re-hashing its leaves then
        let mut built = self.take_scratch(keys.len());
        let more = if r.proof.is_empty() {
            // no proof: the keys must be the whole trie
            if origin != B256::ZERO {
                return Verdict::Fault("continuation without proof".into());
            }
            if keys.windows(2).any(|w| w[0] >= w[1]) || values.iter().any(|v| v.is_empty()) {
                return Verdict::Fault("bad slot order or empty value".into());
            }
            if crate::trie::root::root_from_sorted(keys.iter().copied().zip(values.iter().copied())) != root {
                return Verdict::Fault("storage set does not hash to its root".into());
            }
            false
        } else {
            match verify_range_nodes(root, &origin, &keys, &values, &r.proof, &mut |n| built.push(n)) {
                Ok(more) => more,
                Err(e) => return Verdict::Fault(format!("storage proof: {e}")),
            }
        };
        if more {
            self.fill = bytes as f64 / req.bytes.max(1) as f64;
        }
        batch.slots.reserve(set.len());
        for s in &set {
            batch.slots.push((account, s.hash, SlotValue::from(&s.data[..])));
        }
        let Some(split) = self.sched.splits.get_mut(&account).filter(|s| s.root == root) else {
            return Verdict::Ok;
        };
        split.delivered(origin, keys.last().copied(), more);
        let (complete, lowest) = (split.complete(), split.lowest_next());
        if self.progress.storage.get(&account).is_some_and(|t| t.root == root && !t.complete) {
            let ranges = self.ranges.storage.entry(account).or_default();
            if ranges.tag != root {
                *ranges = RangeNodes::new(root);
            }
            ranges.add(&built, &keys, keys.len(), &|_| false, &mut batch.nodes);
        }
        self.return_scratch(built);
        if let Some(t) = self.progress.storage.get_mut(&account).filter(|t| t.root == root) {
            if complete {
                t.complete = true;
                self.newly_complete.push(account);
            } else if let Some(n) = lowest {
                t.next = n;
            }
        }
        self.dirty = true;
        Verdict::Ok
    }

    /// Debug check: every unit of work is in exactly one place. Returns a description of the
    /// first violation.
    pub fn check_accounting(&self) -> Result<(), String> {
        let mut storage_live = BTreeSet::new();
        let mut code_live = BTreeSet::new();
        let mut chunks_live = BTreeSet::new();
        let mut chunks_of_storage = BTreeSet::new();
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
                Work::StorageChunk { account, origin, .. } => {
                    if !chunks_of_storage.insert((*account, *origin)) {
                        return Err(format!("storage chunk of {account} at {origin} in flight twice"));
                    }
                }
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

/// Most heal requests (trie nodes, codes) in flight to one peer under the non-adaptive policies.
const HEAL_PIPELINE: usize = 16;

/// Storage bytes per chunk a large contract is split into.
const SPLIT_CHUNK_BYTES: f64 = 128.0 * 1024.0;
/// Most chunks one contract is split into.
const MAX_SPLIT_CHUNKS: usize = 16;

/// Builds trie nodes over one fully fetched account chunk and stores those it can vouch for:
/// nodes whose whole key range lies inside the chunk and whose accounts all have their
/// storage and code stored. Boundary nodes are left for healing.
fn generate_chunk(store: &dyn SyncStore, t: &AccountTask, ranges: RangeNodes, batch: &mut WriteBatch) {
    let mut leaves = AccountLeaves(Vec::new());
    let mut dirty_before = vec![0u32];
    store.for_each_account_in(&t.start, &t.last, &mut |k, a| {
        let clean = (a.storage_root == EMPTY_ROOT || store.has_node(&a.storage_root))
            && (a.code_hash == EMPTY_CODE || store.code(&a.code_hash).is_some());
        dirty_before.push(dirty_before.last().copied().unwrap_or(0) + u32::from(!clean));
        leaves.0.push((*k, *a));
    });
    if leaves.0.is_empty() {
        return;
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

/// A chunk's flat accounts as trie leaves: a value (the full account encoding) is encoded only
/// when the generation builds that leaf.
struct AccountLeaves(Vec<(B256, Account)>);

impl Leaves for AccountLeaves {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn key(&self, i: usize) -> B256 {
        self.0[i].0
    }
    fn value_into(&self, i: usize, out: &mut Vec<u8>) {
        self.0[i].1.encode_full_into(out);
    }
}
