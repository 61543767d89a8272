//! A client of the EKS Pod Identity Agent, the node-local service that
//! trades a pod's token (audience `pods.eks.amazonaws.com`) for the
//! credentials of the role associated with its service account.
//!
//! `GET <endpoint>` with `Authorization: <token>`; the agent answers JSON
//! `AccessKeyId`, `SecretAccessKey`, `Token`, `AccountId`, `Expiration`.
//! Endpoints: IPv4 `http://169.254.170.23/v1/credentials`, IPv6
//! `http://[fd00:ec2::23]/v1/credentials` (flags override both); the pod's
//! `preferredAddressType` picks one, or IPv4 then IPv6 (`auto`).
//!
//! Beyond ASCP, which gives up on the first failure: the agent is known to
//! time out on busy or hybrid nodes and to answer 429 when rate limiting, so
//! timeouts, 429s, 5xx answers and dropped connections are retried with
//! jittered exponential backoff inside a bounded time budget per endpoint. An
//! endpoint that refuses the connection is left at once for the next one (an
//! agent listens on one address family only).
//!
//! The SDK's own container credentials provider reads only the process
//! environment, so this is a small client of our own. [`AgentCredentialsProvider`]
//! puts it behind the SDK's `ProvideCredentials` trait.
//!
//! It must never log or format the token or the credentials: errors carry the
//! endpoint, the HTTP status and the agent's error answer, bounded, cleaned
//! of control characters and of the token should the agent echo it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, AUTHORIZATION, HOST, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::secret::Token;
use crate::store::{AddressPreference, FailureKind};

/// The agent's IPv4 endpoint.
pub const DEFAULT_IPV4_ENDPOINT: &str = "http://169.254.170.23/v1/credentials";
/// The agent's IPv6 endpoint.
pub const DEFAULT_IPV6_ENDPOINT: &str = "http://[fd00:ec2::23]/v1/credentials";
/// An answer is a few hundred bytes.
const MAX_ANSWER: usize = 64 * 1024;
/// Longest piece of an agent's error answer kept in a message.
const MAX_ERROR_BODY: usize = 512;
/// The agent runs on the node: a connection that takes longer than this is
/// not coming (the address family is not served, or nothing listens).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How the client talks to the agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The IPv4 endpoint URL (`http://` only).
    pub ipv4_endpoint: String,
    /// The IPv6 endpoint URL (`http://` only).
    pub ipv6_endpoint: String,
    /// How long one attempt may take (`--pod-identity-http-timeout`).
    pub attempt_timeout: Duration,
    /// Attempts per endpoint, the first included.
    pub max_attempts: u32,
    /// Time allowed for all attempts on one endpoint, waits included.
    pub retry_budget: Duration,
    /// First backoff; doubled per retry, up to `backoff_cap`, fully jittered.
    pub backoff_base: Duration,
    /// Largest backoff.
    pub backoff_cap: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            ipv4_endpoint: DEFAULT_IPV4_ENDPOINT.into(),
            ipv6_endpoint: DEFAULT_IPV6_ENDPOINT.into(),
            attempt_timeout: Self::DEFAULT_ATTEMPT_TIMEOUT,
            max_attempts: 4,
            retry_budget: Duration::from_secs(20),
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(2),
        }
    }
}

impl AgentConfig {
    /// One attempt's timeout when `--pod-identity-http-timeout` is not set.
    pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
}

/// Why the agent gave no credentials.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AgentError {
    /// How to treat it.
    pub kind: FailureKind,
    /// Whether the operator must fix something (a 4xx from the agent other
    /// than 401/403: no association for the service account, a bad token).
    pub precondition: bool,
    /// What happened at each endpoint tried.
    pub message: String,
}

/// A parsed endpoint.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    /// `host:port` to connect to (IPv6 hosts in brackets).
    connect: String,
    /// The Host header.
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "{url:?}: the Pod Identity Agent is reached over http:// only"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(Self {
            url: url.to_owned(),
            connect: format!("{}:{port}", authority.host()),
            authority: authority.as_str().to_owned(),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        })
    }
}

