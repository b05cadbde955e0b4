//! The thin async shell around the sans-IO [`Syncer`]: it talks to peers through a
//! [`Network`] of the shape a real p2p adapter offers, keeps the clock, follows the trusted
//! head, picks and moves the pivot, and walks the finished state.

use crate::codec::{BlockHeaders, GetBlockHeaders, Header, Limits, Message};
use crate::primitives::B256;
use crate::store::SyncStore;
use crate::sync::walk::WalkStats;
use crate::sync::{verify_complete, Action, PeerId, SyncConfig, SyncStats, Syncer};
use std::collections::BTreeSet;
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
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            sync: SyncConfig::default(),
            pivot_distance: 64,
            stall_timeout_ms: 600_000,
            limits: Limits::default(),
        }
    }
}

/// How a node run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeOutcome {
    /// The whole state at the pivot is stored and walked.
    Synced {
        /// Pivot block number.
        pivot: u64,
        /// Its state root.
        root: B256,
        /// What the completion walk saw.
        walk: WalkStats,
    },
    /// No progress for too long.
    Stalled {
        /// Why.
        reason: String,
    },
}

/// Counters the driver keeps besides the downloader's.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct NodeStats {
    /// Downloader counters.
    pub sync: SyncStats,
    /// Header requests sent / ok / failed / timed out / bytes.
    pub headers: crate::sync::KindStats,
    /// Peers dropped, with the reason.
    pub dropped: Vec<(PeerId, String)>,
    /// Pivot block numbers used, in order.
    pub pivots: Vec<u64>,
    /// Peers penalised (timeouts, failed verification).
    pub penalised: Vec<PeerId>,
}

struct HeaderRequest {
    id: u64,
    peer: PeerId,
    start: u64,
    head_hash: B256,
    count: u64,
    deadline: Instant,
}

/// The node: follows the head, syncs the state at a pivot, moves the pivot as the chain runs.
pub struct Node<'a, N: Network> {
    net: &'a mut N,
    store: &'a mut dyn SyncStore,
    cfg: NodeConfig,
    start: Instant,
    peers: BTreeSet<PeerId>,
    head: Option<(u64, B256)>,
    pivot: Option<Header>,
    syncer: Option<Syncer>,
    header_req: Option<HeaderRequest>,
    header_rr: u64,
    next_id: u64,
    last_progress: u64,
    /// Counters.
    pub stats: NodeStats,
}

impl<'a, N: Network> Node<'a, N> {
    /// A node over `net` and `store`; `session` makes request ids unique across restarts.
    pub fn new(net: &'a mut N, store: &'a mut dyn SyncStore, cfg: NodeConfig, session: u64) -> Self {
        Self {
            net,
            store,
            cfg,
            start: Instant::now(),
            peers: BTreeSet::new(),
            head: None,
            pivot: None,
            syncer: None,
            header_req: None,
            header_rr: 0,
            next_id: session << 40,
            last_progress: 0,
            stats: NodeStats::default(),
        }
    }

    /// Counters, including the downloader's, as of now.
    pub fn final_stats(&self) -> NodeStats {
        let mut st = self.stats.clone();
        if let Some(s) = &self.syncer {
            st.sync = s.stats();
            st.penalised = s.penalised().iter().copied().collect();
        }
        st
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + std::time::Duration::from_millis(ms)
    }

