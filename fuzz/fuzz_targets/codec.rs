//! Fuzz target `codec`: arbitrary bytes into the snap/1 + block wire decoder.
//!
//! Asserted for every input:
//! - `Message::decode` never panics, under the default limits and under tiny ones;
//! - whatever decodes re-encodes (`encoded_len() == encode().len()`) and decodes back to an
//!   equal message: `decode(encode(m)) == m`, under the limits it was decoded with (when the
//!   re-encoding fits their byte limit) and under the default limits;
//! - limits only ever remove messages: a message accepted under the tiny limits is accepted,
//!   equal, under the default ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncsim_node::codec::{Limits, Message};

/// Small enough that the fuzzer reaches every list-size and message-size check quickly.
const TINY: Limits = Limits { max_message_bytes: 256, max_list_items: 4, max_request_items: 2 };

fn round_trip(m: &Message, limits: &Limits) {
    let bytes = m.encode();
    assert_eq!(bytes.len(), m.encoded_len(), "encoded_len disagrees with encode for {m:?}");
    assert_eq!(bytes.first(), Some(&m.code()));
    let again = Message::decode(&bytes, &Limits::default())
        .unwrap_or_else(|e| panic!("re-encoded {} does not decode: {e}\nmessage: {m:?}", m.kind_name()));
    assert_eq!(&again, m, "decode(encode(m)) != m");
    if bytes.len() <= limits.max_message_bytes {
        let again = Message::decode(&bytes, limits).unwrap_or_else(|e| {
            panic!("re-encoded {} fails its own limits: {e}\nmessage: {m:?}", m.kind_name())
        });
        assert_eq!(&again, m, "decode(encode(m)) != m under {limits:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let default = Limits::default();
    let full = Message::decode(data, &default);
    if let Ok(m) = &full {
        round_trip(m, &default);
    }
    let tiny = Message::decode(data, &TINY);
    if let Ok(m) = &tiny {
        round_trip(m, &TINY);
        assert_eq!(
            full.as_ref().ok(),
            Some(m),
            "accepted under tiny limits but not equally under the defaults"
        );
    }
});
