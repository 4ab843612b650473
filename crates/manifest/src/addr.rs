//! Server URLs in node configuration and on the command line: the MQTT
//! broker, Redis stores, NATS servers, a node's HTTP API. Each is parsed by
//! the `url` crate and then checked for what Weft can use: a known scheme, a
//! host, a port in 1-65535, and nothing Weft would silently ignore.
//!
//! ```
//! use weft_manifest::addr::{ServerUrl, redis_url};
//! let u = ServerUrl::parse("nats://hub:4222", &[("nats", 4222)]).unwrap();
//! assert_eq!((u.host.as_str(), u.port), ("hub", 4222));
//! assert!(redis_url("redis://cache/0").is_ok());
//! assert!(redis_url("redis://cache/zero").unwrap_err().contains("database"));
//! ```

use url::Url;

/// A parsed server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// The scheme, lower case.
    pub scheme: String,
    /// A host name, an IPv4 address, or a bracketed IPv6 address.
    pub host: String,
    /// The port, the scheme's default when the URL has none.
    pub port: u16,
    /// The whole URL, for what is particular to one kind of server (a
    /// path, a query).
    pub url: Url,
}

impl ServerUrl {
    /// Parses `text` as one of `schemes` (each with its default port). The
    /// error says what is wrong, for the caller to put after the field and
    /// the URL.
    pub fn parse(text: &str, schemes: &[(&str, u16)]) -> Result<ServerUrl, String> {
        let expected = || {
            let list: Vec<String> = schemes
                .iter()
                .map(|(s, _)| format!("{s}://HOST[:PORT]"))
                .collect();
            format!("expected {}", list.join(" or "))
        };
        let url = match Url::parse(text) {
            Ok(u) => u,
            Err(url::ParseError::RelativeUrlWithoutBase) => return Err(expected()),
            Err(url::ParseError::EmptyHost) => return Err("the host is missing".into()),
            Err(url::ParseError::InvalidPort) => {
                return Err("the port is not a number in 1-65535".into());
            }
            Err(e) => return Err(e.to_string()),
        };
        let Some(&(scheme, default_port)) = schemes.iter().find(|(s, _)| *s == url.scheme()) else {
            return Err(expected());
        };
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.to_string(),
            _ if !text.contains("://") => return Err(expected()),
            _ => return Err("the host is missing".into()),
        };
        let port = url.port().unwrap_or(default_port);
        if port == 0 {
            return Err("the port is not a number in 1-65535".into());
        }
        if url.fragment().is_some() {
            return Err("a `#fragment` has no meaning here".into());
        }
        Ok(ServerUrl {
            scheme: scheme.to_string(),
            host,
            port,
            url,
        })
    }

    /// Refuses a path other than `/` and a query.
    pub fn bare(self) -> Result<ServerUrl, String> {
        self.no_path()?;
        if self.url.query().is_some() {
            return Err("a `?query` has no meaning here".into());
        }
        Ok(self)
    }

    /// Refuses a path other than `/`.
    pub fn no_path(&self) -> Result<(), String> {
        match self.url.path() {
            "" | "/" => Ok(()),
            p => Err(format!("unexpected path `{p}`")),
        }
    }

    /// Refuses a user name or a password.
    pub fn no_credentials(&self) -> Result<(), String> {
        if self.url.username().is_empty() && self.url.password().is_none() {
            Ok(())
        } else {
            Err("credentials in the URL are not supported here".into())
        }
    }
}

/// A Redis store's URL: `redis://[USER:PASSWORD@]HOST[:PORT][/DB]` (or
/// `rediss://` for TLS); the port defaults to 6379 and DB is a number.
pub fn redis_url(text: &str) -> Result<ServerUrl, String> {
    let u = ServerUrl::parse(text, &[("redis", 6379), ("rediss", 6379)])?;
    match u.url.path().trim_start_matches('/') {
        "" => {}
        db if db.parse::<u32>().is_ok() => {}
        db => return Err(format!("the database `{db}` is not a number")),
    }
    if u.url.query().is_some() {
        return Err("a `?query` has no meaning here".into());
    }
    Ok(u)
}

/// NATS server URLs, comma-separated: `nats://HOST[:PORT]` or
/// `tls://HOST[:PORT]`, the port defaulting to 4222. Credentials are
/// accepted (the NATS client reads them from the URL).
pub fn nats_urls(text: &str) -> Result<Vec<ServerUrl>, String> {
    text.split(',')
        .map(str::trim)
        .map(|u| {
            ServerUrl::parse(u, &[("nats", 4222), ("tls", 4222)])
                .and_then(ServerUrl::bare)
                .map_err(|e| format!("`{u}`: {e}"))
        })
        .collect()
}

/// A node's HTTP API: `http://HOST[:PORT]` or `https://HOST[:PORT]`.
pub fn node_url(text: &str) -> Result<ServerUrl, String> {
    let u = ServerUrl::parse(text, &[("http", 80), ("https", 443)])?.bare()?;
    u.no_credentials()?;
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let s = &[("nats", 4222)][..];
        let ok = |t: &str, host: &str, port: u16| {
            let u = ServerUrl::parse(t, s).unwrap();
            assert_eq!((u.host.as_str(), u.port), (host, port), "{t}");
        };
        ok("nats://h", "h", 4222);
        ok("nats://h:1", "h", 1);
        ok("nats://[::1]:5", "[::1]", 5);
        ok("NATS://H", "H", 4222);
        for (t, reason) in [
            ("h:4222", "expected nats://HOST"),
            ("h", "expected nats://HOST"),
            ("http://h", "expected nats://HOST"),
            ("nats://", "the host is missing"),
            ("nats://:4222", "the host is missing"),
            ("nats://h:0", "1-65535"),
            ("nats://h:70000", "1-65535"),
            ("nats://h:port", "1-65535"),
            ("nats://[::1", "IPv6"),
            ("nats://a b", "invalid"),
            ("nats://h#x", "fragment"),
        ] {
            let e = ServerUrl::parse(t, s).unwrap_err();
            assert!(e.contains(reason), "{t}: {e}");
        }
    }

    #[test]
    fn redis_and_nats_and_node() {
        assert_eq!(redis_url("rediss://u:p@h:7/3").unwrap().port, 7);
        assert!(redis_url("redis://h/x").unwrap_err().contains("`x`"));
        assert!(redis_url("redis://h?db=1").unwrap_err().contains("query"));
        assert!(redis_url("http://h").unwrap_err().contains("redis://"));
        assert_eq!(nats_urls("nats://a, tls://b:5").unwrap().len(), 2);
        assert!(nats_urls("nats://a,b").unwrap_err().starts_with("`b`"));
        assert!(nats_urls("nats://a/x").unwrap_err().contains("path"));
        assert_eq!(node_url("http://127.0.0.1:7777/").unwrap().port, 7777);
        assert!(node_url("127.0.0.1:7777").unwrap_err().contains("http://"));
        assert!(node_url("http://u@h").unwrap_err().contains("credentials"));
        assert!(node_url("http://h/api").unwrap_err().contains("path"));
    }
}