    /// Runs until the state is synced or the sync stalls.
    pub async fn run(&mut self) -> NodeOutcome {
        self.net.phase("headers");
        loop {
            let now = self.now();
            self.maybe_request_headers(now);
            if let Some(s) = &mut self.syncer {
                let actions = s.poll(now, &mut *self.store);
                self.perform(actions);
                debug_assert_eq!(self.syncer.as_ref().map(|s| s.check_accounting()), Some(Ok(())));
                if let (Some(s), Some(p)) = (&self.syncer, &self.pivot) {
                    if s.is_done(&*self.store) {
                        let root = p.state_root;
                        let number = p.number;
                        self.net.phase("verify");
                        let walked = if self.cfg.sync.planted == Some(crate::sync::PlantedBug::SkipFinalCheck)
                        {
                            Ok(WalkStats::default())
                        } else {
                            verify_complete(&*self.store, root)
                        };
                        match walked {
                            Ok(walk) => {
                                self.stats.sync = s.stats();
                                info!(pivot = number, %root, "state synced");
                                return NodeOutcome::Synced { pivot: number, root, walk };
                            }
                            Err(e) => {
                                self.stats.sync = s.stats();
                                return NodeOutcome::Stalled {
                                    reason: format!("completion walk failed: {e}"),
                                };
                            }
                        }
                    }
                }
            }
            let progress_at =
                self.syncer.as_ref().map_or(0, |s| s.last_progress_at()).max(self.last_progress);
            if now >= progress_at + self.cfg.stall_timeout_ms {
                if let Some(s) = &self.syncer {
                    self.stats.sync = s.stats();
                }
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
            let mut deadline = self.at(deadline);
            if let Some(h) = &self.header_req {
                deadline = deadline.min(h.deadline);
            }
            match self.net.next_event(Some(deadline)).await {
                None => self.on_tick(),
                Some(ev) => self.on_event(ev),
            }
        }
    }

    fn on_tick(&mut self) {
        let now = self.now();
        if let Some(s) = &mut self.syncer {
            let a = s.on_tick(now);
            self.perform(a);
        }
        if self.header_req.as_ref().is_some_and(|h| h.deadline <= Instant::now()) {
            self.header_req = None;
            self.stats.headers.timed_out += 1;
        }
    }

    fn perform(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { peer, msg } => self.net.send(peer, msg.encode()),
                Action::Drop { peer, reason } => self.drop_peer(peer, reason),
            }
        }
    }

    fn drop_peer(&mut self, peer: PeerId, reason: String) {
        debug!(peer, %reason, "dropping peer");
        self.net.disconnect(peer, &reason);
        self.peers.remove(&peer);
        if let Some(s) = &mut self.syncer {
            s.remove_peer(peer);
        }
        self.stats.dropped.push((peer, reason));
    }

    fn on_event(&mut self, ev: NetEvent) {
        let now = self.now();
        match ev {
            NetEvent::PeerJoined(p) => {
                self.peers.insert(p);
                if let Some(s) = &mut self.syncer {
                    s.add_peer(p);
                }
            }
            NetEvent::PeerLeft(p) => {
                self.peers.remove(&p);
                if let Some(s) = &mut self.syncer {
                    s.remove_peer(p);
                }
                if self.header_req.as_ref().is_some_and(|h| h.peer == p) {
                    self.header_req = None;
                }
            }
            NetEvent::Head { number, hash } => {
                if self.head.is_none_or(|(n, _)| number >= n) {
                    self.head = Some((number, hash));
                }
            }
            NetEvent::Message { peer, bytes } => {
                if !self.peers.contains(&peer) {
                    return;
                }
                match Message::decode(&bytes, &self.cfg.limits) {
                    Err(e) => {
                        let reason = e.to_string();
                        let actions = match &mut self.syncer {
                            Some(s) => s.on_undecodable(peer, &reason),
                            None => Vec::new(),
                        };
                        self.perform(actions);
                    }
                    Ok(Message::BlockHeaders(h)) => self.on_headers(peer, h),
                    Ok(Message::NewBlock(_)) | Ok(Message::NewBlockHashes(_)) => {}
                    Ok(msg) => {
                        if let Some(s) = &mut self.syncer {
                            let actions = s.on_message(now, peer, msg, &mut *self.store);
                            self.perform(actions);
                        }
                    }
                }
            }
        }
    }

    /// How far the head may run ahead of the pivot before the pivot moves: geth's
    /// `2 * distance - 8` for its distance of 64, scaled for other distances.
    fn pivot_move_after(&self) -> u64 {
        let d = self.cfg.pivot_distance.max(1);
        (2 * d - (d / 8).max(1)).max(d + 1)
    }

    /// Whether the pivot should be (re)chosen for the current head.
    fn pivot_target(&self) -> Option<u64> {
        let (head, _) = self.head?;
        let target = head.saturating_sub(self.cfg.pivot_distance);
        match &self.pivot {
            None => Some(target),
            Some(p) if head.saturating_sub(p.number) >= self.pivot_move_after() => Some(target),
            Some(_) => None,
        }
    }

    fn maybe_request_headers(&mut self, now: u64) {
        if self.header_req.is_some() || self.peers.is_empty() {
            return;
        }
        let Some(target) = self.pivot_target() else { return };
        let Some((head, head_hash)) = self.head else { return };
        let peers: Vec<PeerId> = self.peers.iter().copied().collect();
        let peer = peers[(self.header_rr as usize) % peers.len()];
        self.header_rr += 1;
        self.next_id += 1;
        let count = head - target + 1;
        let msg = Message::GetBlockHeaders(GetBlockHeaders {
            request_id: self.next_id,
            start: target,
            limit: count,
            skip: 0,
            reverse: false,
        });
        self.stats.headers.sent += 1;
        self.net.send(peer, msg.encode());
        self.header_req = Some(HeaderRequest {
            id: self.next_id,
            peer,
            start: target,
            head_hash,
            count,
            deadline: self.at(now + self.cfg.sync.request_timeout_ms),
        });
    }

    fn on_headers(&mut self, peer: PeerId, h: BlockHeaders) {
        let Some(req) = &self.header_req else { return };
        if req.id != h.request_id || req.peer != peer {
            return;
        }
        let (start, count, head_hash) = (req.start, req.count, req.head_hash);
        self.header_req = None;
        self.stats.headers.bytes_in += h.headers.iter().map(|x| x.extra.len() as u64 + 120).sum::<u64>();
        if h.headers.len() as u64 != count {
            // the peer lacks part of the chain (stale, or the head moved): not a fault
            self.stats.headers.failed += 1;
            return;
        }
        let linked =
            h.headers.windows(2).all(|w| w[1].parent_hash == w[0].hash() && w[1].number == w[0].number + 1);
        let anchored = h.headers.first().is_some_and(|f| f.number == start)
            && h.headers.last().is_some_and(|l| l.hash() == head_hash);
        if !linked || !anchored {
            self.stats.headers.failed += 1;
            // provably wrong only if it claims the trusted head's number range but breaks links
            if !linked {
                self.drop_peer(peer, "broken header chain".into());
            }
            return;
        }
        self.stats.headers.ok += 1;
        self.last_progress = self.now();
        let Some(pivot) = h.headers.into_iter().next() else { return };
        info!(number = pivot.number, root = %pivot.state_root, "pivot chosen");
        self.stats.pivots.push(pivot.number);
        match &mut self.syncer {
            Some(s) => s.set_root(pivot.state_root),
            None => {
                let mut s = Syncer::new(
                    self.cfg.sync.clone(),
                    pivot.state_root,
                    &*self.store,
                    self.next_id + (1 << 32),
                );
                for p in &self.peers {
                    s.add_peer(*p);
                }
                s.generate(&mut *self.store);
                self.syncer = Some(s);
                self.net.phase("state");
            }
        }
        self.pivot = Some(pivot);
    }
}
