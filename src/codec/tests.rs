//! Codec tests: round trips, robustness against hostile input, limits, wire vectors.

use super::strategies;
use super::*;
use alloy_primitives::{keccak256, Bytes, B256, U256};
use alloy_rlp::Encodable;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

// ---- helpers building raw RLP by hand ----

fn rlp_str(bytes: &[u8]) -> Vec<u8> {
    alloy_rlp::encode(bytes)
}

fn rlp_u64(value: u64) -> Vec<u8> {
    alloy_rlp::encode(value)
}

fn rlp_list(items: &[Vec<u8>]) -> Vec<u8> {
    let payload = items.concat();
    let mut out = Vec::new();
    alloy_rlp::Header { list: true, payload_length: payload.len() }.encode(&mut out);
    out.extend_from_slice(&payload);
    out
}

fn message(code: u8, body: Vec<u8>) -> Vec<u8> {
    let mut out = vec![code];
    out.extend_from_slice(&body);
    out
}

fn decode(bytes: &[u8]) -> Result<Message, CodecError> {
    Message::decode(bytes, &Limits::default())
}

fn h(byte: u8) -> B256 {
    B256::repeat_byte(byte)
}

fn roundtrip(m: Message) -> Result<(), TestCaseError> {
    let encoded = m.encode();
    prop_assert_eq!(encoded.len(), m.encoded_len());
    prop_assert_eq!(encoded.first().copied(), Some(m.code()));
    prop_assert_eq!(Message::decode_owned(encoded.clone(), &Limits::default()), Ok(m.clone()));
    prop_assert_eq!(decode(&encoded), Ok(m));
    Ok(())
}

// ---- property tests ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn roundtrip_get_account_range(m in strategies::get_account_range()) { roundtrip(m.into())?; }
    #[test]
    fn roundtrip_account_range(m in strategies::account_range()) { roundtrip(m.into())?; }
    #[test]
    fn roundtrip_get_storage_ranges(m in strategies::get_storage_ranges()) { roundtrip(m.into())?; }
    #[test]
    fn roundtrip_storage_ranges(m in strategies::storage_ranges()) { roundtrip(m.into())?; }
    #[test]
    fn roundtrip_get_byte_codes(m in strategies::get_byte_codes()) { roundtrip(m.into())?; }
    #[test]
    fn roundtrip_byte_codes(m in strategies::byte_codes()) { roundtrip(m.into())?; }
    #[test]
    fn roundtrip_get_trie_nodes(m in strategies::get_trie_nodes()) { roundtrip(m.into())?; }
    #[test]
    fn roundtrip_trie_nodes(m in strategies::trie_nodes()) { roundtrip(m.into())?; }
    #[test]
    fn roundtrip_get_block_headers(m in strategies::get_block_headers()) { roundtrip(m.into())?; }
    #[test]
    fn roundtrip_block_headers(m in strategies::block_headers()) { roundtrip(m.into())?; }
    #[test]
    fn roundtrip_get_block_bodies(m in strategies::get_block_bodies()) { roundtrip(m.into())?; }
    #[test]
    fn roundtrip_block_bodies(m in strategies::block_bodies()) { roundtrip(m.into())?; }
    #[test]
    fn roundtrip_new_block(m in strategies::new_block()) { roundtrip(m.into())?; }
    #[test]
    fn roundtrip_new_block_hashes(m in strategies::new_block_hashes()) { roundtrip(m.into())?; }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..2000)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn code_prefixed_bytes_never_panic(code in select(Message::CODES), rest in vec(any::<u8>(), 0..2000)) {
        let _ = decode(&message(code, rest));
    }

    #[test]
    fn code_prefixed_rlp_never_panics(code in select(Message::CODES), body in strategies::rlp_tree()) {
        // Well-formed RLP of the wrong shape reaches the field decoders.
        if let Ok(m) = decode(&message(code, body.clone())) {
            prop_assert_eq!(m.encode(), message(code, body));
        }
    }

    #[test]
    fn flipped_byte_never_panics(m in strategies::message(), at in any::<Index>(), xor in 1u8..=255) {
        let mut bytes = m.encode();
        let i = at.index(bytes.len());
        if let Some(b) = bytes.get_mut(i) {
            *b ^= xor;
        }
        // Decoding is strict and canonical: whatever decodes re-encodes to the same bytes.
        if let Ok(decoded) = decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }

    #[test]
    fn truncation_is_an_error(m in strategies::message(), at in any::<Index>()) {
        let bytes = m.encode();
        let cut = at.index(bytes.len());
        prop_assert!(decode(bytes.get(..cut).unwrap_or_default()).is_err());
    }

    #[test]
    fn owned_decoding_agrees_with_borrowed(m in strategies::message(), at in any::<Index>(), flip in any::<u8>()) {
        // same result (message or error) on any input, damaged or not
        let mut bytes = m.encode();
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
        }
        prop_assert_eq!(Message::decode_owned(bytes.clone(), &Limits::default()), decode(&bytes));
    }

    #[test]
    fn tight_limits_never_panic(m in strategies::message(), list in 0usize..4, request in 0usize..4, size in 0usize..400) {
        let limits = Limits { max_message_bytes: size, max_list_items: list, max_request_items: request };
        let _ = Message::decode(&m.encode(), &limits);
    }
}

