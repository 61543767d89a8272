//! A fault-injecting HTTP/1.1 reverse proxy for what moto cannot produce:
//! server errors, throttling, slow or hung calls, dropped connections, added
//! latency, and cross-account access. It also counts calls per region and
//! operation and records request bodies, so tests can assert how often and
//! with what the code under test called AWS.
//!
//! Point the SDK at [`FaultProxy::endpoint`] instead of moto's endpoint.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::stub_server::{Dropped, serve_http1};

/// Region or operation of a request that names none (an unsigned STS call
/// has no credential scope, so no region).
pub const UNKNOWN: &str = "unknown";

/// Secrets are at most 64 KiB and parameters 8 KiB; anything near this is a
/// bug in the client, not a request worth forwarding.
const MAX_REQUEST_BODY: usize = 1 << 20;
/// Room for a BatchGetSecretValue of 20 maximal secrets, and then some.
const MAX_RESPONSE_BODY: usize = 16 << 20;
/// moto answers in milliseconds; this only bounds a wedged moto.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests remembered per operation, and bytes kept of each body.
const MAX_RECORDED: usize = 32;
const MAX_RECORDED_BODY: usize = 64 << 10;

/// What a matching [`Rule`] does to a request instead of forwarding it as is.
#[derive(Clone, Debug)]
pub enum Action {
    /// Answer with `status` and an AWS error of type `error_type`, in the
    /// request's protocol (JSON for `X-Amz-Target` requests, XML for query
    /// requests such as STS), without calling moto.
    Respond {
        status: u16,
        error_type: String,
        message: String,
    },
    /// Wait, then forward.
    Delay(Duration),
    /// Never answer. The call ends when the client gives up or the proxy is
    /// dropped.
    Hang,
    /// Close the connection without answering (a network failure).
    Disconnect,
    /// Wait until the test releases one permit of this semaphore (it
    /// starts with none; `add_permits(n)` releases n held requests), then
    /// forward.
    Hold(Arc<tokio::sync::Semaphore>),
    /// Answer with what the function makes of the request, without calling
    /// moto: for the operations moto does not emulate (IAM
    /// SimulatePrincipalPolicy, EKS Pod Identity associations).
    Answer(Answerer),
}

/// A request's head and body (lossily decoded) in; status, content type
/// and body out.
pub type AnswerFn = dyn Fn(&Parts, &str) -> (u16, String, String) + Send + Sync;

/// An [`AnswerFn`] to share between requests.
#[derive(Clone)]
pub struct Answerer(pub Arc<AnswerFn>);

impl std::fmt::Debug for Answerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Answerer")
    }
}

/// A fault, matched on region, service and operation (each optional: an unset
/// one matches anything, including [`UNKNOWN`]).
///
/// `Rule::new()` alone fails every call with 500 InternalServiceError.
#[derive(Clone, Debug)]
pub struct Rule {
    region: Option<String>,
    service: Option<String>,
    operation: Option<String>,
    /// Only requests signed with this access key id (one pod's
    /// credentials, say), before any [`FaultProxy::map_account`] rewrite.
    access_key: Option<String>,
    action: Action,
    times: Option<usize>,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            region: None,
            service: None,
            operation: None,
            access_key: None,
            action: Action::Respond {
                status: 500,
                error_type: "InternalServiceError".to_owned(),
                message: "injected by the test proxy".to_owned(),
            },
            times: None,
        }
    }
}

impl Rule {
    pub fn new() -> Rule {
        Rule::default()
    }

    /// Only requests signed for `region` (so never unsigned ones).
    pub fn region(mut self, region: &str) -> Rule {
        self.region = Some(region.to_owned());
        self
    }

    /// Only requests signed for `service` (`secretsmanager`, `ssm`, `sts`).
    pub fn service(mut self, service: &str) -> Rule {
        self.service = Some(service.to_owned());
        self
    }

    /// Only `operation`, e.g. `GetSecretValue` or `AssumeRoleWithWebIdentity`.
    pub fn operation(mut self, operation: &str) -> Rule {
        self.operation = Some(operation.to_owned());
        self
    }

    /// Only requests signed with `access_key_id` (as [`Recorded`] shows
    /// it): denies one role's or one pod's credentials and no other's.
    pub fn access_key(mut self, access_key_id: &str) -> Rule {
        self.access_key = Some(access_key_id.to_owned());
        self
    }

    /// Fire at most `n` times, then let requests through.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }

    /// Answer `status` with an error of type `error_type` (e.g. 500
    /// `InternalServiceError`, 400 `ThrottlingException`, 400
    /// `AccessDeniedException`).
    pub fn respond(self, status: u16, error_type: &str) -> Rule {
        self.respond_with(status, error_type, "injected by the test proxy")
    }

