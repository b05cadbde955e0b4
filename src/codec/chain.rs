//! The simplified chain data carried by block messages: headers, bodies, blocks.

use super::read::{self, DecodeBounded, Result};
use super::{CodecError, Limits};
use alloy_primitives::{keccak256, Bytes, B256, U256};
use alloy_rlp::{BufMut, Encodable, Header as RlpHeader, RlpEncodable};

/// A block header: `[parent_hash, number, state_root, body_hash, timestamp, extra]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, RlpEncodable)]
pub struct Header {
    /// Hash of the parent block's header.
    pub parent_hash: B256,
    /// Block number.
    pub number: u64,
    /// State root after applying this block's body.
    pub state_root: B256,
    /// `BlockBody::hash()` of this block's body.
    pub body_hash: B256,
    /// Block timestamp.
    pub timestamp: u64,
    /// Free-form extra data.
    pub extra: Bytes,
}

impl Header {
    /// The block hash: keccak256 of the header's RLP.
    pub fn hash(&self) -> B256 {
        keccak256(alloy_rlp::encode(self))
    }
}

/// One storage write of an `AccountChange::Set`: `[slot, value]`; value 0 deletes the slot.
#[derive(Debug, Clone, Default, PartialEq, Eq, RlpEncodable)]
pub struct StorageChange {
    /// Hash of the slot key.
    pub slot: B256,
    /// New value; zero deletes the slot.
    pub value: U256,
}

/// A change to one account, on the wire
/// `[account, kind, nonce, balance, code, [[slot, value], ...]]` with kind 0 = delete, 1 = set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChange {
    /// Kind 0: remove the account and all its storage (other wire fields empty/zero).
    Delete {
        /// Hash of the account address.
        account: B256,
    },
    /// Kind 1: create or update the account.
    Set {
        /// Hash of the account address.
        account: B256,
        /// New nonce.
        nonce: u64,
        /// New balance.
        balance: U256,
        /// New code; empty keeps the existing code.
        code: Bytes,
        /// Storage writes; a zero value deletes the slot.
        storage: Vec<StorageChange>,
    },
}

impl AccountChange {
    /// Wire kind of `Delete`.
    pub const KIND_DELETE: u64 = 0;
    /// Wire kind of `Set`.
    pub const KIND_SET: u64 = 1;

    /// Hash of the account address this change applies to.
    pub fn account(&self) -> B256 {
        match self {
            Self::Delete { account } | Self::Set { account, .. } => *account,
        }
    }

    /// The wire fields `(account, kind, nonce, balance, code, storage)`.
    fn wire(&self) -> (&B256, u64, u64, U256, &[u8], &[StorageChange]) {
        match self {
            Self::Delete { account } => (account, Self::KIND_DELETE, 0, U256::ZERO, &[], &[]),
            Self::Set { account, nonce, balance, code, storage } => {
                (account, Self::KIND_SET, *nonce, *balance, code, storage)
            }
        }
    }

    fn payload_length(&self) -> usize {
        let (account, kind, nonce, balance, code, storage) = self.wire();
        account.length()
            + kind.length()
            + nonce.length()
            + balance.length()
            + code.length()
            + alloy_rlp::list_length(storage)
    }
}

impl Encodable for AccountChange {
    fn encode(&self, out: &mut dyn BufMut) {
        RlpHeader { list: true, payload_length: self.payload_length() }.encode(out);
        let (account, kind, nonce, balance, code, storage) = self.wire();
        account.encode(out);
        kind.encode(out);
        nonce.encode(out);
        balance.encode(out);
        code.encode(out);
        alloy_rlp::encode_list(storage, out);
    }

    fn length(&self) -> usize {
        let payload_length = self.payload_length();
        payload_length + alloy_rlp::length_of_length(payload_length)
    }
}

/// A block body: `[changes]`, the state changes the block applies, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, RlpEncodable)]
pub struct BlockBody {
    /// Account changes, applied in order.
    pub changes: Vec<AccountChange>,
}

impl BlockBody {
    /// keccak256 of the body's RLP; a header's `body_hash` commits to it.
    pub fn hash(&self) -> B256 {
        keccak256(alloy_rlp::encode(self))
    }
}

/// A full block: `[header, body]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, RlpEncodable)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The body.
    pub body: BlockBody,
}

impl DecodeBounded for Header {
    fn decode_bounded(buf: &mut &[u8], _limits: &Limits) -> Result<Self> {
        read::fields(buf, "header", |b| {
            Ok(Self {
                parent_hash: read::b256(b, "parent hash")?,
                number: read::u64(b)?,
                state_root: read::b256(b, "state root")?,
                body_hash: read::b256(b, "body hash")?,
                timestamp: read::u64(b)?,
                extra: read::bytes(b)?,
            })
        })
    }
}

impl DecodeBounded for StorageChange {
    fn decode_bounded(buf: &mut &[u8], _limits: &Limits) -> Result<Self> {
        read::fields(buf, "storage change", |b| {
            Ok(Self { slot: read::b256(b, "slot hash")?, value: read::u256(b)? })
        })
    }
}

impl DecodeBounded for AccountChange {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        read::fields(buf, "account change", |b| {
            let account = read::b256(b, "account hash")?;
            let kind = read::u64(b)?;
            if kind != Self::KIND_DELETE && kind != Self::KIND_SET {
                return Err(CodecError::BadChangeKind(kind));
            }
            let nonce = read::u64(b)?;
            let balance = read::u256(b)?;
            let code = read::bytes(b)?;
            let storage = read::list(b, "storage changes", limits.max_list_items, |b| {
                StorageChange::decode_bounded(b, limits)
            })?;
            if kind == Self::KIND_SET {
                return Ok(Self::Set { account, nonce, balance, code, storage });
            }
            if nonce != 0 || !balance.is_zero() || !code.is_empty() || !storage.is_empty() {
                return Err(CodecError::NonEmptyDelete);
            }
            Ok(Self::Delete { account })
        })
    }
}

impl DecodeBounded for BlockBody {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        read::fields(buf, "block body", |b| {
            Ok(Self {
                changes: read::list(b, "account changes", limits.max_list_items, |b| {
                    AccountChange::decode_bounded(b, limits)
                })?,
            })
        })
    }
}

impl DecodeBounded for Block {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        read::fields(buf, "block", |b| {
            Ok(Self {
                header: Header::decode_bounded(b, limits)?,
                body: BlockBody::decode_bounded(b, limits)?,
            })
        })
    }
}
