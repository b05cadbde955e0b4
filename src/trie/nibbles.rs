//! Nibble paths: keys as sequences of 4-bit digits, and the hex-prefix (compact) encoding.

use crate::primitives::B256;

/// The `i`-th nibble of a 32-byte key (`i < 64`).
#[inline]
pub fn nibble(key: &B256, i: usize) -> u8 {
    let b = key[i / 2];
    if i.is_multiple_of(2) {
        b >> 4
    } else {
        b & 0x0f
    }
}

/// All 64 nibbles of a key.
pub fn unpack(key: &B256) -> Vec<u8> {
    (0..64).map(|i| nibble(key, i)).collect()
}

/// Packs exactly 64 nibbles back into a key; `None` for any other length.
pub fn pack(nibbles: &[u8]) -> Option<B256> {
    if nibbles.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in nibbles.chunks(2).enumerate() {
        out[i] = (pair[0] << 4) | (pair[1] & 0x0f);
    }
    Some(B256::from(out))
}

/// Smallest key having `prefix` as its first nibbles (the rest zero).
pub fn min_key_with_prefix(prefix: &[u8]) -> B256 {
    key_with_prefix(prefix, 0)
}

/// Largest key having `prefix` as its first nibbles (the rest 0xf).
pub fn max_key_with_prefix(prefix: &[u8]) -> B256 {
    key_with_prefix(prefix, 0x0f)
}

fn key_with_prefix(prefix: &[u8], fill: u8) -> B256 {
    let mut n = [fill; 64];
    let len = prefix.len().min(64);
    n[..len].copy_from_slice(&prefix[..len]);
    pack(&n).unwrap_or_default()
}

/// Hex-prefix encoding of a nibble path (`leaf` sets the terminator flag).
pub fn hex_prefix_encode(path: &[u8], leaf: bool) -> Vec<u8> {
    let flag = if leaf { 2u8 } else { 0 };
    let mut out = Vec::with_capacity(path.len() / 2 + 1);
    let rest = if path.len() % 2 == 1 {
        out.push(((flag | 1) << 4) | path[0]);
        &path[1..]
    } else {
        out.push(flag << 4);
        path
    };
    for pair in rest.chunks(2) {
        out.push((pair[0] << 4) | pair[1]);
    }
    out
}

/// Decodes a hex-prefix path into (nibbles, is_leaf); `None` for a malformed flag byte.
pub fn hex_prefix_decode(bytes: &[u8]) -> Option<(Vec<u8>, bool)> {
    let first = *bytes.first()?;
    let flag = first >> 4;
    if flag > 3 {
        return None;
    }
    let leaf = flag & 2 != 0;
    let odd = flag & 1 != 0;
    let mut out = Vec::with_capacity(bytes.len() * 2);
    if odd {
        out.push(first & 0x0f);
    } else if first & 0x0f != 0 {
        return None;
    }
    for b in &bytes[1..] {
        out.push(b >> 4);
        out.push(b & 0x0f);
    }
    Some((out, leaf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_prefix_round_trip() {
        for len in 0..8 {
            let path: Vec<u8> = (0..len).map(|i| (i * 7 % 16) as u8).collect();
            for leaf in [false, true] {
                let enc = hex_prefix_encode(&path, leaf);
                assert_eq!(hex_prefix_decode(&enc), Some((path.clone(), leaf)));
            }
        }
        assert_eq!(hex_prefix_decode(&[0x41]), None);
        assert_eq!(hex_prefix_decode(&[0x05]), None);
    }

    #[test]
    fn pack_unpack() {
        let k = B256::repeat_byte(0xa5);
        assert_eq!(pack(&unpack(&k)), Some(k));
        assert_eq!(max_key_with_prefix(&[1]), {
            let mut b = [0xffu8; 32];
            b[0] = 0x1f;
            B256::from(b)
        });
    }
}
