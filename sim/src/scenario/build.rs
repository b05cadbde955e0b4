//! Turns a parsed document ([`Node`]) into a validated [`Scenario`], with an
//! error naming the line (or override) and dotted key for every problem.

use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use super::tree::{line_of, Entry, Node, Origin, Value};
use super::{
    join_key, Behaviour, ChainSpec, Disconnect, ErrorKind, Expect, Faults, Latency, Location, PeerGroup,
    Phase, Reorg, Scenario, ScenarioError, SizingPolicy, StateSpec, SyncSpec,
};
use crate::units::{Bandwidth, Duration, Size};

type Result<T> = std::result::Result<T, ScenarioError>;

const TOP_KEYS: &[&str] =
    &["name", "description", "seed", "state", "chain", "peers", "faults", "sync", "expect"];
const STATE_KEYS: &[&str] = &[
    "genesis",
    "accounts",
    "contracts",
    "storage_slots",
    "storage_skew",
    "code_size",
    "unique_codes",
    "boundary_keys",
];
const CHAIN_KEYS: &[&str] = &["blocks", "block_time", "changes_per_block", "state_history", "reorg"];
const PEER_KEYS: &[&str] = &["count", "behaviour", "latency", "bandwidth", "join_at", "leave_at"];
const FAULT_KEYS: &[&str] =
    &["drop", "duplicate", "reorder", "corrupt", "disconnect", "duplicate_blocks", "crash", "crash_in"];
const SYNC_KEYS: &[&str] = &[
    "request_sizing",
    "account_bytes",
    "storage_bytes",
    "max_codes",
    "max_trie_nodes",
    "concurrency",
    "request_timeout",
    "pivot_distance",
    "follow_blocks",
];
const EXPECT_KEYS: &[&str] = &["converge", "max_virtual_time", "max_requests", "dropped"];

/// A table being read: its dotted path, where it is, and its entries.
struct Tbl<'t> {
    path: String,
    origin: &'t Origin,
    entries: &'t [Entry],
}

impl<'t> Tbl<'t> {
    fn get(&self, key: &str) -> Option<&'t Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
    fn key(&self, key: &str) -> String {
        join_key(&self.path, key)
    }
}

/// Reads one scenario text.
pub(crate) struct Builder<'a> {
    text: &'a str,
    file: &'a Path,
}

impl<'a> Builder<'a> {
    pub(crate) fn new(text: &'a str, file: &'a Path) -> Self {
        Builder { text, file }
    }