/// How one attempt failed.
enum Failure {
    /// No connection: nothing listens there, or the family is not routed.
    Unreachable(String),
    /// Worth retrying: timeout, 429, 5xx, a dropped connection.
    Transient(String),
    /// Not worth retrying.
    Final {
        kind: FailureKind,
        precondition: bool,
        message: String,
    },
}

impl Failure {
    fn message(&self) -> &str {
        match self {
            Failure::Unreachable(m) | Failure::Transient(m) => m,
            Failure::Final { message, .. } => message,
        }
    }
}

/// The agent client. Cheap to clone.
#[derive(Clone)]
pub struct AgentClient {
    config: Arc<AgentConfig>,
    ipv4: Target,
    ipv6: Target,
}

impl fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentClient")
            .field("ipv4", &self.ipv4.url)
            .field("ipv6", &self.ipv6.url)
            .finish()
    }
}

impl AgentClient {
    /// A client; fails when an endpoint is not an `http://` URL.
    pub fn new(config: AgentConfig) -> Result<Self, String> {
        Ok(Self {
            ipv4: Target::parse(&config.ipv4_endpoint)?,
            ipv6: Target::parse(&config.ipv6_endpoint)?,
            config: Arc::new(config),
        })
    }

    /// A short description of the endpoints `preference` uses, for cache
    /// keys and messages.
    pub fn describe(&self, preference: AddressPreference) -> String {
        match preference {
            AddressPreference::Auto => format!("{} then {}", self.ipv4.url, self.ipv6.url),
            AddressPreference::Ipv4 => self.ipv4.url.clone(),
            AddressPreference::Ipv6 => self.ipv6.url.clone(),
        }
    }

    /// Credentials for the pod whose Pod Identity token is `token`.
    pub async fn fetch(
        &self,
        token: &Token,
        preference: AddressPreference,
    ) -> Result<Credentials, AgentError> {
        let targets: Vec<&Target> = match preference {
            AddressPreference::Auto => vec![&self.ipv4, &self.ipv6],
            AddressPreference::Ipv4 => vec![&self.ipv4],
            AddressPreference::Ipv6 => vec![&self.ipv6],
        };
        let mut failures: Vec<(&Target, Failure)> = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let last = i + 1 == targets.len();
            match self.fetch_from(target, token, last).await {
                Ok(credentials) => return Ok(credentials),
                Err(failure) => {
                    tracing::warn!(endpoint = %target.url, error = failure.message(), "Pod Identity Agent endpoint failed");
                    failures.push((target, failure));
                }
            }
        }
        Err(combine(failures))
    }

    /// Attempts on one endpoint, retrying transient failures within the
    /// budget. `last`: no other endpoint follows, so an unreachable one is
    /// retried too.
    async fn fetch_from(
        &self,
        target: &Target,
        token: &Token,
        last: bool,
    ) -> Result<Credentials, Failure> {
        let c = &self.config;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let remaining = c.retry_budget.saturating_sub(started.elapsed());
            let timeout = c
                .attempt_timeout
                .min(remaining)
                .max(Duration::from_millis(1));
            let failure =
                match tokio::time::timeout(timeout, self.once(target, token, timeout)).await {
                    Ok(Ok(credentials)) => return Ok(credentials),
                    Ok(Err(failure)) => failure,
                    Err(_) => Failure::Transient(format!("no answer within {timeout:?}")),
                };
            let retryable = match &failure {
                Failure::Transient(_) => true,
                Failure::Unreachable(_) => last,
                Failure::Final { .. } => false,
            };
            if !retryable || attempt >= c.max_attempts.max(1) {
                return Err(with_attempts(failure, attempt));
            }
            let ceiling = c
                .backoff_base
                .saturating_mul(1u32 << (attempt - 1).min(16))
                .min(c.backoff_cap);
            let delay = ceiling.mul_f64(fastrand::f64());
            if started.elapsed() + delay >= c.retry_budget {
                return Err(with_attempts(failure, attempt));
            }
            tracing::debug!(endpoint = %target.url, attempt, delay_ms = delay.as_millis() as u64, error = failure.message(), "retrying the Pod Identity Agent");
            tokio::time::sleep(delay).await;
        }
    }

    /// One request.
    async fn once(
        &self,
        target: &Target,
        token: &Token,
        timeout: Duration,
    ) -> Result<Credentials, Failure> {
        let connect_timeout = timeout.min(MAX_CONNECT_TIMEOUT);
        let stream = match tokio::time::timeout(
            connect_timeout,
            TcpStream::connect(&target.connect),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Failure::Unreachable(format!("cannot connect: {e}"))),
            Err(_) => {
                return Err(Failure::Unreachable(format!(
                    "no connection within {connect_timeout:?}"
                )));
            }
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Failure::Transient(format!("HTTP handshake failed: {e}")))?;
        // Drives the socket; aborted when this attempt ends, however it ends.
        let _connection = AbortOnDrop(tokio::spawn(connection));

        let mut authorization =
            HeaderValue::from_str(token.expose()).map_err(|_| Failure::Final {
                kind: FailureKind::InvalidArgument,
                precondition: true,
                message: "the Pod Identity token has characters an HTTP header cannot carry".into(),
            })?;
        authorization.set_sensitive(true);
        let request = Request::get(target.path.as_str())
            .header(HOST, target.authority.as_str())
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, authorization)
            .body(Empty::<Bytes>::new())
            .map_err(|e| Failure::Final {
                kind: FailureKind::Internal,
                precondition: false,
                message: format!("cannot build the request: {e}"),
            })?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Failure::Transient(format!("the request failed: {e}")))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| {
                Failure::Transient(format!("HTTP {status}: reading the answer failed: {e}"))
            })?
            .to_bytes();

        if status == StatusCode::OK {
            return parse_answer(&body).map_err(|why| Failure::Final {
                kind: FailureKind::Unavailable,
                precondition: false,
                message: format!(
                    "HTTP 200 with an unusable answer ({} bytes): {why}",
                    body.len()
                ),
            });
        }
        let detail = format!("HTTP {}: {}", status.as_u16(), error_text(&body, token));
        Err(match status.as_u16() {
            408 | 429 | 500..=599 => Failure::Transient(detail),
            401 | 403 => Failure::Final {
                kind: FailureKind::PermissionDenied,
                precondition: false,
                message: detail,
            },
            400..=499 => Failure::Final {
                kind: FailureKind::InvalidArgument,
                precondition: true,
                message: detail,
            },
            _ => Failure::Final {
                kind: FailureKind::Unavailable,
                precondition: false,
                message: detail,
            },
        })
    }
}

