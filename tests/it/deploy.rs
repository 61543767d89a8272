//! The install artefacts: the Helm chart (`deploy/helm/ascp`), the kubectl
//! installer (`deploy/kubernetes/ascp-installer.yaml`), the examples
//! (`examples/`) and the container build (`Dockerfile`).
//!
//! No Helm, Docker or cluster exists where these tests run, so:
//! - every manifest is parsed into the typed Kubernetes objects of
//!   `k8s-openapi` and serialized back; a field the type does not know is
//!   lost on the way and reported (the types do not reject unknown fields by
//!   themselves). SecretProviderClass, a CRD, has its own struct with
//!   `deny_unknown_fields`.
//! - every SecretProviderClass passes `ascp validate`.
//! - the chart is rendered with `gtmpl` (Go's text/template for Rust) and the
//!   six Helm functions the chart may use (`include`, `toYaml`, `indent`,
//!   `nindent`, `quote`, `default`), registered below; a template calling any
//!   other function fails to parse. Values are merged as Helm merges them.
//! - the Dockerfile's build is checked by building its binary the way it
//!   does (an ignored test: a release build takes minutes).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use gtmpl::{Context, Func, FuncError, Template, Value as G};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value as J, json};

// ---------------------------------------------------------------------------
// Files and YAML

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    repo().join("deploy/helm/ascp")
}

fn installer_path() -> PathBuf {
    repo().join("deploy/kubernetes/ascp-installer.yaml")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// YAML files directly in `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
}

/// The documents of a YAML stream, skipping empty and comment-only ones.
fn yaml_docs(text: &str, origin: &str) -> Vec<J> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut flush = |doc: &mut String| {
        let meaningful = doc
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if meaningful {
            let value: J = serde_saphyr::from_str(doc)
                .unwrap_or_else(|e| panic!("{origin}: not YAML: {e}\n{doc}"));
            docs.push(value);
        }
        doc.clear();
    };
    for line in text.lines() {
        if line.trim_end() == "---" {
            flush(&mut current);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut current);
    docs
}

fn yaml_file(path: &Path) -> J {
    let mut docs = yaml_docs(&read(path), &path.display().to_string());
    assert_eq!(docs.len(), 1, "{}: one document expected", path.display());
    docs.remove(0)
}

// ---------------------------------------------------------------------------
// Typed objects

/// SecretProviderClass (`secrets-store.csi.x-k8s.io/v1`), as the driver's CRD
/// defines it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SecretProviderClass {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: SpcSpec,
}

/// The fields of a Prometheus Operator ServiceMonitor
/// (`monitoring.coreos.com/v1`) that the chart sets.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: ServiceMonitorSpec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorSpec {
    selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    namespace_selector: NamespaceSelector,
    endpoints: Vec<MonitorEndpoint>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NamespaceSelector {
    match_names: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MonitorEndpoint {
    port: String,
    path: String,
    interval: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SpcSpec {
    provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameters: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_objects: Option<Vec<SecretObject>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SecretObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_name: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Vec<SecretObjectData>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SecretObjectData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    object_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

/// Where `input` and `output` differ: fields the type dropped (unknown or
/// misplaced), fields it added, values it changed.
fn differences(input: &J, output: &J, path: &str, out: &mut Vec<String>) {
    match (input, output) {
        (J::Object(a), J::Object(b)) => {
            for (k, v) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(w) => differences(v, w, &p, out),
                    None => out.push(format!("{p}: unknown field (dropped by the type)")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k}: added by the type"));
            }
        }
        (J::Array(a), J::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                differences(v, w, &format!("{path}[{i}]"), out);
            }
        }
        _ if input == output => {}
        _ => out.push(format!("{path}: {input} became {output}")),
    }
}

/// Deserializes `doc` as `T` and serializes it back; panics on an error or
/// any difference. Returns the typed value and its canonical JSON.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &J, origin: &str) -> (T, J) {
    let typed: T = serde_path_to_error::deserialize(doc.clone())
        .unwrap_or_else(|e| panic!("{origin}: {}: {}", e.path(), e.inner()));
    let back = serde_json::to_value(&typed).unwrap();
    let mut diffs = Vec::new();
    differences(doc, &back, "", &mut diffs);
    assert!(
        diffs.is_empty(),
        "{origin}: not a faithful {}:\n  {}",
        std::any::type_name::<T>(),
        diffs.join("\n  ")
    );
    (typed, back)
}

/// Parses one manifest into its typed object; returns `(kind, name, canonical JSON)`.
fn typed(doc: &J, origin: &str) -> (String, String, J) {
    use k8s_openapi::api::{apps, core, rbac, storage};
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let canonical = match (api, kind) {
        ("v1", "ServiceAccount") => round_trip::<core::v1::ServiceAccount>(doc, origin).1,
        ("v1", "Service") => round_trip::<core::v1::Service>(doc, origin).1,
        ("v1", "ConfigMap") => round_trip::<core::v1::ConfigMap>(doc, origin).1,
        ("v1", "Namespace") => round_trip::<core::v1::Namespace>(doc, origin).1,
        ("apps/v1", "DaemonSet") => round_trip::<apps::v1::DaemonSet>(doc, origin).1,
        ("apps/v1", "Deployment") => round_trip::<apps::v1::Deployment>(doc, origin).1,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            round_trip::<rbac::v1::ClusterRole>(doc, origin).1
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<rbac::v1::ClusterRoleBinding>(doc, origin).1
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<rbac::v1::Role>(doc, origin).1,
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            round_trip::<rbac::v1::RoleBinding>(doc, origin).1
        }
        ("storage.k8s.io/v1", "CSIDriver") => round_trip::<storage::v1::CSIDriver>(doc, origin).1,
        ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass") => {
            round_trip::<SecretProviderClass>(doc, origin).1
        }
        ("monitoring.coreos.com/v1", "ServiceMonitor") => {
            round_trip::<ServiceMonitor>(doc, origin).1
        }
        _ => panic!("{origin}: no typed check for apiVersion {api:?} kind {kind:?}"),
    };
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    assert!(!name.is_empty(), "{origin}: {kind} without metadata.name");
    (kind.to_owned(), name.to_owned(), canonical)
}

