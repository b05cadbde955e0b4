//! Peer serving against a small in-memory chain: honest replies verify and reassemble the state,
//! budgets hold, unknown roots give empty replies, and every misbehaviour is wrong (or merely
//! unhelpful) in exactly the way its name says.

use super::*;
use crate::scenario::Behaviour::{self, *};
use alloy_primitives::{keccak256, Bytes, U256};
use rand::Rng;
use std::collections::BTreeMap;
use syncsim_node::account::Account;
use syncsim_node::codec::{AccountChange, BlockBody, Header, Limits, StorageChange};
use syncsim_node::primitives::{EMPTY_CODE, EMPTY_ROOT};
use syncsim_node::trie::build::build;
use syncsim_node::trie::nibbles::{hex_prefix_encode, unpack};
use syncsim_node::trie::root::{root_from_sorted, storage_value_rlp};
use syncsim_node::trie::update::{apply, Update};
use syncsim_node::trie::{verify_range, MemNodes};

const MIB: u64 = 1024 * 1024;
const MAX_KEY: B256 = B256::repeat_byte(0xff);

// ---------------------------------------------------------------------------------------------
// Test chain and model
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct TestChain {
    nodes: MemNodes,
    codes: BTreeMap<B256, Bytes>,
    headers: Vec<Header>,
    bodies: BTreeMap<B256, BlockBody>,
}

impl ChainView for TestChain {
    fn nodes(&self) -> &MemNodes {
        &self.nodes
    }
    fn code(&self, hash: &B256) -> Option<&Bytes> {
        self.codes.get(hash)
    }
    fn header(&self, number: u64) -> Option<&Header> {
        self.headers.get(usize::try_from(number).ok()?)
    }
    fn body(&self, hash: &B256) -> Option<&BlockBody> {
        self.bodies.get(hash)
    }
}

/// One state: accounts and, per account with storage, its slots (hash -> leaf value).
#[derive(Clone, Default)]
struct Model {
    accounts: BTreeMap<B256, Account>,
    storage: BTreeMap<B256, BTreeMap<B256, Vec<u8>>>,
}

impl Model {
    fn slots(&self, account: &B256) -> Vec<(B256, Vec<u8>)> {
        self.storage
            .get(account)
            .map(|s| s.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default()
    }
    fn storage_root(&self, account: &B256) -> B256 {
        self.accounts[account].storage_root
    }
    fn contracts(&self) -> Vec<B256> {
        self.accounts.iter().filter(|(_, a)| a.has_storage()).map(|(k, _)| *k).collect()
    }
}

struct Fixture {
    chain: TestChain,
    roots: Vec<B256>,
    models: Vec<Model>,
    /// Hashed account-trie nodes of `roots[0]`, by nibble path.
    account_nodes: BTreeMap<Vec<u8>, B256>,
    /// Hashed storage-trie nodes under `roots[0]`, by (account, nibble path).
    storage_nodes: BTreeMap<(B256, Vec<u8>), B256>,
    /// Every code hash in the state.
    code_hashes: Vec<B256>,
    /// The contract whose storage has embedded (inline) leaves.
    embedded: B256,
}

impl Fixture {
    fn has_root(&self) -> impl Fn(&B256) -> bool + '_ {
        |r| self.roots.contains(r)
    }
    fn model(&self, root: &B256) -> &Model {
        &self.models[self.roots.iter().position(|r| r == root).expect("known root")]
    }
}

fn rand_key(rng: &mut ChaCha8Rng) -> B256 {
    B256::from(rng.random::<[u8; 32]>())
}

fn rand_value(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let v = match rng.random_range(0..3) {
        0 => U256::from(rng.random_range(1u64..256)),
        1 => U256::from(rng.random::<u64>() | 1),
        _ => U256::from_be_bytes(rng.random::<[u8; 32]>()) | U256::from(1),
    };
    storage_value_rlp(v)
}

/// Builds the trie of `leaves` into `nodes`, reporting each hashed node's path and hash.
fn insert_trie(nodes: &mut MemNodes, leaves: &[(B256, Vec<u8>)], rec: &mut dyn FnMut(&[u8], B256)) -> B256 {
    build(leaves, &mut |n| {
        nodes.insert_hashed(n.hash, n.rlp);
        rec(n.path, n.hash);
    })
}

fn storage_leaves(rng: &mut ChaCha8Rng, n: usize) -> BTreeMap<B256, Vec<u8>> {
    (0..n).map(|_| (rand_key(rng), rand_value(rng))).collect()
}

/// Slots under one long shared prefix with tiny values: their leaves embed in their parents.
fn embedded_leaves(rng: &mut ChaCha8Rng) -> BTreeMap<B256, Vec<u8>> {
    let base = rand_key(rng);
    (0..40u8)
        .map(|i| {
            let mut k = base;
            k.0[31] = i.wrapping_mul(37);
            (k, storage_value_rlp(U256::from(rng.random_range(1u64..100))))
        })
        .collect()
}

