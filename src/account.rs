//! Accounts and their two RLP encodings: the full one stored in trie leaves and the
//! "slim" one snap/1 puts on the wire (empty storage root and empty code hash elided).

use crate::primitives::{B256, EMPTY_CODE, EMPTY_ROOT, U256};
use alloy_rlp::{Decodable, Encodable, Header};

/// An account as committed to by the state trie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Account {
    /// Transaction count / creation counter.
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
    /// Root of the account's storage trie (EMPTY_ROOT when it has none).
    pub storage_root: B256,
    /// keccak256 of the account's code (EMPTY_CODE when it has none).
    pub code_hash: B256,
}

impl Default for Account {
    fn default() -> Self {
        Self { nonce: 0, balance: U256::ZERO, storage_root: EMPTY_ROOT, code_hash: EMPTY_CODE }
    }
}

/// Why an account body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountDecodeError {
    /// The bytes are not the expected RLP list.
    #[error("account rlp: {0}")]
    Rlp(String),
    /// A hash field had a length other than 0 (slim only) or 32.
    #[error("account field {field} has length {len}, expected {expected}")]
    FieldLength {
        /// Which field.
        field: &'static str,
        /// Length found.
        len: usize,
        /// Lengths accepted.
        expected: &'static str,
    },
    /// Bytes were left after the account list.
    #[error("trailing bytes after account")]
    Trailing,
}

impl From<alloy_rlp::Error> for AccountDecodeError {
    fn from(e: alloy_rlp::Error) -> Self {
        Self::Rlp(e.to_string())
    }
}

impl Account {
    /// True when the account has code.
    pub fn has_code(&self) -> bool {
        self.code_hash != EMPTY_CODE
    }

    /// True when the account has a non-empty storage trie.
    pub fn has_storage(&self) -> bool {
        self.storage_root != EMPTY_ROOT
    }

    fn payload_len(&self, slim: bool) -> usize {
        let sr = if slim && !self.has_storage() { 1 } else { 33 };
        let ch = if slim && !self.has_code() { 1 } else { 33 };
        self.nonce.length() + self.balance.length() + sr + ch
    }

    fn encode_into(&self, slim: bool, out: &mut Vec<u8>) {
        Header { list: true, payload_length: self.payload_len(slim) }.encode(out);
        self.nonce.encode(out);
        self.balance.encode(out);
        if slim && !self.has_storage() {
            out.push(0x80);
        } else {
            self.storage_root.encode(out);
        }
        if slim && !self.has_code() {
            out.push(0x80);
        } else {
            self.code_hash.encode(out);
        }
    }

    /// Appends the full RLP (see [`Account::encode_full`]) to `out`.
    pub fn encode_full_into(&self, out: &mut Vec<u8>) {
        self.encode_into(false, out);
    }

    /// Appends the slim RLP (see [`Account::encode_slim`]) to `out`.
    pub fn encode_slim_into(&self, out: &mut Vec<u8>) {
        self.encode_into(true, out);
    }

    /// Full RLP `[nonce, balance, storageRoot, codeHash]`: the trie leaf value.
    pub fn encode_full(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        self.encode_into(false, &mut out);
        out
    }

    /// Slim RLP: as full, but an empty storage root / code hash is an empty string.
    pub fn encode_slim(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        self.encode_into(true, &mut out);
        out
    }

    fn decode_with(mut buf: &[u8], slim: bool) -> Result<Self, AccountDecodeError> {
        let header = Header::decode(&mut buf)?;
        if !header.list {
            return Err(AccountDecodeError::Rlp("expected a list".into()));
        }
        if header.payload_length != buf.len() {
            return Err(AccountDecodeError::Trailing);
        }
        let nonce = u64::decode(&mut buf)?;
        let balance = U256::decode(&mut buf)?;
        let storage_root = decode_hash(&mut buf, slim, "storage_root", EMPTY_ROOT)?;
        let code_hash = decode_hash(&mut buf, slim, "code_hash", EMPTY_CODE)?;
        if !buf.is_empty() {
            return Err(AccountDecodeError::Trailing);
        }
        Ok(Self { nonce, balance, storage_root, code_hash })
    }

    /// Decodes the full encoding (hash fields must be 32 bytes).
    pub fn decode_full(buf: &[u8]) -> Result<Self, AccountDecodeError> {
        Self::decode_with(buf, false)
    }

    /// Decodes the slim encoding (hash fields 0 or 32 bytes).
    pub fn decode_slim(buf: &[u8]) -> Result<Self, AccountDecodeError> {
        Self::decode_with(buf, true)
    }
}

fn decode_hash(
    buf: &mut &[u8],
    slim: bool,
    field: &'static str,
    empty: B256,
) -> Result<B256, AccountDecodeError> {
    let h = Header::decode(buf)?;
    if h.list {
        return Err(AccountDecodeError::Rlp(format!("{field}: expected a string")));
    }
    let len = h.payload_length;
    match len {
        0 if slim => Ok(empty),
        32 => {
            let bytes = buf.get(..32).ok_or_else(|| AccountDecodeError::Rlp("short hash".into()))?;
            let hash = B256::from_slice(bytes);
            *buf = &buf[32..];
            Ok(hash)
        }
        _ => {
            Err(AccountDecodeError::FieldLength { field, len, expected: if slim { "0 or 32" } else { "32" } })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slim_and_full_round_trip() {
        let a = Account { nonce: 7, balance: U256::from(1_000_000u64), ..Default::default() };
        assert_eq!(Account::decode_full(&a.encode_full()).unwrap(), a);
        assert_eq!(Account::decode_slim(&a.encode_slim()).unwrap(), a);
        assert_eq!(a.encode_full().len(), a.encode_slim().len() + 65);
        let b = Account { storage_root: B256::repeat_byte(1), code_hash: B256::repeat_byte(2), ..a };
        assert_eq!(Account::decode_slim(&b.encode_slim()).unwrap(), b);
        assert_eq!(b.encode_slim(), b.encode_full());
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut bad = Account::default().encode_slim();
        assert!(Account::decode_full(&bad).is_err());
        bad.push(0);
        assert!(Account::decode_slim(&bad).is_err());
        assert!(Account::decode_slim(&[0xc0]).is_err());
        assert!(Account::decode_slim(&[]).is_err());
    }
}