/// Adds the number of attempts to a failure's message.
fn with_attempts(failure: Failure, attempts: u32) -> Failure {
    if attempts <= 1 {
        return failure;
    }
    let note = |m: String| format!("{m} (after {attempts} attempts)");
    match failure {
        Failure::Unreachable(m) => Failure::Unreachable(note(m)),
        Failure::Transient(m) => Failure::Transient(note(m)),
        Failure::Final {
            kind,
            precondition,
            message,
        } => Failure::Final {
            kind,
            precondition,
            message: note(message),
        },
    }
}

/// One error for every endpoint tried. The most telling failure decides the
/// kind: an answer from an agent beats a connection that never happened.
fn combine(failures: Vec<(&Target, Failure)>) -> AgentError {
    let message = failures
        .iter()
        .map(|(t, f)| format!("{}: {}", t.url, f.message()))
        .collect::<Vec<_>>()
        .join("; ");
    let decisive = failures
        .iter()
        .find(|(_, f)| matches!(f, Failure::Final { .. }))
        .or_else(|| {
            failures
                .iter()
                .find(|(_, f)| matches!(f, Failure::Transient(_)))
        })
        .or(failures.last());
    let (kind, precondition) = match decisive.map(|(_, f)| f) {
        Some(Failure::Final {
            kind, precondition, ..
        }) => (*kind, *precondition),
        _ => (FailureKind::Unavailable, false),
    };
    AgentError {
        kind,
        precondition,
        message: format!("the EKS Pod Identity Agent gave no credentials: {message}"),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    expiration: Option<String>,
}

/// Credentials from a 200 answer. The reason for a refusal never quotes the
/// body: it holds credentials. Public for the fuzz target
/// (`fuzzing::agent_answer`, built with the `fuzzing` feature).
pub fn parse_answer(body: &[u8]) -> Result<Credentials, String> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| {
        format!(
            "not the expected JSON object ({:?} at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    if answer.access_key_id.is_empty() || answer.secret_access_key.is_empty() {
        return Err("AccessKeyId or SecretAccessKey is empty".into());
    }
    let expiry = match answer.expiration.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            humantime::parse_rfc3339_weak(text)
                .map_err(|_| "Expiration is not an RFC 3339 time".to_owned())?,
        ),
    };
    let mut builder = Credentials::builder()
        .access_key_id(answer.access_key_id)
        .secret_access_key(answer.secret_access_key)
        .provider_name("ascp-pod-identity-agent");
    builder.set_session_token(answer.token.filter(|t| !t.is_empty()));
    builder.set_expiry(expiry);
    if let Some(account) = answer.account_id.filter(|a| !a.is_empty()) {
        builder = builder.account_id(account);
    }
    Ok(builder.build())
}

