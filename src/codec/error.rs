//! Errors returned when decoding (or size-checking) a wire message.

/// Why a wire message could not be decoded or encoded within limits.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The input was empty: not even a message code byte.
    #[error("empty message: no message code byte")]
    Empty,
    /// The first byte is not a known snap/1 or block message code.
    #[error("unknown message code {0:#04x}")]
    UnknownCode(u8),
    /// The body is not well-formed (canonical) RLP of the expected shape.
    #[error("malformed RLP: {0}")]
    Rlp(#[from] alloy_rlp::Error),
    /// The whole message is larger than `Limits::max_message_bytes`.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the message in bytes, code byte included.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A list (or a requested count) holds more items than the limits allow.
    #[error("too many {what}: {count} exceeds the limit of {limit}")]
    TooManyItems {
        /// What the list holds, e.g. "accounts".
        what: &'static str,
        /// How many items the input holds or asks for.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A hash field is not exactly 32 bytes long.
    #[error("{what} must be 32 bytes, got {len}")]
    BadHashLength {
        /// Which field, e.g. "state root".
        what: &'static str,
        /// Its actual length in bytes.
        len: usize,
    },
    /// A storage range bound is neither empty nor exactly 32 bytes long.
    #[error("{what} must be empty or 32 bytes, got {len}")]
    BadBoundLength {
        /// Which bound: "storage starting hash" or "storage limit hash".
        what: &'static str,
        /// Its actual length in bytes.
        len: usize,
    },
    /// Bytes remain after the message body.
    #[error("trailing bytes after the message body")]
    TrailingBytes,
    /// A structure's RLP list holds more fields than it should.
    #[error("{what} has extra fields")]
    ExtraFields {
        /// Which structure, e.g. "header".
        what: &'static str,
    },
    /// A `GetTrieNodes` request holds a path set with no paths.
    #[error("empty trie node path set")]
    EmptyPathSet,
    /// A boolean field holds something other than 0 or 1.
    #[error("{what} must be 0 or 1, got {value}")]
    BadBool {
        /// Which field, e.g. "reverse".
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// An account change's kind is neither 0 (delete) nor 1 (set).
    #[error("unknown account change kind {0}")]
    BadChangeKind(u64),
    /// A delete account change carries a non-zero nonce/balance or non-empty code/storage.
    #[error("account delete carries non-empty fields")]
    NonEmptyDelete,
}
