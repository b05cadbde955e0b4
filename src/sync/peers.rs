//! What the downloader knows about each peer: measured round trip and bandwidth, in-flight
//! requests per kind, and its record of failures.

use crate::sync::config::{caps, SizingPolicy, SyncConfig};

/// Identifies a peer for the whole run.
pub type PeerId = u32;

/// The four kinds of snap request, each with at most one request in flight per peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Kind {
    /// GetAccountRange.
    Accounts,
    /// GetStorageRanges.
    Storage,
    /// GetByteCodes.
    Codes,
    /// GetTrieNodes.
    TrieNodes,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 4] = [Kind::Accounts, Kind::Storage, Kind::Codes, Kind::TrieNodes];
    /// Position in per-kind arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Per-peer state.
#[derive(Debug, Clone)]
pub struct PeerState {
    /// Requests in flight per kind.
    pub in_flight: [u32; 4],
    /// Requests sent per kind.
    pub asked: [u64; 4],
    /// Smoothed round trip of small replies (ms).
    pub rtt_ms: f64,
    /// Smoothed delivery rate (bytes per second), 0 until measured.
    pub bandwidth: f64,
    /// Consecutive timeouts.
    pub timeouts_in_row: u32,
    /// Not to be used before this virtual time (ms).
    pub benched_until: u64,
    /// Replies that failed verification or decoding.
    pub strikes: u32,
    /// Replies accepted.
    pub ok: u64,
    /// Whether the peer was ever penalised.
    pub penalised: bool,
    /// Messages received that decoded.
    pub messages: u64,
    /// Messages received that did not decode.
    pub garbage: u64,
    /// How fully its replies answer what was asked (smoothed, 0..=1): trie nodes and codes
    /// delivered of those requested, a truncated range's bytes of its budget. A peer capping
    /// its replies (`starving`) answers quickly but with little; ranking by round trip alone
    /// would hand it the serial work.
    pub fill: f64,
    /// The adaptive policy's model of the peer's link (unused by the other policies).
    pub link: Link,
    /// The adaptive policy's schedule for this peer, refreshed at every poll.
    pub plan: Plan,
}

/// One peer as the adaptive scheduler sees it during a poll: the effective round trip and
/// bandwidth (measured, or assumed from the other peers while unmeasured; a request overdue
/// lengthens the round trip) and when the replies already asked for will have arrived.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plan {
    /// Effective round trip (ms).
    pub rtt: f64,
    /// A long round trip (ms): the effective one plus twice its deviation. Replies in flight
    /// must cover it to keep the link busy whatever the jitter.
    pub rtt_high: f64,
    /// Effective reply bandwidth (bytes/s).
    pub bw: f64,
    /// Virtual time (ms) by which every reply asked for is expected to have arrived.
    pub free_at: f64,
    /// Virtual time (ms) the first of them is expected: the next chance to send more.
    pub next_at: f64,
    /// Requests in flight (all kinds).
    pub in_flight: u32,
    /// Whether the link has been measured (round trip at least).
    pub known: bool,
    /// Whether its bandwidth has been measured.
    pub bw_known: bool,
    /// Requests this peer may have in flight: its share of the syncer's concurrency.
    pub depth: u32,
    /// The round trip measured (ms), for sizing: `rtt` may be stretched by a late reply.
    pub base_rtt: f64,
    /// No request is planned to be answered later than this far ahead (ms): its deadline.
    pub horizon: f64,
    /// Fair share (bytes) of the work left to hand out, when little is left (see
    /// [`Plan::claim_bytes`]).
    pub share: u64,
    /// How far (ms) its oldest reply is overdue by the model: the peer is slower than measured.
    pub late: f64,
}

/// Shortest deadline (ms) of an adaptive request to a peer with nothing measured yet, whatever
/// the configured timeout.
pub const UNMEASURED_MIN_TIMEOUT_MS: u64 = 2_000;

impl Plan {
    /// Most requests in flight to one peer.
    pub const MAX_IN_FLIGHT: u32 = 32;
    /// Budget of requests to a peer whose round trip is known but not yet its bandwidth.
    pub const RAMP_BYTES: u64 = 128 * 1024;
    /// Budget of the first request to a peer, alone in flight: its time is a round trip plus
    /// a transfer, told apart once the bandwidth is known.
    pub const PROBE_BYTES: u64 = 16 * 1024;

