//! The thin async shell around the sans-IO [`Syncer`]: it talks to peers through a
//! [`Network`] of the shape a real p2p adapter offers, keeps the clock, follows the trusted
//! head, picks and moves the pivot, and walks the finished state.

use crate::codec::{
    BlockBodies, BlockBody, BlockHeaders, GetBlockBodies, GetBlockHeaders, Header, Limits, Message,
    NewBlockHashes,
};
use crate::pipeline::{
    insert_block, load_checkpoint, save_checkpoint, Checkpoint, ExecProgress, HeaderChain, HeaderOutcome,
    HeaderWant, InsertError, Inserted, Stage, StageId, Unwind, MAX_HEADERS,
};
use crate::primitives::B256;
use crate::store::SyncStore;
use crate::sync::walk::WalkStats;
use crate::sync::{verify_complete, Action, KindStats, PeerId, PlantedBug, SyncConfig, SyncStats, Syncer};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use tokio::time::Instant;
use tracing::{debug, info};

/// Something that happened on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// A peer connected.
    PeerJoined(PeerId),
    /// A peer disconnected.
    PeerLeft(PeerId),
    /// A message arrived from a peer, still encoded.
    Message {
        /// Sender.
        peer: PeerId,
        /// Wire bytes.
        bytes: Vec<u8>,
    },
    /// The consensus layer announced a new head (trusted, like an engine-API forkchoice).
    Head {
        /// Block number.
        number: u64,
        /// Block hash.
        hash: B256,
    },
    /// The host stops the node now (the simulator's crash): it must return at once.
    Shutdown,
}

/// The node's view of its p2p stack.
pub trait Network {
    /// Sends an encoded message to a peer.
    fn send(&mut self, peer: PeerId, bytes: Vec<u8>);
    /// Disconnects a peer for misbehaviour.
    fn disconnect(&mut self, peer: PeerId, reason: &str);
    /// Waits for the next event, or until `deadline` (returns `None` then).
    fn next_event(&mut self, deadline: Option<Instant>) -> impl Future<Output = Option<NetEvent>>;
    /// Reports a phase change (for traces and progress displays).
    fn phase(&mut self, _phase: &str) {}
    /// Reports a node-side event for the record (traces): `timeout` or `penalty`, the peer,
    /// and a short description. It must not change what happens.
    fn note(&mut self, _event: &str, _peer: Option<PeerId>, _detail: &str) {}
}

/// Node settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Downloader settings.
    pub sync: SyncConfig,
    /// Pivot = head - pivot_distance.
    pub pivot_distance: u64,
    /// Give up after this long (ms) without any accepted data.
    pub stall_timeout_ms: u64,
    /// Decoder limits.
    pub limits: Limits,
    /// Once at the head, follow this many more head announcements before reporting success.
    pub follow_blocks: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            sync: SyncConfig::default(),
            pivot_distance: 64,
            stall_timeout_ms: 600_000,
            limits: Limits::default(),
            follow_blocks: 0,
        }
    }
}

/// How a node run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeOutcome {
    /// The state at the pivot is stored and walked, and every block up to the head executed.
    Synced {
        /// Pivot block number.
        pivot: u64,
        /// Its state root.
        root: B256,
        /// What the completion walk saw.
        walk: WalkStats,
        /// Executed head block number.
        head: u64,
        /// Its hash.
        head_hash: B256,
        /// The state root after executing it.
        head_root: B256,
    },
    /// No progress for too long.
    Stalled {
        /// Why.
        reason: String,
    },
    /// A fatal error stopped the pipeline.
    Failed {
        /// Why.
        reason: String,
    },
    /// The host shut the node down (simulated crash).
    Interrupted,
}

/// Counters the driver keeps besides the downloader's.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct NodeStats {
    /// Downloader counters.
    pub sync: SyncStats,
    /// Header requests.
    pub headers: KindStats,
    /// Body requests.
    pub bodies: KindStats,
    /// Peers dropped, with the reason.
    pub dropped: Vec<(PeerId, String)>,
    /// Pivot block numbers used, in order.
    pub pivots: Vec<u64>,
    /// Peers penalised (timeouts, failed verification).
    pub penalised: Vec<PeerId>,
    /// Blocks inserted.
    pub blocks_inserted: u64,
    /// Blocks offered again that the node already had (ignored).
    pub known_blocks: u64,
    /// Reorgs followed.
    pub reorgs: u64,
}

/// A peer's claim to stand at a head block, from its announcements (`NewBlockHashes`, or a
/// `NewBlock`, which proves itself). Claims are never trusted for the target or the pivot: those
/// come only from the consensus layer's `Head`. A claim is checked by asking the peer for the
/// announced header; a peer that then lacks it lied. The record survives reconnects.
#[derive(Debug, Clone, Default)]
struct Claim {
    /// Highest block number announced, and its hash.
    number: u64,
    hash: B256,
    /// Highest announced number the peer proved it has (delivered that header or block).
    proven: u64,
    /// Checks passed.
    passed: u32,
    /// Proven lies: replies that arrived without headers the peer announced.
    lies: u32,
    /// No check before this time (ms).
    next_check: u64,
}

/// First wait before probing again a peer that served headers that do not link (ms).
const REPROBE_MS: u64 = 1_000;
/// How long (ms) the executed head must fail to close its gap to the trusted head before the
/// node gives up on keeping up with the chain.
const PACE_WINDOW_MS: u64 = 300_000;
/// Pivot moves within [`PACE_WINDOW_MS`] that show the state cannot be completed: a pivot
/// move every 3 s for five minutes. A churning chain with a short history can move the pivot
/// every few seconds and still be synced (healing carries verified nodes over the moves), so
/// the bar is set where no state bigger than a handful of accounts could be finished.
const PACE_MOVES: u64 = 100;

/// First wait between two checks of a peer's claim (ms); doubles with each passed check, up
/// to 16 times this.
const CLAIM_CHECK_MS: u64 = 8_000;
/// Lies that get a peer dropped (when they are not rare next to its passed checks).
const LIES_TO_DROP: u32 = 3;
/// Blocks an honest peer may trail its own announcement by in an ordinary header reply before
/// a missing header counts as a lie.
const CLAIM_SLACK: u64 = 2;
/// An ordinary header reply shorter than this (and than asked) that stops below the peer's
/// claim is a lie; a longer one may have been cut by the server's size limits.
const SHORT_HEADERS: usize = 64;

struct Pending {
    id: u64,
    peer: PeerId,
    /// Headers: what was asked. Bodies: the (number, hash) asked.
    what: PendingWhat,
    deadline: Instant,
    /// When it was sent (ms).
    sent: u64,
}

enum PendingWhat {
    Headers(HeaderWant),
    Bodies(Vec<(u64, B256)>),
}