/// The agent's error answer as text for a message: lossy UTF-8, control
/// characters blanked, the token (should the agent echo it) removed, cut to
/// [`MAX_ERROR_BODY`] bytes.
fn error_text(body: &[u8], token: &Token) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    let secret = token.expose();
    if !secret.is_empty() {
        text = text.replace(secret, "<redacted>");
    }
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return "(empty answer)".into();
    }
    crate::bounded_text::truncate(trimmed, MAX_ERROR_BODY)
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The agent behind the SDK's credentials trait, for one pod's token.
pub struct AgentCredentialsProvider {
    client: AgentClient,
    token: Token,
    preference: AddressPreference,
}

impl AgentCredentialsProvider {
    /// A provider asking `client` with `token`.
    pub fn new(client: AgentClient, token: Token, preference: AddressPreference) -> Self {
        Self {
            client,
            token,
            preference,
        }
    }
}

impl fmt::Debug for AgentCredentialsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentCredentialsProvider")
            .field("client", &self.client)
            .field("token", &self.token)
            .field("preference", &self.preference)
            .finish()
    }
}

impl ProvideCredentials for AgentCredentialsProvider {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.client
                .fetch(&self.token, self.preference)
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let t = Target::parse(DEFAULT_IPV6_ENDPOINT).unwrap();
        assert_eq!(t.connect, "[fd00:ec2::23]:80");
        assert_eq!(t.path, "/v1/credentials");
        let t = Target::parse("http://127.0.0.1:8080/v1/credentials").unwrap();
        assert_eq!(t.connect, "127.0.0.1:8080");
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert!(Target::parse("https://169.254.170.23/v1/credentials").is_err());
        assert!(Target::parse("not a url").is_err());
    }

    #[test]
    fn answers_parse_and_refusals_never_quote_them() {
        let good = br#"{"AccessKeyId":"ASIA1","SecretAccessKey":"s3cr3t","Token":"tok","AccountId":"123456789012","Expiration":"2030-01-01T00:00:00Z"}"#;
        let c = parse_answer(good).unwrap();
        assert_eq!(c.access_key_id(), "ASIA1");
        assert_eq!(c.session_token(), Some("tok"));
        assert!(c.expiry().is_some());
        for bad in [
            &br#"{"AccessKeyId":"ASIA1","SecretAccessKey":5}"#[..],
            br#"{"AccessKeyId":"ASIA1","SecretAccessKey":"s3cr3t","Expiration":"s3cr3t-soon"}"#,
            br#"<html>s3cr3t</html>"#,
        ] {
            let why = parse_answer(bad).unwrap_err();
            assert!(!why.contains("s3cr3t"), "{why}");
        }
    }

    #[test]
    fn error_bodies_are_cleaned() {
        let token = Token::new("distinctive-token");
        let text = error_text(b"bad token distinctive-token\n\x1b[31m", &token);
        assert_eq!(text, "bad token <redacted>  [31m");
        let long = vec![b'x'; 2000];
        assert!(error_text(&long, &token).len() <= MAX_ERROR_BODY + 3);
        assert_eq!(error_text(b"", &token), "(empty answer)");
    }
}
