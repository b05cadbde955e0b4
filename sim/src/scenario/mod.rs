//! Scenario files: what network, chain and state a simulation runs, and
//! what it expects to happen.
//!
//! A scenario is a TOML file (see the crate docs / `scenarios/` for the
//! format). [`Scenario::load`] reads and validates one; every problem is a
//! [`ScenarioError`] whose message names the file, the line and the dotted
//! key (`scenarios/x.toml:12: key 'sync.concurrency': expected a positive
//! integer, got -3`). [`Scenario::load_with_overrides`] applies `--set
//! KEY=VALUE` overrides, and [`Scenario::to_toml_string`] writes a canonical
//! file that parses back to the same scenario.

mod build;
mod tree;
mod write;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::{Bandwidth, Duration, Size};

/// A complete, validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// `name` (required): a short identifier.
    pub name: String,
    /// `description` (optional).
    pub description: Option<String>,
    /// `seed` (default 0): seeds every random choice; `--seed` overrides it.
    pub seed: u64,
    /// `[state]`: the state the network serves at the start.
    pub state: StateSpec,
    /// `[chain]`: the chain the peers serve.
    pub chain: ChainSpec,
    /// `[[peers]]`: one or more groups of virtual peers.
    pub peers: Vec<PeerGroup>,
    /// `[faults]`: network and node faults.
    pub faults: Faults,
    /// `[sync]`: the downloader's settings.
    pub sync: SyncSpec,
    /// `[expect]`: what must hold at the end.
    pub expect: Expect,
}

/// `[state]`: either a genesis file or a synthetic state (exactly one of
/// `genesis` and `accounts` must be given).
#[derive(Clone, Debug, PartialEq)]
pub enum StateSpec {
    /// `genesis = "path"` or `"path#case"`: a genesis JSON file. The path in the file is
    /// relative to the scenario file; this holds it resolved (absolute).
    Genesis {
        /// Absolute path of the genesis file.
        path: PathBuf,
        /// `genesis = "file.json#NAME"`: the named case of a file of named cases (e.g.
        /// ethereum/tests' GenesisTests); `None` takes the file's genesis (its first case).
        case: Option<String>,
    },
    /// A generated state.
    Synthetic {
        /// `accounts` (required, > 0): number of accounts.
        accounts: u64,
        /// `contracts` (default 0, <= accounts): how many accounts have code
        /// and storage.
        contracts: u64,
        /// `storage_slots` (default 0): total slots over all contracts
        /// (needs contracts > 0 if non-zero).
        storage_slots: u64,
        /// `storage_skew` (default 0.0 = even): zipf exponent of the slot
        /// distribution over contracts.
        storage_skew: f64,
        /// `code_size = [min, max]` in bytes (default `["100B", "24KiB"]`).
        code_size: (u64, u64),
        /// `unique_codes` (default = contracts, or 1 if there are none):
        /// distinct codes shared among the contracts; 1..=max(contracts, 1).
        unique_codes: u64,
        /// `boundary_keys` (default false): some account keys sit exactly on the edges of
        /// the 16 equal chunks of the hash space the node splits its account ranges into
        /// (each chunk's first and last key, and the key before its last).
        boundary_keys: bool,
    },
}

/// `[chain]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainSpec {
    /// `blocks` (default 0 = none): blocks before the node starts.
    pub blocks: u64,
    /// `block_time` (default `"12s"`, > 0).
    pub block_time: Duration,
    /// `changes_per_block` (default 0): state changes per new block.
    pub changes_per_block: u64,
    /// `state_history` (default 128, > 0): how many recent states peers keep.
    pub state_history: u64,
    /// `reorg = { depth, at }` (default none).
    pub reorg: Option<Reorg>,
}

impl Default for ChainSpec {
    /// blocks 0, block_time 12s, changes_per_block 0, state_history 128, no
    /// reorg.
    fn default() -> Self {
        ChainSpec {
            blocks: 0,
            block_time: Duration::from_secs(12),
            changes_per_block: 0,
            state_history: 128,
            reorg: None,
        }
    }
}

/// `[chain] reorg = { depth = 5, at = "30s" }`: at virtual time `at`, a fork
/// `depth` blocks deep replaces the chain head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reorg {
    /// Number of blocks replaced (> 0).
    pub depth: u64,
    /// Virtual time of the reorg.
    pub at: Duration,
}

