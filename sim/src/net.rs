//! The simulated network: one event queue ordered by (virtual time, sequence), virtual peers
//! behind links with latency and bandwidth, the fault model, and the chain growing underneath.
//! It implements the node's [`Network`] trait, so the node's real async code runs over it.

use crate::chain::Chain;
use crate::peer::PeerServer;
use crate::scenario::{Behaviour, Faults, Latency, Scenario};
use crate::trace::Trace;
use alloy_primitives::B256;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use syncsim_node::codec::{BlockHashNumber, Limits, Message, NewBlockHashes};
use syncsim_node::driver::{NetEvent, Network};
use tokio::time::Instant;

/// Blocks a `liar` really lags behind the head it announces: it announces the network's head
/// but holds and serves only the chain up to this many blocks below it (close enough that its
/// state roots are still those near a pivot, unlike a `stale` peer's).
pub const LIAR_LAG: u64 = 8;

/// What happens at a point in virtual time.
#[derive(Debug, Clone)]
enum Ev {
    ToPeer { peer: u32, bytes: Vec<u8> },
    ToNode { peer: u32, bytes: Vec<u8> },
    Block,
    Join(u32),
    Leave(u32),
    Disconnect(u32),
    Reconnect(u32),
    Reorg(u64),
    Crash,
}

/// One virtual peer.
pub struct SimPeer {
    /// Peer id (index).
    pub id: u32,
    /// Index of its `[[peers]]` group.
    pub group: usize,
    /// Its behaviours.
    pub behaviours: Vec<Behaviour>,
    server: PeerServer,
    latency: Latency,
    bandwidth: f64,
    up_free_us: u64,
    down_free_us: u64,
    /// Present in the network (joined, not left).
    pub present: bool,
    /// Connected to the node right now.
    pub connected: bool,
    /// Disconnected by the node for misbehaviour.
    pub dropped: bool,
    /// Blocks this peer's own chain lags behind the head (what it has and serves).
    lag: u64,
    /// Disconnect schedule for flapping peers / network-wide disconnects: (mean time connected,
    /// downtime) in µs.
    flap: Option<(u64, u64)>,
}

impl SimPeer {
    /// Replies this peer served.
    pub fn served(&self) -> u64 {
        self.server.served()
    }
    fn has(&self, b: Behaviour) -> bool {
        self.behaviours.contains(&b)
    }
}

/// Counters of injected faults.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FaultStats {
    /// Messages sent over the wire.
    pub messages: u64,
    /// Dropped.
    pub dropped: u64,
    /// Delivered twice.
    pub duplicated: u64,
    /// Delayed to overtake others.
    pub reordered: u64,
    /// Bytes flipped.
    pub corrupted: u64,
    /// Peer disconnects.
    pub disconnects: u64,
}

/// The simulated world the node runs in.
pub struct World {
    /// The chain all honest peers follow.
    pub chain: Chain,
    /// The peers.
    pub peers: Vec<SimPeer>,
    queue: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    rng: ChaCha8Rng,
    /// The stream head announcements draw their faults and latencies from, so that they do not
    /// shift those of every other message.
    announce_rng: ChaCha8Rng,
    faults: Faults,
    /// The trace.
    pub trace: Trace,
    start: Instant,
    block_time_us: u64,
    state_history: u64,
    limits: Limits,
    /// Fault counters.
    pub fault_stats: FaultStats,
    /// Bytes sent by peers to the node.
    pub bytes_to_node: u64,
    /// Phase changes: (virtual ms, phase).
    pub phases: Vec<(u64, String)>,
    /// Head announcements to deliver to the node.
    announce_head: bool,
    /// Virtual time (µs) when the node last stopped.
    pub end_us: u64,
    /// Crash the node this long (µs) after it first enters this phase.
    pub crash_on_phase: Option<(String, u64)>,
    /// The stderr progress display.
    pub progress: crate::progress::Progress,
    /// Requests the node sent beyond the protocol's caps (see [`over_cap`]).
    pub over_cap: u64,
    /// The first of them, described.
    pub over_cap_first: Option<String>,
    /// Progress samples for `--plot`, when asked for (observes only).
    pub recorder: Option<crate::timeline::Recorder>,
}

/// Why a request the node sent exceeds the protocol's caps (those geth's server honours:
/// a 2 MiB soft response limit, 1,024 code or trie-node lookups, 1,024 headers or bodies) or
/// is malformed; `None` when it is within them.
pub fn over_cap(msg: &Message) -> Option<String> {
    use crate::peer::{MAX_LOOKUPS, MAX_SERVE_ITEMS, SOFT_RESPONSE_LIMIT};
    let budget = |b: u64| (b > SOFT_RESPONSE_LIMIT).then(|| format!("a {b}-byte response budget"));
    match msg {
        Message::GetAccountRange(r) if r.starting_hash > r.limit_hash => {
            Some("an account range whose origin is above its limit".into())
        }
        Message::GetAccountRange(r) => budget(r.response_bytes),
        Message::GetStorageRanges(r) if r.account_hashes.is_empty() => {
            Some("a storage request for no account".into())
        }
        Message::GetStorageRanges(r) => budget(r.response_bytes),
        Message::GetByteCodes(r) if r.hashes.len() > MAX_LOOKUPS => {
            Some(format!("{} code hashes", r.hashes.len()))
        }
        Message::GetByteCodes(r) => budget(r.response_bytes),
        Message::GetTrieNodes(r) => {
            let lookups: usize = r.paths.iter().map(|g| g.len().saturating_sub(1).max(1)).sum();
            if lookups > MAX_LOOKUPS {
                Some(format!("{lookups} trie-node lookups"))
            } else {
                budget(r.response_bytes)
            }
        }
        Message::GetBlockHeaders(r) if r.limit > MAX_SERVE_ITEMS as u64 => {
            Some(format!("{} headers", r.limit))
        }
        Message::GetBlockBodies(r) if r.hashes.len() > MAX_SERVE_ITEMS => {
            Some(format!("{} bodies", r.hashes.len()))
        }
        _ => None,
    }
}