fn find<'a>(objects: &'a [(String, String, J)], kind: &str) -> Vec<&'a J> {
    objects
        .iter()
        .filter(|(k, _, _)| k == kind)
        .map(|(_, _, v)| v)
        .collect()
}

fn one<'a>(objects: &'a [(String, String, J)], kind: &str) -> &'a J {
    let found = find(objects, kind);
    assert_eq!(found.len(), 1, "one {kind} expected");
    found[0]
}

// ---------------------------------------------------------------------------
// The chart renderer: gtmpl plus Helm's functions

thread_local! {
    /// The chart's `_*.tpl` files, for `include`.
    static DEFINES: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// The Helm functions the chart may use. Go's own (eq, not, and, or, index…)
/// come with gtmpl.
const HELM_FUNCS: &[(&str, Func)] = &[
    ("include", helm_include),
    ("toYaml", helm_to_yaml),
    ("indent", helm_indent),
    ("nindent", helm_nindent),
    ("quote", helm_quote),
    ("default", helm_default),
];

fn err(msg: impl Into<String>) -> FuncError {
    FuncError::Generic(msg.into())
}

fn template_with_defines(name: &str) -> Result<Template, String> {
    let mut t = Template::with_name(name);
    t.add_funcs(HELM_FUNCS);
    DEFINES.with(|d| {
        for (file, src) in d.borrow().iter() {
            t.add_template(file.clone(), src.clone())
                .map_err(|e| format!("{file}: {e}"))?;
        }
        Ok::<_, String>(())
    })?;
    Ok(t)
}

/// `include NAME DATA`: the named template's output, as a string.
fn helm_include(args: &[G]) -> Result<G, FuncError> {
    let [G::String(name), data] = args else {
        return Err(err(format!("include NAME DATA, got {args:?}")));
    };
    let mut t = template_with_defines("include").map_err(err)?;
    t.parse(format!(
        "{{{{ template {} . }}}}",
        serde_json::to_string(name).unwrap()
    ))
    .map_err(|e| err(e.to_string()))?;
    let out = t
        .render(&Context::from(data.clone()))
        .map_err(|e| err(format!("include {name}: {e}")))?;
    Ok(G::String(out))
}

/// `toYaml V`: block-style YAML without the final newline, as Helm's.
fn helm_to_yaml(args: &[G]) -> Result<G, FuncError> {
    let [v] = args else {
        return Err(FuncError::ExactlyXArgs("toYaml".into(), 1));
    };
    Ok(G::String(to_yaml(&from_g(v))))
}

fn indent_by(args: &[G], name: &str) -> Result<String, FuncError> {
    let [G::Number(n), s] = args else {
        return Err(err(format!("{name} N STRING, got {args:?}")));
    };
    let n = n
        .as_u64()
        .ok_or_else(|| err(format!("{name}: bad width")))? as usize;
    let s = match s {
        G::String(s) => s.clone(),
        other => other.to_string(),
    };
    let pad = " ".repeat(n);
    Ok(format!("{pad}{}", s.replace('\n', &format!("\n{pad}"))))
}

fn helm_indent(args: &[G]) -> Result<G, FuncError> {
    indent_by(args, "indent").map(G::String)
}

fn helm_nindent(args: &[G]) -> Result<G, FuncError> {
    indent_by(args, "nindent").map(|s| G::String(format!("\n{s}")))
}

/// `quote V...`: each non-nil argument as a double-quoted string, joined by spaces.
fn helm_quote(args: &[G]) -> Result<G, FuncError> {
    let quoted: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a, G::Nil | G::NoValue))
        .map(|a| {
            let s = match a {
                G::String(s) => s.clone(),
                other => other.to_string(),
            };
            serde_json::to_string(&s).unwrap()
        })
        .collect();
    Ok(G::String(quoted.join(" ")))
}

/// Helm's notion of empty, for `default`.
fn is_empty(v: &G) -> bool {
    match v {
        G::NoValue | G::Nil => true,
        G::Bool(b) => !b,
        G::String(s) => s.is_empty(),
        G::Number(n) => n.as_f64() == Some(0.0),
        G::Array(a) => a.is_empty(),
        G::Map(m) | G::Object(m) => m.is_empty(),
        G::Function(_) => false,
    }
}

/// `default DEFAULT GIVEN` (`GIVEN | default DEFAULT`).
fn helm_default(args: &[G]) -> Result<G, FuncError> {
    match args {
        [d] => Ok(d.clone()),
        [d, given] => Ok(if is_empty(given) { d } else { given }.clone()),
        _ => Err(err(format!("default DEFAULT GIVEN, got {args:?}"))),
    }
}

fn to_g(j: &J) -> G {
    match j {
        J::Null => G::Nil,
        J::Bool(b) => G::Bool(*b),
        J::Number(n) => {
            if let Some(u) = n.as_u64() {
                G::from(u)
            } else if let Some(i) = n.as_i64() {
                G::from(i)
            } else {
                G::from(n.as_f64().unwrap())
            }
        }
        J::String(s) => G::String(s.clone()),
        J::Array(a) => G::Array(a.iter().map(to_g).collect()),
        J::Object(o) => G::Map(o.iter().map(|(k, v)| (k.clone(), to_g(v))).collect()),
    }
}

fn from_g(g: &G) -> J {
    match g {
        G::NoValue | G::Nil | G::Function(_) => J::Null,
        G::Bool(b) => J::Bool(*b),
        G::String(s) => J::String(s.clone()),
        G::Number(n) => {
            if let Some(u) = n.as_u64() {
                json!(u)
            } else if let Some(i) = n.as_i64() {
                json!(i)
            } else {
                json!(n.as_f64())
            }
        }
        G::Array(a) => J::Array(a.iter().map(from_g).collect()),
        G::Map(m) | G::Object(m) => {
            J::Object(m.iter().map(|(k, v)| (k.clone(), from_g(v))).collect())
        }
    }
}

