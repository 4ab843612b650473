//! MQTT topic names and filters (MQTT 3.1.1 §4.7): the rules a manifest's
//! `[[functions.NAME.mqtt]]` is checked against, and matching; and the
//! broker URL a node configuration's `[mqtt]` names.
//!
//! ```
//! use weft_manifest::mqtt::{matches, validate_filter};
//! assert!(validate_filter("sensors/+/temp").is_ok());
//! assert!(validate_filter("sensors/#/temp").is_err());
//! assert!(matches("sensors/+/temp", "sensors/a/temp"));
//! ```

use crate::addr::ServerUrl;
use crate::error::FieldError;

/// Where an MQTT broker is, from `mqtt://HOST[:PORT][?client_id=ID]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    /// A host name, IPv4 address, or bracketed IPv6 address.
    pub host: String,
    /// The port; 1883 when the URL has none.
    pub port: u16,
    /// The MQTT client id, when the URL sets one.
    pub client_id: Option<String>,
}

/// Parses a broker URL: `mqtt://HOST[:PORT][?client_id=ID]`. TLS
/// (`mqtts://`), credentials, a path and other parameters are refused
/// rather than ignored. The error says what is wrong.
pub fn broker_url(text: &str) -> Result<BrokerAddr, String> {
    if text.starts_with("mqtts://") || text.starts_with("ssl://") {
        return Err("TLS is not supported yet; use mqtt://".into());
    }
    let u = ServerUrl::parse(text, &[("mqtt", 1883)])?;
    u.no_path()?;
    u.no_credentials()?;
    let mut client_id = None;
    for (k, v) in u.url.query_pairs() {
        match &*k {
            "client_id" if v.is_empty() => {
                return Err("parameter `client_id` has no value".into());
            }
            "client_id" => client_id = Some(v.into_owned()),
            _ => {
                return Err(format!(
                    "unknown parameter `{k}` (only client_id is accepted)"
                ));
            }
        }
    }
    Ok(BrokerAddr {
        host: u.host,
        port: u.port,
        client_id,
    })
}

/// Longest topic name or filter, in bytes.
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// Rules shared by topic names and filters (MQTT 3.1.1 §4.7.3): at least
/// one character, at most 65535 bytes, no NUL.
fn common_rules(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("it is empty")
    } else if s.len() > MAX_TOPIC_BYTES {
        Some("it is longer than 65535 bytes")
    } else if s.contains('\0') {
        Some("it contains the NUL character")
    } else {
        None
    }
}

/// Checks a topic filter against MQTT 3.1.1 §4.7: not empty, at most
/// 65535 bytes, no NUL; `+` and `#` each occupy a whole level, and `#` only
/// the last one.
pub fn validate_filter(filter: &str) -> Result<(), FieldError> {
    let bad = |reason: &str| FieldError::new(format!("MQTT topic filter `{filter}`: {reason}"));
    if let Some(reason) = common_rules(filter) {
        return Err(bad(reason));
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') {
            if *level != "#" {
                return Err(bad("`#` must occupy a whole level"));
            }
            if i + 1 != levels.len() {
                return Err(bad("`#` must be the last level"));
            }
        }
        if level.contains('+') && *level != "+" {
            return Err(bad("`+` must occupy a whole level"));
        }
    }
    Ok(())
}

/// Checks a topic name (to publish to) against MQTT 3.1.1 §4.7: not
/// empty, at most 65535 bytes, no NUL, no wildcard.
pub fn validate_topic(topic: &str) -> Result<(), FieldError> {
    let bad = |reason: &str| FieldError::new(format!("MQTT topic `{topic}`: {reason}"));
    if let Some(reason) = common_rules(topic) {
        return Err(bad(reason));
    }
    if topic.contains(['+', '#']) {
        return Err(bad("wildcards `+` and `#` are not allowed in a topic name"));
    }
    Ok(())
}

