//! A stub EKS Auth endpoint: `POST /clusters/{name}/assume-role-for-pod-identity`
//! with `{"token": ...}` answers credentials for a known cluster (restJson,
//! as the SDK expects), or an AWS error the test scripted. It records the
//! cluster names and tokens it was sent, and counts calls.
//!
//! Point the SDK at it with `AWS_ENDPOINT_URL_EKS_AUTH`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::stub_server::{Handler, Reply, StubServer};

/// The access key id of the credentials the stub hands out.
pub const EKS_AUTH_ACCESS_KEY_ID: &str = "ASIAEKSAUTHSTUB";
/// The role the stub says it assumed.
pub const EKS_AUTH_ROLE: &str = "arn:aws:sts::123456789012:assumed-role/eks-pod-role/eks-stub";

#[derive(Clone, Debug)]
pub enum EksAuthBehavior {
    Credentials,
    /// An AWS error: status and error type (e.g. 400 `InvalidTokenException`).
    Error(u16, String),
}

struct State {
    cluster: String,
    next: VecDeque<EksAuthBehavior>,
    calls: usize,
    requests: Vec<(String, String)>,
}

pub struct EksAuthStub {
    server: StubServer,
    state: Arc<Mutex<State>>,
}

impl EksAuthStub {
    /// Serves cluster `cluster`; other names get ResourceNotFoundException.
    pub async fn start(cluster: &str) -> EksAuthStub {
        let state = Arc::new(Mutex::new(State {
            cluster: cluster.to_owned(),
            next: VecDeque::new(),
            calls: 0,
            requests: Vec::new(),
        }));
        let s = state.clone();
        let handler: Handler = Arc::new(move |parts, body| {
            let s = s.clone();
            Box::pin(async move {
                let path = parts.uri.path().to_owned();
                let cluster = path
                    .strip_prefix("/clusters/")
                    .and_then(|p| p.strip_suffix("/assume-role-for-pod-identity"))
                    .unwrap_or_default()
                    .to_owned();
                let token = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("token").and_then(|t| t.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                let (known, behavior) = {
                    let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
                    s.calls += 1;
                    s.requests.push((cluster.clone(), token.clone()));
                    (
                        s.cluster == cluster,
                        s.next.pop_front().unwrap_or(EksAuthBehavior::Credentials),
                    )
                };
                if parts.method != hyper::Method::POST || cluster.is_empty() {
                    return error(404, "ResourceNotFoundException", "no such operation");
                }
                if !known {
                    return error(
                        404,
                        "ResourceNotFoundException",
                        &format!("No cluster found for name: {cluster}."),
                    );
                }
                match behavior {
                    EksAuthBehavior::Error(status, kind) => {
                        error(status, &kind, "injected by the EKS Auth stub")
                    }
                    EksAuthBehavior::Credentials if token.is_empty() => {
                        error(400, "InvalidTokenException", "token is empty")
                    }
                    EksAuthBehavior::Credentials => credentials(),
                }
            })
        });
        EksAuthStub {
            server: StubServer::start("127.0.0.1:0", handler).await,
            state,
        }
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers the next request with `behavior`, once.
    pub fn push(&self, behavior: EksAuthBehavior) {
        self.lock().next.push_back(behavior);
    }

    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    /// (cluster name, token) of each request, in order.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.lock().requests.clone()
    }
}

fn error(status: u16, kind: &str, message: &str) -> Reply {
    Reply::with_headers(
        status,
        "application/json",
        &json!({"message": message}).to_string(),
        &[("x-amzn-errortype", kind)],
    )
}

fn credentials() -> Reply {
    let expiration = (SystemTime::now() + Duration::from_secs(6 * 3600))
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    Reply::json(
        200,
        &json!({
            "subject": {"namespace": "stub", "serviceAccount": "stub"},
            "audience": "pods.eks.amazonaws.com",
            "podIdentityAssociation": {
                "associationArn": "arn:aws:eks:us-east-1:123456789012:podidentityassociation/stub/a-stub",
                "associationId": "a-stub"
            },
            "assumedRoleUser": {"arn": EKS_AUTH_ROLE, "assumeRoleId": "AROASTUB:eks-stub"},
            "credentials": {
                "sessionToken": "stub-eks-auth-session-token",
                "secretAccessKey": "stub-eks-auth-secret",
                "accessKeyId": EKS_AUTH_ACCESS_KEY_ID,
                "expiration": expiration
            }
        }),
    )
}
