//! Fuzz target `scenario`: the simulator end to end, with the fuzzer making every decision.
//!
//! The first byte picks a mode.
//!
//! **Run mode** (even first byte). The remaining bytes drive the random choices of a tiny
//! scenario (10..=300 accounts, up to 8 contracts and 200 slots; 1..=4 peer groups of 1..=3 peers
//! with one or two behaviours from the whole catalogue, latencies, bandwidths, join/leave times;
//! network fault rates, disconnects and crashes; a short growing chain, maybe a reorg; the
//! downloader's settings; the seed), which is rendered as TOML text, parsed with
//! `Scenario::parse` and run with `syncsim::runner::run`. The first decision is whether the
//! scenario is generated *recoverable* (3 in 4) or *free*. Asserted:
//! - the generated text parses (the generator only writes valid scenarios), and
//!   `Scenario::to_toml_string` parses back to an equal scenario;
//! - `run` never panics and returns `Ok`;
//! - for a recoverable scenario: the run converged (`report.converged`: the node's store holds
//!   the oracle's state root at the pivot, checked by an independent walk) within the virtual
//!   time cut-off (`max_virtual_time = "30m"`, so the runner stops at 61 min).
//!
//! Recoverable scenarios are generated only inside these bounds (generation is restricted; the
//! check is never weakened):
//! - the first peer group is an *anchor*: behaviours drawn only from `honest`, `slow`,
//!   `starving`, `capped-code`, `bloated-proof`, `duplicate-blocks`, `flapping` (correct, maybe
//!   unhelpful), joins within the first minute and never leaves; the other groups are free
//!   (any behaviours, join/leave times);
//! - faults: drop/duplicate/reorder <= 10 %, corrupt <= 5 %, duplicate_blocks <= 10 %,
//!   disconnects at least 30 s apart lasting at most 30 s, at most 3 crashes;
//! - chain: state_history = 128 and pivot_distance in 16..=63 (the pivot moves rarely: with
//!   pivot_distance 5 / state_history 16, fixed 1-byte requests and 5-9 % message drop a
//!   21-account sync did not converge in an hour, while the same scenario with 32 / 128 did -
//!   reported as a liveness weakness in fuzz/artifacts-found/README.md, not asserted here),
//!   reorgs shallower than pivot_distance, and the
//!   state may only change on 12 s blocks (changes_per_block <= 10); with 1 s/2 s blocks
//!   changes_per_block is 0. Faster churn can outrun healing: snap sync then never converges by
//!   design (each pivot move needs more healing than the next block allows) - the first 60 s
//!   run found exactly that with 1 s blocks, 1-node heal requests and concurrency 1;
//! - downloader: concurrency >= 4, max_trie_nodes >= 64 (same reason);
//! - the anchor can answer within the timeout: anchor bandwidth >= 512 KiB/s (a `slow` peer gets
//!   a tenth of it) and request_timeout >= 5 s (one-way latencies are at most 500 ms). A run found
//!   that a 500 ms timeout with 6.4 KiB/s peers and up to 630 ms round trips times out every
//!   request and stalls - by configuration, not a node bug.
//!
//! Known to fail today (a node bug, so the check stays): with `corrupt` > 0 an honest anchor can be
//! marked stateless for good and then dropped for an undecodable message - finding 3 in
//! fuzz/artifacts-found/README.md.
//!
//! Free scenarios draw everything from the wider ranges (any groups, 1 s blocks with churn,
//! tiny requests, pivot_distance up to state_history + 8) with a cut-off of
//! `max_virtual_time = "5m"` (11 min virtual) and only have to run without panicking.
//!
//! **Text mode** (odd first byte). The remaining bytes are scenario text: `Scenario::parse` must
//! not panic, and a scenario it accepts must survive `to_toml_string` -> `parse` unchanged.
//! Nothing is run in this mode (arbitrary text may ask for billions of accounts).
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::fmt::Write;
use std::path::Path;
use syncsim::runner::{run, RunOptions};
use syncsim::scenario::{Behaviour, Scenario};

/// Behaviours a peer can have and still lead a sync to the end on its own.
const ANCHOR: &[Behaviour] = &[
    Behaviour::Honest,
    Behaviour::Slow,
    Behaviour::Starving,
    Behaviour::CappedCode,
    Behaviour::BloatedProof,
    Behaviour::DuplicateBlocks,
    Behaviour::Flapping,
];

