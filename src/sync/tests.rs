//! Unit tests of the sans-IO [`Syncer`], driven directly: no runtime, no simulator. A small
//! state is built into a [`MemNodes`] acting as the serving peers' database; an in-test server
//! answers the syncer's requests from it with range proofs; a tiny harness moves replies
//! through a virtual wire (a delay per reply), expires deadlines with `on_tick` and checks the
//! syncer's books after every step.

use crate::account::Account;
use crate::codec::{
    AccountData as WireAccount, AccountRange, ByteCodes, GetAccountRange, GetByteCodes, GetStorageRanges,
    GetTrieNodes, Message, StorageData, StorageRanges, TrieNodes,
};
use crate::primitives::{keccak256, Bytes, B256, EMPTY_CODE, EMPTY_ROOT, U256};
use crate::state::{AccountData, State};
use crate::store::{MemStore, SyncStore};
use crate::sync::{
    verify_complete, Action, Kind, KindStats, PeerId, SizingPolicy, SyncConfig, SyncStats, Syncer,
};
use crate::trie::build::build;
use crate::trie::nibbles::hex_prefix_decode;
use crate::trie::root::storage_value_rlp;
use crate::trie::walk::{get, iter_from, node_at_path, prove};
use crate::trie::{prove_range, MemNodes};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------------------------
// The state and its trie
// ---------------------------------------------------------------------------------------------

/// Accounts in the test state.
const ACCOUNTS: u64 = 300;

/// 300 accounts keyed by keccak(i): every 7th has code (three codes, shared), every 5th has a
/// little storage, account 3 has a large storage trie (continuations and proofs when the
/// storage budget is small).
fn test_state() -> State {
    let mut state = State::default();
    let codes: Vec<B256> =
        (0..3u8).map(|i| state.insert_code(Bytes::from(vec![0x60, i, 0x60, 0x00, 0x55, 0x00, i]))).collect();
    for i in 0..ACCOUNTS {
        let mut a = AccountData::plain(i, U256::from(1_000 + i * 7));
        if i % 7 == 0 {
            a.code_hash = codes[(i / 7) as usize % codes.len()];
        }
        let slots = match i {
            3 => 1_500,
            i if i % 5 == 0 => 1 + i % 23,
            _ => 0,
        };
        for s in 0..slots {
            a.storage.insert(keccak256((i * 100_000 + s).to_be_bytes()), U256::from(s + 1));
        }
        state.accounts.insert(keccak256(i.to_be_bytes()), a);
    }
    state
}

/// `state` changed as a block would: balances, storage (changed, added and cleared slots), new
/// and deleted accounts, a new code.
fn modified(state: &State) -> State {
    let mut s = state.clone();
    let keys: Vec<B256> = s.accounts.keys().copied().collect();
    for k in keys.iter().step_by(37) {
        if let Some(a) = s.accounts.get_mut(k) {
            a.balance += U256::from(1);
        }
    }
    // storage of the large contract and of a small one
    for i in [3u64, 10] {
        let a = s.accounts.get_mut(&keccak256(i.to_be_bytes())).unwrap();
        let first = *a.storage.keys().next().unwrap();
        a.storage.insert(first, U256::from(777));
        a.storage.insert(keccak256((i * 100_000 + 99_999).to_be_bytes()), U256::from(5));
        let last = *a.storage.keys().next_back().unwrap();
        a.storage.remove(&last);
    }
    let code = s.insert_code(Bytes::from_static(&[0x60, 0x42, 0x00]));
    for i in ACCOUNTS..ACCOUNTS + 3 {
        let mut a = AccountData::plain(1, U256::from(i));
        a.code_hash = code;
        a.storage.insert(keccak256(i.to_be_bytes()), U256::from(9));
        s.accounts.insert(keccak256(i.to_be_bytes()), a);
    }
    for i in [1u64, 2] {
        s.accounts.remove(&keccak256(i.to_be_bytes()));
    }
    s
}

/// Builds every storage trie and the account trie of `state` into `nodes`; returns the root.
fn build_into(state: &State, nodes: &mut MemNodes) -> B256 {
    let mut leaves = Vec::with_capacity(state.accounts.len());
    for (k, a) in &state.accounts {
        let slots: Vec<(B256, Vec<u8>)> =
            a.storage.iter().map(|(s, v)| (*s, storage_value_rlp(*v))).collect();
        let storage_root = build(&slots, &mut |n| nodes.insert_hashed(n.hash, n.rlp));
        leaves.push((*k, a.to_account(storage_root).encode_full()));
    }
    let root = build(&leaves, &mut |n| nodes.insert_hashed(n.hash, n.rlp));
    assert_eq!(root, state.root(), "the built trie matches the state's root");
    root
}

// ---------------------------------------------------------------------------------------------
// The server: honest snap/1 replies from the trie (go-ethereum semantics, minimal)
// ---------------------------------------------------------------------------------------------

/// Peers' shared database: every root it was given can be served (nodes are shared).
struct Server {
    nodes: MemNodes,
    codes: BTreeMap<B256, Bytes>,
    roots: BTreeSet<B256>,
}