    /// When a new request expecting `bytes` of reply, sent now, would be answered.
    pub fn finish(&self, now: u64, bytes: u64) -> f64 {
        self.free_at.max(now as f64 + self.rtt) + bytes as f64 * 1000.0 / self.bw.max(1.0)
    }

    /// Byte budget of a range request. With three or more requests in flight a reply takes
    /// about half a round trip to arrive (at least 25 ms), so they cover the bandwidth-delay
    /// product without leaving big requests on slow peers at the end of the sync; with fewer
    /// allowed in flight, replies grow to keep the link busy.
    pub fn request_bytes(&self) -> u64 {
        if !self.known {
            return Self::PROBE_BYTES;
        }
        if !self.bw_known {
            return Self::RAMP_BYTES;
        }
        let share = match self.depth {
            0 | 1 => 4.0,
            2 => 1.5,
            _ => 0.5,
        };
        self.bytes_for((self.base_rtt * share).max(25.0))
    }

    /// Bytes' worth of queued items (storage accounts, codes, trie nodes) one request claims:
    /// a request's budget, but no more than a fair share of what is left, so that the end of
    /// the sync is spread over the peers rather than left to a few.
    pub fn claim_bytes(&self) -> u64 {
        self.request_bytes().min(self.share.max(caps::MIN_RESPONSE_BYTES))
    }

    /// Byte budget of a request in a chain (the next range of an account chunk or of a large
    /// contract's storage waits for this reply): about four round trips' worth of transfer, so
    /// the chain runs at four fifths of the link's bandwidth or better. Not cut to the fair
    /// share: a chain of small requests would take many round trips (large contracts are split
    /// into parallel chains instead).
    pub fn serial_bytes(&self) -> u64 {
        if !self.known {
            return self.request_bytes();
        }
        if !self.bw_known {
            return Self::RAMP_BYTES;
        }
        self.bytes_for((self.base_rtt * 4.0).max(100.0)).max(self.request_bytes())
    }

    fn bytes_for(&self, ms: f64) -> u64 {
        ((self.bw * ms / 1000.0) as u64).clamp(caps::MIN_RESPONSE_BYTES, caps::MAX_RESPONSE_BYTES)
    }

    /// Whether another request is needed to keep the link busy: the next reply (the next
    /// chance to ask for more) comes less than a long round trip before the link runs out of
    /// replies asked for, so a request sent then would leave it idle. Also within its depth, and
    /// answered before the deadline horizon. An unmeasured peer gets one request, a small probe:
    /// its round trip. (With two at once the probe's reply could queue behind the other's
    /// transfer, or overtake it.)
    pub fn room(&self, now: u64) -> bool {
        if !self.known {
            return self.in_flight == 0;
        }
        let next = self.next_at.max(now as f64);
        self.in_flight < self.depth.clamp(1, Self::MAX_IN_FLIGHT)
            && (self.in_flight == 0 || self.free_at < next + self.rtt_high)
            && self.finish(now, self.request_bytes()) < now as f64 + self.horizon
    }

    /// Books a request expecting `bytes` of reply, sent now.
    pub fn add(&mut self, now: u64, bytes: u64) {
        self.free_at = self.finish(now, bytes);
        if self.in_flight == 0 {
            self.next_at = self.free_at;
        }
        self.in_flight += 1;
    }
}

/// The adaptive policy's model of one peer's link: a propagation round trip plus a reply
/// bandwidth that serialises replies, fitted from reply arrival times. Several requests may be
/// in flight, so a reply's elapsed time includes waiting behind earlier replies: the bandwidth
/// comes from the time between a reply and the one before it when the link was busy.
#[derive(Debug, Clone, Default)]
pub struct Link {
    /// Propagation round trip (ms), averaged; 0 until measured.
    pub rtt_ms: f64,
    /// The shortest propagation round trip seen (ms).
    pub rtt_min: f64,
    /// Mean deviation of the round trip (ms).
    pub rtt_dev: f64,
    /// Reply bandwidth (bytes per second); 0 until measured.
    pub bw: f64,
    /// Reply bytes, decayed per reply.
    sum_bytes: f64,
    /// Link time spent on them (ms), decayed alike.
    sum_ms: f64,
    /// Arrival time (ms) of the last reply folded in.
    pub last_at: u64,
    /// Lower bound (ms) on the round trip learnt from a request given up unanswered; the next
    /// reply clears it.
    pub floor_ms: f64,
    /// Replies folded in.
    pub samples: u32,
    /// Requests taken back from this peer because another would finish them sooner.
    pub reassigned: u64,
    /// Until when (ms) replies to requests taken back still occupy the link.
    pub busy_until: f64,
    /// Whether the adaptive policy drives this peer (its timeouts back off by round trips).
    pub adaptive: bool,
    /// The first reply: (bytes, elapsed ms).
    first: (f64, f64),
    /// Replies measured since the last [`Link::absorb`]: (bytes, elapsed ms).
    pending: Vec<(u64, u64)>,
}

