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
    /// The storage root of `account` in the state `root`; `None` if the account is unknown.
    /// The default reads it from the account trie; a chain may remember answers (each is a
    /// pure function of content-addressed data, so nothing ever invalidates one).
    fn storage_root(&self, root: &B256, account: &B256) -> Option<B256> {
        storage_root_in(self.nodes(), root, account)
    }
}

/// The storage root of `account` in the state `root`, read from the account trie in `db`;
/// `None` if the account is unknown or its leaf does not decode.
pub fn storage_root_in(db: &MemNodes, root: &B256, account: &B256) -> Option<B256> {
    let leaf = syncsim_node::trie::walk::get(db, *root, account).ok()??;
    syncsim_node::account::Account::decode_full(&leaf).ok().map(|a| a.storage_root)
}