impl Server {
    fn new(states: &[&State]) -> (Self, Vec<B256>) {
        let mut s = Server { nodes: MemNodes::default(), codes: BTreeMap::new(), roots: BTreeSet::new() };
        let mut roots = Vec::new();
        for st in states {
            let root = build_into(st, &mut s.nodes);
            s.roots.insert(root);
            s.codes.extend(st.codes.iter().map(|(h, c)| (*h, c.clone())));
            roots.push(root);
        }
        (s, roots)
    }

    /// The honest reply to a request (an empty one for a root it does not hold).
    fn serve(&self, msg: &Message) -> Message {
        match msg {
            Message::GetAccountRange(r) => Message::AccountRange(self.accounts(r)),
            Message::GetStorageRanges(r) => Message::StorageRanges(self.storage(r)),
            Message::GetByteCodes(r) => Message::ByteCodes(self.byte_codes(r)),
            Message::GetTrieNodes(r) => Message::TrieNodes(self.trie_nodes(r)),
            other => panic!("the syncer sent a {}", other.kind_name()),
        }
    }

    fn proof(&self, root: B256, origin: &B256, last: Option<&B256>) -> Vec<Bytes> {
        let nodes = match last {
            Some(last) => prove_range(&self.nodes, root, origin, Some(last)).unwrap(),
            None => prove(&self.nodes, root, origin).unwrap(),
        };
        nodes.into_iter().map(Bytes::from).collect()
    }

    fn accounts(&self, req: &GetAccountRange) -> AccountRange {
        let empty = AccountRange { request_id: req.request_id, accounts: Vec::new(), proof: Vec::new() };
        if !self.roots.contains(&req.root) {
            return empty;
        }
        let budget = req.response_bytes.max(1);
        let (mut accounts, mut size, mut stopped, mut more) = (Vec::new(), 0u64, false, false);
        iter_from(&self.nodes, req.root, &req.starting_hash, &mut |hash, leaf| {
            if stopped {
                more = true;
                return false;
            }
            let body = Bytes::from(Account::decode_full(leaf).unwrap().encode_slim());
            size += 32 + body.len() as u64;
            accounts.push(WireAccount { hash, body });
            stopped = hash >= req.limit_hash || size > budget;
            true
        })
        .unwrap();
        let proof = if req.starting_hash.is_zero() && !more {
            Vec::new()
        } else {
            self.proof(req.root, &req.starting_hash, accounts.last().map(|a: &WireAccount| &a.hash))
        };
        AccountRange { request_id: req.request_id, accounts, proof }
    }

    fn storage_root(&self, root: B256, account: &B256) -> Option<B256> {
        let leaf = get(&self.nodes, root, account).ok()??;
        Account::decode_full(&leaf).ok().map(|a| a.storage_root)
    }

    fn storage(&self, req: &GetStorageRanges) -> StorageRanges {
        let mut out = StorageRanges { request_id: req.request_id, slots: Vec::new(), proof: Vec::new() };
        if !self.roots.contains(&req.root) {
            return out;
        }
        let Some(roots) =
            req.account_hashes.iter().map(|a| self.storage_root(req.root, a)).collect::<Option<Vec<_>>>()
        else {
            return out;
        };
        let budget = req.response_bytes.max(1);
        let hard_limit = budget + budget / 10;
        let mut size = 0u64;
        for (i, &sroot) in roots.iter().enumerate() {
            if size >= budget {
                break;
            }
            let (origin, limit) = if i == 0 {
                (req.starting_hash.unwrap_or_default(), req.limit_hash.unwrap_or(B256::repeat_byte(0xff)))
            } else {
                (B256::ZERO, B256::repeat_byte(0xff))
            };
            let (mut set, mut stopped, mut more) = (Vec::new(), false, false);
            iter_from(&self.nodes, sroot, &origin, &mut |hash, value| {
                if stopped || size >= hard_limit {
                    more = true;
                    return false;
                }
                size += 32 + value.len() as u64;
                set.push(StorageData { hash, data: Bytes::copy_from_slice(value) });
                stopped = hash >= limit;
                true
            })
            .unwrap();
            let partial = more || (!origin.is_zero() && sroot != EMPTY_ROOT);
            if partial {
                out.proof = self.proof(sroot, &origin, set.last().map(|s: &StorageData| &s.hash));
            }
            out.slots.push(set);
            if partial {
                break;
            }
        }
        out
    }

    fn byte_codes(&self, req: &GetByteCodes) -> ByteCodes {
        let mut codes = Vec::new();
        let mut bytes = 0u64;
        for h in &req.hashes {
            if let Some(c) = self.codes.get(h) {
                bytes += c.len() as u64;
                codes.push(c.clone());
            }
            if bytes > req.response_bytes {
                break;
            }
        }
        ByteCodes { request_id: req.request_id, codes }
    }

    fn node_at(&self, root: B256, compact: &[u8]) -> Option<Bytes> {
        let (path, _) = hex_prefix_decode(compact)?;
        node_at_path(&self.nodes, root, &path).map(Bytes::from)
    }

