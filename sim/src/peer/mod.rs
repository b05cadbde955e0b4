//! Virtual peers: answer snap/1 and block requests from a [`ChainView`], honestly (go-ethereum
//! semantics, design notes section 1) or with the content misbehaviours of the contract's peer
//! catalogue.
//!
//! A peer may have several behaviours. Here only the content behaviours act:
//! - `unresponsive`: never answers (`serve` returns `None`).
//! - `empty`: every snap reply is empty (the peer lacks the state); headers and bodies are served.
//! - `starving`: every snap reply is built with a 500-byte budget (the request's if smaller).
//! - `capped-code`: at most one code per `ByteCodes` reply.
//! - `corrupt-code`: every code replaced by garbage of about its length.
//! - `corrupt-proof`: one edge-proof node dropped from every range reply that has a proof (a
//!   lone node is garbled instead, since an empty list would read as "no proof").
//! - `missing-proof`: range replies carry no proof; a reply that would then still verify (a whole
//!   trie) loses its last item, so what arrives is a partial range without proof.
//! - `bloated-proof`: always a proof, plus needless valid nodes (proofs of the zero key and of every
//!   returned key), at most 128 nodes in all; the reply still verifies.
//! - `gapped-range`: one key strictly inside the range left out (replies with >= 3 keys), proof kept.
//! - `wrong-value`: one returned account balance, slot value or block body altered, proof kept.
//! - `bad-headers`: every header's parent hash altered, so parent links break.
//!
//! `slow`, `stale`, `liar`, `flapping` and `duplicate-blocks` are network-level (the simulator
//! applies them: bandwidth, the `head` and roots it passes in, connectivity, re-sends); such
//! peers serve honestly here. When several content behaviours combine they apply in this order:
//! gapped-range, wrong-value, bloated-proof, corrupt-proof, missing-proof.
//!
//! Determinism: the only randomness is the peer's ChaCha8 rng, seeded in [`PeerServer::new`].

mod behaviour;
mod serve;
#[cfg(test)]
mod tests;

use crate::scenario::Behaviour;
use crate::view::ChainView;
use alloy_primitives::B256;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use syncsim_node::codec::{
    AccountRange, BlockBodies, BlockHeaders, ByteCodes, GetAccountRange, GetBlockBodies, GetBlockHeaders,
    GetByteCodes, GetStorageRanges, GetTrieNodes, Message, StorageRanges, TrieNodes,
};

/// Largest byte budget honoured (geth `softResponseLimit`); also bounds header and body replies.
pub const SOFT_RESPONSE_LIMIT: u64 = 2 * 1024 * 1024;
/// The budget a `starving` peer uses for every snap reply.
pub const STARVING_BUDGET: u64 = 500;
/// Most codes looked up per `GetByteCodes`, and most trie-node lookups per `GetTrieNodes`.
pub const MAX_LOOKUPS: usize = 1024;
/// Most headers or bodies in one reply.
pub const MAX_SERVE_ITEMS: usize = 1024;
/// Most proof nodes a (bloated) proof grows to; clients reject more.
pub const MAX_PROOF_NODES: usize = 128;

/// Whether a behaviour's replies are wrong or missing in a way a client must detect and
/// penalise: `corrupt-code`, `corrupt-proof`, `missing-proof`, `gapped-range`, `wrong-value`,
/// `bad-headers`, `liar`. The others are honest or merely unhelpful (valid but empty, small, slow,
/// late, bloated or intermittent): `honest`, `empty`, `unresponsive`, `starving`, `capped-code`,
/// `slow`, `stale`, `flapping`, `bloated-proof`, `duplicate-blocks`.
pub fn is_hostile(b: Behaviour) -> bool {
    use Behaviour::*;
    match b {
        CorruptCode | CorruptProof | MissingProof | GappedRange | WrongValue | BadHeaders | Liar => true,
        Honest | Empty | Unresponsive | Slow | Starving | CappedCode | Stale | Flapping | BloatedProof
        | DuplicateBlocks => false,
    }
}

/// One virtual peer's request handler: its behaviours, rng and counters.
#[derive(Debug, Clone)]
pub struct PeerServer {
    behaviours: Vec<Behaviour>,
    rng: ChaCha8Rng,
    served: u64,
}

impl PeerServer {
    /// A peer with these behaviours (duplicates ignored; none = honest) and rng seed.
    pub fn new(behaviours: &[Behaviour], seed: u64) -> Self {
        let mut behaviours = behaviours.to_vec();
        behaviours.sort();
        behaviours.dedup();
        Self { behaviours, rng: ChaCha8Rng::seed_from_u64(seed), served: 0 }
    }

    /// The peer's behaviours, sorted, without duplicates.
    pub fn behaviours(&self) -> &[Behaviour] {
        &self.behaviours
    }

    /// Whether the peer has behaviour `b`.
    pub fn has(&self, b: Behaviour) -> bool {
        self.behaviours.contains(&b)
    }

