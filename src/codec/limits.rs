//! Decoding limits that bound the work and memory an untrusted message can cost.

/// Bounds enforced while decoding a message, before anything is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted message in bytes, code byte included (default 10 MiB).
    pub max_message_bytes: usize,
    /// Most items in any one list of a response or announcement (default 100 000).
    pub max_list_items: usize,
    /// Most items in any one list of a request, and most headers asked for (default 1024).
    pub max_request_items: usize,
}

impl Limits {
    /// Default `max_message_bytes`: 10 MiB.
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
    /// Default `max_list_items`.
    pub const DEFAULT_MAX_LIST_ITEMS: usize = 100_000;
    /// Default `max_request_items`.
    pub const DEFAULT_MAX_REQUEST_ITEMS: usize = 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: Self::DEFAULT_MAX_MESSAGE_BYTES,
            max_list_items: Self::DEFAULT_MAX_LIST_ITEMS,
            max_request_items: Self::DEFAULT_MAX_REQUEST_ITEMS,
        }
    }
}
