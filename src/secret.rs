//! Redacting newtypes for everything that must never reach a log line, an
//! error message, a metric label or a `Debug` string: secret values and
//! service-account tokens.
//!
//! The types have no `Display` and a hand-written `Debug` that prints only the
//! length, so formatting one by mistake cannot leak it. Reading the value
//! takes an explicit `expose()` call, which makes every use visible in review.
//!
//! The bytes a value of these types owns are zeroed when it is dropped: each
//! fetched secret or parameter value, each jmesPath result, each value
//! decoded by `objectEncoding` (and the copy it decodes from), and the
//! service-account tokens once taken from the request. Copies made outside
//! these types are not: the AWS SDK's and the TLS stack's buffers and the
//! response structures the SDK hands back, the parsed JSON a jmesPath
//! expression runs on ([`crate::jmes::Document`]), the file contents handed
//! to the driver ([`crate::proto::File`]), and the request's attributes,
//! which carry the token JSON as plain strings. Zeroing shortens how long a
//! value lingers in memory; it does not keep it from a reader of the
//! process's memory.

use std::fmt;
use zeroize::Zeroizing;

/// The bytes of a fetched secret or parameter value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps a value.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The value itself. Callers must not log or format it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value's length in bytes, which is safe to log.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl From<String> for SecretBytes {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}

/// A bearer credential: a service-account token, a secret access key or a
/// session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Zeroizing<String>);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(Zeroizing::new(token.into()))
    }

    /// The token itself. Callers must not log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the token is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = SecretBytes::from("hunter2-very-secret".to_string());
        let t = Token::new("eyJhbGciOi-token");
        let shown = format!("{s:?} {t:?} {:?}", vec![s.clone()]);
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("eyJ"));
        assert!(shown.contains("19 bytes"));
    }
}