    fn trie_nodes(&self, req: &GetTrieNodes) -> TrieNodes {
        let mut nodes = Vec::new();
        if !self.roots.contains(&req.root) {
            return TrieNodes { request_id: req.request_id, nodes };
        }
        let mut bytes = 0u64;
        'sets: for set in &req.paths {
            let found: Vec<Option<Bytes>> = match set.as_slice() {
                [] => Vec::new(),
                [path] => vec![self.node_at(req.root, path)],
                [account, paths @ ..] => {
                    let sroot = <[u8; 32]>::try_from(&account[..])
                        .ok()
                        .and_then(|a| self.storage_root(req.root, &B256::from(a)));
                    match sroot {
                        Some(sroot) => paths.iter().map(|p| self.node_at(sroot, p)).collect(),
                        None => Vec::new(),
                    }
                }
            };
            for n in found.into_iter().flatten() {
                bytes += n.len() as u64;
                nodes.push(n);
                if bytes > req.response_bytes {
                    break 'sets;
                }
            }
        }
        TrieNodes { request_id: req.request_id, nodes }
    }
}

/// A balance no honest account has: tampered replies carry it.
const SENTINEL: u64 = 0xdead_beef;

/// `reply` made provably wrong: a value altered, or (`drop_proof`) a proof node removed.
fn tamper(reply: Message, drop_proof: bool) -> Message {
    match reply {
        Message::AccountRange(mut r) => {
            if drop_proof && r.proof.len() > 1 {
                r.proof.remove(r.proof.len() / 2);
            } else if let Some(a) = {
                let mid = r.accounts.len() / 2;
                r.accounts.get_mut(mid)
            } {
                let mut acc = Account::decode_slim(&a.body).unwrap();
                acc.balance = U256::from(SENTINEL);
                a.body = Bytes::from(acc.encode_slim());
            }
            Message::AccountRange(r)
        }
        Message::StorageRanges(mut r) => {
            if drop_proof && r.proof.len() > 1 {
                r.proof.remove(r.proof.len() / 2);
            } else if let Some(s) = r.slots.iter_mut().flatten().next() {
                s.data = Bytes::from(storage_value_rlp(U256::from(SENTINEL)));
            }
            Message::StorageRanges(r)
        }
        Message::ByteCodes(mut r) => {
            if let Some(c) = r.codes.first_mut() {
                let mut v = c.to_vec();
                v.push(0xfe);
                *c = Bytes::from(v);
            }
            Message::ByteCodes(r)
        }
        Message::TrieNodes(mut r) => {
            if let Some(n) = r.nodes.first_mut() {
                let mut v = n.to_vec();
                let last = v.len() - 1;
                v[last] ^= 1;
                *n = Bytes::from(v);
            }
            Message::TrieNodes(r)
        }
        other => other,
    }
}