fn sample_latency_us(rng: &mut ChaCha8Rng, l: &Latency) -> u64 {
    match l {
        Latency::Uniform { min, max } => {
            let (a, b) = (min.as_micros(), max.as_micros());
            if b > a {
                rng.random_range(a..=b)
            } else {
                a
            }
        }
        Latency::LogNormal { median, p99 } => {
            let m = (median.as_micros() as f64).max(1.0);
            let p = (p99.as_micros() as f64).max(m);
            let sigma = (p / m).ln() / 2.326;
            // Box-Muller from two uniforms
            let u1: f64 = rng.random_range(1e-12..1.0);
            let u2: f64 = rng.random();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            (m * (sigma * z).exp()) as u64
        }
    }
}

impl World {
    /// Builds the world for a scenario: peers from the groups, joins, leaves and disconnect
    /// schedules queued, first block tick queued.
    pub fn new(sc: &Scenario, chain: Chain, seed: u64, trace: Trace) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6e65_7477_6f72_6b00);
        let mut peers = Vec::new();
        let mut queue = BTreeMap::new();
        let mut seq = 0u64;
        let mut push = |q: &mut BTreeMap<(u64, u64), Ev>, t: u64, ev: Ev| {
            seq += 1;
            q.insert((t, seq), ev);
        };
        for (g, group) in sc.peers.iter().enumerate() {
            for _ in 0..group.count {
                let id = peers.len() as u32;
                let behaviours = group.behaviour.clone();
                let slow = behaviours.contains(&Behaviour::Slow);
                let bandwidth = group.bandwidth.0 as f64 / if slow { 10.0 } else { 1.0 };
                let lag = if behaviours.contains(&Behaviour::Stale) {
                    sc.chain.state_history + sc.sync.pivot_distance + 16
                } else if behaviours.contains(&Behaviour::Liar) {
                    LIAR_LAG
                } else {
                    0
                };
                let flap = if behaviours.contains(&Behaviour::Flapping) {
                    Some((30_000_000, 5_000_000))
                } else {
                    sc.faults.disconnect.map(|d| (d.every.as_micros(), d.downtime.as_micros()))
                };
                let join = group.join_at.map_or(0, |d| d.as_micros());
                push(&mut queue, join, Ev::Join(id));
                if let Some(l) = group.leave_at {
                    push(&mut queue, l.as_micros(), Ev::Leave(id));
                }
                if let Some((every, _)) = flap {
                    let t = join + rng.random_range(every / 2..=every.max(1) * 3 / 2);
                    push(&mut queue, t, Ev::Disconnect(id));
                }
                peers.push(SimPeer {
                    id,
                    group: g,
                    behaviours: behaviours.clone(),
                    server: PeerServer::new(&behaviours, seed ^ (u64::from(id) << 32) ^ 0x7065_6572),
                    latency: group.latency,
                    bandwidth: bandwidth.max(1.0),
                    up_free_us: 0,
                    down_free_us: 0,
                    present: false,
                    connected: false,
                    dropped: false,
                    lag,
                    flap,
                });
            }
        }
        let block_time_us = sc.chain.block_time.as_micros();
        if block_time_us > 0 {
            push(&mut queue, block_time_us, Ev::Block);
        }
        if let Some(r) = sc.chain.reorg {
            push(&mut queue, r.at.as_micros(), Ev::Reorg(r.depth));
        }
        World {
            chain,
            peers,
            queue,
            seq,
            rng,
            announce_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6865_6164_7300),
            faults: sc.faults.clone(),
            trace,
            start: Instant::now(),
            block_time_us,
            state_history: sc.chain.state_history.max(1),
            limits: Limits::default(),
            fault_stats: FaultStats::default(),
            bytes_to_node: 0,
            phases: Vec::new(),
            announce_head: true,
            end_us: 0,
            crash_on_phase: None,
            progress: crate::progress::Progress::new(false),
            over_cap: 0,
            over_cap_first: None,
            recorder: None,
        }
    }

    /// Virtual time since the start, in µs.
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn push(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((t, self.seq), ev);
    }

    /// The node crashed: everything in flight to it is lost; peers reconnect to the new node.
    pub fn node_crashed(&mut self) {
        let now = self.now_us();
        self.trace.event(now, "crash", None, "", &[]);
        self.queue.retain(|_, ev| !matches!(ev, Ev::ToNode { .. } | Ev::ToPeer { .. }));
        self.phases.push((now / 1000, "restart".to_string()));
        if let Some(r) = &mut self.recorder {
            r.mark(now / 1000, crate::timeline::Marker::Crash);
        }
        for i in 0..self.peers.len() {
            let p = &mut self.peers[i];
            p.up_free_us = now;
            p.down_free_us = now;
            if p.connected {
                p.connected = false;
                self.push(now + 1000, Ev::Reconnect(i as u32));
            }
        }
        self.announce_head = true;
    }

    /// The highest block peer `p` has (and serves).
    fn peer_head(&self, p: &SimPeer) -> u64 {
        self.chain.head_number().saturating_sub(p.lag)
    }

    /// The head peer `p` announces: its own head, except that a `liar` announces the network's
    /// head, which it does not have.
    fn announced_head(&self, p: &SimPeer) -> u64 {
        if p.has(Behaviour::Liar) {
            self.chain.head_number()
        } else {
            self.peer_head(p)
        }
    }

    /// Peer `peer` tells the node its head (a `NewBlockHashes` of one block: what a peer sends
    /// on connecting and on every new head it adopts).
    fn announce_head_of(&mut self, peer: u32) {
        let n = self.announced_head(&self.peers[peer as usize]);
        let Some(hash) = self.chain.block(n).map(|b| b.header.hash()) else { return };
        let msg = Message::NewBlockHashes(NewBlockHashes(vec![BlockHashNumber { hash, number: n }]));
        std::mem::swap(&mut self.rng, &mut self.announce_rng);
        self.transmit(peer, msg.encode(), true);
        std::mem::swap(&mut self.rng, &mut self.announce_rng);
    }

    /// Every connected peer announces its head, in id order.
    fn announce_heads(&mut self) {
        for i in 0..self.peers.len() {
            if self.peers[i].connected {
                self.announce_head_of(i as u32);
            }
        }
    }

    /// Sends over a link with faults; returns nothing (the delivery is queued).
    fn transmit(&mut self, peer: u32, mut bytes: Vec<u8>, to_node: bool) {
        let now = self.now_us();
        self.fault_stats.messages += 1;
        let kind = Message::name_of_code(bytes.first().copied().unwrap_or(0xff)).unwrap_or("?");
        if self.faults.drop > 0.0 && self.rng.random_bool(self.faults.drop.min(1.0)) {
            self.fault_stats.dropped += 1;
            self.trace.event(now, "drop", Some(peer), kind, &bytes);
            return;
        }
        if self.faults.corrupt > 0.0
            && !bytes.is_empty()
            && self.rng.random_bool(self.faults.corrupt.min(1.0))
        {
            self.fault_stats.corrupted += 1;
            let flips = self.rng.random_range(1..=3);
            for _ in 0..flips {
                let i = self.rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << self.rng.random_range(0..8);
            }
            self.trace.event(now, "corrupt", Some(peer), kind, &bytes);
        }
        let p = &mut self.peers[peer as usize];
        let tx_us = (bytes.len() as f64 / p.bandwidth * 1e6) as u64;
        let free = if to_node { &mut p.down_free_us } else { &mut p.up_free_us };
        let start = (*free).max(now);
        *free = start + tx_us;
        let done = *free;
        let mut lat = sample_latency_us(&mut self.rng, &self.peers[peer as usize].latency);
        if self.faults.reorder > 0.0 && self.rng.random_bool(self.faults.reorder.min(1.0)) {
            self.fault_stats.reordered += 1;
            lat += self.rng.random_range(0..=2 * lat.max(1000));
        }
        let dup = self.faults.duplicate > 0.0 && self.rng.random_bool(self.faults.duplicate.min(1.0));
        self.trace.event(now, if to_node { "reply" } else { "send" }, Some(peer), kind, &bytes);
        let ev =
            |b: Vec<u8>| if to_node { Ev::ToNode { peer, bytes: b } } else { Ev::ToPeer { peer, bytes: b } };
        if dup {
            self.fault_stats.duplicated += 1;
            let extra = sample_latency_us(&mut self.rng, &self.peers[peer as usize].latency);
            self.push(done + lat + extra, ev(bytes.clone()));
        }
        self.push(done + lat, ev(bytes));
    }

    /// What peer `peer` answers to `req` right now: it serves the roots of its last
    /// `state_history` blocks (fewer if it lags) and empty replies for any other.
    pub fn serve(&mut self, peer: u32, req: &Message) -> Option<Message> {
        let p = &self.peers[peer as usize];
        let head = self.peer_head(p);
        let lo = head.saturating_sub(self.state_history - 1);
        let chain = &self.chain;
        let has_root = |r: &B256| (lo..=head).any(|n| chain.state_root(n) == Some(*r));
        self.peers[peer as usize].server.serve(chain, &has_root, head, req)
    }

    /// Schedules node crashes at these virtual times (µs).
    pub fn schedule_crashes(&mut self, times: &[u64]) {
        for t in times {
            self.push(*t, Ev::Crash);
        }
    }

    /// Peers push the new block `number` to the node: two random peers (so the node hears
    /// of most blocks from several sources), every `duplicate-blocks` peer (which also
    /// re-sends an older block), and, at the `duplicate_blocks` fault rate, one more copy of a
    /// recent block.
    fn announce(&mut self, number: u64) {
        let live: Vec<u32> = self.peers.iter().filter(|p| p.connected && p.lag == 0).map(|p| p.id).collect();
        if live.is_empty() {
            return;
        }
        let mut sends: Vec<(u32, u64)> = Vec::new();
        for _ in 0..2 {
            sends.push((live[self.rng.random_range(0..live.len())], number));
        }
        for p in &live {
            if self.peers[*p as usize].has(Behaviour::DuplicateBlocks) {
                sends.push((*p, number));
                sends.push((*p, number.saturating_sub(self.rng.random_range(1..=8))));
            }
        }
        if self.faults.duplicate_blocks > 0.0 && self.rng.random_bool(self.faults.duplicate_blocks.min(1.0)) {
            let p = live[self.rng.random_range(0..live.len())];
            sends.push((p, number.saturating_sub(self.rng.random_range(0..=4))));
        }
        for (peer, n) in sends {
            let Some(block) = self.chain.block(n).cloned() else { continue };
            let msg = Message::NewBlock(syncsim_node::codec::NewBlock { block });
            self.transmit(peer, msg.encode(), true);
        }
    }

    /// Handles one queued event; returns what the node should see, if anything.
    fn process(&mut self, ev: Ev) -> Option<NetEvent> {
        let now = self.now_us();
        match ev {
            Ev::ToNode { peer, bytes } => {
                let p = &self.peers[peer as usize];
                if !p.connected {
                    return None;
                }
                self.bytes_to_node += bytes.len() as u64;
                if let Some(r) = &mut self.recorder {
                    r.delivered(bytes.first().copied().unwrap_or(0xff), bytes.len());
                }
                self.trace.event(now, "deliver", Some(peer), "", &bytes);
                Some(NetEvent::Message { peer, bytes })
            }
            Ev::ToPeer { peer, bytes } => {
                let p = &self.peers[peer as usize];
                if !p.connected {
                    return None;
                }
                let Ok(req) = Message::decode(&bytes, &self.limits) else {
                    self.trace.event(now, "peer-undecodable", Some(peer), "", &bytes);
                    return None;
                };
                if let Some(r) = &mut self.recorder {
                    r.requested(now / 1000, &req);
                }
                if let Some(reply) = self.serve(peer, &req) {
                    let bytes = reply.encode();
                    self.transmit(peer, bytes, true);
                }
                None
            }
            Ev::Block => {
                let block = self.chain.produce_block();
                let (number, hash) = (block.header.number, block.header.hash());
                self.trace.event(now, "block", None, &number.to_string(), hash.as_slice());
                self.push(now + self.block_time_us, Ev::Block);
                self.announce(number);
                self.announce_heads();
                Some(NetEvent::Head { number, hash })
            }
            Ev::Crash => {
                self.trace.event(now, "shutdown", None, "", &[]);
                Some(NetEvent::Shutdown)
            }
            Ev::Reorg(depth) => {
                self.chain.reorg(depth);
                let head = self.chain.head_number();
                let hash = self.chain.block(head).map(|b| b.header.hash()).unwrap_or_default();
                self.trace.event(now, "reorg", None, &depth.to_string(), hash.as_slice());
                if let Some(r) = &mut self.recorder {
                    r.mark(now / 1000, crate::timeline::Marker::Reorg);
                }
                self.announce_heads();
                Some(NetEvent::Head { number: head, hash })
            }
            Ev::Join(peer) => {
                let p = &mut self.peers[peer as usize];
                p.present = true;
                if p.dropped {
                    return None;
                }
                p.connected = true;
                self.trace.event(now, "join", Some(peer), "", &[]);
                self.announce_head_of(peer);
                Some(NetEvent::PeerJoined(peer))
            }
            Ev::Reconnect(peer) => {
                let p = &mut self.peers[peer as usize];
                if !p.present || p.dropped || p.connected {
                    return None;
                }
                p.connected = true;
                self.trace.event(now, "reconnect", Some(peer), "", &[]);
                self.announce_head_of(peer);
                Some(NetEvent::PeerJoined(peer))
            }
            Ev::Leave(peer) => {
                let p = &mut self.peers[peer as usize];
                p.present = false;
                let was = p.connected;
                p.connected = false;
                self.trace.event(now, "leave", Some(peer), "", &[]);
                was.then_some(NetEvent::PeerLeft(peer))
            }
            Ev::Disconnect(peer) => {
                let p = &mut self.peers[peer as usize];
                let (every, down) = p.flap?;
                let was = p.connected;
                p.connected = false;
                let next = now + down.max(1);
                self.push(next, Ev::Reconnect(peer));
                let gap = self.rng.random_range(every / 2..=every.max(1) * 3 / 2);
                self.push(next + gap, Ev::Disconnect(peer));
                if was {
                    self.fault_stats.disconnects += 1;
                    self.trace.event(now, "disconnect", Some(peer), "", &[]);
                    return Some(NetEvent::PeerLeft(peer));
                }
                None
            }
        }
    }
}

