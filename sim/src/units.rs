//! Units used in scenario files: durations (`"80ms"`), byte sizes
//! (`"512KiB"`) and bandwidths (`"5MiB/s"`).
//!
//! Each type parses from a string ([`FromStr`]), deserializes from a TOML
//! value ([`Deserialize`], so a bad value's error carries its span), and
//! prints ([`fmt::Display`]) a canonical form that parses back to the same
//! value.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// Why a unit string did not parse. Its `Display` is a full sentence
/// fragment such as `invalid duration "12x": unknown unit 'x' (...)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason}")]
pub struct UnitError {
    /// What was being parsed: `duration`, `size` or `bandwidth`.
    pub what: &'static str,
    /// The text that failed to parse.
    pub input: String,
    /// Why it failed.
    pub reason: String,
}

impl UnitError {
    fn new(what: &'static str, input: &str, reason: impl Into<String>) -> Self {
        UnitError { what, input: input.to_string(), reason: reason.into() }
    }
}

/// A non-negative decimal number as written: `digits / 10^scale`.
struct Decimal {
    digits: u128,
    scale: u32,
}

impl Decimal {
    /// `self * factor`, if that is a whole number that fits in a `u64`.
    fn times(&self, factor: u64) -> Result<u64, &'static str> {
        let num = self.digits.checked_mul(u128::from(factor)).ok_or("value too large")?;
        let den = 10u128.pow(self.scale);
        if num % den != 0 {
            return Err("not a whole number of the smallest unit");
        }
        u64::try_from(num / den).map_err(|_| "value too large")
    }
}

/// Splits `"1.5 KiB"` into the number and the (trimmed) unit.
fn split_number(s: &str) -> Result<(Decimal, &str), &'static str> {
    let s = s.trim();
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    if num.is_empty() {
        return Err(if s.starts_with('-') { "must not be negative" } else { "expected a number first" });
    }
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() || frac.contains('.') || (num.contains('.') && frac.is_empty()) {
        return Err("malformed number");
    }
    if frac.len() > 18 {
        return Err("too many decimal places");
    }
    let mut digits: u128 = 0;
    for c in int.chars().chain(frac.chars()) {
        digits = digits
            .checked_mul(10)
            .and_then(|d| d.checked_add(u128::from(c as u8 - b'0')))
            .ok_or("value too large")?;
    }
    Ok((Decimal { digits, scale: frac.len() as u32 }, unit.trim()))
}

// ---------------------------------------------------------------- Duration

/// A span of (virtual) time with nanosecond resolution.
///
/// Written with a unit: `ns`, `us` (or `µs`), `ms`, `s`, `m` (or `min`),
/// `h`, `d`; a decimal fraction is allowed (`"1.5s"`). A bare `"0"` is zero.
/// Displays in the largest unit that represents it exactly (`"1500ms"`,
/// `"2m"`, `"0s"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    nanos: u64,
}

const DURATION_UNITS: &[(&str, u64)] = &[
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

impl Duration {
    /// Zero length.
    pub const ZERO: Duration = Duration { nanos: 0 };

    /// From nanoseconds.
    pub const fn from_nanos(nanos: u64) -> Self {
        Duration { nanos }
    }
    /// From microseconds (saturating).
    pub const fn from_micros(micros: u64) -> Self {
        Duration { nanos: micros.saturating_mul(1_000) }
    }
    /// From milliseconds (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Duration { nanos: millis.saturating_mul(1_000_000) }
    }
    /// From seconds (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Duration { nanos: secs.saturating_mul(1_000_000_000) }
    }
    /// Whole nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }
    /// Whole microseconds (truncated).
    pub const fn as_micros(self) -> u64 {
        self.nanos / 1_000
    }
    /// Whole milliseconds (truncated).
    pub const fn as_millis(self) -> u64 {
        self.nanos / 1_000_000
    }
    /// Seconds as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.nanos as f64 / 1e9
    }
    /// True if zero.
    pub const fn is_zero(self) -> bool {
        self.nanos == 0
    }
    /// As a [`std::time::Duration`].
    pub const fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.nanos)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.as_std()
    }
}