/// Block-style YAML; keys sorted (as Helm's toYaml), strings double-quoted.
fn to_yaml(v: &J) -> String {
    fn scalar(v: &J) -> String {
        match v {
            J::String(s) => serde_json::to_string(s).unwrap(),
            J::Object(o) if o.is_empty() => "{}".into(),
            J::Array(a) if a.is_empty() => "[]".into(),
            other => other.to_string(),
        }
    }
    fn nested(v: &J) -> bool {
        matches!(v, J::Object(o) if !o.is_empty()) || matches!(v, J::Array(a) if !a.is_empty())
    }
    fn lines(v: &J) -> Vec<String> {
        match v {
            J::Object(o) if !o.is_empty() => {
                let sorted: BTreeMap<&String, &J> = o.iter().collect();
                let mut out = Vec::new();
                for (k, v) in sorted {
                    let key = serde_json::to_string(k).unwrap();
                    if nested(v) {
                        out.push(format!("{key}:"));
                        out.extend(lines(v).into_iter().map(|l| format!("  {l}")));
                    } else {
                        out.push(format!("{key}: {}", scalar(v)));
                    }
                }
                out
            }
            J::Array(a) if !a.is_empty() => {
                let mut out = Vec::new();
                for item in a {
                    let item_lines = lines(item);
                    for (i, l) in item_lines.into_iter().enumerate() {
                        out.push(if i == 0 {
                            format!("- {l}")
                        } else {
                            format!("  {l}")
                        });
                    }
                }
                out
            }
            other => vec![scalar(other)],
        }
    }
    lines(v).join("\n")
}