/// One `[[peers]]` group: `count` peers that all behave alike.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerGroup {
    /// `count` (default 1, > 0).
    pub count: u32,
    /// `behaviour` (default `"honest"`): one name or a non-empty list of
    /// distinct names.
    pub behaviour: Vec<Behaviour>,
    /// `latency` (default `"20ms..80ms"`).
    pub latency: Latency,
    /// `bandwidth` (default `"10MiB/s"`, > 0).
    pub bandwidth: Bandwidth,
    /// `join_at` (default none = from the start).
    pub join_at: Option<Duration>,
    /// `leave_at` (default none = never; after `join_at`).
    pub leave_at: Option<Duration>,
}

impl Default for PeerGroup {
    /// One honest peer, latency 20ms..80ms, 10MiB/s, present throughout.
    fn default() -> Self {
        PeerGroup {
            count: 1,
            behaviour: vec![Behaviour::Honest],
            latency: Latency::Uniform { min: Duration::from_millis(20), max: Duration::from_millis(80) },
            bandwidth: Bandwidth(10 << 20),
            join_at: None,
            leave_at: None,
        }
    }
}

/// One-way message latency of a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    /// `"min..max"` (or one duration, `min == max`): uniform in the range.
    Uniform {
        /// Lower bound.
        min: Duration,
        /// Upper bound (>= min).
        max: Duration,
    },
    /// `{ median = "80ms", p99 = "1s" }`: log-normal with that median and
    /// 99th percentile (median > 0, p99 >= median).
    LogNormal {
        /// Median.
        median: Duration,
        /// 99th percentile.
        p99: Duration,
    },
}

impl FromStr for Latency {
    type Err = String;
    /// Parses the string form: `"50ms..200ms"` or `"80ms"`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (a, b),
            None => (s, s),
        };
        let min: Duration = min.parse().map_err(|e| format!("{e}"))?;
        let max: Duration = max.parse().map_err(|e| format!("{e}"))?;
        if max < min {
            return Err(format!("invalid latency range {s:?}: the maximum is below the minimum"));
        }
        Ok(Latency::Uniform { min, max })
    }
}

impl fmt::Display for Latency {
    /// `20ms..80ms` or `lognormal(median 80ms, p99 1s)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Latency::Uniform { min, max } => write!(f, "{min}..{max}"),
            Latency::LogNormal { median, p99 } => {
                write!(f, "lognormal(median {median}, p99 {p99})")
            }
        }
    }
}

/// `[faults]`: all default to none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// `drop` (default 0): probability a message is lost.
    pub drop: f64,
    /// `duplicate` (default 0): probability a message is delivered twice.
    pub duplicate: f64,
    /// `reorder` (default 0): probability a message is delayed past later ones.
    pub reorder: f64,
    /// `corrupt` (default 0): probability a message's bytes are damaged.
    pub corrupt: f64,
    /// `disconnect = { every, downtime }` (default none).
    pub disconnect: Option<Disconnect>,
    /// `duplicate_blocks` (default 0): probability a block is announced twice.
    pub duplicate_blocks: f64,
    /// `crash` (default 0): how many times the node crashes and restarts.
    pub crash: u32,
    /// `crash_in` (default none): one of the `crash` crashes happens while the node is in this
    /// phase (the others at random moments).
    pub crash_in: Option<Phase>,
}

/// `[faults] disconnect = { every = "2m", downtime = "10s" }`: each peer
/// disconnects about every `every` and stays away for `downtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// Mean time between disconnects (> 0).
    pub every: Duration,
    /// How long a disconnect lasts.
    pub downtime: Duration,
}

/// `[sync]`: the downloader's settings; defaults are the product's.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncSpec {
    /// `request_sizing` (default `"adaptive"`).
    pub request_sizing: SizingPolicy,
    /// `account_bytes` (default `"512KiB"`, > 0): soft limit of an account
    /// range response.
    pub account_bytes: Size,
    /// `storage_bytes` (default `"512KiB"`, > 0): soft limit of a storage
    /// range response.
    pub storage_bytes: Size,
    /// `max_codes` (default 84, > 0): bytecodes per request.
    pub max_codes: u32,
    /// `max_trie_nodes` (default 1024, > 0): trie nodes per heal request.
    pub max_trie_nodes: u32,
    /// `concurrency` (default 16, > 0): requests in flight.
    pub concurrency: u32,
    /// `request_timeout` (default `"10s"`, > 0).
    pub request_timeout: Duration,
    /// `pivot_distance` (default 64): blocks between the head and the pivot.
    pub pivot_distance: u64,
    /// `follow_blocks` (default 0, our extension): once at the head, keep following this many
    /// new blocks before the run ends.
    pub follow_blocks: u64,
}