impl Network for World {
    fn send(&mut self, peer: u32, bytes: Vec<u8>) {
        // the node's own discipline, checked before transit can corrupt anything
        match Message::decode(&bytes, &self.limits) {
            Ok(msg) => {
                if let Some(why) = over_cap(&msg) {
                    self.over_cap += 1;
                    self.over_cap_first.get_or_insert(why);
                }
            }
            Err(e) => {
                self.over_cap += 1;
                self.over_cap_first.get_or_insert(format!("undecodable request: {e}"));
            }
        }
        let connected = self.peers.get(peer as usize).is_some_and(|p| p.connected);
        if !connected {
            return;
        }
        if self.peers[peer as usize].has(Behaviour::Unresponsive) {
            // still charged on the wire; the server never answers
        }
        self.transmit(peer, bytes, false);
    }

    fn disconnect(&mut self, peer: u32, reason: &str) {
        let now = self.now_us();
        if let Some(p) = self.peers.get_mut(peer as usize) {
            p.dropped = true;
            p.connected = false;
        }
        self.trace.event(now, "peer-dropped", Some(peer), reason, &[]);
    }

    async fn next_event(&mut self, deadline: Option<Instant>) -> Option<NetEvent> {
        if self.announce_head {
            self.announce_head = false;
            let head = self.chain.head_number();
            if let Some(b) = self.chain.block(head) {
                return Some(NetEvent::Head { number: head, hash: b.header.hash() });
            }
        }
        loop {
            let next = self.queue.first_key_value().map(|((t, _), _)| *t);
            let dl = deadline.map(|d| d.saturating_duration_since(self.start).as_micros() as u64);
            match (next, dl) {
                (Some(t), Some(d)) if t > d => {
                    tokio::time::sleep_until(deadline?).await;
                    return None;
                }
                (None, Some(_)) => {
                    tokio::time::sleep_until(deadline?).await;
                    return None;
                }
                (None, None) => return None,
                _ => {}
            }
            let t = next?;
            tokio::time::sleep_until(self.start + std::time::Duration::from_micros(t)).await;
            let (_, ev) = self.queue.pop_first()?;
            let phase = self.phases.last().map_or("start", |p| p.1.as_str());
            self.progress.tick(t / 1000, phase, self.bytes_to_node);
            if let Some(r) = &mut self.recorder {
                r.tick(t / 1000);
            }
            if let Some(out) = self.process(ev) {
                return Some(out);
            }
        }
    }