// ---- limits ----

#[test]
fn request_list_over_limit_is_rejected() {
    let m = Message::from(GetByteCodes { request_id: 1, hashes: vec![h(1), h(2), h(3)], response_bytes: 9 });
    let limits = Limits { max_request_items: 2, ..Limits::default() };
    assert_eq!(
        Message::decode(&m.encode(), &limits),
        Err(CodecError::TooManyItems { what: "code hashes", count: 3, limit: 2 })
    );
    let limits = Limits { max_request_items: 3, ..Limits::default() };
    assert_eq!(Message::decode(&m.encode(), &limits), Ok(m));
}

#[test]
fn default_request_limit_is_1024() {
    let m = Message::from(GetBlockBodies { request_id: 7, hashes: vec![h(9); 1025] });
    assert_eq!(
        decode(&m.encode()),
        Err(CodecError::TooManyItems { what: "requested bodies", count: 1025, limit: 1024 })
    );
    let m = Message::from(GetBlockBodies { request_id: 7, hashes: vec![h(9); 1024] });
    assert_eq!(decode(&m.encode()), Ok(m));
}

#[test]
fn requested_header_count_over_limit_is_rejected() {
    let ask =
        |limit| Message::from(GetBlockHeaders { request_id: 1, start: 5, limit, skip: 0, reverse: true });
    assert_eq!(decode(&ask(1024).encode()), Ok(ask(1024)));
    assert_eq!(
        decode(&ask(u64::MAX).encode()),
        Err(CodecError::TooManyItems { what: "requested headers", count: usize::MAX, limit: 1024 })
    );
}

#[test]
fn response_lists_over_limit_are_rejected() {
    let limits = Limits { max_list_items: 2, ..Limits::default() };
    let nodes = vec![Bytes::from_static(b"n"); 3];
    let m = Message::from(AccountRange { request_id: 1, accounts: vec![], proof: nodes.clone() });
    assert_eq!(
        Message::decode(&m.encode(), &limits),
        Err(CodecError::TooManyItems { what: "proof nodes", count: 3, limit: 2 })
    );
    let slot = StorageData { hash: h(4), data: Bytes::from_static(b"\x01") };
    let m = Message::from(StorageRanges { request_id: 1, slots: vec![vec![slot; 3]], proof: vec![] });
    assert_eq!(
        Message::decode(&m.encode(), &limits),
        Err(CodecError::TooManyItems { what: "storage slots", count: 3, limit: 2 })
    );
    let m = Message::from(TrieNodes { request_id: 1, nodes });
    assert!(matches!(Message::decode(&m.encode(), &limits), Err(CodecError::TooManyItems { .. })));
}

