//! Loading genesis allocations (`alloc`) from JSON into a [`State`].
//!
//! Three file shapes are accepted:
//!
//! * **one genesis**: an object with an `alloc` key (geth / reth / besu `genesis.json`), giving
//!   one entry named `None`;
//! * **named test cases**: an object whose values are objects each holding an `alloc` (like
//!   ethereum/tests `GenesisTests/basic_genesis_tests.json`), giving one entry per case, sorted
//!   by name;
//! * **a bare alloc**: an object whose keys all look like addresses (optional `0x`, then hex
//!   digits), giving one entry named `None`.
//!
//! Account fields follow geth's rules:
//!
//! * addresses: 20 bytes of hex, with or without `0x`, any case;
//! * `balance` (or the legacy `wei`) and `nonce`: a string that is hex with a `0x` prefix and
//!   decimal without, or a non-negative JSON integer; both optional (default 0);
//! * `code`: hex with or without `0x`; empty or absent means no code;
//! * `storage`: an object of hex slot -> hex value, each at most 32 bytes and left-padded; zero
//!   values are dropped;
//! * other fields (`secretKey`, `privateKey`, ...) are ignored; `null` counts as absent.
//!
//! Accounts with zero balance, nonce, code and storage are kept: they are leaves of the trie.
//!
//! Every failure is a [`GenesisError`] naming the case, account and field at fault; JSON syntax
//! errors carry their line and column. Nothing here panics on any input.

use crate::primitives::{keccak256, Bytes, B256, EMPTY_CODE, U256};
use crate::state::{AccountData, State};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What is wrong with one JSON value (an address, a quantity, a hex string, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The JSON value has the wrong type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What was expected.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// There are no digits (`""` or a bare `0x`).
    #[error("no digits")]
    Empty,
    /// A character that is not a hex digit.
    #[error("invalid hex digit {ch:?} at position {pos}")]
    BadHexDigit {
        /// The offending character.
        ch: char,
        /// Its index in the string after any `0x` prefix (in characters).
        pos: usize,
    },
    /// A character that is not a decimal digit (a decimal string has no `0x` prefix).
    #[error("invalid decimal digit {ch:?} at position {pos} (hex needs a 0x prefix)")]
    BadDecimalDigit {
        /// The offending character.
        ch: char,
        /// Its index in the string (in characters).
        pos: usize,
    },
    /// A byte string with an odd number of hex digits.
    #[error("odd number of hex digits ({digits})")]
    OddLength {
        /// Number of hex digits.
        digits: usize,
    },
    /// A byte string longer than allowed.
    #[error("{len} bytes, at most {max} allowed")]
    TooLong {
        /// Length found.
        len: usize,
        /// Largest length accepted.
        max: usize,
    },
    /// A byte string of the wrong exact length.
    #[error("{len} bytes, expected {expected}")]
    WrongLength {
        /// Length found.
        len: usize,
        /// Length required.
        expected: usize,
    },
    /// An integer that does not fit.
    #[error("value exceeds 2^{bits}-1")]
    Overflow {
        /// Width of the target integer.
        bits: u32,
    },
    /// A JSON number that is negative, fractional or too large to be represented exactly.
    #[error("JSON number {0} is not an exact non-negative integer (write large values as strings)")]
    NotAnInteger(String),
    /// Both `balance` and `wei` are given, with different values.
    #[error("`balance` and `wei` are both given and differ")]
    ConflictingBalance,
}

