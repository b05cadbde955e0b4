//! Progress over virtual time, recorded for `syncsim run --plot`. It only observes: nothing it
//! does feeds back into the simulation (no randomness, no trace events, no scheduling), so a
//! run's trace hash and report are the same with and without it.
//!
//! Two observers feed it. The [`World`](crate::net::World) counts the reply bytes it delivers
//! per kind (healing, headers, bodies) and notes pivot moves (a state root the node asks for
//! the first time), crashes and reorgs; [`ObservedStore`] wraps the node's store and reads the
//! distinct accounts, slots and codes held, and the blocks executed, after each commit.

use alloy_primitives::B256;
use std::cell::Cell;
use std::collections::BTreeSet;
use std::rc::Rc;
use syncsim_node::account::Account;
use syncsim_node::codec::Message;
use syncsim_node::pipeline::ExecProgress;
use syncsim_node::store::{MemStore, SlotValue, SyncStore, WriteBatch};
use syncsim_node::trie::db::NodeSource;

/// Most samples kept: past this, every other one is dropped and the interval doubles, so a
/// run of any length stays a few thousand points.
const MAX_SAMPLES: usize = 2048;
/// Virtual time between samples at the start of a run (ms).
const FIRST_INTERVAL_MS: u64 = 50;

/// A progress series: one line of the plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// Distinct flat accounts stored, of the start state's accounts.
    Accounts,
    /// Distinct storage slots stored, of the start state's slots.
    Storage,
    /// Distinct codes stored, of the start state's distinct codes.
    Bytecodes,
    /// `TrieNodes` reply bytes delivered (healing), cumulative.
    Healing,
    /// `BlockHeaders` reply bytes delivered, cumulative.
    Headers,
    /// `BlockBodies` reply bytes delivered, cumulative.
    Bodies,
    /// Blocks executed past the pivot.
    Execution,
}

impl Series {
    /// Every series, in plotting order.
    pub const ALL: [Series; 7] = [
        Series::Accounts,
        Series::Storage,
        Series::Bytecodes,
        Series::Healing,
        Series::Headers,
        Series::Bodies,
        Series::Execution,
    ];

    /// The name shown in the legend.
    pub fn name(self) -> &'static str {
        match self {
            Series::Accounts => "accounts",
            Series::Storage => "storage",
            Series::Bytecodes => "bytecodes",
            Series::Healing => "healing",
            Series::Headers => "headers",
            Series::Bodies => "bodies",
            Series::Execution => "execution",
        }
    }

    /// Whether 100% is the start state's total (else: the run's final value).
    pub fn of_state(self) -> bool {
        matches!(self, Series::Accounts | Series::Storage | Series::Bytecodes)
    }
}

/// Something worth a vertical marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// The node asked for a state root it had not asked for before (not the first).
    PivotMove,
    /// The node crashed.
    Crash,
    /// The chain reorganised.
    Reorg,
}

impl Marker {
    /// Its label.
    pub fn name(self) -> &'static str {
        match self {
            Marker::PivotMove => "pivot",
            Marker::Crash => "crash",
            Marker::Reorg => "reorg",
        }
    }
}

/// One point in time: each series' raw value, in [`Series::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Virtual time (ms).
    pub t_ms: u64,
    /// Raw values (counts or bytes).
    pub values: [u64; 7],
}

/// What the store holds, as [`ObservedStore`] last saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Distinct flat accounts.
    pub accounts: u64,
    /// Distinct storage slots.
    pub slots: u64,
    /// Distinct codes.
    pub codes: u64,
    /// Blocks executed past the pivot.
    pub blocks: u64,
}

/// A finished recording: what the plot draws.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Samples in time order; the last is at the end of the run.
    pub samples: Vec<Sample>,
    /// Markers (virtual ms, what).
    pub markers: Vec<(u64, Marker)>,
    /// The start state's accounts, slots and distinct codes (100% of the state series).
    pub state_totals: [u64; 3],
}

