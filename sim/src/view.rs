//! What a virtual peer sees of the chain: the seam between the chain model and peer serving.

use alloy_primitives::{Bytes, B256};
use syncsim_node::codec::{BlockBody, Header};
use syncsim_node::state::State;
use syncsim_node::trie::MemNodes;

/// Read access to the simulated chain: every state's trie nodes (shared by all roots and all
/// peers), codes, headers and bodies.
pub trait ChainView {
    /// All account- and storage-trie nodes of every retained state, content-addressed.
    fn nodes(&self) -> &MemNodes;
    /// Code by hash.
    fn code(&self, hash: &B256) -> Option<&Bytes>;
    /// Canonical header at `number`.
    fn header(&self, number: u64) -> Option<&Header>;
    /// Body of the block with this hash (canonical or not).
    fn body(&self, hash: &B256) -> Option<&BlockBody>;
    /// The flat (sorted, hashed-key) state whose root is `root`, when the chain holds it flat
    /// (go-ethereum's snapshot): peers then read ranges from it in key order instead of walking
    /// trie nodes by hash, and take only the edge proofs from the trie. `None` (the default)
    /// for every other root: those are served from the trie.
    fn flat_state(&self, _root: &B256) -> Option<&State> {
        None
    }
}