/// The empty reply to a request: what a peer lacking its root sends.
fn empty_reply(msg: &Message) -> Message {
    let request_id = msg.request_id().unwrap();
    match msg {
        Message::GetAccountRange(_) => {
            Message::AccountRange(AccountRange { request_id, accounts: Vec::new(), proof: Vec::new() })
        }
        Message::GetStorageRanges(_) => {
            Message::StorageRanges(StorageRanges { request_id, slots: Vec::new(), proof: Vec::new() })
        }
        Message::GetByteCodes(_) => Message::ByteCodes(ByteCodes { request_id, codes: Vec::new() }),
        Message::GetTrieNodes(_) => Message::TrieNodes(TrieNodes { request_id, nodes: Vec::new() }),
        other => panic!("the syncer sent a {}", other.kind_name()),
    }
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

/// What a peer does with a request: answer it after a delay (ms), or never.
type Reply = Option<(u64, Message)>;

/// A request's identity apart from its id: kind, root and bounds.
fn work_of(msg: &Message) -> (Kind, B256, B256, B256) {
    match msg {
        Message::GetAccountRange(r) => (Kind::Accounts, r.root, r.starting_hash, r.limit_hash),
        Message::GetStorageRanges(r) => (
            Kind::Storage,
            r.root,
            r.starting_hash.unwrap_or_default(),
            r.account_hashes.first().copied().unwrap_or_default(),
        ),
        Message::GetByteCodes(r) => (Kind::Codes, B256::ZERO, r.hashes[0], B256::ZERO),
        Message::GetTrieNodes(r) => (Kind::TrieNodes, r.root, B256::ZERO, B256::ZERO),
        other => panic!("the syncer sent a {}", other.kind_name()),
    }
}

fn kind_of(msg: &Message) -> Kind {
    work_of(msg).0
}

fn kind_stats(s: &SyncStats, k: Kind) -> KindStats {
    match k {
        Kind::Accounts => s.account_range,
        Kind::Storage => s.storage_ranges,
        Kind::Codes => s.bytecodes,
        Kind::TrieNodes => s.trie_nodes,
    }
}

/// One entry of the harness's log.
#[derive(Debug, Clone)]
enum Event {
    /// An action the syncer returned, at `now`.
    Act(u64, Action),
    /// A reply handed to `on_message`, at `now`: peer, request id.
    Delivered(u64, PeerId, u64),
}

impl Event {
    /// When it happened.
    fn at(&self) -> u64 {
        match self {
            Event::Act(t, _) | Event::Delivered(t, ..) => *t,
        }
    }
}

struct Harness {
    syncer: Syncer,
    store: MemStore,
    now: u64,
    /// Replies travelling: (arrival, seq) -> (peer, reply).
    wire: BTreeMap<(u64, u64), (PeerId, Message)>,
    seq: u64,
    connected: BTreeSet<PeerId>,
    log: Vec<Event>,
    /// Sends and `TimedOut` actions seen, per kind, to cross-check the syncer's counters.
    sent: [u64; 4],
    timeouts: [u64; 4],
}

impl Harness {
    fn new(cfg: SyncConfig, root: B256, peers: &[PeerId]) -> Self {
        let mut store = MemStore::default();
        let mut syncer = Syncer::new(cfg, root, &store, 0);
        for p in peers {
            syncer.add_peer(*p);
        }
        syncer.generate(&mut store);
        Harness {
            syncer,
            store,
            now: 0,
            wire: BTreeMap::new(),
            seq: 0,
            connected: peers.iter().copied().collect(),
            log: Vec::new(),
            sent: [0; 4],
            timeouts: [0; 4],
        }
    }

    fn perform(&mut self, actions: Vec<Action>, respond: &mut dyn FnMut(u64, PeerId, &Message) -> Reply) {
        for a in actions {
            self.log.push(Event::Act(self.now, a.clone()));
            match a {
                Action::Send { peer, msg } => {
                    assert!(self.connected.contains(&peer), "a request to peer {peer}, not connected");
                    self.sent[kind_of(&msg).index()] += 1;
                    if let Some((delay, reply)) = respond(self.now, peer, &msg) {
                        self.seq += 1;
                        self.wire.insert((self.now + delay.max(1), self.seq), (peer, reply));
                    }
                }
                Action::Drop { peer, .. } => {
                    // the syncer already forgot the peer's requests; the link goes
                    self.disconnect_link(peer);
                }
                Action::TimedOut { kind, .. } => self.timeouts[kind.index()] += 1,
                Action::Penalise { .. } => {}
            }
        }
    }

    fn disconnect_link(&mut self, peer: PeerId) {
        self.connected.remove(&peer);
        self.wire.retain(|_, (p, _)| *p != peer);
    }

    /// A peer leaves (the driver's `peer_gone`).
    fn leave(&mut self, peer: PeerId) {
        self.disconnect_link(peer);
        self.syncer.remove_peer(peer);
        self.check_books();
    }

    /// A peer (re)joins.
    fn join(&mut self, peer: PeerId) {
        self.connected.insert(peer);
        self.syncer.add_peer(peer);
    }

    fn done(&self) -> bool {
        self.syncer.is_done(&self.store)
    }

    /// Every request sent ended exactly one way or is still in flight (which `stats()` counts
    /// as cancelled), and the syncer's own work accounting holds.
    fn check_books(&self) {
        let st = self.syncer.stats();
        for k in Kind::ALL {
            let ks = kind_stats(&st, k);
            assert_eq!(ks.unaccounted(), 0, "{k:?} books at t={}: {ks:?}", self.now);
            assert_eq!(ks.sent, self.sent[k.index()], "{k:?} sends counted at t={}", self.now);
            assert!(ks.timed_out >= self.timeouts[k.index()], "{k:?} timeouts at t={}", self.now);
        }
        if let Err(e) = self.syncer.check_accounting() {
            panic!("accounting at t={}: {e}", self.now);
        }
    }

    /// One step: poll, then the next event (a reply arriving, or the next deadline), then a
    /// tick. Returns false when nothing at all is due (nothing in flight, nothing benched).
    fn step(&mut self, respond: &mut dyn FnMut(u64, PeerId, &Message) -> Reply) -> bool {
        let a = self.syncer.poll(self.now, &mut self.store);
        self.perform(a, respond);
        self.check_books();
        if self.done() {
            return true;
        }
        let arrival = self.wire.keys().next().map(|(t, _)| *t);
        let deadline = self.syncer.next_deadline(self.now);
        let reply_first = match (arrival, deadline) {
            (Some(t), Some(d)) => t <= d,
            (Some(_), None) => true,
            (None, _) => false,
        };
        match (reply_first, deadline) {
            (true, _) => {
                let Some(((t, _), (peer, reply))) = self.wire.pop_first() else { unreachable!() };
                self.now = self.now.max(t);
                let id = reply.request_id().unwrap();
                self.log.push(Event::Delivered(self.now, peer, id));
                self.syncer.note_message(peer);
                let a = self.syncer.on_message(self.now, peer, reply, &mut self.store);
                self.perform(a, respond);
            }
            (false, Some(d)) => self.now = self.now.max(d),
            (false, None) => return false,
        }
        self.check_books();
        let a = self.syncer.on_tick(self.now);
        self.perform(a, respond);
        self.check_books();
        true
    }

    /// Steps until done (true) or `max` steps or nothing due (false).
    fn run(&mut self, respond: &mut dyn FnMut(u64, PeerId, &Message) -> Reply, max: usize) -> bool {
        for _ in 0..max {
            if self.done() {
                return true;
            }
            if !self.step(respond) {
                return self.done();
            }
        }
        self.done()
    }

    /// The sends in the log from entry `from` on: (log index, time, peer, request).
    fn sends(&self, from: usize) -> Vec<(usize, u64, PeerId, &Message)> {
        self.log
            .iter()
            .enumerate()
            .skip(from)
            .filter_map(|(i, e)| match e {
                Event::Act(t, Action::Send { peer, msg }) => Some((i, *t, *peer, msg)),
                _ => None,
            })
            .collect()
    }

    fn actions(&self) -> impl Iterator<Item = &Action> + '_ {
        self.log.iter().filter_map(|e| match e {
            Event::Act(_, a) => Some(a),
            Event::Delivered(..) => None,
        })
    }

    /// The completion walk from `root`: the whole trie, storage and codes are stored.
    fn assert_complete(&self, state: &State, root: B256) {
        assert!(self.done(), "the syncer is done");
        let walk = verify_complete(&self.store, root).expect("the trie at the root is complete");
        assert_eq!(walk.accounts, state.accounts.len() as u64);
        for (k, a) in &state.accounts {
            let held = self.store.accounts_in(k, k);
            assert_eq!(held.len(), 1, "flat account {k} stored");
            assert_eq!(held[0].1, a.to_account(a.storage_root()), "flat account {k}");
            if a.code_hash != EMPTY_CODE {
                assert_eq!(self.store.code(&a.code_hash), state.codes.get(&a.code_hash).map(|c| &c[..]));
            }
        }
    }
}