fn fixture() -> Fixture {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let mut chain = TestChain::default();
    let mut model = Model::default();
    let codes: Vec<Bytes> = (0..12)
        .map(|i| (0..rng.random_range(1..3000)).map(|j| (i * 31 + j) as u8).collect::<Vec<u8>>().into())
        .collect();
    for c in &codes {
        chain.codes.insert(keccak256(c), c.clone());
    }
    let code_hashes: Vec<B256> = chain.codes.keys().copied().collect();

    // Contracts: storage of various sizes, one huge, one with embedded leaves.
    let mut sizes = vec![1usize, 1, 2, 3, 5, 10, 17, 50, 120, 200, 400, 3000];
    sizes.extend((0..12).map(|_| rng.random_range(1..60)));
    let mut storage_nodes = BTreeMap::new();
    let mut embedded = B256::ZERO;
    for (i, n) in sizes.iter().copied().enumerate().chain([(usize::MAX, 0)]) {
        let account = rand_key(&mut rng);
        let slots = if n == 0 {
            embedded = account;
            embedded_leaves(&mut rng)
        } else {
            storage_leaves(&mut rng, n)
        };
        let leaves: Vec<(B256, Vec<u8>)> = slots.iter().map(|(k, v)| (*k, v.clone())).collect();
        let storage_root = insert_trie(&mut chain.nodes, &leaves, &mut |p, h| {
            storage_nodes.insert((account, p.to_vec()), h);
        });
        let code_hash = if i % 5 == 4 { EMPTY_CODE } else { code_hashes[i % code_hashes.len()] };
        model.accounts.insert(
            account,
            Account { nonce: i as u64, balance: U256::from(rng.random::<u64>()), storage_root, code_hash },
        );
        model.storage.insert(account, slots);
    }
    // Plain accounts and code-only accounts.
    for i in 0..300u64 {
        let code_hash = if i % 10 == 0 { code_hashes[i as usize % code_hashes.len()] } else { EMPTY_CODE };
        let balance = if i % 7 == 0 { U256::ZERO } else { U256::from(rng.random::<u128>()) };
        model.accounts.insert(
            rand_key(&mut rng),
            Account { nonce: rng.random_range(0..1000), balance, storage_root: EMPTY_ROOT, code_hash },
        );
    }
    let mut account_nodes = BTreeMap::new();
    let leaves: Vec<(B256, Vec<u8>)> = model.accounts.iter().map(|(k, a)| (*k, a.encode_full())).collect();
    let root0 = insert_trie(&mut chain.nodes, &leaves, &mut |p, h| {
        account_nodes.insert(p.to_vec(), h);
    });

    // Second root, copy-on-write: one contract's storage changes, balances change, accounts come
    // and go.
    let mut model1 = model.clone();
    let mut updates: BTreeMap<B256, Option<Vec<u8>>> = BTreeMap::new();
    let contract =
        *model.contracts().iter().find(|c| model.storage[*c].len() == 200).expect("200-slot contract");
    let mut sups: BTreeMap<B256, Option<Vec<u8>>> = BTreeMap::new();
    let old_slots: Vec<B256> = model.storage[&contract].keys().copied().collect();
    for k in old_slots.iter().step_by(17) {
        sups.insert(*k, None);
    }
    for k in old_slots.iter().skip(3).step_by(23) {
        sups.insert(*k, Some(rand_value(&mut rng)));
    }
    for _ in 0..6 {
        sups.insert(rand_key(&mut rng), Some(rand_value(&mut rng)));
    }
    let sups: Vec<Update> = sups.into_iter().collect();
    let new_sroot = apply(&mut chain.nodes, model.storage_root(&contract), &sups).unwrap();
    let slots1 = model1.storage.get_mut(&contract).unwrap();
    for (k, v) in &sups {
        match v {
            Some(v) => slots1.insert(*k, v.clone()),
            None => slots1.remove(k),
        };
    }
    assert_eq!(root_from_sorted(slots1.iter().map(|(k, v)| (*k, v.as_slice()))), new_sroot);
    model1.accounts.get_mut(&contract).unwrap().storage_root = new_sroot;
    updates.insert(contract, Some(model1.accounts[&contract].encode_full()));
    let plain: Vec<B256> = model.accounts.iter().filter(|(_, a)| !a.has_storage()).map(|(k, _)| *k).collect();
    for k in plain.iter().step_by(15) {
        model1.accounts.get_mut(k).unwrap().balance += U256::from(1000);
        updates.insert(*k, Some(model1.accounts[k].encode_full()));
    }
    for k in plain.iter().skip(7).step_by(31) {
        model1.accounts.remove(k);
        updates.insert(*k, None);
    }
    for _ in 0..10 {
        let k = rand_key(&mut rng);
        let a = Account { nonce: 1, balance: U256::from(5u64), ..Default::default() };
        model1.accounts.insert(k, a);
        updates.insert(k, Some(a.encode_full()));
    }
    let updates: Vec<Update> = updates.into_iter().collect();
    let root1 = apply(&mut chain.nodes, root0, &updates).unwrap();
    let leaves1: Vec<(B256, Vec<u8>)> = model1.accounts.iter().map(|(k, a)| (*k, a.encode_full())).collect();
    assert_eq!(root_from_sorted(leaves1.iter().map(|(k, v)| (*k, v.as_slice()))), root1);

    // A short chain of headers and bodies.
    let mut parent = B256::ZERO;
    for n in 0..12u64 {
        let changes = (0..n % 4)
            .map(|i| AccountChange::Set {
                account: rand_key(&mut rng),
                nonce: i,
                balance: U256::from(n * 100 + i),
                code: Bytes::new(),
                storage: vec![StorageChange { slot: rand_key(&mut rng), value: U256::from(i + 1) }],
            })
            .collect();
        let body = BlockBody { changes };
        let state_root = if n < 6 { root0 } else { root1 };
        let header = Header {
            parent_hash: parent,
            number: n,
            state_root,
            body_hash: body.hash(),
            timestamp: n * 12,
            extra: Bytes::from(vec![n as u8]),
        };
        parent = header.hash();
        chain.bodies.insert(parent, body);
        chain.headers.push(header);
    }
    Fixture {
        chain,
        roots: vec![root0, root1],
        models: vec![model, model1],
        account_nodes,
        storage_nodes,
        code_hashes,
        embedded,
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: request generators, verification as a client would do it
// ---------------------------------------------------------------------------------------------

fn next_key(k: &B256) -> Option<B256> {
    U256::from_be_bytes(k.0).checked_add(U256::from(1)).map(|v| B256::from(v.to_be_bytes::<32>()))
}

fn pick_key(rng: &mut ChaCha8Rng, keys: &[B256]) -> B256 {
    match rng.random_range(0..10) {
        0..=2 => B256::ZERO,
        3..=4 => rand_key(rng),
        5..=6 if !keys.is_empty() => keys[rng.random_range(0..keys.len())],
        7..=8 if !keys.is_empty() => next_key(&keys[rng.random_range(0..keys.len())]).unwrap_or(MAX_KEY),
        _ => MAX_KEY,
    }
}

fn pick_budget(rng: &mut ChaCha8Rng) -> u64 {
    match rng.random_range(0..8) {
        0 => 0,
        1 => 1,
        2 => rng.random_range(2..600),
        3 => rng.random_range(600..5000),
        4 => rng.random_range(5000..60_000),
        5 => 500_000,
        _ => 10 * MIB,
    }
}

fn gen_account_req(fx: &Fixture, rng: &mut ChaCha8Rng, id: u64) -> GetAccountRange {
    let root = fx.roots[rng.random_range(0..fx.roots.len())];
    let keys: Vec<B256> = fx.model(&root).accounts.keys().copied().collect();
    let starting_hash = pick_key(rng, &keys);
    let limit_hash = if rng.random_bool(0.5) { MAX_KEY } else { pick_key(rng, &keys) };
    GetAccountRange { request_id: id, root, starting_hash, limit_hash, response_bytes: pick_budget(rng) }
}

fn gen_storage_req(fx: &Fixture, rng: &mut ChaCha8Rng, id: u64) -> GetStorageRanges {
    let root = fx.roots[rng.random_range(0..fx.roots.len())];
    let model = fx.model(&root);
    let contracts = model.contracts();
    let all: Vec<B256> = model.accounts.keys().copied().collect();
    let n = rng.random_range(1..8);
    let account_hashes: Vec<B256> = (0..n)
        .map(|_| {
            if rng.random_bool(0.1) {
                all[rng.random_range(0..all.len())]
            } else {
                contracts[rng.random_range(0..contracts.len())]
            }
        })
        .collect();
    let slots: Vec<B256> = model.slots(&account_hashes[0]).into_iter().map(|(k, _)| k).collect();
    let starting_hash = rng.random_bool(0.5).then(|| pick_key(rng, &slots));
    let limit_hash = rng.random_bool(0.5).then(|| pick_key(rng, &slots));
    GetStorageRanges {
        request_id: id,
        root,
        account_hashes,
        starting_hash,
        limit_hash,
        response_bytes: pick_budget(rng),
    }
}

fn gen_codes_req(fx: &Fixture, rng: &mut ChaCha8Rng, id: u64) -> GetByteCodes {
    let hashes = (0..rng.random_range(1..30))
        .map(|_| match rng.random_range(0..10) {
            0 => EMPTY_CODE,
            1 => rand_key(rng),
            _ => fx.code_hashes[rng.random_range(0..fx.code_hashes.len())],
        })
        .collect();
    GetByteCodes { request_id: id, hashes, response_bytes: pick_budget(rng) }
}

/// Compact path sets in the trie of `roots[0]`: known account paths, storage paths, absent and
/// malformed ones.
fn gen_trie_req(fx: &Fixture, rng: &mut ChaCha8Rng, id: u64) -> GetTrieNodes {
    let apaths: Vec<&Vec<u8>> = fx.account_nodes.keys().collect();
    let spaths: Vec<&(B256, Vec<u8>)> = fx.storage_nodes.keys().collect();
    let paths = (0..rng.random_range(1..20))
        .map(|_| match rng.random_range(0..10) {
            0..=3 => vec![Bytes::from(hex_prefix_encode(apaths[rng.random_range(0..apaths.len())], false))],
            4..=6 => {
                let (account, _) = spaths[rng.random_range(0..spaths.len())];
                let mut set = vec![Bytes::copy_from_slice(account.as_slice())];
                for _ in 0..rng.random_range(1..5) {
                    let p = if rng.random_bool(0.8) {
                        let mine: Vec<&Vec<u8>> =
                            fx.storage_nodes.keys().filter(|(a, _)| a == account).map(|(_, p)| p).collect();
                        mine[rng.random_range(0..mine.len())].clone()
                    } else {
                        (0..rng.random_range(0..6)).map(|_| rng.random_range(0..16u8)).collect()
                    };
                    set.push(hex_prefix_encode(&p, false).into());
                }
                set
            }
            7 => {
                let p: Vec<u8> = (0..rng.random_range(0..70)).map(|_| rng.random_range(0..16u8)).collect();
                vec![hex_prefix_encode(&p, false).into()]
            }
            8 => vec![Bytes::from(vec![0x4f, 1, 2])],
            _ => vec![Bytes::from(rand_key(rng).to_vec()), Bytes::from(vec![0u8])],
        })
        .collect();
    GetTrieNodes { request_id: id, root: fx.roots[0], paths, response_bytes: pick_budget(rng) }
}

fn gen_headers_req(rng: &mut ChaCha8Rng, id: u64) -> GetBlockHeaders {
    GetBlockHeaders {
        request_id: id,
        start: rng.random_range(0..14),
        limit: rng.random_range(0..16),
        skip: if rng.random_bool(0.6) { 0 } else { rng.random_range(1..4) },
        reverse: rng.random_bool(0.3),
    }
}

fn gen_bodies_req(fx: &Fixture, rng: &mut ChaCha8Rng, id: u64) -> GetBlockBodies {
    let hashes = (0..rng.random_range(1..8))
        .map(|_| {
            if rng.random_bool(0.8) {
                fx.chain.headers[rng.random_range(0..fx.chain.headers.len())].hash()
            } else {
                rand_key(rng)
            }
        })
        .collect();
    GetBlockBodies { request_id: id, hashes }
}

fn random_request(fx: &Fixture, rng: &mut ChaCha8Rng, id: u64) -> Message {
    match rng.random_range(0..12) {
        0..=2 => gen_account_req(fx, rng, id).into(),
        3..=5 => gen_storage_req(fx, rng, id).into(),
        6..=7 => gen_codes_req(fx, rng, id).into(),
        8 => gen_trie_req(fx, rng, id).into(),
        9..=10 => gen_headers_req(rng, id).into(),
        _ => gen_bodies_req(fx, rng, id).into(),
    }
}

/// Encodes and decodes a reply with the default limits: it must come back unchanged.
fn round_trip(msg: &Message) {
    let bytes = msg.encode();
    assert!(bytes.len() <= Limits::DEFAULT_MAX_MESSAGE_BYTES, "{} bytes", bytes.len());
    let back = Message::decode(&bytes, &Limits::default()).expect("reply decodes");
    assert_eq!(&back, msg);
}

fn serve(peer: &mut PeerServer, fx: &Fixture, head: u64, req: &Message) -> Option<Message> {
    let reply = peer.serve(&fx.chain, &fx.has_root(), head, req);
    if let Some(reply) = &reply {
        assert_eq!(reply.request_id(), req.request_id());
        assert_eq!(reply.code(), req.code() + 1);
        round_trip(reply);
    }
    reply
}

fn full_values(reply: &AccountRange) -> Result<Vec<Vec<u8>>, String> {
    reply
        .accounts
        .iter()
        .map(|a| Account::decode_slim(&a.body).map(|acc| acc.encode_full()).map_err(|e| e.to_string()))
        .collect()
}

/// Verifies an account reply as a client does; `Ok(None)` = empty ("root unavailable"),
/// `Ok(Some(has_more))` otherwise.
fn verify_accounts(req: &GetAccountRange, reply: &AccountRange) -> Result<Option<bool>, String> {
    if reply.accounts.is_empty() && reply.proof.is_empty() {
        return Ok(None);
    }
    let keys: Vec<B256> = reply.accounts.iter().map(|a| a.hash).collect();
    let values = full_values(reply)?;
    verify_range(req.root, &req.starting_hash, &keys, &values, &reply.proof)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Verifies a storage reply as a client does: earlier sets whole, the last one against the proof.
/// Returns the last set's has_more (`None` for an empty reply).
fn verify_storage(
    fx: &Fixture,
    req: &GetStorageRanges,
    reply: &StorageRanges,
) -> Result<Option<bool>, String> {
    if reply.slots.is_empty() {
        return if reply.proof.is_empty() { Ok(None) } else { Err("proof without sets".into()) };
    }
    if reply.slots.len() > req.account_hashes.len() {
        return Err("more sets than accounts".into());
    }
    let model = fx.model(&req.root);
    let mut has_more = false;
    for (i, set) in reply.slots.iter().enumerate() {
        let root = model.storage_root(&req.account_hashes[i]);
        let origin = if i == 0 { req.starting_hash.unwrap_or_default() } else { B256::ZERO };
        let last = i + 1 == reply.slots.len();
        let proof: &[Bytes] = if last { &reply.proof } else { &[] };
        let keys: Vec<B256> = set.iter().map(|s| s.hash).collect();
        let values: Vec<&[u8]> = set.iter().map(|s| &s.data[..]).collect();
        has_more = verify_range(root, &origin, &keys, &values, proof).map_err(|e| format!("set {i}: {e}"))?;
    }
    Ok(Some(has_more))
}

/// Whether each item of `got` maps to a distinct entry of `wanted`, in order (gaps allowed).
fn is_ordered_subsequence(got: &[B256], wanted: &[B256]) -> bool {
    let mut it = wanted.iter();
    got.iter().all(|g| it.any(|w| w == g))
}

fn code_hash(code: &[u8]) -> B256 {
    if code.is_empty() {
        EMPTY_CODE
    } else {
        keccak256(code)
    }
}

fn verify_codes(req: &GetByteCodes, reply: &ByteCodes) -> Result<(), String> {
    let got: Vec<B256> = reply.codes.iter().map(|c| code_hash(c)).collect();
    is_ordered_subsequence(&got, &req.hashes)
        .then_some(())
        .ok_or_else(|| "codes do not hash to requests".into())
}

/// The node hash expected at each requested path (as a client tracks them), in request order.
fn expected_nodes(fx: &Fixture, req: &GetTrieNodes) -> Vec<B256> {
    let mut out = Vec::new();
    let decode = |p: &Bytes| syncsim_node::trie::nibbles::hex_prefix_decode(p).map(|(n, _)| n);
    for set in &req.paths {
        if set.len() == 1 {
            if let Some(h) = decode(&set[0]).and_then(|p| fx.account_nodes.get(&p)) {
                out.push(*h);
            }
        } else if set[0].len() == 32 {
            let account = B256::from_slice(&set[0]);
            for p in &set[1..] {
                if let Some(h) = decode(p).and_then(|p| fx.storage_nodes.get(&(account, p))) {
                    out.push(*h);
                }
            }
        }
    }
    out
}

fn verify_nodes(fx: &Fixture, req: &GetTrieNodes, reply: &TrieNodes) -> Result<(), String> {
    let got: Vec<B256> = reply.nodes.iter().map(keccak256).collect();
    let wanted = expected_nodes(fx, req);
    is_ordered_subsequence(&got, &wanted).then_some(()).ok_or_else(|| "nodes do not hash to requests".into())
}

fn verify_headers(fx: &Fixture, req: &GetBlockHeaders, reply: &BlockHeaders) -> Result<(), String> {
    let step = req.skip + 1;
    for (i, h) in reply.headers.iter().enumerate() {
        let n = if req.reverse { req.start - i as u64 * step } else { req.start + i as u64 * step };
        if h.number != n || h.hash() != fx.chain.headers[n as usize].hash() {
            return Err(format!("header {i} is not canonical block {n}"));
        }
        if i > 0 && req.skip == 0 {
            let prev = &reply.headers[i - 1];
            let linked =
                if req.reverse { prev.parent_hash == h.hash() } else { h.parent_hash == prev.hash() };
            if !linked {
                return Err(format!("header {i} does not link"));
            }
        }
    }
    Ok(())
}

fn verify_bodies(fx: &Fixture, req: &GetBlockBodies, reply: &BlockBodies) -> Result<(), String> {
    let wanted: Vec<B256> = req
        .hashes
        .iter()
        .map(|h| fx.chain.headers.iter().find(|x| x.hash() == *h).map_or(B256::ZERO, |x| x.body_hash))
        .collect();
    let got: Vec<B256> = reply.bodies.iter().map(|b| b.hash()).collect();
    is_ordered_subsequence(&got, &wanted).then_some(()).ok_or_else(|| "bodies do not match headers".into())
}

/// Client-side validity of any reply to `req`.
fn verify(fx: &Fixture, req: &Message, reply: &Message) -> Result<(), String> {
    match (req, reply) {
        (Message::GetAccountRange(q), Message::AccountRange(r)) => verify_accounts(q, r).map(|_| ()),
        (Message::GetStorageRanges(q), Message::StorageRanges(r)) => verify_storage(fx, q, r).map(|_| ()),
        (Message::GetByteCodes(q), Message::ByteCodes(r)) => verify_codes(q, r),
        (Message::GetTrieNodes(q), Message::TrieNodes(r)) => verify_nodes(fx, q, r),
        (Message::GetBlockHeaders(q), Message::BlockHeaders(r)) => verify_headers(fx, q, r),
        (Message::GetBlockBodies(q), Message::BlockBodies(r)) => verify_bodies(fx, q, r),
        _ => Err("reply of the wrong kind".into()),
    }
}

fn account_size(reply: &AccountRange) -> Vec<u64> {
    reply.accounts.iter().map(|a| 32 + a.body.len() as u64).collect()
}

fn eff_budget(requested: u64) -> u64 {
    requested.clamp(1, SOFT_RESPONSE_LIMIT)
}

// ---------------------------------------------------------------------------------------------
// Honest serving
// ---------------------------------------------------------------------------------------------

#[test]
fn honest_account_ranges_verify() {
    let fx = fixture();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut peer = PeerServer::new(&[Honest], 7);
    for id in 0..600 {
        let req = gen_account_req(&fx, &mut rng, id);
        let Some(Message::AccountRange(reply)) = serve(&mut peer, &fx, 11, &req.clone().into()) else {
            panic!("no account reply")
        };
        let model = fx.model(&req.root);
        let after: Vec<(&B256, &Account)> = model.accounts.range(req.starting_hash..).collect();
        let has_more = verify_accounts(&req, &reply).unwrap_or_else(|e| panic!("{req:?}: {e}"));
        let Some(has_more) = has_more else { panic!("empty reply for a held root: {req:?}") };
        // Exactly the model's accounts from the origin, in order.
        for (a, (k, acc)) in reply.accounts.iter().zip(&after) {
            assert_eq!((&a.hash, Account::decode_slim(&a.body).unwrap()), (*k, **acc));
        }
        assert_eq!(reply.accounts.is_empty(), after.is_empty());
        assert_eq!(has_more, after.len() > reply.accounts.len());
        // No proof exactly for the whole trie from zero.
        assert_eq!(reply.proof.is_empty(), req.starting_hash.is_zero() && !has_more, "{req:?}");
        // Stop rule: stops after the first key >= limit or once the size exceeds the budget.
        let sizes = account_size(&reply);
        let budget = eff_budget(req.response_bytes);
        let n = reply.accounts.len();
        if n > 0 {
            assert!(sizes[..n - 1].iter().sum::<u64>() <= budget);
            assert!(reply.accounts[..n - 1].iter().all(|a| a.hash < req.limit_hash));
            if has_more {
                assert!(reply.accounts[n - 1].hash >= req.limit_hash || sizes.iter().sum::<u64>() > budget);
            }
        }
        if req.response_bytes <= 1 && !after.is_empty() {
            assert_eq!(n, 1);
        }
    }
    assert_eq!(peer.served(), 600);
}

#[test]
fn account_walk_reassembles_every_account() {
    let fx = fixture();
    let mut peer = PeerServer::new(&[], 0);
    for (root, model) in fx.roots.iter().zip(&fx.models) {
        for budget in [0, 700, 5000, 10 * MIB] {
            let mut got = BTreeMap::new();
            let mut origin = Some(B256::ZERO);
            let mut requests = 0;
            while let Some(start) = origin {
                let req = GetAccountRange {
                    request_id: requests,
                    root: *root,
                    starting_hash: start,
                    limit_hash: MAX_KEY,
                    response_bytes: budget,
                };
                requests += 1;
                let Some(Message::AccountRange(reply)) = serve(&mut peer, &fx, 0, &req.clone().into()) else {
                    panic!()
                };
                let has_more = verify_accounts(&req, &reply).unwrap().expect("non-empty");
                for a in &reply.accounts {
                    assert!(got.insert(a.hash, Account::decode_slim(&a.body).unwrap()).is_none());
                }
                origin = if has_more { next_key(&reply.accounts.last().unwrap().hash) } else { None };
            }
            assert_eq!(got, model.accounts);
            if budget == 10 * MIB {
                assert_eq!(requests, 1);
            }
        }
    }
}

#[test]
fn honest_storage_ranges_verify() {
    let fx = fixture();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut peer = PeerServer::new(&[Honest], 7);
    for id in 0..800 {
        let req = gen_storage_req(&fx, &mut rng, id);
        let Some(Message::StorageRanges(reply)) = serve(&mut peer, &fx, 11, &req.clone().into()) else {
            panic!("no storage reply")
        };
        let model = fx.model(&req.root);
        let has_more = verify_storage(&fx, &req, &reply).unwrap_or_else(|e| panic!("{req:?}: {e}"));
        let Some(has_more) = has_more else { panic!("empty reply for held root and accounts") };
        let last = reply.slots.len() - 1;
        // Each set is the model's slots from its origin, in order; whole sets are complete.
        for (i, set) in reply.slots.iter().enumerate() {
            let origin = if i == 0 { req.starting_hash.unwrap_or_default() } else { B256::ZERO };
            let want: Vec<(B256, Vec<u8>)> =
                model.slots(&req.account_hashes[i]).into_iter().filter(|(k, _)| *k >= origin).collect();
            let got: Vec<(B256, Vec<u8>)> = set.iter().map(|s| (s.hash, s.data.to_vec())).collect();
            assert_eq!(&want[..got.len()], &got[..]);
            if i < last {
                assert_eq!(got.len(), want.len());
                assert!(origin.is_zero() || model.storage_root(&req.account_hashes[i]) == EMPTY_ROOT);
            } else {
                assert_eq!(has_more, want.len() > got.len());
            }
        }
        // A proof exactly when the last set is partial.
        let first_origin = req.starting_hash.unwrap_or_default();
        let last_partial = has_more
            || (last == 0
                && !first_origin.is_zero()
                && model.storage_root(&req.account_hashes[0]) != EMPTY_ROOT);
        assert_eq!(!reply.proof.is_empty(), last_partial, "{req:?}");
        // Budget: no account started past the budget, hard cut at 1.1 x inside a trie.
        let budget = eff_budget(req.response_bytes);
        let hard = budget + budget / 10;
        let mut size = 0u64;
        for (i, set) in reply.slots.iter().enumerate() {
            assert!(i == 0 || size < budget, "set {i} started at {size} >= {budget}");
            for s in set {
                assert!(size < hard);
                size += 32 + s.data.len() as u64;
            }
        }
        if reply.slots.len() < req.account_hashes.len() {
            assert!(!reply.proof.is_empty() || size >= budget);
        }
        if req.response_bytes <= 1 && !reply.slots[0].is_empty() {
            assert_eq!(reply.slots.iter().map(Vec::len).sum::<usize>(), 1);
        }
    }
}

#[test]
fn storage_walk_reassembles_every_trie() {
    let fx = fixture();
    let mut peer = PeerServer::new(&[], 0);
    for (root, model) in fx.roots.iter().zip(&fx.models) {
        for budget in [1, 3000, 40_000, 10 * MIB] {
            let mut pending: Vec<B256> = model.contracts();
            let mut origin: Option<B256> = None;
            let mut got: BTreeMap<B256, BTreeMap<B256, Vec<u8>>> = BTreeMap::new();
            let mut id = 0;
            while !pending.is_empty() {
                let req = GetStorageRanges {
                    request_id: id,
                    root: *root,
                    account_hashes: pending.iter().take(8).copied().collect(),
                    starting_hash: origin,
                    limit_hash: None,
                    response_bytes: budget,
                };
                id += 1;
                let Some(Message::StorageRanges(reply)) = serve(&mut peer, &fx, 0, &req.clone().into())
                else {
                    panic!()
                };
                let has_more = verify_storage(&fx, &req, &reply).unwrap().expect("non-empty");
                for (i, set) in reply.slots.iter().enumerate() {
                    let m = got.entry(req.account_hashes[i]).or_default();
                    for s in set {
                        assert!(m.insert(s.hash, s.data.to_vec()).is_none());
                    }
                }
                let done = reply.slots.len() - usize::from(has_more);
                origin =
                    if has_more { next_key(&reply.slots.last().unwrap().last().unwrap().hash) } else { None };
                pending.drain(..done);
            }
            assert_eq!(
                got,
                model
                    .storage
                    .iter()
                    .filter(|(k, _)| model.accounts.contains_key(*k))
                    .map(|(k, v)| (*k, v.clone()))
                    .collect::<BTreeMap<_, _>>()
            );
        }
    }
}

#[test]
fn honest_codes_nodes_headers_bodies() {
    let fx = fixture();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut peer = PeerServer::new(&[], 9);
    for id in 0..400 {
        let req = gen_codes_req(&fx, &mut rng, id);
        let Some(Message::ByteCodes(reply)) = serve(&mut peer, &fx, 0, &req.clone().into()) else { panic!() };
        verify_codes(&req, &reply).unwrap();
        let served: Vec<&B256> =
            req.hashes.iter().filter(|h| **h == EMPTY_CODE || fx.chain.codes.contains_key(*h)).collect();
        let sizes: Vec<u64> = reply.codes.iter().map(|c| c.len() as u64).collect();
        let budget = eff_budget(req.response_bytes);
        // Every known code up to the one that passed the budget.
        assert_eq!(
            reply.codes.iter().map(|c| code_hash(c)).collect::<Vec<_>>(),
            served[..reply.codes.len()].iter().map(|h| **h).collect::<Vec<_>>()
        );
        if reply.codes.len() < served.len() {
            assert!(sizes.iter().sum::<u64>() > budget);
        }
        if !sizes.is_empty() {
            assert!(sizes[..sizes.len() - 1].iter().sum::<u64>() <= budget);
        }
    }
    // At most 1024 lookups.
    let req = GetByteCodes { request_id: 1, hashes: vec![EMPTY_CODE; 1024], response_bytes: 10 * MIB };
    let Some(Message::ByteCodes(r)) = serve(&mut peer, &fx, 0, &req.into()) else { panic!() };
    assert_eq!(r.codes.len(), 1024);
    let mut hashes = vec![EMPTY_CODE; 1024];
    hashes.push(fx.code_hashes[0]);
    let req = Message::from(GetByteCodes { request_id: 1, hashes, response_bytes: 10 * MIB });
    let bytes = req.encode();
    let limits = Limits { max_request_items: 2048, ..Limits::default() };
    let req = Message::decode(&bytes, &limits).unwrap();
    let Some(Message::ByteCodes(r)) = serve(&mut peer, &fx, 0, &req) else { panic!() };
    assert_eq!(r.codes.len(), 1024);

    for id in 0..400 {
        let req = gen_trie_req(&fx, &mut rng, id);
        let Some(Message::TrieNodes(reply)) = serve(&mut peer, &fx, 0, &req.clone().into()) else { panic!() };
        let wanted = expected_nodes(&fx, &req);
        let got: Vec<B256> = reply.nodes.iter().map(keccak256).collect();
        assert_eq!(&wanted[..got.len()], &got[..], "{req:?}");
        let budget = eff_budget(req.response_bytes);
        let size: u64 = reply.nodes.iter().map(|n| n.len() as u64).sum();
        if got.len() < wanted.len() {
            assert!(size > budget);
        }
        if let Some(last) = reply.nodes.last() {
            assert!(size - last.len() as u64 <= budget);
        }
    }
    // The account root at the empty path; a storage root under its account.
    let req = GetTrieNodes {
        request_id: 5,
        root: fx.roots[1],
        paths: vec![vec![Bytes::from(vec![0u8])]],
        response_bytes: 0,
    };
    let Some(Message::TrieNodes(r)) = serve(&mut peer, &fx, 0, &req.into()) else { panic!() };
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(keccak256(&r.nodes[0]), fx.roots[1]);

    for id in 0..300 {
        let req = gen_headers_req(&mut rng, id);
        let head = rng.random_range(0..12);
        let Some(Message::BlockHeaders(reply)) = serve(&mut peer, &fx, head, &req.clone().into()) else {
            panic!()
        };
        verify_headers(&fx, &req, &reply).unwrap();
        let step = req.skip + 1;
        let want = (0..req.limit)
            .map_while(
                |i| if req.reverse { req.start.checked_sub(i * step) } else { Some(req.start + i * step) },
            )
            .take_while(|n| *n <= head)
            .count();
        assert_eq!(reply.headers.len(), want, "{req:?} head {head}");
    }
    for id in 0..200 {
        let req = gen_bodies_req(&fx, &mut rng, id);
        let Some(Message::BlockBodies(reply)) = serve(&mut peer, &fx, 11, &req.clone().into()) else {
            panic!()
        };
        verify_bodies(&fx, &req, &reply).unwrap();
        assert_eq!(
            reply.bodies.len(),
            req.hashes.iter().filter(|h| fx.chain.bodies.contains_key(*h)).count()
        );
    }
}

#[test]
fn unknown_roots_and_accounts_give_empty_replies() {
    let fx = fixture();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut peer = PeerServer::new(&[], 0);
    let contract = fx.models[0].contracts()[0];
    let storage_root = fx.models[0].storage_root(&contract);
    for bad in [rand_key(&mut rng), storage_root, EMPTY_ROOT, B256::ZERO] {
        for id in 0..50 {
            let mut req = random_request(&fx, &mut rng, id);
            match &mut req {
                Message::GetAccountRange(r) => r.root = bad,
                Message::GetStorageRanges(r) => r.root = bad,
                Message::GetTrieNodes(r) => r.root = bad,
                _ => continue,
            }
            let reply = serve(&mut peer, &fx, 11, &req).unwrap();
            match reply {
                Message::AccountRange(r) => assert!(r.accounts.is_empty() && r.proof.is_empty()),
                Message::StorageRanges(r) => assert!(r.slots.is_empty() && r.proof.is_empty()),
                Message::TrieNodes(r) => assert!(r.nodes.is_empty()),
                other => panic!("{other:?}"),
            }
        }
    }
    // One unknown account among known ones.
    let mut req = gen_storage_req(&fx, &mut rng, 1);
    req.account_hashes.push(rand_key(&mut rng));
    let Some(Message::StorageRanges(r)) = serve(&mut peer, &fx, 11, &req.into()) else { panic!() };
    assert!(r.slots.is_empty() && r.proof.is_empty());
    // Announcements and replies are not requests.
    let not_requests = [
        Message::from(AccountRange { request_id: 1, accounts: vec![], proof: vec![] }),
        Message::from(ByteCodes { request_id: 1, codes: vec![] }),
        Message::from(syncsim_node::codec::NewBlockHashes(vec![])),
    ];
    for m in &not_requests {
        assert!(peer.serve(&fx.chain, &fx.has_root(), 11, m).is_none());
    }
}

#[test]
fn starting_past_the_end_and_inverted_limits() {
    let fx = fixture();
    let mut peer = PeerServer::new(&[], 0);
    let root = fx.roots[0];
    let keys: Vec<B256> = fx.models[0].accounts.keys().copied().collect();
    // start = 0xff..ff, limit = 0: nothing, with a proof of absence.
    let req = GetAccountRange {
        request_id: 1,
        root,
        starting_hash: MAX_KEY,
        limit_hash: B256::ZERO,
        response_bytes: 1000,
    };
    let Some(Message::AccountRange(r)) = serve(&mut peer, &fx, 0, &req.clone().into()) else { panic!() };
    assert!(r.accounts.is_empty() && !r.proof.is_empty());
    assert_eq!(verify_accounts(&req, &r), Ok(Some(false)));
    // limit < start: the first account at/after start only.
    let req = GetAccountRange {
        request_id: 2,
        root,
        starting_hash: keys[10],
        limit_hash: keys[3],
        response_bytes: 10 * MIB,
    };
    let Some(Message::AccountRange(r)) = serve(&mut peer, &fx, 0, &req.clone().into()) else { panic!() };
    assert_eq!(r.accounts.len(), 1);
    assert_eq!(r.accounts[0].hash, keys[10]);
    assert_eq!(verify_accounts(&req, &r), Ok(Some(true)));
}

/// A state bigger than the 2 MiB soft limit in every dimension.
fn big_fixture() -> (TestChain, B256, B256, Vec<B256>) {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut chain = TestChain::default();
    let slots: Vec<(B256, Vec<u8>)> = storage_leaves(&mut rng, 70_000).into_iter().collect();
    let sroot = insert_trie(&mut chain.nodes, &slots, &mut |_, _| {});
    let mut codes = Vec::new();
    for i in 0..120u32 {
        let code: Bytes = (0..24 * 1024).map(|j| (i * 7 + j) as u8).collect::<Vec<u8>>().into();
        codes.push(keccak256(&code));
        chain.codes.insert(keccak256(&code), code);
    }
    let mut accounts: BTreeMap<B256, Vec<u8>> = (0..70_000u64)
        .map(|i| {
            (
                rand_key(&mut rng),
                Account { nonce: i, balance: U256::from(i), ..Default::default() }.encode_full(),
            )
        })
        .collect();
    let contract = rand_key(&mut rng);
    accounts.insert(
        contract,
        Account { storage_root: sroot, code_hash: codes[0], ..Default::default() }.encode_full(),
    );
    let leaves: Vec<(B256, Vec<u8>)> = accounts.into_iter().collect();
    let root = insert_trie(&mut chain.nodes, &leaves, &mut |_, _| {});
    (chain, root, contract, codes)
}

#[test]
fn budgets_clamp_at_two_mib() {
    let (chain, root, contract, codes) = big_fixture();
    let has_root = |r: &B256| *r == root;
    let mut peer = PeerServer::new(&[], 0);
    let mut ask = |req: Message| {
        let reply = peer.serve(&chain, &has_root, 0, &req).unwrap();
        round_trip(&reply);
        reply
    };
    for bytes in [2 * MIB, 10 * MIB, u64::MAX] {
        let Message::AccountRange(r) = ask(GetAccountRange {
            request_id: 1,
            root,
            starting_hash: B256::ZERO,
            limit_hash: MAX_KEY,
            response_bytes: bytes,
        }
        .into()) else {
            panic!()
        };
        let sizes = account_size(&r);
        let total: u64 = sizes.iter().sum();
        assert!(total > SOFT_RESPONSE_LIMIT && total - sizes.last().unwrap() <= SOFT_RESPONSE_LIMIT);
        assert!(!r.proof.is_empty());

        let Message::StorageRanges(r) = ask(GetStorageRanges {
            request_id: 2,
            root,
            account_hashes: vec![contract, contract],
            starting_hash: None,
            limit_hash: None,
            response_bytes: bytes,
        }
        .into()) else {
            panic!()
        };
        assert_eq!(r.slots.len(), 1);
        let sizes: Vec<u64> = r.slots[0].iter().map(|s| 32 + s.data.len() as u64).collect();
        let total: u64 = sizes.iter().sum();
        let hard = SOFT_RESPONSE_LIMIT + SOFT_RESPONSE_LIMIT / 10;
        assert!(total >= hard && total - sizes.last().unwrap() < hard, "{total}");
        assert!(!r.proof.is_empty());

        let Message::ByteCodes(r) =
            ask(GetByteCodes { request_id: 3, hashes: codes.clone(), response_bytes: bytes }.into())
        else {
            panic!()
        };
        let total: u64 = r.codes.iter().map(|c| c.len() as u64).sum();
        assert!(total > SOFT_RESPONSE_LIMIT && total - 24 * 1024 <= SOFT_RESPONSE_LIMIT);
    }
}

// ---------------------------------------------------------------------------------------------
// Misbehaviours
// ---------------------------------------------------------------------------------------------

/// Serves the same random requests to an honest peer and to one with `behaviours`, and hands
/// each pair of replies to `check`.
fn compare(
    behaviours: &[Behaviour],
    n: u64,
    mut check: impl FnMut(&Fixture, &Message, &Message, Option<&Message>),
) {
    let fx = fixture();
    let mut rng = ChaCha8Rng::seed_from_u64(0xbad);
    let mut honest = PeerServer::new(&[], 1);
    let mut peer = PeerServer::new(behaviours, 2);
    for id in 0..n {
        let req = random_request(&fx, &mut rng, id);
        let good = serve(&mut honest, &fx, 11, &req).expect("honest replies");
        verify(&fx, &req, &good).unwrap_or_else(|e| panic!("honest reply invalid: {e}: {req:?}"));
        let bad = serve(&mut peer, &fx, 11, &req);
        check(&fx, &req, &good, bad.as_ref());
    }
}

fn range_items(m: &Message) -> usize {
    match m {
        Message::AccountRange(r) => r.accounts.len(),
        Message::StorageRanges(r) => r.slots.iter().map(Vec::len).sum(),
        _ => 0,
    }
}

fn proof_len(m: &Message) -> usize {
    match m {
        Message::AccountRange(r) => r.proof.len(),
        Message::StorageRanges(r) => r.proof.len(),
        _ => 0,
    }
}

#[test]
fn network_level_behaviours_serve_honestly() {
    for b in [Honest, Slow, Stale, Liar, Flapping, DuplicateBlocks] {
        compare(&[b], 300, |_, _, good, bad| assert_eq!(Some(good), bad, "{b:?}"));
    }
}

#[test]
fn unresponsive_never_replies() {
    let fx = fixture();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut peer = PeerServer::new(&[Unresponsive, WrongValue], 2);
    for id in 0..200 {
        assert!(serve(&mut peer, &fx, 11, &random_request(&fx, &mut rng, id)).is_none());
    }
    assert_eq!(peer.served(), 0);
}

#[test]
fn empty_peer_lacks_state_but_serves_blocks() {
    let mut count = 0;
    compare(&[Empty], 300, |_, req, good, bad| {
        let bad = bad.unwrap();
        match bad {
            Message::AccountRange(r) => assert!(r.accounts.is_empty() && r.proof.is_empty()),
            Message::StorageRanges(r) => assert!(r.slots.is_empty() && r.proof.is_empty()),
            Message::ByteCodes(r) => assert!(r.codes.is_empty()),
            Message::TrieNodes(r) => assert!(r.nodes.is_empty()),
            _ => {
                assert_eq!(good, bad, "{req:?}");
                count += 1;
            }
        }
    });
    assert!(count > 50);
}

#[test]
fn starving_caps_snap_replies_at_500_bytes() {
    let mut smaller = 0;
    compare(&[Starving], 400, |fx, req, good, bad| {
        let bad = bad.unwrap();
        verify(fx, req, bad).unwrap();
        let size = |m: &Message| -> (u64, u64) {
            // (total, total without the last item)
            let items: Vec<u64> = match m {
                Message::AccountRange(r) => account_size(r),
                Message::StorageRanges(r) => {
                    r.slots.iter().flatten().map(|s| 32 + s.data.len() as u64).collect()
                }
                Message::ByteCodes(r) => r.codes.iter().map(|c| c.len() as u64).collect(),
                Message::TrieNodes(r) => r.nodes.iter().map(|n| n.len() as u64).collect(),
                _ => vec![],
            };
            let total = items.iter().sum();
            (total, total - items.last().copied().unwrap_or(0))
        };
        let (total, before_last) = size(bad);
        match bad {
            Message::BlockHeaders(_) | Message::BlockBodies(_) => assert_eq!(good, bad),
            Message::StorageRanges(_) => assert!(before_last < 550, "{before_last}"),
            _ => assert!(before_last <= 500, "{before_last}"),
        }
        if size(good).0 > total {
            smaller += 1;
        }
    });
    assert!(smaller > 50, "{smaller}");
}

#[test]
fn capped_code_sends_one_code() {
    let mut capped = 0;
    compare(&[CappedCode], 300, |fx, req, good, bad| {
        let bad = bad.unwrap();
        verify(fx, req, bad).unwrap();
        match (good, bad) {
            (Message::ByteCodes(g), Message::ByteCodes(b)) => {
                assert_eq!(b.codes, g.codes.iter().take(1).cloned().collect::<Vec<_>>());
                capped += usize::from(g.codes.len() > 1);
            }
            _ => assert_eq!(good, bad),
        }
    });
    assert!(capped > 20);
}

#[test]
fn corrupt_code_sends_garbage() {
    let mut n = 0;
    compare(&[CorruptCode], 300, |_, req, good, bad| {
        let bad = bad.unwrap();
        match (req, good, bad) {
            (Message::GetByteCodes(q), Message::ByteCodes(g), Message::ByteCodes(b)) => {
                assert_eq!(g.codes.len(), b.codes.len());
                for (gc, bc) in g.codes.iter().zip(&b.codes) {
                    assert!(!q.hashes.contains(&code_hash(bc)));
                    assert!(bc.len() == gc.len() || gc.is_empty());
                    n += 1;
                }
            }
            _ => assert_eq!(good, bad),
        }
    });
    assert!(n > 100);
}

/// For the range-proof misbehaviours: a reply to a range request that the honest peer answers
/// with at least `min_items` items must fail verification; other kinds are served honestly.
fn assert_ranges_fail(
    b: Behaviour,
    min_items: usize,
    needs_proof: bool,
    mut extra: impl FnMut(&Message, &Message),
) -> usize {
    let mut failed = 0;
    compare(&[b], 600, |fx, req, good, bad| {
        let bad = bad.unwrap();
        match bad {
            Message::AccountRange(_) | Message::StorageRanges(_) => {
                extra(good, bad);
                let applies = range_items(good) >= min_items && (!needs_proof || proof_len(good) > 0);
                if applies && !gap_exempt(b, good) {
                    assert!(verify(fx, req, bad).is_err(), "{b:?} reply verifies: {req:?}\n{bad:?}");
                    failed += 1;
                }
            }
            // wrong-value alters bodies too (checked separately).
            Message::BlockBodies(_) if b == WrongValue => {}
            _ => assert_eq!(good, bad),
        }
    });
    failed
}

/// gapped-range needs a run of >= 3 keys in one set (storage) or in the reply (accounts).
fn gap_exempt(b: Behaviour, good: &Message) -> bool {
    match (b, good) {
        (GappedRange, Message::StorageRanges(r)) => r.slots.iter().all(|s| s.len() < 3),
        (GappedRange, Message::AccountRange(r)) => r.accounts.len() < 3,
        _ => false,
    }
}

#[test]
fn corrupt_proof_fails_verification() {
    let n = assert_ranges_fail(CorruptProof, 0, true, |good, bad| {
        assert_eq!(range_items(good), range_items(bad));
        match proof_len(good) {
            0 => assert_eq!(proof_len(bad), 0),
            1 => assert_eq!(proof_len(bad), 1),
            n => assert_eq!(proof_len(bad), n - 1),
        }
    });
    assert!(n > 100, "{n}");
}

#[test]
fn missing_proof_fails_verification() {
    let n = assert_ranges_fail(MissingProof, 1, false, |_, bad| {
        assert_eq!(proof_len(bad), 0);
    });
    assert!(n > 100, "{n}");
}

#[test]
fn gapped_range_fails_verification() {
    let n = assert_ranges_fail(GappedRange, 3, false, |good, bad| {
        assert_eq!(proof_len(good), proof_len(bad));
        if !gap_exempt(GappedRange, good) {
            assert_eq!(range_items(bad), range_items(good) - 1);
        }
    });
    assert!(n > 100, "{n}");
}

#[test]
fn wrong_value_fails_verification() {
    let n = assert_ranges_fail(WrongValue, 1, false, |good, bad| {
        assert_eq!(proof_len(good), proof_len(bad));
        assert_eq!(range_items(good), range_items(bad));
    });
    assert!(n > 100, "{n}");
    // Bodies too.
    let fx = fixture();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let mut peer = PeerServer::new(&[WrongValue], 3);
    for id in 0..100 {
        let req = gen_bodies_req(&fx, &mut rng, id);
        let Some(Message::BlockBodies(r)) = serve(&mut peer, &fx, 11, &req.clone().into()) else { panic!() };
        if !r.bodies.is_empty() {
            assert!(verify_bodies(&fx, &req, &r).is_err());
        }
    }
}

#[test]
fn bloated_proof_still_verifies() {
    let mut bloated = 0;
    compare(&[BloatedProof], 600, |fx, req, good, bad| {
        let bad = bad.unwrap();
        match (req, good, bad) {
            (Message::GetAccountRange(q), Message::AccountRange(g), Message::AccountRange(b)) => {
                assert_eq!(g.accounts, b.accounts);
                assert_eq!(verify_accounts(q, g), verify_accounts(q, b));
                assert!(b.proof.len() >= g.proof.len() && b.proof.len() <= MAX_PROOF_NODES);
                bloated += usize::from(b.proof.len() > g.proof.len());
            }
            (Message::GetStorageRanges(q), Message::StorageRanges(g), Message::StorageRanges(b)) => {
                assert_eq!(g.slots, b.slots);
                assert_eq!(verify_storage(fx, q, g), verify_storage(fx, q, b));
                assert!(b.proof.len() >= g.proof.len() && b.proof.len() <= MAX_PROOF_NODES);
                bloated += usize::from(b.proof.len() > g.proof.len());
            }
            _ => assert_eq!(good, bad),
        }
    });
    assert!(bloated > 100, "{bloated}");
}

#[test]
fn bad_headers_break_links() {
    let fx = fixture();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut peer = PeerServer::new(&[BadHeaders], 3);
    let mut broken = 0;
    for id in 0..300 {
        let mut req = gen_headers_req(&mut rng, id);
        req.skip = 0;
        let Some(Message::BlockHeaders(r)) = serve(&mut peer, &fx, 11, &req.clone().into()) else { panic!() };
        if r.headers.is_empty() {
            continue;
        }
        assert!(verify_headers(&fx, &req, &r).is_err());
        for w in r.headers.windows(2) {
            let linked =
                if req.reverse { w[0].parent_hash == w[1].hash() } else { w[1].parent_hash == w[0].hash() };
            assert!(!linked);
            broken += 1;
        }
    }
    assert!(broken > 100);
}

#[test]
fn combined_behaviours_and_determinism() {
    let fx = fixture();
    let mix = [GappedRange, CorruptProof, BloatedProof, Starving, CappedCode, BadHeaders];
    let mut a = PeerServer::new(&mix, 42);
    let mut b = PeerServer::new(
        &[BadHeaders, CappedCode, Starving, BloatedProof, CorruptProof, GappedRange, Starving],
        42,
    );
    assert_eq!(a.behaviours(), b.behaviours());
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for id in 0..300 {
        let req = random_request(&fx, &mut rng, id);
        let ra = serve(&mut a, &fx, 11, &req);
        assert_eq!(ra, serve(&mut b, &fx, 11, &req));
        // corrupt-proof drops an edge node even when the proof is bloated.
        if let Some(m @ (Message::AccountRange(_) | Message::StorageRanges(_))) = &ra {
            if proof_len(m) > 0 {
                assert!(verify(&fx, &req, m).is_err(), "{req:?}");
            }
        }
    }
    assert_eq!(a.served(), 300);
}

#[test]
fn hostile_classification() {
    let hostile = [CorruptCode, CorruptProof, MissingProof, GappedRange, WrongValue, BadHeaders, Liar];
    let all = [
        Honest,
        Empty,
        Unresponsive,
        Slow,
        Starving,
        CappedCode,
        CorruptCode,
        CorruptProof,
        MissingProof,
        BloatedProof,
        GappedRange,
        WrongValue,
        Stale,
        Liar,
        DuplicateBlocks,
        BadHeaders,
        Flapping,
    ];
    for b in all {
        assert_eq!(is_hostile(b), hostile.contains(&b), "{b:?}");
    }
}

#[test]
fn embedded_leaves_are_served_and_verified() {
    // The 40-slot contract with tiny values under a long shared prefix: inline nodes in proofs.
    let fx = fixture();
    let model = &fx.models[0];
    let contract = fx.embedded;
    let keys: Vec<B256> = model.storage[&contract].keys().copied().collect();
    let mut peer = PeerServer::new(&[], 0);
    for budget in [1, 100, 400] {
        for origin in [None, Some(keys[5]), Some(next_key(&keys[5]).unwrap())] {
            let req = GetStorageRanges {
                request_id: 1,
                root: fx.roots[0],
                account_hashes: vec![contract],
                starting_hash: origin,
                limit_hash: None,
                response_bytes: budget,
            };
            let Some(Message::StorageRanges(r)) = serve(&mut peer, &fx, 0, &req.clone().into()) else {
                panic!()
            };
            assert!(verify_storage(&fx, &req, &r).unwrap().unwrap());
        }
    }
    // The trie really has inline nodes: fewer hashed nodes than leaves under the prefix.
    let hashed = fx.storage_nodes.keys().filter(|(a, _)| *a == contract).count();
    assert!(hashed < keys.len(), "{hashed}");
    assert_eq!(unpack(&keys[0])[..62], unpack(&keys[1])[..62]);
}

/// Serving from the chain's flat state gives byte-identical replies to walking the trie, at the
/// head (live state, after blocks) and at genesis, for whole, partial and continued ranges.
#[test]
fn flat_serving_equals_trie_serving() {
    use crate::chain::{synthetic_state, Chain, ChainParams, SyntheticSpec};
    use syncsim_node::codec::{GetAccountRange, GetStorageRanges};
    let spec = SyntheticSpec {
        accounts: 1_500,
        contracts: 60,
        storage_slots: 6_000,
        storage_skew: 1.1,
        code_size: (50, 300),
        unique_codes: 10,
        boundary_keys: false,
    };
    let mut chain = Chain::new(
        synthetic_state(&spec, 3),
        ChainParams { changes_per_block: 40, block_time_ms: 12_000 },
        3,
    );
    chain.produce_blocks(6);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for root in [chain.state_root(6).unwrap(), chain.state_root(0).unwrap()] {
        let flat = chain.flat_state(&root).expect("head and genesis are held flat");
        assert!(chain.flat_state(&chain.state_root(3).unwrap()).is_none());
        let contracts: Vec<B256> =
            flat.accounts.iter().filter(|(_, a)| !a.storage.is_empty()).map(|(k, _)| *k).collect();
        for budget in [1, 500, 20_000, 2 << 20] {
            let origin = rand_key(&mut rng);
            let req = GetAccountRange {
                request_id: 1,
                root,
                starting_hash: origin,
                limit_hash: B256::repeat_byte(0xff),
                response_bytes: budget,
            };
            let a = serve::account_range(&chain, Some(flat), &req, budget).unwrap();
            let b = serve::account_range(&chain, None, &req, budget).unwrap();
            assert_eq!((a.reply, a.root, a.origin), (b.reply, b.root, b.origin));
            let start = rng.random_range(0..contracts.len() - 4);
            let req = GetStorageRanges {
                request_id: 2,
                root,
                account_hashes: contracts[start..start + 4].to_vec(),
                starting_hash: (budget == 500).then(|| rand_key(&mut rng)),
                limit_hash: None,
                response_bytes: budget,
            };
            let a = serve::storage_ranges(&chain, Some(flat), &req, budget).unwrap();
            let b = serve::storage_ranges(&chain, None, &req, budget).unwrap();
            assert_eq!((a.reply, a.roots, a.last_origin), (b.reply, b.roots, b.last_origin));
        }
    }
}