impl Default for SyncSpec {
    /// adaptive, 512KiB, 512KiB, 84 codes, 1024 trie nodes, 16 in flight,
    /// 10s timeout, pivot 64 blocks back.
    fn default() -> Self {
        SyncSpec {
            request_sizing: SizingPolicy::Adaptive,
            account_bytes: Size(512 << 10),
            storage_bytes: Size(512 << 10),
            max_codes: 84,
            max_trie_nodes: 1024,
            concurrency: 16,
            request_timeout: Duration::from_secs(10),
            pivot_distance: 64,
            follow_blocks: 0,
        }
    }
}

/// `[expect]`: checks at the end of a run; all optional.
#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    /// `converge` (default true): the node must finish with the right state.
    pub converge: bool,
    /// `max_virtual_time` (default none, > 0): a bound on virtual run time.
    pub max_virtual_time: Option<Duration>,
    /// `max_requests` (default none): a bound on requests sent.
    pub max_requests: Option<u64>,
    /// `dropped` (default none = not checked): the behaviours whose peers
    /// must be dropped by the node; `[]` means no peer may be dropped.
    pub dropped: Option<Vec<Behaviour>>,
}

impl Default for Expect {
    /// converge, no other checks.
    fn default() -> Self {
        Expect { converge: true, max_virtual_time: None, max_requests: None, dropped: None }
    }
}

/// Declares a closed set of kebab-case names as an enum with `ALL`,
/// `name()`, `FromStr`, `Display` and serde.
macro_rules! named_enum {
    ($(#[$m:meta])* $ty:ident, $what:literal { $($(#[$vm:meta])* $var:ident = $name:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $ty {
            $($(#[$vm])* $var,)*
        }

        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$var,)*];

            /// The name used in scenario files.
            pub const fn name(self) -> &'static str {
                match self {
                    $($ty::$var => $name,)*
                }
            }
        }

        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $ty::ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| {
                    let names: Vec<&str> = $ty::ALL.iter().map(|v| v.name()).collect();
                    format!(concat!("unknown ", $what, " {:?} (expected one of: {})"), s, names.join(", "))
                })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

named_enum! {
    /// How a virtual peer behaves (`[[peers]] behaviour`).
    Behaviour, "behaviour" {
        /// Serves correct, complete responses.
        Honest = "honest",
        /// Answers every request with an empty response.
        Empty = "empty",
        /// Never answers.
        Unresponsive = "unresponsive",
        /// Answers correctly but slowly.
        Slow = "slow",
        /// Answers with far less than was asked for.
        Starving = "starving",
        /// Returns fewer bytecodes than asked for.
        CappedCode = "capped-code",
        /// Returns bytecodes that do not match their hashes.
        CorruptCode = "corrupt-code",
        /// Returns range proofs that do not verify.
        CorruptProof = "corrupt-proof",
        /// Omits range proofs.
        MissingProof = "missing-proof",
        /// Pads range proofs with unneeded nodes.
        BloatedProof = "bloated-proof",
        /// Leaves gaps in returned ranges.
        GappedRange = "gapped-range",
        /// Returns wrong account or slot values.
        WrongValue = "wrong-value",
        /// Serves only old state roots.
        Stale = "stale",
        /// Claims a head it does not have.
        Liar = "liar",
        /// Announces the same blocks repeatedly.
        DuplicateBlocks = "duplicate-blocks",
        /// Serves invalid block headers.
        BadHeaders = "bad-headers",
        /// Connects and disconnects repeatedly.
        Flapping = "flapping",
    }
}

named_enum! {
    /// A phase the node reports (`[faults] crash_in`).
    Phase, "phase" {
        /// Fetching the header chain to the trusted head.
        Headers = "headers",
        /// Downloading the state at the pivot.
        State = "state",
        /// Walking the finished state.
        Verify = "verify",
        /// Fetching bodies and inserting blocks.
        Execution = "execution",
    }
}

named_enum! {
    /// How the downloader sizes its requests (`[sync] request_sizing`).
    SizingPolicy, "request sizing policy" {
        /// Adapts sizes to each peer's measured throughput (the product's default).
        Adaptive = "adaptive",
        /// Always asks for the configured sizes.
        Fixed = "fixed",
        /// Mimics go-ethereum's sizing.
        Geth = "geth",
        /// Mimics Harmony's sizing.
        Harmony = "harmony",
    }
}