/// Most bodies asked for at once (go-ethereum's `maxBodyFetch`).
const MAX_BODIES: u64 = 128;
/// First byte budget of header and body requests to a peer (its deadline assumes a slow link,
/// [`BLOCK_RATE`], so a slow peer still answers it in time).
const BLOCK_START_BYTES: u64 = 64 * 1024;
/// Smallest byte budget (a request still carries at least one header or body).
const BLOCK_MIN_BYTES: u64 = 4 * 1024;
/// Largest byte budget (the servers' soft response limit).
const BLOCK_MAX_BYTES: u64 = 2 * 1024 * 1024;
/// A budget grows to at most this many ms of the peer's measured delivery rate.
const BLOCK_TARGET_MS: f64 = 2_000.0;
/// Round trip assumed of a peer not measured yet (ms).
const BLOCK_RTT_MS: f64 = 250.0;
/// Delivery rate assumed of a peer not measured yet (bytes/s): a slow link.
const BLOCK_RATE: f64 = 32.0 * 1024.0;
/// No header or body deadline is shorter (ms).
const BLOCK_FLOOR_MS: u64 = 500;
/// Replies smaller than this are not used to measure a delivery rate (their time is mostly the
/// round trip).
const RATE_SAMPLE_BYTES: u64 = 4 * 1024;

/// What the driver measured of one peer's header and body replies, to size and time them.
/// The record survives the peer's reconnects.
#[derive(Debug, Clone)]
struct BlockLink {
    /// Quickest reply seen (ms): at least the round trip.
    rtt_ms: f64,
    /// Delivery rate of its replies (bytes/s), reply time from the send included (a moving
    /// average): a conservative bandwidth.
    rate: f64,
    /// Replies measured (of those, `rate_samples` large enough to measure the rate).
    samples: u32,
    rate_samples: u32,
    /// Byte budget of its next request: starts small, doubles after each reply (up to
    /// [`BLOCK_TARGET_MS`] at its rate), halves after each timeout.
    budget: u64,
    /// Timeouts since its last reply: each doubles its next deadline.
    timeouts: u32,
}

impl Default for BlockLink {
    fn default() -> Self {
        Self {
            rtt_ms: BLOCK_RTT_MS,
            rate: BLOCK_RATE,
            samples: 0,
            rate_samples: 0,
            budget: BLOCK_START_BYTES,
            timeouts: 0,
        }
    }
}

impl BlockLink {
    /// A reply of `bytes` arrived `elapsed_ms` after its request was sent.
    fn on_reply(&mut self, elapsed_ms: u64, bytes: u64) {
        let elapsed = elapsed_ms.max(1) as f64;
        self.rtt_ms = if self.samples == 0 { elapsed } else { self.rtt_ms.min(elapsed) };
        self.samples += 1;
        self.timeouts = 0;
        if bytes >= RATE_SAMPLE_BYTES {
            let sample = bytes as f64 * 1000.0 / elapsed;
            self.rate = if self.rate_samples == 0 { sample } else { 0.7 * self.rate + 0.3 * sample };
            self.rate_samples += 1;
        }
        let cap = ((self.rate * BLOCK_TARGET_MS / 1000.0) as u64).max(BLOCK_START_BYTES);
        self.budget = (self.budget * 2).min(cap).clamp(BLOCK_MIN_BYTES, BLOCK_MAX_BYTES);
    }

    /// A request timed out: halve the budget, wait longer next time.
    fn on_timeout(&mut self) {
        self.timeouts += 1;
        self.budget = (self.budget / 2).max(BLOCK_MIN_BYTES);
    }

    /// Items of `item_bytes` each that fit the budget (at least one, at most `max`).
    fn items(&self, item_bytes: f64, max: u64) -> u64 {
        ((self.budget as f64 / item_bytes.max(1.0)) as u64).clamp(1, max.max(1))
    }

    /// Deadline (ms) of a request whose reply should carry `bytes`. The transfer is expected to
    /// take `need` = round trip + `bytes` at the measured rate (assumed values before the first
    /// reply), doubled for each timeout since the last reply (the peer is slower than measured,
    /// or its link is busy). The deadline is three times `need` and `need` plus three round
    /// trips, never below [`BLOCK_FLOOR_MS`] (2 s while fewer than three replies were measured).
    /// The configured `request_timeout` caps it only when it is at least `need`: a configured
    /// timeout too short for any reply must not make the sync impossible.
    fn deadline_ms(&self, bytes: u64, request_timeout: u64) -> u64 {
        let need = (self.rtt_ms + bytes as f64 * 1000.0 / self.rate.max(1.0))
            * f64::from(1u32 << self.timeouts.min(5));
        let floor = (BLOCK_FLOOR_MS as f64).max(3.0 * self.rtt_ms);
        let mut t = (3.0 * need).max(need + 3.0 * self.rtt_ms).max(floor);
        if self.samples < 3 {
            t = t.max(2_000.0);
        }
        if request_timeout as f64 >= need {
            t = t.min(request_timeout as f64).max(floor).max(need);
        }
        t.ceil() as u64
    }
}

/// The bodies stage: bodies received above the executed head.
struct BodiesStage<'s> {
    bodies: &'s mut BTreeMap<u64, (B256, BlockBody)>,
    chain: &'s HeaderChain,
    exec: Option<&'s ExecProgress>,
}

impl Stage for BodiesStage<'_> {
    fn id(&self) -> StageId {
        StageId::Bodies
    }

    /// The highest block up to which every body is in (executed, or received).
    fn checkpoint(&self) -> Option<Checkpoint> {
        let (mut block, mut hash, _) = self.exec?.head()?;
        while self.bodies.contains_key(&(block + 1)) {
            let Some(h) = self.chain.get(block + 1) else { break };
            block += 1;
            hash = h.hash();
        }
        Some(Checkpoint { block, hash })
    }

    fn unwind(&mut self, to: u64) -> Unwind {
        self.bodies.retain(|n, _| *n <= to);
        Unwind::To(to)
    }
}

/// The state stage: the pivot the downloader syncs at; `done` once its state is complete
/// (walked, and execution started from it).
struct StateStage<'s> {
    pivot: &'s mut Option<Header>,
    done: Option<Checkpoint>,
}

impl Stage for StateStage<'_> {
    fn id(&self) -> StageId {
        StageId::State
    }

    /// The pivot, once its state is complete.
    fn checkpoint(&self) -> Option<Checkpoint> {
        self.done
    }

    /// A pivot above `to` is off the chain: the state is synced again at a new pivot (the
    /// downloader keeps what it fetched and moves to the new root).
    fn unwind(&mut self, to: u64) -> Unwind {
        let pivot = self.pivot.as_ref().map(|p| p.number).or(self.done.map(|c| c.block));
        if pivot.is_some_and(|p| p > to) {
            *self.pivot = None;
            self.done = None;
            return Unwind::Reset;
        }
        Unwind::To(to)
    }
}

/// The finish stage: the executed head, once it is the trusted head.
struct FinishStage {
    head: Option<Checkpoint>,
}