/// Lowest `sync.request_timeout` generated: the scenario format's own floor (1 ms; below it
/// the node's millisecond clock would truncate it to zero). Timeouts below 500 ms once panicked
/// the node (fuzz/artifacts-found/README.md, finding 2; fixed).
const MIN_REQUEST_TIMEOUT_MS: u32 = 1;

fn rate(u: &mut Unstructured<'_>, max_percent: u32) -> Result<f64> {
    // mostly zero, else 0.1 % steps up to the bound
    if u.ratio(1, 2)? {
        return Ok(0.0);
    }
    Ok(f64::from(u.int_in_range(0..=max_percent * 10)?) / 1000.0)
}

fn ms(u: &mut Unstructured<'_>, lo: u32, hi: u32) -> Result<String> {
    Ok(format!("{}ms", u.int_in_range(lo..=hi)?))
}

/// Renders a random tiny scenario; returns the text and whether it was generated recoverable
/// (see the module docs).
fn generate(u: &mut Unstructured<'_>) -> Result<(String, bool)> {
    let recoverable = u.ratio(3, 4)?;
    let mut t = String::new();
    let seed = u.int_in_range(0..=i64::MAX as u64)?; // TOML integers are i64
    writeln!(t, "name = \"fuzz\"\nseed = {seed}\n").unwrap();

    // [state]
    let accounts = u.int_in_range(10..=300u64)?;
    let contracts = u.int_in_range(0..=accounts.min(8))?;
    writeln!(t, "[state]\naccounts = {accounts}\ncontracts = {contracts}").unwrap();
    if contracts > 0 {
        let slots = u.int_in_range(0..=200u64)?;
        let skew = f64::from(u.int_in_range(0..=20u32)?) / 10.0;
        let (lo, hi) = (u.int_in_range(1..=200u32)?, u.int_in_range(200..=3000u32)?);
        let codes = u.int_in_range(1..=contracts)?;
        writeln!(
            t,
            "storage_slots = {slots}\nstorage_skew = {skew:?}\ncode_size = [\"{lo}B\", \"{hi}B\"]\nunique_codes = {codes}"
        )
        .unwrap();
    }

    // [chain]
    let (state_history, pivot_distance) = if recoverable {
        (128, u.int_in_range(16..=63u64)?)
    } else {
        let h = *u.choose(&[16u64, 32, 128])?;
        (h, u.int_in_range(0..=h + 8)?)
    };
    let blocks = u.int_in_range(0..=40u64)?;
    let block_time = *u.choose(&["12s", "2s", "1s"])?;
    let changes = if recoverable && block_time != "12s" { 0 } else { u.int_in_range(0..=10u32)? };
    writeln!(
        t,
        "\n[chain]\nblocks = {blocks}\nblock_time = \"{block_time}\"\nchanges_per_block = {changes}\nstate_history = {state_history}",
    )
    .unwrap();
    if pivot_distance > 1 && u.ratio(1, 8)? {
        let depth = if recoverable {
            u.int_in_range(1..=pivot_distance - 1)?
        } else {
            u.int_in_range(1..=pivot_distance + 4)?
        };
        writeln!(t, "reorg = {{ depth = {depth}, at = \"{}s\" }}", u.int_in_range(0..=120u32)?).unwrap();
    }

    // [[peers]]
    let groups = u.int_in_range(1..=4usize)?;
    for g in 0..groups {
        let anchor = recoverable && g == 0;
        let pool = if anchor { ANCHOR } else { Behaviour::ALL };
        let n = u.int_in_range(1..=2usize)?;
        let mut bs: Vec<Behaviour> = Vec::new();
        for _ in 0..n {
            let b = *u.choose(pool)?;
            if !bs.contains(&b) {
                bs.push(b);
            }
        }
        let names: Vec<String> = bs.iter().map(|b| format!("\"{}\"", b.name())).collect();
        let lo = u.int_in_range(1..=200u32)?;
        let hi = lo + u.int_in_range(0..=300u32)?;
        let latency = if u.ratio(1, 4)? {
            format!("{{ median = \"{lo}ms\", p99 = \"{hi}ms\" }}")
        } else {
            format!("\"{lo}ms..{hi}ms\"")
        };
        writeln!(
            t,
            "\n[[peers]]\ncount = {}\nbehaviour = [{}]\nlatency = {latency}\nbandwidth = \"{}\"",
            u.int_in_range(1..=3u32)?,
            names.join(", "),
            // an anchor must be able to answer within the request timeout (slow = a tenth)
            u.choose(if anchor {
                &["10MiB/s", "2MiB/s", "512KiB/s"][..]
            } else {
                &["10MiB/s", "2MiB/s", "512KiB/s", "64KiB/s"]
            })?,
        )
        .unwrap();
        let join =
            if u.ratio(1, 4)? { Some(u.int_in_range(0..=if anchor { 60 } else { 300u32 })?) } else { None };
        let leave = if !anchor && u.ratio(1, 6)? {
            Some(join.unwrap_or(0) + u.int_in_range(1..=300u32)?)
        } else {
            None
        };
        if let Some(j) = join {
            writeln!(t, "join_at = \"{j}s\"").unwrap();
        }
        if let Some(l) = leave {
            writeln!(t, "leave_at = \"{l}s\"").unwrap();
        }
    }

    // [faults]
    writeln!(
        t,
        "\n[faults]\ndrop = {:?}\nduplicate = {:?}\nreorder = {:?}\ncorrupt = {:?}\nduplicate_blocks = {:?}\ncrash = {}",
        rate(u, 10)?,
        rate(u, 10)?,
        rate(u, 10)?,
        rate(u, 5)?,
        rate(u, 10)?,
        if u.ratio(1, 4)? { u.int_in_range(1..=3u32)? } else { 0 },
    )
    .unwrap();
    if u.ratio(1, 4)? {
        writeln!(
            t,
            "disconnect = {{ every = \"{}s\", downtime = \"{}\" }}",
            u.int_in_range(30..=300u32)?,
            ms(u, 0, 30_000)?
        )
        .unwrap();
    }

    // [sync]
    let (min_concurrency, min_trie_nodes) = if recoverable { (4, 64) } else { (1, 1) };
    writeln!(
        t,
        "\n[sync]\nrequest_sizing = \"{}\"\naccount_bytes = \"{}\"\nstorage_bytes = \"{}\"\nmax_codes = {}\nmax_trie_nodes = {}\nconcurrency = {}\nrequest_timeout = \"{}\"\npivot_distance = {pivot_distance}\nfollow_blocks = {}",
        u.choose(&["adaptive", "fixed", "geth", "harmony"])?,
        u.choose(&["512KiB", "64KiB", "4KiB", "500B", "1B"])?,
        u.choose(&["512KiB", "64KiB", "4KiB", "500B", "1B"])?,
        u.int_in_range(1..=84u32)?,
        u.int_in_range(min_trie_nodes..=1024u32)?,
        u.int_in_range(min_concurrency..=16u32)?,
        ms(u, if recoverable { 5_000 } else { MIN_REQUEST_TIMEOUT_MS }, 10_000)?,
        u.int_in_range(0..=2u32)?,
    )
    .unwrap();
    writeln!(t, "\n[expect]\nmax_virtual_time = \"{}\"", if recoverable { "30m" } else { "5m" }).unwrap();
    Ok((t, recoverable))
}