/// An honest peer answering after `delay` ms.
fn honest(server: &Server, delay: u64) -> impl FnMut(u64, PeerId, &Message) -> Reply + '_ {
    move |_, _, msg| Some((delay, server.serve(msg)))
}

fn cfg(sizing: SizingPolicy) -> SyncConfig {
    SyncConfig { sizing, ..SyncConfig::default() }
}

/// Every policy, with small budgets too (several requests per chunk, storage continuations).
fn configs() -> Vec<SyncConfig> {
    let mut out: Vec<SyncConfig> =
        [SizingPolicy::Adaptive, SizingPolicy::Fixed, SizingPolicy::Geth, SizingPolicy::Harmony]
            .into_iter()
            .map(cfg)
            .collect();
    out.push(SyncConfig {
        sizing: SizingPolicy::Fixed,
        account_bytes: 600,
        storage_bytes: 16 * 1024,
        max_codes: 2,
        ..SyncConfig::default()
    });
    out
}

const MAX_STEPS: usize = 20_000;

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

/// A clean sync from one honest peer converges under every policy: the completion walk finds
/// the whole trie at the root, and the only trie node healed is the root (every other node lies
/// inside one account chunk and is generated from the fetched ranges).
#[test]
fn clean_sync_converges_and_heals_only_the_root() {
    let state = test_state();
    let (server, roots) = Server::new(&[&state]);
    let root = roots[0];
    for cfg in configs() {
        let label = format!("{cfg:?}");
        let mut h = Harness::new(cfg, root, &[1]);
        assert!(h.run(&mut honest(&server, 20), MAX_STEPS), "{label}: converges");
        h.assert_complete(&state, root);
        let st = h.syncer.stats();
        assert_eq!(st.trie_nodes.sent, 1, "{label}: one trie-node request");
        let heal: Vec<&Message> =
            h.sends(0).into_iter().map(|s| s.3).filter(|m| matches!(m, Message::GetTrieNodes(_))).collect();
        match heal[0] {
            Message::GetTrieNodes(r) => {
                assert_eq!(r.root, root);
                assert_eq!(r.paths, vec![vec![Bytes::from(vec![0u8])]], "{label}: the root's path");
            }
            _ => unreachable!(),
        }
        assert_eq!(st.healed_nodes, 1, "{label}");
        for k in Kind::ALL {
            let ks = kind_stats(&st, k);
            assert_eq!((ks.failed, ks.timed_out, ks.cancelled), (0, 0, 0), "{label}: {k:?} {ks:?}");
            assert_eq!(ks.ok, ks.sent, "{label}: {k:?}");
        }
        assert!(h.syncer.penalised().is_empty(), "{label}");
        assert_eq!(st.unexpected_replies, 0, "{label}");
    }
}