#[test]
fn trie_paths_are_bounded_per_set_and_in_total() {
    let set = vec![Bytes::from_static(&[1]); 3];
    let ask =
        |sets| Message::from(GetTrieNodes { request_id: 1, root: h(1), paths: sets, response_bytes: 1 });
    let limits = Limits { max_request_items: 3, max_list_items: 8, ..Limits::default() };
    let ok = ask(vec![set.clone(), set.clone()]);
    assert_eq!(Message::decode(&ok.encode(), &limits), Ok(ok));
    let mut long_set = set.clone();
    long_set.push(Bytes::new());
    assert_eq!(
        Message::decode(&ask(vec![long_set]).encode(), &limits),
        Err(CodecError::TooManyItems { what: "trie paths", count: 4, limit: 3 })
    );
    assert_eq!(
        Message::decode(&ask(vec![set.clone(), set.clone(), set]).encode(), &limits),
        Err(CodecError::TooManyItems { what: "trie paths in all sets", count: 9, limit: 8 })
    );
}

#[test]
fn items_are_counted_before_allocating() {
    // 200 000 one-byte proof nodes: a 200 KB message holding 2x the default list limit.
    let nodes = vec![rlp_str(&[1]); 200_000];
    let bytes = message(0x01, rlp_list(&[rlp_u64(1), rlp_list(&[]), rlp_list(&nodes)]));
    assert_eq!(
        decode(&bytes),
        Err(CodecError::TooManyItems { what: "proof nodes", count: 200_000, limit: 100_000 })
    );
}

#[test]
fn oversized_message_is_rejected_both_ways() {
    let code = Bytes::from(vec![0x60; Limits::DEFAULT_MAX_MESSAGE_BYTES]);
    let m = Message::from(ByteCodes { request_id: 1, codes: vec![code] });
    let size = m.encoded_len();
    let limit = Limits::DEFAULT_MAX_MESSAGE_BYTES;
    assert!(size > limit);
    assert_eq!(decode(&m.encode()), Err(CodecError::TooLarge { size, limit }));
    assert_eq!(m.encode_checked(&Limits::default()), Err(CodecError::TooLarge { size, limit }));

    let small = Message::from(ByteCodes { request_id: 1, codes: vec![Bytes::from_static(b"abc")] });
    let limits = Limits { max_message_bytes: small.encoded_len(), ..Limits::default() };
    assert_eq!(small.encode_checked(&limits), Ok(small.encode()));
    assert_eq!(Message::decode(&small.encode(), &limits), Ok(small.clone()));
    let limits = Limits { max_message_bytes: small.encoded_len() - 1, ..Limits::default() };
    assert!(matches!(Message::decode(&small.encode(), &limits), Err(CodecError::TooLarge { .. })));
}

// ---- malformed fields ----

fn get_account_range_with_root(root: &[u8]) -> Vec<u8> {
    let body = [rlp_u64(1), rlp_str(root), rlp_str(&[0; 32]), rlp_str(&[0xff; 32]), rlp_u64(500)];
    message(0x00, rlp_list(&body))
}

#[test]
fn hashes_must_be_32_bytes() {
    assert!(decode(&get_account_range_with_root(&[7; 32])).is_ok());
    for len in [0, 31, 33] {
        assert_eq!(
            decode(&get_account_range_with_root(&vec![7; len])),
            Err(CodecError::BadHashLength { what: "state root", len })
        );
    }
    let body = rlp_list(&[rlp_u64(1), rlp_list(&[rlp_str(&[1; 32]), rlp_str(&[2; 31])])]);
    assert_eq!(decode(&message(0x15, body)), Err(CodecError::BadHashLength { what: "block hash", len: 31 }));
}

fn get_storage_ranges_with_bounds(origin: &[u8], limit: &[u8]) -> Vec<u8> {
    let hashes = rlp_list(&[rlp_str(&[3; 32])]);
    let body = [rlp_u64(2), rlp_str(&[1; 32]), hashes, rlp_str(origin), rlp_str(limit), rlp_u64(100)];
    message(0x02, rlp_list(&body))
}