fn round_trip(sc: &Scenario, what: &str) {
    let text = sc.to_toml_string();
    let again = Scenario::parse(&text, Path::new("fuzz.toml"))
        .unwrap_or_else(|e| panic!("to_toml_string of a {what} scenario does not parse: {e}\n{text}"));
    assert_eq!(&again, sc, "to_toml_string -> parse changed a {what} scenario\n{text}");
}

fn run_mode(u: &mut Unstructured<'_>) {
    let Ok((text, recoverable)) = generate(u) else { return };
    if std::env::var_os("FUZZ_SHOW").is_some() {
        // replaying an input: show the scenario it stands for (recoverable = converge asserted)
        eprintln!("--- scenario (recoverable: {recoverable}) ---\n{text}--- end ---");
    }
    let sc = Scenario::parse(&text, Path::new("fuzz.toml"))
        .unwrap_or_else(|e| panic!("generated scenario rejected: {e}\n{text}"));
    round_trip(&sc, "generated");
    let report =
        run(&sc, &RunOptions::default()).unwrap_or_else(|e| panic!("run failed to start: {e}\n{text}"));
    if recoverable {
        assert!(
            report.converged,
            "recoverable scenario did not converge: {}\n{}\n--- scenario ---\n{text}",
            report.failure.as_deref().unwrap_or("(no failure message)"),
            report.summary()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        run_mode(&mut Unstructured::new(rest));
    } else if let Ok(text) = std::str::from_utf8(rest) {
        if let Ok(sc) = Scenario::parse(text, Path::new("fuzz.toml")) {
            round_trip(&sc, "parsed");
        }
    }
});
