//! Honest serving, go-ethereum semantics (eth/protocols/snap/handlers.go and the eth header and
//! body handlers): what a correct peer holding the state answers. The misbehaviours in
//! `behaviour.rs` start from these replies.

use super::{MAX_LOOKUPS, MAX_SERVE_ITEMS, SOFT_RESPONSE_LIMIT};
use crate::view::{storage_root_in, ChainView};
use alloy_primitives::{Bytes, B256};
use alloy_rlp::Encodable;
use syncsim_node::account::Account;
use syncsim_node::codec::{
    AccountData, AccountRange, BlockBodies, BlockHeaders, ByteCodes, GetAccountRange, GetBlockBodies,
    GetBlockHeaders, GetByteCodes, GetStorageRanges, GetTrieNodes, StorageData, StorageRanges, TrieNodes,
};
use syncsim_node::primitives::{EMPTY_CODE, EMPTY_ROOT};
use syncsim_node::state::State;
use syncsim_node::trie::nibbles::hex_prefix_decode;
use syncsim_node::trie::root::storage_value_rlp_into;
use syncsim_node::trie::walk::{iter_from, node_at_path, prove};
use syncsim_node::trie::{prove_range, MemNodes};

/// An `AccountRange` with what the tampering code needs to know about it.
pub(super) struct AccountServed {
    pub reply: AccountRange,
    /// The state root served.
    pub root: B256,
    /// The requested starting hash (the proof's left edge).
    pub origin: B256,
}

/// A `StorageRanges` with what the tampering code needs to know about it.
pub(super) struct StorageServed {
    pub reply: StorageRanges,
    /// Storage root of each returned set, in order.
    pub roots: Vec<B256>,
    /// Origin of the last returned set (the left edge of its proof, if it has one).
    pub last_origin: B256,
}

/// The byte budget for a snap request: the request's, capped by the peer's own cap, clamped to
/// `[1, SOFT_RESPONSE_LIMIT]` (0 behaves like 1: one item).
pub(super) fn budget(requested: u64, cap: Option<u64>) -> u64 {
    requested.min(cap.unwrap_or(u64::MAX)).clamp(1, SOFT_RESPONSE_LIMIT)
}

/// The proof of `origin ..= last` (or of `origin` alone when nothing was returned).
fn edge_proof(db: &MemNodes, root: B256, origin: &B256, last: Option<&B256>) -> Option<Vec<Bytes>> {
    let nodes = match last {
        Some(last) => prove_range(db, root, origin, Some(last)).ok()?,
        None => prove(db, root, origin).ok()?,
    };
    Some(nodes.into_iter().map(Bytes::from).collect())
}

/// Serves a `GetAccountRange` for a root the peer holds. `None` when the trie cannot be read
/// (the caller then sends an empty reply). With `flat`, the flat state of `req.root`, accounts
/// are read from it in key order (the trie gives only contracts' storage roots and the edge
/// proof); the reply is the same.
pub(super) fn account_range(
    chain: &dyn ChainView,
    flat: Option<&State>,
    req: &GetAccountRange,
    budget: u64,
) -> Option<AccountServed> {
    let db = chain.nodes();
    let (root, origin, limit) = (req.root, req.starting_hash, req.limit_hash);
    // every body is encoded into one buffer; the reply's bodies are slices of it (no
    // allocation per account)
    let mut bodies: Vec<u8> = Vec::new();
    let mut spans: Vec<(B256, usize, usize)> = Vec::new();
    let mut size = 0u64;
    let (mut stopped, mut more, mut bad) = (false, false, false);
    let mut visit = |hash: B256, account: Account| {
        if stopped {
            more = true;
            return false;
        }
        let start = bodies.len();
        account.encode_slim_into(&mut bodies);
        size += 32 + (bodies.len() - start) as u64;
        spans.push((hash, start, bodies.len()));
        stopped = hash >= limit || size > budget;
        true
    };
    match flat {
        Some(flat) => {
            for (hash, data) in flat.accounts.range(origin..) {
                let storage_root =
                    if data.storage.is_empty() { EMPTY_ROOT } else { chain.storage_root(&root, hash)? };
                if !visit(*hash, data.to_account(storage_root)) {
                    break;
                }
            }
        }
        None => {
            iter_from(db, root, &origin, &mut |hash, leaf| match Account::decode_full(leaf) {
                Ok(account) => visit(hash, account),
                Err(_) => {
                    bad = true;
                    false
                }
            })
            .ok()?;
        }
    }
    if bad {
        return None;
    }
    let bodies = Bytes::from(bodies);
    let accounts: Vec<AccountData> =
        spans.into_iter().map(|(hash, a, b)| AccountData { hash, body: bodies.slice(a..b) }).collect();
    let proof = if origin.is_zero() && !more {
        Vec::new()
    } else {
        edge_proof(db, root, &origin, accounts.last().map(|a| &a.hash))?
    };
    Some(AccountServed { reply: AccountRange { request_id: req.request_id, accounts, proof }, root, origin })
}