#[test]
fn storage_bounds_are_empty_or_32_bytes() {
    let expected = Message::from(GetStorageRanges {
        request_id: 2,
        root: h(1),
        account_hashes: vec![h(3)],
        starting_hash: None,
        limit_hash: Some(h(5)),
        response_bytes: 100,
    });
    assert_eq!(decode(&get_storage_ranges_with_bounds(&[], &[5; 32])), Ok(expected));
    assert_eq!(
        decode(&get_storage_ranges_with_bounds(&[1, 2, 3, 4, 5], &[])),
        Err(CodecError::BadBoundLength { what: "storage starting hash", len: 5 })
    );
    assert_eq!(
        decode(&get_storage_ranges_with_bounds(&[], &[5; 33])),
        Err(CodecError::BadBoundLength { what: "storage limit hash", len: 33 })
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    let m = Message::from(TrieNodes { request_id: 3, nodes: vec![Bytes::from_static(b"node")] });
    let mut bytes = m.encode();
    bytes.push(0x80);
    assert_eq!(decode(&bytes), Err(CodecError::TrailingBytes));
}

#[test]
fn empty_path_set_is_rejected() {
    let path = Bytes::from_static(&[0x12]);
    let m = Message::from(GetTrieNodes {
        request_id: 1,
        root: h(1),
        paths: vec![vec![path], vec![]],
        response_bytes: 1000,
    });
    assert_eq!(decode(&m.encode()), Err(CodecError::EmptyPathSet));
}

#[test]
fn unknown_code_and_empty_input_are_rejected() {
    assert_eq!(decode(&[]), Err(CodecError::Empty));
    for code in [0x08, 0x10, 0x12, 0x19, 0xff] {
        assert_eq!(decode(&[code, 0xc0]), Err(CodecError::UnknownCode(code)));
        assert_eq!(Message::name_of_code(code), None);
    }
    assert_eq!(decode(&[0x05]), Err(CodecError::Rlp(alloy_rlp::Error::InputTooShort)));
}

#[test]
fn extra_and_missing_fields_are_rejected() {
    let body = rlp_list(&[rlp_u64(1), rlp_list(&[]), rlp_u64(0)]);
    assert_eq!(decode(&message(0x05, body)), Err(CodecError::ExtraFields { what: "ByteCodes" }));
    let body = rlp_list(&[rlp_u64(1)]);
    assert_eq!(decode(&message(0x05, body)), Err(CodecError::Rlp(alloy_rlp::Error::InputTooShort)));
}

#[test]
fn non_canonical_rlp_is_rejected() {
    // Request id 1 with a leading zero byte.
    let body = rlp_list(&[vec![0x82, 0x00, 0x01], rlp_list(&[])]);
    assert_eq!(decode(&message(0x07, body)), Err(CodecError::Rlp(alloy_rlp::Error::LeadingZero)));
    // A list header claiming 2^64 - 1 bytes.
    let bytes = [0x07, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    assert!(matches!(decode(&bytes), Err(CodecError::Rlp(_))));
}

#[test]
fn bad_reverse_flag_is_rejected() {
    let body = rlp_list(&[rlp_u64(1), rlp_u64(2), rlp_u64(3), rlp_u64(0), rlp_u64(2)]);
    assert_eq!(decode(&message(0x13, body)), Err(CodecError::BadBool { what: "reverse", value: 2 }));
}

fn body_with_change(kind: u64, nonce: u64) -> Vec<u8> {
    let change = rlp_list(&[
        rlp_str(&[8; 32]),
        rlp_u64(kind),
        rlp_u64(nonce),
        rlp_u64(0),
        rlp_str(&[]),
        rlp_list(&[]),
    ]);
    let body = rlp_list(&[rlp_list(&[change])]);
    message(0x16, rlp_list(&[rlp_u64(4), rlp_list(&[body])]))
}

#[test]
fn account_change_kinds_are_checked() {
    let delete = BlockBody { changes: vec![AccountChange::Delete { account: h(8) }] };
    assert_eq!(
        decode(&body_with_change(0, 0)),
        Ok(Message::from(BlockBodies { request_id: 4, bodies: vec![delete] }))
    );
    assert_eq!(decode(&body_with_change(0, 1)), Err(CodecError::NonEmptyDelete));
    assert_eq!(decode(&body_with_change(2, 0)), Err(CodecError::BadChangeKind(2)));
    assert!(decode(&body_with_change(1, 1)).is_ok());
}

// ---- exact wire format ----

#[test]
fn get_byte_codes_wire_bytes() {
    let m = Message::from(GetByteCodes { request_id: 1, hashes: vec![h(0x11)], response_bytes: 0x1000 });
    let mut expected = vec![0x04, 0xe6, 0x01, 0xe1, 0xa0];
    expected.extend_from_slice(&[0x11; 32]);
    expected.extend_from_slice(&[0x82, 0x10, 0x00]);
    assert_eq!(m.encode(), expected);
}

#[test]
fn get_storage_ranges_wire_bytes() {
    let m = Message::from(GetStorageRanges {
        request_id: 2,
        root: h(1),
        account_hashes: vec![h(3)],
        starting_hash: None,
        limit_hash: Some(h(5)),
        response_bytes: 100,
    });
    assert_eq!(m.encode(), get_storage_ranges_with_bounds(&[], &[5; 32]));
}

#[test]
fn announcement_wire_shapes() {
    let m = Message::from(NewBlockHashes(vec![BlockHashNumber { hash: h(2), number: 9 }]));
    let expected = message(0x18, rlp_list(&[rlp_list(&[rlp_str(&[2; 32]), rlp_u64(9)])]));
    assert_eq!(m.encode(), expected);

    let block = Block::default();
    let m = Message::from(NewBlock { block: block.clone() });
    let header = alloy_rlp::encode(&block.header);
    let body = rlp_list(&[rlp_list(&[])]);
    assert_eq!(alloy_rlp::encode(&block.body), body);
    assert_eq!(m.encode(), message(0x17, rlp_list(&[rlp_list(&[header, body])])));
}

#[test]
fn account_change_wire_fields() {
    let set = AccountChange::Set {
        account: h(1),
        nonce: 3,
        balance: U256::from(1000u64),
        code: Bytes::from_static(b"\x60\x00"),
        storage: vec![StorageChange { slot: h(2), value: U256::ZERO }],
    };
    let expected = rlp_list(&[
        rlp_str(&[1; 32]),
        rlp_u64(1),
        rlp_u64(3),
        rlp_u64(1000),
        rlp_str(b"\x60\x00"),
        rlp_list(&[rlp_list(&[rlp_str(&[2; 32]), rlp_u64(0)])]),
    ]);
    assert_eq!(alloy_rlp::encode(&set), expected);
    assert_eq!(set.length(), expected.len());
    let delete = AccountChange::Delete { account: h(1) };
    let expected =
        rlp_list(&[rlp_str(&[1; 32]), rlp_u64(0), rlp_u64(0), rlp_u64(0), rlp_str(&[]), rlp_list(&[])]);
    assert_eq!(alloy_rlp::encode(&delete), expected);
    assert_eq!(delete.account(), h(1));
}

#[test]
fn hashes_commit_to_rlp() {
    let body = BlockBody { changes: vec![AccountChange::Delete { account: h(6) }] };
    let header =
        Header { number: 12, body_hash: body.hash(), extra: Bytes::from_static(b"x"), ..Header::default() };
    assert_eq!(body.hash(), keccak256(alloy_rlp::encode(&body)));
    assert_eq!(header.hash(), keccak256(alloy_rlp::encode(&header)));
    let changed = Header { timestamp: 1, ..header.clone() };
    assert_ne!(changed.hash(), header.hash());
}

#[test]
fn metadata_accessors() {
    let announce = Message::from(NewBlockHashes(vec![]));
    assert_eq!(
        (announce.code(), announce.kind_name(), announce.request_id()),
        (0x18, "NewBlockHashes", None)
    );
    let ask = Message::from(GetAccountRange {
        request_id: 42,
        root: h(0),
        starting_hash: h(0),
        limit_hash: h(0xff),
        response_bytes: 1,
    });
    assert_eq!((ask.code(), ask.kind_name(), ask.request_id()), (0x00, "GetAccountRange", Some(42)));
    assert_eq!(Message::CODES.len(), 14);
    assert_eq!(Message::name_of_code(0x06), Some("GetTrieNodes"));
    assert_eq!(Message::name_of_code(0x16), Some("BlockBodies"));
}