    fn note(&mut self, event: &str, peer: Option<u32>, detail: &str) {
        let now = self.now_us();
        self.trace.event(now, event, peer, detail, &[]);
    }

    fn phase(&mut self, phase: &str) {
        let now = self.now_us();
        if phase == "verify" || phase == "execution" {
            // the state is complete: a crash still pending (the sync went quicker than its
            // moments were spread over) happens now, so `faults.crash = N` means N crashes
            let pending = self.queue.iter().find(|(_, ev)| matches!(ev, Ev::Crash)).map(|(k, _)| *k);
            if let Some(key) = pending {
                self.queue.remove(&key);
                self.push(now, Ev::Crash);
            }
        }
        if self.crash_on_phase.as_ref().is_some_and(|(p, _)| p == phase) {
            if let Some((_, delay)) = self.crash_on_phase.take() {
                self.push(now + delay, Ev::Crash);
            }
        }
        self.trace.event(now, "phase", None, phase, &[]);
        self.phases.push((now / 1000, phase.to_string()));
        if let Some(r) = &mut self.recorder {
            r.sample_at(now / 1000);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{synthetic_state, ChainParams, SyntheticSpec};
    use crate::view::ChainView;
    use alloy_primitives::{keccak256, Bytes};
    use syncsim_node::codec::{GetAccountRange, GetBlockHeaders, GetStorageRanges, GetTrieNodes};
    use syncsim_node::primitives::EMPTY_ROOT;

    fn world(faults: &str, history: u64) -> World {
        world_of(
            &format!("state_history = {history}"),
            "[[peers]]\ncount = 2",
            &format!("[faults]\n{faults}"),
        )
    }

    /// A world over a 200-account chain: `chain` is the body of `[chain]`, `peers` the
    /// `[[peers]]` tables, `rest` further sections.
    fn world_of(chain: &str, peers: &str, rest: &str) -> World {
        let text = format!("name = \"t\"\n[state]\naccounts = 200\n[chain]\n{chain}\n{peers}\n{rest}\n");
        let sc = Scenario::parse(&text, std::path::Path::new("t.toml")).expect("scenario");
        let state = synthetic_state(&SyntheticSpec { accounts: 200, ..Default::default() }, 1);
        let chain = Chain::new(state, ChainParams { changes_per_block: 5, block_time_ms: 1000 }, 1);
        World::new(&sc, chain, 9, Trace::new(None))
    }

    /// Runs the world built by `make` without a node for `secs` of virtual time (on a paused
    /// clock); returns it and what the node would have seen, each with its virtual time in ms.
    fn pump(make: impl FnOnce() -> World, secs: u64) -> (World, Vec<(u64, NetEvent)>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut w = make();
            let end = w.start + std::time::Duration::from_secs(secs);
            let mut seen = Vec::new();
            while Instant::now() < end {
                if let Some(ev) = w.next_event(Some(end)).await {
                    seen.push((w.now_us() / 1000, ev));
                }
            }
            (w, seen)
        })
    }

