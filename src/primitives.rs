//! Shared primitive types and the two well-known hashes of Ethereum state.

pub use alloy_primitives::{keccak256, Bytes, B256, U256};

/// Root of the empty trie: keccak256(rlp("")).
pub const EMPTY_ROOT: B256 =
    alloy_primitives::b256!("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// Hash of empty code: keccak256("").
pub const EMPTY_CODE: B256 =
    alloy_primitives::b256!("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
