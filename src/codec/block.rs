//! The block messages: header/body requests and responses, block announcements.

use super::read::{self, DecodeBounded, Result};
use super::{Block, BlockBody, CodecError, Header, Limits};
use alloy_primitives::B256;
use alloy_rlp::{RlpEncodable, RlpEncodableWrapper};

/// 0x13: asks for `limit` headers from block `start`, stepping `skip + 1` blocks.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct GetBlockHeaders {
    /// Request id, echoed in the response.
    pub request_id: u64,
    /// Number of the first block wanted.
    pub start: u64,
    /// Most headers wanted; at most `Limits::max_request_items` on decode.
    pub limit: u64,
    /// Blocks skipped between two headers.
    pub skip: u64,
    /// Walk towards lower numbers (wire 1) instead of higher (wire 0).
    pub reverse: bool,
}

/// 0x14: headers answering a `GetBlockHeaders`.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct BlockHeaders {
    /// Request id of the request answered.
    pub request_id: u64,
    /// The headers.
    pub headers: Vec<Header>,
}

/// 0x15: asks for block bodies by block hash.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct GetBlockBodies {
    /// Request id, echoed in the response.
    pub request_id: u64,
    /// Hashes of the blocks whose bodies are wanted.
    pub hashes: Vec<B256>,
}

/// 0x16: bodies answering a `GetBlockBodies`, in request order.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct BlockBodies {
    /// Request id of the request answered.
    pub request_id: u64,
    /// The bodies.
    pub bodies: Vec<BlockBody>,
}

/// 0x17: unsolicited announcement of a full block: `[[header, body]]`.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct NewBlock {
    /// The announced block.
    pub block: Block,
}

/// A `(hash, number)` pair of a `NewBlockHashes` announcement.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct BlockHashNumber {
    /// Block hash.
    pub hash: B256,
    /// Block number.
    pub number: u64,
}

/// 0x18: unsolicited announcement of new heads: `[[hash, number], ...]`.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodableWrapper)]
pub struct NewBlockHashes(pub Vec<BlockHashNumber>);

impl DecodeBounded for GetBlockHeaders {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        let msg = read::fields(buf, "GetBlockHeaders", |b| {
            Ok(Self {
                request_id: read::u64(b)?,
                start: read::u64(b)?,
                limit: read::u64(b)?,
                skip: read::u64(b)?,
                reverse: read::bool(b, "reverse")?,
            })
        })?;
        let count = usize::try_from(msg.limit).unwrap_or(usize::MAX);
        if count > limits.max_request_items {
            return Err(CodecError::TooManyItems {
                what: "requested headers",
                count,
                limit: limits.max_request_items,
            });
        }
        Ok(msg)
    }
}

impl DecodeBounded for BlockHeaders {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        read::fields(buf, "BlockHeaders", |b| {
            Ok(Self {
                request_id: read::u64(b)?,
                headers: read::list(b, "headers", limits.max_list_items, |b| {
                    Header::decode_bounded(b, limits)
                })?,
            })
        })
    }
}

impl DecodeBounded for GetBlockBodies {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        read::fields(buf, "GetBlockBodies", |b| {
            Ok(Self {
                request_id: read::u64(b)?,
                hashes: read::list(b, "requested bodies", limits.max_request_items, |b| {
                    read::b256(b, "block hash")
                })?,
            })
        })
    }
}

impl DecodeBounded for BlockBodies {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        read::fields(buf, "BlockBodies", |b| {
            Ok(Self {
                request_id: read::u64(b)?,
                bodies: read::list(b, "bodies", limits.max_list_items, |b| {
                    BlockBody::decode_bounded(b, limits)
                })?,
            })
        })
    }
}

impl DecodeBounded for NewBlock {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        read::fields(buf, "NewBlock", |b| Ok(Self { block: Block::decode_bounded(b, limits)? }))
    }
}

impl DecodeBounded for BlockHashNumber {
    fn decode_bounded(buf: &mut &[u8], _limits: &Limits) -> Result<Self> {
        read::fields(buf, "block hash announcement", |b| {
            Ok(Self { hash: read::b256(b, "block hash")?, number: read::u64(b)? })
        })
    }
}

impl DecodeBounded for NewBlockHashes {
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self> {
        let max = limits.max_list_items;
        let announced =
            read::list(buf, "block hash announcements", max, |b| BlockHashNumber::decode_bounded(b, limits))?;
        Ok(Self(announced))
    }
}