/// A request never answered expires at its deadline (not before), is reported as `TimedOut`,
/// and its work is asked again with the same root and bounds; the sync converges.
#[test]
fn unanswered_request_times_out_and_is_retried() {
    let state = test_state();
    let (server, roots) = Server::new(&[&state]);
    let root = roots[0];
    for (cfg, peers) in [(cfg(SizingPolicy::Fixed), vec![1]), (cfg(SizingPolicy::Adaptive), vec![1, 2])] {
        let label = format!("{:?} with {} peers", cfg.sizing, peers.len());
        let lost: RefCell<Option<(u64, PeerId, Message)>> = RefCell::new(None);
        let mut respond = |now: u64, peer: PeerId, msg: &Message| -> Reply {
            // an early account-range request (not the first) is lost
            if lost.borrow().is_none() && matches!(msg, Message::GetAccountRange(r) if r.request_id >= 3) {
                *lost.borrow_mut() = Some((now, peer, msg.clone()));
                return None;
            }
            Some((20, server.serve(msg)))
        };
        let mut h = Harness::new(cfg, root, &peers);
        // up to the loss, then until its deadline passes
        while lost.borrow().is_none() {
            assert!(h.step(&mut respond), "{label}");
        }
        let (sent_at, lost_peer, lost_msg) = lost.borrow().clone().unwrap();
        let lost_id = lost_msg.request_id().unwrap();
        let mut expired_at = None;
        for _ in 0..MAX_STEPS {
            let before = h.log.len();
            assert!(h.step(&mut respond), "{label}");
            expired_at = h.log[before..].iter().find_map(|e| match e {
                Event::Act(t, Action::TimedOut { request_id, peer, kind }) if *request_id == lost_id => {
                    assert_eq!((*peer, *kind), (lost_peer, Kind::Accounts), "{label}");
                    Some(*t)
                }
                _ => None,
            });
            if expired_at.is_some() {
                break;
            }
        }
        let expired_at = expired_at.expect("the lost request timed out");
        assert!(expired_at > sent_at + 400, "{label}: expired at {expired_at}, sent at {sent_at}");
        assert_eq!(h.syncer.stats().account_range.timed_out, 1, "{label}");
        assert!(h.syncer.penalised().contains(&lost_peer), "{label}");
        let retry_from = h.log.len();
        assert!(h.run(&mut respond, MAX_STEPS), "{label}: converges");
        h.assert_complete(&state, root);
        let retried: Vec<_> = h
            .sends(retry_from)
            .into_iter()
            .filter(|s| work_of(s.3) == work_of(&lost_msg) && s.3.request_id() != Some(lost_id))
            .collect();
        assert_eq!(retried.len(), 1, "{label}: the lost work is asked again, once: {retried:?}");
        // the bounds did not change in between: nothing else asked for them
        let asked_between = h
            .sends(0)
            .into_iter()
            .filter(|s| s.0 < retried[0].0 && work_of(s.3) == work_of(&lost_msg))
            .count();
        assert_eq!(asked_between, 1, "{label}: only the lost request asked before the retry");
    }
}

/// A hostile peer's replies (altered values, or proof nodes removed) are penalised, the peer is
/// dropped after repeats, nothing of them is committed, and its work goes to the honest peer.
#[test]
fn bad_replies_are_penalised_dropped_and_never_committed() {
    let state = test_state();
    let (server, roots) = Server::new(&[&state]);
    let root = roots[0];
    let sentinel_slot = storage_value_rlp(U256::from(SENTINEL));
    for drop_proof in [false, true] {
        for sizing in [SizingPolicy::Fixed, SizingPolicy::Adaptive] {
            let label = format!("{sizing:?}, drop_proof {drop_proof}");
            let (honest_peer, hostile) = (1, 2);
            let mut respond = |_: u64, peer: PeerId, msg: &Message| -> Reply {
                let reply = server.serve(msg);
                Some((20, if peer == hostile { tamper(reply, drop_proof) } else { reply }))
            };
            let mut h = Harness::new(cfg(sizing), root, &[honest_peer, hostile]);
            let mut bad_work = Vec::new();
            for _ in 0..MAX_STEPS {
                if h.done() {
                    break;
                }
                let before = h.log.len();
                assert!(h.step(&mut respond));
                // nothing tampered is ever in the store
                for a in 0..ACCOUNTS {
                    let k = keccak256(a.to_be_bytes());
                    for (_, acc) in h.store.accounts_in(&k, &k) {
                        assert_ne!(acc.balance, U256::from(SENTINEL), "{label}: tampered account stored");
                    }
                    for (_, v) in h.store.slots_of(&k) {
                        assert_ne!(&v[..], &sentinel_slot[..], "{label}: tampered slot stored");
                    }
                }
                // which request each penalty was for
                for e in &h.log[before..] {
                    if let Event::Delivered(_, peer, id) = e {
                        if *peer == hostile {
                            let asked = h
                                .sends(0)
                                .into_iter()
                                .find(|s| s.3.request_id() == Some(*id))
                                .map(|s| s.3.clone())
                                .unwrap();
                            bad_work.push(asked);
                        }
                    }
                }
            }
            assert!(h.done(), "{label}: converges");
            h.assert_complete(&state, root);
            let penalties = h
                .actions()
                .filter(|a| matches!(a, Action::Penalise { peer, .. } if *peer == hostile))
                .count();
            let drop_at = h
                .log
                .iter()
                .position(|e| matches!(e, Event::Act(_, Action::Drop { peer, .. }) if *peer == hostile))
                .expect("the hostile peer is dropped");
            assert!(penalties >= 5, "{label}: {penalties} penalties before the drop");
            assert!(h.sends(drop_at).iter().all(|s| s.2 != hostile), "{label}: no request to a dropped peer");
            assert!(
                h.actions().all(|a| !matches!(a, Action::Penalise { peer, .. } | Action::Drop { peer, .. }
                        if *peer == honest_peer)),
                "{label}: the honest peer is never penalised"
            );
            // every account range the hostile peer spoiled was fetched from the honest one
            let honest_work: BTreeSet<_> =
                h.sends(0).into_iter().filter(|s| s.2 == honest_peer).map(|s| work_of(s.3)).collect();
            let spoiled: Vec<_> =
                bad_work.iter().filter(|m| matches!(m, Message::GetAccountRange(_))).collect();
            assert!(!spoiled.is_empty(), "{label}: the hostile peer was asked for account ranges");
            for m in spoiled {
                assert!(honest_work.contains(&work_of(m)), "{label}: {m:?} retried at the honest peer");
            }
            let st = h.syncer.stats();
            assert!(st.account_range.failed > 0, "{label}");
        }
    }
}

