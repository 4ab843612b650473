//! Bearer-token authentication of the admin API, and of the invocation
//! routes of non-public functions, when the node listens beyond loopback.

use sha2::{Digest, Sha256};

/// Who may call the node.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Loopback only: every route is open.
    Open,
    /// The sha256 of the admin token; only the hash is kept.
    Token([u8; 32]),
}

impl Auth {
    /// Auth by a token's hash.
    pub fn from_token(token: &str) -> Auth {
        Auth::Token(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `header` (an `Authorization` value) carries the token.
    pub(crate) fn allows(&self, header: Option<&str>) -> bool {
        match self {
            Auth::Open => true,
            Auth::Token(hash) => {
                let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
                    return false;
                };
                let given: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
                // Compare without an early exit.
                given
                    .iter()
                    .zip(hash)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_checks() {
        let a = Auth::from_token("s3cret-s3cret-s3cret");
        assert!(a.allows(Some("Bearer s3cret-s3cret-s3cret")));
        assert!(!a.allows(Some("Bearer nope")));
        assert!(!a.allows(Some("s3cret-s3cret-s3cret")));
        assert!(!a.allows(None));
        assert!(Auth::Open.allows(None));
    }
}