impl Stage for FinishStage {
    fn id(&self) -> StageId {
        StageId::Finish
    }

    fn checkpoint(&self) -> Option<Checkpoint> {
        self.head
    }

    fn unwind(&mut self, to: u64) -> Unwind {
        self.head = self.head.filter(|c| c.block <= to);
        Unwind::To(to)
    }
}

/// The node: follows the head, syncs the state at a pivot (moving it as the chain runs), then
/// executes every block up to the head and keeps up.
pub struct Node<'a, N: Network> {
    net: &'a mut N,
    store: &'a mut dyn SyncStore,
    cfg: NodeConfig,
    start: Instant,
    peers: BTreeSet<PeerId>,
    chain: HeaderChain,
    pivot: Option<Header>,
    syncer: Option<Syncer>,
    walk: Option<WalkStats>,
    exec: Option<ExecProgress>,
    /// Bodies received, by block number, with their hash (computed once, on receipt).
    bodies: BTreeMap<u64, (B256, BlockBody)>,
    header_req: Option<Pending>,
    body_req: Option<Pending>,
    rr: u64,
    next_id: u64,
    last_progress: u64,
    follow_seen: u64,
    /// When the state stage started (ms).
    state_started: u64,
    /// Peers not yet asked for a header chain sample (a handshake check of their chain).
    unprobed: BTreeSet<PeerId>,
    /// Probe requests in flight: id -> (peer, deadline ms).
    probes: BTreeMap<u64, (PeerId, u64)>,
    /// Peers that served headers that do not link, to be probed again at (ms): repeated
    /// provable faults get them dropped (see [`Node::header_fault`]).
    reprobe: BTreeMap<PeerId, u64>,
    /// Header/body link measurements per peer.
    links: BTreeMap<PeerId, BlockLink>,
    /// Average encoded size of a header and of a body seen (bytes), to turn byte budgets into
    /// counts.
    header_bytes: f64,
    body_bytes: f64,
    /// Samples taken while syncing the state and executing, to tell whether the node keeps up
    /// with the chain (see [`Node::check_keeping_up`]):
    /// (ms, trusted head, executed head or 0, pivots chosen so far).
    pace: std::collections::VecDeque<(u64, u64, u64, u64)>,
    /// When the executed head last was the trusted head (ms).
    last_at_head: u64,
    /// Header/body record per peer: (failed verifications, good replies).
    record: BTreeMap<PeerId, (u32, u64)>,
    /// Peers penalised for bad header/body replies.
    penalised: BTreeSet<PeerId>,
    /// Peers benched for header/body requests after failing one: peer -> (until ms, strikes).
    bench: BTreeMap<PeerId, (u64, u32)>,
    /// Heads peers announced, and how their claims held up.
    claims: BTreeMap<PeerId, Claim>,
    /// Claim checks in flight: request id -> (peer, number and hash asked, deadline ms).
    checks: BTreeMap<u64, (PeerId, u64, B256, u64)>,
    /// Each stage's checkpoint as last saved in the store.
    checkpoints: BTreeMap<StageId, Option<Checkpoint>>,
    /// Counters.
    pub stats: NodeStats,
}

impl<'a, N: Network> Node<'a, N> {
    /// A node over `net` and `store`; `session` makes request ids unique across restarts.
    /// Execution progress found in the store is resumed.
    pub fn new(net: &'a mut N, store: &'a mut dyn SyncStore, cfg: NodeConfig, session: u64) -> Self {
        let exec = ExecProgress::load(&*store);
        let checkpoints: BTreeMap<StageId, Option<Checkpoint>> =
            StageId::ALL.into_iter().map(|id| (id, load_checkpoint(&*store, id))).collect();
        for (id, cp) in &checkpoints {
            if let Some(cp) = cp {
                debug!(stage = id.name(), block = cp.block, hash = %cp.hash, "stage checkpoint found");
            }
        }
        Self {
            net,
            store,
            cfg,
            start: Instant::now(),
            peers: BTreeSet::new(),
            chain: HeaderChain::default(),
            pivot: None,
            syncer: None,
            walk: None,
            exec,
            bodies: BTreeMap::new(),
            header_req: None,
            body_req: None,
            rr: 0,
            next_id: session << 40,
            last_progress: 0,
            follow_seen: 0,
            state_started: 0,
            bench: BTreeMap::new(),
            unprobed: BTreeSet::new(),
            record: BTreeMap::new(),
            penalised: BTreeSet::new(),
            probes: BTreeMap::new(),
            reprobe: BTreeMap::new(),
            links: BTreeMap::new(),
            header_bytes: 600.0,
            body_bytes: 4096.0,
            pace: std::collections::VecDeque::new(),
            last_at_head: 0,
            claims: BTreeMap::new(),
            checks: BTreeMap::new(),
            checkpoints,
            stats: NodeStats::default(),
        }
    }

    /// Counters, including the downloader's, as of now.
    pub fn final_stats(&self) -> NodeStats {
        let mut st = self.stats.clone();
        let mut penalised = self.penalised.clone();
        if let Some(s) = &self.syncer {
            st.sync = s.stats();
            penalised.extend(s.penalised().iter().copied());
        }
        st.penalised = penalised.into_iter().collect();
        st
    }

    /// Runs `f` on stage `id` (`None` when the stage has nothing yet: execution before the
    /// state is synced).
    fn with_stage<R>(&mut self, id: StageId, f: impl FnOnce(&mut dyn Stage) -> R) -> Option<R> {
        let exec_head = self.exec.as_ref().and_then(|e| e.head());
        match id {
            StageId::Headers => Some(f(&mut self.chain)),
            StageId::State => {
                let done = self.exec.as_ref().map(|e| Checkpoint {
                    block: e.pivot,
                    hash: e.blocks.get(&e.pivot).map_or(B256::ZERO, |b| b.0),
                });
                Some(f(&mut StateStage { pivot: &mut self.pivot, done }))
            }
            StageId::Bodies => Some(f(&mut BodiesStage {
                bodies: &mut self.bodies,
                chain: &self.chain,
                exec: self.exec.as_ref(),
            })),
            StageId::Execution => self.exec.as_mut().map(|e| f(e)),
            StageId::Finish => {
                let head = exec_head
                    .filter(|(n, h, _)| self.chain.target() == Some((*n, *h)))
                    .map(|(block, hash, _)| Checkpoint { block, hash });
                Some(f(&mut FinishStage { head }))
            }
        }
    }

    /// Saves the checkpoint of stage `id` in the store when it changed.
    fn record(&mut self, id: StageId) {
        let cp = self.with_stage(id, |s| s.checkpoint()).flatten();
        if self.checkpoints.get(&id) != Some(&cp) {
            save_checkpoint(&mut *self.store, id, cp);
            self.checkpoints.insert(id, cp);
        }
    }

