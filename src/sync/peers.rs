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
    fn index(self) -> usize {
        self as usize
    }
}

/// Per-peer state.
#[derive(Debug, Clone)]
pub struct PeerState {
    /// Requests in flight per kind.
    pub in_flight: [u32; 4],
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
}

impl Default for PeerState {
    fn default() -> Self {
        Self {
            in_flight: [0; 4],
            rtt_ms: 0.0,
            bandwidth: 0.0,
            timeouts_in_row: 0,
            benched_until: 0,
            strikes: 0,
            ok: 0,
            penalised: false,
            messages: 0,
            garbage: 0,
        }
    }
}

impl PeerState {
    /// Whether a request of `kind` may be sent now.
    pub fn idle(&self, kind: Kind, now: u64) -> bool {
        self.in_flight[kind.index()] == 0 && self.benched_until <= now
    }

    /// Marks a request sent.
    pub fn sent(&mut self, kind: Kind) {
        self.in_flight[kind.index()] += 1;
    }

    /// Marks a request finished (any outcome).
    pub fn finished(&mut self, kind: Kind) {
        let slot = &mut self.in_flight[kind.index()];
        *slot = slot.saturating_sub(1);
    }

    /// Records a delivered reply of `bytes` after `elapsed_ms`.
    pub fn measured(&mut self, bytes: usize, elapsed_ms: u64) {
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

    /// Records a timeout: benches the peer for a growing while.
    pub fn timed_out(&mut self, now: u64) {
        self.timeouts_in_row += 1;
        self.penalised = true;
        let backoff = 1000u64 << self.timeouts_in_row.min(6);
        self.benched_until = now + backoff;
    }

    /// Records a failed verification; returns true when the peer should be dropped:
    /// repeated failures that are not rare next to its good replies.
    pub fn strike(&mut self) -> bool {
        self.strikes += 1;
        self.penalised = true;
        self.strikes >= 3 && (self.strikes as u64) * 4 > self.ok
    }

    /// Preference among idle peers: higher is better.
    pub fn score(&self) -> f64 {
        let bw = if self.bandwidth > 0.0 { self.bandwidth } else { 1e6 };
        let rtt = if self.rtt_ms > 0.0 { self.rtt_ms } else { 200.0 };
        bw / (1.0 + rtt / 100.0) / (1.0 + self.timeouts_in_row as f64 + self.strikes as f64)
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
            SizingPolicy::Adaptive => {
                if self.bandwidth == 0.0 || self.rtt_ms == 0.0 {
                    configured
                } else {
                    // aim each reply at about two bandwidth-delay products
                    (self.bandwidth * (self.rtt_ms.max(20.0) / 1000.0) * 2.0) as u64
                }
            }
        };
        let floor = if cfg.sizing == SizingPolicy::Fixed { 1 } else { caps::MIN_RESPONSE_BYTES };
        bytes.clamp(floor, caps::MAX_RESPONSE_BYTES)
    }

    /// Item count for code / trie-node requests.
    pub fn item_count(&self, cfg: &SyncConfig, configured: usize, cap: usize) -> usize {
        let n = match cfg.sizing {
            SizingPolicy::Fixed | SizingPolicy::Geth => configured,
            SizingPolicy::Harmony => configured.min(128),
            SizingPolicy::Adaptive => {
                if self.bandwidth == 0.0 || self.rtt_ms == 0.0 {
                    configured
                } else {
                    let items = self.bandwidth * (self.rtt_ms.max(20.0) / 1000.0) * 2.0 / 600.0;
                    (items as usize).clamp(16, configured.max(16))
                }
            }
        };
        n.clamp(1, cap)
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
