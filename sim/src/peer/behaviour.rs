//! The content misbehaviours: each turns an honest reply into one that is wrong (or
//! needlessly bloated) in exactly the way its name says. Randomness comes from the peer's rng.

use super::serve::{AccountServed, StorageServed};
use super::MAX_PROOF_NODES;
use alloy_primitives::{Bytes, B256, U256};
use alloy_rlp::Decodable;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use syncsim_node::account::Account;
use syncsim_node::codec::{AccountChange, BlockBody, Header, StorageData};
use syncsim_node::primitives::EMPTY_CODE;
use syncsim_node::trie::root::root_from_sorted;
use syncsim_node::trie::walk::prove;
use syncsim_node::trie::{prove_range, MemNodes};

/// gapped-range: removes one item strictly inside a run of at least 3 (the edges stay, so the
/// proof still matches the reply's first and last keys).
pub(super) fn gap<T>(items: &mut Vec<T>, rng: &mut ChaCha8Rng) -> bool {
    if items.len() < 3 {
        return false;
    }
    let i = rng.random_range(1..items.len() - 1);
    items.remove(i);
    true
}

/// The set gapped-range and wrong-value pick in a storage reply: the last (proved) set if it
/// qualifies, else the first that does.
fn pick_set(slots: &[Vec<StorageData>], min_len: usize) -> Option<usize> {
    let last = slots.len().checked_sub(1)?;
    if slots[last].len() >= min_len {
        return Some(last);
    }
    slots.iter().position(|s| s.len() >= min_len)
}

/// gapped-range on a storage reply.
pub(super) fn gap_storage(served: &mut StorageServed, rng: &mut ChaCha8Rng) {
    if let Some(i) = pick_set(&served.reply.slots, 3) {
        gap(&mut served.reply.slots[i], rng);
    }
}

/// wrong-value on an account reply: one account's balance changes (the body stays well-formed).
pub(super) fn wrong_account(served: &mut AccountServed, rng: &mut ChaCha8Rng) {
    let accounts = &mut served.reply.accounts;
    if accounts.is_empty() {
        return;
    }
    let i = rng.random_range(0..accounts.len());
    let entry = &mut accounts[i];
    entry.body = match Account::decode_slim(&entry.body) {
        Ok(mut account) => {
            account.balance = bump(account.balance);
            account.encode_slim().into()
        }
        Err(_) => flip_last(&entry.body),
    };
}

/// wrong-value on a storage reply: one slot value becomes a different (non-zero) integer.
pub(super) fn wrong_slot(served: &mut StorageServed, rng: &mut ChaCha8Rng) {
    let Some(i) = pick_set(&served.reply.slots, 1) else { return };
    let set = &mut served.reply.slots[i];
    let j = rng.random_range(0..set.len());
    let slot = &mut set[j];
    let mut buf = &slot.data[..];
    slot.data = match U256::decode(&mut buf) {
        Ok(value) if buf.is_empty() => alloy_rlp::encode(bump(value)).into(),
        _ => flip_last(&slot.data),
    };
}

/// wrong-value on a bodies reply: one body gets an altered change (so its hash changes).
pub(super) fn wrong_body(bodies: &mut [BlockBody], rng: &mut ChaCha8Rng) {
    if bodies.is_empty() {
        return;
    }
    let body = &mut bodies[rng.random_range(0..bodies.len())];
    if body.changes.is_empty() {
        body.changes.push(AccountChange::Delete { account: B256::from(rng.random::<[u8; 32]>()) });
        return;
    }
    let i = rng.random_range(0..body.changes.len());
    match &mut body.changes[i] {
        AccountChange::Set { balance, .. } => *balance = bump(*balance),
        AccountChange::Delete { account } => account.0[31] ^= 1,
    }
}

fn bump(v: U256) -> U256 {
    if v == U256::MAX {
        v - U256::from(1)
    } else {
        v + U256::from(1)
    }
}

fn flip_last(bytes: &Bytes) -> Bytes {
    let mut v = bytes.to_vec();
    match v.last_mut() {
        Some(b) => *b ^= 1,
        None => v.push(1),
    }
    v.into()
}

/// Appends to `proof` the nodes proving `keys` that it lacks, up to `MAX_PROOF_NODES` in all.
fn add_key_proofs(db: &MemNodes, root: B256, keys: impl Iterator<Item = B256>, proof: &mut Vec<Bytes>) {
    for key in keys {
        let Ok(nodes) = prove(db, root, &key) else { return };
        for node in nodes {
            if proof.len() >= MAX_PROOF_NODES {
                return;
            }
            if !proof.iter().any(|p| p[..] == node[..]) {
                proof.push(node.into());
            }
        }
    }
}