    /// A header or body reply failed verification: penalise and bench the peer; drop it
    /// once failures are repeated and not rare next to its good replies (a message corrupted
    /// in transit must not cost an honest peer its connection).
    ///
    /// A benched peer is not asked for headers or bodies, so it is probed again (the two-header
    /// sample of [`Node::probe_peers`]) after a wait that doubles with its faults: a peer
    /// serving a broken chain keeps failing and is dropped within seconds; an honest one whose
    /// reply was corrupted in transit answers the probe and adds a good reply instead.
    fn header_fault(&mut self, peer: PeerId, reason: String) {
        self.net.note("penalty", Some(peer), &reason);
        self.penalised.insert(peer);
        self.bench_peer(peer);
        let rec = self.record.entry(peer).or_insert((0, 0));
        rec.0 += 1;
        let faults = rec.0;
        if rec.0 >= 3 && u64::from(rec.0) * 4 > rec.1 {
            self.drop_peer(peer, reason);
        } else {
            self.schedule_reprobe(peer, faults);
        }
    }

    /// Probes `peer` again after its `faults`-th fault: 1 s, then 2 s, 4 s, ... (at most 16 s).
    fn schedule_reprobe(&mut self, peer: PeerId, faults: u32) {
        let due = self.now() + (REPROBE_MS << faults.saturating_sub(1).min(4));
        self.reprobe.insert(peer, due);
    }

    /// Peer `peer` announced head `number` with `hash`; `proven` when the announcement carried
    /// the block itself.
    fn on_claim(&mut self, peer: PeerId, number: u64, hash: B256, proven: bool) {
        let c = self.claims.entry(peer).or_default();
        if number >= c.number {
            c.number = number;
            c.hash = hash;
        }
        if proven {
            c.proven = c.proven.max(number);
        }
    }

    /// A reply from `peer` arrived without the header at `missing`, which it claimed to have:
    /// penalise and bench it; drop it after repeated lies that are not rare next to the checks
    /// it passed (a reorg or a corrupted reply must not cost an honest peer its connection).
    fn claim_broken(&mut self, peer: PeerId, missing: u64) {
        let Some(c) = self.claims.get_mut(&peer) else { return };
        c.lies += 1;
        let (lies, passed, number) = (c.lies, c.passed, c.number);
        debug!(peer, missing, announced = number, lies, "peer lacks a header it announced");
        self.penalised.insert(peer);
        self.bench_peer(peer);
        if lies >= LIES_TO_DROP && lies * 2 > passed && self.peers.contains(&peer) {
            self.drop_peer(peer, format!("announced head {number} but lacks header {missing}"));
        }
    }

    /// Asks each peer whose announced head is unproven, and within the trusted chain (so the
    /// block exists), for that header; at most one check per peer in flight, spaced out more
    /// for peers that passed before.
    fn check_claims(&mut self, now: u64) {
        let Some((target, _)) = self.chain.target() else { return };
        let busy: BTreeSet<PeerId> = self.checks.values().map(|c| c.0).collect();
        let due: Vec<(PeerId, u64, B256)> = self
            .claims
            .iter()
            .filter(|(p, c)| {
                c.number > c.proven
                    && c.number <= target
                    && now >= c.next_check
                    && self.peers.contains(p)
                    && !busy.contains(p)
            })
            .map(|(p, c)| (*p, c.number, c.hash))
            .collect();
        for (peer, number, hash) in due {
            if let Some(c) = self.claims.get_mut(&peer) {
                c.next_check = now + (CLAIM_CHECK_MS << c.passed.min(4));
            }
            self.next_id += 1;
            let wait = self.block_deadline_ms(peer, self.header_bytes as u64);
            self.checks.insert(self.next_id, (peer, number, hash, now + wait));
            let msg = Message::GetBlockHeaders(GetBlockHeaders {
                request_id: self.next_id,
                start: number,
                limit: 1,
                skip: 0,
                reverse: false,
            });
            self.stats.headers.sent += 1;
            self.net.send(peer, msg.encode());
        }
    }

    /// The reply to a claim check: the announced header proves the claim; no header is a lie;
    /// another block at that number means the peer's chain changed (neither).
    fn on_check(&mut self, peer: PeerId, number: u64, hash: B256, headers: &[Header]) {
        match headers.first() {
            None => {
                self.stats.headers.failed += 1;
                self.claim_broken(peer, number);
            }
            Some(h) if h.number == number && h.hash() == hash => {
                self.stats.headers.ok += 1;
                if let Some(c) = self.claims.get_mut(&peer) {
                    c.passed += 1;
                    c.proven = c.proven.max(number);
                }
            }
            Some(_) => self.stats.headers.failed += 1,
        }
    }

    fn header_ok(&mut self, peer: PeerId) {
        self.record.entry(peer).or_insert((0, 0)).1 += 1;
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + std::time::Duration::from_millis(ms)
    }

    fn progressed(&mut self) {
        self.last_progress = self.now();
    }

    /// Runs until the node is at the head, the sync stalls, or the host stops it.
    pub async fn run(&mut self) -> NodeOutcome {
        self.net.phase("headers");
        loop {
            let now = self.now();
            if let Some(done) = self.step(now) {
                self.stats = self.final_stats();
                return done;
            }
            // While the state downloads, only state data counts as progress (headers keep
            // arriving whether or not anyone serves the state).
            let progress_at = match (&self.syncer, &self.exec) {
                (Some(s), None) => s.last_progress_at().max(self.state_started),
                _ => self.last_progress,
            };
            if now >= progress_at + self.cfg.stall_timeout_ms {
                self.stats = self.final_stats();
                let reason = if self.peers.is_empty() {
                    "no peers".to_string()
                } else if self.syncer.as_ref().is_some_and(|s| s.all_peers_stateless()) {
                    "no peer serves the pivot state".to_string()
                } else {
                    "no usable replies".to_string()
                };
                return NodeOutcome::Stalled {
                    reason: format!("{reason} for {} s", self.cfg.stall_timeout_ms / 1000),
                };
            }
            let mut deadline = progress_at + self.cfg.stall_timeout_ms;
            if let Some(d) = self.syncer.as_ref().and_then(|s| s.next_deadline(now)) {
                deadline = deadline.min(d.max(now));
            }
            for due in self.probes.values().map(|p| p.1).chain(self.reprobe.values().copied()) {
                deadline = deadline.min(due.max(now));
            }
            let mut deadline = self.at(deadline);
            for p in [&self.header_req, &self.body_req].into_iter().flatten() {
                deadline = deadline.min(p.deadline);
            }
            match self.net.next_event(Some(deadline)).await {
                None => self.on_tick(),
                Some(NetEvent::Shutdown) => return NodeOutcome::Interrupted,
                Some(ev) => {
                    if let Err(reason) = self.on_event(ev) {
                        self.stats = self.final_stats();
                        return NodeOutcome::Failed { reason };
                    }
                }
            }
        }
    }

