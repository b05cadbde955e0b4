//! The simulated chain: a start state, blocks of random state changes on top of it, reorgs,
//! and every state's trie nodes in one shared, copy-on-write node store that peers serve from.
//!
//! * [`synth`]: synthetic start states from the scenario's `[state]` keys.
//! * [`Chain`]: blocks, state roots, the node store, codes and the live head state.
//! * [`oracle`]: the expected state and root at any block, by an independent path.
//!
//! Determinism: all randomness comes from `ChaCha8Rng` streams derived from the seed; hash
//! maps are only used for lookups, never iterated.
//!
//! Timestamps: block `n` has `timestamp = n * block_time_ms`, in (virtual) milliseconds since
//! genesis, so sub-second block times stay exact.

mod blocks;
mod initial;
pub mod oracle;
pub mod synth;

pub use blocks::{ChangeStats, CLEARABLE_SLOTS, NEW_CODE_SIZE};
pub use oracle::{oracle_root, state_at};
pub use synth::{boundary_keys, synthetic_state, zipf_counts, SyntheticSpec};

use crate::view::ChainView;
use alloy_primitives::{keccak256, Bytes, B256};
use blocks::{Drafter, KeySet, Pending, Prior, PriorStorage, Undo};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::{btree_map, hash_map, BTreeMap, HashMap};
use std::hash::BuildHasherDefault;
use syncsim_node::account::Account;
use syncsim_node::codec::{AccountChange, Block, BlockBody, Header, StorageChange};
use syncsim_node::primitives::{EMPTY_CODE, EMPTY_ROOT};
use syncsim_node::state::{AccountData, State};
use syncsim_node::trie::db::HashKeyed;
use syncsim_node::trie::db::KeyHasher;
use syncsim_node::trie::root::storage_value_rlp;
use syncsim_node::trie::update::{apply, Update};
use syncsim_node::trie::{walk, MemNodes};

/// The `[chain]` parameters the chain model needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainParams {
    /// Accounts touched per block.
    pub changes_per_block: u32,
    /// Block interval in milliseconds (block `n` has timestamp `n * block_time_ms`).
    pub block_time_ms: u64,
}

/// Where a block is kept.
#[derive(Debug, Clone, Copy)]
enum Loc {
    Canonical(usize),
    Orphan(usize),
}

/// The simulated chain. See the module docs.
#[derive(Debug)]
pub struct Chain {
    params: ChainParams,
    seed: u64,
    /// Reorgs so far; names the rng stream and the `extra` of blocks produced after them.
    generation: u64,
    rng: ChaCha8Rng,
    /// Trie nodes of every state root of every block ever produced (forks included).
    nodes: MemNodes,
    /// Every code ever seen, by hash.
    codes: HashKeyed<Bytes>,
    /// Distinct code hashes in order of first appearance: what new contracts reuse.
    code_pool: Vec<B256>,
    /// Canonical blocks, genesis first; `blocks[n].header.number == n`.
    blocks: Vec<Block>,
    /// `roots[n]` = state root of canonical block `n`.
    roots: Vec<B256>,
    /// `hashes[n]` = hash of canonical block `n`.
    hashes: Vec<B256>,
    /// `undo[n - 1]` rolls the live state from block `n` back to `n - 1`.
    undo: Vec<Undo>,
    /// Blocks replaced by reorgs.
    orphans: Vec<Block>,
    by_hash: HashKeyed<Loc>,
    /// The genesis flat state once it differs from `live`; `None` while no block has been
    /// committed (then `live` is the genesis state: one copy instead of two).
    initial: Option<State>,
    live: State,
    accounts: KeySet,
    contracts: KeySet,
    stats: ChangeStats,
    /// Set once the flat states are dropped or moved out: no root is served flat any more.
    flat_retired: bool,
    /// Storage roots peers looked up, by (state root, account): an answer never changes (the
    /// account trie under a root is immutable), so peers asking for the same contract's
    /// storage under the same root, as a sync does again and again, descend the trie once.
    storage_roots: RefCell<StorageRootMemo>,
}

/// The rng of blocks produced after `generation` reorgs: its own ChaCha stream, so the chain
/// never replays the draws of [`synthetic_state`] when both get the same seed.
fn chain_rng(seed: u64, generation: u64) -> ChaCha8Rng {
    const CHAIN_STREAM: u64 = 0x6368_6169_6e00_0000; // "chain"
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(CHAIN_STREAM.wrapping_add(generation));
    rng
}