/// Serves a `GetStorageRanges` for a root the peer holds. `None` when an account is unknown or
/// a trie cannot be read (the caller then sends an empty reply). With `flat`, the flat state of
/// `req.root`, slots are read from it in key order (the trie gives the storage roots and the
/// edge proof); the reply is the same.
pub(super) fn storage_ranges(
    chain: &dyn ChainView,
    flat: Option<&State>,
    req: &GetStorageRanges,
    budget: u64,
) -> Option<StorageServed> {
    let db = chain.nodes();
    let storage_roots: Vec<B256> =
        req.account_hashes.iter().map(|a| chain.storage_root(&req.root, a)).collect::<Option<_>>()?;
    let hard_limit = budget.saturating_add(budget / 10);
    // every value is encoded into one buffer; the reply's values are slices of it (no
    // allocation per slot)
    let mut values: Vec<u8> = Vec::new();
    let mut sets: Vec<Vec<(B256, usize, usize)>> = Vec::new();
    let mut roots = Vec::new();
    let mut proof = Vec::new();
    let mut last_origin = B256::ZERO;
    let mut size = 0u64;
    for (i, &sroot) in storage_roots.iter().enumerate() {
        // No new account once the budget is used up.
        if size >= budget {
            break;
        }
        let (origin, limit) = if i == 0 {
            (req.starting_hash.unwrap_or_default(), req.limit_hash.unwrap_or(B256::repeat_byte(0xff)))
        } else {
            (B256::ZERO, B256::repeat_byte(0xff))
        };
        let mut set: Vec<(B256, usize, usize)> = Vec::new();
        let (mut stopped, mut more) = (false, false);
        let mut visit = |hash: B256, data: &[u8]| {
            if stopped || size >= hard_limit {
                more = true;
                return false;
            }
            size += 32 + data.len() as u64;
            let start = values.len();
            values.extend_from_slice(data);
            set.push((hash, start, values.len()));
            stopped = hash >= limit;
            true
        };
        // the flat slots, if held and consistent with the trie (else the trie is walked)
        let flat_slots = flat
            .and_then(|f| f.accounts.get(&req.account_hashes[i]))
            .map(|a| &a.storage)
            .filter(|slots| slots.is_empty() == (sroot == EMPTY_ROOT));
        match flat_slots {
            Some(slots) => {
                let mut rlp = Vec::with_capacity(33);
                for (hash, value) in slots.range(origin..) {
                    rlp.clear();
                    storage_value_rlp_into(*value, &mut rlp);
                    if !visit(*hash, &rlp) {
                        break;
                    }
                }
            }
            None => {
                iter_from(db, sroot, &origin, &mut |hash, value| visit(hash, value)).ok()?;
            }
        }
        // Partial: cut by the limit or the hard cap, or started past zero in a non-empty trie.
        let partial = more || (!origin.is_zero() && sroot != EMPTY_ROOT);
        if partial {
            proof = edge_proof(db, sroot, &origin, set.last().map(|s| &s.0))?;
        }
        sets.push(set);
        roots.push(sroot);
        last_origin = origin;
        // A proved (partial) set ends the reply: a proof can only cover the last set.
        if partial {
            break;
        }
    }
    let values = Bytes::from(values);
    let slots = sets
        .into_iter()
        .map(|set| {
            set.into_iter().map(|(hash, a, b)| StorageData { hash, data: values.slice(a..b) }).collect()
        })
        .collect();
    Some(StorageServed {
        reply: StorageRanges { request_id: req.request_id, slots, proof },
        roots,
        last_origin,
    })
}