    /// One turn of the pipeline: issue requests, advance stages. `Some` ends the run.
    fn step(&mut self, now: u64) -> Option<NodeOutcome> {
        self.request_headers(now);
        if self.exec.is_none() {
            self.choose_pivot();
            if let Some(s) = &mut self.syncer {
                let actions = s.poll(now, &mut *self.store);
                self.perform(actions);
                debug_assert_eq!(self.syncer.as_ref().map(|s| s.check_accounting()), Some(Ok(())));
            }
            if let Err(reason) = self.finish_state() {
                return Some(NodeOutcome::Failed { reason });
            }
            if let Err(reason) = self.check_keeping_up(now) {
                return Some(NodeOutcome::Failed { reason });
            }
        }
        if self.exec.is_some() {
            if let Err(e) = self.execute() {
                return Some(NodeOutcome::Failed { reason: e.to_string() });
            }
            self.record(StageId::Finish);
            if let Err(reason) = self.check_keeping_up(now) {
                return Some(NodeOutcome::Failed { reason });
            }
            self.request_bodies(now);
            let exec = self.exec.as_ref()?;
            let (head, head_hash, head_root) = exec.head()?;
            let at_head = self.chain.target().is_some_and(|(n, h)| n == head && h == head_hash);
            if at_head && self.follow_seen >= self.cfg.follow_blocks {
                let pivot = exec.pivot;
                let root = exec.blocks.get(&pivot).map_or(B256::ZERO, |(_, r)| *r);
                return Some(NodeOutcome::Synced {
                    pivot,
                    root,
                    walk: self.walk.unwrap_or_default(),
                    head,
                    head_hash,
                    head_root,
                });
            }
        }
        None
    }

    /// Picks the pivot from the header chain, or moves it when the head ran far ahead.
    fn choose_pivot(&mut self) {
        let Some((head, _)) = self.chain.target() else { return };
        let target = head.saturating_sub(self.cfg.pivot_distance);
        let due = match &self.pivot {
            None => true,
            Some(p) => head.saturating_sub(p.number) >= self.pivot_move_after(),
        };
        if !due {
            return;
        }
        let Some(h) = self.chain.get(target).cloned() else { return };
        if self.pivot.as_ref().is_some_and(|p| p.hash() == h.hash()) {
            return;
        }
        info!(number = h.number, root = %h.state_root, "pivot chosen");
        self.stats.pivots.push(h.number);
        match &mut self.syncer {
            Some(s) => s.set_root(h.state_root),
            None => {
                let mut s =
                    Syncer::new(self.cfg.sync.clone(), h.state_root, &*self.store, self.next_id + (1 << 32));
                for p in &self.peers {
                    s.add_peer(*p);
                }
                s.generate(&mut *self.store);
                self.syncer = Some(s);
                self.state_started = self.now();
                self.net.phase("state");
            }
        }
        self.pivot = Some(h);
    }

    /// When the downloader is done: walk the trie and start executing from the pivot.
    fn finish_state(&mut self) -> Result<(), String> {
        let (Some(s), Some(p)) = (&self.syncer, &self.pivot) else { return Ok(()) };
        if !s.is_done(&*self.store) {
            return Ok(());
        }
        let (root, number, hash) = (p.state_root, p.number, p.hash());
        self.net.phase("verify");
        let walk = if self.cfg.sync.planted == Some(PlantedBug::SkipFinalCheck) {
            WalkStats::default()
        } else {
            verify_complete(&*self.store, root).map_err(|e| format!("completion walk failed: {e}"))?
        };
        info!(pivot = number, %root, "state synced");
        self.walk = Some(walk);
        let mut exec = ExecProgress { pivot: number, blocks: BTreeMap::new() };
        exec.blocks.insert(number, (hash, root));
        exec.save(&mut *self.store);
        self.exec = Some(exec);
        self.record(StageId::State);
        self.record(StageId::Execution);
        self.pace.clear();
        self.last_at_head = self.now();
        self.progressed();
        self.net.phase("execution");
        Ok(())
    }

    /// Fails when the node cannot keep up with the chain, judged over the last
    /// [`PACE_WINDOW_MS`] (samples at most once a second, from the start of the state stage):
    /// - executing, the node was not once at the trusted head over the window and its gap to it
    ///   did not shrink: the head runs away faster than blocks are inserted (or each block
    ///   arrives only after the next is made);
    /// - downloading the state, the pivot moved [`PACE_MOVES`] times or more in the window: the
    ///   state changes faster than it can be completed, so execution never starts.
    ///
    /// Waiting longer would not help either way. A run that keeps up, or catches up within the
    /// window, never trips it.
    fn check_keeping_up(&mut self, now: u64) -> Result<(), String> {
        let Some((target, _)) = self.chain.target() else { return Ok(()) };
        let executed = self.exec.as_ref().and_then(|e| e.head()).map(|h| h.0);
        if self.syncer.is_none() && executed.is_none() {
            return Ok(());
        }
        let moves = self.stats.pivots.len() as u64;
        let head = executed.unwrap_or(0);
        if self.pace.back().is_none_or(|s| now >= s.0 + 1_000) {
            self.pace.push_back((now, target, head, moves));
        }
        while self.pace.get(1).is_some_and(|s| now >= s.0 + PACE_WINDOW_MS) {
            self.pace.pop_front();
        }
        let Some(&(then, target0, head0, moves0)) = self.pace.front() else { return Ok(()) };
        if now < then + PACE_WINDOW_MS {
            return Ok(());
        }
        let secs = now.saturating_sub(then) as f64 / 1000.0;
        let grows = target.saturating_sub(target0) as f64 / secs;
        let inserts = head.saturating_sub(head0) as f64 / secs;
        let why = match executed {
            Some(_) => {
                let gap = target.saturating_sub(head);
                if gap == 0 {
                    self.last_at_head = now;
                }
                if gap == 0 || now < self.last_at_head + PACE_WINDOW_MS || gap < target0.saturating_sub(head0)
                {
                    return Ok(());
                }
                format!("{gap} blocks behind, not once at the head in {secs:.0} s")
            }
            None => {
                let moved = moves.saturating_sub(moves0);
                if moved < PACE_MOVES {
                    return Ok(());
                }
                format!("the state at the pivot never completes: {moved} pivot moves in {secs:.0} s")
            }
        };
        Err(format!(
            "cannot keep up with the chain: head grows {grows:.1} blocks/s, inserting {inserts:.1} blocks/s ({why})"
        ))
    }

    /// Inserts every block whose body is in, in order.
    fn execute(&mut self) -> Result<(), InsertError> {
        let known_fatal = self.cfg.sync.planted == Some(PlantedBug::KnownBlockFatal);
        loop {
            let Some(exec) = &mut self.exec else { return Ok(()) };
            let Some((head, _, _)) = exec.head() else { return Ok(()) };
            let n = head + 1;
            let (Some(header), Some((body_hash, body))) = (self.chain.get(n), self.bodies.get(&n)) else {
                return Ok(());
            };
            if *body_hash != header.body_hash {
                self.bodies.remove(&n);
                continue;
            }
            match insert_block(&mut *self.store, exec, header, body, known_fatal)? {
                Inserted::Applied(_) => self.stats.blocks_inserted += 1,
                Inserted::Known => self.stats.known_blocks += 1,
            }
            self.bodies.remove(&n);
            self.record(StageId::Execution);
            self.progressed();
        }
    }