impl Chain {
    /// A chain whose genesis (block 0) holds `initial`: builds every storage trie, then the
    /// account trie, into the node store. Later blocks come from [`Chain::produce_block`].
    pub fn new(initial: State, params: ChainParams, seed: u64) -> Chain {
        let (nodes, root, storage_roots) = initial::build_state(&initial);
        // peers look contracts' storage roots up at genesis first: known already
        let memo: StorageRootMemo = initial
            .accounts
            .keys()
            .zip(storage_roots)
            .filter(|(_, s)| *s != EMPTY_ROOT)
            .take(STORAGE_ROOT_MEMO / 2)
            .map(|(k, s)| ((root, *k), Some(s)))
            .collect();
        let mut accounts = KeySet::default();
        let mut contracts = KeySet::default();
        for (key, a) in &initial.accounts {
            accounts.insert(*key);
            if a.code_hash != EMPTY_CODE {
                contracts.insert(*key);
            }
        }
        let mut codes = HashKeyed::default();
        let mut code_pool = Vec::with_capacity(initial.codes.len());
        for (h, c) in &initial.codes {
            codes.insert(*h, c.clone());
            code_pool.push(*h);
        }
        let body = BlockBody::default();
        let header = Header {
            parent_hash: B256::ZERO,
            number: 0,
            state_root: root,
            body_hash: body.hash(),
            timestamp: 0,
            extra: Bytes::new(),
        };
        let hash = header.hash();
        let mut by_hash = HashKeyed::default();
        by_hash.insert(hash, Loc::Canonical(0));
        Chain {
            params,
            seed,
            generation: 0,
            rng: chain_rng(seed, 0),
            nodes,
            codes,
            code_pool,
            blocks: vec![Block { header, body }],
            roots: vec![root],
            hashes: vec![hash],
            undo: Vec::new(),
            orphans: Vec::new(),
            by_hash,
            live: initial,
            initial: None,
            accounts,
            contracts,
            stats: ChangeStats::default(),
            flat_retired: false,
            storage_roots: RefCell::new(memo),
        }
    }

    /// Draws `changes_per_block` random changes against the live state, applies them (flat
    /// state and tries) and appends the resulting block, which it returns.
    pub fn produce_block(&mut self) -> &Block {
        let drafts = Drafter {
            rng: &mut self.rng,
            live: &self.live,
            accounts: &self.accounts,
            contracts: &self.contracts,
            code_pool: &self.code_pool,
            codes: &self.codes,
            stats: &mut self.stats,
        }
        .draft(self.params.changes_per_block);
        self.commit(drafts)
    }

    /// Produces `count` blocks.
    pub fn produce_blocks(&mut self, count: u64) {
        for _ in 0..count {
            self.produce_block();
        }
    }

    /// The current storage root of a live account, read from the account trie at the head.
    fn storage_root_of(&self, key: &B256) -> B256 {
        let head = *self.roots.last().expect("genesis root");
        match walk::get(&self.nodes, head, key).expect("head state trie is complete") {
            Some(rlp) => Account::decode_full(&rlp).expect("account leaf decodes").storage_root,
            None => EMPTY_ROOT,
        }
    }