/// Serves a `GetByteCodes`: request order, missing codes skipped, EMPTY_CODE as an empty blob,
/// at most `MAX_LOOKUPS` lookups, stop once past the budget or at `max_codes`.
pub(super) fn byte_codes(
    chain: &dyn ChainView,
    req: &GetByteCodes,
    budget: u64,
    max_codes: usize,
) -> ByteCodes {
    let mut codes = Vec::new();
    let mut bytes = 0u64;
    for hash in req.hashes.iter().take(MAX_LOOKUPS) {
        if codes.len() >= max_codes {
            break;
        }
        if *hash == EMPTY_CODE {
            codes.push(Bytes::new());
        } else if let Some(code) = chain.code(hash) {
            bytes += code.len() as u64;
            codes.push(code.clone());
        }
        if bytes > budget {
            break;
        }
    }
    ByteCodes { request_id: req.request_id, codes }
}

/// The hashed node at the compact (hex-prefix) `path` of the trie `root`.
fn node_at_compact(db: &MemNodes, root: B256, compact: &[u8]) -> Option<Bytes> {
    let (path, _) = hex_prefix_decode(compact)?;
    if path.len() > 64 {
        return None;
    }
    node_at_path(db, root, &path).map(Bytes::from)
}

/// Serves a `GetTrieNodes` for a root the peer holds: nodes in request order, missing ones
/// skipped, stop once past the budget or after `MAX_LOOKUPS` lookups.
pub(super) fn trie_nodes(db: &MemNodes, req: &GetTrieNodes, budget: u64) -> TrieNodes {
    let mut nodes = Vec::new();
    let mut bytes = 0u64;
    let mut lookups = 0usize;
    let mut push = |node: Option<Bytes>, nodes: &mut Vec<Bytes>| {
        if let Some(node) = node {
            bytes += node.len() as u64;
            nodes.push(node);
        }
        bytes > budget
    };
    'sets: for set in &req.paths {
        match set.as_slice() {
            [] => continue,
            [path] => {
                lookups += 1;
                if push(node_at_compact(db, req.root, path), &mut nodes) {
                    break;
                }
            }
            [account, paths @ ..] => {
                lookups += 1;
                let sroot = <[u8; 32]>::try_from(&account[..])
                    .ok()
                    .and_then(|a| storage_root_in(db, &req.root, &B256::from(a)));
                if let Some(sroot) = sroot {
                    for path in paths {
                        lookups += 1;
                        if push(node_at_compact(db, sroot, path), &mut nodes) || lookups >= MAX_LOOKUPS {
                            break 'sets;
                        }
                    }
                }
            }
        }
        if lookups >= MAX_LOOKUPS {
            break;
        }
    }
    TrieNodes { request_id: req.request_id, nodes }
}

/// Serves a `GetBlockHeaders` from the canonical chain up to `head`.
pub(super) fn headers(chain: &dyn ChainView, head: u64, req: &GetBlockHeaders) -> BlockHeaders {
    let step = req.skip.saturating_add(1);
    let mut headers = Vec::new();
    let mut bytes = 0u64;
    let mut number = Some(req.start);
    while let Some(n) = number {
        if headers.len() as u64 >= req.limit.min(MAX_SERVE_ITEMS as u64) || n > head {
            break;
        }
        let Some(header) = chain.header(n) else { break };
        bytes += header.length() as u64;
        headers.push(header.clone());
        if bytes > SOFT_RESPONSE_LIMIT {
            break;
        }
        number = if req.reverse { n.checked_sub(step) } else { n.checked_add(step) };
    }
    BlockHeaders { request_id: req.request_id, headers }
}

/// Serves a `GetBlockBodies`: bodies by block hash in request order, unknown ones skipped.
pub(super) fn bodies(chain: &dyn ChainView, req: &GetBlockBodies) -> BlockBodies {
    let mut bodies = Vec::new();
    let mut bytes = 0u64;
    for hash in req.hashes.iter().take(MAX_SERVE_ITEMS) {
        if let Some(body) = chain.body(hash) {
            bytes += body.length() as u64;
            bodies.push(body.clone());
            if bytes > SOFT_RESPONSE_LIMIT {
                break;
            }
        }
    }
    BlockBodies { request_id: req.request_id, bodies }
}
