//! A stub EKS Pod Identity Agent: `GET /v1/credentials` with
//! `Authorization: <token>` answers credentials for any non-empty token, or
//! what the test scripted (an error status with a body, garbage, a hang, a
//! dropped connection). It records the tokens it was sent and counts calls.
//!
//! The credentials it hands out carry an access key id moto places in its
//! default account, so stores reached with them see the default account's
//! secrets.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::stub_server::{Handler, Reply, StubServer};

/// The access key id of the credentials the stub hands out.
pub const AGENT_ACCESS_KEY_ID: &str = "ASIAPODIDENTITYSTUB";

/// One answer.
#[derive(Clone, Debug)]
pub enum AgentBehavior {
    /// Credentials valid for `valid_for`.
    Credentials { valid_for: Duration },
    /// An error status and body.
    Status(u16, String),
    /// 200 with something that is not credentials.
    Garbage,
    /// Never answer.
    Hang,
    /// Close the connection.
    Disconnect,
}

impl AgentBehavior {
    pub fn ok() -> AgentBehavior {
        AgentBehavior::Credentials {
            valid_for: Duration::from_secs(6 * 3600),
        }
    }
}

struct State {
    default: AgentBehavior,
    next: VecDeque<AgentBehavior>,
    calls: usize,
    tokens: Vec<String>,
}

pub struct AgentStub {
    server: StubServer,
    state: Arc<Mutex<State>>,
}

impl AgentStub {
    /// Starts an agent on `bind` (`127.0.0.1:0` or `[::1]:0`).
    pub async fn start(bind: &str) -> AgentStub {
        let state = Arc::new(Mutex::new(State {
            default: AgentBehavior::ok(),
            next: VecDeque::new(),
            calls: 0,
            tokens: Vec::new(),
        }));
        let s = state.clone();
        let handler: Handler = Arc::new(move |parts, _body| {
            let s = s.clone();
            Box::pin(async move {
                let token = parts
                    .headers
                    .get(hyper::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let behavior = {
                    let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
                    s.calls += 1;
                    s.tokens.push(token.clone());
                    s.next.pop_front().unwrap_or_else(|| s.default.clone())
                };
                if parts.uri.path() != "/v1/credentials" {
                    return Reply::json(404, &json!({"message": "not found"}));
                }
                answer(behavior, &token)
            })
        });
        AgentStub {
            server: StubServer::start(bind, handler).await,
            state,
        }
    }

    /// `http://HOST:PORT/v1/credentials`
    pub fn url(&self) -> String {
        format!("{}/v1/credentials", self.server.endpoint())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What every request gets from now on (after the scripted ones).
    pub fn set_behavior(&self, behavior: AgentBehavior) {
        self.lock().default = behavior;
    }

    /// Answers the next request with `behavior`, once (queued in order).
    pub fn push(&self, behavior: AgentBehavior) {
        self.lock().next.push_back(behavior);
    }

    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    /// The Authorization headers received, in order.
    pub fn tokens(&self) -> Vec<String> {
        self.lock().tokens.clone()
    }

    pub fn reset_counts(&self) {
        let mut s = self.lock();
        s.calls = 0;
        s.tokens.clear();
    }
}

fn answer(behavior: AgentBehavior, token: &str) -> Reply {
    match behavior {
        AgentBehavior::Credentials { valid_for } => {
            if token.is_empty() {
                return Reply::json(
                    400,
                    &json!({"message": "Service account token cannot be empty"}),
                );
            }
            let expiration =
                humantime::format_rfc3339_seconds(SystemTime::now() + valid_for).to_string();
            Reply::json(
                200,
                &json!({
                    "AccessKeyId": AGENT_ACCESS_KEY_ID,
                    "SecretAccessKey": "stub-agent-secret-access-key",
                    "Token": "stub-agent-session-token",
                    "AccountId": "123456789012",
                    "Expiration": expiration,
                }),
            )
        }
        AgentBehavior::Status(status, body) => {
            Reply::with_headers(status, "application/json", &body, &[])
        }
        AgentBehavior::Garbage => Reply::with_headers(200, "text/html", "<html>oops</html>", &[]),
        AgentBehavior::Hang => Reply::Hang,
        AgentBehavior::Disconnect => Reply::Disconnect,
    }
}
