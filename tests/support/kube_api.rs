//! A stub Kubernetes API server: serves ServiceAccounts, Pods and Nodes as
//! JSON from what the test adds, counts reads per kind, and can fail (503,
//! 403, hang, drop) on demand. Any other object (a CSIDriver, DaemonSets,
//! SecretProviderClasses, a discovery document) is served at the path the
//! test adds it under ([`KubeApiStub::add_object`]), and collections of
//! them are listed, across namespaces too, filtered by `labelSelector`. [`KubeApiStub::write_kubeconfig`] writes a
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
    /// Other objects by their API path.
    objects: std::collections::BTreeMap<String, Value>,
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

    /// Serves `object` at `path`, e.g.
    /// `/apis/apps/v1/namespaces/kube-system/daemonsets/csi` or
    /// `/.well-known/openid-configuration`; it is also an item of the lists
    /// of its collection (`.../daemonsets`) and, for a namespaced object, of
    /// the list across namespaces (`/apis/apps/v1/daemonsets`).
    pub fn add_object(&self, path: &str, object: Value) {
        self.lock().objects.insert(path.to_owned(), object);
    }

    /// Stops serving the object at `path`.
    pub fn remove_object(&self, path: &str) {
        self.lock().objects.remove(path);
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
    if let Some(object) = s.objects.get(&path) {
        return Reply::json(200, object);
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
        _ => match list(&s.objects, &path, parts.uri.query().unwrap_or("")) {
            Some(items) => return Reply::json(200, &items),
            None => Err(format!("the stub does not serve {path}")),
        },
    };
    match found {
        Ok(object) => Reply::json(200, &object),
        Err(message) => status(404, "NotFound", &message),
    }
}

/// The list at `collection` of the objects added under it (or, for a
/// collection without a namespace, under any namespace's), filtered by the
/// query's `labelSelector` (`k=v,k2=v2`); `None` when nothing was ever
/// added under such a collection.
fn list(
    objects: &std::collections::BTreeMap<String, Value>,
    collection: &str,
    query: &str,
) -> Option<Value> {
    let selector: Vec<(String, String)> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == "labelSelector")
        .flat_map(|(_, v)| {
            percent_decode(v)
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    // /apis/G/V/PLURAL lists /apis/G/V/namespaces/*/PLURAL/* too.
    let (prefix, plural) = collection.rsplit_once('/')?;
    let mut known = false;
    let items: Vec<Value> = objects
        .iter()
        .filter(|(path, _)| {
            let Some((coll, _)) = path.rsplit_once('/') else {
                return false;
            };
            coll == collection
                || coll
                    .strip_prefix(&format!("{prefix}/namespaces/"))
                    .and_then(|rest| rest.split_once('/'))
                    .is_some_and(|(_, p)| p == plural)
        })
        .inspect(|_| known = true)
        .filter(|(_, object)| {
            selector
                .iter()
                .all(|(k, v)| object["metadata"]["labels"][k].as_str() == Some(v))
        })
        .map(|(_, object)| object.clone())
        .collect();
    known.then(|| json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}))
}

/// `%XX` escapes decoded (label selectors need only these).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