/// Why a genesis file or alloc could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error while parsing the given file.
    #[error("{}:{line}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending case, account or field (of the JSON error, for
        /// invalid JSON; 1 when it cannot be placed).
        line: usize,
        /// What went wrong.
        #[source]
        source: Box<GenesisError>,
    },
    /// The text is not valid JSON.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// The top-level JSON value is not an object.
    #[error("expected a JSON object at top level, found {found}")]
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// No `alloc` could be found, and the object is not a bare alloc either.
    #[error(
        "missing `alloc`: expected a genesis object with an `alloc` key, an object of named \
         cases each with an `alloc`, or a bare alloc (address -> account); top-level keys: {keys}"
    )]
    MissingAlloc {
        /// Up to a few of the top-level keys found, for the message.
        keys: String,
    },
    /// A named test case is not an object holding an `alloc`.
    #[error("case `{case}`: expected an object with an `alloc` key, found {found}")]
    BadCase {
        /// The case name.
        case: String,
        /// What was found (a JSON type, or "an object without `alloc`").
        found: &'static str,
    },
    /// An error inside a named test case.
    #[error("case `{case}`: {source}")]
    InCase {
        /// The case name.
        case: String,
        /// What went wrong.
        #[source]
        source: Box<GenesisError>,
    },
    /// `alloc` is not a JSON object.
    #[error("`alloc` must be an object (address -> account), found {found}")]
    AllocNotObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// An account key is not a valid address.
    #[error("account {address:?}: invalid address: {error}")]
    BadAddress {
        /// The key as written.
        address: String,
        /// What is wrong with it.
        error: ValueError,
    },
    /// The same address is given twice (in different spellings).
    #[error("account {address:?}: duplicate of account {first:?}")]
    DuplicateAddress {
        /// The second spelling.
        address: String,
        /// The first spelling.
        first: String,
    },
    /// An account's value is not a JSON object.
    #[error("account {address}: expected an object, found {found}")]
    AccountNotObject {
        /// The address as written.
        address: String,
        /// The JSON type found.
        found: &'static str,
    },
    /// An account field is invalid.
    #[error("account {address}: field `{field}`: {error}")]
    BadField {
        /// The address as written.
        address: String,
        /// The field: `balance`, `wei`, `nonce`, `code`, `storage`, `storage key {k}` or
        /// `storage[{k}]`.
        field: String,
        /// What is wrong with it.
        error: ValueError,
    },
    /// Two storage keys of one account denote the same slot.
    #[error("account {address}: storage keys {key:?} and {first:?} denote the same slot")]
    DuplicateSlot {
        /// The address as written.
        address: String,
        /// The second spelling.
        key: String,
        /// The first spelling.
        first: String,
    },
}

impl GenesisError {
    /// The 1-based line of `text` the error is about: the JSON error's own line, or the line
    /// where the case, account and field it names are written (each looked for after the one
    /// before); 1 when nothing can be placed.
    pub fn line_in(&self, text: &str) -> usize {
        if let Self::Json { line, .. } = self {
            return *line;
        }
        let mut anchors: Vec<String> = Vec::new();
        let mut e = self;
        loop {
            match e {
                Self::InCase { case, source } => {
                    anchors.push(case.clone());
                    e = source;
                }
                Self::InFile { source, .. } => e = source,
                Self::BadAddress { address, .. }
                | Self::DuplicateAddress { address, .. }
                | Self::AccountNotObject { address, .. } => {
                    anchors.push(address.clone());
                    break;
                }
                Self::BadField { address, field, .. } => {
                    anchors.push(address.clone());
                    // `storage key K` / `storage[K]`: the storage map, then the key
                    match field
                        .strip_prefix("storage key ")
                        .or_else(|| field.strip_prefix("storage[").and_then(|k| k.strip_suffix(']')))
                    {
                        Some(key) => anchors.extend(["storage".to_string(), key.to_string()]),
                        None => anchors.push(field.clone()),
                    }
                    break;
                }
                Self::DuplicateSlot { address, key, .. } => {
                    anchors.extend([address.clone(), key.clone()]);
                    break;
                }
                _ => break,
            }
        }
        let mut at = None;
        let mut from = 0;
        for a in &anchors {
            match text[from..].find(&format!("\"{a}\"")) {
                Some(off) => {
                    at = Some(from + off);
                    from += off + a.len() + 2;
                }
                None => break,
            }
        }
        at.map_or(1, |off| text[..off].matches('\n').count() + 1)
    }

    /// The innermost error, past any file and case context.
    pub fn innermost(&self) -> &GenesisError {
        match self {
            Self::InFile { source, .. } | Self::InCase { source, .. } => source.innermost(),
            other => other,
        }
    }
}

