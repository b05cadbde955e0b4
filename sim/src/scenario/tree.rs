//! A TOML document as a tree that remembers where each key and value came
//! from: a byte range of the scenario file, or a `--set` override.
//!
//! `toml` (with only its `parse` feature) gives spans through
//! `toml::Spanned`, but only where the parser has one (implicit tables and
//! array-of-tables items may have none), and `Spanned<T>` fails outright
//! without one. So [`Node`] asks for a span the same way `Spanned` does and
//! also accepts a plain value; gaps are then filled from the parent.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{ErrorKind, Location, ScenarioError};

// The (hidden, but fixed for serde_spanned 0.6 / toml 0.8) protocol by which
// the toml deserializer hands out spans and datetimes.
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];
const DATETIME_FIELD: &str = "$__toml_private_datetime";

/// Where a key or value came from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Origin {
    /// A byte offset into the scenario file.
    File(usize),
    /// Not known yet (filled in by [`Node::fill_origins`]).
    Unknown,
    /// The override `KEY=VALUE` given on the command line.
    Override(String),
}

impl Origin {
    /// The error location for this origin.
    pub(crate) fn location(&self, text: &str) -> Location {
        match self {
            Origin::File(offset) => Location::Line(line_of(text, *offset)),
            Origin::Unknown => Location::Line(1),
            Origin::Override(kv) => Location::Override(kv.clone()),
        }
    }
    pub(crate) fn is_override(&self) -> bool {
        matches!(self, Origin::Override(_))
    }
}

/// The 1-based line holding byte `offset` of `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// One value of the document.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub origin: Origin,
    pub value: Value,
}

/// `key = node` inside a table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_origin: Origin,
    pub node: Node,
}