    fn err(&self, origin: &Origin, key: &str, kind: ErrorKind, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.to_path_buf(),
            location: origin.location(self.text),
            key: key.to_string(),
            kind,
            message: message.into(),
        }
    }

    /// Parses the TOML syntax.
    pub(crate) fn parse_tree(&self) -> Result<Node> {
        Node::parse_document(self.text).map_err(|e| {
            let line = e.span().map(|s| line_of(self.text, s.start)).unwrap_or(1);
            let message =
                e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
            ScenarioError {
                file: self.file.to_path_buf(),
                location: Location::Line(line),
                key: key_at_line(self.text, line),
                kind: ErrorKind::Syntax,
                message: format!("TOML syntax error: {message}"),
            }
        })
    }

    // ------------------------------------------------------------ helpers

    fn table<'t>(&self, node: &'t Node, path: &str, origin: &'t Origin, allowed: &[&str]) -> Result<Tbl<'t>> {
        let Value::Table(entries) = &node.value else {
            return Err(self.wrong_type(node, path, origin, "a table"));
        };
        if let Some(e) = entries.iter().find(|e| !allowed.contains(&e.key.as_str())) {
            return Err(self.err(
                e.origin(),
                &join_key(path, &e.key),
                ErrorKind::UnknownKey,
                format!("unknown key (expected one of: {})", allowed.join(", ")),
            ));
        }
        Ok(Tbl { path: path.to_string(), origin, entries })
    }

    fn sub_table<'t>(&self, parent: &Tbl<'t>, key: &str, allowed: &[&str]) -> Result<Option<Tbl<'t>>> {
        match parent.get(key) {
            None => Ok(None),
            Some(e) => self.table(&e.node, &parent.key(key), e.origin(), allowed).map(Some),
        }
    }

    fn wrong_type(&self, node: &Node, path: &str, origin: &Origin, want: &str) -> ScenarioError {
        self.err(
            origin,
            path,
            ErrorKind::WrongType,
            format!("expected {want}, got {}", node.value.describe()),
        )
    }

    fn invalid(&self, origin: &Origin, path: &str, msg: impl Into<String>) -> ScenarioError {
        self.err(origin, path, ErrorKind::InvalidValue, msg)
    }

    /// Reads `t.key` with `f` if present.
    fn opt<T>(
        &self,
        t: &Tbl<'_>,
        key: &str,
        f: impl FnOnce(&Self, &Node, &str, &Origin) -> Result<T>,
    ) -> Result<Option<T>> {
        match t.get(key) {
            None => Ok(None),
            Some(e) => f(self, &e.node, &t.key(key), e.origin()).map(Some),
        }
    }

    fn string(&self, n: &Node, path: &str, origin: &Origin) -> Result<String> {
        match &n.value {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(self.wrong_type(n, path, origin, "a string")),
        }
    }

    fn boolean(&self, n: &Node, path: &str, origin: &Origin) -> Result<bool> {
        match n.value {
            Value::Bool(b) => Ok(b),
            _ => Err(self.wrong_type(n, path, origin, "true or false")),
        }
    }

    /// An integer in `min..=max` (min is 0 or 1).
    fn uint(&self, n: &Node, path: &str, origin: &Origin, min: u64, max: u64) -> Result<u64> {
        let want = if min == 0 { "a non-negative integer" } else { "a positive integer" };
        match n.value {
            Value::Int(i) if i < 0 || (i as u64) < min => {
                Err(self.invalid(origin, path, format!("expected {want}, got {i}")))
            }
            Value::Int(i) if i as u64 > max => {
                Err(self.invalid(origin, path, format!("expected {want} no larger than {max}, got {i}")))
            }
            Value::Int(i) => Ok(i as u64),
            _ => Err(self.wrong_type(n, path, origin, want)),
        }
    }

    fn count(&self, n: &Node, path: &str, origin: &Origin, min: u64) -> Result<u32> {
        self.uint(n, path, origin, min, u64::from(u32::MAX)).map(|v| v as u32)
    }

    fn float(&self, n: &Node, path: &str, origin: &Origin, want: &str) -> Result<f64> {
        match n.value {
            Value::Float(f) => Ok(f),
            Value::Int(i) => Ok(i as f64),
            _ => Err(self.wrong_type(n, path, origin, want)),
        }
    }

    fn probability(&self, n: &Node, path: &str, origin: &Origin) -> Result<f64> {
        const WANT: &str = "a probability in [0, 1]";
        let p = self.float(n, path, origin, WANT)?;
        if !(0.0..=1.0).contains(&p) {
            let got = match n.value {
                Value::Int(i) => i.to_string(),
                _ => format!("{p:?}"),
            };
            return Err(self.invalid(origin, path, format!("expected {WANT}, got {got}")));
        }
        Ok(p)
    }

    /// Parses a string value with `FromStr`.
    fn parsed<T: FromStr>(&self, n: &Node, path: &str, origin: &Origin, want: &str) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match &n.value {
            Value::Str(s) => s.parse().map_err(|e| self.invalid(origin, path, format!("{e}"))),
            _ => Err(self.wrong_type(n, path, origin, want)),
        }
    }

    fn duration(&self, n: &Node, path: &str, origin: &Origin, positive: bool) -> Result<Duration> {
        let d: Duration = self.parsed(n, path, origin, "a duration string such as \"12s\"")?;
        if positive && d.is_zero() {
            return Err(self.invalid(origin, path, "expected a duration above zero, got 0s"));
        }
        Ok(d)
    }

    /// A duration the node or the chain keeps in milliseconds: at least 1ms (below, it would
    /// truncate to zero: a zero timeout spins, a zero block time makes no blocks).
    fn duration_ms(&self, n: &Node, path: &str, origin: &Origin) -> Result<Duration> {
        let d = self.duration(n, path, origin, true)?;
        if d.as_millis() == 0 {
            return Err(self.invalid(origin, path, format!("expected a duration of at least 1ms, got {d}")));
        }
        Ok(d)
    }

    fn size(&self, n: &Node, path: &str, origin: &Origin, positive: bool) -> Result<Size> {
        let s = match n.value {
            Value::Int(_) => Size(self.uint(n, path, origin, 0, u64::MAX)?),
            _ => self.parsed(n, path, origin, "a size such as \"512KiB\" or an integer")?,
        };
        if positive && s.0 == 0 {
            return Err(self.invalid(origin, path, "expected a size above zero, got 0B"));
        }
        Ok(s)
    }

    fn bandwidth(&self, n: &Node, path: &str, origin: &Origin) -> Result<Bandwidth> {
        let b = match n.value {
            Value::Int(_) => Bandwidth(self.uint(n, path, origin, 0, u64::MAX)?),
            _ => self.parsed(n, path, origin, "a bandwidth such as \"5MiB/s\"")?,
        };
        if b.0 == 0 {
            return Err(self.invalid(origin, path, "expected a bandwidth above zero, got 0B/s"));
        }
        Ok(b)
    }

    fn behaviours(&self, n: &Node, path: &str, origin: &Origin) -> Result<Vec<Behaviour>> {
        const WANT: &str = "a behaviour name or a list of them";
        match &n.value {
            Value::Str(_) => Ok(vec![self.parsed(n, path, origin, WANT)?]),
            Value::Array(items) => {
                let mut out: Vec<Behaviour> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    let b = self.parsed(item, &p, &item.origin, "a behaviour name")?;
                    if out.contains(&b) {
                        return Err(self.invalid(
                            &item.origin,
                            &p,
                            format!("behaviour '{b}' is listed twice"),
                        ));
                    }
                    out.push(b);
                }
                Ok(out)
            }
            _ => Err(self.wrong_type(n, path, origin, WANT)),
        }
    }

    fn latency(&self, n: &Node, path: &str, origin: &Origin) -> Result<Latency> {
        match &n.value {
            Value::Str(_) => self.parsed(n, path, origin, ""),
            Value::Table(_) => {
                let t = self.table(n, path, origin, &["median", "p99"])?;
                let need = |key: &str| {
                    t.get(key).ok_or_else(|| {
                        self.err(
                            t.origin,
                            &t.key(key),
                            ErrorKind::Missing,
                            "a log-normal latency needs both 'median' and 'p99'",
                        )
                    })
                };
                let (m, p) = (need("median")?, need("p99")?);
                let median = self.duration(&m.node, &t.key("median"), m.origin(), true)?;
                let p99 = self.duration(&p.node, &t.key("p99"), p.origin(), false)?;
                if p99 < median {
                    return Err(self.invalid(
                        p.origin(),
                        &t.key("p99"),
                        format!("p99 ({p99}) must not be below the median ({median})"),
                    ));
                }
                Ok(Latency::LogNormal { median, p99 })
            }
            _ => Err(self.wrong_type(
                n,
                path,
                origin,
                "a range such as \"50ms..200ms\" or a table { median, p99 }",
            )),
        }
    }

    // ------------------------------------------------------------ sections

    pub(crate) fn build(&self, root: &Node) -> Result<Scenario> {
        let top = self.table(root, "", &root.origin, TOP_KEYS)?;
        let start = Origin::File(0);

        let name = match top.get("name") {
            Some(e) => {
                let name = self.string(&e.node, "name", e.origin())?;
                if name.trim().is_empty() {
                    return Err(self.invalid(e.origin(), "name", "must not be empty"));
                }
                name
            }
            None => {
                return Err(self.err(
                    &start,
                    "name",
                    ErrorKind::Missing,
                    "missing: every scenario needs a name",
                ))
            }
        };
        let description = self.opt(&top, "description", Self::string)?;
        let seed = self.opt(&top, "seed", Self::seed)?.unwrap_or(0);
        let state = self.state(&top)?;
        let chain = self.chain(&top)?;
        let peers = self.peers(&top)?;
        let faults = self.faults(&top)?;
        let sync = self.sync(&top)?;
        let expect = self.expect(&top)?;
        Ok(Scenario { name, description, seed, state, chain, peers, faults, sync, expect })
    }

    /// A u64 seed: an integer, or a string of digits for values above i64.
    fn seed(&self, n: &Node, path: &str, origin: &Origin) -> Result<u64> {
        match &n.value {
            Value::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().map_err(|_| self.invalid(origin, path, format!("seed {s} does not fit in 64 bits")))
            }
            _ => self.uint(n, path, origin, 0, u64::MAX),
        }
    }

    fn state(&self, top: &Tbl<'_>) -> Result<StateSpec> {
        let Some(t) = self.sub_table(top, "state", STATE_KEYS)? else {
            return Err(self.err(
                &Origin::File(0),
                "state",
                ErrorKind::Missing,
                "missing [state]: give either state.genesis (a genesis file) or state.accounts (a synthetic state)",
            ));
        };
        match (t.get("genesis"), t.get("accounts")) {
            (Some(g), Some(a)) => {
                let blamed = if g.origin().is_override() { g } else { a };
                Err(self.err(
                    blamed.origin(),
                    &t.key(&blamed.key),
                    ErrorKind::Conflict,
                    "'state.genesis' and 'state.accounts' exclude each other: give one",
                ))
            }
            (None, None) => Err(self.err(
                t.origin,
                "state",
                ErrorKind::Missing,
                "give either 'genesis' (a genesis file) or 'accounts' (a synthetic state)",
            )),
            (Some(g), None) => {
                if let Some(e) = t.entries.iter().find(|e| e.key != "genesis") {
                    return Err(self.err(
                        e.origin(),
                        &t.key(&e.key),
                        ErrorKind::Conflict,
                        "applies only to a synthetic state (state.accounts), not with state.genesis",
                    ));
                }
                let key = t.key("genesis");
                let rel = self.string(&g.node, &key, g.origin())?;
                if rel.is_empty() {
                    return Err(self.invalid(g.origin(), &key, "must not be empty"));
                }
                // "file.json#NAME" picks a named case (unless a file is really named so)
                let (file, case) = match rel.rsplit_once('#') {
                    Some((f, c)) if !self.resolve(&rel).is_file() && !f.is_empty() => {
                        (f.to_string(), Some(c.to_string()))
                    }
                    _ => (rel.clone(), None),
                };
                let path = self.resolve(&file);
                if !path.is_file() {
                    return Err(self.err(
                        g.origin(),
                        &key,
                        ErrorKind::MissingFile,
                        format!("genesis file {file:?} not found (resolved to {})", path.display()),
                    ));
                }
                if let Some(case) = &case {
                    let names: Vec<String> = match syncsim_node::genesis::load_genesis(&path) {
                        Ok(states) => states.into_iter().filter_map(|(n, _)| n).collect(),
                        Err(e) => return Err(self.invalid(g.origin(), &key, e.to_string())),
                    };
                    if !names.contains(case) {
                        let known = if names.is_empty() {
                            "it has no named cases".to_string()
                        } else {
                            format!("its cases: {}", names.join(", "))
                        };
                        return Err(self.invalid(
                            g.origin(),
                            &key,
                            format!("no case {case:?} in {file:?} ({known})"),
                        ));
                    }
                }
                Ok(StateSpec::Genesis { path, case })
            }
            (None, Some(a)) => self.synthetic(&t, a),
        }
    }

    /// `rel` joined to the scenario file's directory, absolute and with `.`
    /// and `..` resolved lexically.
    fn resolve(&self, rel: &str) -> PathBuf {
        let dir = self.file.parent().unwrap_or(Path::new(""));
        normalize(&dir.join(rel))
    }

    fn synthetic(&self, t: &Tbl<'_>, a: &Entry) -> Result<StateSpec> {
        let accounts = self.uint(&a.node, &t.key("accounts"), a.origin(), 1, u64::MAX)?;
        let u64_of = |key: &str, min: u64| self.opt(t, key, |b, n, p, o| b.uint(n, p, o, min, u64::MAX));
        let contracts = u64_of("contracts", 0)?.unwrap_or(0);
        let storage_slots = u64_of("storage_slots", 0)?.unwrap_or(0);
        let unique_codes = u64_of("unique_codes", 1)?;
        let storage_skew = self
            .opt(t, "storage_skew", |b, n, p, o| {
                let want = "a non-negative number";
                let f = b.float(n, p, o, want)?;
                if !(f.is_finite() && f >= 0.0) {
                    return Err(b.invalid(o, p, format!("expected {want}, got {f:?}")));
                }
                Ok(f)
            })?
            .unwrap_or(0.0);
        let code_size = self
            .opt(t, "code_size", |b, n, p, o| {
                let want = "a [min, max] pair of sizes";
                let Value::Array(items) = &n.value else {
                    return Err(b.wrong_type(n, p, o, want));
                };
                if items.len() != 2 {
                    return Err(b.invalid(o, p, format!("expected {want}, got {} item(s)", items.len())));
                }
                let min = b.size(&items[0], &format!("{p}[0]"), &items[0].origin, false)?;
                let max = b.size(&items[1], &format!("{p}[1]"), &items[1].origin, false)?;
                if max < min {
                    return Err(b.invalid(
                        &items[1].origin,
                        &format!("{p}[1]"),
                        format!("the maximum ({max}) is below the minimum ({min})"),
                    ));
                }
                Ok((min.0, max.0))
            })?
            .unwrap_or((100, 24 << 10));

        // Cross-key checks blame an override if one is involved, else the
        // dependent key.
        if contracts > accounts {
            let (o, k) = match t.get("contracts") {
                Some(c) if !a.origin().is_override() || c.origin().is_override() => {
                    (c.origin(), t.key("contracts"))
                }
                _ => (a.origin(), t.key("accounts")),
            };
            return Err(self.err(
                o,
                &k,
                ErrorKind::Conflict,
                format!("contracts ({contracts}) must not exceed accounts ({accounts})"),
            ));
        }
        if storage_slots > 0 && contracts == 0 {
            let e = t.get("storage_slots").expect("non-zero means present");
            let (o, k) = match t.get("contracts") {
                Some(c) if c.origin().is_override() && !e.origin().is_override() => {
                    (c.origin(), t.key("contracts"))
                }
                _ => (e.origin(), t.key("storage_slots")),
            };
            return Err(self.err(
                o,
                &k,
                ErrorKind::Conflict,
                format!("{storage_slots} storage slots need at least one contract (state.contracts)"),
            ));
        }
        let unique_codes = match unique_codes {
            Some(u) if u > contracts.max(1) => {
                let e = t.get("unique_codes").expect("present");
                return Err(self.err(
                    e.origin(),
                    &t.key("unique_codes"),
                    ErrorKind::Conflict,
                    format!(
                        "unique_codes ({u}) must not exceed contracts ({contracts}), or 1 without contracts"
                    ),
                ));
            }
            Some(u) => u,
            None => contracts.max(1),
        };
        let boundary_keys = self.opt(t, "boundary_keys", |b, n, p, o| b.boolean(n, p, o))?.unwrap_or(false);
        Ok(StateSpec::Synthetic {
            accounts,
            contracts,
            storage_slots,
            storage_skew,
            code_size,
            unique_codes,
            boundary_keys,
        })
    }

    fn chain(&self, top: &Tbl<'_>) -> Result<ChainSpec> {
        let mut c = ChainSpec::default();
        let Some(t) = self.sub_table(top, "chain", CHAIN_KEYS)? else {
            return Ok(c);
        };
        let nonneg = |b: &Self, n: &Node, p: &str, o: &Origin| b.uint(n, p, o, 0, u64::MAX);
        if let Some(v) = self.opt(&t, "blocks", nonneg)? {
            c.blocks = v;
        }
        if let Some(v) = self.opt(&t, "block_time", |b, n, p, o| b.duration_ms(n, p, o))? {
            c.block_time = v;
        }
        if let Some(v) = self.opt(&t, "changes_per_block", nonneg)? {
            c.changes_per_block = v;
        }
        if let Some(v) = self.opt(&t, "state_history", |b, n, p, o| b.uint(n, p, o, 1, u64::MAX))? {
            c.state_history = v;
        }
        if let Some(r) = self.sub_table(&t, "reorg", &["depth", "at"])? {
            let need = |key: &str| {
                r.get(key).ok_or_else(|| {
                    self.err(r.origin, &r.key(key), ErrorKind::Missing, "a reorg needs both 'depth' and 'at'")
                })
            };
            let (d, a) = (need("depth")?, need("at")?);
            c.reorg = Some(Reorg {
                depth: self.uint(&d.node, &r.key("depth"), d.origin(), 1, u64::MAX)?,
                at: self.duration(&a.node, &r.key("at"), a.origin(), false)?,
            });
        }
        Ok(c)
    }

    fn peers(&self, top: &Tbl<'_>) -> Result<Vec<PeerGroup>> {
        let Some(e) = top.get("peers") else {
            return Err(self.err(
                &Origin::File(0),
                "peers",
                ErrorKind::Missing,
                "missing: add at least one [[peers]] group",
            ));
        };
        let Value::Array(items) = &e.node.value else {
            return Err(self.wrong_type(&e.node, "peers", e.origin(), "an array of tables ([[peers]])"));
        };
        if items.is_empty() {
            return Err(self.invalid(
                e.origin(),
                "peers",
                "the peer list is empty: add at least one [[peers]] group",
            ));
        }
        items.iter().enumerate().map(|(i, item)| self.peer_group(item, &format!("peers[{i}]"))).collect()
    }

    fn peer_group(&self, node: &Node, path: &str) -> Result<PeerGroup> {
        let t = self.table(node, path, &node.origin, PEER_KEYS)?;
        let mut g = PeerGroup::default();
        if let Some(v) = self.opt(&t, "count", |b, n, p, o| b.count(n, p, o, 1))? {
            g.count = v;
        }
        if let Some(v) = self.opt(&t, "behaviour", Self::behaviours)? {
            if v.is_empty() {
                let e = t.get("behaviour").expect("present");
                return Err(self.invalid(
                    e.origin(),
                    &t.key("behaviour"),
                    "the behaviour list is empty: name at least one (e.g. \"honest\")",
                ));
            }
            g.behaviour = v;
        }
        if let Some(v) = self.opt(&t, "latency", Self::latency)? {
            g.latency = v;
        }
        if let Some(v) = self.opt(&t, "bandwidth", Self::bandwidth)? {
            g.bandwidth = v;
        }
        g.join_at = self.opt(&t, "join_at", |b, n, p, o| b.duration(n, p, o, false))?;
        g.leave_at = self.opt(&t, "leave_at", |b, n, p, o| b.duration(n, p, o, false))?;
        if let Some(leave) = g.leave_at {
            let join = g.join_at.unwrap_or(Duration::ZERO);
            if leave <= join {
                let e = t.get("leave_at").expect("present");
                return Err(self.invalid(
                    e.origin(),
                    &t.key("leave_at"),
                    format!("leave_at ({leave}) must be after join_at ({join})"),
                ));
            }
        }
        Ok(g)
    }

    fn faults(&self, top: &Tbl<'_>) -> Result<Faults> {
        let mut f = Faults::default();
        let Some(t) = self.sub_table(top, "faults", FAULT_KEYS)? else {
            return Ok(f);
        };
        for (key, slot) in [
            ("drop", &mut f.drop),
            ("duplicate", &mut f.duplicate),
            ("reorder", &mut f.reorder),
            ("corrupt", &mut f.corrupt),
            ("duplicate_blocks", &mut f.duplicate_blocks),
        ] {
            if let Some(p) = self.opt(&t, key, Self::probability)? {
                *slot = p;
            }
        }
        if let Some(d) = self.sub_table(&t, "disconnect", &["every", "downtime"])? {
            let need = |key: &str| {
                d.get(key).ok_or_else(|| {
                    self.err(
                        d.origin,
                        &d.key(key),
                        ErrorKind::Missing,
                        "a disconnect needs both 'every' and 'downtime'",
                    )
                })
            };
            let (e, w) = (need("every")?, need("downtime")?);
            f.disconnect = Some(Disconnect {
                every: self.duration(&e.node, &d.key("every"), e.origin(), true)?,
                downtime: self.duration(&w.node, &d.key("downtime"), w.origin(), false)?,
            });
        }
        if let Some(v) = self.opt(&t, "crash", |b, n, p, o| b.count(n, p, o, 0))? {
            f.crash = v;
        }
        if let Some(v) = self.opt(&t, "crash_in", |b, n, p, o| b.parsed::<Phase>(n, p, o, "a phase name"))? {
            f.crash_in = Some(v);
            if f.crash == 0 {
                let origin = t.get("crash_in").map_or(t.origin, |e| e.origin());
                return Err(self.invalid(origin, &t.key("crash_in"), "crash_in needs crash = 1 or more"));
            }
        }
        Ok(f)
    }

    fn sync(&self, top: &Tbl<'_>) -> Result<SyncSpec> {
        let mut s = SyncSpec::default();
        let Some(t) = self.sub_table(top, "sync", SYNC_KEYS)? else {
            return Ok(s);
        };
        if let Some(v) = self.opt(&t, "request_sizing", |b, n, p, o| {
            b.parsed::<SizingPolicy>(n, p, o, "a sizing policy name")
        })? {
            s.request_sizing = v;
        }
        let positive_size = |b: &Self, n: &Node, p: &str, o: &Origin| b.size(n, p, o, true);
        if let Some(v) = self.opt(&t, "account_bytes", positive_size)? {
            s.account_bytes = v;
        }
        if let Some(v) = self.opt(&t, "storage_bytes", positive_size)? {
            s.storage_bytes = v;
        }
        let positive = |b: &Self, n: &Node, p: &str, o: &Origin| b.count(n, p, o, 1);
        if let Some(v) = self.opt(&t, "max_codes", positive)? {
            s.max_codes = v;
        }
        if let Some(v) = self.opt(&t, "max_trie_nodes", positive)? {
            s.max_trie_nodes = v;
        }
        if let Some(v) = self.opt(&t, "concurrency", positive)? {
            s.concurrency = v;
        }
        if let Some(v) = self.opt(&t, "request_timeout", |b, n, p, o| b.duration_ms(n, p, o))? {
            s.request_timeout = v;
        }
        if let Some(v) = self.opt(&t, "pivot_distance", |b, n, p, o| b.uint(n, p, o, 0, u64::MAX))? {
            s.pivot_distance = v;
        }
        if let Some(v) = self.opt(&t, "follow_blocks", |b, n, p, o| b.uint(n, p, o, 0, u64::MAX))? {
            s.follow_blocks = v;
        }
        Ok(s)
    }

    fn expect(&self, top: &Tbl<'_>) -> Result<Expect> {
        let mut x = Expect::default();
        let Some(t) = self.sub_table(top, "expect", EXPECT_KEYS)? else {
            return Ok(x);
        };
        if let Some(v) = self.opt(&t, "converge", Self::boolean)? {
            x.converge = v;
        }
        x.max_virtual_time = self.opt(&t, "max_virtual_time", |b, n, p, o| b.duration_ms(n, p, o))?;
        x.max_requests = self.opt(&t, "max_requests", |b, n, p, o| b.uint(n, p, o, 0, u64::MAX))?;
        x.dropped = self.opt(&t, "dropped", |b, n, p, o| {
            if matches!(n.value, Value::Array(_)) {
                b.behaviours(n, p, o)
            } else {
                Err(b.wrong_type(n, p, o, "a list of behaviour names"))
            }
        })?;
        Ok(x)
    }
}