/// Sizes assumed before anything is measured.
pub mod prior {
    /// Round trip (ms) assumed for a peer nobody has measured yet.
    pub const RTT_MS: f64 = 250.0;
    /// Bandwidth (bytes/s) assumed for a peer nobody has measured yet.
    pub const BW: f64 = 2.0 * 1024.0 * 1024.0;
    /// Expected bytes per trie node in a heal reply.
    pub const NODE_BYTES: u64 = 600;
    /// Expected bytes per contract code.
    pub const CODE_BYTES: u64 = 12 * 1024;
    /// Expected storage bytes per account in a storage bundle.
    pub const STORAGE_BYTES: u64 = 4 * 1024;
}

impl Link {
    /// Whether the link has been measured at all.
    pub fn known(&self) -> bool {
        self.samples > 0
    }

    /// Folds in the replies measured since the last call; `now` is their arrival time (the
    /// syncer is polled right after each reply, at the same virtual instant).
    pub fn absorb(&mut self, now: u64) {
        for (bytes, elapsed) in std::mem::take(&mut self.pending) {
            let el = elapsed.max(1) as f64;
            let sent = now.saturating_sub(elapsed) as f64;
            let b = bytes as f64;
            if self.samples == 0 {
                // first reply: a round trip plus a transfer not known yet (revised below)
                self.rtt_ms = el;
                self.rtt_min = el;
                self.rtt_dev = el / 10.0;
                self.first = (b, el);
            } else {
                // Idle: sent after every earlier reply had arrived, so nothing queued before it
                // and its time is a round trip plus its transfer.
                let idle = sent >= self.last_at as f64 && sent >= self.busy_until;
                // Time the link spent on it: from when it could start (when the previous reply
                // ended, or an average round trip after it was sent if later). Summed over
                // replies with decay, the jitter of consecutive arrivals cancels out, and that
                // of round trips on average.
                let start = (sent + self.rtt_ms).max(self.last_at as f64);
                let mut service = (now as f64 - start).max(1.0);
                if self.bw > 0.0 {
                    // a reply three times faster than the link is jitter, not bandwidth
                    service = service.max(b * 1000.0 / self.bw / 3.0);
                }
                self.sum_bytes = 0.8 * self.sum_bytes + b;
                self.sum_ms = 0.8 * self.sum_ms + service;
                if self.sum_bytes >= 64.0 * 1024.0 && self.sum_ms >= 20.0 {
                    let first_bw = self.bw == 0.0;
                    self.bw = (self.sum_bytes * 1000.0 / self.sum_ms).max(16.0 * 1024.0);
                    if first_bw {
                        // the first reply's time was a round trip plus its transfer
                        let r = (self.first.1 - self.first.0 * 1000.0 / self.bw).max(0.25 * self.first.1);
                        self.rtt_ms = self.rtt_ms.min(r);
                        self.rtt_min = self.rtt_min.min(r);
                        self.rtt_dev = self.rtt_ms / 10.0;
                    }
                }
                if idle {
                    let transfer = if self.bw > 0.0 { b * 1000.0 / self.bw } else { 0.0 };
                    let r = (el - transfer).max(0.5 * self.rtt_ms).min(el).max(1.0);
                    self.rtt_dev = 0.75 * self.rtt_dev + 0.25 * (r - self.rtt_ms).abs();
                    self.rtt_ms = 0.75 * self.rtt_ms + 0.25 * r;
                    self.rtt_min = self.rtt_min.min(r);
                }
            }
            self.samples += 1;
            self.last_at = now;
            self.floor_ms = 0.0;
        }
    }
}