impl Entry {
    /// Where to point for an error about this entry: the key, else the value.
    pub(crate) fn origin(&self) -> &Origin {
        match self.key_origin {
            Origin::Unknown => &self.node.origin,
            _ => &self.key_origin,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

impl Value {
    /// Describes the value for "got ..." in messages: integers bare, others
    /// with their type.
    pub(crate) fn describe(&self) -> String {
        match self {
            Value::Str(s) => format!("string {s:?}"),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("float {f:?}"),
            Value::Bool(b) => format!("boolean {b}"),
            Value::Datetime(d) => format!("datetime {d}"),
            Value::Array(_) => "an array".to_string(),
            Value::Table(_) => "a table".to_string(),
        }
    }
}

impl Value {
    /// The TOML type with an article: `an integer`, `a table`.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Datetime(_) => "a datetime",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

impl Node {
    fn new(value: Value) -> Self {
        Node { origin: Origin::Unknown, value }
    }

    /// Replaces unknown origins with the closest known one above.
    pub(crate) fn fill_origins(&mut self, parent: &Origin) {
        if self.origin == Origin::Unknown {
            self.origin = parent.clone();
        }
        match &mut self.value {
            Value::Array(items) => {
                for item in items {
                    item.fill_origins(&self.origin);
                }
            }
            Value::Table(entries) => {
                for e in entries {
                    if e.key_origin == Origin::Unknown {
                        e.key_origin = match &e.node.origin {
                            Origin::Unknown => self.origin.clone(),
                            o => o.clone(),
                        };
                    }
                    e.node.fill_origins(&e.key_origin);
                }
            }
            _ => {}
        }
    }

    /// Sets every origin in this subtree.
    fn set_origins(&mut self, origin: &Origin) {
        self.origin = origin.clone();
        match &mut self.value {
            Value::Array(items) => items.iter_mut().for_each(|n| n.set_origins(origin)),
            Value::Table(entries) => {
                for e in entries {
                    e.key_origin = origin.clone();
                    e.node.set_origins(origin);
                }
            }
            _ => {}
        }
    }

    /// Parses a whole document. `Err` is the `toml` syntax error.
    pub(crate) fn parse_document(text: &str) -> Result<Node, toml::de::Error> {
        let mut root: Node = toml::from_str(text)?;
        root.fill_origins(&Origin::File(0));
        Ok(root)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor)
    }
}

/// A value without asking for its span (the span is already being read).
struct Bare(Node);

impl<'de> Deserialize<'de> for Bare {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor).map(Bare)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::new(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::new(Value::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v).map(|v| Node::new(Value::Int(v))).map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::new(Value::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::new(Value::Str(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::new(Value::Str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::new(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let Some(first) = map.next_key::<Node>()? else {
            return Ok(Node::new(Value::Table(Vec::new())));
        };
        let first_name = match &first.value {
            Value::Str(s) => s.as_str(),
            _ => return Err(de::Error::custom("table key is not a string")),
        };
        if first_name == SPANNED_START {
            let start: usize = map.next_value()?;
            let _end_key: Option<Node> = map.next_key()?;
            let _end: usize = map.next_value()?;
            let _value_key: Option<Node> = map.next_key()?;
            let Bare(mut node) = map.next_value()?;
            node.origin = Origin::File(start);
            return Ok(node);
        }
        if first_name == DATETIME_FIELD {
            let dt: String = map.next_value()?;
            return Ok(Node::new(Value::Datetime(dt)));
        }
        let mut entries = Vec::new();
        let mut key = first;
        loop {
            let node: Node = map.next_value()?;
            let Value::Str(name) = key.value else {
                return Err(de::Error::custom("table key is not a string"));
            };
            entries.push(Entry { key: name, key_origin: key.origin, node });
            match map.next_key::<Node>()? {
                Some(k) => key = k,
                None => break,
            }
        }
        Ok(Node::new(Value::Table(entries)))
    }
}

// --------------------------------------------------------------- overrides

/// One step of an override key path.
#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Splits `peers[0].count` or `peers.0.count` into segments.
fn parse_path(key: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => part.split_at(i),
            None => (part, ""),
        };
        if name.is_empty() {
            if out.is_empty() {
                return None;
            }
        } else if name.bytes().all(|b| b.is_ascii_digit()) {
            out.push(Segment::Index(name.parse().ok()?));
        } else if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            out.push(Segment::Key(name.to_string()));
        } else {
            return None;
        }
        while !rest.is_empty() {
            let close = rest.find(']')?;
            let idx = rest.get(1..close)?.parse().ok()?;
            out.push(Segment::Index(idx));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return None;
            }
        }
        if name.is_empty() && part.is_empty() {
            return None;
        }
    }
    match out.first() {
        Some(Segment::Key(_)) => Some(out),
        _ => None,
    }
}

/// Parses an override's VALUE: a TOML value if it is one, else a string.
fn parse_override_value(value: &str) -> Value {
    if let Ok(Node { value: Value::Table(mut entries), .. }) = toml::from_str::<Node>(&format!("v = {value}"))
    {
        if entries.len() == 1 && entries[0].key == "v" {
            return entries.remove(0).node.value;
        }
    }
    Value::Str(value.to_string())
}

/// Applies `--set key=value` to the document.
pub(crate) fn apply_override(
    root: &mut Node,
    key: &str,
    value: &str,
    file: &std::path::Path,
) -> Result<(), ScenarioError> {
    let kv = format!("{key}={value}");
    let origin = Origin::Override(kv.clone());
    let fail = |msg: String| ScenarioError {
        file: file.to_path_buf(),
        location: Location::Override(kv.clone()),
        key: key.to_string(),
        kind: ErrorKind::BadOverride,
        message: msg,
    };
    let path = parse_path(key).ok_or_else(|| {
        fail("not a valid key path (expected e.g. sync.account_bytes or peers[0].count)".into())
    })?;
    let mut new = Node::new(parse_override_value(value));
    new.set_origins(&origin);

    let mut cur = root;
    let mut shown = String::new();
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        let fresh = || match path.get(i + 1) {
            Some(Segment::Index(_)) => Node { origin: origin.clone(), value: Value::Array(Vec::new()) },
            _ => Node { origin: origin.clone(), value: Value::Table(Vec::new()) },
        };
        let kind = cur.value.type_name();
        let where_ = if shown.is_empty() { "the document".to_string() } else { format!("'{shown}'") };
        cur = match (seg, &mut cur.value) {
            (Segment::Key(k), Value::Table(entries)) => {
                let pos = match entries.iter().position(|e| &e.key == k) {
                    Some(p) => p,
                    None => {
                        entries.push(Entry { key: k.clone(), key_origin: origin.clone(), node: fresh() });
                        entries.len() - 1
                    }
                };
                shown = super::join_key(&shown, k);
                let entry = &mut entries[pos];
                if last {
                    entry.key_origin = origin.clone();
                    entry.node = new;
                    return Ok(());
                }
                &mut entry.node
            }
            (Segment::Index(idx), Value::Array(items)) => {
                if *idx > items.len() {
                    return Err(fail(format!(
                        "index {idx} is out of range: {where_} has {} item(s)",
                        items.len()
                    )));
                }
                if *idx == items.len() {
                    items.push(fresh());
                }
                shown = format!("{shown}[{idx}]");
                if last {
                    items[*idx] = new;
                    return Ok(());
                }
                &mut items[*idx]
            }
            (Segment::Key(k), Value::Array(_)) => {
                return Err(fail(format!("{where_} is an array, not a table (index it: {shown}[0].{k})")));
            }
            (Segment::Key(_), _) => {
                return Err(fail(format!("{where_} is {kind}, not a table")));
            }
            (Segment::Index(_), _) => {
                return Err(fail(format!("{where_} is {kind}, not an array")));
            }
        };
    }
    unreachable!("the last segment returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        use Segment::*;
        let k = |s: &str| Key(s.to_string());
        assert_eq!(parse_path("peers[0].count"), Some(vec![k("peers"), Index(0), k("count")]));
        assert_eq!(parse_path("peers.10.count"), Some(vec![k("peers"), Index(10), k("count")]));
        assert_eq!(parse_path("seed"), Some(vec![k("seed")]));
        assert_eq!(parse_path("a[1][2]"), Some(vec![k("a"), Index(1), Index(2)]));
        for bad in ["", ".a", "a.", "a..b", "0.a", "a[", "a[x]", "a b", "a[1]x"] {
            assert_eq!(parse_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn spans_everywhere() {
        let text = "a = 1\n[t]\nb = \"x\"\nc.d = [1, {e = 2}]\n[[p]]\nf = 1\n[[p]]\ng = 1979-05-27\n";
        let root = Node::parse_document(text).unwrap();
        let Value::Table(top) = &root.value else { panic!() };
        let line = |o: &Origin| match o {
            Origin::File(off) => line_of(text, *off),
            o => panic!("{o:?}"),
        };
        assert_eq!(line(top[0].origin()), 1);
        assert_eq!(top[1].key, "t");
        let Value::Table(t) = &top[1].node.value else { panic!() };
        assert_eq!(line(t[1].origin()), 4);
        let Value::Array(ps) = &top[2].node.value else { panic!() };
        let Value::Table(p1) = &ps[1].value else { panic!() };
        assert_eq!(line(p1[0].origin()), 8);
        assert!(matches!(p1[0].node.value, Value::Datetime(_)));
    }
}
