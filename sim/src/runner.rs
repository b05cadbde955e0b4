//! Runs one scenario: builds the start state and chain, runs the node on a paused-clock
//! current-thread tokio runtime inside the simulated world, crashes and restarts it as the
//! scenario asks, then asks the oracle and checks the expectations.

use crate::chain::{oracle, Chain, ChainParams, SyntheticSpec};
use crate::net::World;
use crate::report::{Expectation, PeerReport, Report, Requests};
use crate::scenario::{Behaviour, Scenario, StateSpec};
use crate::timeline::ObservedStore;
use crate::trace::Trace;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant as WallInstant;
use syncsim_node::driver::{Node, NodeConfig, NodeOutcome, NodeStats};
use syncsim_node::state::State;
use syncsim_node::store::{MemStore, SyncStore};
use syncsim_node::sync::{SizingPolicy, SyncConfig};

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Write the trace as JSONL here.
    pub trace: Option<PathBuf>,
    /// Test-only: plant a known bug in the node (see `syncsim fuzz --plant`).
    pub planted: Option<syncsim_node::sync::PlantedBug>,
    /// Crash the node this many ms after it first enters the named phase (e.g. "execution").
    pub crash_on_phase: Option<(String, u64)>,
    /// Show a progress display on stderr when the run takes longer than a second.
    pub progress: bool,
    /// Record progress over virtual time into [`Report::timeline`] (for `--plot`); observes
    /// only: the trace and every report field stay the same.
    pub timeline: bool,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The genesis file could not be loaded.
    #[error("{0}")]
    Genesis(#[from] syncsim_node::genesis::GenesisError),
    /// The trace file could not be created.
    #[error("cannot write trace {path}: {err}")]
    Trace {
        /// Path.
        path: PathBuf,
        /// Error.
        err: std::io::Error,
    },
    /// The runtime could not be built.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

/// Virtual time after which a run is cut off if the scenario sets no bound.
const DEFAULT_MAX_VIRTUAL_MS: u64 = 6 * 3600 * 1000;

/// The start state a scenario describes.
pub fn initial_state(sc: &Scenario, seed: u64) -> Result<State, RunError> {
    Ok(match &sc.state {
        StateSpec::Genesis { path, case } => {
            let states = syncsim_node::genesis::load_genesis(path)?;
            let picked = match case {
                Some(c) => states.into_iter().find(|(n, _)| n.as_deref() == Some(c.as_str())),
                None => states.into_iter().next(),
            };
            picked.map(|(_, s)| s).unwrap_or_default()
        }
        StateSpec::Synthetic {
            accounts,
            contracts,
            storage_slots,
            storage_skew,
            code_size,
            unique_codes,
            boundary_keys,
        } => crate::chain::synthetic_state(
            &SyntheticSpec {
                accounts: *accounts,
                contracts: *contracts,
                storage_slots: *storage_slots,
                storage_skew: *storage_skew,
                code_size: *code_size,
                unique_codes: *unique_codes,
                boundary_keys: *boundary_keys,
            },
            seed,
        ),
    })
}

/// The node settings a scenario describes.
pub fn node_config(sc: &Scenario) -> NodeConfig {
    let s = &sc.sync;
    let sizing = match s.request_sizing {
        crate::scenario::SizingPolicy::Adaptive => SizingPolicy::Adaptive,
        crate::scenario::SizingPolicy::Fixed => SizingPolicy::Fixed,
        crate::scenario::SizingPolicy::Geth => SizingPolicy::Geth,
        crate::scenario::SizingPolicy::Harmony => SizingPolicy::Harmony,
    };
    NodeConfig {
        sync: SyncConfig {
            sizing,
            account_bytes: s.account_bytes.0,
            storage_bytes: s.storage_bytes.0,
            max_codes: s.max_codes as usize,
            max_trie_nodes: s.max_trie_nodes as usize,
            concurrency: s.concurrency as usize,
            request_timeout_ms: s.request_timeout.as_millis(),
            account_chunks: 16,
            planted: None,
        },
        pivot_distance: s.pivot_distance,
        follow_blocks: s.follow_blocks,
        ..NodeConfig::default()
    }
}

/// Bytes a downloader must receive for this state: every account, slot and distinct code in
/// its cheapest wire form, the item of a range reply (an RLP list of its hash and slim body, or
/// of the slot hash and value) or a code's RLP string. Fetching a leaf by healing costs more (a
/// trie node holds the full account, a key suffix and a reference from its parent), proofs
/// and message framing come on top.
fn state_bytes(state: &State) -> u64 {
    use alloy_rlp::Encodable;
    use syncsim_node::codec::{AccountData, StorageData};
    let mut total = 0u64;
    for (hash, a) in &state.accounts {
        let root = if a.storage.is_empty() {
            syncsim_node::primitives::EMPTY_ROOT
        } else {
            alloy_primitives::B256::repeat_byte(1)
        };
        let body = a.to_account(root).encode_slim();
        total += AccountData { hash: *hash, body: body.into() }.length() as u64;
        total += a
            .storage
            .iter()
            .map(|(k, v)| {
                let data = syncsim_node::trie::root::storage_value_rlp(*v);
                StorageData { hash: *k, data: data.into() }.length() as u64
            })
            .sum::<u64>();
    }
    total + state.codes.values().map(|c| c.length() as u64).sum::<u64>()
}

/// The smallest one-way latency (µs) the network can draw for a link with latency `l`.
fn min_latency_us(l: &crate::scenario::Latency) -> f64 {
    match l {
        crate::scenario::Latency::Uniform { min, .. } => min.as_micros() as f64,
        crate::scenario::Latency::LogNormal { median, p99 } => {
            // net.rs draws median * exp(sigma * z), z from Box-Muller with u1 >= 1e-12
            let m = (median.as_micros() as f64).max(1.0);
            let p = (p99.as_micros() as f64).max(m);
            let sigma = (p / m).ln() / 2.326;
            let z_max = (-2.0 * 1e-12f64.ln()).sqrt();
            ((m * (-sigma * z_max).exp()).floor() - 1.0).max(0.0)
        }
    }
}

/// The time no downloader could beat, whatever its strategy. Unavoidable: one round trip to
/// learn the pivot header (to any peer that answers, at its shortest latency; or a pushed
/// block, one block time in). Then every byte of the state (`state_bytes`) must cross the
/// links of peers that can serve state (all but `empty` and `unresponsive` ones: even a hostile
/// peer's codes or trie nodes, or a stale peer's older root, could be used), and a peer's
/// reply bytes can arrive only from one round trip after it could first be asked (the header
/// in hand, the peer joined) until it leaves, at its bandwidth: the bound is the first moment
/// those windows, summed over peers, carry the whole state. A downloader that builds every
/// trie node from complete ranges needs no healing round trip, so none is counted; proofs,
/// message framing, drops and disconnects only add time. The bytes are those of the start
/// state: exact whenever the pivot's state is the start state (no blocks before it), as in
/// the sizing scenarios.
pub fn lower_bound_ms(sc: &Scenario, state: &State) -> u64 {
    struct Link {
        from_us: f64,
        until_us: f64,
        one_way_us: f64,
        bytes_per_us: f64,
    }
    let mut links = Vec::new();
    let mut header_us = f64::MAX;
    let mut min_one_way = f64::MAX;
    for g in &sc.peers {
        let one_way = min_latency_us(&g.latency);
        let join = g.join_at.map_or(0.0, |d| d.as_micros() as f64);
        let until = g.leave_at.map_or(f64::MAX, |d| d.as_micros() as f64);
        if g.behaviour.contains(&Behaviour::Unresponsive) || until <= join {
            continue;
        }
        min_one_way = min_one_way.min(one_way);
        header_us = header_us.min(join + 2.0 * one_way);
        if g.behaviour.contains(&Behaviour::Empty) {
            continue;
        }
        let slow = if g.behaviour.contains(&Behaviour::Slow) { 10.0 } else { 1.0 };
        let bytes_per_us = (g.bandwidth.0 as f64 / slow).max(1.0) / 1e6;
        for _ in 0..g.count {
            links.push(Link { from_us: join, until_us: until, one_way_us: one_way, bytes_per_us });
        }
    }
    if links.is_empty() {
        return 0;
    }
    // a block pushed by a peer carries its header without a request
    header_us = header_us.min(sc.chain.block_time.as_micros() as f64 + min_one_way);
    let by = |t: f64| -> f64 {
        links
            .iter()
            .map(|l| {
                let first = header_us.max(l.from_us) + 2.0 * l.one_way_us;
                l.bytes_per_us * (t.min(l.until_us) - first).max(0.0)
            })
            .sum()
    };
    let horizon = links.iter().map(|l| l.until_us).fold(0.0, f64::max).min(1e15);
    let need = (state_bytes(state) as f64).min(by(horizon));
    let (mut lo, mut hi) = (header_us, horizon);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if by(mid) >= need {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    (lo / 1000.0).floor() as u64
}

/// Runs a scenario to its verdict.
pub fn run(sc: &Scenario, opts: &RunOptions) -> Result<Report, RunError> {
    let wall = WallInstant::now();
    let seed = opts.seed.unwrap_or(sc.seed);
    let state = initial_state(sc, seed)?;
    run_with_state(sc, opts, state, wall)
}

/// Runs a scenario from a given start state (tests craft special states this way);
/// `wall` is when the run started, for `wall_time_ms`.
pub fn run_with_state(
    sc: &Scenario,
    opts: &RunOptions,
    state: State,
    wall: WallInstant,
) -> Result<Report, RunError> {
    let seed = opts.seed.unwrap_or(sc.seed);
    let stats = state.stats();
    let lower = lower_bound_ms(sc, &state);
    let recorder = opts.timeline.then(|| {
        crate::timeline::Recorder::new([stats.accounts, stats.storage_slots, state.codes.len() as u64])
    });
    let mut chain = Chain::new(
        state,
        ChainParams {
            changes_per_block: sc.chain.changes_per_block as u32,
            block_time_ms: sc.chain.block_time.as_millis(),
        },
        seed,
    );
    for _ in 0..sc.chain.blocks {
        chain.produce_block();
    }
    let trace_out: Option<Box<dyn std::io::Write>> = match &opts.trace {
        Some(p) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|err| RunError::Trace { path: p.clone(), err })?,
        ))),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(RunError::Runtime)?;
    let mut cfg = node_config(sc);
    cfg.sync.planted = opts.planted;
    let max_virtual =
        sc.expect.max_virtual_time.map_or(DEFAULT_MAX_VIRTUAL_MS, |d| d.as_millis() * 2 + 60_000);
    let crash_in = sc.faults.crash_in.filter(|_| sc.faults.crash > 0);
    // with `crash_in`, one of the crashes is kept for that phase
    let crashes = sc.faults.crash - u32::from(crash_in.is_some());
    let sync_wall = WallInstant::now();
    let crash_on_phase = opts.crash_on_phase.clone();
    let show_progress = opts.progress;
    let (outcome, world, stats_by_session, crashes_done, store) = rt.block_on(async move {
        let mut world = World::new(sc, chain, seed, Trace::new(trace_out));
        world.crash_on_phase = crash_on_phase.map(|(p, ms)| (p, ms * 1000));
        world.progress = crate::progress::Progress::new(show_progress);
        let store_counts = recorder.as_ref().map(|r| r.store_counts());
        world.recorder = recorder;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x63_7261_7368);
        // crash moments spread over the expected length of the sync
        let estimate_us = (lower.max(2000) as f64 * 1500.0) as u64;
        let mut times: Vec<u64> =
            (0..crashes).map(|_| (estimate_us as f64 * rng.random_range(0.1..0.9)) as u64).collect();
        times.sort_unstable();
        world.schedule_crashes(&times);
        if let Some(phase) = crash_in {
            // shortly after the node enters the phase (a few replies into it)
            let delay_ms: u64 = rng.random_range(50..=300);
            world.crash_on_phase.get_or_insert((phase.name().to_string(), delay_ms * 1000));
        }
        let mut store = MemStore::default();
        let end = tokio::time::Instant::now() + std::time::Duration::from_millis(max_virtual);
        let mut crashes_done = 0u32;
        let mut sessions: Vec<NodeStats> = Vec::new();
        let mut session = 0u64;
        loop {
            // the node's borrow of the store (through the observer, with --plot) ends here
            let (res, st) = {
                let mut observed;
                let node_store: &mut dyn SyncStore = match &store_counts {
                    Some(c) => {
                        observed = ObservedStore::new(&mut store, Rc::clone(c));
                        &mut observed
                    }
                    None => &mut store,
                };
                let mut node = Node::new(&mut world, node_store, cfg.clone(), session);
                let res = tokio::time::timeout_at(end, node.run()).await;
                (res, node.final_stats())
            };
            world.end_us = world.now_us();
            sessions.push(st);
            match res {
                Ok(NodeOutcome::Interrupted) => {
                    crashes_done += 1;
                    session += 1;
                    world.node_crashed();
                }
                Ok(outcome) => return (Some(outcome), world, sessions, crashes_done, store),
                Err(_) => return (None, world, sessions, crashes_done, store),
            }
        }
    });
    let sync_wall_ms = sync_wall.elapsed().as_millis() as u64;
    let mut world = world;
    world.progress.finish();
    world.trace.flush();
    let virtual_time_ms = world.end_us / 1000;
    let timeline = world.recorder.take().map(|r| r.finish(virtual_time_ms));

    // Oracle: replay the canonical chain up to the pivot from the initial flat state.
    let mut node_head = None;
    let (pivot, local_root, failure) = match &outcome {
        Some(NodeOutcome::Synced { pivot, root, head, head_hash, head_root, .. }) => {
            node_head = Some((*head, *head_hash, *head_root));
            (*pivot, Some(*root), None)
        }
        Some(NodeOutcome::Stalled { reason }) => (0, None, Some(format!("stalled: {reason}"))),
        Some(NodeOutcome::Failed { reason }) => (0, None, Some(format!("failed: {reason}"))),
        Some(NodeOutcome::Interrupted) => (0, None, Some("interrupted".into())),
        None => (0, None, Some(format!("virtual time limit ({} s) reached", max_virtual / 1000))),
    };
    let oracle_wall = WallInstant::now();
    // the run is over: free the live state, move the genesis state into the oracle's replay
    world.chain.retire();
    let initial = world.chain.take_initial_state();
    let oracle_state = oracle::replay(initial, world.chain.blocks(), pivot);
    let expected = oracle::oracle_root(&oracle_state);
    let oracle_root_ms = oracle_wall.elapsed().as_millis() as u64;
    let header_root = world.chain.state_root(pivot);
    // Converged only if the node's own store holds the whole trie at the oracle's root: an
    // independent walk, whatever the node claimed.
    let walk = local_root.filter(|r| *r == expected).map(|r| syncsim_node::sync::verify_complete(&store, r));
    let converged = header_root == Some(expected) && matches!(walk, Some(Ok(_)));
    // After the pivot: the node's root at its head must be the canonical header's root
    // (the header roots themselves are checked against the oracle's replay in the chain tests;
    // the pivot root above is the oracle's own).
    let head_root_ok = match node_head {
        Some((h, hash, root)) if converged => {
            let canonical = world.chain.block(h).map(|b| b.header.hash()) == Some(hash);
            canonical && world.chain.state_root(h) == Some(root)
        }
        _ => false,
    };
    let failure = match (&failure, &walk) {
        (None, Some(Err(e))) => Some(format!("node claimed success but its store is incomplete: {e}")),
        (None, None) => Some("node root differs from the oracle".to_string()),
        _ => failure,
    };

    let mut requests = Requests::default();
    let mut healed = 0;
    let mut pivot_moves = 0;
    let mut dropped_ids = std::collections::BTreeSet::new();
    let mut penalised_ids = std::collections::BTreeSet::new();
    for s in &stats_by_session {
        add(&mut requests.account_range, &s.sync.account_range);
        add(&mut requests.storage_ranges, &s.sync.storage_ranges);
        add(&mut requests.bytecodes, &s.sync.bytecodes);
        add(&mut requests.trie_nodes, &s.sync.trie_nodes);
        add(&mut requests.headers, &s.headers);
        add(&mut requests.bodies, &s.bodies);
        healed += s.sync.healed_nodes;
        pivot_moves += s.pivots.len().saturating_sub(1) as u64;
        for (p, _) in &s.dropped {
            dropped_ids.insert(*p);
        }
        penalised_ids.extend(s.penalised.iter().copied());
    }
    let peers: Vec<PeerReport> = world
        .peers
        .iter()
        .map(|p| PeerReport {
            id: p.id,
            behaviour: p.behaviours.iter().map(|b| b.name()).collect::<Vec<_>>().join("+"),
            dropped: p.dropped || dropped_ids.contains(&p.id),
            penalised: penalised_ids.contains(&p.id),
            served: p.served(),
        })
        .collect();

    let mut expectations = Vec::new();
    if sc.expect.converge {
        // the contract: the node's root equals the oracle's at its pivot and at its head
        expectations.push(Expectation {
            name: "converge".into(),
            ok: converged && head_root_ok,
            detail: match (&failure, node_head) {
                (Some(f), _) => f.clone(),
                (None, _) if !converged => {
                    format!("node {} vs oracle {expected}", local_root.unwrap_or_default())
                }
                (None, Some((h, _, root))) if !head_root_ok => {
                    format!(
                        "pivot root matches, but at head #{h} the node has {root}, not the canonical root"
                    )
                }
                (None, None) if !head_root_ok => {
                    "pivot root matches, but the node reports no head".to_string()
                }
                (None, _) => {
                    format!("node {} vs oracle {expected} (head root ok)", local_root.unwrap_or_default())
                }
            },
        });
    }
    if let Some(max) = sc.expect.max_virtual_time {
        let max = max.as_millis();
        expectations.push(Expectation {
            name: "max_virtual_time".into(),
            ok: virtual_time_ms <= max,
            detail: format!("{virtual_time_ms} ms of at most {max} ms"),
        });
    }
    if let Some(max) = sc.expect.max_requests {
        let n = requests.total_sent();
        expectations.push(Expectation {
            name: "max_requests".into(),
            ok: n <= max,
            detail: format!("{n} requests of at most {max}"),
        });
    }
    if let Some(list) = &sc.expect.dropped {
        for b in list {
            let matching: Vec<&PeerReport> =
                peers.iter().filter(|p| world.peers[p.id as usize].behaviours.contains(b)).collect();
            let bad: Vec<u32> =
                matching.iter().filter(|p| !p.dropped && !p.penalised).map(|p| p.id).collect();
            expectations.push(Expectation {
                name: format!("dropped:{}", b.name()),
                ok: bad.is_empty(),
                detail: if bad.is_empty() {
                    format!("all {} peer(s) dropped or penalised", matching.len())
                } else {
                    format!("peers {bad:?} neither dropped nor penalised")
                },
            });
        }
    }
    let honest_dropped: Vec<u32> = peers
        .iter()
        .filter(|p| {
            p.dropped && world.peers[p.id as usize].behaviours.iter().all(|b| !crate::peer::is_hostile(*b))
        })
        .map(|p| p.id)
        .collect();
    expectations.push(Expectation {
        name: "no_honest_peer_dropped".into(),
        ok: honest_dropped.is_empty(),
        detail: if honest_dropped.is_empty() { "none".into() } else { format!("peers {honest_dropped:?}") },
    });

    let mut stages = BTreeMap::new();
    for w in world.phases.windows(2) {
        *stages.entry(w[0].1.clone()).or_insert(0) += w[1].0 - w[0].0;
    }
    if let Some((t, name)) = world.phases.last() {
        *stages.entry(name.clone()).or_insert(0) += virtual_time_ms.saturating_sub(*t);
    }
    Ok(Report {
        scenario: sc.name.clone(),
        seed,
        converged,
        failure,
        pivot_block: pivot,
        head_block: node_head.map_or(world.chain.head_number(), |(h, _, _)| h),
        expected_root: format!("{expected}"),
        local_root: local_root.map(|r| format!("{r}")).unwrap_or_default(),
        head_root_ok,
        virtual_time_ms,
        wall_time_ms: wall.elapsed().as_millis() as u64,
        sync_wall_ms,
        oracle_root_ms,
        lower_bound_ms: lower,
        efficiency: if virtual_time_ms > 0 { lower as f64 / virtual_time_ms as f64 } else { 0.0 },
        state: stats,
        requests,
        over_cap_requests: world.over_cap,
        over_cap_first: world.over_cap_first.clone(),
        healed_nodes: healed,
        pivot_moves,
        crashes: crashes_done,
        peers,
        expectations,
        events: world.trace.events(),
        trace_hash: format!("{}", world.trace.hash()),
        stages,
        faults: world.fault_stats.clone(),
        timeline,
    })
}

fn add(a: &mut syncsim_node::sync::KindStats, b: &syncsim_node::sync::KindStats) {
    a.sent += b.sent;
    a.ok += b.ok;
    a.failed += b.failed;
    a.timed_out += b.timed_out;
    a.cancelled += b.cancelled;
    a.bytes_in += b.bytes_in;
}