    /// Replies sent so far.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Answers one decoded request. `has_root(r)` says whether this peer still holds state root
    /// `r`; `head` is the highest block number it serves. `None` for anything that is not a
    /// request, and for every request of an `unresponsive` peer. Replies echo the request id.
    pub fn serve(
        &mut self,
        chain: &dyn ChainView,
        has_root: &dyn Fn(&B256) -> bool,
        head: u64,
        request: &Message,
    ) -> Option<Message> {
        if self.has(Behaviour::Unresponsive) {
            return None;
        }
        let reply = match request {
            Message::GetAccountRange(req) => self.account_range(chain, has_root, req).into(),
            Message::GetStorageRanges(req) => self.storage_ranges(chain, has_root, req).into(),
            Message::GetByteCodes(req) => self.byte_codes(chain, req).into(),
            Message::GetTrieNodes(req) => self.trie_nodes(chain, has_root, req).into(),
            Message::GetBlockHeaders(req) => self.headers(chain, head, req).into(),
            Message::GetBlockBodies(req) => self.bodies(chain, req).into(),
            _ => return None,
        };
        self.served += 1;
        Some(reply)
    }

    /// The byte budget for a snap request of `requested` bytes.
    fn budget(&self, requested: u64) -> u64 {
        serve::budget(requested, self.has(Behaviour::Starving).then_some(STARVING_BUDGET))
    }

    /// Whether this peer answers snap requests for `root` with state.
    fn holds(&self, has_root: &dyn Fn(&B256) -> bool, root: &B256) -> bool {
        !self.has(Behaviour::Empty) && has_root(root)
    }

    fn account_range(
        &mut self,
        chain: &dyn ChainView,
        has_root: &dyn Fn(&B256) -> bool,
        req: &GetAccountRange,
    ) -> AccountRange {
        let empty = AccountRange { request_id: req.request_id, accounts: Vec::new(), proof: Vec::new() };
        if !self.holds(has_root, &req.root) {
            return empty;
        }
        let db = chain.nodes();
        let flat = chain.flat_state(&req.root);
        let Some(mut served) = serve::account_range(chain, flat, req, self.budget(req.response_bytes)) else {
            return empty;
        };
        if self.has(Behaviour::GappedRange) {
            behaviour::gap(&mut served.reply.accounts, &mut self.rng);
        }
        if self.has(Behaviour::WrongValue) {
            behaviour::wrong_account(&mut served, &mut self.rng);
        }
        let mut required = served.reply.proof.len();
        if self.has(Behaviour::BloatedProof) {
            required = behaviour::bloat_accounts(db, &mut served);
        }
        if self.has(Behaviour::CorruptProof) {
            behaviour::drop_proof_node(&mut served.reply.proof, required, &mut self.rng);
        }
        if self.has(Behaviour::MissingProof) {
            behaviour::strip_account_proof(&mut served);
        }
        served.reply
    }

    fn storage_ranges(
        &mut self,
        chain: &dyn ChainView,
        has_root: &dyn Fn(&B256) -> bool,
        req: &GetStorageRanges,
    ) -> StorageRanges {
        let empty = StorageRanges { request_id: req.request_id, slots: Vec::new(), proof: Vec::new() };
        if !self.holds(has_root, &req.root) {
            return empty;
        }
        let db = chain.nodes();
        let flat = chain.flat_state(&req.root);
        let Some(mut served) = serve::storage_ranges(chain, flat, req, self.budget(req.response_bytes))
        else {
            return empty;
        };
        if self.has(Behaviour::GappedRange) {
            behaviour::gap_storage(&mut served, &mut self.rng);
        }
        if self.has(Behaviour::WrongValue) {
            behaviour::wrong_slot(&mut served, &mut self.rng);
        }
        let mut required = served.reply.proof.len();
        if self.has(Behaviour::BloatedProof) {
            required = behaviour::bloat_storage(db, &mut served);
        }
        if self.has(Behaviour::CorruptProof) {
            behaviour::drop_proof_node(&mut served.reply.proof, required, &mut self.rng);
        }
        if self.has(Behaviour::MissingProof) {
            behaviour::strip_storage_proof(&mut served);
        }
        served.reply
    }

    fn byte_codes(&mut self, chain: &dyn ChainView, req: &GetByteCodes) -> ByteCodes {
        if self.has(Behaviour::Empty) {
            return ByteCodes { request_id: req.request_id, codes: Vec::new() };
        }
        let max_codes = if self.has(Behaviour::CappedCode) { 1 } else { usize::MAX };
        let mut reply = serve::byte_codes(chain, req, self.budget(req.response_bytes), max_codes);
        if self.has(Behaviour::CorruptCode) {
            behaviour::corrupt_codes(&mut reply.codes);
        }
        reply
    }

    fn trie_nodes(
        &mut self,
        chain: &dyn ChainView,
        has_root: &dyn Fn(&B256) -> bool,
        req: &GetTrieNodes,
    ) -> TrieNodes {
        if !self.holds(has_root, &req.root) {
            return TrieNodes { request_id: req.request_id, nodes: Vec::new() };
        }
        serve::trie_nodes(chain.nodes(), req, self.budget(req.response_bytes))
    }

    fn headers(&mut self, chain: &dyn ChainView, head: u64, req: &GetBlockHeaders) -> BlockHeaders {
        let mut reply = serve::headers(chain, head, req);
        if self.has(Behaviour::BadHeaders) {
            behaviour::break_links(&mut reply.headers);
        }
        reply
    }

    fn bodies(&mut self, chain: &dyn ChainView, req: &GetBlockBodies) -> BlockBodies {
        let mut reply = serve::bodies(chain, req);
        if self.has(Behaviour::WrongValue) {
            behaviour::wrong_body(&mut reply.bodies, &mut self.rng);
        }
        reply
    }
}
