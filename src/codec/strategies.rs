//! Proptest strategies producing arbitrary, valid messages of bounded size.

use super::*;
use alloy_primitives::{Bytes, B256, U256};
use proptest::collection::vec;
use proptest::prelude::*;

/// Small lists: enough to cover empty, one and several items.
const ITEMS: core::ops::Range<usize> = 0..5;

fn b256() -> impl Strategy<Value = B256> {
    any::<[u8; 32]>().prop_map(B256::from)
}

fn num() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..300, any::<u64>()]
}

fn u256() -> impl Strategy<Value = U256> {
    prop_oneof![
        Just(U256::ZERO),
        any::<u64>().prop_map(U256::from),
        any::<[u64; 4]>().prop_map(U256::from_limbs)
    ]
}

/// Byte strings up to 300 bytes: crosses the 1-byte, short and long RLP forms.
fn bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![vec(any::<u8>(), 0..3), vec(any::<u8>(), 0..80), vec(any::<u8>(), 0..300)]
        .prop_map(Bytes::from)
}

pub(super) fn get_account_range() -> impl Strategy<Value = GetAccountRange> {
    (num(), b256(), b256(), b256(), num()).prop_map(|(request_id, root, start, limit, bytes)| {
        GetAccountRange { request_id, root, starting_hash: start, limit_hash: limit, response_bytes: bytes }
    })
}

pub(super) fn account_range() -> impl Strategy<Value = AccountRange> {
    let account = (b256(), bytes()).prop_map(|(hash, body)| AccountData { hash, body });
    (num(), vec(account, ITEMS), vec(bytes(), ITEMS)).prop_map(|(request_id, accounts, proof)| AccountRange {
        request_id,
        accounts,
        proof,
    })
}

pub(super) fn get_storage_ranges() -> impl Strategy<Value = GetStorageRanges> {
    (num(), b256(), vec(b256(), ITEMS), proptest::option::of(b256()), proptest::option::of(b256()), num())
        .prop_map(|(request_id, root, account_hashes, starting_hash, limit_hash, response_bytes)| {
            GetStorageRanges { request_id, root, account_hashes, starting_hash, limit_hash, response_bytes }
        })
}

pub(super) fn storage_ranges() -> impl Strategy<Value = StorageRanges> {
    let slot = (b256(), bytes()).prop_map(|(hash, data)| StorageData { hash, data });
    (num(), vec(vec(slot, ITEMS), ITEMS), vec(bytes(), ITEMS))
        .prop_map(|(request_id, slots, proof)| StorageRanges { request_id, slots, proof })
}

pub(super) fn get_byte_codes() -> impl Strategy<Value = GetByteCodes> {
    (num(), vec(b256(), ITEMS), num()).prop_map(|(request_id, hashes, response_bytes)| GetByteCodes {
        request_id,
        hashes,
        response_bytes,
    })
}

pub(super) fn byte_codes() -> impl Strategy<Value = ByteCodes> {
    (num(), vec(bytes(), ITEMS)).prop_map(|(request_id, codes)| ByteCodes { request_id, codes })
}

pub(super) fn get_trie_nodes() -> impl Strategy<Value = GetTrieNodes> {
    (num(), b256(), vec(vec(bytes(), 1..4), ITEMS), num()).prop_map(
        |(request_id, root, paths, response_bytes)| GetTrieNodes { request_id, root, paths, response_bytes },
    )
}

pub(super) fn trie_nodes() -> impl Strategy<Value = TrieNodes> {
    (num(), vec(bytes(), ITEMS)).prop_map(|(request_id, nodes)| TrieNodes { request_id, nodes })
}

fn header() -> impl Strategy<Value = Header> {
    (b256(), num(), b256(), b256(), num(), bytes()).prop_map(
        |(parent_hash, number, state_root, body_hash, timestamp, extra)| Header {
            parent_hash,
            number,
            state_root,
            body_hash,
            timestamp,
            extra,
        },
    )
}

fn account_change() -> impl Strategy<Value = AccountChange> {
    let storage = vec((b256(), u256()).prop_map(|(slot, value)| StorageChange { slot, value }), ITEMS);
    prop_oneof![
        b256().prop_map(|account| AccountChange::Delete { account }),
        (b256(), num(), u256(), bytes(), storage).prop_map(|(account, nonce, balance, code, storage)| {
            AccountChange::Set { account, nonce, balance, code, storage }
        }),
    ]
}

fn block_body() -> impl Strategy<Value = BlockBody> {
    vec(account_change(), ITEMS).prop_map(|changes| BlockBody { changes })
}

pub(super) fn get_block_headers() -> impl Strategy<Value = GetBlockHeaders> {
    (num(), num(), 0u64..=1024, num(), any::<bool>()).prop_map(|(request_id, start, limit, skip, reverse)| {
        GetBlockHeaders { request_id, start, limit, skip, reverse }
    })
}

pub(super) fn block_headers() -> impl Strategy<Value = BlockHeaders> {
    (num(), vec(header(), ITEMS)).prop_map(|(request_id, headers)| BlockHeaders { request_id, headers })
}

pub(super) fn get_block_bodies() -> impl Strategy<Value = GetBlockBodies> {
    (num(), vec(b256(), ITEMS)).prop_map(|(request_id, hashes)| GetBlockBodies { request_id, hashes })
}

pub(super) fn block_bodies() -> impl Strategy<Value = BlockBodies> {
    (num(), vec(block_body(), ITEMS)).prop_map(|(request_id, bodies)| BlockBodies { request_id, bodies })
}

pub(super) fn new_block() -> impl Strategy<Value = NewBlock> {
    (header(), block_body()).prop_map(|(header, body)| NewBlock { block: Block { header, body } })
}

pub(super) fn new_block_hashes() -> impl Strategy<Value = NewBlockHashes> {
    vec((b256(), num()).prop_map(|(hash, number)| BlockHashNumber { hash, number }), ITEMS)
        .prop_map(NewBlockHashes)
}

/// Any message of any kind.
pub(super) fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        get_account_range().prop_map(Message::from),
        account_range().prop_map(Message::from),
        get_storage_ranges().prop_map(Message::from),
        storage_ranges().prop_map(Message::from),
        get_byte_codes().prop_map(Message::from),
        byte_codes().prop_map(Message::from),
        get_trie_nodes().prop_map(Message::from),
        trie_nodes().prop_map(Message::from),
        get_block_headers().prop_map(Message::from),
        block_headers().prop_map(Message::from),
        get_block_bodies().prop_map(Message::from),
        block_bodies().prop_map(Message::from),
        new_block().prop_map(Message::from),
        new_block_hashes().prop_map(Message::from),
    ]
}

/// Arbitrary well-formed RLP (random nesting of strings and lists), encoded.
pub(super) fn rlp_tree() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        vec(any::<u8>(), 0..40).prop_map(|s| alloy_rlp::encode(s.as_slice())),
        any::<u64>().prop_map(alloy_rlp::encode),
        Just(alloy_rlp::encode([0u8; 32])),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        vec(inner, 0..8).prop_map(|items| {
            let payload: Vec<u8> = items.concat();
            let mut out = Vec::new();
            alloy_rlp::Header { list: true, payload_length: payload.len() }.encode(&mut out);
            out.extend_from_slice(&payload);
            out
        })
    })
}