/// Helm's value merge: maps merge key by key, anything else replaces, and a
/// null removes the default.
fn merge_values(base: &mut J, over: &J) {
    match (base, over) {
        (J::Object(b), J::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                } else if let Some(existing) =
                    b.get_mut(k).filter(|e| e.is_object() && v.is_object())
                {
                    merge_values(existing, v);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The merged values: the chart's values.yaml, then `values_file`.
fn chart_values(values_file: Option<&Path>) -> J {
    let mut values = yaml_file(&chart_dir().join("values.yaml"));
    if let Some(f) = values_file {
        merge_values(&mut values, &yaml_file(f));
    }
    values
}

/// Renders every template of the chart as `helm template --namespace
/// NAMESPACE RELEASE deploy/helm/ascp [-f VALUES]` would (without the
/// dependency); returns file name → output.
fn render_chart(
    values_file: Option<&Path>,
    release: &str,
    namespace: &str,
) -> BTreeMap<String, String> {
    let chart = yaml_file(&chart_dir().join("Chart.yaml"));
    let context = json!({
        "Values": chart_values(values_file),
        "Release": {
            "Name": release,
            "Namespace": namespace,
            "Service": "Helm",
            "IsInstall": true,
            "IsUpgrade": false,
            "Revision": 1,
        },
        "Chart": {
            "Name": chart["name"],
            "Version": chart["version"],
            "AppVersion": chart["appVersion"],
            "Description": chart["description"],
        },
    });
    let dir = chart_dir().join("templates");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let name_of = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    let defines: Vec<(String, String)> = entries
        .iter()
        .filter(|p| name_of(p).ends_with(".tpl"))
        .map(|p| (name_of(p), read(p)))
        .collect();
    DEFINES.with(|d| *d.borrow_mut() = defines);
    let mut out = BTreeMap::new();
    for path in entries.iter().filter(|p| !name_of(p).starts_with('_')) {
        let name = name_of(path);
        let mut t = template_with_defines(&name).unwrap();
        t.parse(read(path))
            .unwrap_or_else(|e| panic!("templates/{name}: {e}"));
        let rendered = t
            .render(&Context::from(to_g(&context)))
            .unwrap_or_else(|e| panic!("templates/{name}: {e}"));
        // Helm prints a missing value as empty.
        out.insert(name, rendered.replace("<no value>", ""));
    }
    out
}

/// The rendered manifests (NOTES.txt aside), typed.
fn render_objects(
    values_file: Option<&Path>,
    release: &str,
    namespace: &str,
) -> Vec<(String, String, J)> {
    let mut objects = Vec::new();
    for (file, text) in render_chart(values_file, release, namespace) {
        if !file.ends_with(".yaml") {
            continue;
        }
        let origin = format!("rendered templates/{file}");
        for doc in yaml_docs(&text, &origin) {
            objects.push(typed(&doc, &origin));
        }
    }
    objects
}

fn ci_values(name: &str) -> PathBuf {
    chart_dir().join("ci").join(name)
}

fn daemonset_container(objects: &[(String, String, J)]) -> J {
    let ds = one(objects, "DaemonSet");
    let containers = ds["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    containers[0].clone()
}

fn args_of(container: &J) -> Vec<String> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn env_of(container: &J) -> BTreeMap<String, String> {
    container["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap().to_owned(),
                        e["value"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rule_resources(objects: &[(String, String, J)]) -> BTreeSet<String> {
    let role = one(objects, "ClusterRole");
    let mut resources = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        assert_eq!(rule["verbs"], json!(["get"]), "only get: {rule}");
        assert_eq!(rule["apiGroups"], json!([""]), "core group only: {rule}");
        for r in rule["resources"].as_array().unwrap() {
            resources.insert(r.as_str().unwrap().to_owned());
        }
    }
    resources
}

/// Runs `ascp` with `args`; returns (success, stdout, stderr).
fn ascp(args: &[String]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ascp"))
        .args(args)
        .output()
        .expect("run ascp");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------
// Manifests

fn manifest_files() -> Vec<PathBuf> {
    let mut files = yaml_files(&repo().join("deploy/kubernetes"));
    files.extend(yaml_files(&repo().join("examples")));
    files
}

#[test]
fn every_manifest_parses_into_typed_objects() {
    let mut kinds = BTreeMap::<String, usize>::new();
    for path in manifest_files() {
        let origin = path.strip_prefix(repo()).unwrap().display().to_string();
        let docs = yaml_docs(&read(&path), &origin);
        assert!(!docs.is_empty(), "{origin}: no manifest");
        for doc in docs {
            let (kind, _, _) = typed(&doc, &origin);
            *kinds.entry(kind).or_default() += 1;
        }
    }
    for kind in [
        "SecretProviderClass",
        "Deployment",
        "ServiceAccount",
        "DaemonSet",
        "ClusterRole",
    ] {
        assert!(kinds.contains_key(kind), "no {kind} among {kinds:?}");
    }
}

/// The cases the examples must cover, each a SecretProviderClass and a
/// Deployment mounting it with a ServiceAccount of its own.
const EXAMPLE_CASES: &[&str] = &[
    "IRSA",
    "PodIdentity",
    "JmesPath",
    "Failover",
    "CrossAccount",
    "AssumeRole",
    "Keystore",
    "Paths",
];

#[test]
fn examples_cover_each_case_and_hang_together() {
    let dir = repo().join("examples");
    let mut classes = BTreeMap::new();
    let mut service_accounts = BTreeSet::new();
    let mut deployments = Vec::new();
    for path in yaml_files(&dir) {
        let origin = path.display().to_string();
        for doc in yaml_docs(&read(&path), &origin) {
            let (kind, name, value) = typed(&doc, &origin);
            match kind.as_str() {
                "SecretProviderClass" => {
                    classes.insert(name, value);
                }
                "ServiceAccount" => {
                    service_accounts.insert(name);
                }
                "Deployment" => deployments.push((origin.clone(), value)),
                _ => {}
            }
        }
    }
    for case in EXAMPLE_CASES {
        for file in [
            format!("ExampleSecretProviderClass-{case}.yaml"),
            format!("ExampleDeployment-{case}.yaml"),
        ] {
            assert!(dir.join(&file).is_file(), "examples/{file} missing");
        }
    }
    for (origin, d) in &deployments {
        let spec = &d["spec"]["template"]["spec"];
        let sa = spec["serviceAccountName"].as_str().unwrap_or("default");
        assert!(
            sa == "default" || service_accounts.contains(sa),
            "{origin}: ServiceAccount {sa} is defined nowhere in examples/"
        );
        let volumes: Vec<&J> = spec["volumes"]
            .as_array()
            .map(|v| v.iter().filter(|v| v["csi"].is_object()).collect())
            .unwrap_or_default();
        assert!(!volumes.is_empty(), "{origin}: no CSI volume");
        for v in volumes {
            assert_eq!(v["csi"]["driver"], "secrets-store.csi.k8s.io", "{origin}");
            let class = v["csi"]["volumeAttributes"]["secretProviderClass"]
                .as_str()
                .unwrap_or_default();
            assert!(
                classes.contains_key(class),
                "{origin}: SecretProviderClass {class:?} is defined nowhere in examples/"
            );
            let mounted = spec["containers"].as_array().unwrap().iter().any(|c| {
                c["volumeMounts"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["name"] == v["name"]))
            });
            assert!(mounted, "{origin}: volume {} is not mounted", v["name"]);
        }
    }
    assert!(deployments.len() >= EXAMPLE_CASES.len());
    // The IRSA cases' ServiceAccounts carry a role; Pod Identity's needs none.
    let pod_identity = &classes["ascp-example-pod-identity"];
    assert_eq!(pod_identity["spec"]["parameters"]["usePodIdentity"], "true");
    assert!(
        classes["ascp-example-assume-role"]["spec"]["parameters"]["assumeRoleArn"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:iam::"))
    );
}

#[test]
fn every_secret_provider_class_passes_ascp_validate() {
    let mut checked = 0;
    for path in manifest_files() {
        let origin = path.display().to_string();
        let docs = yaml_docs(&read(&path), &origin);
        let classes = docs
            .iter()
            .filter(|d| d["kind"] == "SecretProviderClass")
            .count();
        if classes == 0 {
            continue;
        }
        // `ascp validate` reads the first SecretProviderClass of a file.
        assert_eq!(classes, 1, "{origin}: one SecretProviderClass per file");
        let (ok, stdout, stderr) = ascp(&["validate".into(), path.display().to_string()]);
        assert!(ok, "{origin}: ascp validate failed:\n{stdout}{stderr}");
        checked += 1;
    }
    assert!(
        checked >= EXAMPLE_CASES.len(),
        "only {checked} classes checked"
    );
}

/// The CSIDriver block the installer spells out in its comments, between
/// `# BEGIN CSIDriver` and `# END CSIDriver`, uncommented.
fn installer_csidriver() -> J {
    let text = read(&installer_path());
    let block: String = text
        .lines()
        .skip_while(|l| !l.starts_with("# BEGIN CSIDriver"))
        .skip(1)
        .take_while(|l| !l.starts_with("# END CSIDriver"))
        .map(|l| {
            let l = l.strip_prefix('#').expect("a commented line");
            format!("{}\n", l.strip_prefix(' ').unwrap_or(l))
        })
        .collect();
    assert!(!block.is_empty(), "the installer spells out no CSIDriver");
    yaml_docs(&block, "installer CSIDriver block").remove(0)
}

#[test]
fn installer_spells_out_the_csidriver_token_requests() {
    let driver = installer_csidriver();
    let (kind, name, value) = typed(&driver, "installer CSIDriver block");
    assert_eq!(
        (kind.as_str(), name.as_str()),
        ("CSIDriver", "secrets-store.csi.k8s.io")
    );
    let audiences: BTreeSet<&str> = value["spec"]["tokenRequests"]
        .as_array()
        .expect("tokenRequests")
        .iter()
        .map(|t| t["audience"].as_str().unwrap())
        .collect();
    assert_eq!(
        audiences,
        BTreeSet::from(["sts.amazonaws.com", "pods.eks.amazonaws.com"])
    );
    assert_eq!(value["spec"]["volumeLifecycleModes"], json!(["Ephemeral"]));
    assert_eq!(value["spec"]["podInfoOnMount"], true);
    // The same audiences as the chart asks of the driver's chart.
    let values = chart_values(None);
    let chart_audiences: BTreeSet<&str> = values["secrets-store-csi-driver"]["tokenRequests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["audience"].as_str().unwrap())
        .collect();
    assert_eq!(audiences, chart_audiences);
    // And a one-line patch for a driver installed some other way.
    let text = read(&installer_path());
    assert!(text.contains("kubectl patch csidriver secrets-store.csi.k8s.io"));
}

// ---------------------------------------------------------------------------
// The chart

/// Labels only Helm sets; the kubectl installer has no use for them.
const HELM_ONLY_LABELS: &[&str] = &["helm.sh/chart", "app.kubernetes.io/managed-by"];

fn strip_helm_labels(v: &mut J) {
    for pointer in ["/metadata/labels", "/spec/template/metadata/labels"] {
        if let Some(J::Object(labels)) = v.pointer_mut(pointer) {
            for k in HELM_ONLY_LABELS {
                labels.remove(*k);
            }
        }
    }
}

#[test]
fn default_rendering_equals_the_installer() {
    let mut rendered: BTreeMap<(String, String), J> = render_objects(None, "ascp", "kube-system")
        .into_iter()
        .map(|(k, n, mut v)| {
            strip_helm_labels(&mut v);
            ((k, n), v)
        })
        .collect();
    let origin = installer_path().display().to_string();
    let installer: BTreeMap<(String, String), J> = yaml_docs(&read(&installer_path()), &origin)
        .iter()
        .map(|d| {
            let (k, n, v) = typed(d, &origin);
            ((k, n), v)
        })
        .collect();
    let rendered_keys: Vec<_> = rendered.keys().cloned().collect();
    let installer_keys: Vec<_> = installer.keys().cloned().collect();
    assert_eq!(rendered_keys, installer_keys, "the same objects");
    for (key, want) in &installer {
        let got = rendered.remove(key).unwrap();
        let mut diffs = Vec::new();
        differences(want, &got, "", &mut diffs);
        assert!(
            diffs.is_empty(),
            "{key:?}: the installer and the default rendering differ (installer → chart):\n  {}",
            diffs.join("\n  ")
        );
    }
}

#[test]
fn default_rendering_is_hardened_and_least_privileged() {
    let objects = render_objects(None, "ascp", "kube-system");
    let kinds: BTreeSet<&str> = objects.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "DaemonSet",
            "ServiceAccount"
        ])
    );
    let ds = one(&objects, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["hostNetwork"], false);
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(pod["serviceAccountName"], "ascp");
    // Not on Fargate.
    let affinity = pod["affinity"].to_string();
    assert!(affinity.contains("eks.amazonaws.com/compute-type") && affinity.contains("fargate"));
    // The selector is ASCP's (app: <name>) and matches the pod's labels.
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"],
        json!({"app": "ascp"})
    );
    assert_eq!(ds["spec"]["template"]["metadata"]["labels"]["app"], "ascp");

    let c = daemonset_container(&objects);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc["capabilities"]["add"].is_null());
    assert_eq!(
        args_of(&c),
        [
            "--provider-volume=/var/run/secrets-store-csi-providers",
            "--metrics-addr=0.0.0.0:8989"
        ]
    );
    assert!(c["env"].is_null(), "no env by default: {}", c["env"]);
    assert_eq!(c["image"], format!("ascp:{}", env!("CARGO_PKG_VERSION")));

    // The socket directory and the pods' volumes, as the driver shares them.
    let volumes = pod["volumes"].as_array().unwrap();
    let host_path = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volume {name}"))["hostPath"]["path"]
            .clone()
    };
    assert_eq!(
        host_path("providervol"),
        "/var/run/secrets-store-csi-providers"
    );
    assert_eq!(host_path("mountpoint-dir"), "/var/lib/kubelet/pods");
    let mounts = c["volumeMounts"].as_array().unwrap();
    let pods_mount = mounts
        .iter()
        .find(|m| m["name"] == "mountpoint-dir")
        .unwrap();
    assert_eq!(pods_mount["mountPath"], "/var/lib/kubelet/pods");
    assert_eq!(pods_mount["mountPropagation"], "HostToContainer");
    let sock_mount = mounts.iter().find(|m| m["name"] == "providervol").unwrap();
    assert_eq!(
        sock_mount["mountPath"],
        "/var/run/secrets-store-csi-providers"
    );

    // Requests and limits are set, requests within limits.
    let r = &c["resources"];
    for what in ["cpu", "memory"] {
        assert!(
            r["requests"][what].is_string() && r["limits"][what].is_string(),
            "{r}"
        );
    }
    assert!(mebibytes(&r["requests"]["memory"]) <= mebibytes(&r["limits"]["memory"]));

    // No awsRegion: the provider may need the pod's node's region label.
    assert_eq!(
        rule_resources(&objects),
        BTreeSet::from(["nodes".into(), "pods".into(), "serviceaccounts".into()])
    );
    let binding = one(&objects, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], "ascp-cluster-role");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "ascp", "namespace": "kube-system"}])
    );
}

