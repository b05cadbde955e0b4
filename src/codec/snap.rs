//! The eight snap/1 request and response messages.

use super::read::{self, DecodeBounded, Result};
use super::{CodecError, Limits};
use alloy_primitives::{Bytes, B256};
use alloy_rlp::{BufMut, Encodable, Header, RlpEncodable};

/// 0x00: asks for the accounts of a state trie between two hashes.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct GetAccountRange {
    /// Request id, echoed in the response.
    pub request_id: u64,
    /// State root the range is taken from.
    pub root: B256,
    /// First account hash wanted.
    pub starting_hash: B256,
    /// Account hash after which the response may stop.
    pub limit_hash: B256,
    /// Soft limit on the response size in bytes.
    pub response_bytes: u64,
}

/// One account of an `AccountRange`: its hash and slim-encoded body.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct AccountData {
    /// Hash of the account address (its trie key).
    pub hash: B256,
    /// Slim-encoded account, kept opaque by the codec.
    pub body: Bytes,
}

/// 0x01: consecutive accounts and the boundary proof for them.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct AccountRange {
    /// Request id of the `GetAccountRange` answered.
    pub request_id: u64,
    /// Accounts in ascending hash order.
    pub accounts: Vec<AccountData>,
    /// Trie nodes proving the range's edges.
    pub proof: Vec<Bytes>,
}

/// 0x02: asks for storage slots of one or more accounts.
///
/// The bounds are `None` on the wire as an empty string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetStorageRanges {
    /// Request id, echoed in the response.
    pub request_id: u64,
    /// State root the accounts are taken from.
    pub root: B256,
    /// Hashes of the accounts whose storage is wanted.
    pub account_hashes: Vec<B256>,
    /// First slot hash wanted (first account only); `None` = from the start.
    pub starting_hash: Option<B256>,
    /// Slot hash after which the response may stop (last account only); `None` = to the end.
    pub limit_hash: Option<B256>,
    /// Soft limit on the response size in bytes.
    pub response_bytes: u64,
}

/// One storage slot of a `StorageRanges`: its hash and RLP-encoded value.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct StorageData {
    /// Hash of the slot key (its trie key).
    pub hash: B256,
    /// Slot value, kept opaque by the codec.
    pub data: Bytes,
}

/// 0x03: storage slots per requested account, and a proof for the last range.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct StorageRanges {
    /// Request id of the `GetStorageRanges` answered.
    pub request_id: u64,
    /// For each account answered, its slots in ascending hash order.
    pub slots: Vec<Vec<StorageData>>,
    /// Trie nodes proving the last range's edges (empty if it is complete).
    pub proof: Vec<Bytes>,
}

/// 0x04: asks for contract codes by hash.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct GetByteCodes {
    /// Request id, echoed in the response.
    pub request_id: u64,
    /// Code hashes wanted.
    pub hashes: Vec<B256>,
    /// Soft limit on the response size in bytes.
    pub response_bytes: u64,
}

/// 0x05: contract codes, in request order, missing ones skipped.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct ByteCodes {
    /// Request id of the `GetByteCodes` answered.
    pub request_id: u64,
    /// The codes.
    pub codes: Vec<Bytes>,
}

/// 0x06: asks for trie nodes by path.
///
/// Each path set is `[account path, storage path, ...]`: one path alone names an
/// account-trie node; more name storage-trie nodes of that account.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct GetTrieNodes {
    /// Request id, echoed in the response.
    pub request_id: u64,
    /// State root the nodes are taken from.
    pub root: B256,
    /// Path sets; none may be empty. Decoding allows `max_request_items` sets of
    /// `max_request_items` paths each, and `max_list_items` paths in all.
    pub paths: Vec<Vec<Bytes>>,
    /// Soft limit on the response size in bytes.
    pub response_bytes: u64,
}

/// 0x07: trie nodes, in request order.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct TrieNodes {
    /// Request id of the `GetTrieNodes` answered.
    pub request_id: u64,
    /// The nodes.
    pub nodes: Vec<Bytes>,
}

impl GetStorageRanges {
    fn payload_length(&self) -> usize {
        self.request_id.length()
            + self.root.length()
            + self.account_hashes.length()
            + bound(&self.starting_hash).length()
            + bound(&self.limit_hash).length()
            + self.response_bytes.length()
    }
}

/// The wire form of a storage bound: empty for `None`, the 32 bytes for `Some`.
fn bound(hash: &Option<B256>) -> &[u8] {
    hash.as_ref().map_or(&[], |h| h.as_slice())
}

impl Encodable for GetStorageRanges {
    fn encode(&self, out: &mut dyn BufMut) {
        Header { list: true, payload_length: self.payload_length() }.encode(out);
        self.request_id.encode(out);
        self.root.encode(out);
        self.account_hashes.encode(out);
        bound(&self.starting_hash).encode(out);
        bound(&self.limit_hash).encode(out);
        self.response_bytes.encode(out);
    }

