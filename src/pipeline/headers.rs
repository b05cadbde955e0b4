//! The header stage: a linked header chain from the pivot up to the trusted head (announced
//! by the consensus layer), extended as the chain grows and rewound on reorgs.

use super::stage::{Checkpoint, Stage, StageId, Unwind};
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
    /// Headers fetched ahead, above the top (or from the floor when the chain is empty), when
    /// the gap to the trusted head was larger than one request may carry: linked to each other
    /// and to the top, but trusted only once a reply anchored on the trusted head links to them.
    ahead: Vec<Header>,
}

/// A header request: `count` headers from `start`; `anchor` is the hash the last must have
/// (the trusted head's) or `None` for a batch fetched ahead of the anchor (see
/// [`HeaderChain::want_sized`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderWant {
    /// First block number asked.
    pub start: u64,
    /// Headers asked.
    pub count: u64,
    /// Hash of the trusted head the reply must end at, when it must.
    pub anchor: Option<B256>,
}

impl HeaderChain {
    /// The trusted head: number and hash.
    pub fn target(&self) -> Option<(u64, B256)> {
        self.target
    }

    /// A new trusted head.
    pub fn on_head(&mut self, number: u64, hash: B256) {
        self.target = Some((number, hash));
        if self.ahead.last().is_some_and(|h| h.number >= number) {
            self.ahead.clear();
        }
    }

    /// The next request carrying at most `max` headers (at least one). While the gap to the
    /// trusted head is larger, headers are fetched ahead from the top upwards, unverified; the
    /// request that closes the gap ends at the trusted head and verifies them all. After a
    /// reply that did not link (a reorg below the top), requests are anchored on the head again
    /// whatever their size, as [`HeaderChain::want`].
    pub fn want_sized(&self, floor: u64, max: u64) -> Option<HeaderWant> {
        let (start, count, th) = self.want(floor)?;
        let anchored = HeaderWant { start, count, anchor: Some(th) };
        let (t, _) = self.target?;
        let base = match (self.ahead.last(), self.top()) {
            _ if self.back > 0 => return Some(anchored),
            (Some(a), _) => a.number + 1,
            (None, Some(top)) if top.number < t => top.number + 1,
            (None, Some(_)) => return Some(anchored),
            (None, None) => floor.min(t),
        };
        let left = (t + 1).saturating_sub(base);
        let max = max.clamp(1, MAX_HEADERS);
        if left == 0 {
            return Some(anchored);
        }
        Some(if left <= max {
            HeaderWant { start: base, count: left, anchor: Some(th) }
        } else {
            HeaderWant { start: base, count: max, anchor: None }
        })
    }