fn mebibytes(q: &J) -> u64 {
    let s = q.as_str().unwrap();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().unwrap();
    match unit {
        "Mi" => n,
        "Gi" => n * 1024,
        _ => panic!("memory quantity {s}: use Mi or Gi"),
    }
}

#[test]
fn an_ascp_values_file_renders_unchanged() {
    let values = ci_values("ascp-values.yaml");
    let objects = render_objects(Some(&values), "secrets-provider-aws", "kube-system");
    let c = daemonset_container(&objects);
    assert_eq!(
        args_of(&c),
        [
            "--provider-volume=/var/run/secrets-store-csi-providers",
            "--driver-writes-secrets=true",
            "--qps=20",
            "--burst=40",
            "--eks-addon-version=v3.1.1-eksbuild.1",
            "--pod-identity-http-timeout=2s",
            "--metrics-addr=0.0.0.0:8989",
        ]
    );
    assert_eq!(
        env_of(&c),
        BTreeMap::from([
            ("AWS_REGION".into(), "eu-west-1".into()),
            ("AWS_USE_FIPS_ENDPOINT".into(), "true".into()),
        ])
    );
    // awsRegion set: no pods, no nodes.
    assert_eq!(
        rule_resources(&objects),
        BTreeSet::from(["serviceaccounts".into()])
    );

    let ds = one(&objects, "DaemonSet");
    assert_eq!(ds["metadata"]["name"], "secrets-provider-aws-ascp");
    assert_eq!(ds["metadata"]["labels"]["team"], "platform");
    let pod_meta = &ds["spec"]["template"]["metadata"];
    assert_eq!(pod_meta["labels"]["cost-center"], "cc-1234");
    assert_eq!(pod_meta["labels"]["team"], "platform");
    assert_eq!(
        pod_meta["annotations"],
        json!({"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"})
    );
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(
        pod["dnsConfig"],
        json!({"options": [{"name": "ndots", "value": "2"}]})
    );
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(pod["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(
        pod["nodeSelector"],
        json!({"kubernetes.io/os": "linux", "node.kubernetes.io/lifecycle": "normal"})
    );
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}})
    );
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "50m", "memory": "100Mi"}, "limits": {"cpu": "50m", "memory": "100Mi"}})
    );
    // The user's securityContext merges over the chart's hardening.
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));

    // Every key of the ASCP file is one this chart knows.
    let ours = chart_values(None);
    let theirs = yaml_file(&values);
    for key in theirs.as_object().unwrap().keys() {
        assert!(
            ours.get(key).is_some(),
            "ASCP value {key} unknown to the chart"
        );
    }
}

