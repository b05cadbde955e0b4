//! A canonical TOML writer for [`Scenario`] (the `toml` crate is built
//! without its serializer). Every value is written, defaults included, so
//! the file means the same thing if the defaults change later.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use super::build::normalize;
use super::{Behaviour, Latency, Scenario, StateSpec};
use crate::units::Size;

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A float that reads back bit-for-bit (Rust's shortest round-trip form is
/// valid TOML: `0.02`, `1.0`, `1e-7`).
fn float(f: f64) -> String {
    format!("{f:?}")
}

/// A value that TOML can hold as an integer, else as a string of digits
/// (only `seed` accepts that form).
fn u64_value(v: u64) -> String {
    if i64::try_from(v).is_ok() {
        v.to_string()
    } else {
        quote(&v.to_string())
    }
}

fn behaviours(list: &[Behaviour]) -> String {
    let names: Vec<String> = list.iter().map(|b| quote(b.name())).collect();
    format!("[{}]", names.join(", "))
}

/// `target` relative to directory `base` (both absolute and normalized), or
/// `target` itself if they share no root.
fn relative_to(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<Component> = target.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let shares_root = common > 0 && matches!(t[0], Component::RootDir | Component::Prefix(_));
    if !shares_root {
        return target.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    out
}

pub(crate) fn to_toml(s: &Scenario, dest: Option<&Path>) -> String {
    let mut o = String::new();
    // Writing to a String cannot fail.
    let mut line = |text: String| {
        o.push_str(&text);
        o.push('\n');
    };

    line(format!("name = {}", quote(&s.name)));
    if let Some(d) = &s.description {
        line(format!("description = {}", quote(d)));
    }
    line(format!("seed = {}", u64_value(s.seed)));

    line("\n[state]".into());
    match &s.state {
        StateSpec::Genesis { path, case } => {
            let shown = match dest {
                Some(dest) => {
                    let dir = normalize(dest.parent().unwrap_or(Path::new("")));
                    relative_to(path, &dir)
                }
                None => path.clone(),
            };
            let mut shown = shown.to_string_lossy().into_owned();
            if let Some(c) = case {
                shown = format!("{shown}#{c}");
            }
            line(format!("genesis = {}", quote(&shown)));
        }
        StateSpec::Synthetic {
            accounts,
            contracts,
            storage_slots,
            storage_skew,
            code_size,
            unique_codes,
            boundary_keys,
        } => {
            line(format!("accounts = {accounts}"));
            line(format!("contracts = {contracts}"));
            line(format!("storage_slots = {storage_slots}"));
            line(format!("storage_skew = {}", float(*storage_skew)));
            line(format!(
                "code_size = [{}, {}]",
                quote(&Size(code_size.0).to_string()),
                quote(&Size(code_size.1).to_string())
            ));
            line(format!("unique_codes = {unique_codes}"));
            if *boundary_keys {
                line("boundary_keys = true".into());
            }
        }
    }

    let c = &s.chain;
    line("\n[chain]".into());
    line(format!("blocks = {}", c.blocks));
    line(format!("block_time = {}", quote(&c.block_time.to_string())));
    line(format!("changes_per_block = {}", c.changes_per_block));
    line(format!("state_history = {}", c.state_history));
    if let Some(r) = &c.reorg {
        line(format!("reorg = {{ depth = {}, at = {} }}", r.depth, quote(&r.at.to_string())));
    }

    for g in &s.peers {
        line("\n[[peers]]".into());
        line(format!("count = {}", g.count));
        match g.behaviour.as_slice() {
            [one] => line(format!("behaviour = {}", quote(one.name()))),
            list => line(format!("behaviour = {}", behaviours(list))),
        }
        match &g.latency {
            Latency::Uniform { min, max } => line(format!("latency = {}", quote(&format!("{min}..{max}")))),
            Latency::LogNormal { median, p99 } => line(format!(
                "latency = {{ median = {}, p99 = {} }}",
                quote(&median.to_string()),
                quote(&p99.to_string())
            )),
        }
        line(format!("bandwidth = {}", quote(&g.bandwidth.to_string())));
        if let Some(j) = g.join_at {
            line(format!("join_at = {}", quote(&j.to_string())));
        }
        if let Some(l) = g.leave_at {
            line(format!("leave_at = {}", quote(&l.to_string())));
        }
    }

    let f = &s.faults;
    line("\n[faults]".into());
    line(format!("drop = {}", float(f.drop)));
    line(format!("duplicate = {}", float(f.duplicate)));
    line(format!("reorder = {}", float(f.reorder)));
    line(format!("corrupt = {}", float(f.corrupt)));
    if let Some(d) = &f.disconnect {
        line(format!(
            "disconnect = {{ every = {}, downtime = {} }}",
            quote(&d.every.to_string()),
            quote(&d.downtime.to_string())
        ));
    }
    line(format!("duplicate_blocks = {}", float(f.duplicate_blocks)));
    line(format!("crash = {}", f.crash));
    if let Some(p) = f.crash_in {
        line(format!("crash_in = {}", quote(p.name())));
    }

    let y = &s.sync;
    line("\n[sync]".into());
    line(format!("request_sizing = {}", quote(y.request_sizing.name())));
    line(format!("account_bytes = {}", quote(&y.account_bytes.to_string())));
    line(format!("storage_bytes = {}", quote(&y.storage_bytes.to_string())));
    line(format!("max_codes = {}", y.max_codes));
    line(format!("max_trie_nodes = {}", y.max_trie_nodes));
    line(format!("concurrency = {}", y.concurrency));
    line(format!("request_timeout = {}", quote(&y.request_timeout.to_string())));
    line(format!("pivot_distance = {}", y.pivot_distance));
    line(format!("follow_blocks = {}", y.follow_blocks));

    let x = &s.expect;
    line("\n[expect]".into());
    line(format!("converge = {}", x.converge));
    if let Some(t) = x.max_virtual_time {
        line(format!("max_virtual_time = {}", quote(&t.to_string())));
    }
    if let Some(m) = x.max_requests {
        line(format!("max_requests = {m}"));
    }
    if let Some(d) = &x.dropped {
        line(format!("dropped = {}", behaviours(d)));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn relative_paths() {
        let r = relative_to(Path::new("/a/b/g.json"), Path::new("/a/c/d"));
        assert_eq!(r, PathBuf::from("../../b/g.json"));
        let r = relative_to(Path::new("/a/g.json"), Path::new("/a"));
        assert_eq!(r, PathBuf::from("g.json"));
    }
}
