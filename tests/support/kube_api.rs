//! A stub Kubernetes API server: serves ServiceAccounts, Pods and Nodes as
//! JSON from what the test adds, counts reads per kind, and can fail (503,
//! 403, hang, drop) on demand. [`KubeApiStub::write_kubeconfig`] writes a
//! kubeconfig pointing at it (plain http, a dummy bearer token).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use hyper::body::Bytes;
use hyper::http::request::Parts;
use serde_json::{Value, json};

use super::stub_server::{Handler, Reply, StubServer};

/// How the stub answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubeMode {
    /// From its objects.
    Normal,
    /// 503 to everything.
    Unavailable,
    /// 403 to everything (missing RBAC).
    Forbidden,
    /// Never answers.
    Hang,
}

#[derive(Default)]
struct State {
    service_accounts: HashMap<(String, String), Value>,
    pods: HashMap<(String, String), Value>,
    nodes: HashMap<String, Value>,
    calls: HashMap<String, usize>,
    mode: Option<KubeMode>,
}

pub struct KubeApiStub {
    server: StubServer,
    state: Arc<Mutex<State>>,
}

impl KubeApiStub {
    pub async fn start() -> KubeApiStub {
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        let handler: Handler = Arc::new(move |parts, body| {
            let s = s.clone();
            Box::pin(async move { answer(&s, &parts, &body) })
        });
        KubeApiStub {
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

    /// Adds (or replaces) ServiceAccount `namespace/name`, annotated with
    /// `role_arn` when given.
    pub fn add_service_account(&self, namespace: &str, name: &str, role_arn: Option<&str>) {
        let mut metadata =
            json!({"name": name, "namespace": namespace, "uid": format!("sa-{namespace}-{name}")});
        if let Some(arn) = role_arn {
            metadata["annotations"] = json!({"eks.amazonaws.com/role-arn": arn});
        }
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata});
        self.lock()
            .service_accounts
            .insert((namespace.to_owned(), name.to_owned()), sa);
    }

    /// Adds pod `namespace/name` scheduled on `node` (unscheduled if `None`).
    pub fn add_pod(&self, namespace: &str, name: &str, node: Option<&str>) {
        let mut spec = json!({"containers": [{"name": "app", "image": "app"}]});
        if let Some(node) = node {
            spec["nodeName"] = json!(node);
        }
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("pod-{namespace}-{name}")},
            "spec": spec,
        });
        self.lock()
            .pods
            .insert((namespace.to_owned(), name.to_owned()), pod);
    }

    /// Adds node `name` with the region label when given.
    pub fn add_node(&self, name: &str, region: Option<&str>) {
        let mut labels = json!({"kubernetes.io/hostname": name});
        if let Some(region) = region {
            labels["topology.kubernetes.io/region"] = json!(region);
        }
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels},
        });
        self.lock().nodes.insert(name.to_owned(), node);
    }

    pub fn set_mode(&self, mode: KubeMode) {
        self.lock().mode = Some(mode);
    }

    /// Reads of `kind` (`serviceaccounts`, `pods`, `nodes`) so far.
    pub fn calls(&self, kind: &str) -> usize {
        self.lock().calls.get(kind).copied().unwrap_or(0)
    }

    /// Writes a kubeconfig whose current context is this server.
    pub fn write_kubeconfig(&self, path: &Path) {
        write_kubeconfig(path, &self.endpoint());
    }
}

/// A kubeconfig for an API server at `server` (http), with a dummy token.
pub fn write_kubeconfig(path: &Path, server: &str) {
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: stub\n  cluster:\n    server: {server}\ncontexts:\n- name: stub\n  context:\n    cluster: stub\n    user: stub\ncurrent-context: stub\nusers:\n- name: stub\n  user:\n    token: stub-kube-api-token\n"
    );
    std::fs::write(path, config).expect("write the kubeconfig");
}

fn status(code: u16, reason: &str, message: &str) -> Reply {
    Reply::json(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}

fn answer(state: &Mutex<State>, parts: &Parts, _body: &Bytes) -> Reply {
    let path = parts.uri.path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let kind = match segments.as_slice() {
        ["api", "v1", "namespaces", _, kind, _] => *kind,
        ["api", "v1", "nodes", _] => "nodes",
        _ => "other",
    };
    *s.calls.entry(kind.to_owned()).or_default() += 1;
    match s.mode.clone().unwrap_or(KubeMode::Normal) {
        KubeMode::Normal => {}
        KubeMode::Unavailable => {
            return status(503, "ServiceUnavailable", "the stub API server is down");
        }
        KubeMode::Forbidden => {
            return status(
                403,
                "Forbidden",
                "User \"system:serviceaccount:kube-system:ascp\" cannot get resource",
            );
        }
        KubeMode::Hang => return Reply::Hang,
    }
    if parts.method != hyper::Method::GET {
        return status(405, "MethodNotAllowed", "the stub serves GET only");
    }
    let found = match segments.as_slice() {
        ["api", "v1", "namespaces", ns, "serviceaccounts", name] => s
            .service_accounts
            .get(&((*ns).to_owned(), (*name).to_owned()))
            .cloned()
            .ok_or_else(|| format!("serviceaccounts \"{name}\" not found")),
        ["api", "v1", "namespaces", ns, "pods", name] => s
            .pods
            .get(&((*ns).to_owned(), (*name).to_owned()))
            .cloned()
            .ok_or_else(|| format!("pods \"{name}\" not found")),
        ["api", "v1", "nodes", name] => s
            .nodes
            .get(*name)
            .cloned()
            .ok_or_else(|| format!("nodes \"{name}\" not found")),
        _ => Err(format!("the stub does not serve {path}")),
    };
    match found {
        Ok(object) => Reply::json(200, &object),
        Err(message) => status(404, "NotFound", &message),
    }
}