#[test]
fn every_addition_renders_and_the_binary_accepts_the_flags() {
    let values = ci_values("all-values.yaml");
    let objects = render_objects(Some(&values), "ascp", "security");
    let ds = one(&objects, "DaemonSet");
    assert_eq!(ds["metadata"]["name"], "secrets-provider");
    assert_eq!(ds["metadata"]["namespace"], "security");
    let pod = &ds["spec"]["template"]["spec"];
    // eks-auth takes the node's credentials from IMDS: host network.
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["serviceAccountName"], "secrets-provider-sa");
    assert_eq!(pod["terminationGracePeriodSeconds"], 40);
    assert_eq!(
        one(&objects, "ServiceAccount")["metadata"]["name"],
        "secrets-provider-sa"
    );
    assert_eq!(
        one(&objects, "ClusterRole")["metadata"]["name"],
        "secrets-provider-cluster-role"
    );
    // The optional ServiceMonitor scrapes the provider pods' metrics port
    // through a headless Service selecting exactly the DaemonSet's pods.
    let service = one(&objects, "Service");
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(
        service["spec"]["selector"],
        ds["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(service["spec"]["ports"][0]["port"], 9090);
    let monitor = one(&objects, "ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    // A ServiceMonitor selects Services by their labels.
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(&service["metadata"]["labels"][key], value, "label {key}");
    }
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "metrics", "path": "/metrics", "interval": "15s"}])
    );

    let c = daemonset_container(&objects);
    let args = args_of(&c);
    assert_eq!(
        args,
        [
            "--provider-volume=/var/run/secrets-store-csi-providers",
            "--pod-identity-mode=eks-auth",
            "--cluster-name=prod-cluster",
            "--pod-identity-endpoint-ipv4=http://169.254.170.23/v1/credentials",
            "--pod-identity-endpoint-ipv6=http://[fd00:ec2::23]/v1/credentials",
            "--log-format=json",
            "--mount-timeout=90s",
            "--shutdown-grace=25s",
            "--max-concurrent-fetches-per-mount=8",
            "--max-concurrent-fetches=64",
            "--max-mount-bytes=4Mi",
            "--max-inflight-bytes=24Mi",
            "--batch-get-secret-value=true",
            "--metrics-addr=[::]:9090",
        ]
    );
    let env = env_of(&c);
    assert_eq!(env["RUST_LOG"], "info,ascp=debug");
    assert_eq!(env["HTTPS_PROXY"], "http://proxy.internal:3128");
    assert_eq!(
        c["ports"],
        json!([{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}])
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "metrics"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "metrics"})
    );

    // The binary parses and checks every flag the chart passes (they are
    // global flags: a subcommand after them runs only when all are valid).
    let mut run = args.clone();
    run.push("validate".into());
    run.push(
        repo()
            .join("examples/ExampleSecretProviderClass-IRSA.yaml")
            .display()
            .to_string(),
    );
    let (ok, stdout, stderr) = ascp(&run);
    assert!(
        ok,
        "ascp rejects the chart's flags {args:?}:\n{stdout}{stderr}"
    );

    // The ASCP values' flags, too.
    let ascp_objects = render_objects(Some(&ci_values("ascp-values.yaml")), "r", "kube-system");
    let mut run = args_of(&daemonset_container(&ascp_objects));
    run.push("validate".into());
    run.push(
        repo()
            .join("examples/ExampleSecretProviderClass-IRSA.yaml")
            .display()
            .to_string(),
    );
    let (ok, stdout, stderr) = ascp(&run);
    assert!(
        ok,
        "ascp rejects the flags of an ASCP values file:\n{stdout}{stderr}"
    );
}

