//! The `Message` enum: one code byte, then the RLP of the body.

use super::read::DecodeBounded;
use super::*;
use alloy_rlp::Encodable;

/// Declares `Message` and its per-variant dispatch from one `Variant = code` table.
macro_rules! messages {
    ($($(#[$doc:meta])* $name:ident = $code:literal,)*) => {
        /// A snap/1 or block wire message.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Message {
            $($(#[$doc])* $name($name),)*
        }

        impl Message {
            /// Every message code the codec knows, in ascending order.
            pub const CODES: &'static [u8] = &[$($code),*];

            /// The message code: the first byte on the wire.
            pub fn code(&self) -> u8 {
                match self {
                    $(Self::$name(_) => $code,)*
                }
            }

            /// The message's name, e.g. `"GetAccountRange"`.
            pub fn kind_name(&self) -> &'static str {
                match self {
                    $(Self::$name(_) => stringify!($name),)*
                }
            }

            /// The name of the message a code stands for, if it is known.
            pub fn name_of_code(code: u8) -> Option<&'static str> {
                match code {
                    $($code => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            fn body_length(&self) -> usize {
                match self {
                    $(Self::$name(body) => body.length(),)*
                }
            }

            fn encode_body(&self, out: &mut Vec<u8>) {
                match self {
                    $(Self::$name(body) => body.encode(out),)*
                }
            }

            fn decode_body(code: u8, buf: &mut &[u8], limits: &Limits) -> Result<Self, CodecError> {
                match code {
                    $($code => Ok(Self::$name($name::decode_bounded(buf, limits)?)),)*
                    _ => Err(CodecError::UnknownCode(code)),
                }
            }
        }

        $(
            impl From<$name> for Message {
                fn from(body: $name) -> Self {
                    Self::$name(body)
                }
            }
        )*
    };
}

messages! {
    /// 0x00 snap/1 `GetAccountRange`.
    GetAccountRange = 0x00,
    /// 0x01 snap/1 `AccountRange`.
    AccountRange = 0x01,
    /// 0x02 snap/1 `GetStorageRanges`.
    GetStorageRanges = 0x02,
    /// 0x03 snap/1 `StorageRanges`.
    StorageRanges = 0x03,
    /// 0x04 snap/1 `GetByteCodes`.
    GetByteCodes = 0x04,
    /// 0x05 snap/1 `ByteCodes`.
    ByteCodes = 0x05,
    /// 0x06 snap/1 `GetTrieNodes`.
    GetTrieNodes = 0x06,
    /// 0x07 snap/1 `TrieNodes`.
    TrieNodes = 0x07,
    /// 0x13 `GetBlockHeaders`.
    GetBlockHeaders = 0x13,
    /// 0x14 `BlockHeaders`.
    BlockHeaders = 0x14,
    /// 0x15 `GetBlockBodies`.
    GetBlockBodies = 0x15,
    /// 0x16 `BlockBodies`.
    BlockBodies = 0x16,
    /// 0x17 `NewBlock` (unsolicited, no request id).
    NewBlock = 0x17,
    /// 0x18 `NewBlockHashes` (unsolicited, no request id).
    NewBlockHashes = 0x18,
}

impl Message {
    /// The request id of a request or response; `None` for announcements.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            Self::GetAccountRange(m) => Some(m.request_id),
            Self::AccountRange(m) => Some(m.request_id),
            Self::GetStorageRanges(m) => Some(m.request_id),
            Self::StorageRanges(m) => Some(m.request_id),
            Self::GetByteCodes(m) => Some(m.request_id),
            Self::ByteCodes(m) => Some(m.request_id),
            Self::GetTrieNodes(m) => Some(m.request_id),
            Self::TrieNodes(m) => Some(m.request_id),
            Self::GetBlockHeaders(m) => Some(m.request_id),
            Self::BlockHeaders(m) => Some(m.request_id),
            Self::GetBlockBodies(m) => Some(m.request_id),
            Self::BlockBodies(m) => Some(m.request_id),
            Self::NewBlock(_) | Self::NewBlockHashes(_) => None,
        }
    }

    /// Size in bytes of `encode()`'s output, code byte included, without encoding.
    pub fn encoded_len(&self) -> usize {
        1 + self.body_length()
    }

    /// Encodes the message: code byte, then the body's RLP. No limit is checked.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(self.code());
        self.encode_body(&mut out);
        out
    }

    /// Encodes the message, failing with `TooLarge` if it exceeds `limits.max_message_bytes`.
    pub fn encode_checked(&self, limits: &Limits) -> Result<Vec<u8>, CodecError> {
        let size = self.encoded_len();
        if size > limits.max_message_bytes {
            return Err(CodecError::TooLarge { size, limit: limits.max_message_bytes });
        }
        Ok(self.encode())
    }

    /// Decodes one whole message from untrusted bytes, enforcing `limits`.
    ///
    /// Never panics; memory use is bounded by a small multiple of `bytes.len()`
    /// and by the list limits.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, CodecError> {
        Self::decode_checked(bytes, limits)
    }

    /// [`Message::decode`] taking ownership of the buffer: byte strings in the message
    /// (account bodies, slot values, proof nodes, codes) become shared slices of it instead
    /// of one allocation and copy each.
    pub fn decode_owned(bytes: Vec<u8>, limits: &Limits) -> Result<Self, CodecError> {
        super::read::with_source(bytes.into(), |b| Self::decode_checked(b, limits))
    }

    fn decode_checked(bytes: &[u8], limits: &Limits) -> Result<Self, CodecError> {
        if bytes.len() > limits.max_message_bytes {
            return Err(CodecError::TooLarge { size: bytes.len(), limit: limits.max_message_bytes });
        }
        let Some((&code, mut body)) = bytes.split_first() else {
            return Err(CodecError::Empty);
        };
        let message = Self::decode_body(code, &mut body, limits)?;
        if !body.is_empty() {
            return Err(CodecError::TrailingBytes);
        }
        Ok(message)
    }
}