/// Makes `p` absolute (against the current directory) and resolves `.` and
/// `..` without touching the file system.
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Best-effort dotted key for a syntax error on `line`: the enclosing
/// `[table]` / `[[array]]` header plus the key assigned on that line.
fn key_at_line(text: &str, line: usize) -> String {
    let mut table = String::new();
    let mut arrays: Vec<(String, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate().take(line) {
        let l = raw.trim();
        let header = header_name(l);
        if let Some((name, is_array)) = header {
            table = if is_array {
                let n = match arrays.iter_mut().find(|(a, _)| *a == name) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        arrays.push((name.clone(), 0));
                        0
                    }
                };
                format!("{name}[{n}]")
            } else {
                name
            };
            if i + 1 == line {
                return table;
            }
        } else if i + 1 == line {
            if let Some(inner) = l.strip_prefix('[') {
                // A broken header: name what it was meant to open.
                let inner = inner.trim_start_matches('[');
                let end = inner.find([']', '#']).unwrap_or(inner.len());
                let name = inner[..end].trim();
                if !name.is_empty() {
                    return name.to_string();
                }
            } else if let Some((k, _)) = l.split_once('=') {
                let k = k.trim();
                let simple = !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b' '));
                if simple {
                    let k: Vec<&str> = k.split('.').map(str::trim).collect();
                    let k = k.join(".");
                    return if table.is_empty() { k } else { format!("{table}.{k}") };
                }
            }
        }
    }
    table
}

/// `Some((name, is_array))` if the trimmed line is a `[name]` or `[[name]]`
/// header (possibly with a trailing comment).
fn header_name(l: &str) -> Option<(String, bool)> {
    let l = match l.find('#') {
        Some(i) => l[..i].trim_end(),
        None => l,
    };
    let (inner, is_array) = if let Some(r) = l.strip_prefix("[[") {
        (r.strip_suffix("]]")?, true)
    } else {
        (l.strip_prefix('[')?.strip_suffix(']')?, false)
    };
    let name: Vec<&str> = inner.split('.').map(str::trim).collect();
    let ok = name
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    ok.then(|| (name.join("."), is_array))
}