#[test]
fn chart_renders_without_rbac_or_metrics_and_names_follow_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "rbac:\n  install: false\nnameOverride: secrets-store-csi-driver-provider-aws\n\
         metrics:\n  enabled: false\nprobes:\n  enabled: true\n",
    )
    .unwrap();
    let objects = render_objects(Some(&values), "secrets-provider-aws", "kube-system");
    assert_eq!(objects.len(), 1, "only the DaemonSet");
    let ds = one(&objects, "DaemonSet");
    // With ASCP's chart name as nameOverride, the DaemonSet keeps ASCP's
    // chart's object name and selector: `helm upgrade` of an ASCP release
    // updates it in place, node by node.
    assert_eq!(
        ds["metadata"]["name"],
        "secrets-provider-aws-secrets-store-csi-driver-provider-aws"
    );
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"],
        json!({"app": "secrets-store-csi-driver-provider-aws"})
    );
    // Metrics off: an empty --metrics-addr, no port, no probes (they need it).
    let c = daemonset_container(&objects);
    let mut args = args_of(&c);
    assert_eq!(args.last().unwrap(), "--metrics-addr=");
    assert!(c["ports"].is_null() && c["livenessProbe"].is_null() && c["readinessProbe"].is_null());
    args.push("validate".into());
    args.push(
        repo()
            .join("examples/ExampleSecretProviderClass-IRSA.yaml")
            .display()
            .to_string(),
    );
    let (ok, stdout, stderr) = ascp(&args);
    assert!(ok, "ascp rejects {args:?}:\n{stdout}{stderr}");
}

/// With host networking (eks-auth) the endpoint would be open on the node's
/// addresses: it binds loopback and the probes follow, unless the user sets
/// `metrics.host`. In the default mode it binds every address of the pod.
#[test]
fn metrics_bind_loopback_on_the_host_network_unless_asked_otherwise() {
    let render = |values: &str| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, values).unwrap();
        let objects = render_objects(Some(&file), "ascp", "kube-system");
        let ds = one(&objects, "DaemonSet");
        let host_network = ds["spec"]["template"]["spec"]["hostNetwork"].clone();
        (host_network, daemonset_container(&objects))
    };
    let eks_auth = "podIdentityMode: eks-auth\nclusterName: prod\n";
    let probes = |c: &J| {
        (
            c["livenessProbe"]["httpGet"].clone(),
            c["readinessProbe"]["httpGet"].clone(),
        )
    };

    let (host_network, c) = render(eks_auth);
    assert_eq!(host_network, true);
    assert_eq!(args_of(&c).last().unwrap(), "--metrics-addr=127.0.0.1:8989");
    assert_eq!(
        probes(&c),
        (
            json!({"host": "127.0.0.1", "path": "/healthz", "port": "metrics"}),
            json!({"host": "127.0.0.1", "path": "/readyz", "port": "metrics"})
        )
    );

    // Opting in to a wider address: probes go to the pod IP again.
    let (_, c) = render(&format!("{eks_auth}metrics:\n  host: 0.0.0.0\n"));
    assert_eq!(args_of(&c).last().unwrap(), "--metrics-addr=0.0.0.0:8989");
    assert_eq!(
        probes(&c),
        (
            json!({"path": "/healthz", "port": "metrics"}),
            json!({"path": "/readyz", "port": "metrics"})
        )
    );

    // The default mode: the pod's own network, every address.
    let (host_network, c) = render("{}\n");
    assert_eq!(host_network, false);
    assert_eq!(args_of(&c).last().unwrap(), "--metrics-addr=0.0.0.0:8989");
    assert!(c["livenessProbe"]["httpGet"]["host"].is_null());
}