    /// Applies a reply to a batch fetched ahead from `start` (a request without anchor): kept
    /// when its headers link to each other and to what is below; a reply that starts elsewhere
    /// or does not link inside is a fault; one that does not link below (the chain changed
    /// under it) is dropped with what was fetched ahead.
    pub fn on_ahead(&mut self, hs: Vec<Header>, start: u64) -> HeaderOutcome {
        let linked = hs.windows(2).all(|w| w[1].parent_hash == w[0].hash() && w[1].number == w[0].number + 1);
        if !linked || hs.first().is_some_and(|h| h.number != start) {
            return HeaderOutcome::Fault("header chain does not link".into());
        }
        let Some(first) = hs.first() else { return HeaderOutcome::Incomplete };
        let below = self.ahead.last().or_else(|| self.top());
        if below.is_some_and(|b| b.number + 1 != first.number || b.hash() != first.parent_hash) {
            self.ahead.clear();
            return HeaderOutcome::Incomplete;
        }
        self.ahead.extend(hs);
        HeaderOutcome::Extended
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
    pub fn on_reply(&mut self, mut hs: Vec<Header>, start: u64, last_hash: B256) -> HeaderOutcome {
        let linked = hs.windows(2).all(|w| w[1].parent_hash == w[0].hash() && w[1].number == w[0].number + 1);
        if !linked || hs.first().is_some_and(|h| h.number != start) {
            return HeaderOutcome::Fault("header chain does not link".into());
        }
        if let (Some(a), Some(f)) = (self.ahead.last(), hs.first()) {
            if f.number != a.number + 1 {
                self.ahead.clear();
            } else if f.parent_hash != a.hash() {
                // what was fetched ahead is not on the trusted chain
                self.ahead.clear();
                self.back = (self.back * 2).max(8);
                return HeaderOutcome::Incomplete;
            } else if hs.last().is_some_and(|l| l.hash() == last_hash) {
                let mut all = std::mem::take(&mut self.ahead);
                all.append(&mut hs);
                hs = all;
            }
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

impl Stage for HeaderChain {
    fn id(&self) -> StageId {
        StageId::Headers
    }

    /// The top linked header.
    fn checkpoint(&self) -> Option<Checkpoint> {
        self.top().map(|h| Checkpoint { block: h.number, hash: h.hash() })
    }

    /// Drops the headers above `to` (and those fetched ahead), keeping the trusted head: the
    /// chain asks for the headers above `to` again. `Reset` when no header is left.
    fn unwind(&mut self, to: u64) -> Unwind {
        self.headers.retain(|n, _| *n <= to);
        self.ahead.clear();
        if self.headers.is_empty() {
            Unwind::Reset
        } else {
            Unwind::To(to)
        }
    }
}

fn first_number_minus_one(h: &BTreeMap<u64, Header>) -> u64 {
    h.keys().next().map_or(0, |n| n.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A linked chain of `n + 1` headers, 0..=n.
    fn chain(n: u64) -> Vec<Header> {
        let mut out: Vec<Header> = Vec::new();
        for i in 0..=n {
            let parent_hash = out.last().map_or(B256::ZERO, |p| p.hash());
            out.push(Header { number: i, parent_hash, ..Header::default() });
        }
        out
    }

    /// A gap larger than one request is fetched ahead in sized batches; the last request ends
    /// at the trusted head and verifies them all.
    #[test]
    fn sized_requests_fetch_ahead_then_anchor() {
        let hs = chain(100);
        let mut c = HeaderChain::default();
        c.on_head(100, hs[100].hash());
        assert_eq!(c.on_reply(hs[10..=100].to_vec(), 10, hs[100].hash()), HeaderOutcome::Extended);
        let mut c = HeaderChain::default();
        c.on_head(100, hs[100].hash());
        let w = c.want_sized(10, 40).expect("want");
        assert_eq!(w, HeaderWant { start: 10, count: 40, anchor: None });
        assert_eq!(c.on_ahead(hs[10..50].to_vec(), 10), HeaderOutcome::Extended);
        assert!(!c.synced());
        let w = c.want_sized(10, 40).expect("want");
        assert_eq!(w, HeaderWant { start: 50, count: 40, anchor: None });
        // a short reply is kept as far as it goes
        assert_eq!(c.on_ahead(hs[50..70].to_vec(), 50), HeaderOutcome::Extended);
        let w = c.want_sized(10, 40).expect("want");
        assert_eq!(w, HeaderWant { start: 70, count: 31, anchor: Some(hs[100].hash()) });
        assert_eq!(c.on_reply(hs[70..=100].to_vec(), 70, hs[100].hash()), HeaderOutcome::Extended);
        assert!(c.synced());
        assert_eq!(c.get(10).map(|h| h.hash()), Some(hs[10].hash()));
        assert_eq!(c.want_sized(10, 40), None);
    }

    /// Headers fetched ahead that the trusted head does not link to are thrown away, and the
    /// next request is anchored on the head whatever its size; a batch that does not link
    /// inside is a fault.
    #[test]
    fn unlinked_batches_are_dropped_or_faulted() {
        let hs = chain(100);
        let mut c = HeaderChain::default();
        c.on_head(100, hs[100].hash());
        let mut fake = hs[10..50].to_vec();
        fake[39].extra = alloy_primitives::Bytes::from_static(b"fork");
        assert_eq!(c.on_ahead(fake, 10), HeaderOutcome::Extended);
        let w = c.want_sized(10, 60).expect("want");
        assert_eq!(w.anchor, Some(hs[100].hash()));
        assert_eq!(c.on_reply(hs[50..=100].to_vec(), 50, hs[100].hash()), HeaderOutcome::Incomplete);
        let w = c.want_sized(10, 60).expect("want");
        assert_eq!((w.start, w.anchor), (10, Some(hs[100].hash())));
        let mut broken = hs[10..20].to_vec();
        broken[5].parent_hash = B256::repeat_byte(1);
        assert!(matches!(c.on_ahead(broken, 10), HeaderOutcome::Fault(_)));
    }
}