impl FromStr for Duration {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        let err = |r: &str| UnitError::new("duration", s, r);
        let (num, unit) = split_number(s).map_err(err)?;
        if unit.is_empty() {
            if num.digits == 0 {
                return Ok(Duration::ZERO);
            }
            return Err(err("missing unit (ns, us, ms, s, m, h or d)"));
        }
        let unit = match unit {
            "µs" => "us",
            "min" => "m",
            u => u,
        };
        let factor = DURATION_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, f)| *f)
            .ok_or_else(|| err(&format!("unknown unit '{unit}' (expected ns, us, ms, s, m, h or d)")))?;
        num.times(factor)
            .map(Duration::from_nanos)
            .map_err(|r| err(if r.starts_with("not") { "finer than 1ns" } else { r }))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0s");
        }
        for (name, factor) in DURATION_UNITS {
            if self.nanos.is_multiple_of(*factor) {
                return write!(f, "{}{name}", self.nanos / factor);
            }
        }
        unreachable!("ns divides everything")
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"12s\" or \"80ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// -------------------------------------------------------------------- Size

/// A number of bytes.
///
/// Written as a bare number (`"1000"`, or a TOML integer) or with a unit:
/// `B`, binary `KiB`/`MiB`/`GiB`/`TiB` or decimal `KB`/`MB`/`GB`/`TB`
/// (units are case-insensitive; fractions such as `"1.5KiB"` are allowed if
/// they come to whole bytes). Displays in the largest binary unit that is
/// exact, else the largest exact decimal unit, else `B`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