/// Reads and parses a genesis file; see [`parse_genesis`]. Errors name the file.
pub fn load_genesis(path: &Path) -> Result<Vec<(Option<String>, State)>, GenesisError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| GenesisError::Io { path: path.to_path_buf(), source })?;
    parse_genesis(&text).map_err(|e| GenesisError::InFile {
        path: path.to_path_buf(),
        line: e.line_in(&text),
        source: Box::new(e),
    })
}

/// Parses genesis JSON text: one genesis (name `None`), a map of named cases (one entry per case,
/// sorted by name), or a bare alloc (name `None`). See the module docs for the accepted forms.
pub fn parse_genesis(text: &str) -> Result<Vec<(Option<String>, State)>, GenesisError> {
    let root: Value = serde_json::from_str(text).map_err(json_error)?;
    parse_genesis_value(&root)
}

/// As [`parse_genesis`], for an already parsed JSON value.
pub fn parse_genesis_value(root: &Value) -> Result<Vec<(Option<String>, State)>, GenesisError> {
    let obj = root.as_object().ok_or(GenesisError::NotAnObject { found: json_type(root) })?;
    if let Some(alloc) = obj.get("alloc") {
        return Ok(vec![(None, parse_alloc_value(alloc)?)]);
    }
    let is_case = |v: &Value| v.as_object().is_some_and(|o| o.contains_key("alloc"));
    if obj.values().any(is_case) {
        let mut out = Vec::with_capacity(obj.len());
        for (name, case) in obj {
            let alloc = match case.as_object() {
                Some(o) => o.get("alloc").ok_or_else(|| GenesisError::BadCase {
                    case: name.clone(),
                    found: "an object without `alloc`",
                })?,
                None => return Err(GenesisError::BadCase { case: name.clone(), found: json_type(case) }),
            };
            let state = parse_alloc_value(alloc)
                .map_err(|e| GenesisError::InCase { case: name.clone(), source: Box::new(e) })?;
            out.push((Some(name.clone()), state));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        return Ok(out);
    }
    if !obj.is_empty() && obj.keys().all(|k| looks_like_address(k)) {
        return Ok(vec![(None, parse_alloc_value(root)?)]);
    }
    let mut keys: Vec<String> = obj.keys().take(5).map(|k| format!("{k:?}")).collect();
    if obj.len() > 5 {
        keys.push(format!("... ({} in all)", obj.len()));
    }
    let keys = if keys.is_empty() { "none".to_string() } else { keys.join(", ") };
    Err(GenesisError::MissingAlloc { keys })
}

/// Parses an alloc / account map (address -> `{balance, nonce, code, storage}`) into a
/// [`State`]. Also fits the `pre` and `postState` maps of ethereum/tests blockchain tests.
pub fn parse_alloc_value(v: &Value) -> Result<State, GenesisError> {
    let obj = v.as_object().ok_or(GenesisError::AllocNotObject { found: json_type(v) })?;
    let mut state = State::default();
    let mut spelling: BTreeMap<B256, &str> = BTreeMap::new();
    for (addr, account) in obj {
        let raw =
            parse_address(addr).map_err(|error| GenesisError::BadAddress { address: addr.clone(), error })?;
        let data = parse_account(addr, account, &mut state)?;
        let key = keccak256(raw);
        if let Some(first) = spelling.insert(key, addr) {
            return Err(GenesisError::DuplicateAddress { address: addr.clone(), first: first.to_string() });
        }
        state.accounts.insert(key, data);
    }
    Ok(state)
}

fn parse_account(addr: &str, v: &Value, state: &mut State) -> Result<AccountData, GenesisError> {
    let obj = v
        .as_object()
        .ok_or_else(|| GenesisError::AccountNotObject { address: addr.to_string(), found: json_type(v) })?;
    let field_err = |field: &str| {
        let field = field.to_string();
        move |error| GenesisError::BadField { address: addr.to_string(), field, error }
    };

    let balance = field(obj, "balance").map(parse_u256).transpose().map_err(field_err("balance"))?;
    let wei = field(obj, "wei").map(parse_u256).transpose().map_err(field_err("wei"))?;
    let balance = match (balance, wei) {
        (Some(b), Some(w)) if b != w => {
            return Err(field_err("balance")(ValueError::ConflictingBalance));
        }
        (b, w) => b.or(w).unwrap_or(U256::ZERO),
    };

    let nonce = match field(obj, "nonce") {
        None => 0,
        Some(n) => {
            let n = parse_u256(n).map_err(field_err("nonce"))?;
            u64::try_from(n).map_err(|_| field_err("nonce")(ValueError::Overflow { bits: 64 }))?
        }
    };

    let code_hash = match field(obj, "code") {
        None => EMPTY_CODE,
        Some(c) => {
            let code = hex_bytes(as_str(c).map_err(field_err("code"))?).map_err(field_err("code"))?;
            state.insert_code(Bytes::from(code))
        }
    };

    let mut storage = BTreeMap::new();
    if let Some(s) = field(obj, "storage") {
        let slots = s.as_object().ok_or_else(|| {
            field_err("storage")(ValueError::WrongType {
                expected: "an object (slot -> value)",
                found: json_type(s),
            })
        })?;
        let mut spelling: BTreeMap<B256, &str> = BTreeMap::new();
        for (k, val) in slots {
            let slot = word(k).map_err(field_err(&format!("storage key {k}")))?;
            let value = parse_storage_value(val).map_err(field_err(&format!("storage[{k}]")))?;
            let hashed = keccak256(slot);
            if let Some(first) = spelling.insert(hashed, k) {
                return Err(GenesisError::DuplicateSlot {
                    address: addr.to_string(),
                    key: k.clone(),
                    first: first.to_string(),
                });
            }
            if !value.is_zero() {
                storage.insert(hashed, value);
            }
        }
    }

    Ok(AccountData { nonce, balance, code_hash, storage })
}

/// A field, with JSON `null` treated as absent.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn as_str(v: &Value) -> Result<&str, ValueError> {
    v.as_str().ok_or(ValueError::WrongType { expected: "a hex string", found: json_type(v) })
}

