//! The run report: the contract's JSON fields and the human summary.

use serde::Serialize;
use std::collections::BTreeMap;
use syncsim_node::state::StateStats;
use syncsim_node::sync::KindStats;

/// Requests by kind, as the contract names them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Requests {
    /// GetAccountRange.
    pub account_range: KindStats,
    /// GetStorageRanges.
    pub storage_ranges: KindStats,
    /// GetByteCodes.
    pub bytecodes: KindStats,
    /// GetTrieNodes.
    pub trie_nodes: KindStats,
    /// GetBlockHeaders.
    pub headers: KindStats,
    /// GetBlockBodies.
    pub bodies: KindStats,
}

impl Requests {
    /// Total requests sent.
    pub fn total_sent(&self) -> u64 {
        [
            &self.account_range,
            &self.storage_ranges,
            &self.bytecodes,
            &self.trie_nodes,
            &self.headers,
            &self.bodies,
        ]
        .iter()
        .map(|k| k.sent)
        .sum()
    }
}

/// One peer's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct PeerReport {
    /// Peer id.
    pub id: u32,
    /// Its behaviours, joined with '+'.
    pub behaviour: String,
    /// Dropped by the node.
    pub dropped: bool,
    /// Penalised by the node (timeouts, failed verification) without being dropped.
    pub penalised: bool,
    /// Replies it served.
    pub served: u64,
}

/// One checked expectation.
#[derive(Debug, Clone, Serialize)]
pub struct Expectation {
    /// Which.
    pub name: String,
    /// Held?
    pub ok: bool,
    /// Details.
    pub detail: String,
}

/// The report of one scenario run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed used.
    pub seed: u64,
    /// Node root at the pivot equals the oracle's.
    pub converged: bool,
    /// Why the node stopped, when it did not sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Pivot block.
    pub pivot_block: u64,
    /// Chain head at the end.
    pub head_block: u64,
    /// Oracle root at the pivot.
    pub expected_root: String,
    /// Node root at the pivot.
    pub local_root: String,
    /// After applying blocks past the pivot, the node's root matched the head's.
    pub head_root_ok: bool,
    /// Virtual time of the run.
    pub virtual_time_ms: u64,
    /// Wall time of the whole run.
    pub wall_time_ms: u64,
    /// Wall time of the simulated sync (node, peers, network).
    pub sync_wall_ms: u64,
    /// Wall time of the oracle's from-scratch root.
    pub oracle_root_ms: u64,
    /// Bandwidth/latency lower bound for this state and these peers.
    pub lower_bound_ms: u64,
    /// lower_bound_ms / virtual_time_ms.
    pub efficiency: f64,
    /// State size.
    pub state: StateStats,
    /// Requests by kind.
    pub requests: Requests,
    /// Requests the node sent beyond the protocol's caps (2 MiB response budget, 1,024 code or
    /// trie-node lookups, 1,024 headers or bodies) or malformed: 0 for a well-behaved node.
    pub over_cap_requests: u64,
    /// The first such request, described.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub over_cap_first: Option<String>,
    /// Trie nodes fetched by healing.
    pub healed_nodes: u64,
    /// Pivot moves.
    pub pivot_moves: u64,
    /// Node crashes.
    pub crashes: u32,
    /// Peers.
    pub peers: Vec<PeerReport>,
    /// Expectations checked.
    pub expectations: Vec<Expectation>,
    /// Trace events.
    pub events: u64,
    /// Running hash of the trace.
    pub trace_hash: String,
    /// Virtual time spent per phase (ms).
    pub stages: BTreeMap<String, u64>,
    /// Injected faults.
    pub faults: crate::net::FaultStats,
    /// Progress over virtual time, when the run recorded it (`RunOptions::timeline`); not
    /// part of the JSON report.
    #[serde(skip)]
    pub timeline: Option<crate::timeline::Timeline>,
}

impl Report {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.expectations.iter().all(|e| e.ok)
    }

    /// Human summary.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let _ = writeln!(s, "{verdict} {} (seed {})", self.scenario, self.seed);
        let _ = writeln!(
            s,
            "  converged {}  head_root_ok {}  pivot #{}  head #{}  root {}",
            self.converged, self.head_root_ok, self.pivot_block, self.head_block, self.local_root
        );
        if let Some(f) = &self.failure {
            let _ = writeln!(s, "  stopped: {f}");
        }
        let _ = writeln!(
            s,
            "  virtual {:.1}s  wall {} ms (sync {} ms, oracle {} ms)  lower bound {:.1}s  efficiency {:.2}",
            self.virtual_time_ms as f64 / 1000.0,
            self.wall_time_ms,
            self.sync_wall_ms,
            self.oracle_root_ms,
            self.lower_bound_ms as f64 / 1000.0,
            self.efficiency
        );
        let _ = writeln!(
            s,
            "  state: {} accounts, {} contracts, {} slots, {} code bytes",
            self.state.accounts, self.state.contracts, self.state.storage_slots, self.state.code_bytes
        );
        let r = &self.requests;
        for (name, k) in [
            ("account_range", &r.account_range),
            ("storage_ranges", &r.storage_ranges),
            ("bytecodes", &r.bytecodes),
            ("trie_nodes", &r.trie_nodes),
            ("headers", &r.headers),
            ("bodies", &r.bodies),
        ] {
            if k.sent > 0 {
                let _ = writeln!(
                    s,
                    "  {name:<15} sent {:>6}  ok {:>6}  failed {:>5}  timed out {:>5}  in {:>10} B",
                    k.sent, k.ok, k.failed, k.timed_out, k.bytes_in
                );
            }
        }
        let _ = writeln!(
            s,
            "  healed nodes {}  pivot moves {}  crashes {}  events {}",
            self.healed_nodes, self.pivot_moves, self.crashes, self.events
        );
        if !self.stages.is_empty() {
            let st: Vec<String> =
                self.stages.iter().map(|(k, v)| format!("{k} {:.1}s", *v as f64 / 1000.0)).collect();
            let _ = writeln!(s, "  stages: {}", st.join(", "));
        }
        let dropped: Vec<String> =
            self.peers.iter().filter(|p| p.dropped).map(|p| format!("{}({})", p.id, p.behaviour)).collect();
        if !dropped.is_empty() {
            let _ = writeln!(s, "  dropped peers: {}", dropped.join(" "));
        }
        for e in &self.expectations {
            let _ = writeln!(s, "  [{}] {}: {}", if e.ok { "ok" } else { "FAIL" }, e.name, e.detail);
        }
        let _ = writeln!(s, "  trace {}", self.trace_hash);
        s
    }
}