impl Timeline {
    /// The value 100% stands for: the start state's total for the state series (or more, if
    /// the chain's growth made the node hold more), else the run's final value.
    pub fn full_scale(&self, s: usize) -> u64 {
        let max = self.samples.iter().map(|x| x.values[s]).max().unwrap_or(0);
        if Series::ALL[s].of_state() {
            max.max(self.state_totals[s])
        } else {
            max
        }
    }

    /// Whether a series moved at all (a phase that never ran did not).
    pub fn ran(&self, s: usize) -> bool {
        self.samples.iter().any(|x| x.values[s] > 0)
    }
}

/// Records samples while a run goes on.
#[derive(Debug)]
pub struct Recorder {
    store: Rc<Cell<StoreCounts>>,
    healing: u64,
    headers: u64,
    bodies: u64,
    roots: BTreeSet<B256>,
    interval_ms: u64,
    next_at_ms: u64,
    out: Timeline,
}

impl Recorder {
    /// A recorder for a start state with these accounts, slots and distinct codes.
    pub fn new(state_totals: [u64; 3]) -> Self {
        Self {
            store: Rc::default(),
            healing: 0,
            headers: 0,
            bodies: 0,
            roots: BTreeSet::new(),
            interval_ms: FIRST_INTERVAL_MS,
            next_at_ms: 0,
            out: Timeline { state_totals, ..Timeline::default() },
        }
    }

    /// The cell an [`ObservedStore`] writes its counts into.
    pub fn store_counts(&self) -> Rc<Cell<StoreCounts>> {
        Rc::clone(&self.store)
    }

    /// A reply of `len` bytes with this message code reached the node.
    pub fn delivered(&mut self, code: u8, len: usize) {
        let len = len as u64;
        match Message::name_of_code(code) {
            Some("TrieNodes") => self.healing += len,
            Some("BlockHeaders") => self.headers += len,
            Some("BlockBodies") => self.bodies += len,
            _ => {}
        }
    }

    /// The node sent this request: a state root asked for the first time (after the first)
    /// means the pivot moved.
    pub fn requested(&mut self, t_ms: u64, req: &Message) {
        let root = match req {
            Message::GetAccountRange(m) => m.root,
            Message::GetStorageRanges(m) => m.root,
            Message::GetTrieNodes(m) => m.root,
            _ => return,
        };
        if self.roots.insert(root) && self.roots.len() > 1 {
            self.mark(t_ms, Marker::PivotMove);
        }
    }

    /// Adds a marker (and a sample just before it, so the lines show its moment).
    pub fn mark(&mut self, t_ms: u64, m: Marker) {
        self.sample_at(t_ms);
        self.out.markers.push((t_ms, m));
    }

    /// Takes a sample if one is due at `t_ms`.
    pub fn tick(&mut self, t_ms: u64) {
        if t_ms >= self.next_at_ms {
            self.sample_at(t_ms);
        }
    }

    /// Takes a sample at `t_ms` now (e.g. at a phase change).
    pub fn sample_at(&mut self, t_ms: u64) {
        let c = self.store.get();
        let values = [c.accounts, c.slots, c.codes, self.healing, self.headers, self.bodies, c.blocks];
        match self.out.samples.last_mut() {
            Some(last) if last.t_ms == t_ms => last.values = values,
            _ => self.out.samples.push(Sample { t_ms, values }),
        }
        self.next_at_ms = t_ms + self.interval_ms;
        if self.out.samples.len() >= MAX_SAMPLES {
            self.thin();
        }
    }

    /// Keeps every other sample (and the last) and doubles the interval.
    fn thin(&mut self) {
        let last = self.out.samples.last().copied();
        let mut i = 0;
        self.out.samples.retain(|_| {
            i += 1;
            i % 2 == 1
        });
        if let Some(l) = last {
            if self.out.samples.last() != Some(&l) {
                self.out.samples.push(l);
            }
        }
        self.interval_ms *= 2;
    }

    /// Ends the recording at `t_ms` with a last sample.
    pub fn finish(mut self, t_ms: u64) -> Timeline {
        self.sample_at(t_ms);
        self.out
    }
}