    fn on_tick(&mut self) {
        let now = self.now();
        if let Some(s) = &mut self.syncer {
            let a = s.on_tick(now);
            self.perform(a);
        }
        let instant = Instant::now();
        if let Some(p) = self.header_req.take_if(|h| h.deadline <= instant) {
            self.stats.headers.timed_out += 1;
            self.net.note("timeout", Some(p.peer), "Headers");
            self.block_timeout(p.peer);
        }
        if let Some(p) = self.body_req.take_if(|h| h.deadline <= instant) {
            self.stats.bodies.timed_out += 1;
            self.net.note("timeout", Some(p.peer), "Bodies");
            self.block_timeout(p.peer);
        }
        // a lost probe proves nothing; one owed after a fault is sent again
        let lost: Vec<PeerId> = self.probes.values().filter(|p| p.1 <= now).map(|p| p.0).collect();
        self.probes.retain(|_, p| p.1 > now);
        self.stats.headers.timed_out += lost.len() as u64;
        for peer in lost {
            let faults = self.record.get(&peer).map_or(0, |r| r.0);
            if faults > 0 {
                self.schedule_reprobe(peer, faults);
            }
        }
        // a check lost in transit proves nothing
        let before = self.checks.len();
        self.checks.retain(|_, c| c.3 > now);
        self.stats.headers.timed_out += (before - self.checks.len()) as u64;
    }