    /// Each peer's (joined, left) virtual times in ms, from pumped events.
    fn sessions(seen: &[(u64, NetEvent)], peers: usize) -> Vec<Vec<(u64, Option<u64>)>> {
        let mut out = vec![Vec::new(); peers];
        for (t, ev) in seen {
            match ev {
                NetEvent::PeerJoined(p) => out[*p as usize].push((*t, None)),
                NetEvent::PeerLeft(p) => {
                    if let Some(last) = out[*p as usize].last_mut() {
                        last.1 = Some(*t);
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The messages queued for the node: (peer, decoded message).
    fn queued_to_node(w: &World) -> Vec<(u32, Message)> {
        w.queue
            .values()
            .filter_map(|e| match e {
                Ev::ToNode { peer, bytes } => {
                    Some((*peer, Message::decode(bytes, &w.limits).expect("decodes")))
                }
                _ => None,
            })
            .collect()
    }

    fn rate(count: u64, n: u64) -> f64 {
        count as f64 / n as f64
    }

    #[test]
    fn faults_happen_at_their_configured_rate() {
        const N: u64 = 10_000;
        for (key, pick) in [
            ("drop", (|f: &FaultStats| f.dropped) as fn(&FaultStats) -> u64),
            ("duplicate", |f| f.duplicated),
            ("reorder", |f| f.reordered),
            ("corrupt", |f| f.corrupted),
        ] {
            let mut w = world(&format!("{key} = 0.1"), 128);
            for i in 0..N {
                w.transmit((i % 2) as u32, vec![0x00, 1, 2, 3, 4, 5, 6, 7], i % 3 == 0);
            }
            let r = rate(pick(&w.fault_stats), N);
            assert!((r - 0.1).abs() <= 0.02, "{key}: rate {r}");
        }
        // corrupt flips bytes of what is delivered
        let mut w = world("corrupt = 1.0", 128);
        w.transmit(0, vec![0u8; 64], true);
        let delivered: Vec<Vec<u8>> = w
            .queue
            .values()
            .filter_map(|e| match e {
                Ev::ToNode { bytes, .. } => Some(bytes.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(delivered.len(), 1);
        assert!(delivered[0].iter().any(|b| *b != 0));
    }

    /// Peers serve account ranges, storage ranges and trie nodes for every root of their last
    /// `state_history` blocks, and empty replies for older roots.
    #[test]
    fn peers_serve_their_history_and_nothing_older() {
        let mut w = world("", 4);
        for _ in 0..10 {
            w.chain.produce_block();
        }
        let roots: Vec<B256> = (0..=10u64).map(|n| w.chain.state_root(n).expect("root")).collect();
        // a contract with storage at every one of those roots
        let contract = {
            let head = Message::GetAccountRange(GetAccountRange {
                request_id: 0,
                root: roots[10],
                starting_hash: B256::ZERO,
                limit_hash: B256::repeat_byte(0xff),
                response_bytes: 1 << 20,
            });
            let Some(Message::AccountRange(r)) = w.serve(0, &head) else { panic!("no reply") };
            let chain = &w.chain;
            r.accounts
                .iter()
                .map(|a| a.hash)
                .find(|a| {
                    roots.iter().all(|root| chain.storage_root(root, a).is_some_and(|s| s != EMPTY_ROOT))
                })
                .expect("a contract with storage throughout")
        };
        for n in 0..=10u64 {
            let root = roots[n as usize];
            let in_window = n >= 7;
            let sroot = w.chain.storage_root(&root, &contract).expect("storage root");
            let req = Message::GetStorageRanges(GetStorageRanges {
                request_id: n,
                root,
                account_hashes: vec![contract],
                starting_hash: None,
                limit_hash: None,
                response_bytes: 1 << 20,
            });
            let Some(Message::StorageRanges(r)) = w.serve(0, &req) else { panic!("no storage reply") };
            assert_eq!(!r.slots.is_empty(), in_window, "storage at block {n}");
            if in_window {
                assert!(!r.slots[0].is_empty(), "block {n}");
                let keys: Vec<B256> = r.slots[0].iter().map(|s| s.hash).collect();
                let values: Vec<Vec<u8>> = r.slots[0].iter().map(|s| s.data.to_vec()).collect();
                assert!(
                    syncsim_node::trie::verify_range(sroot, &B256::ZERO, &keys, &values, &r.proof).is_ok()
                );
            }
            // the account trie's root node, and the contract's storage root node
            let req = Message::GetTrieNodes(GetTrieNodes {
                request_id: n,
                root,
                paths: vec![
                    vec![Bytes::from_static(&[0])],
                    vec![contract.to_vec().into(), Bytes::from_static(&[0])],
                ],
                response_bytes: 1 << 20,
            });
            let Some(Message::TrieNodes(r)) = w.serve(0, &req) else { panic!("no trie-node reply") };
            if in_window {
                let hashes: Vec<B256> = r.nodes.iter().map(keccak256).collect();
                assert_eq!(hashes, vec![root, sroot], "block {n}");
            } else {
                assert!(r.nodes.is_empty(), "block {n}");
            }
            let req = whole_account_range(n, root);
            let Some(Message::AccountRange(r)) = w.serve(0, &req) else { panic!("no reply") };
            assert_eq!(!r.accounts.is_empty(), in_window, "block {n}");
            if in_window {
                let keys: Vec<B256> = r.accounts.iter().map(|a| a.hash).collect();
                let values: Vec<Vec<u8>> = r
                    .accounts
                    .iter()
                    .map(|a| {
                        syncsim_node::account::Account::decode_slim(&a.body).expect("slim").encode_full()
                    })
                    .collect();
                assert_eq!(
                    syncsim_node::trie::verify_range(root, &B256::ZERO, &keys, &values, &r.proof),
                    Ok(false)
                );
            }
        }
    }

    /// A request for every account of `root`, with a 1 MiB budget.
    fn whole_account_range(request_id: u64, root: B256) -> Message {
        Message::GetAccountRange(GetAccountRange {
            request_id,
            root,
            starting_hash: B256::ZERO,
            limit_hash: B256::repeat_byte(0xff),
            response_bytes: 1 << 20,
        })
    }

    /// Produces `blocks` blocks, connects every peer, announces the head `rounds` times and
    /// returns its number.
    fn announce_head_rounds(w: &mut World, blocks: usize, rounds: u64) -> u64 {
        for _ in 0..blocks {
            w.chain.produce_block();
        }
        for p in &mut w.peers {
            p.connected = true;
        }
        let head = w.chain.head_number();
        for _ in 0..rounds {
            w.announce(head);
        }
        head
    }

    #[test]
    fn duplicate_blocks_fault_happens_at_its_configured_rate() {
        const N: u64 = 10_000;
        let mut w = world("duplicate_blocks = 0.2", 128);
        announce_head_rounds(&mut w, 10, N);
        // two peers push every block; the fault adds one more copy of a recent one
        let extra = w.fault_stats.messages - 2 * N;
        let r = rate(extra, N);
        assert!((r - 0.2).abs() <= 0.02, "duplicate_blocks: rate {r}");
    }

    #[test]
    fn duplicate_block_peers_resend_blocks() {
        const ROUNDS: u64 = 200;
        let mut w =
            world_of("", "[[peers]]\ncount = 1\n[[peers]]\ncount = 1\nbehaviour = \"duplicate-blocks\"", "");
        let head = announce_head_rounds(&mut w, 20, ROUNDS);
        let mut blocks = [Vec::new(), Vec::new()];
        for (peer, msg) in queued_to_node(&w) {
            let Message::NewBlock(nb) = msg else { panic!("not a block: {msg:?}") };
            blocks[peer as usize].push(nb.block.header.number);
        }
        // the honest peer pushes only new blocks; the other re-sends each and an older one
        assert!(blocks[0].iter().all(|n| *n == head));
        let again = blocks[1].iter().filter(|n| **n == head).count() as u64;
        let older = blocks[1].iter().filter(|n| **n < head).count() as u64;
        assert!(again >= ROUNDS, "{again} re-sent heads");
        assert_eq!(older, ROUNDS);
        assert!(blocks[1].iter().all(|n| *n + 8 >= head));
    }

    /// `disconnect = { every, downtime }`: a peer stays connected `every` on average (uniform
    /// over half to one and a half times it) and is away exactly `downtime` each time.
    #[test]
    fn disconnects_come_at_the_configured_mean_interval() {
        let (w, seen) = pump(
            || {
                world_of(
                    "block_time = \"1h\"",
                    "[[peers]]\ncount = 4",
                    "[faults]\ndisconnect = { every = \"60s\", downtime = \"10s\" }",
                )
            },
            4 * 3600,
        );
        let mut up = Vec::new();
        let mut down = Vec::new();
        for s in sessions(&seen, 4) {
            for w in s.windows(2) {
                let left = w[0].1.expect("left before rejoining");
                up.push(left - w[0].0);
                down.push(w[1].0 - left);
            }
        }
        let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
        assert!(up.len() >= 700, "{} disconnects", up.len());
        let left = seen.iter().filter(|(_, e)| matches!(e, NetEvent::PeerLeft(_))).count();
        assert_eq!(w.fault_stats.disconnects as usize, left);
        assert!((mean(&up) - 60_000.0).abs() <= 3_000.0, "mean uptime {} ms", mean(&up));
        assert!(up.iter().all(|u| (30_000..=90_000).contains(u)), "{up:?}");
        assert!(down.iter().all(|d| *d == 10_000), "{down:?}");
    }

    #[test]
    fn peers_join_and_leave_at_their_times() {
        let (w, seen) = pump(
            || {
                world_of(
                    "block_time = \"1h\"",
                    "[[peers]]\ncount = 1\n[[peers]]\ncount = 2\njoin_at = \"30s\"\nleave_at = \"90s\"",
                    "",
                )
            },
            120,
        );
        let s = sessions(&seen, 3);
        assert_eq!(s[0], vec![(0, None)]);
        assert_eq!(s[1], vec![(30_000, Some(90_000))]);
        assert_eq!(s[2], vec![(30_000, Some(90_000))]);
        assert!(w.peers[0].present && !w.peers[1].present && !w.peers[2].present);
        // nothing reaches the node from a peer before it joined or after it left
        for (t, ev) in &seen {
            if let NetEvent::Message { peer: 1 | 2, .. } = ev {
                assert!((30_000..90_000).contains(t), "message at {t} ms");
            }
        }
    }

    #[test]
    fn slow_peers_get_a_tenth_of_the_bandwidth() {
        let link = "latency = \"50ms..50ms\"\nbandwidth = \"1MiB/s\"";
        let mut w = world_of(
            "",
            &format!("[[peers]]\ncount = 1\n{link}\n[[peers]]\ncount = 1\nbehaviour = \"slow\"\n{link}"),
            "",
        );
        let now = w.now_us();
        for peer in 0..2 {
            w.transmit(peer, vec![0x01; 1 << 20], true);
        }
        let arrival = |peer: u32| {
            w.queue
                .iter()
                .find_map(|((t, _), e)| matches!(e, Ev::ToNode { peer: p, .. } if *p == peer).then_some(*t))
                .expect("queued")
        };
        // the transfer time, less the fixed 50 ms latency
        let (fast, slow) = (arrival(0) - now - 50_000, arrival(1) - now - 50_000);
        assert!((fast as f64 - 1e6).abs() <= 1e4, "fast {fast} µs");
        let ratio = slow as f64 / fast as f64;
        assert!((ratio - 10.0).abs() <= 0.1, "ratio {ratio}");
    }

    /// A `stale` peer's chain lags far behind: it serves (and announces) only old blocks, and
    /// the current root has aged out of what it holds.
    #[test]
    fn stale_peers_lag_and_their_roots_age_out() {
        let mut w = world_of(
            "state_history = 4",
            "[[peers]]\ncount = 1\n[[peers]]\ncount = 1\nbehaviour = \"stale\"",
            "",
        );
        for _ in 0..100 {
            w.chain.produce_block();
        }
        let head = w.chain.head_number();
        let lag = 4 + 64 + 16; // state_history + pivot_distance + 16
        let accounts = |w: &mut World, peer: u32, n: u64| {
            let root = w.chain.state_root(n).expect("root");
            let req = whole_account_range(n, root);
            let Some(Message::AccountRange(r)) = w.serve(peer, &req) else { panic!("no reply") };
            r.accounts.len()
        };
        assert!(accounts(&mut w, 0, head) > 0);
        assert_eq!(accounts(&mut w, 1, head), 0, "the current root aged out");
        assert_eq!(accounts(&mut w, 1, head - lag + 1), 0);
        assert!(accounts(&mut w, 1, head - lag) > 0, "its own head's root");
        assert_eq!(accounts(&mut w, 0, head - lag), 0);
        // it announces the head it really has
        w.peers[1].connected = true;
        w.announce_heads();
        let announced: Vec<u64> = queued_to_node(&w)
            .into_iter()
            .filter_map(|(_, m)| match m {
                Message::NewBlockHashes(NewBlockHashes(v)) => Some(v[0].number),
                _ => None,
            })
            .collect();
        assert_eq!(announced, vec![head - lag]);
    }

    /// A `liar` announces the network's head but has (and serves) only the chain
    /// [`LIAR_LAG`] blocks below it.
    #[test]
    fn liars_announce_a_head_they_do_not_have() {
        let mut w = world_of("", "[[peers]]\ncount = 1\n[[peers]]\ncount = 1\nbehaviour = \"liar\"", "");
        for _ in 0..20 {
            w.chain.produce_block();
        }
        let head = w.chain.head_number();
        for p in &mut w.peers {
            p.connected = true;
        }
        w.announce_heads();
        let hash = w.chain.block(head).map(|b| b.header.hash()).expect("head");
        for (_, m) in queued_to_node(&w) {
            let Message::NewBlockHashes(NewBlockHashes(v)) = m else { panic!("{m:?}") };
            assert_eq!((v[0].number, v[0].hash), (head, hash));
        }
        let headers = |w: &mut World, peer: u32, start: u64| {
            let req = Message::GetBlockHeaders(GetBlockHeaders {
                request_id: 1,
                start,
                limit: 64,
                skip: 0,
                reverse: false,
            });
            let Some(Message::BlockHeaders(r)) = w.serve(peer, &req) else { panic!("no reply") };
            r.headers.iter().map(|h| h.number).collect::<Vec<u64>>()
        };
        assert_eq!(headers(&mut w, 0, head), vec![head]);
        assert!(headers(&mut w, 1, head).is_empty());
        assert_eq!(headers(&mut w, 1, head - LIAR_LAG - 1), vec![head - LIAR_LAG - 1, head - LIAR_LAG]);
    }

    #[test]
    fn flapping_peers_disconnect_often() {
        let (w, seen) = pump(
            || {
                world_of(
                    "block_time = \"1h\"",
                    "[[peers]]\ncount = 1\n[[peers]]\ncount = 1\nbehaviour = \"flapping\"",
                    "",
                )
            },
            600,
        );
        let s = sessions(&seen, 2);
        assert_eq!(s[0], vec![(0, None)], "the honest peer stays");
        // a flapping peer is up 15..45 s between 5 s absences: about 17 times in 10 minutes
        assert!((10..=30).contains(&s[1].len()), "{} sessions", s[1].len());
        assert!(w.fault_stats.disconnects >= 10);
    }
}