fn json_error(e: serde_json::Error) -> GenesisError {
    let (line, column) = (e.line(), e.column());
    let mut message = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    if let Some(stripped) = message.strip_suffix(&suffix) {
        message.truncate(stripped.len());
    }
    GenesisError::Json { line, column, message }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn strip_0x(s: &str) -> Option<&str> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
}

/// Optional `0x`, then at least one hex digit: an address, possibly of the wrong length (so that
/// a bare alloc with a bad address still reports the address).
fn looks_like_address(s: &str) -> bool {
    let digits = strip_0x(s).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit())
}

fn nibble(ch: char, pos: usize) -> Result<u8, ValueError> {
    ch.to_digit(16).map(|d| d as u8).ok_or(ValueError::BadHexDigit { ch, pos })
}

/// Hex bytes, with or without `0x`; an even number of digits; empty allowed.
fn hex_bytes(s: &str) -> Result<Vec<u8>, ValueError> {
    let digits = strip_0x(s).unwrap_or(s);
    let mut out = Vec::with_capacity(digits.len() / 2);
    let mut high: Option<u8> = None;
    let mut count = 0;
    for (pos, ch) in digits.chars().enumerate() {
        let n = nibble(ch, pos)?;
        match high.take() {
            None => high = Some(n),
            Some(h) => out.push(h << 4 | n),
        }
        count = pos + 1;
    }
    if high.is_some() {
        return Err(ValueError::OddLength { digits: count });
    }
    Ok(out)
}

fn parse_address(s: &str) -> Result<[u8; 20], ValueError> {
    let bytes = hex_bytes(s)?;
    bytes.as_slice().try_into().map_err(|_| ValueError::WrongLength { len: bytes.len(), expected: 20 })
}

/// A 32-byte word from hex of at most 32 bytes, left-padded (storage keys and values).
fn word(s: &str) -> Result<B256, ValueError> {
    let bytes = hex_bytes(s)?;
    // geth reads an empty word ("0x") as zero
    if bytes.len() > 32 {
        return Err(ValueError::TooLong { len: bytes.len(), max: 32 });
    }
    let mut out = B256::ZERO;
    out[32 - bytes.len()..].copy_from_slice(&bytes);
    Ok(out)
}

