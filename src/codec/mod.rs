//! Wire codec for snap/1 and block messages.
//!
//! A message on the wire is one code byte followed by the RLP of its body.
//! [`Message::decode`] treats its input as hostile: it enforces [`Limits`] while
//! decoding (list sizes are checked before anything is allocated), rejects
//! trailing bytes and malformed fields with a typed [`CodecError`], and never panics.

mod block;
mod chain;
mod error;
mod limits;
mod message;
mod read;
mod snap;

#[cfg(test)]
mod strategies;
#[cfg(test)]
mod tests;

pub use block::{
    BlockBodies, BlockHashNumber, BlockHeaders, GetBlockBodies, GetBlockHeaders, NewBlock, NewBlockHashes,
};
pub use chain::{AccountChange, Block, BlockBody, Header, StorageChange};
pub use error::CodecError;
pub use limits::Limits;
pub use message::Message;
pub use snap::{
    AccountData, AccountRange, ByteCodes, GetAccountRange, GetByteCodes, GetStorageRanges, GetTrieNodes,
    StorageData, StorageRanges, TrieNodes,
};
