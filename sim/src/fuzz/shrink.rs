//! Greedy shrinking of a failing scenario: try simpler variants one at a time, keep each one
//! that still violates the same invariant, until a whole pass over the variants helps no more
//! (or the run budget is spent).
//!
//! Variants, coarsest first: leave out a peer group (keeping one able to serve), no crashes,
//! disconnects or reorg, each fault rate zeroed, no chain growth, a smaller state, one peer per
//! group, fewer behaviours per group, default timing per group, halved fault rates, and each
//! downloader setting back to its default.

use super::gen::{can_serve, keep_up_with_churn, roundtrip, slow_chain_for_starving_sources};
use super::{check, Invariant};
use crate::scenario::{Behaviour, PeerGroup, Scenario, StateSpec, SyncSpec};
use std::time::Instant;
use syncsim_node::sync::PlantedBug;

/// The result of shrinking.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest scenario found that still fails the same way.
    pub scenario: Scenario,
    /// Variants accepted.
    pub steps: u32,
    /// Runs spent.
    pub runs: u32,
}

/// Shrinks `sc` (which violates `inv`) with at most `budget` runs, stopping early at `deadline`.
pub fn shrink(
    sc: &Scenario,
    inv: Invariant,
    plant: Option<PlantedBug>,
    budget: u32,
    deadline: Option<Instant>,
) -> Shrunk {
    let mut cur = sc.clone();
    let (mut steps, mut runs) = (0u32, 0u32);
    'passes: loop {
        let mut improved = false;
        let mut k = 0;
        loop {
            let cands = candidates(&cur);
            let Some(cand) = cands.get(k) else { break };
            if runs >= budget || deadline.is_some_and(|d| Instant::now() >= d) {
                break 'passes;
            }
            // Variants are valid by construction; skip one that is not rather than fail.
            let Ok(cand) = roundtrip(cand) else {
                k += 1;
                continue;
            };
            runs += 1;
            if check(&cand, plant).violates(inv) {
                // Keep it and try the variant now at the same position (the list changed).
                cur = cand;
                steps += 1;
                improved = true;
            } else {
                k += 1;
            }
        }
        if !improved {
            break;
        }
    }
    if steps > 0 {
        cur.description = Some(format!(
            "minimal failing scenario for invariant '{}': shrunk from fuzz seed {} in {steps} steps",
            inv.name(),
            sc.seed
        ));
    }
    Shrunk { scenario: cur, steps, runs }
}