/// An empty reply marks the peer as lacking the root: no strike, no more work for it, and its
/// work goes to the other peer. With only such peers, the syncer says so.
#[test]
fn empty_reply_marks_peer_stateless() {
    let state = test_state();
    let (server, roots) = Server::new(&[&state]);
    let root = roots[0];
    for sizing in [SizingPolicy::Fixed, SizingPolicy::Adaptive] {
        let label = format!("{sizing:?}");
        let (lacking, full) = (1, 2);
        let mut respond = |_: u64, peer: PeerId, msg: &Message| -> Reply {
            Some((20, if peer == lacking { empty_reply(msg) } else { server.serve(msg) }))
        };
        let mut h = Harness::new(cfg(sizing), root, &[lacking, full]);
        assert!(h.run(&mut respond, MAX_STEPS), "{label}: converges");
        h.assert_complete(&state, root);
        let first_empty = h
            .log
            .iter()
            .position(|e| matches!(e, Event::Delivered(_, p, _) if *p == lacking))
            .expect("the lacking peer was asked");
        assert!(
            h.sends(first_empty).iter().all(|s| s.2 != lacking),
            "{label}: no work for a peer lacking the root"
        );
        assert!(!h.syncer.penalised().contains(&lacking), "{label}: an empty reply is no fault");
        assert_eq!(h.syncer.peer(lacking).map(|p| p.strikes), Some(0), "{label}");
        assert!(h.actions().all(|a| !matches!(a, Action::Drop { .. } | Action::Penalise { .. })), "{label}");
        let full_work: BTreeSet<_> =
            h.sends(0).into_iter().filter(|s| s.2 == full).map(|s| work_of(s.3)).collect();
        for s in h.sends(0).into_iter().filter(|s| s.2 == lacking) {
            assert!(full_work.contains(&work_of(s.3)), "{label}: {:?} asked of the full peer", s.3);
        }
    }

    // only a peer lacking the root: it is asked once, then left alone until its mark expires
    // (the syncer wakes for that), and asked again no more often than that
    let mut h = Harness::new(cfg(SizingPolicy::Fixed), root, &[1]);
    let mut respond = |_: u64, _: PeerId, msg: &Message| -> Reply { Some((20, empty_reply(msg))) };
    assert!(!h.run(&mut respond, 100));
    let times: Vec<u64> = h.sends(0).iter().map(|s| s.1).collect();
    assert!(times.len() >= 2, "asked again once the mark expired: {times:?}");
    assert!(
        times.windows(2).all(|w| w[1] >= w[0] + super::syncer::STATELESS_FOR_MS),
        "at most one request per mark: {times:?}"
    );
}

/// A pivot move keeps the ranges already fetched (no account chunk is asked again), heals the
/// old data to the new root, and converges there.
#[test]
fn pivot_move_keeps_ranges_and_heals_to_new_root() {
    let old = test_state();
    let new = modified(&old);
    let (server, roots) = Server::new(&[&old, &new]);
    let (r1, r2) = (roots[0], roots[1]);
    assert_ne!(r1, r2);
    for sizing in [SizingPolicy::Fixed, SizingPolicy::Adaptive] {
        let label = format!("{sizing:?}");
        let mut respond = honest(&server, 20);
        let mut h = Harness::new(cfg(sizing), r1, &[1, 2]);
        // until half the account chunks are answered
        let answered = |h: &Harness| {
            let ids: BTreeSet<u64> = h
                .log
                .iter()
                .filter_map(|e| match e {
                    Event::Delivered(_, _, id) => Some(*id),
                    _ => None,
                })
                .collect();
            h.sends(0)
                .into_iter()
                .filter(|s| {
                    matches!(s.3, Message::GetAccountRange(_)) && ids.contains(&s.3.request_id().unwrap())
                })
                .map(|s| work_of(s.3))
                .collect::<BTreeSet<_>>()
        };
        while answered(&h).len() < 8 {
            assert!(h.step(&mut respond), "{label}");
        }
        let before = answered(&h);
        let pivot_at = h.log.len();
        h.syncer.set_root(r2);
        h.check_books();
        assert_eq!(h.syncer.root(), r2);
        assert!(h.run(&mut respond, MAX_STEPS), "{label}: converges");
        h.assert_complete(&new, r2);
        let after = h.sends(pivot_at);
        for s in &after {
            if let Message::GetAccountRange(r) = s.3 {
                assert_eq!(r.root, r2, "{label}");
                assert!(
                    !before.iter().any(|w| w.2 == r.starting_hash),
                    "{label}: chunk at {} fetched again",
                    r.starting_hash
                );
            }
        }
        let st = h.syncer.stats();
        assert_eq!(st.pivot_moves, 1, "{label}");
        assert!(st.trie_nodes.sent > 1, "{label}: the old ranges are healed");
        assert!(st.healed_nodes > 1, "{label}");
    }
}