    /// Like [`Rule::respond`] with the error's message.
    pub fn respond_with(mut self, status: u16, error_type: &str, message: &str) -> Rule {
        self.action = Action::Respond {
            status,
            error_type: error_type.to_owned(),
            message: message.to_owned(),
        };
        self
    }

    pub fn delay(mut self, delay: Duration) -> Rule {
        self.action = Action::Delay(delay);
        self
    }

    pub fn hang(mut self) -> Rule {
        self.action = Action::Hang;
        self
    }

    /// Holds matching requests until `release` gets a permit for each.
    pub fn hold(mut self, release: Arc<tokio::sync::Semaphore>) -> Rule {
        self.action = Action::Hold(release);
        self
    }

    /// Answer with `f(request head, request body)`: (status, content
    /// type, body).
    pub fn answer(
        mut self,
        f: impl Fn(&Parts, &str) -> (u16, String, String) + Send + Sync + 'static,
    ) -> Rule {
        self.action = Action::Answer(Answerer(Arc::new(f)));
        self
    }

    pub fn disconnect(mut self) -> Rule {
        self.action = Action::Disconnect;
        self
    }

    fn matches(&self, request: &RequestInfo) -> bool {
        let want =
            |wanted: &Option<String>, actual: &str| wanted.as_deref().is_none_or(|w| w == actual);
        want(&self.region, &request.region)
            && want(&self.service, &request.service)
            && want(&self.operation, &request.operation)
            && self
                .access_key
                .as_deref()
                .is_none_or(|w| request.access_key_id.as_deref() == Some(w))
    }
}

/// Names a rule added to a proxy, to ask how often it fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleHandle(usize);

/// One request as the client sent it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub region: String,
    pub service: String,
    pub operation: String,
    /// From the SigV4 credential scope; `None` for unsigned requests.
    pub access_key_id: Option<String>,
    /// The access key id the proxy put in its place (see
    /// [`FaultProxy::map_account`]).
    pub rewritten_to: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The body, lossily decoded and cut at 64 KiB.
    pub body: String,
}