    /// Applies drafted changes: live state, undo record, tries, header, block.
    fn commit(&mut self, drafts: BTreeMap<B256, Pending>) -> &Block {
        if self.initial.is_none() {
            self.initial = Some(self.live.clone());
        }
        let head_root = *self.roots.last().expect("genesis root");
        let mut undo = Undo::default();
        let mut changes = Vec::with_capacity(drafts.len());
        let mut account_updates: Vec<Update> = Vec::with_capacity(drafts.len());
        for (key, pending) in drafts {
            match pending {
                Pending::Delete => {
                    let prev = self.live.accounts.remove(&key).expect("deleting a live account");
                    self.accounts.remove(&key);
                    self.contracts.remove(&key);
                    undo.accounts.push((
                        key,
                        Prior::Existed {
                            nonce: prev.nonce,
                            balance: prev.balance,
                            code_hash: prev.code_hash,
                            storage: PriorStorage::Whole(prev.storage),
                        },
                    ));
                    account_updates.push((key, None));
                    changes.push(AccountChange::Delete { account: key });
                }
                Pending::Set { nonce, balance, code, storage } => {
                    let old_storage_root = self.storage_root_of(&key);
                    let code_hash = (!code.is_empty()).then(|| {
                        let h = keccak256(&code);
                        if let btree_map::Entry::Vacant(e) = self.live.codes.entry(h) {
                            e.insert(code.clone());
                            undo.new_codes.push(h);
                        }
                        if let hash_map::Entry::Vacant(e) = self.codes.entry(h) {
                            e.insert(code.clone());
                            self.code_pool.push(h);
                        }
                        h
                    });
                    let existed = self.live.accounts.contains_key(&key);
                    let entry =
                        self.live.accounts.entry(key).or_insert_with(|| AccountData::plain(0, balance));
                    let mut slot_prior = Vec::with_capacity(storage.len());
                    let mut storage_updates: Vec<Update> = Vec::with_capacity(storage.len());
                    for (slot, value) in &storage {
                        let old = if value.is_zero() {
                            storage_updates.push((*slot, None));
                            entry.storage.remove(slot)
                        } else {
                            storage_updates.push((*slot, Some(storage_value_rlp(*value))));
                            entry.storage.insert(*slot, *value)
                        };
                        slot_prior.push((*slot, old));
                    }
                    let prior = if existed {
                        Prior::Existed {
                            nonce: entry.nonce,
                            balance: entry.balance,
                            code_hash: entry.code_hash,
                            storage: PriorStorage::Slots(slot_prior),
                        }
                    } else {
                        Prior::Absent
                    };
                    undo.accounts.push((key, prior));
                    entry.nonce = nonce;
                    entry.balance = balance;
                    if let Some(h) = code_hash {
                        entry.code_hash = h;
                    }
                    let account_code = entry.code_hash;
                    let storage_root = apply(&mut self.nodes, old_storage_root, &storage_updates)
                        .expect("storage trie is complete");
                    let account = Account { nonce, balance, storage_root, code_hash: account_code };
                    account_updates.push((key, Some(account.encode_full())));
                    self.accounts.insert(key);
                    if account_code != EMPTY_CODE {
                        self.contracts.insert(key);
                    }
                    changes.push(AccountChange::Set {
                        account: key,
                        nonce,
                        balance,
                        code,
                        storage: storage
                            .into_iter()
                            .map(|(slot, value)| StorageChange { slot, value })
                            .collect(),
                    });
                }
            }
        }
        let root = apply(&mut self.nodes, head_root, &account_updates).expect("account trie is complete");
        let number = self.blocks.len() as u64;
        let body = BlockBody { changes };
        let header = Header {
            parent_hash: *self.hashes.last().expect("genesis hash"),
            number,
            state_root: root,
            body_hash: body.hash(),
            timestamp: number.saturating_mul(self.params.block_time_ms),
            extra: if self.generation == 0 {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(&self.generation.to_be_bytes())
            },
        };
        let hash = header.hash();
        self.by_hash.insert(hash, Loc::Canonical(self.blocks.len()));
        self.blocks.push(Block { header, body });
        self.roots.push(root);
        self.hashes.push(hash);
        self.undo.push(undo);
        self.blocks.last().expect("just pushed")
    }

    /// Rolls the live state back over the head block, which moves to the orphans.
    fn unwind_head(&mut self) {
        let undo = self.undo.pop().expect("a block above genesis");
        let block = self.blocks.pop().expect("a block above genesis");
        let hash = self.hashes.pop().expect("its hash");
        self.roots.pop();
        self.by_hash.insert(hash, Loc::Orphan(self.orphans.len()));
        self.orphans.push(block);
        for (key, prior) in undo.accounts.into_iter().rev() {
            match prior {
                Prior::Absent => {
                    self.live.accounts.remove(&key);
                    self.accounts.remove(&key);
                    self.contracts.remove(&key);
                }
                Prior::Existed { nonce, balance, code_hash, storage } => {
                    match storage {
                        PriorStorage::Whole(storage) => {
                            self.live
                                .accounts
                                .insert(key, AccountData { nonce, balance, code_hash, storage });
                        }
                        PriorStorage::Slots(slots) => {
                            let a = self.live.accounts.get_mut(&key).expect("account touched by the block");
                            a.nonce = nonce;
                            a.balance = balance;
                            a.code_hash = code_hash;
                            for (slot, old) in slots.into_iter().rev() {
                                match old {
                                    Some(v) => a.storage.insert(slot, v),
                                    None => a.storage.remove(&slot),
                                };
                            }
                        }
                    }
                    self.accounts.insert(key);
                    if code_hash != EMPTY_CODE {
                        self.contracts.insert(key);
                    } else {
                        self.contracts.remove(&key);
                    }
                }
            }
        }
        for h in undo.new_codes {
            self.live.codes.remove(&h);
        }
    }

    /// Replaces the last `depth` canonical blocks (at most all but genesis) with a different
    /// fork of the same length, drawn from a fresh rng stream; returns the new blocks. The
    /// replaced blocks stay retrievable by hash and their trie nodes stay in the store.
    pub fn reorg(&mut self, depth: u64) -> Vec<Block> {
        let depth = depth.min(self.head_number());
        if depth == 0 {
            return Vec::new();
        }
        for _ in 0..depth {
            self.unwind_head();
        }
        self.generation += 1;
        self.rng = chain_rng(self.seed, self.generation);
        (0..depth).map(|_| self.produce_block().clone()).collect()
    }

