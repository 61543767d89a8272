//! The service-account tokens the CSI driver sends with each mount
//! (`csi.storage.k8s.io/serviceAccount.tokens`, docs/identity.md#tokens).
//!
//! The attribute is a JSON object mapping an audience to
//! `{"token": "...", "expirationTimestamp": "..."}`; the driver fills it when
//! the CSIDriver object has `tokenRequests`. This module owns parsing it and
//! picking the token of one audience.
//!
//! It must never put a token into an error, a log line or a `Debug` string:
//! tokens go straight from the JSON into [`Token`], and parse errors report
//! only a line and column, because serde's own messages quote the offending
//! input.

use std::collections::HashMap;
use std::fmt;
use std::time::SystemTime;

use serde::Deserialize;

use crate::error::Error;
use crate::secret::Token;

/// The audience of the token IRSA exchanges with STS.
pub const IRSA_AUDIENCE: &str = "sts.amazonaws.com";
/// The audience of the token EKS Pod Identity exchanges with the agent or
/// EKS Auth.
pub const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";

/// The attribute is a few kilobytes per audience; anything much larger is
/// not from the driver.
const MAX_TOKENS_JSON: usize = 256 * 1024;

/// One audience's token.
#[derive(Clone)]
pub struct AudienceToken {
    /// The token (a JWT).
    pub token: Token,
    /// When the token expires, when the driver said so and it parses.
    pub expires: Option<SystemTime>,
}

impl fmt::Debug for AudienceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudienceToken")
            .field("token", &self.token)
            .field("expires", &self.expires)
            .finish()
    }
}

/// The parsed attribute: audience → token.
#[derive(Debug, Clone, Default)]
pub struct ServiceAccountTokens {
    tokens: HashMap<String, AudienceToken>,
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "expirationTimestamp")]
    expiration_timestamp: Option<String>,
}

impl ServiceAccountTokens {
    /// Parses the attribute. `audience` names the token the caller needs, so
    /// that a missing or unparsable attribute is reported for it.
    pub fn parse(raw: Option<&Token>, audience: &'static str) -> Result<Self, Error> {
        let err = |reason: String| Error::Token { audience, reason };
        let raw = match raw {
            Some(t) if !t.expose().trim().is_empty() => t,
            _ => {
                return Err(err(
                    "the mount request has no csi.storage.k8s.io/serviceAccount.tokens attribute"
                        .into(),
                ));
            }
        };
        if raw.expose().len() > MAX_TOKENS_JSON {
            return Err(err(format!(
                "csi.storage.k8s.io/serviceAccount.tokens is {} bytes, more than the {MAX_TOKENS_JSON} allowed",
                raw.expose().len()
            )));
        }
        let parsed: HashMap<String, RawEntry> =
            serde_json::from_str(raw.expose()).map_err(|e| {
                // serde's message may quote the input; keep only where.
                err(format!(
                    "csi.storage.k8s.io/serviceAccount.tokens is not a JSON object of audience → {{token, expirationTimestamp}} ({} at line {} column {})",
                    match e.classify() {
                        serde_json::error::Category::Io => "I/O error",
                        serde_json::error::Category::Syntax => "syntax error",
                        serde_json::error::Category::Data => "unexpected type",
                        serde_json::error::Category::Eof => "unexpected end",
                    },
                    e.line(),
                    e.column()
                ))
            })?;
        let tokens = parsed
            .into_iter()
            .map(|(audience, entry)| {
                let expires = entry
                    .expiration_timestamp
                    .as_deref()
                    .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
                (
                    audience,
                    AudienceToken {
                        token: Token::new(entry.token.unwrap_or_default()),
                        expires,
                    },
                )
            })
            .collect();
        Ok(Self { tokens })
    }

    /// The non-empty token of `audience`.
    pub fn get(&self, audience: &'static str) -> Result<&AudienceToken, Error> {
        match self.tokens.get(audience) {
            None => Err(Error::Token {
                audience,
                reason: format!(
                    "csi.storage.k8s.io/serviceAccount.tokens has no token for this audience (it has: {})",
                    self.audiences()
                ),
            }),
            Some(t) if t.token.expose().trim().is_empty() => Err(Error::Token {
                audience,
                reason: "the token for this audience is empty".into(),
            }),
            Some(t) => Ok(t),
        }
    }

    /// The audiences present, sorted, for messages (audiences are not secret).
    fn audiences(&self) -> String {
        let mut names: Vec<&str> = self
            .tokens
            .keys()
            .map(String::as_str)
            .map(|a| if a.len() > 64 { "<long name>" } else { a })
            .take(10)
            .collect();
        names.sort_unstable();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

/// Parses the attribute and returns the token of `audience`.
pub fn token_for(raw: Option<&Token>, audience: &'static str) -> Result<AudienceToken, Error> {
    ServiceAccountTokens::parse(raw, audience)?
        .get(audience)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "eyJhbGciOiJSUzI1NiJ9.distinctive-token-value.sig";

    fn raw(s: &str) -> Token {
        Token::new(s)
    }

    #[test]
    fn picks_the_audience() {
        let json = format!(
            r#"{{"sts.amazonaws.com":{{"token":"{SECRET}","expirationTimestamp":"2030-01-01T00:00:00Z"}},"pods.eks.amazonaws.com":{{"token":"p","expirationTimestamp":"2030-01-01T00:00:00Z"}}}}"#
        );
        let t = token_for(Some(&raw(&json)), IRSA_AUDIENCE).unwrap();
        assert_eq!(t.token.expose(), SECRET);
        assert!(t.expires.is_some());
        let p = token_for(Some(&raw(&json)), POD_IDENTITY_AUDIENCE).unwrap();
        assert_eq!(p.token.expose(), "p");
        assert!(!format!("{t:?}").contains("distinctive"));
    }

    #[test]
    fn errors_say_what_to_configure_and_never_quote_the_token() {
        let cases = [
            None,
            Some(raw("")),
            Some(raw(&format!("{{\"sts.amazonaws.com\": \"{SECRET}\"}}"))),
            Some(raw(&format!("[\"{SECRET}\"]"))),
            Some(raw(&format!(
                "{{\"sts.amazonaws.com\": {{\"token\": 5, \"x\": \"{SECRET}\"}}"
            ))),
            Some(raw(&format!("{{\"other\":{{\"token\":\"{SECRET}\"}}}}"))),
            Some(raw(r#"{"sts.amazonaws.com":{"token":""}}"#)),
            Some(raw(r#"{"sts.amazonaws.com":{}}"#)),
        ];
        for case in cases {
            let e = token_for(case.as_ref(), IRSA_AUDIENCE).unwrap_err();
            let m = e.full_message();
            assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{m}");
            assert!(m.contains("tokenRequests"), "{m}");
            assert!(m.contains("sts.amazonaws.com"), "{m}");
            assert!(!m.contains("distinctive"), "{m}");
        }
    }
}