impl Default for PeerState {
    fn default() -> Self {
        Self {
            in_flight: [0; 4],
            asked: [0; 4],
            rtt_ms: 0.0,
            bandwidth: 0.0,
            timeouts_in_row: 0,
            benched_until: 0,
            strikes: 0,
            ok: 0,
            penalised: false,
            messages: 0,
            garbage: 0,
            fill: 1.0,
            link: Link::default(),
            plan: Plan::default(),
        }
    }
}

impl PeerState {
    /// Marks a request sent.
    pub fn sent(&mut self, kind: Kind) {
        self.in_flight[kind.index()] += 1;
        self.asked[kind.index()] += 1;
    }

    /// What is kept of a peer that disconnected: its record (answers, strikes, timeouts, bench,
    /// link measurements), nothing in flight.
    pub fn departed(mut self) -> Self {
        self.in_flight = [0; 4];
        self.link.pending.clear();
        self
    }

    /// Marks a request finished (any outcome).
    pub fn finished(&mut self, kind: Kind) {
        let slot = &mut self.in_flight[kind.index()];
        *slot = slot.saturating_sub(1);
    }

    /// Records a delivered reply of `bytes` after `elapsed_ms`.
    pub fn measured(&mut self, bytes: usize, elapsed_ms: u64) {
        if self.link.pending.len() < 64 {
            self.link.pending.push((bytes as u64, elapsed_ms));
        }
        let elapsed = elapsed_ms.max(1) as f64;
        self.timeouts_in_row = 0;
        self.ok += 1;
        if self.rtt_ms == 0.0 {
            self.rtt_ms = elapsed;
        } else if bytes < 4096 || elapsed < self.rtt_ms {
            self.rtt_ms = 0.8 * self.rtt_ms + 0.2 * elapsed;
        }
        if bytes >= 16 * 1024 {
            let rate = bytes as f64 * 1000.0 / (elapsed - 0.5 * self.rtt_ms).max(1.0);
            self.bandwidth = if self.bandwidth == 0.0 { rate } else { 0.7 * self.bandwidth + 0.3 * rate };
        }
    }

    /// Folds in how fully an accepted reply answered its request (0..=1).
    pub fn answered(&mut self, fill: f64) {
        self.fill = 0.7 * self.fill + 0.3 * fill.clamp(0.0, 1.0);
    }

    /// Records a timeout: benches the peer for a growing while.
    pub fn timed_out(&mut self, now: u64) {
        self.penalised = true;
        if self.benched_until > now {
            // several requests in flight expire together: one episode, one step of backoff
            return;
        }
        self.timeouts_in_row += 1;
        let rtt = if self.link.known() { self.link.rtt_ms } else { self.rtt_ms };
        let backoff = if self.ok > 0 && rtt > 0.0 {
            // a peer that answers: one lost message must not bench it for seconds
            let base = (2.0 * rtt).clamp(200.0, 1000.0) as u64;
            (base << (self.timeouts_in_row - 1).min(6)).min(64_000)
        } else {
            1000u64 << self.timeouts_in_row.min(6)
        };
        self.benched_until = now + backoff;
    }

    /// Records a failed verification; returns true when the peer should be dropped: at least
    /// five failures, and at least one in three of its replies. A peer whose every reply is bad
    /// goes after five; an honest peer behind a link that corrupts a few percent of messages
    /// would need a run of bad luck of odds below one in a million to go.
    pub fn strike(&mut self) -> bool {
        self.strikes += 1;
        self.penalised = true;
        self.strikes >= 5 && (self.strikes as u64) * 2 > self.ok
    }

    /// Preference among idle peers: higher is better.
    pub fn score(&self) -> f64 {
        let bw = if self.bandwidth > 0.0 { self.bandwidth } else { 1e6 };
        let rtt = if self.rtt_ms > 0.0 { self.rtt_ms } else { 200.0 };
        // only a peer answering a small part of what it is asked (a capped peer) ranks lower
        // for it: a reply cut by its byte budget is normal
        let fill = if self.fill >= 0.25 { 1.0 } else { self.fill.max(0.01) };
        bw * fill / (1.0 + rtt / 100.0) / (1.0 + self.timeouts_in_row as f64 + self.strikes as f64)
    }

