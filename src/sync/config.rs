//! Downloader configuration: request sizing policy and its limits.

/// How request sizes and timeouts are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizingPolicy {
    /// Per peer, from measured bandwidth and round trip (bandwidth-delay product).
    Adaptive,
    /// The configured sizes, always.
    Fixed,
    /// go-ethereum's constants: capacity-based, ranges clamped to [64 KiB, 512 KiB].
    Geth,
    /// Harmony's port: fixed sizes and a long fixed timeout.
    Harmony,
}

/// Downloader settings (the scenario's `[sync]` table).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncConfig {
    /// Sizing policy.
    pub sizing: SizingPolicy,
    /// Soft byte budget of account range requests.
    pub account_bytes: u64,
    /// Soft byte budget of storage range requests.
    pub storage_bytes: u64,
    /// Code hashes per request.
    pub max_codes: usize,
    /// Trie-node paths per request.
    pub max_trie_nodes: usize,
    /// Requests in flight over all peers.
    pub concurrency: usize,
    /// Upper bound of a request's timeout (ms).
    pub request_timeout_ms: u64,
    /// Number of account chunks the hash space is split into.
    pub account_chunks: usize,
    /// Test-only: plant a known bug class so fuzzers can prove they find it. Never set in
    /// production.
    #[doc(hidden)]
    pub planted: Option<PlantedBug>,
}

/// Known bug classes of sync code that tests plant on purpose (see `syncsim fuzz --plant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlantedBug {
    /// A failed storage request is never retried.
    StorageNoRetry,
    /// An account chunk's "requested" flag is never reset after a failed request.
    RequestedNeverReset,
    /// The completion check is skipped: the node declares success once ranges are fetched.
    SkipFinalCheck,
    /// Inserting an already-known block is treated as a fatal error.
    KnownBlockFatal,
    /// A retried request loses its root.
    RetryLosesRoot,
}

impl PlantedBug {
    /// Every planted bug.
    pub const ALL: [PlantedBug; 5] = [
        PlantedBug::StorageNoRetry,
        PlantedBug::RequestedNeverReset,
        PlantedBug::SkipFinalCheck,
        PlantedBug::KnownBlockFatal,
        PlantedBug::RetryLosesRoot,
    ];

    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::StorageNoRetry => "storage-no-retry",
            PlantedBug::RequestedNeverReset => "requested-never-reset",
            PlantedBug::SkipFinalCheck => "skip-final-check",
            PlantedBug::KnownBlockFatal => "known-block-fatal",
            PlantedBug::RetryLosesRoot => "retry-loses-root",
        }
    }

    /// Parses a kebab-case name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == s)
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            sizing: SizingPolicy::Adaptive,
            account_bytes: 512 * 1024,
            storage_bytes: 512 * 1024,
            max_codes: 84,
            max_trie_nodes: 1024,
            concurrency: 16,
            request_timeout_ms: 10_000,
            account_chunks: 16,
            planted: None,
        }
    }
}

/// Hard protocol caps every request respects whatever the policy says.
pub mod caps {
    /// Largest response budget asked for (snap's soft response limit).
    pub const MAX_RESPONSE_BYTES: u64 = 2 * 1024 * 1024;
    /// Smallest range budget asked for.
    pub const MIN_RESPONSE_BYTES: u64 = 16 * 1024;
    /// Most code hashes in one request.
    pub const MAX_CODES: usize = 1024;
    /// Most trie-node paths in one request.
    pub const MAX_TRIE_NODES: usize = 1024;
    /// Most accounts in one storage request.
    pub const MAX_STORAGE_ACCOUNTS: usize = 512;
    /// Most proof nodes accepted in a reply.
    pub const MAX_PROOF_NODES: usize = 128;
}