/// bloated-proof: a proof is always sent (the edge proof first, also when the honest reply
/// needed none), followed by needless but valid nodes: the proofs of the zero key and of every
/// returned key, up to `MAX_PROOF_NODES`. Returns how many leading nodes are the edge proof.
fn bloat(db: &MemNodes, root: B256, origin: &B256, keys: &[B256], proof: &mut Vec<Bytes>) -> usize {
    if proof.is_empty() {
        let edge = match keys.last() {
            Some(last) => prove_range(db, root, origin, Some(last)),
            None => prove(db, root, origin),
        };
        *proof = edge.unwrap_or_default().into_iter().map(Bytes::from).collect();
    }
    let required = proof.len();
    add_key_proofs(db, root, std::iter::once(B256::ZERO).chain(keys.iter().copied()), proof);
    required
}

/// bloated-proof on an account reply; returns the edge proof's length.
pub(super) fn bloat_accounts(db: &MemNodes, served: &mut AccountServed) -> usize {
    let keys: Vec<B256> = served.reply.accounts.iter().map(|a| a.hash).collect();
    bloat(db, served.root, &served.origin, &keys, &mut served.reply.proof)
}

/// bloated-proof on a storage reply (the proof covers the last set); returns the edge proof's
/// length.
pub(super) fn bloat_storage(db: &MemNodes, served: &mut StorageServed) -> usize {
    let (Some(set), Some(&root)) = (served.reply.slots.last(), served.roots.last()) else {
        return served.reply.proof.len();
    };
    let keys: Vec<B256> = set.iter().map(|s| s.hash).collect();
    bloat(db, root, &served.last_origin, &keys, &mut served.reply.proof)
}

/// corrupt-proof: removes one of the first `required` proof nodes (the edge proof itself, not a
/// bloated extra), if there is one. A lone node is garbled instead of removed: an empty list
/// means "no proof", which a one-leaf trie would pass.
pub(super) fn drop_proof_node(proof: &mut Vec<Bytes>, required: usize, rng: &mut ChaCha8Rng) {
    let required = required.min(proof.len());
    if proof.len() == 1 && required == 1 {
        proof[0] = flip_last(&proof[0]);
    } else if required > 0 {
        proof.remove(rng.random_range(0..required));
    }
}

/// missing-proof on an account reply: no proof at all; a reply that would still verify as the
/// whole trie loses its last account, so what is sent is a partial range without its proof.
pub(super) fn strip_account_proof(served: &mut AccountServed) {
    let reply = &mut served.reply;
    reply.proof.clear();
    let full: Option<Vec<(B256, Vec<u8>)>> = reply
        .accounts
        .iter()
        .map(|a| Account::decode_slim(&a.body).ok().map(|acc| (a.hash, acc.encode_full())))
        .collect();
    let Some(full) = full else { return };
    if root_from_sorted(full.iter().map(|(k, v)| (*k, v.as_slice()))) == served.root {
        reply.accounts.pop();
    }
}

/// missing-proof on a storage reply: no proof at all; if the last set would still verify as a
/// whole trie, the last non-empty set loses its last slot (a partial set without its proof).
pub(super) fn strip_storage_proof(served: &mut StorageServed) {
    let reply = &mut served.reply;
    reply.proof.clear();
    let (Some(set), Some(&root)) = (reply.slots.last(), served.roots.last()) else { return };
    if root_from_sorted(set.iter().map(|s| (s.hash, &s.data[..]))) != root {
        return;
    }
    if let Some(set) = reply.slots.iter_mut().rev().find(|s| !s.is_empty()) {
        set.pop();
    }
}

/// corrupt-code: each code is replaced by garbage of about its length (its bytes inverted; an
/// empty code by the 32 bytes of its hash).
pub(super) fn corrupt_codes(codes: &mut [Bytes]) {
    for code in codes {
        *code = if code.is_empty() {
            Bytes::copy_from_slice(EMPTY_CODE.as_slice())
        } else {
            code.iter().map(|b| !b).collect::<Vec<u8>>().into()
        };
    }
}

/// bad-headers: every header's parent hash is altered, so no header links to its parent (and
/// none hashes to the canonical block hash).
pub(super) fn break_links(headers: &mut [Header]) {
    for header in headers {
        header.parent_hash.0[0] ^= 0x80;
        header.parent_hash.0[31] ^= 0x01;
    }
}
