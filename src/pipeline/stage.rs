//! The stage abstraction of the staged-sync pipeline (after reth's `Stage`): each stage has an
//! id, a checkpoint persisted in the store, and an unwind.
//!
//! Execution is not a method here: it is driven by the network through each stage's own
//! inputs (header replies for [`StageId::Headers`], body replies for [`StageId::Bodies`], the
//! downloader's actions and replies for [`StageId::State`], inserted blocks for
//! [`StageId::Execution`]). The [`Stage`] trait is what the pipeline uses to record how far
//! each stage got ([`save_checkpoint`], so a restarted node can read it) and to unwind the
//! stages in reverse pipeline order after a reorg.

use crate::primitives::B256;
use crate::store::{SyncStore, WriteBatch};
use serde::{Deserialize, Serialize};

/// A stage of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StageId {
    /// The linked header chain up to the trusted head.
    Headers,
    /// The state at the pivot (the snap/1 downloader, then the completion walk).
    State,
    /// Block bodies above the executed head.
    Bodies,
    /// Block insertion from the pivot up.
    Execution,
    /// At the trusted head.
    Finish,
}

impl StageId {
    /// Every stage, in pipeline order (unwinds run in reverse).
    pub const ALL: [StageId; 5] =
        [StageId::Headers, StageId::State, StageId::Bodies, StageId::Execution, StageId::Finish];

    /// Its name: the phase name the node reports, where there is one.
    pub fn name(self) -> &'static str {
        match self {
            StageId::Headers => "headers",
            StageId::State => "state",
            StageId::Bodies => "bodies",
            StageId::Execution => "execution",
            StageId::Finish => "finish",
        }
    }

    /// Key of its checkpoint in the store's meta map.
    pub fn key(self) -> String {
        format!("stage:{}", self.name())
    }
}

/// How far a stage got: the highest block it finished, and that block's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Block number.
    pub block: u64,
    /// Block hash.
    pub hash: B256,
}

/// What unwinding a stage did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unwind {
    /// The stage's work up to this block stands.
    To(u64),
    /// The stage's work is void (it was based on a block above the unwind target): it starts over.
    Reset,
}

/// A stage of the pipeline, as the pipeline sees it: its progress and its unwind.
pub trait Stage {
    /// Which stage.
    fn id(&self) -> StageId;
    /// How far it got, if anywhere.
    fn checkpoint(&self) -> Option<Checkpoint>;
    /// Drops its work above block `to` (after a reorg whose fork block is `to`).
    fn unwind(&mut self, to: u64) -> Unwind;
}

/// The checkpoint of `id` persisted in `store`, if any.
pub fn load_checkpoint(store: &dyn SyncStore, id: StageId) -> Option<Checkpoint> {
    store.meta(&id.key()).and_then(|b| serde_json::from_slice(b).ok())
}

/// Persists the checkpoint of `id` (`None` clears it).
pub fn save_checkpoint(store: &mut dyn SyncStore, id: StageId, cp: Option<Checkpoint>) {
    let bytes = cp.map(|c| serde_json::to_vec(&c).unwrap_or_default()).unwrap_or_default();
    let mut batch = WriteBatch::default();
    batch.meta.push((id.key(), bytes));
    store.commit(batch);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Header;
    use crate::pipeline::{ExecProgress, HeaderChain, HeaderOutcome};
    use crate::store::MemStore;

    #[test]
    fn checkpoints_round_trip_through_the_store() {
        let mut store = MemStore::default();
        for id in StageId::ALL {
            assert_eq!(load_checkpoint(&store, id), None);
        }
        let cp = Checkpoint { block: 42, hash: B256::repeat_byte(7) };
        save_checkpoint(&mut store, StageId::Bodies, Some(cp));
        assert_eq!(load_checkpoint(&store, StageId::Bodies), Some(cp));
        assert_eq!(load_checkpoint(&store, StageId::Headers), None);
        assert_eq!(store.meta("stage:bodies").map(<[u8]>::is_empty), Some(false));
        save_checkpoint(&mut store, StageId::Bodies, None);
        assert_eq!(load_checkpoint(&store, StageId::Bodies), None);
        assert_eq!(StageId::ALL.map(StageId::name), ["headers", "state", "bodies", "execution", "finish"]);
    }

    #[test]
    fn header_chain_unwinds_through_the_trait() {
        let mut hs: Vec<Header> = Vec::new();
        for i in 0..=20u64 {
            let parent_hash = hs.last().map_or(B256::ZERO, |p| p.hash());
            hs.push(Header { number: i, parent_hash, ..Header::default() });
        }
        let mut c = HeaderChain::default();
        assert_eq!(Stage::checkpoint(&c), None);
        c.on_head(20, hs[20].hash());
        assert_eq!(c.on_reply(hs[5..=20].to_vec(), 5, hs[20].hash()), HeaderOutcome::Extended);
        assert_eq!(c.id(), StageId::Headers);
        assert_eq!(c.checkpoint(), Some(Checkpoint { block: 20, hash: hs[20].hash() }));
        let stage: &mut dyn Stage = &mut c;
        assert_eq!(stage.unwind(12), Unwind::To(12));
        assert_eq!(stage.checkpoint(), Some(Checkpoint { block: 12, hash: hs[12].hash() }));
        assert!(c.get(13).is_none() && c.get(12).is_some());
        // the target stays: the chain asks for the headers above the fork again
        assert_eq!(c.target(), Some((20, hs[20].hash())));
        assert_eq!(c.want(5), Some((13, 8, hs[20].hash())));
        // below every header held: nothing is left
        assert_eq!(Stage::unwind(&mut c, 3), Unwind::Reset);
        assert_eq!(Stage::checkpoint(&c), None);
    }

    #[test]
    fn exec_progress_unwinds_through_the_trait() {
        let h = |n: u64| (B256::repeat_byte(n as u8), B256::repeat_byte(100 + n as u8));
        let mut e = ExecProgress { pivot: 10, blocks: (10..=15).map(|n| (n, h(n))).collect() };
        assert_eq!(e.id(), StageId::Execution);
        assert_eq!(e.checkpoint(), Some(Checkpoint { block: 15, hash: h(15).0 }));
        assert_eq!(Stage::unwind(&mut e, 12), Unwind::To(12));
        assert_eq!(e.head().map(|x| x.0), Some(12));
        assert_eq!(e.checkpoint(), Some(Checkpoint { block: 12, hash: h(12).0 }));
        assert_eq!(Stage::unwind(&mut e, 10), Unwind::To(10));
        assert_eq!(e.head().map(|x| x.0), Some(10));
        // the pivot itself replaced: the synced state is void
        assert_eq!(Stage::unwind(&mut e, 9), Unwind::Reset);
        assert_eq!(e.checkpoint(), None);
    }
}