    /// Byte budget for a range request to this peer.
    pub fn range_bytes(&self, cfg: &SyncConfig, configured: u64) -> u64 {
        let bytes = match cfg.sizing {
            SizingPolicy::Fixed => configured,
            SizingPolicy::Harmony => 500 * 1024,
            SizingPolicy::Geth => {
                let target = self.timeout_ms(cfg) as f64 * 0.3 / 1000.0;
                ((1.0 + 1.01 * self.bandwidth * target) as u64).clamp(64 * 1024, 512 * 1024)
            }
            SizingPolicy::Adaptive => self.plan.request_bytes(),
        };
        let floor = if cfg.sizing == SizingPolicy::Fixed { 1 } else { caps::MIN_RESPONSE_BYTES };
        bytes.clamp(floor, caps::MAX_RESPONSE_BYTES)
    }

    /// Item count for code / trie-node requests.
    pub fn item_count(&self, cfg: &SyncConfig, configured: usize, cap: usize) -> usize {
        let n = match cfg.sizing {
            SizingPolicy::Fixed | SizingPolicy::Geth => configured,
            SizingPolicy::Harmony => configured.min(128),
            SizingPolicy::Adaptive => configured,
        };
        n.clamp(1, cap)
    }

    /// Items (codes, trie nodes) of a request under the adaptive policy: as many as fill the
    /// bytes it may claim at `per_item` bytes each, within the configured count and `cap`.
    pub fn adaptive_items(&self, per_item: u64, configured: usize, cap: usize) -> usize {
        let bytes = self.plan.claim_bytes();
        ((bytes / per_item.max(1)) as usize).clamp(1, configured.clamp(1, cap))
    }

    /// Deadline length for a request to this peer; under the adaptive policy `finish` is when
    /// the reply is expected (ms), queueing behind the peer's other replies included.
    pub fn deadline_ms(&self, cfg: &SyncConfig, now: u64, finish: f64) -> u64 {
        if cfg.sizing != SizingPolicy::Adaptive {
            return self.timeout_ms(cfg);
        }
        if !self.plan.known {
            // nothing measured yet: the configured timeout, but never so short that no first
            // reply could make it (a peer never measured would never be usable)
            return cfg.request_timeout_ms.max(UNMEASURED_MIN_TIMEOUT_MS);
        }
        let expect = (finish - now as f64).max(1.0);
        // three times as long as expected, and at least three long round trips more: a reply
        // that late was lost (a slow peer's replies are taken back before, see the syncer)
        let mut t = (3.0 * expect).max(expect + 3.0 * self.plan.rtt_high).max(500.0);
        if self.link.samples < 8 {
            // the model is young: its estimates may be far off yet
            t = t.max(2000.0);
        }
        // the configured timeout caps it, unless it leaves no time for the reply expected
        // (a timeout shorter than the link allows would make the sync impossible)
        let floor = (expect + 2.0 * self.plan.rtt_high).max(500.0);
        (t as u64).min((cfg.request_timeout_ms as f64).max(floor) as u64)
    }

