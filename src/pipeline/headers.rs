//! The header stage: a linked header chain from the pivot up to the trusted head (announced
//! by the consensus layer), extended as the chain grows and rewound on reorgs.

use crate::codec::Header;
use crate::primitives::B256;
use std::collections::BTreeMap;

/// Most headers asked for at once.
pub const MAX_HEADERS: u64 = 1024;

/// What a header reply did to the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOutcome {
    /// Headers added on top.
    Extended,
    /// The chain switched to a fork: everything above `fork` was replaced.
    Reorg {
        /// Highest block shared by both chains.
        fork: u64,
    },
    /// The reply did not reach the trusted head or did not link yet (not the sender's fault).
    Incomplete,
    /// The reply is provably wrong: its headers do not link to each other.
    Fault(String),
}

/// A linked header chain.
#[derive(Debug, Default, Clone)]
pub struct HeaderChain {
    headers: BTreeMap<u64, Header>,
    target: Option<(u64, B256)>,
    back: u64,
}

impl HeaderChain {
    /// The trusted head: number and hash.
    pub fn target(&self) -> Option<(u64, B256)> {
        self.target
    }

    /// A new trusted head.
    pub fn on_head(&mut self, number: u64, hash: B256) {
        self.target = Some((number, hash));
    }

    /// Header at `n`.
    pub fn get(&self, n: u64) -> Option<&Header> {
        self.headers.get(&n)
    }

    /// Highest header held.
    pub fn top(&self) -> Option<&Header> {
        self.headers.values().next_back()
    }

    /// Whether the chain reaches the trusted head.
    pub fn synced(&self) -> bool {
        match (self.top(), self.target) {
            (Some(t), Some((n, h))) => t.number == n && t.hash() == h,
            _ => false,
        }
    }

    /// The next request: (start, count, expected hash of the last header), or `None`.
    /// `floor` is the lowest block needed (the pivot) when the chain is empty.
    pub fn want(&self, floor: u64) -> Option<(u64, u64, B256)> {
        let (t, th) = self.target?;
        if self.synced() {
            return None;
        }
        let lowest = self.headers.keys().next().copied();
        let mut start = match self.top() {
            None => floor.min(t),
            Some(top) if top.number >= t && self.back == 0 => t.saturating_sub(1).max(lowest.unwrap_or(0)),
            Some(top) => (top.number + 1).min(t).saturating_sub(self.back).max(lowest.unwrap_or(0)),
        };
        if t - start + 1 > MAX_HEADERS {
            start = t + 1 - MAX_HEADERS;
        }
        Some((start, t - start + 1, th))
    }

    /// Applies a reply to the request `(start, _, last_hash)`.
    pub fn on_reply(&mut self, hs: Vec<Header>, start: u64, last_hash: B256) -> HeaderOutcome {
        let linked = hs.windows(2).all(|w| w[1].parent_hash == w[0].hash() && w[1].number == w[0].number + 1);
        if !linked || hs.first().is_some_and(|h| h.number != start) {
            return HeaderOutcome::Fault("header chain does not link".into());
        }
        let (Some(first), Some(last)) = (hs.first(), hs.last()) else { return HeaderOutcome::Incomplete };
        if last.hash() != last_hash {
            return HeaderOutcome::Incomplete;
        }
        let lowest = self.headers.keys().next().copied();
        let links_below = match self.headers.get(&first.number.wrapping_sub(1)) {
            Some(parent) => parent.hash() == first.parent_hash,
            None => self.headers.is_empty() || lowest.is_some_and(|l| first.number <= l),
        };
        if !links_below {
            self.back = (self.back * 2).max(8);
            return HeaderOutcome::Incomplete;
        }
        self.back = 0;
        // the highest block both chains share
        let mut fork = None;
        for h in &hs {
            if let Some(ours) = self.headers.get(&h.number) {
                if ours.hash() != h.hash() {
                    fork = Some(h.number - 1);
                    break;
                }
            }
        }
        let replaced_all =
            lowest.is_some_and(|l| first.number <= l) && self.headers.get(&first.number) != Some(first);
        if let Some(f) = fork {
            self.headers.retain(|n, _| *n <= f);
        }
        if replaced_all {
            self.headers.clear();
        }
        for h in hs {
            self.headers.insert(h.number, h);
        }
        match (fork, replaced_all) {
            (_, true) => HeaderOutcome::Reorg { fork: first_number_minus_one(&self.headers) },
            (Some(f), _) => HeaderOutcome::Reorg { fork: f },
            _ => HeaderOutcome::Extended,
        }
    }
}

fn first_number_minus_one(h: &BTreeMap<u64, Header>) -> u64 {
    h.keys().next().map_or(0, |n| n.saturating_sub(1))
}
