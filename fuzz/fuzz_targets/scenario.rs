//! Fuzz target `scenario`: the simulator end to end, with the fuzzer making every decision.
//!
//! The first byte picks a mode.
//!
//! **Run mode** (even first byte). The remaining bytes drive the random choices of a tiny
//! scenario (10..=300 accounts, up to 8 contracts and 200 slots; 1..=4 peer groups of 1..=3 peers
//! with one or two behaviours from the whole catalogue, latencies, bandwidths, join/leave times;
//! network fault rates, disconnects and crashes; a short growing chain, maybe a reorg; the
//! downloader's settings; the seed), which is rendered as TOML text, parsed with
//! `Scenario::parse` and run with `syncsim::runner::run`. Asserted:
//! - the generated text parses (the generator only writes valid scenarios), and
//!   `Scenario::to_toml_string` parses back to an equal scenario;
//! - `run` never panics and returns `Ok`;
//! - liveness/correctness: when the scenario is *recoverable*, the run converged
//!   (`report.converged`: the node's store holds the oracle's state root at the pivot, checked
//!   by an independent walk). Recoverable = at least one peer group whose behaviours are all
//!   correct-but-maybe-unhelpful (`honest`, `slow`, `starving`, `capped-code`, `bloated-proof`,
//!   `duplicate-blocks`, `flapping`), which never leaves and joins within the first minute; and
//!   the generated fault set (always): drop/duplicate/reorder <= 10 %, corrupt <= 5 %,
//!   duplicate_blocks <= 10 %, disconnects at least 30 s apart lasting at most 30 s, at most 3
//!   crashes, pivot_distance below half of state_history, reorgs shallower than pivot_distance.
//!   Generation is restricted to those bounds (rather than the check weakened); scenarios
//!   without such a group only have to run without panicking.
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

/// Renders a random recoverable-or-not tiny scenario; returns the text and whether it is
/// recoverable (see the module docs).
fn generate(u: &mut Unstructured<'_>) -> Result<(String, bool)> {
    let mut t = String::new();
    let seed: u64 = u.arbitrary()?;
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
    let state_history = *u.choose(&[16u64, 32, 128])?;
    let pivot_distance = u.int_in_range(0..=state_history / 2 - 1)?;
    let blocks = u.int_in_range(0..=40u64)?;
    writeln!(
        t,
        "\n[chain]\nblocks = {blocks}\nblock_time = \"{}\"\nchanges_per_block = {}\nstate_history = {state_history}",
        u.choose(&["1s", "2s", "12s"])?,
        u.int_in_range(0..=10u32)?,
    )
    .unwrap();
    if pivot_distance > 1 && u.ratio(1, 8)? {
        let depth = u.int_in_range(1..=pivot_distance - 1)?;
        writeln!(t, "reorg = {{ depth = {depth}, at = \"{}s\" }}", u.int_in_range(0..=120u32)?).unwrap();
    }

    // [[peers]]
    let groups = u.int_in_range(1..=4usize)?;
    let mut recoverable = false;
    for _ in 0..groups {
        let n = u.int_in_range(1..=2usize)?;
        let mut bs: Vec<Behaviour> = Vec::new();
        for _ in 0..n {
            let b = *u.choose(Behaviour::ALL)?;
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
            u.choose(&["64KiB/s", "512KiB/s", "2MiB/s", "10MiB/s"])?,
        )
        .unwrap();
        let join = if u.ratio(1, 4)? { Some(u.int_in_range(0..=120u32)?) } else { None };
        let leave = if u.ratio(1, 6)? { Some(join.unwrap_or(0) + u.int_in_range(1..=300u32)?) } else { None };
        if let Some(j) = join {
            writeln!(t, "join_at = \"{j}s\"").unwrap();
        }
        if let Some(l) = leave {
            writeln!(t, "leave_at = \"{l}s\"").unwrap();
        }
        if bs.iter().all(|b| ANCHOR.contains(b)) && leave.is_none() && join.unwrap_or(0) <= 60 {
            recoverable = true;
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
    writeln!(
        t,
        "\n[sync]\nrequest_sizing = \"{}\"\naccount_bytes = \"{}\"\nstorage_bytes = \"{}\"\nmax_codes = {}\nmax_trie_nodes = {}\nconcurrency = {}\nrequest_timeout = \"{}\"\npivot_distance = {pivot_distance}\nfollow_blocks = {}",
        u.choose(&["adaptive", "fixed", "geth", "harmony"])?,
        u.choose(&["1B", "500B", "4KiB", "64KiB", "512KiB"])?,
        u.choose(&["1B", "500B", "4KiB", "64KiB", "512KiB"])?,
        u.int_in_range(1..=84u32)?,
        u.int_in_range(1..=1024u32)?,
        u.int_in_range(1..=16u32)?,
        ms(u, 200, 10_000)?,
        u.int_in_range(0..=2u32)?,
    )
    .unwrap();
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
    let sc = Scenario::parse(&text, Path::new("fuzz.toml"))
        .unwrap_or_else(|e| panic!("generated scenario rejected: {e}\n{text}"));
    round_trip(&sc, "generated");
    let report = run(&sc, &RunOptions::default()).unwrap_or_else(|e| panic!("run failed to start: {e}\n{text}"));
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