    /// Deadline length for a request to this peer.
    pub fn timeout_ms(&self, cfg: &SyncConfig) -> u64 {
        match cfg.sizing {
            SizingPolicy::Fixed | SizingPolicy::Harmony => cfg.request_timeout_ms,
            SizingPolicy::Geth | SizingPolicy::Adaptive => {
                if self.rtt_ms == 0.0 {
                    cfg.request_timeout_ms
                } else {
                    let transfer =
                        if self.bandwidth > 0.0 { 2_100_000.0 / self.bandwidth * 1000.0 } else { 0.0 };
                    ((3.0 * self.rtt_ms + transfer) as u64)
                        .clamp(500.min(cfg.request_timeout_ms), cfg.request_timeout_ms)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO link with a bandwidth and uniformly jittered one-way latencies, driven with `depth`
    /// requests of `size` bytes in flight (after one small probe). Returns the link model.
    fn drive(bw: f64, lat: (u64, u64), size: u64, depth: usize, replies: usize, seed: u64) -> Link {
        drive_with(bw, lat, &|_| size, depth, replies, seed)
    }

    /// As `drive`, sizing each request from the model as the scheduler does.
    fn closed_loop(bw: f64, lat: (u64, u64), depth: usize, replies: usize, seed: u64) -> Link {
        let size = |l: &Link| {
            let plan = Plan {
                rtt: l.rtt_ms,
                base_rtt: l.rtt_ms + 2.0 * l.rtt_dev,
                rtt_high: l.rtt_ms + 2.0 * l.rtt_dev,
                bw: if l.bw > 0.0 { l.bw } else { prior::BW },
                known: l.known(),
                bw_known: l.bw > 0.0,
                depth: depth as u32,
                share: u64::MAX,
                horizon: f64::MAX,
                ..Plan::default()
            };
            plan.request_bytes()
        };
        drive_with(bw, lat, &size, depth, replies, seed)
    }

    fn drive_with(
        bw: f64,
        lat: (u64, u64),
        size: &dyn Fn(&Link) -> u64,
        depth: usize,
        replies: usize,
        seed: u64,
    ) -> Link {
        let mut rng = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut lat_ms = move || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            lat.0 as f64 + ((rng >> 33) % (lat.1 - lat.0 + 1)) as f64
        };
        let mut link = Link::default();
        let mut now = 0.0f64;
        let mut peer_free = 0.0f64; // when the peer's uplink to us is free (transmission end)
                                    // (arrival, sent, bytes)
        let mut flight: Vec<(f64, f64, u64)> = Vec::new();
        let mut send = |now: f64, bytes: u64, flight: &mut Vec<(f64, f64, u64)>, peer_free: &mut f64| {
            let at_peer = now + lat_ms();
            let start = at_peer.max(*peer_free);
            *peer_free = start + bytes as f64 * 1000.0 / bw;
            flight.push((*peer_free + lat_ms(), now, bytes));
        };
        send(now, 16 * 1024, &mut flight, &mut peer_free);
        let mut got = 0;
        while got < replies {
            flight.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (at, sent, bytes) = flight.remove(0);
            now = at.ceil();
            link.pending.push((bytes, (now - sent.floor()) as u64));
            link.absorb(now as u64);
            got += 1;
            while flight.len() < depth {
                send(now, size(&link), &mut flight, &mut peer_free);
            }
        }
        link
    }

    #[test]
    fn link_model_converges_with_fixed_requests() {
        for (bw, lat, size, depth) in [
            (1048576.0, (20, 50), 100_000, 2),
            (1048576.0, (20, 50), 50_000, 3),
            (10485760.0, (20, 50), 300_000, 3),
            (102400.0, (1000, 1000), 100_000, 2),
            (327680.0, (200, 200), 100_000, 2),
            (4194304.0, (400, 600), 2_000_000, 2),
        ] {
            for seed in 1..4 {
                let l = drive(bw, lat, size, depth, 40, seed);
                let ratio = l.bw / bw;
                assert!((0.75..1.15).contains(&ratio), "bw {bw} lat {lat:?} seed {seed}: {ratio:.2}x");
                let rtt = (lat.0 + lat.1) as f64;
                assert!(l.rtt_ms > 0.5 * rtt && l.rtt_ms < 1.3 * rtt, "rtt {} of {rtt}", l.rtt_ms);
            }
        }
    }

    #[test]
    fn link_model_converges_when_it_sizes_the_requests() {
        for (bw, lat, depth) in [
            (1048576.0, (20, 50), 2),
            (1048576.0, (20, 50), 3),
            (10485760.0, (20, 50), 2),
            (10485760.0, (20, 50), 4),
            (102400.0, (1000, 1000), 2),
            (327680.0, (200, 200), 2),
            (4194304.0, (400, 600), 2),
        ] {
            for seed in 1..4 {
                let l = closed_loop(bw, lat, depth, 40, seed);
                let ratio = l.bw / bw;
                assert!(
                    (0.7..1.15).contains(&ratio),
                    "bw {bw} lat {lat:?} depth {depth} seed {seed}: {ratio:.2}x"
                );
            }
        }
    }

    #[test]
    fn a_big_first_reply_is_split_into_round_trip_and_transfer() {
        // 1 MiB/s, 60 ms round trip: a 200 KB first reply, then three pipelined ones
        let mut l = Link::default();
        let bw = 1048576.0;
        let t = |b: f64| (b * 1000.0 / bw) as u64;
        l.pending.push((200_000, 60 + t(200_000.0)));
        l.absorb(60 + t(200_000.0));
        assert!(l.rtt_ms > 200.0, "first guess includes the transfer: {}", l.rtt_ms);
        let mut at = 60 + t(200_000.0);
        for _ in 0..3 {
            // sent long before, queued behind the previous reply: back to back
            at += t(100_000.0);
            l.pending.push((100_000, at - 10));
            l.absorb(at);
        }
        assert!((0.8..1.25).contains(&(l.bw / bw)), "bw {}", l.bw);
        assert!(l.rtt_ms < 100.0, "revised round trip {}", l.rtt_ms);
    }

    fn plan(rtt: f64, bw: f64, depth: u32) -> Plan {
        Plan {
            rtt,
            rtt_high: rtt,
            base_rtt: rtt,
            bw,
            known: true,
            bw_known: true,
            depth,
            share: u64::MAX,
            horizon: 5000.0,
            ..Plan::default()
        }
    }

    #[test]
    fn requests_follow_the_bandwidth_delay_product() {
        let fast = plan(50.0, 10.0 * 1048576.0, 3);
        let slow = plan(50.0, 1048576.0, 3);
        let far = plan(500.0, 1048576.0, 3);
        assert!(fast.request_bytes() > 5 * slow.request_bytes());
        assert!(far.request_bytes() > 5 * slow.request_bytes());
        // fewer requests allowed in flight: each bigger, so the link stays busy
        assert!(plan(50.0, 1048576.0, 2).request_bytes() > slow.request_bytes());
        // chains take bigger steps; all within the protocol's caps
        assert!(slow.serial_bytes() >= slow.request_bytes());
        for p in [fast, slow, far, plan(5000.0, 1e9, 1), plan(1.0, 1.0, 8)] {
            for b in [p.request_bytes(), p.serial_bytes(), p.claim_bytes()] {
                assert!((caps::MIN_RESPONSE_BYTES..=caps::MAX_RESPONSE_BYTES).contains(&b), "{b}");
            }
        }
        // little work left: claims shrink to a fair share
        let mut tail = slow;
        tail.share = 20_000;
        assert_eq!(tail.claim_bytes(), caps::MIN_RESPONSE_BYTES.max(20_000));
        // unmeasured: a small probe
        assert_eq!(Plan::default().request_bytes(), Plan::PROBE_BYTES);
    }

    #[test]
    fn room_keeps_the_link_busy_without_queueing_deep() {
        let now = 1000;
        let mut p = plan(100.0, 1048576.0, 4);
        p.free_at = now as f64;
        let mut sent = 0;
        while p.room(now) {
            p.add(now, p.request_bytes());
            sent += 1;
            assert!(sent <= 4, "never more than its depth");
        }
        // replies asked for cover a round trip after the first arrives, not much more
        let covered = p.free_at - p.next_at;
        assert!((3..=4).contains(&sent), "{sent} requests");
        assert!(covered >= p.rtt - 1.0 && covered < 2.0 * p.rtt, "{covered} ms");
        // an unmeasured peer gets one probe at a time
        let mut unknown = Plan::default();
        assert!(unknown.room(now));
        unknown.add(now, Plan::PROBE_BYTES);
        assert!(!unknown.room(now));
    }

    #[test]
    fn adaptive_timeouts_follow_the_round_trip_and_do_not_escalate_per_request() {
        let cfg = SyncConfig::default();
        let mut p = PeerState::default();
        p.link.adaptive = true;
        p.link.samples = 20;
        p.plan = plan(80.0, 1048576.0, 2);
        let d = p.deadline_ms(&cfg, 0, 150.0);
        assert!((450..=1000).contains(&d), "{d}");
        // far peer: longer; never past the configured bound
        p.plan = plan(3000.0, 1048576.0, 2);
        assert_eq!(p.deadline_ms(&cfg, 0, 4000.0), cfg.request_timeout_ms);
        // other policies keep their own timeouts
        let geth = SyncConfig { sizing: SizingPolicy::Geth, ..SyncConfig::default() };
        assert_eq!(p.deadline_ms(&geth, 0, 150.0), p.timeout_ms(&geth));
        // a peer that answers: three requests expiring together bench it once, briefly
        p.ok = 5;
        p.link.rtt_ms = 80.0;
        for _ in 0..3 {
            p.timed_out(10_000);
        }
        assert_eq!(p.timeouts_in_row, 1);
        assert!(p.benched_until <= 10_000 + 1000, "{}", p.benched_until);
    }
}