fn parse_storage_value(v: &Value) -> Result<U256, ValueError> {
    match v {
        Value::String(s) => Ok(U256::from_be_bytes(word(s)?.0)),
        Value::Number(n) => json_integer(n),
        other => Err(ValueError::WrongType { expected: "a hex string", found: json_type(other) }),
    }
}

fn json_integer(n: &serde_json::Number) -> Result<U256, ValueError> {
    // integers beyond u64 are kept as written (serde_json's arbitrary precision), as geth's
    // decimal quantities accept them; fractions and exponents are not integers
    n.as_u64().map(U256::from).map_or_else(
        || {
            let text = n.to_string();
            if text.bytes().all(|b| b.is_ascii_digit()) {
                parse_quantity(&text)
            } else {
                Err(ValueError::NotAnInteger(text))
            }
        },
        Ok,
    )
}

/// A quantity: `0x` hex, decimal string, or non-negative JSON integer; must fit in 256 bits.
fn parse_u256(v: &Value) -> Result<U256, ValueError> {
    match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => json_integer(n),
        other => Err(ValueError::WrongType {
            expected: "a string (0x-hex or decimal) or integer",
            found: json_type(other),
        }),
    }
}

/// geth's rule: a `0x` prefix means hex, anything else is decimal. Leading zeros are allowed;
/// values above 2^256-1 are an error.
pub fn parse_quantity(s: &str) -> Result<U256, ValueError> {
    let overflow = ValueError::Overflow { bits: 256 };
    if let Some(digits) = strip_0x(s) {
        if digits.is_empty() {
            return Err(ValueError::Empty);
        }
        let mut value = U256::ZERO;
        let mut significant = 0usize;
        for (pos, ch) in digits.chars().enumerate() {
            let n = nibble(ch, pos)?;
            if significant == 0 && n == 0 {
                continue;
            }
            significant += 1;
            if significant > 64 {
                return Err(overflow);
            }
            value = (value << 4) | U256::from(n);
        }
        Ok(value)
    } else {
        if s.is_empty() {
            return Err(ValueError::Empty);
        }
        let mut value = U256::ZERO;
        for (pos, ch) in s.chars().enumerate() {
            let d = ch.to_digit(10).ok_or(ValueError::BadDecimalDigit { ch, pos })?;
            value = value
                .checked_mul(U256::from(10u8))
                .and_then(|v| v.checked_add(U256::from(d)))
                .ok_or(overflow.clone())?;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("0x0").unwrap(), U256::ZERO);
        assert_eq!(parse_quantity("0X00ff").unwrap(), U256::from(255));
        assert_eq!(parse_quantity("255").unwrap(), U256::from(255));
        assert_eq!(parse_quantity("0010").unwrap(), U256::from(10));
        let max = U256::MAX;
        assert_eq!(parse_quantity(&format!("0x{}", "f".repeat(64))).unwrap(), max);
        assert_eq!(parse_quantity(&format!("0x000{}", "F".repeat(64))).unwrap(), max);
        assert_eq!(
            parse_quantity(&format!("0x1{}", "0".repeat(64))),
            Err(ValueError::Overflow { bits: 256 })
        );
        assert_eq!(parse_quantity(&max.to_string()).unwrap(), max);
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert_eq!(parse_quantity(over), Err(ValueError::Overflow { bits: 256 }));
        assert_eq!(parse_quantity(&"9".repeat(200)), Err(ValueError::Overflow { bits: 256 }));
        assert!(matches!(parse_quantity("ff"), Err(ValueError::BadDecimalDigit { ch: 'f', pos: 0 })));
        assert!(matches!(parse_quantity("0xg"), Err(ValueError::BadHexDigit { ch: 'g', pos: 0 })));
        assert_eq!(parse_quantity("0x"), Err(ValueError::Empty));
        assert_eq!(parse_quantity(""), Err(ValueError::Empty));
        assert!(parse_quantity("-1").is_err());
        assert!(parse_quantity(" 1").is_err());
        assert!(parse_quantity("1e3").is_err());
        assert!(parse_quantity("0x\u{e9}").is_err());
    }

    #[test]
    fn hex_and_words() {
        assert_eq!(hex_bytes("").unwrap(), Vec::<u8>::new());
        assert_eq!(hex_bytes("0x").unwrap(), Vec::<u8>::new());
        assert_eq!(hex_bytes("0xAbCd").unwrap(), vec![0xab, 0xcd]);
        assert_eq!(hex_bytes("abc"), Err(ValueError::OddLength { digits: 3 }));
        assert!(matches!(hex_bytes("0x0g"), Err(ValueError::BadHexDigit { ch: 'g', pos: 1 })));
        assert_eq!(word("0x03").unwrap(), B256::with_last_byte(3));
        assert_eq!(word(&"11".repeat(33)), Err(ValueError::TooLong { len: 33, max: 32 }));
        assert_eq!(word("0x"), Ok(B256::ZERO));
        assert!(parse_address("0x00").is_err());
        assert!(looks_like_address("0xAB"));
        assert!(!looks_like_address("0x"));
        assert!(!looks_like_address("test1"));
    }

    #[test]
    fn shapes() {
        let one = r#"{"alloc": {"0x0000000000000000000000000000000000000001": {"balance": "1"}}}"#;
        let v = parse_genesis(one).unwrap();
        assert_eq!(v.len(), 1);
        assert!(v[0].0.is_none());
        let bare = r#"{"0000000000000000000000000000000000000001": {"balance": "1"}}"#;
        assert_eq!(parse_genesis(bare).unwrap()[0].1, v[0].1);
        let cases = r#"{"b": {"alloc": {}}, "a": {"alloc": {}, "x": 1}}"#;
        let names: Vec<_> = parse_genesis(cases).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec![Some("a".to_string()), Some("b".to_string())]);
        assert!(matches!(parse_genesis("{}"), Err(GenesisError::MissingAlloc { .. })));
        assert!(matches!(parse_genesis("[]"), Err(GenesisError::NotAnObject { .. })));
        let bad_case = r#"{"a": {"alloc": {}}, "b": 3}"#;
        assert!(matches!(parse_genesis(bad_case), Err(GenesisError::BadCase { .. })));
    }

    #[test]
    fn account_fields() {
        let text = r#"{"alloc": {"0xAA00000000000000000000000000000000000000": {
            "wei": 5, "nonce": "0x2", "code": "6000", "storage": {"0x01": "0x00", "0x02": "0x0a"},
            "secretKey": "ignored"}}}"#;
        let st = parse_genesis(text).unwrap().remove(0).1;
        let a = st.accounts.values().next().unwrap();
        assert_eq!(a.balance, U256::from(5));
        assert_eq!(a.nonce, 2);
        assert_eq!(a.code_hash, keccak256([0x60, 0x00]));
        assert_eq!(st.codes.len(), 1);
        assert_eq!(a.storage.len(), 1);
        assert_eq!(a.storage[&keccak256(B256::with_last_byte(2))], U256::from(10));

        let nonce_over = r#"{"alloc": {"0x0000000000000000000000000000000000000001":
            {"nonce": "18446744073709551616"}}}"#;
        let err = parse_genesis(nonce_over).unwrap_err();
        assert!(
            matches!(err, GenesisError::BadField { ref field, error: ValueError::Overflow { bits: 64 }, .. } if field == "nonce"),
            "{err}"
        );
        let conflict = r#"{"alloc": {"0x0000000000000000000000000000000000000001":
            {"balance": "1", "wei": "2"}}}"#;
        assert!(parse_genesis(conflict).is_err());
        let float = r#"{"alloc": {"0x0000000000000000000000000000000000000001": {"balance": 1.5}}}"#;
        assert!(matches!(
            parse_genesis(float),
            Err(GenesisError::BadField { error: ValueError::NotAnInteger(_), .. })
        ));
        let dup = r#"{"alloc": {"0x0000000000000000000000000000000000000001": {},
            "0000000000000000000000000000000000000001": {}}}"#;
        assert!(matches!(parse_genesis(dup), Err(GenesisError::DuplicateAddress { .. })));
        let dup_slot = r#"{"alloc": {"0x0000000000000000000000000000000000000001":
            {"storage": {"0x01": "0x01", "0x0001": "0x02"}}}}"#;
        assert!(matches!(parse_genesis(dup_slot), Err(GenesisError::DuplicateSlot { .. })));
    }
}