#[test]
fn chart_keeps_ascp_values_and_metadata() {
    let values = chart_values(None);
    // ASCP's values, by path.
    for path in [
        "/image/repository",
        "/image/pullPolicy",
        "/image/tag",
        "/awsRegion",
        "/nameOverride",
        "/fullnameOverride",
        "/providerVolume",
        "/kubeletPath",
        "/driverWritesSecrets",
        "/commonLabels",
        "/podLabels",
        "/podAnnotations",
        "/affinity",
        "/resources",
        "/priorityClassName",
        "/nodeSelector",
        "/tolerations",
        "/port",
        "/updateStrategy",
        "/imagePullSecrets",
        "/rbac/install",
        "/securityContext",
        "/useFipsEndpoint",
        "/podIdentityHttpTimeout",
        "/k8sThrottlingParams",
        "/eksAddonVersion",
        "/dnsPolicy",
        "/dnsConfig",
        "/secrets-store-csi-driver/install",
        "/secrets-store-csi-driver/tokenRequests",
        "/secrets-store-csi-driver/enableSecretRotation",
        "/secrets-store-csi-driver/rotationPollInterval",
        // This project's.
        "/podIdentityMode",
        "/clusterName",
        "/logFormat",
        "/maxConcurrentFetchesPerMount",
        "/maxConcurrentFetches",
        "/maxMountBytes",
        "/maxInflightBytes",
    ] {
        assert!(values.pointer(path).is_some(), "values.yaml lacks {path}");
    }
    let chart = yaml_file(&chart_dir().join("Chart.yaml"));
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "appVersion follows Cargo.toml"
    );
    let dep = &chart["dependencies"][0];
    assert_eq!(dep["name"], "secrets-store-csi-driver");
    assert_eq!(dep["condition"], "secrets-store-csi-driver.install");

    // Every .Values path a template reads exists in values.yaml.
    let mut missing = Vec::new();
    for path in std::fs::read_dir(chart_dir().join("templates")).unwrap() {
        let path = path.unwrap().path();
        let text = read(&path);
        for (i, _) in text.match_indices(".Values.") {
            let rest = &text[i + ".Values.".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
                .unwrap_or(rest.len());
            let pointer = format!("/{}", rest[..end].trim_end_matches('.').replace('.', "/"));
            if values.pointer(&pointer).is_none() {
                missing.push(format!(
                    "{}: .Values{}",
                    path.display(),
                    pointer.replace('/', ".")
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in values.yaml:\n{}",
        missing.join("\n")
    );
}

#[test]
fn notes_render() {
    let notes = &render_chart(None, "ascp", "kube-system")["NOTES.txt"];
    assert!(notes.contains("kube-system/ascp"), "{notes}");
    assert!(
        notes.contains("ascp doctor --namespace <ns> --pod <pod>"),
        "{notes}"
    );
    assert!(
        !notes.contains("tokenRequests"),
        "the driver is installed: {notes}"
    );
    let notes = &render_chart(Some(&ci_values("all-values.yaml")), "ascp", "security")["NOTES.txt"];
    assert!(notes.contains("kubectl patch csidriver"), "{notes}");
}

// ---------------------------------------------------------------------------
// The helpers themselves

#[test]
fn renderer_functions_behave_as_helm() {
    DEFINES.with(|d| {
        *d.borrow_mut() = vec![(
            "_t.tpl".into(),
            r#"{{- define "greet" -}}hi {{ .who }}{{- end }}"#.into(),
        )]
    });
    let render = |src: &str, data: J| {
        let mut t = template_with_defines("t").unwrap();
        t.parse(src).unwrap();
        t.render(&Context::from(to_g(&data))).unwrap()
    };
    assert_eq!(
        render(r#"{{ include "greet" . }}"#, json!({"who": "x"})),
        "hi x"
    );
    assert_eq!(
        render(r#"{{ .a | quote }}"#, json!({"a": true})),
        "\"true\""
    );
    assert_eq!(
        render(
            r#"{{ default "d" .a }}|{{ .b | default "d" }}"#,
            json!({"a": "", "b": "v"})
        ),
        "d|v"
    );
    assert_eq!(render(r#"{{ "a\nb" | indent 2 }}"#, json!({})), "  a\n  b");
    assert_eq!(render(r#"x:{{ "a" | nindent 2 }}"#, json!({})), "x:\n  a");
    let yaml = render(
        r#"{{ toYaml .v }}"#,
        json!({"v": {"b": [1, {"c": "d", "e": []}], "a": {}}}),
    );
    assert_eq!(
        yaml,
        "\"a\": {}\n\"b\":\n  - 1\n  - \"c\": \"d\"\n    \"e\": []"
    );
    let back: J = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, json!({"b": [1, {"c": "d", "e": []}], "a": {}}));
    // A function outside the chart's set does not exist.
    let mut t = template_with_defines("t").unwrap();
    assert!(t.parse(r#"{{ "x" | upper }}"#).is_err());
}

// ---------------------------------------------------------------------------
// The container build

/// The Dockerfile's instructions, continuation lines joined.
fn dockerfile() -> Vec<String> {
    let text = read(&repo().join("Dockerfile"));
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                if !current.trim().is_empty() {
                    out.push(current.trim().to_owned());
                }
                current.clear();
            }
        }
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_static_and_minimal() {
    let lines = dockerfile();
    let froms: Vec<&String> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let last = froms.last().unwrap();
    assert!(
        last.contains("distroless/static") || last.starts_with("FROM scratch"),
        "final stage on distroless/static or scratch: {last}"
    );
    let build = lines
        .iter()
        .find(|l| l.contains("cargo build"))
        .expect("a cargo build step");
    for needle in ["--release", "--locked", "+crt-static", "--target"] {
        assert!(
            build.contains(needle),
            "the build step lacks {needle}: {build}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ENTRYPOINT") && l.contains("/ascp")),
        "ENTRYPOINT runs /ascp"
    );
    let ignore = read(&repo().join(".dockerignore"));
    for needle in ["target", ".git"] {
        assert!(
            ignore
                .lines()
                .any(|l| l.trim().trim_start_matches('/') == needle),
            ".dockerignore lacks {needle}"
        );
    }
}

/// Whether an ELF64 file asks for a dynamic loader (has PT_INTERP).
fn elf_has_interpreter(bytes: &[u8]) -> bool {
    assert_eq!(&bytes[..4], b"\x7fELF", "not ELF");
    assert_eq!(bytes[4], 2, "not ELF64");
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) == 3
    })
}

/// Builds the image's binary with the Dockerfile's own build command (for
/// this machine's architecture) and checks it is static, small and runs.
/// Minutes of release build: `cargo test --test it deploy:: -- --ignored`.
#[test]
#[ignore = "a release build of the image binary takes minutes; run with --ignored"]
fn dockerfile_build_step_builds_a_static_binary() {
    let lines = dockerfile();
    let build = lines.iter().find(|l| l.contains("cargo build")).unwrap();
    // The RUN step sets the target triple from rustc; replay it here.
    let script = build
        .strip_prefix("RUN ")
        .map(|s| {
            // Drop BuildKit mount options.
            let mut s = s.trim();
            while let Some(rest) = s.strip_prefix("--mount=") {
                s = rest.split_once(' ').map(|(_, r)| r.trim()).unwrap_or("");
            }
            s.to_owned()
        })
        .unwrap();
    let host = String::from_utf8(Command::new("rustc").arg("-vV").output().unwrap().stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap();
    // The Dockerfile copies the binary to /ascp; here it stays in target/.
    let script = script.split(" && cp ").next().unwrap().to_owned();
    let status = Command::new("sh")
        .arg("-ec")
        .arg(&script)
        .current_dir(repo())
        .env("TARGET", &host)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the Dockerfile's build step failed: {script}"
    );
    let binary = repo().join(format!("target/{host}/release/ascp"));
    let bytes = std::fs::read(&binary).unwrap();
    assert!(
        !elf_has_interpreter(&bytes),
        "{} is dynamically linked",
        binary.display()
    );
    let size_mib = bytes.len() as f64 / (1024.0 * 1024.0);
    eprintln!("image binary: {} ({size_mib:.1} MiB)", binary.display());
    // distroless/static is about 2 MiB; the image must stay within 20 MB.
    assert!(
        size_mib < 17.0,
        "binary too large for a 20 MB image: {size_mib:.1} MiB"
    );
    let out = Command::new(&binary).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = Command::new(&binary)
        .arg("validate")
        .arg(repo().join("examples/ExampleSecretProviderClass-JmesPath.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
