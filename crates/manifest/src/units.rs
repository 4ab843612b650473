//! Value types with a human form in TOML and JSON: names, sizes, durations.

use crate::error::FieldError;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A function name: 1 to 63 characters of lowercase ASCII letters, digits and
/// `-`, starting with a letter and not ending with `-` (a DNS label, so it is
/// safe in URLs, file names, metric labels and NATS subjects).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// Validates `s` as a name.
    pub fn new(s: &str) -> Result<Name, FieldError> {
        let ok_len = (1..=63).contains(&s.len());
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let body_ok = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok_len && first_ok && body_ok && !s.ends_with('-') {
            Ok(Name(s.to_string()))
        } else {
            Err(FieldError::new(format!(
                "invalid name `{}`: use 1-63 lowercase letters, digits and `-`, \
                 starting with a letter and not ending with `-`",
                s.escape_debug()
            ))
            .with_code(weft_codes::Code::InvalidName))
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Name {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Name::new(s)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::new(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Name {
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$",
            "description": "1-63 lowercase letters, digits and `-`, starting with a letter"
        })
    }
}

/// A size in bytes. In TOML and JSON: an integer number of bytes, or a string
/// with a unit: `"512KiB"`, `"64MiB"`, `"1GiB"`, `"100KB"`, `"10MB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

const UNITS: &[(&str, u64)] = &[
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("kB", 1_000),
    ("B", 1),
];

impl FromStr for ByteSize {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        let t = s.trim();
        let (num, mult) = UNITS
            .iter()
            .find_map(|(u, m)| t.strip_suffix(u).map(|n| (n.trim(), *m)))
            .unwrap_or((t, 1));
        let n: u64 = num.parse().map_err(|_| {
            FieldError::new(format!(
                "invalid size `{s}`: expected bytes or a number with KiB, MiB, GiB, KB, MB or GB"
            ))
        })?;
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| FieldError::new(format!("size `{s}` is too large")))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if b >= m && b.is_multiple_of(m) {
                return write!(f, "{}{unit}", b / m);
            }
        }
        write!(f, "{b}B")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a size: bytes or a string like \"64MiB\"")
        })? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "bytes, or a string with a unit: \"512KiB\", \"64MiB\", \"1GiB\", \"100KB\"",
            "oneOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]+ *(B|KiB|MiB|GiB|KB|kB|MB|GB)?$"}
            ]
        })
    }
}

/// A duration. In TOML and JSON a string such as `"250ms"`, `"5s"`, `"2m"`,
/// `"1h 30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        humantime::parse_duration(s)
            .map(HumanDuration)
            .map_err(|e| {
                FieldError::new(format!(
                    "invalid duration `{s}`: {e} (examples: \"250ms\", \"5s\", \"2m\")"
                ))
            })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Serialized as its text (`Display`), read back with `FromStr`.
macro_rules! serde_as_text {
    ($($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

pub(crate) use serde_as_text;

serde_as_text!(HumanDuration, Percentile);

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "a duration such as \"250ms\", \"5s\", \"2m\", \"1h 30m\""
        })
    }
}

/// A percentile of a distribution, from `p1` to `p100` (the largest
/// value), with up to one decimal: `"p50"`, `"p90"`, `"p99.9"`. Stored in
/// tenths (`p99.9` is 999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percentile(u16);

impl Percentile {
    /// The median.
    pub const P50: Percentile = Percentile(500);
    /// The 90th percentile: what admission plans with unless told.
    pub const P90: Percentile = Percentile(900);

    /// As a fraction in (0, 1].
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

impl FromStr for Percentile {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        let bad = || {
            FieldError::new(format!(
                "invalid percentile `{s}`: expected `p` and a number from 1 to 100 with at most one decimal (examples: \"p50\", \"p90\", \"p99.9\")"
            ))
        };
        let n = s.trim().strip_prefix('p').ok_or_else(bad)?;
        let (whole, tenth) = match n.split_once('.') {
            Some((w, t)) if t.len() == 1 => (w, t),
            Some(_) => return Err(bad()),
            None => (n, "0"),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let whole: u16 = whole.parse().map_err(|_| bad())?;
        let tenth: u16 = tenth.parse().map_err(|_| bad())?;
        let tenths = whole
            .checked_mul(10)
            .and_then(|w| w.checked_add(tenth))
            .ok_or_else(bad)?;
        if !(10..=1000).contains(&tenths) {
            return Err(FieldError::new(format!(
                "percentile `{s}` is out of range: from p1 to p100"
            )));
        }
        Ok(Percentile(tenths))
    }
}

impl fmt::Display for Percentile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 % 10 {
            0 => write!(f, "p{}", self.0 / 10),
            t => write!(f, "p{}.{t}", self.0 / 10),
        }
    }
}

impl JsonSchema for Percentile {
    fn schema_name() -> Cow<'static, str> {
        "Percentile".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^p[0-9]{1,3}(\\.[0-9])?$",
            "description": "a percentile from p1 to p100, such as \"p50\", \"p90\", \"p99.9\""
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        for (text, tenths) in [
            ("p50", 500),
            ("p90", 900),
            ("p99.9", 999),
            ("p1", 10),
            ("p100", 1000),
        ] {
            let p: Percentile = text.parse().unwrap();
            assert_eq!(p.0, tenths, "{text}");
            assert_eq!(p.to_string(), text);
        }
        for bad in [
            "90", "p", "p0", "p0.5", "p101", "p100.1", "p9.99", "p-5", "p 9", "P90", "p1e2", "",
        ] {
            assert!(
                bad.parse::<Percentile>().is_err(),
                "{bad} should be refused"
            );
        }
        assert!(
            "p101"
                .parse::<Percentile>()
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
    }

    #[test]
    fn names() {
        assert!(Name::new("hello").is_ok());
        assert!(Name::new("a-1").is_ok());
        for bad in [
            "",
            "Hello",
            "1abc",
            "a_b",
            "a-",
            "a/b",
            "a.b",
            &"x".repeat(64),
        ] {
            assert!(Name::new(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!("64MiB".parse::<ByteSize>(), Ok(ByteSize(64 << 20)));
        assert_eq!("100 KB".parse::<ByteSize>(), Ok(ByteSize(100_000)));
        assert_eq!("4096".parse::<ByteSize>(), Ok(ByteSize(4096)));
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("99999999999GiB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(64 << 20).to_string(), "64MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }

    #[test]
    fn durations() {
        assert_eq!(
            "250ms".parse::<HumanDuration>(),
            Ok(HumanDuration(Duration::from_millis(250)))
        );
        assert!("soon".parse::<HumanDuration>().is_err());
    }
}
