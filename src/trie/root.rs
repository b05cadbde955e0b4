//! Root computation over sorted leaves with alloy-trie's `HashBuilder`.

use crate::primitives::{B256, U256};
use alloy_trie::{HashBuilder, Nibbles};

/// Root of the trie holding `leaves` (keys strictly increasing; caller guarantees order).
///
/// # Panics
/// If keys are not strictly increasing (alloy-trie's contract); never call it with
/// unvalidated peer data.
pub fn root_from_sorted<'a>(leaves: impl IntoIterator<Item = (B256, &'a [u8])>) -> B256 {
    let mut hb = HashBuilder::default();
    for (key, value) in leaves {
        hb.add_leaf(Nibbles::unpack(key), value);
    }
    hb.root()
}

/// The trie leaf value of a storage slot: RLP of the integer without leading zeros.
pub fn storage_value_rlp(value: U256) -> Vec<u8> {
    alloy_rlp::encode(value)
}

/// [`storage_value_rlp`], appended to `out`.
pub fn storage_value_rlp_into(value: U256, out: &mut Vec<u8>) {
    alloy_rlp::Encodable::encode(&value, out);
}