/// The simpler variants of `sc`, coarsest first; none equals `sc`.
pub fn candidates(sc: &Scenario) -> Vec<Scenario> {
    let mut out: Vec<Scenario> = Vec::new();
    let mut push = |mut c: Scenario| {
        // a simpler scenario is still one the generator could draw: no churn beyond what its
        // sources and sizing can heal (else a shrink would trade the failure for an infeasible one)
        keep_up_with_churn(&mut c.sync, &c.chain);
        let d = c.sync.pivot_distance;
        slow_chain_for_starving_sources(&mut c.chain, &c.peers, d);
        if c != *sc && !out.contains(&c) {
            out.push(c);
        }
    };
    let with = |f: &dyn Fn(&mut Scenario)| {
        let mut c = sc.clone();
        f(&mut c);
        c
    };

    // Peer groups, keeping one able to serve.
    for i in 0..sc.peers.len() {
        let mut c = sc.clone();
        c.peers.remove(i);
        if !c.peers.is_empty() && (can_serve(&c) || !can_serve(sc)) {
            push(c);
        }
    }

    // Node and network faults, whole.
    push(with(&|c| c.faults.crash = 0));
    push(with(&|c| c.faults.crash = c.faults.crash.saturating_sub(1)));
    push(with(&|c| c.faults.disconnect = None));
    push(with(&|c| c.chain.reorg = None));
    push(with(&|c| c.faults.drop = 0.0));
    push(with(&|c| c.faults.duplicate = 0.0));
    push(with(&|c| c.faults.reorder = 0.0));
    push(with(&|c| c.faults.corrupt = 0.0));
    push(with(&|c| c.faults.duplicate_blocks = 0.0));

    // Chain churn.
    push(with(&|c| c.chain.blocks = 0));
    push(with(&|c| c.chain.changes_per_block = 0));
    push(with(&|c| c.chain.blocks /= 2));
    push(with(&|c| c.chain.changes_per_block /= 2));

    // State shape.
    if let StateSpec::Synthetic {
        accounts: a,
        contracts: c,
        storage_slots: s,
        storage_skew: k,
        code_size: z,
        unique_codes: u,
        boundary_keys: bk,
    } = sc.state
    {
        let shape = |a: u64, c: u64, s: u64, k: f64, z: (u64, u64), u: u64| {
            let mut x = sc.clone();
            x.state = synthetic(a, c, s, k, z, u);
            if let StateSpec::Synthetic { boundary_keys, .. } = &mut x.state {
                *boundary_keys = bk;
            }
            x
        };
        if bk {
            let mut x = sc.clone();
            x.state = synthetic(a, c, s, k, z, u);
            push(x);
        }
        push(shape(a, 0, 0, k, z, u));
        push(shape(a, c, 0, k, z, u));
        push(shape(a / 2, c, s, k, z, u));
        push(shape(a, c / 2, s, k, z, u));
        push(shape(a, c, s / 2, k, z, u));
        push(shape(a, c, s, 0.0, z, u));
        push(shape(a, c, s, k, z, 1));
        push(shape(a, c, s, k, (z.0.min(100), z.1.min(100)), u));
    }

    // Peer groups, one at a time.
    let default_group = PeerGroup::default();
    for i in 0..sc.peers.len() {
        let group = |f: &dyn Fn(&mut PeerGroup)| with(&|c| f(&mut c.peers[i]));
        push(group(&|g| g.behaviour = vec![Behaviour::Honest]));
        push(group(&|g| g.count = 1));
        push(group(&|g| g.count /= 2));
        for j in 0..sc.peers[i].behaviour.len() {
            if sc.peers[i].behaviour.len() > 1 {
                let c = group(&|g| {
                    g.behaviour.remove(j);
                });
                if can_serve(&c) || !can_serve(sc) {
                    push(c);
                }
            }
        }
        push(group(&|g| (g.join_at, g.leave_at) = (None, None)));
        push(group(&|g| g.latency = default_group.latency));
        push(group(&|g| g.bandwidth = default_group.bandwidth));
    }

    // Fault rates, halved.
    push(with(&|c| c.faults.drop = half(c.faults.drop)));
    push(with(&|c| c.faults.duplicate = half(c.faults.duplicate)));
    push(with(&|c| c.faults.reorder = half(c.faults.reorder)));
    push(with(&|c| c.faults.corrupt = half(c.faults.corrupt)));
    push(with(&|c| c.faults.duplicate_blocks = half(c.faults.duplicate_blocks)));

    // Downloader settings back to the product's defaults (the pivot distance stays: it is
    // tied to the chain's history).
    let d = SyncSpec::default();
    push(with(&|c| c.sync.request_sizing = d.request_sizing));
    push(with(&|c| c.sync.account_bytes = d.account_bytes));
    push(with(&|c| c.sync.storage_bytes = d.storage_bytes));
    push(with(&|c| c.sync.max_codes = d.max_codes));
    push(with(&|c| c.sync.max_trie_nodes = d.max_trie_nodes));
    push(with(&|c| c.sync.concurrency = d.concurrency));
    push(with(&|c| c.sync.request_timeout = d.request_timeout));
    out.retain(|c| c.peers.iter().all(|g| g.count >= 1));
    out
}

/// A synthetic state, its cross-key rules restored: at least one account, contracts within
/// the accounts, slots only with contracts, unique codes within the contracts.
fn synthetic(
    accounts: u64,
    contracts: u64,
    slots: u64,
    skew: f64,
    code: (u64, u64),
    unique: u64,
) -> StateSpec {
    let accounts = accounts.max(1);
    let contracts = contracts.min(accounts);
    StateSpec::Synthetic {
        accounts,
        contracts,
        storage_slots: if contracts == 0 { 0 } else { slots },
        storage_skew: skew,
        code_size: code,
        unique_codes: unique.clamp(1, contracts.max(1)),
        boundary_keys: false,
    }
}

/// Half a rate, rounded to 1e-4; rates below 2e-4 become 0.
fn half(r: f64) -> f64 {
    let h = (r * 5_000.0).round() / 10_000.0;
    if h < 1e-4 {
        0.0
    } else {
        h
    }
}