/// Where in the input an error is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A 1-based line of the scenario file (line 1 for something absent).
    Line(usize),
    /// The `--set KEY=VALUE` override that caused it.
    Override(String),
    /// The file as a whole (it could not be read).
    File,
}

/// What kind of problem a [`ScenarioError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// The file is not valid TOML.
    Syntax,
    /// A key that the format does not have.
    UnknownKey,
    /// A value of the wrong TOML type.
    WrongType,
    /// A value of the right type but out of range or malformed.
    InvalidValue,
    /// A required key is absent.
    Missing,
    /// Keys that contradict each other.
    Conflict,
    /// A referenced file does not exist.
    MissingFile,
    /// A `--set` override that cannot be applied.
    BadOverride,
}

/// Why a scenario was rejected (the CLI exits with
/// [`ScenarioError::EXIT_CODE`]). Display:
/// `FILE:LINE: key 'KEY': MESSAGE`, or `FILE: --set KEY=VALUE: key 'KEY':
/// MESSAGE` for an error caused by an override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// The scenario file, as given.
    pub file: PathBuf,
    /// Line or override.
    pub location: Location,
    /// Dotted key path (`peers[1].latency`); empty when there is none.
    pub key: String,
    /// Category.
    pub kind: ErrorKind,
    /// What is wrong.
    pub message: String,
}

impl ScenarioError {
    /// The process exit code for a bad scenario.
    pub const EXIT_CODE: i32 = 2;

    /// The line, if the error is located in the file.
    pub fn line(&self) -> Option<usize> {
        match self.location {
            Location::Line(l) => Some(l),
            _ => None,
        }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        match &self.location {
            Location::Line(l) => write!(f, ":{l}:")?,
            Location::Override(kv) => write!(f, ": --set {kv}:")?,
            Location::File => write!(f, ":")?,
        }
        if !self.key.is_empty() {
            write!(f, " key '{}':", self.key)?;
        }
        write!(f, " {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

/// Appends `key` to a dotted path, quoting it if it is not a bare key.
pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare { key.to_string() } else { format!("{key:?}") };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// Splits a CLI `--set` argument `KEY=VALUE` at the first `=`.
pub fn parse_override(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {arg:?}")),
    }
}

impl Scenario {
    /// Reads and validates the scenario file at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::load_with_overrides(path, &[])
    }

    /// Reads the file at `path`, validates it, then applies the `--set`
    /// overrides (`(KEY, VALUE)` pairs, in order) and validates the result.
    pub fn load_with_overrides(
        path: &Path,
        overrides: &[(String, String)],
    ) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.to_path_buf(),
            location: Location::File,
            key: String::new(),
            kind: ErrorKind::Io,
            message: format!("cannot read the scenario file: {e}"),
        })?;
        Scenario::parse_with_overrides(&text, path, overrides)
    }

    /// Parses and validates scenario `text`; `path` is where it came from
    /// (for messages, and to resolve `state.genesis`, which must exist).
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::parse_with_overrides(text, path, &[])
    }

    /// [`Scenario::parse`], then the overrides as in
    /// [`Scenario::load_with_overrides`].
    pub fn parse_with_overrides(
        text: &str,
        path: &Path,
        overrides: &[(String, String)],
    ) -> Result<Scenario, ScenarioError> {
        let builder = build::Builder::new(text, path);
        let mut root = builder.parse_tree()?;
        let scenario = builder.build(&root)?;
        if overrides.is_empty() {
            return Ok(scenario);
        }
        for (key, value) in overrides {
            tree::apply_override(&mut root, key.trim(), value, path)?;
        }
        builder.build(&root)
    }

    /// Writes the scenario as canonical TOML that [`Scenario::parse`] turns
    /// back into an equal scenario. Every value is written out, defaults
    /// included; the genesis path is written absolute.
    pub fn to_toml_string(&self) -> String {
        write::to_toml(self, None)
    }

    /// Like [`Scenario::to_toml_string`], for a file to be written at
    /// `scenario_path`: the genesis path is written relative to that file's
    /// directory, so the pair can be moved together.
    pub fn to_toml_string_for(&self, scenario_path: &Path) -> String {
        write::to_toml(self, Some(scenario_path))
    }

    /// The total number of peers over all groups.
    pub fn peer_count(&self) -> u64 {
        self.peers.iter().map(|g| u64::from(g.count)).sum()
    }
}