    /// Number of the head block.
    pub fn head_number(&self) -> u64 {
        self.blocks.len() as u64 - 1
    }

    /// The head block.
    pub fn head(&self) -> &Block {
        self.blocks.last().expect("genesis")
    }

    /// Canonical block `n`.
    pub fn block(&self, n: u64) -> Option<&Block> {
        self.blocks.get(usize::try_from(n).ok()?)
    }

    /// All canonical blocks, genesis first (what the oracle replays).
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Hash of canonical block `n`.
    pub fn block_hash(&self, n: u64) -> Option<B256> {
        self.hashes.get(usize::try_from(n).ok()?).copied()
    }

    /// State root of canonical block `n`.
    pub fn state_root(&self, n: u64) -> Option<B256> {
        self.roots.get(usize::try_from(n).ok()?).copied()
    }

    /// Any block ever produced (canonical or replaced by a reorg), by hash.
    pub fn block_by_hash(&self, hash: &B256) -> Option<&Block> {
        match *self.by_hash.get(hash)? {
            Loc::Canonical(i) => self.blocks.get(i),
            Loc::Orphan(i) => self.orphans.get(i),
        }
    }

    /// Whether the block with this hash is on the canonical chain.
    pub fn is_canonical(&self, hash: &B256) -> bool {
        matches!(self.by_hash.get(hash), Some(Loc::Canonical(_)))
    }

    /// Blocks replaced by reorgs, in the order they were replaced.
    pub fn orphans(&self) -> &[Block] {
        &self.orphans
    }

    /// The flat state of block 0.
    /// Moves the genesis flat state out (for the oracle at the end of a run, to avoid a copy);
    /// afterwards `initial_state()` is empty.
    pub fn take_initial_state(&mut self) -> State {
        self.flat_retired = true;
        match self.initial.take() {
            Some(s) => s,
            None => std::mem::take(&mut self.live),
        }
    }

    /// Drops the live flat state (the chain can no longer grow), unless no block was ever
    /// committed: then it is the genesis state, which [`Chain::take_initial_state`] moves out.
    pub fn retire(&mut self) {
        self.flat_retired = true;
        if self.initial.is_some() {
            self.live = State::default();
        }
    }

    pub fn initial_state(&self) -> &State {
        self.initial.as_ref().unwrap_or(&self.live)
    }

    /// The flat state at the head.
    pub fn live_state(&self) -> &State {
        &self.live
    }

    /// The parameters.
    pub fn params(&self) -> ChainParams {
        self.params
    }

    /// Counts of the changes drawn so far (forks included).
    pub fn change_stats(&self) -> &ChangeStats {
        &self.stats
    }

    /// Reorgs so far.
    pub fn reorgs(&self) -> u64 {
        self.generation
    }
}

/// Remembered storage roots: (state root, account) -> storage root (`None`: no such account).
type StorageRootMemo = HashMap<(B256, B256), Option<B256>, BuildHasherDefault<KeyHasher>>;

/// Most storage roots remembered; the memo starts over when full.
const STORAGE_ROOT_MEMO: usize = 1 << 18;

impl ChainView for Chain {
    fn storage_root(&self, root: &B256, account: &B256) -> Option<B256> {
        if let Some(known) = self.storage_roots.borrow().get(&(*root, *account)) {
            return *known;
        }
        let found = crate::view::storage_root_in(&self.nodes, root, account);
        let mut memo = self.storage_roots.borrow_mut();
        if memo.len() >= STORAGE_ROOT_MEMO {
            memo.clear();
        }
        memo.insert((*root, *account), found);
        found
    }

    fn nodes(&self) -> &MemNodes {
        &self.nodes
    }

    fn code(&self, hash: &B256) -> Option<&Bytes> {
        self.codes.get(hash)
    }

    fn header(&self, number: u64) -> Option<&Header> {
        self.block(number).map(|b| &b.header)
    }

    fn body(&self, hash: &B256) -> Option<&BlockBody> {
        self.block_by_hash(hash).map(|b| &b.body)
    }

    /// The live flat state when `root` is the head's root, the genesis flat state when it is
    /// block 0's (while the chain still holds them: not after [`Chain::retire`] or
    /// [`Chain::take_initial_state`]).
    fn flat_state(&self, root: &B256) -> Option<&State> {
        if self.flat_retired {
            return None;
        }
        if self.roots.last() == Some(root) {
            return Some(&self.live);
        }
        match &self.initial {
            Some(initial) if self.roots.first() == Some(root) => Some(initial),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
