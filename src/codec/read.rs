//! Bounded RLP reading helpers shared by the message decoders.
//!
//! Every helper consumes exactly one RLP item from the front of `buf`. Lists are
//! walked once header-by-header to count their items (no allocation) and checked
//! against a limit before their `Vec` is allocated, so the capacity comes from items
//! actually present in the input, never from a length the sender claims.

use super::{CodecError, Limits};
use alloy_primitives::{Bytes, B256, U256};
use alloy_rlp::{Decodable, Header};

/// Result type of the decoders.
pub(super) type Result<T> = core::result::Result<T, CodecError>;

/// A wire structure that decodes itself from RLP while enforcing `Limits`.
pub(super) trait DecodeBounded: Sized {
    /// Decodes one item from the front of `buf`, advancing it.
    fn decode_bounded(buf: &mut &[u8], limits: &Limits) -> Result<Self>;
}

/// Reads an RLP string and returns its payload.
pub(super) fn string<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8]> {
    Ok(Header::decode_bytes(buf, false)?)
}

thread_local! {
    /// The buffer being decoded by [`with_source`], if any: strings inside it are taken as
    /// shared slices of it instead of copies.
    static SOURCE: std::cell::RefCell<Option<Bytes>> = const { std::cell::RefCell::new(None) };
}

/// Runs `decode` with `whole` as the source that [`bytes`] slices from (no allocation or copy
/// per string; the slices keep `whole` alive). Restores the previous source afterwards.
pub(super) fn with_source<T>(whole: Bytes, decode: impl FnOnce(&[u8]) -> T) -> T {
    struct Restore(Option<Bytes>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            SOURCE.with(|s| *s.borrow_mut() = prev);
        }
    }
    let view = whole.clone();
    let _restore = Restore(SOURCE.with(|s| s.borrow_mut().replace(whole)));
    decode(&view)
}

/// Reads an RLP string as owned bytes: a slice of the source buffer when decoding inside
/// [`with_source`], else a copy.
pub(super) fn bytes(buf: &mut &[u8]) -> Result<Bytes> {
    let raw = string(buf)?;
    Ok(SOURCE.with(|s| match &*s.borrow() {
        Some(whole) if contains(whole, raw) => whole.slice_ref(raw),
        _ => Bytes::copy_from_slice(raw),
    }))
}

/// Whether `part` lies inside `whole`'s memory.
fn contains(whole: &[u8], part: &[u8]) -> bool {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    p >= w && p + part.len() <= w + whole.len()
}

/// Reads a canonical RLP unsigned integer that fits in a `u64`.
pub(super) fn u64(buf: &mut &[u8]) -> Result<u64> {
    Ok(u64::decode(buf)?)
}

/// Reads a canonical RLP unsigned integer that fits in a `U256`.
pub(super) fn u256(buf: &mut &[u8]) -> Result<U256> {
    Ok(U256::decode(buf)?)
}

/// Reads an integer that must be 0 or 1.
pub(super) fn bool(buf: &mut &[u8], what: &'static str) -> Result<bool> {
    match u64(buf)? {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(CodecError::BadBool { what, value }),
    }
}

/// Reads a string that must be exactly 32 bytes long.
pub(super) fn b256(buf: &mut &[u8], what: &'static str) -> Result<B256> {
    let raw = string(buf)?;
    B256::try_from(raw).map_err(|_| CodecError::BadHashLength { what, len: raw.len() })
}

/// Reads a string that must be empty (`None`) or exactly 32 bytes long (`Some`).
pub(super) fn opt_b256(buf: &mut &[u8], what: &'static str) -> Result<Option<B256>> {
    let raw = string(buf)?;
    match raw.len() {
        0 => Ok(None),
        _ => B256::try_from(raw).map(Some).map_err(|_| CodecError::BadBoundLength { what, len: raw.len() }),
    }
}

/// Reads an RLP list holding a fixed structure: `read` consumes the fields, and
/// any field left over is an error.
pub(super) fn fields<'a, T>(
    buf: &mut &'a [u8],
    what: &'static str,
    read: impl FnOnce(&mut &'a [u8]) -> Result<T>,
) -> Result<T> {
    let mut payload = Header::decode_bytes(buf, true)?;
    let value = read(&mut payload)?;
    if payload.is_empty() {
        Ok(value)
    } else {
        Err(CodecError::ExtraFields { what })
    }
}

/// Reads an RLP list of at most `limit` items, each read by `item`.
pub(super) fn list<'a, T>(
    buf: &mut &'a [u8],
    what: &'static str,
    limit: usize,
    mut item: impl FnMut(&mut &'a [u8]) -> Result<T>,
) -> Result<Vec<T>> {
    let mut payload = Header::decode_bytes(buf, true)?;
    let count = count_items(payload)?;
    if count > limit {
        return Err(CodecError::TooManyItems { what, count, limit });
    }
    // `count` is the number of items present (each at least one input byte) and is
    // at most `limit`, so this capacity is bounded by both the input and the limit.
    let mut out = Vec::with_capacity(count);
    while !payload.is_empty() {
        out.push(item(&mut payload)?);
    }
    Ok(out)
}

/// Counts the top-level items of a list payload by skipping over their headers.
fn count_items(mut payload: &[u8]) -> Result<usize> {
    let mut count = 0usize;
    while !payload.is_empty() {
        let header = Header::decode(&mut payload)?;
        payload = payload.get(header.payload_length..).ok_or(alloy_rlp::Error::InputTooShort)?;
        count += 1;
    }
    Ok(count)
}