pub struct FaultProxy {
    endpoint: String,
    state: Arc<State>,
    /// Owns every connection task: aborting it ends them all, hung ones too.
    server: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`
    /// (`http://host:port`, normally [`super::MotoServer::endpoint`]). Must be
    /// called inside a tokio runtime; the proxy lives until dropped or until
    /// that runtime ends.
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream = super::http::authority(upstream)
            .unwrap_or_else(|e| panic!("bad upstream {upstream}: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy to a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("proxy address"));
        let state = Arc::new(State {
            upstream,
            inner: Mutex::default(),
        });
        let server = tokio::spawn(serve(listener, state.clone()));
        FaultProxy {
            endpoint,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Adds a rule after the existing ones. The first matching rule that has
    /// not used up its `times` decides what happens to a request.
    pub fn add_rule(&self, rule: Rule) -> RuleHandle {
        let mut inner = self.state.lock();
        inner.rules.push(ActiveRule { rule, fired: 0 });
        RuleHandle(inner.rules.len() - 1)
    }

    /// How many requests `rule` has acted on.
    pub fn fired(&self, rule: RuleHandle) -> usize {
        self.state.lock().rules.get(rule.0).map_or(0, |r| r.fired)
    }

    /// Removes every rule; handles given out before no longer count.
    pub fn clear_rules(&self) {
        self.state.lock().rules.clear();
    }

    /// Adds `latency` before every forwarded call, like a distant region.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().latency = latency;
    }

    /// Requests for this operation, in all regions, faulted ones included.
    pub fn calls(&self, operation: &str) -> usize {
        let inner = self.state.lock();
        inner
            .counts
            .iter()
            .filter(|((_, op), _)| op == operation)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests for this operation in `region` ([`UNKNOWN`] for unsigned).
    pub fn calls_in(&self, region: &str, operation: &str) -> usize {
        let key = (region.to_owned(), operation.to_owned());
        self.state.lock().counts.get(&key).copied().unwrap_or(0)
    }

    /// Every request so far.
    pub fn total_calls(&self) -> usize {
        self.state.lock().counts.values().sum()
    }

    /// Forgets the counts and the recorded requests (rules stay).
    pub fn reset_counts(&self) {
        let mut inner = self.state.lock();
        inner.counts.clear();
        inner.recorded.clear();
    }

    /// Emulates cross-account access, which moto lacks: moto looks every
    /// secret and parameter up in the caller's own account, whatever account
    /// the ARN names. From now on a Secrets Manager or SSM request whose body
    /// names an ARN in `account` is sent to moto as if signed with
    /// `access_key_id` (an access key moto places in that account, e.g. from
    /// [`super::seed::account_credentials`]). The body, and so the ARN, is
    /// forwarded unchanged.
    pub fn map_account(&self, account: &str, access_key_id: &str) {
        self.state
            .lock()
            .accounts
            .insert(account.to_owned(), access_key_id.to_owned());
    }

    /// The last bodies sent for `operation`, oldest first.
    pub fn bodies(&self, operation: &str) -> Vec<String> {
        self.requests(operation)
            .into_iter()
            .map(|r| r.body)
            .collect()
    }

    /// The last requests sent for `operation`, oldest first.
    pub fn requests(&self, operation: &str) -> Vec<Recorded> {
        let inner = self.state.lock();
        inner
            .recorded
            .get(operation)
            .map(|requests| requests.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct State {
    upstream: String,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    rules: Vec<ActiveRule>,
    latency: Duration,
    counts: HashMap<(String, String), usize>,
    recorded: HashMap<String, VecDeque<Recorded>>,
    accounts: HashMap<String, String>,
}

struct ActiveRule {
    rule: Rule,
    fired: usize,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock must not hide the
        // proxy from the tests' own failure reports.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the proxy reads from a request to count, match and rewrite it.
struct RequestInfo {
    region: String,
    service: String,
    operation: String,
    access_key_id: Option<String>,
}

impl RequestInfo {
    fn parse(parts: &Parts, body: &[u8]) -> RequestInfo {
        let scope = credential_scope(&parts.headers);
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
        // awsJson services name the operation in X-Amz-Target
        // ("secretsmanager.GetSecretValue"); query services such as STS in
        // the Action form field, in the body or the query string.
        let operation = match target {
            Some(target) => target.rsplit('.').next().map(str::to_owned),
            None => form_field(&String::from_utf8_lossy(body), "Action")
                .or_else(|| form_field(parts.uri.query().unwrap_or(""), "Action")),
        };
        RequestInfo {
            region: scope.map_or(UNKNOWN, |s| s.region).to_owned(),
            service: scope.map_or(UNKNOWN, |s| s.service).to_owned(),
            operation: operation.unwrap_or_else(|| UNKNOWN.to_owned()),
            access_key_id: scope.map(|s| s.access_key_id.to_owned()),
        }
    }
}

#[derive(Clone, Copy)]
struct CredentialScope<'a> {
    access_key_id: &'a str,
    region: &'a str,
    service: &'a str,
}

/// `Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ssm/aws4_request, ...`
fn credential_scope(headers: &HeaderMap) -> Option<CredentialScope<'_>> {
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (_, credential) = authorization.split_once("Credential=")?;
    let credential = credential.split([',', ' ']).next()?;
    let mut fields = credential.split('/');
    let access_key_id = fields.next()?;
    let _date = fields.next()?;
    Some(CredentialScope {
        access_key_id,
        region: fields.next()?,
        service: fields.next()?,
    })
}

/// The raw value of `key` in an `a=1&b=2` form. Operation names need no
/// percent-decoding.
fn form_field(form: &str, key: &str) -> Option<String> {
    form.split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
}

/// The access key to use for the first ARN in `body` that names a Secrets
/// Manager or SSM resource in a mapped account. A request naming ARNs in
/// several mapped accounts acts in the first one's only.
fn mapped_access_key<'a>(body: &str, accounts: &'a HashMap<String, String>) -> Option<&'a String> {
    if accounts.is_empty() {
        return None;
    }
    body.match_indices("arn:").find_map(|(at, _)| {
        // arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE
        let mut fields = body[at..].splitn(6, ':').skip(2);
        let service = fields.next()?;
        let _region = fields.next()?;
        let account = fields.next()?;
        if service == "secretsmanager" || service == "ssm" {
            accounts.get(account)
        } else {
            None
        }
    })
}

/// `authorization` with the access key id of its credential replaced.
fn with_access_key(authorization: &str, access_key_id: &str) -> Option<String> {
    let start = authorization.find("Credential=")? + "Credential=".len();
    let end = start + authorization[start..].find('/')?;
    Some(format!(
        "{}{access_key_id}{}",
        &authorization[..start],
        &authorization[end..]
    ))
}

/// Decides a request's fate under the lock: count it, record it, pick the
/// rule and the access key rewrite. Everything slow happens after.
fn admit(state: &State, parts: &Parts, body: &[u8]) -> (Option<Action>, Duration, Option<String>) {
    let info = RequestInfo::parse(parts, body);
    let body_text = String::from_utf8_lossy(body);
    let mut inner = state.lock();

    *inner
        .counts
        .entry((info.region.clone(), info.operation.clone()))
        .or_default() += 1;

    let rewrite = if info.access_key_id.is_some() {
        mapped_access_key(&body_text, &inner.accounts).cloned()
    } else {
        None
    };

    let action = inner
        .rules
        .iter_mut()
        .find(|r| r.rule.matches(&info) && r.rule.times.is_none_or(|n| r.fired < n))
        .map(|r| {
            r.fired += 1;
            r.rule.action.clone()
        });

    let mut recorded_body = body_text.into_owned();
    if recorded_body.len() > MAX_RECORDED_BODY {
        let mut cut = MAX_RECORDED_BODY;
        while !recorded_body.is_char_boundary(cut) {
            cut -= 1;
        }
        recorded_body.truncate(cut);
    }
    let recorded = Recorded {
        region: info.region,
        service: info.service,
        operation: info.operation.clone(),
        access_key_id: info.access_key_id,
        rewritten_to: rewrite.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: recorded_body,
    };
    let log = inner.recorded.entry(info.operation).or_default();
    if log.len() == MAX_RECORDED {
        log.pop_front();
    }
    log.push_back(recorded);

    (action, inner.latency, rewrite)
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    serve_http1(listener, move || {
        let state = state.clone();
        hyper::service::service_fn(move |request| handle(state.clone(), request))
    })
    .await
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (mut parts, body) = request.into_parts();
    let json = parts.headers.contains_key("x-amz-target");
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return Ok(aws_error(
                json,
                413,
                "RequestEntityTooLarge",
                "request body over the test proxy's limit",
            ));
        }
    };

    let (action, latency, rewrite) = admit(&state, &parts, &body);
    match action {
        Some(Action::Respond {
            status,
            error_type,
            message,
        }) => return Ok(aws_error(json, status, &error_type, &message)),
        Some(Action::Hang) => std::future::pending::<()>().await,
        Some(Action::Disconnect) => return Err(Dropped),
        Some(Action::Answer(f)) => {
            let (status, content_type, text) = (f.0)(&parts, &String::from_utf8_lossy(&body));
            let mut response = Response::new(Full::new(Bytes::from(text)));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if let Ok(value) = HeaderValue::from_str(&content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            return Ok(response);
        }
        Some(Action::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Action::Hold(release)) => {
            if let Ok(permit) = release.acquire().await {
                permit.forget();
            }
        }
        None => {}
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    if let Some(access_key_id) = rewrite {
        let rewritten = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|auth| with_access_key(auth, &access_key_id))
            .and_then(|auth| HeaderValue::from_str(&auth).ok());
        if let Some(authorization) = rewritten {
            parts.headers.insert(header::AUTHORIZATION, authorization);
        }
    }

    Ok(forward(&state.upstream, parts, body).await)
}

async fn forward(upstream: &str, mut parts: Parts, body: Bytes) -> Response<Full<Bytes>> {
    let json = parts.headers.contains_key("x-amz-target");
    // Keep the client's Host: it is covered by the signature.
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);

    let request = Request::from_parts(parts, Full::new(body));
    match super::http::send(upstream, request, UPSTREAM_TIMEOUT, MAX_RESPONSE_BODY).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Full::new(body))
        }
        Err(e) => aws_error(
            json,
            502,
            "BadGateway",
            &format!("test proxy: moto failed: {e}"),
        ),
    }
}

/// Headers that describe one hop's connection, plus Content-Length, which
/// hyper recomputes from the forwarded body.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    const HOP: [HeaderName; 7] = [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::CONTENT_LENGTH,
    ];
    for name in HOP {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// An AWS error as the SDK expects it: awsJson's `__type` body and
/// `x-amzn-ErrorType` header, or the query protocol's XML `ErrorResponse`.
fn aws_error(json: bool, status: u16, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (content_type, body) = if json {
        let body = serde_json::json!({ "__type": error_type, "message": message }).to_string();
        ("application/x-amz-json-1.1", body)
    } else {
        let fault = if status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        let body = format!(
            "<ErrorResponse><Error><Type>{fault}</Type><Code>{}</Code><Message>{}</Message>\
             </Error><RequestId>test-proxy</RequestId></ErrorResponse>",
            xml_escape(error_type),
            xml_escape(message)
        );
        ("text/xml", body)
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("x-amzn-requestid", HeaderValue::from_static("test-proxy"));
    if let Ok(value) = HeaderValue::from_str(error_type) {
        headers.insert("x-amzn-errortype", value);
    }
    response
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