/// Runs a sync with random losses, delays, corrupted replies, peers leaving and joining, and a
/// pivot move, checking the books at every step. Returns the log as Debug strings.
fn random_sync(seed: u64, sizing: SizingPolicy) -> Vec<String> {
    let old = test_state();
    let new = modified(&old);
    let (server, roots) = Server::new(&[&old, &new]);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut respond = |_: u64, _: PeerId, msg: &Message| -> Reply {
        if r.random_bool(0.15) {
            return None;
        }
        let reply = server.serve(msg);
        let reply = if r.random_bool(0.03) { tamper(reply, false) } else { reply };
        Some((r.random_range(5..300), reply))
    };
    let peers = [1, 2, 3];
    let cfg =
        SyncConfig { sizing, request_timeout_ms: 3_000, account_bytes: 8 * 1024, ..SyncConfig::default() };
    let mut h = Harness::new(cfg, roots[0], &peers);
    let mut away: BTreeMap<PeerId, usize> = BTreeMap::new();
    let mut moved = false;
    for step in 0..MAX_STEPS {
        if h.done() && moved {
            break;
        }
        // the pivot moves once some accounts are in and requests are in flight (`stats()`
        // counts those as cancelled)
        let st = h.syncer.stats();
        let in_flight = Kind::ALL.iter().any(|k| kind_stats(&st, *k).cancelled > 0);
        if !moved && ((st.account_range.ok >= 4 && in_flight) || h.done()) {
            h.syncer.set_root(roots[1]);
            h.check_books();
            moved = true;
        }
        if rng.random_bool(0.02) {
            let p = peers[rng.random_range(0..peers.len())];
            if h.connected.contains(&p) && h.connected.len() > 1 {
                h.leave(p);
                away.insert(p, step + rng.random_range(5..50));
            }
        }
        let back: Vec<PeerId> = away.iter().filter(|(_, at)| **at <= step).map(|(p, _)| *p).collect();
        for p in back {
            away.remove(&p);
            h.join(p);
        }
        if !h.step(&mut respond) {
            // nothing due: every usable peer is gone; bring one back
            let p = *away.keys().next().expect("a peer to bring back");
            away.remove(&p);
            h.join(p);
        }
    }
    assert!(h.done(), "seed {seed} {sizing:?}: converges");
    h.assert_complete(&new, roots[1]);
    let st = h.syncer.stats();
    let total = |f: fn(&KindStats) -> u64| Kind::ALL.iter().map(|k| f(&kind_stats(&st, *k))).sum::<u64>();
    assert!(total(|k| k.timed_out) > 0, "seed {seed}: losses exercised");
    assert!(total(|k| k.cancelled) > 0, "seed {seed}: the pivot move cancelled requests");
    assert!(h.log.windows(2).all(|w| w[0].at() <= w[1].at()), "virtual time never goes back");
    h.log.iter().map(|e| format!("{e:?}")).collect()
}

/// Every request is in exactly one state at every step: sent == ok + failed + timed_out +
/// cancelled (+ in flight, which `stats()` reports as cancelled), through losses, faults,
/// disconnects and a pivot move; the syncer's own accounting check holds throughout.
#[test]
fn every_request_accounted_for_at_every_step() {
    for seed in 0..4 {
        for sizing in [SizingPolicy::Fixed, SizingPolicy::Adaptive] {
            random_sync(seed, sizing);
        }
    }
}

/// The same inputs give the same actions.
#[test]
fn same_inputs_same_actions() {
    for sizing in [SizingPolicy::Fixed, SizingPolicy::Adaptive] {
        let a = random_sync(7, sizing);
        let b = random_sync(7, sizing);
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x, y, "{sizing:?}: first difference at event {i}");
        }
        assert_ne!(a, random_sync(8, sizing), "{sizing:?}: a different seed differs");
    }
}

/// The state's own roots are what the server holds (a sanity check of the fixture).
#[test]
fn fixture_roots() {
    let state = test_state();
    let (server, roots) = Server::new(&[&state]);
    assert_ne!(roots[0], EMPTY_ROOT);
    assert!(server.nodes.len() > ACCOUNTS as usize);
    assert!(state.accounts.values().any(|a| a.storage.len() > 1000));
}