    fn length(&self) -> usize {
        let payload_length = self.payload_length();
        payload_length + alloy_rlp::length_of_length(payload_length)
    }
}

impl DecodeBounded for GetAccountRange {
    fn decode_bounded(buf: &mut &[u8], _limits: &Limits) -> Result<Self> {
        read::fields(buf, "GetAccountRange", |b| {
            Ok(Self {
                request_id: read::u64(b)?,
                root: read::b256(b, "state root")?,
                starting_hash: read::b256(b, "account starting hash")?,
                limit_hash: read::b256(b, "account limit hash")?,
                response_bytes: read::u64(b)?,
            })
        })
    }
}

impl DecodeBounded for AccountData {
    fn decode_bounded(buf: &mut &[u8], _limits: &Limits) -> Result<Self> {
        read::fields(buf, "account entry", |b| {
            Ok(Self { hash: read::b256(b, "account hash")?, body: read::bytes(b)? })
        })
    }
}

impl DecodeBounded for AccountRange {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        let max = limits.max_list_items;
        read::fields(buf, "AccountRange", |b| {
            Ok(Self {
                request_id: read::u64(b)?,
                accounts: read::list(b, "accounts", max, |b| AccountData::decode_bounded(b, limits))?,
                proof: read::list(b, "proof nodes", max, read::bytes)?,
            })
        })
    }
}

impl DecodeBounded for GetStorageRanges {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        let max = limits.max_request_items;
        read::fields(buf, "GetStorageRanges", |b| {
            Ok(Self {
                request_id: read::u64(b)?,
                root: read::b256(b, "state root")?,
                account_hashes: read::list(b, "storage account hashes", max, |b| {
                    read::b256(b, "account hash")
                })?,
                starting_hash: read::opt_b256(b, "storage starting hash")?,
                limit_hash: read::opt_b256(b, "storage limit hash")?,
                response_bytes: read::u64(b)?,
            })
        })
    }
}

impl DecodeBounded for StorageData {
    fn decode_bounded(buf: &mut &[u8], _limits: &Limits) -> Result<Self> {
        read::fields(buf, "storage entry", |b| {
            Ok(Self { hash: read::b256(b, "slot hash")?, data: read::bytes(b)? })
        })
    }
}

impl DecodeBounded for StorageRanges {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        let max = limits.max_list_items;
        read::fields(buf, "StorageRanges", |b| {
            Ok(Self {
                request_id: read::u64(b)?,
                slots: read::list(b, "storage ranges", max, |b| {
                    read::list(b, "storage slots", max, |b| StorageData::decode_bounded(b, limits))
                })?,
                proof: read::list(b, "proof nodes", max, read::bytes)?,
            })
        })
    }
}

impl DecodeBounded for GetByteCodes {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        read::fields(buf, "GetByteCodes", |b| {
            Ok(Self {
                request_id: read::u64(b)?,
                hashes: read::list(b, "code hashes", limits.max_request_items, |b| {
                    read::b256(b, "code hash")
                })?,
                response_bytes: read::u64(b)?,
            })
        })
    }
}

impl DecodeBounded for ByteCodes {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        read::fields(buf, "ByteCodes", |b| {
            Ok(Self {
                request_id: read::u64(b)?,
                codes: read::list(b, "codes", limits.max_list_items, read::bytes)?,
            })
        })
    }
}

impl DecodeBounded for GetTrieNodes {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        let max = limits.max_request_items;
        let mut total = 0usize;
        read::fields(buf, "GetTrieNodes", |b| {
            Ok(Self {
                request_id: read::u64(b)?,
                root: read::b256(b, "state root")?,
                paths: read::list(b, "trie path sets", max, |b| {
                    let set = read::list(b, "trie paths", max, read::bytes)?;
                    if set.is_empty() {
                        return Err(CodecError::EmptyPathSet);
                    }
                    // Bounds the whole request, not just each set (sets x paths could
                    // otherwise reach a million tiny allocations).
                    total = total.saturating_add(set.len());
                    if total > limits.max_list_items {
                        return Err(CodecError::TooManyItems {
                            what: "trie paths in all sets",
                            count: total,
                            limit: limits.max_list_items,
                        });
                    }
                    Ok(set)
                })?,
                response_bytes: read::u64(b)?,
            })
        })
    }
}

impl DecodeBounded for TrieNodes {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        read::fields(buf, "TrieNodes", |b| {
            Ok(Self {
                request_id: read::u64(b)?,
                nodes: read::list(b, "trie nodes", limits.max_list_items, read::bytes)?,
            })
        })
    }
}