const BINARY_UNITS: &[(&str, u64)] =
    &[("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
const DECIMAL_UNITS: &[(&str, u64)] =
    &[("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1_000)];

impl Size {
    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    fn parse_as(s: &str, what: &'static str) -> Result<Self, UnitError> {
        let err = |r: &str| UnitError::new(what, s, r);
        let (num, unit) = split_number(s).map_err(err)?;
        let factor = if unit.is_empty() || unit.eq_ignore_ascii_case("b") {
            1
        } else {
            BINARY_UNITS
                .iter()
                .chain(DECIMAL_UNITS)
                .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                .map(|(_, f)| *f)
                .ok_or_else(|| {
                    err(&format!("unknown unit '{unit}' (expected B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"))
                })?
        };
        num.times(factor)
            .map(Size)
            .map_err(|r| err(if r.starts_with("not") { "not a whole number of bytes" } else { r }))
    }
}

impl FromStr for Size {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        Size::parse_as(s, "size")
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, factor) in BINARY_UNITS.iter().chain(DECIMAL_UNITS) {
            if self.0 != 0 && self.0.is_multiple_of(*factor) {
                return write!(f, "{}{name}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// Visitor shared by [`Size`] and [`Bandwidth`]: a string, or an integer
/// number of bytes.
struct BytesVisitor {
    what: &'static str,
    parse: fn(&str) -> Result<u64, UnitError>,
}

impl Visitor<'_> for BytesVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} (a string such as \"512KiB\" or an integer)", self.what)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        (self.parse)(v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("invalid {} {v}: must not be negative", self.what)))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BytesVisitor { what: "size", parse: |s| s.parse::<Size>().map(|s| s.0) }).map(Size)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// --------------------------------------------------------------- Bandwidth

/// A rate in bytes per second, written as a [`Size`] followed by `/s`
/// (`"5MiB/s"`); a TOML integer is bytes per second. Displays as the
/// canonical size plus `/s`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bandwidth(pub u64);

impl Bandwidth {
    /// Bytes per second.
    pub const fn bytes_per_sec(self) -> u64 {
        self.0
    }
}

impl FromStr for Bandwidth {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        let Some(size) = s.trim().strip_suffix("/s") else {
            return Err(UnitError::new("bandwidth", s, "expected a size per second such as \"5MiB/s\""));
        };
        match Size::parse_as(size, "bandwidth") {
            Ok(size) => Ok(Bandwidth(size.0)),
            Err(e) => Err(UnitError::new("bandwidth", s, e.reason)),
        }
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", Size(self.0))
    }
}

impl<'de> Deserialize<'de> for Bandwidth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BytesVisitor { what: "bandwidth", parse: |s| s.parse::<Bandwidth>().map(|b| b.0) })
            .map(Bandwidth)
    }
}

impl Serialize for Bandwidth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> u64 {
        s.parse::<Duration>().unwrap().as_nanos()
    }

    #[test]
    fn durations() {
        assert_eq!(d("80ms"), 80_000_000);
        assert_eq!(d("12s"), 12_000_000_000);
        assert_eq!(d("2m"), 120_000_000_000);
        assert_eq!(d("2min"), 120_000_000_000);
        assert_eq!(d("2h"), 7_200_000_000_000);
        assert_eq!(d("1.5s"), 1_500_000_000);
        assert_eq!(d("500us"), 500_000);
        assert_eq!(d("500µs"), 500_000);
        assert_eq!(d("0s"), 0);
        assert_eq!(d("0"), 0);
        assert_eq!(d(" 10 s "), 10_000_000_000);
        for bad in [
            "",
            "s",
            "12",
            "12x",
            "-1s",
            "1.2.3s",
            "1.s",
            ".5s",
            "0.5ns",
            "1e3s",
            "12S",
            "99999999999999999999h",
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} parsed");
        }
        let e = "12x".parse::<Duration>().unwrap_err().to_string();
        assert!(e.contains("invalid duration \"12x\": unknown unit 'x'"), "{e}");
    }

    #[test]
    fn duration_display_round_trips() {
        for (s, canon) in [
            ("1.5s", "1500ms"),
            ("90s", "90s"),
            ("120s", "2m"),
            ("0ms", "0s"),
            ("24h", "1d"),
            ("1.000001ms", "1000001ns"),
        ] {
            let v: Duration = s.parse().unwrap();
            assert_eq!(v.to_string(), canon);
            assert_eq!(canon.parse::<Duration>().unwrap(), v);
        }
        for n in [1u64, 999, 1_000, 61_000_000_000, u64::MAX] {
            let v = Duration::from_nanos(n);
            assert_eq!(v.to_string().parse::<Duration>().unwrap(), v);
        }
        assert_eq!(Duration::from_millis(1500).as_std(), std::time::Duration::from_millis(1500));
    }

    #[test]
    fn sizes() {
        let s = |v: &str| v.parse::<Size>().unwrap().0;
        assert_eq!(s("512KiB"), 512 * 1024);
        assert_eq!(s("2MiB"), 2 << 20);
        assert_eq!(s("100B"), 100);
        assert_eq!(s("1GiB"), 1 << 30);
        assert_eq!(s("1000"), 1000);
        assert_eq!(s("1KB"), 1000);
        assert_eq!(s("5MB"), 5_000_000);
        assert_eq!(s("1.5KiB"), 1536);
        assert_eq!(s("24kib"), 24 * 1024);
        for bad in ["", "KiB", "1.5", "0.1B", "12XB", "-1", "1 2KiB", "99999999TiB"] {
            assert!(bad.parse::<Size>().is_err(), "{bad:?} parsed");
        }
        for (v, canon) in [
            (0, "0B"),
            (100, "100B"),
            (1000, "1KB"),
            (1024, "1KiB"),
            (1536, "1536B"),
            (5_000_000, "5MB"),
            (24 * 1024, "24KiB"),
        ] {
            assert_eq!(Size(v).to_string(), canon);
            assert_eq!(canon.parse::<Size>().unwrap(), Size(v));
        }
        assert_eq!(Size(u64::MAX).to_string().parse::<Size>().unwrap(), Size(u64::MAX));
    }

    #[test]
    fn bandwidths() {
        assert_eq!("5MiB/s".parse::<Bandwidth>().unwrap(), Bandwidth(5 << 20));
        assert_eq!("100B/s".parse::<Bandwidth>().unwrap(), Bandwidth(100));
        assert_eq!(Bandwidth(10 << 20).to_string(), "10MiB/s");
        assert!("5MiB".parse::<Bandwidth>().is_err());
        assert!("5XB/s".parse::<Bandwidth>().is_err());
    }

    #[test]
    fn deserialize_with_span() {
        #[derive(serde::Deserialize)]
        struct T {
            a: toml::Spanned<Duration>,
            b: Size,
            c: Bandwidth,
        }
        let t: T = toml::from_str("a = \"1.5s\"\nb = 4096\nc = \"1KiB/s\"").unwrap();
        assert_eq!(*t.a.get_ref(), Duration::from_millis(1500));
        assert_eq!(t.b, Size(4096));
        assert_eq!(t.c, Bandwidth(1024));
        let err = toml::from_str::<T>("b = 1\nc = 1\na = \"12x\"").err().unwrap();
        assert_eq!(err.span().map(|s| s.start), Some(16));
        assert!(err.message().contains("unknown unit 'x'"), "{}", err.message());
        assert!(toml::from_str::<T>("a = \"1s\"\nb = -1\nc = 1").is_err());
        assert_eq!(serde_json::to_string(&Size(2048)).unwrap(), "\"2KiB\"".to_string());
    }
}