/// Whether `topic` matches `filter` (MQTT 3.1.1 §4.7): `+` matches exactly
/// one level, `#` any number of trailing levels including none (its parent
/// too: `a/#` matches `a`); a topic starting with `$` is not matched by a
/// filter starting with a wildcard. An invalid filter or topic matches
/// nothing.
pub fn matches(filter: &str, topic: &str) -> bool {
    if validate_filter(filter).is_err() || validate_topic(topic).is_err() {
        return false;
    }
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (None, None) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let ok = |url: &str, host: &str, port: u16, id: Option<&str>| {
            assert_eq!(
                broker_url(url).unwrap(),
                BrokerAddr {
                    host: host.into(),
                    port,
                    client_id: id.map(String::from)
                },
                "{url}"
            );
        };
        ok("mqtt://localhost", "localhost", 1883, None);
        ok("mqtt://broker.example:8883/", "broker.example", 8883, None);
        ok(
            "mqtt://10.0.0.1:1884?client_id=node-1",
            "10.0.0.1",
            1884,
            Some("node-1"),
        );
        ok("mqtt://[::1]:1885", "[::1]", 1885, None);
        ok("mqtt://[::1]", "[::1]", 1883, None);
        ok("mqtt://h/?client_id=a%2Fb+c", "h", 1883, Some("a/b c"));
        for (url, reason) in [
            ("http://localhost", "expected mqtt://HOST"),
            ("localhost:1883", "expected mqtt://HOST"),
            ("mqtts://localhost", "TLS is not supported"),
            ("mqtt://", "the host is missing"),
            ("mqtt://:1883", "the host is missing"),
            ("mqtt://host:port", "1-65535"),
            ("mqtt://host:0", "1-65535"),
            ("mqtt://host:70000", "1-65535"),
            ("mqtt://host:+1", "1-65535"),
            ("mqtt://host/topic", "unexpected path `/topic`"),
            ("mqtt://user:pw@host", "credentials"),
            ("mqtt://host?keep_alive=5", "unknown parameter `keep_alive`"),
            (
                "mqtt://host?client_id",
                "parameter `client_id` has no value",
            ),
            ("mqtt://[::1", "IPv6"),
            ("mqtt://[::1]x", "invalid"),
            ("mqtt://a b", "invalid"),
        ] {
            let e = broker_url(url).unwrap_err();
            assert!(e.contains(reason), "{url}: {e}");
        }
    }

    #[test]
    fn spec_matching_examples() {
        // §4.7.1.2: multi-level wildcard.
        let f = "sport/tennis/player1/#";
        assert!(matches(f, "sport/tennis/player1"));
        assert!(matches(f, "sport/tennis/player1/ranking"));
        assert!(matches(f, "sport/tennis/player1/score/wimbledon"));
        assert!(!matches(f, "sport/tennis/player2"));
        assert!(matches("sport/#", "sport"));
        assert!(matches("#", "sport/tennis"));
        assert!(matches("#", "/"));
        // §4.7.1.3: single-level wildcard.
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(matches("sport/tennis/+", "sport/tennis/player2"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/tennis/+", "sport/tennis"));
        assert!(matches("sport/+", "sport/"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches("+/tennis/#", "sport/tennis/x/y"));
        assert!(matches("+", "a"));
        assert!(matches("a/+/c/#", "a/b/c"));
        // Literal levels are case-sensitive, and empty levels count.
        assert!(!matches("ACCOUNTS", "Accounts"));
        assert!(matches("a//b", "a//b"));
        assert!(!matches("a/b", "a//b"));
        assert!(!matches("a/b", "a/b/"));
        assert!(matches("a/b/#", "a/b/"));
        // §4.7.2: `$` topics.
        assert!(!matches("#", "$SYS/broker/load"));
        assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
        assert!(matches("a/#", "a/$b"));
        // Invalid inputs match nothing.
        assert!(!matches("sport/tennis#", "sport/tennis#"));
        assert!(!matches("sport/#/x", "sport/a/x"));
        assert!(!matches("a/+", "a/+"));
        assert!(!matches("", ""));
    }

    #[test]
    fn filter_validation() {
        for ok in [
            "#",
            "+",
            "+/+",
            "/+",
            "sport/#",
            "sport/tennis/#",
            "sport/+/player1",
            "+/tennis/#",
            "/",
            "a//b",
            "$SYS/#",
            "ünïcødé/+",
        ] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for (bad, reason) in [
            ("", "it is empty"),
            ("sport/tennis#", "`#` must occupy a whole level"),
            ("sport/tennis/#/ranking", "`#` must be the last level"),
            ("#/a", "`#` must be the last level"),
            ("sport+", "`+` must occupy a whole level"),
            ("sport/+tennis", "`+` must occupy a whole level"),
            ("a/b\0", "NUL"),
        ] {
            let e = validate_filter(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
            assert!(e.contains(reason), "{e}");
        }
        let long = "a".repeat(MAX_TOPIC_BYTES);
        assert!(validate_filter(&long).is_ok());
        let e = validate_filter(&format!("{long}b"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than 65535 bytes"), "{e}");
    }

    #[test]
    fn topic_validation() {
        for ok in ["a", "/", "a/b/c", "$SYS/x", "a//b", " ", "ünïcødé"] {
            assert!(validate_topic(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/+", "a/#", "+", "#", "a+b", "a\0b"] {
            let e = validate_topic(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
        assert!(validate_topic(&"t".repeat(MAX_TOPIC_BYTES + 1)).is_err());
    }
}