/// The node's store seen through a window: every call goes to the [`MemStore`] unchanged;
/// after each commit the distinct accounts, slots and codes held, and the blocks executed,
/// are written to a shared cell the [`Recorder`] samples.
pub struct ObservedStore<'a> {
    inner: &'a mut MemStore,
    counts: Rc<Cell<StoreCounts>>,
}

impl<'a> ObservedStore<'a> {
    /// Wraps `inner`, reporting into `counts`.
    pub fn new(inner: &'a mut MemStore, counts: Rc<Cell<StoreCounts>>) -> Self {
        Self { inner, counts }
    }

    fn observe(&self, executed: bool) {
        let mut c = self.counts.get();
        c.accounts = self.inner.account_count() as u64;
        c.slots = self.inner.slot_count();
        c.codes = self.inner.code_count() as u64;
        if executed {
            c.blocks = ExecProgress::load(&*self.inner)
                .and_then(|e| e.head().map(|(head, _, _)| head.saturating_sub(e.pivot)))
                .unwrap_or(0);
        }
        self.counts.set(c);
    }
}

impl NodeSource for ObservedStore<'_> {
    fn node(&self, hash: &B256) -> Option<&[u8]> {
        self.inner.node(hash)
    }
}

impl SyncStore for ObservedStore<'_> {
    fn has_node(&self, hash: &B256) -> bool {
        self.inner.has_node(hash)
    }
    fn code(&self, hash: &B256) -> Option<&[u8]> {
        self.inner.code(hash)
    }
    fn accounts_in(&self, from: &B256, to: &B256) -> Vec<(B256, Account)> {
        self.inner.accounts_in(from, to)
    }
    fn for_each_account_in(&self, from: &B256, to: &B256, f: &mut dyn FnMut(&B256, &Account)) {
        self.inner.for_each_account_in(from, to, f)
    }
    fn slots_of(&self, account: &B256) -> &[(B256, SlotValue)] {
        self.inner.slots_of(account)
    }
    fn progress(&self) -> Option<&[u8]> {
        self.inner.progress()
    }
    fn spare_progress(&mut self) -> Option<Vec<u8>> {
        self.inner.spare_progress()
    }
    fn spare_batch(&mut self) -> Option<WriteBatch> {
        self.inner.spare_batch()
    }
    fn meta(&self, key: &str) -> Option<&[u8]> {
        self.inner.meta(key)
    }
    fn commit(&mut self, batch: WriteBatch) {
        let executed = batch.meta.iter().any(|(k, _)| k == ExecProgress::KEY);
        self.inner.commit(batch);
        self.observe(executed);
    }
    fn put_node(&mut self, hash: B256, rlp: &[u8]) {
        self.inner.put_node(hash, rlp)
    }
    fn expect_slots(&mut self, account: &B256, slots: usize) {
        self.inner.expect_slots(account, slots)
    }
    fn prefetch_node(&self, hash: &B256) {
        self.inner.prefetch_node(hash)
    }
    fn nodes<'s>(&'s self, hashes: &[B256], out: &mut Vec<Option<&'s [u8]>>) {
        self.inner.nodes(hashes, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_stay_bounded_and_keep_the_end() {
        let mut r = Recorder::new([10, 0, 0]);
        let counts = r.store_counts();
        for t in 0..1_000_000u64 {
            counts.set(StoreCounts { accounts: t / 100_000, ..StoreCounts::default() });
            r.tick(t);
        }
        let tl = r.finish(1_000_000);
        assert!(tl.samples.len() <= MAX_SAMPLES, "{} samples", tl.samples.len());
        assert!(tl.samples.len() >= MAX_SAMPLES / 4);
        assert!(tl.samples.windows(2).all(|w| w[0].t_ms < w[1].t_ms));
        assert_eq!(tl.samples.last().map(|s| (s.t_ms, s.values[0])), Some((1_000_000, 9)));
        assert!(tl.ran(0) && !tl.ran(1));
        assert_eq!(tl.full_scale(0), 10);
    }
}