    fn perform(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { peer, msg } => self.net.send(peer, msg.encode()),
                Action::Drop { peer, reason } => self.drop_peer(peer, reason),
                Action::TimedOut { peer, kind, request_id } => {
                    self.net.note("timeout", Some(peer), &format!("{kind:?} #{request_id}"))
                }
                Action::Penalise { peer, reason } => self.net.note("penalty", Some(peer), &reason),
            }
        }
    }

    fn drop_peer(&mut self, peer: PeerId, reason: String) {
        debug!(peer, %reason, "dropping peer");
        self.net.disconnect(peer, &reason);
        self.peer_gone(peer);
        self.stats.dropped.push((peer, reason));
    }

    fn peer_gone(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
        self.checks.retain(|_, c| c.0 != peer);
        if let Some(s) = &mut self.syncer {
            s.remove_peer(peer);
        }
        if self.header_req.as_ref().is_some_and(|h| h.peer == peer) {
            self.header_req = None;
        }
        if self.body_req.as_ref().is_some_and(|h| h.peer == peer) {
            self.body_req = None;
        }
    }

    fn on_event(&mut self, ev: NetEvent) -> Result<(), String> {
        let now = self.now();
        match ev {
            NetEvent::PeerJoined(p) => {
                self.peers.insert(p);
                self.unprobed.insert(p);
                if let Some(s) = &mut self.syncer {
                    s.add_peer(p);
                }
            }
            NetEvent::PeerLeft(p) => self.peer_gone(p),
            NetEvent::Shutdown => {}
            NetEvent::Head { number, hash } => {
                if self.chain.target().is_none_or(|(n, h)| number >= n || h != hash) {
                    self.chain.on_head(number, hash);
                }
                if self
                    .exec
                    .as_ref()
                    .and_then(|e| e.head())
                    .is_some_and(|(n, h, _)| self.chain.target() == Some((n, h)) || n + 1 >= number)
                {
                    self.follow_seen += 1;
                }
            }
            NetEvent::Message { peer, bytes } => {
                if !self.peers.contains(&peer) {
                    return Ok(());
                }
                let decoded = Message::decode_owned(bytes, &self.cfg.limits);
                if decoded.is_ok() {
                    if let Some(s) = &mut self.syncer {
                        s.note_message(peer);
                    }
                }
                match decoded {
                    Err(e) => {
                        let reason = e.to_string();
                        let actions = match &mut self.syncer {
                            Some(s) => s.on_undecodable(peer, &reason),
                            None => Vec::new(),
                        };
                        self.perform(actions);
                    }
                    Ok(Message::BlockHeaders(h)) => self.on_headers(peer, h),
                    Ok(Message::BlockBodies(b)) => self.on_bodies(peer, b),
                    Ok(Message::NewBlock(nb)) => {
                        self.on_claim(peer, nb.block.header.number, nb.block.header.hash(), true);
                        self.on_new_block(nb.block.header, nb.block.body)?
                    }
                    Ok(Message::NewBlockHashes(NewBlockHashes(list))) => {
                        if let Some(top) = list.iter().max_by_key(|a| a.number) {
                            self.on_claim(peer, top.number, top.hash, false);
                        }
                    }
                    Ok(msg) => {
                        if let Some(s) = &mut self.syncer {
                            let actions = s.on_message(now, peer, msg, &mut *self.store);
                            self.perform(actions);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A block pushed by a peer. Blocks on the trusted chain are inserted (or, when already
    /// known, ignored: inserting a known block is a no-op, never an error).
    fn on_new_block(&mut self, header: Header, body: BlockBody) -> Result<(), String> {
        let hash = header.hash();
        if self.chain.get(header.number).map(|h| h.hash()) != Some(hash) {
            return Ok(()); // not (yet) on our trusted chain: ignore
        }
        let Some(exec) = &mut self.exec else { return Ok(()) };
        if exec.knows(&hash) {
            // a known block: inserting it is a no-op (the body is not even looked at)
            let known_fatal = self.cfg.sync.planted == Some(PlantedBug::KnownBlockFatal);
            return match insert_block(&mut *self.store, exec, &header, &body, known_fatal) {
                Ok(_) => {
                    self.stats.known_blocks += 1;
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            };
        }
        if exec.head().is_some_and(|(n, _, _)| header.number > n) {
            let body_hash = body.hash();
            if body_hash != header.body_hash {
                return Ok(()); // a mismatched body: ignore
            }
            self.bodies.insert(header.number, (body_hash, body));
            self.record(StageId::Bodies);
        }
        Ok(())
    }

    /// How far the head may run ahead of the pivot before the pivot moves: geth's
    /// `2 * distance - 8` for its distance of 64, scaled for other distances.
    fn pivot_move_after(&self) -> u64 {
        let d = self.cfg.pivot_distance.max(1);
        (2 * d - (d / 8).max(1)).max(d + 1)
    }

    /// Round-robin over peers not benched for failing a header or body request.
    fn pick_peer(&mut self) -> Option<PeerId> {
        let now = self.now();
        let mut peers: Vec<PeerId> = self
            .peers
            .iter()
            .copied()
            .filter(|p| self.bench.get(p).is_none_or(|(until, _)| *until <= now))
            .collect();
        if peers.is_empty() {
            // everyone is benched: fall back to the one benched least
            peers = self.peers.iter().copied().collect();
            peers.sort_by_key(|p| self.bench.get(p).map_or(0, |b| b.1));
            peers.truncate(1);
        }
        if peers.is_empty() {
            return None;
        }
        self.rr += 1;
        Some(peers[(self.rr as usize) % peers.len()])
    }

    /// A header or body request to `peer` failed without proof of malice: bench it for a
    /// while that grows with repeated failures.
    fn bench_peer(&mut self, peer: PeerId) {
        let now = self.now();
        let entry = self.bench.entry(peer).or_insert((0, 0));
        entry.1 += 1;
        entry.0 = now + (2_000u64 << entry.1.min(6));
    }

    fn unbench(&mut self, peer: PeerId) {
        self.bench.remove(&peer);
    }

    /// A header or body request to `peer` timed out: bench it (it is asked again once the
    /// bench ends, or sooner when every peer is benched), halve its budget, and wait longer for
    /// its next reply ([`BlockLink::deadline_ms`]), so a slow honest peer is never benched for good.
    fn block_timeout(&mut self, peer: PeerId) {
        self.links.entry(peer).or_default().on_timeout();
        self.bench_peer(peer);
    }

    /// Deadline length (ms) of a header or body request to `peer` expecting `bytes` of reply.
    fn block_deadline_ms(&self, peer: PeerId, bytes: u64) -> u64 {
        let link = self.links.get(&peer).cloned().unwrap_or_default();
        link.deadline_ms(bytes, self.cfg.sync.request_timeout_ms)
    }

    /// A header or body reply of `bytes` to a request sent at `sent` arrived from `peer`.
    /// Books a header (`headers`) or body reply: its bytes in, the peer's measured rate, and
    /// the running average size of a header or body.
    fn book_reply<T: alloy_rlp::Encodable>(&mut self, peer: PeerId, sent: u64, items: &[T], headers: bool) {
        let bytes = items.iter().map(|x| x.length() as u64).sum::<u64>();
        self.measure(peer, sent, bytes);
        let (stats, avg) = if headers {
            (&mut self.stats.headers, &mut self.header_bytes)
        } else {
            (&mut self.stats.bodies, &mut self.body_bytes)
        };
        stats.bytes_in += bytes;
        if !items.is_empty() {
            let each = bytes as f64 / items.len() as f64;
            *avg = 0.7 * *avg + 0.3 * each.max(1.0);
        }
    }

    fn measure(&mut self, peer: PeerId, sent: u64, bytes: u64) {
        let elapsed = self.now().saturating_sub(sent);
        self.links.entry(peer).or_default().on_reply(elapsed, bytes);
    }

    /// Asks each new peer once for the two headers below the trusted head: a peer whose
    /// headers do not link is serving a broken chain and is dropped.
    /// Peers whose headers did not link are probed again when due (see [`Node::header_fault`]).
    fn probe_peers(&mut self) {
        let Some((head, _)) = self.chain.target() else { return };
        if head == 0 {
            return;
        }
        let now = self.now();
        let mut due: BTreeSet<PeerId> = std::mem::take(&mut self.unprobed);
        let again: Vec<PeerId> = self.reprobe.iter().filter(|(_, t)| **t <= now).map(|(p, _)| *p).collect();
        for p in again {
            self.reprobe.remove(&p);
            due.insert(p);
        }
        for peer in due {
            if !self.peers.contains(&peer) || self.probes.values().any(|p| p.0 == peer) {
                continue;
            }
            self.next_id += 1;
            let wait = self.block_deadline_ms(peer, 2 * self.header_bytes as u64);
            self.probes.insert(self.next_id, (peer, now + wait));
            let msg = Message::GetBlockHeaders(GetBlockHeaders {
                request_id: self.next_id,
                start: head - 1,
                limit: 2,
                skip: 0,
                reverse: false,
            });
            self.stats.headers.sent += 1;
            self.net.send(peer, msg.encode());
        }
    }

    fn request_headers(&mut self, now: u64) {
        self.probe_peers();
        self.check_claims(now);
        if self.header_req.is_some() {
            return;
        }
        let floor = match (&self.exec, &self.pivot) {
            (Some(e), _) => e.pivot,
            _ => self.chain.target().map_or(0, |(n, _)| n.saturating_sub(self.cfg.pivot_distance)),
        };
        let Some(peer) = self.pick_peer() else { return };
        let max = self.links.get(&peer).cloned().unwrap_or_default().items(self.header_bytes, MAX_HEADERS);
        let Some(want) = self.chain.want_sized(floor, max) else { return };
        self.next_id += 1;
        let msg = Message::GetBlockHeaders(GetBlockHeaders {
            request_id: self.next_id,
            start: want.start,
            limit: want.count,
            skip: 0,
            reverse: false,
        });
        self.stats.headers.sent += 1;
        self.net.send(peer, msg.encode());
        let wait = self.block_deadline_ms(peer, (want.count as f64 * self.header_bytes) as u64);
        self.header_req = Some(Pending {
            id: self.next_id,
            peer,
            what: PendingWhat::Headers(want),
            deadline: self.at(now + wait),
            sent: now,
        });
    }

    fn request_bodies(&mut self, now: u64) {
        if self.body_req.is_some() {
            return;
        }
        let Some((head, _, _)) = self.exec.as_ref().and_then(|e| e.head()) else { return };
        if self.chain.get(head + 1).is_none() {
            return;
        }
        let Some(peer) = self.pick_peer() else { return };
        let max = self.links.get(&peer).cloned().unwrap_or_default().items(self.body_bytes, MAX_BODIES);
        let want: Vec<(u64, B256)> = ((head + 1)..)
            .map_while(|n| self.chain.get(n).map(|h| (n, h.hash())))
            .filter(|(n, _)| !self.bodies.contains_key(n))
            .take(max as usize)
            .collect();
        if want.is_empty() {
            return;
        }
        self.next_id += 1;
        let msg = Message::GetBlockBodies(GetBlockBodies {
            request_id: self.next_id,
            hashes: want.iter().map(|(_, h)| *h).collect(),
        });
        self.stats.bodies.sent += 1;
        self.net.send(peer, msg.encode());
        let wait = self.block_deadline_ms(peer, (want.len() as f64 * self.body_bytes) as u64);
        self.body_req = Some(Pending {
            id: self.next_id,
            peer,
            what: PendingWhat::Bodies(want),
            deadline: self.at(now + wait),
            sent: now,
        });
    }

    fn on_bodies(&mut self, peer: PeerId, b: BlockBodies) {
        let Some(req) = &self.body_req else { return };
        if req.id != b.request_id || req.peer != peer {
            return;
        }
        let Some(Pending { what: PendingWhat::Bodies(asked), sent, .. }) = self.body_req.take() else {
            return;
        };
        self.book_reply(peer, sent, &b.bodies, false);
        if b.bodies.is_empty() {
            self.stats.bodies.failed += 1;
            self.bench_peer(peer);
            return;
        }
        // bodies come in request order, possibly with some left out at the end
        let mut ok = true;
        let mut j = 0;
        for body in b.bodies {
            let h = body.hash();
            while j < asked.len() && self.chain.get(asked[j].0).map(|x| x.body_hash) != Some(h) {
                j += 1;
            }
            if j == asked.len() {
                ok = false;
                break;
            }
            self.bodies.insert(asked[j].0, (h, body));
            j += 1;
        }
        self.record(StageId::Bodies);
        if ok {
            self.stats.bodies.ok += 1;
            self.header_ok(peer);
            self.unbench(peer);
            self.progressed();
        } else {
            self.stats.bodies.failed += 1;
            self.header_fault(peer, "bodies do not match their headers".into());
        }
    }

    fn on_headers(&mut self, peer: PeerId, h: BlockHeaders) {
        if self.checks.get(&h.request_id).is_some_and(|c| c.0 == peer) {
            if let Some((_, number, hash, _)) = self.checks.remove(&h.request_id) {
                self.on_check(peer, number, hash, &h.headers);
            }
            return;
        }
        if self.probes.get(&h.request_id).is_some_and(|p| p.0 == peer) {
            self.probes.remove(&h.request_id);
            let linked = h
                .headers
                .windows(2)
                .all(|w| w[1].parent_hash == w[0].hash() && w[1].number == w[0].number + 1);
            if linked {
                self.stats.headers.ok += 1;
                self.header_ok(peer);
            } else {
                self.stats.headers.failed += 1;
                self.header_fault(peer, "header chain sample does not link".into());
            }
            return;
        }
        let Some(req) = &self.header_req else { return };
        if req.id != h.request_id || req.peer != peer {
            return;
        }
        let Some(Pending { what: PendingWhat::Headers(want), sent, .. }) = self.header_req.take() else {
            return;
        };
        let HeaderWant { start, count, anchor } = want;
        self.book_reply(peer, sent, &h.headers, true);
        // the first header this reply lacks, if it is short of a range the peer claimed
        let got = h.headers.len();
        let starts_right = h.headers.first().is_none_or(|f| f.number == start);
        let lacking = (starts_right && got < SHORT_HEADERS && (got as u64) < count)
            .then_some(start + got as u64)
            .filter(|m| self.claimed_below(peer, *m));
        let outcome = match anchor {
            Some(last) => self.chain.on_reply(h.headers, start, last),
            None => self.chain.on_ahead(h.headers, start),
        };
        match outcome {
            HeaderOutcome::Fault(reason) => {
                self.stats.headers.failed += 1;
                self.header_fault(peer, reason);
            }
            HeaderOutcome::Incomplete => {
                self.stats.headers.failed += 1;
                match lacking {
                    Some(m) => self.claim_broken(peer, m),
                    None => self.bench_peer(peer),
                }
            }
            HeaderOutcome::Extended => {
                self.stats.headers.ok += 1;
                self.header_ok(peer);
                self.unbench(peer);
                self.progressed();
                self.record(StageId::Headers);
            }
            HeaderOutcome::Reorg { fork } => {
                self.stats.headers.ok += 1;
                self.stats.reorgs += 1;
                self.progressed();
                self.unwind(fork);
            }
        }
    }

    /// Whether `peer` announced a head at least [`CLAIM_SLACK`] blocks above `missing`, within
    /// the trusted chain (so the header exists and an honest peer has it).
    fn claimed_below(&self, peer: PeerId, missing: u64) -> bool {
        let target = self.chain.target().map_or(0, |t| t.0);
        self.claims.get(&peer).is_some_and(|c| c.number <= target && missing + CLAIM_SLACK <= c.number)
    }

    /// Unwinds every stage above `fork` after a reorg, in reverse pipeline order, and saves
    /// the checkpoints. The headers stage is where the reorg was found: its reply already
    /// replaced the headers above `fork` with the new chain's, so it is not unwound again.
    fn unwind(&mut self, fork: u64) {
        info!(fork, "reorg: unwinding");
        self.net.phase("unwind");
        let mut phase = None;
        for id in StageId::ALL.into_iter().rev().filter(|id| *id != StageId::Headers) {
            let Some(outcome) = self.with_stage(id, |s| s.unwind(fork)) else { continue };
            match (id, outcome) {
                (StageId::Execution, Unwind::Reset) => {
                    // the synced state itself was replaced: sync again at a new pivot (the
                    // state stage drops the pivot)
                    self.exec = None;
                    self.walk = None;
                    let mut batch = crate::store::WriteBatch::default();
                    batch.meta.push((ExecProgress::KEY.to_string(), Vec::new()));
                    self.store.commit(batch);
                    phase.get_or_insert("state");
                }
                (StageId::Execution, Unwind::To(_)) => {
                    if let Some(exec) = &self.exec {
                        exec.save(&mut *self.store);
                    }
                    phase.get_or_insert("execution");
                }
                (StageId::State, Unwind::Reset) => {
                    phase.get_or_insert("state");
                }
                _ => {}
            }
        }
        for id in StageId::ALL {
            self.record(id);
        }
        let phase = phase.unwrap_or(if self.syncer.is_some() { "state" } else { "headers" });
        self.net.phase(phase);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deadlines follow the measured round trip and rate, never below the floor, capped by the
    /// configured timeout only when that leaves time for the transfer; timeouts lengthen them.
    #[test]
    fn block_deadlines_follow_the_transfer() {
        let mut link = BlockLink::default();
        // a slow peer: 64 KiB in ~1.1 s, three times
        for _ in 0..3 {
            link.on_reply(1_100, 64 * 1024);
        }
        assert!(link.budget > BLOCK_START_BYTES && link.budget <= 2 * 64 * 1024, "{link:?}");
        // 256 KiB need ~4.5 s: a 10 s timeout caps the deadline, a 100 ms one does not
        let need = 1_100.0 + 256.0 * 1024.0 * 1000.0 / link.rate;
        assert_eq!(link.deadline_ms(256 * 1024, 10_000), 10_000);
        assert!(link.deadline_ms(256 * 1024, 100) as f64 >= 3.0 * need);
        // never below the floor or three round trips
        let mut fast = BlockLink::default();
        for _ in 0..3 {
            fast.on_reply(20, 100);
        }
        assert_eq!(fast.deadline_ms(100, 10_000), BLOCK_FLOOR_MS);
        assert_eq!(fast.deadline_ms(100, 1), BLOCK_FLOOR_MS);
        // a timeout halves the budget and doubles the transfer time expected
        let before = (link.budget, link.deadline_ms(10_000, 1));
        link.on_timeout();
        assert_eq!(link.budget, before.0 / 2);
        assert!(link.deadline_ms(10_000, 1) * 2 >= 3 * before.1);
        assert_eq!(link.items(20_000.0, 128), (link.budget / 20_000).max(1));
    }
}
