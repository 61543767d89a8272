//! Driver fidelity on the wire: the real `ascp` binary, called over its
//! socket by clients that share no code with it (Python grpcio, and raw
//! HTTP/2 frames from the PyPI hyperframe/hpack packages; scripts in
//! tests/clients/), as drivers v1.4 to v1.6 call it: every `:authority` form
//! they send, header blocks in every legal framing, and the driver's retry
//! policy, which must never fire on a failing Mount.
//!
//! AWS is moto behind the fault proxy; the Kubernetes API a stub; all on
//! loopback. The Python packages come from scripts/install-clients.sh; a
//! missing one fails the test with what to run.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_ssm::types::ParameterType;
use serde_json::{Value, json};
use support::ascp_process::AscpProcess;
use support::loopback::Loopback;
use support::*;

const NS: &str = "wire";
const SA: &str = "app";
const POD: &str = "app-0";
const ROLE: &str = "arn:aws:iam::123456789012:role/app";
const REGION: &str = "us-east-1";
const OBJECTS: &str = r#"
- objectName: "wire/db"
  objectType: secretsmanager
  objectAlias: db
- objectName: "/wire/url"
  objectType: ssmparameter
  objectAlias: url
"#;
const DB: &str = r#"{"user":"app","password":"pw"}"#;
const URL: &str = "https://wire.example";

/// moto behind the proxy, a Kubernetes API that knows the pod's role.
struct World {
    net: Loopback,
}

impl World {
    async fn start() -> World {
        let net = Loopback::start(&[(NS, SA, ROLE)]).await;
        net.kube.add_pod(NS, POD, Some("node"));
        let config = sdk_config(&net.moto.endpoint(), REGION).await;
        create_secret_string(&aws_sdk_secretsmanager::Client::new(&config), "wire/db", DB).await;
        put_parameter(
            &aws_sdk_ssm::Client::new(&config),
            "/wire/url",
            URL,
            ParameterType::String,
        )
        .await;
        World { net }
    }

    /// The binary, with `args` after the defaults.
    async fn ascp(&self, args: &[String]) -> AscpProcess {
        let env = self.net.env(&[]);
        AscpProcess::start(Path::new(env!("CARGO_BIN_EXE_ascp")), args, &env).await
    }
}

/// A Mount request for the Python clients (MountRequest's fields by name).
fn mount(target: &Path, extra: &[(&str, &str)]) -> Value {
    let tokens = json!({
        "sts.amazonaws.com": {"token": "eyJ.wire-irsa.sig", "expirationTimestamp": "2099-01-01T00:00:00Z"},
        "pods.eks.amazonaws.com": {"token": "eyJ.wire-pod.sig", "expirationTimestamp": "2099-01-01T00:00:00Z"},
    });
    let mut attributes = json!({
        "csi.storage.k8s.io/pod.name": POD,
        "csi.storage.k8s.io/pod.namespace": NS,
        "csi.storage.k8s.io/pod.uid": "uid-1",
        "csi.storage.k8s.io/serviceAccount.name": SA,
        "csi.storage.k8s.io/serviceAccount.tokens": tokens.to_string(),
        "secretProviderClass": "wire",
        "region": REGION,
        "objects": OBJECTS,
    });
    for (k, v) in extra {
        attributes[*k] = json!(v);
    }
    json!({
        "attributes": attributes.to_string(),
        "secrets": "{}",
        "target_path": target.display().to_string(),
        "permission": "420",
    })
}

/// A Mount the provider must refuse with INVALID_ARGUMENT.
fn malformed(target: &Path) -> Value {
    json!({"attributes": "{not json", "target_path": target.display().to_string(), "permission": "420"})
}

fn target(ascp: &AscpProcess, name: &str) -> PathBuf {
    let dir = ascp.dir().join("targets").join(name);
    std::fs::create_dir_all(&dir).expect("create a target directory");
    dir
}

#[track_caller]
fn assert_mounted(dir: &Path) {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    assert_eq!(
        (read("db").as_str(), read("url").as_str()),
        (DB, URL),
        "{}",
        dir.display()
    );
}

/// The shared virtualenv's interpreter, with every client package importable
/// (installed first if they are not).
fn python() -> PathBuf {
    support::venv::ensure(support::venv::Tools::Clients);
    let python = support::venv::venv().join("bin/python");
    let ok = Command::new(&python)
        .args([
            "-c",
            "import grpc, grpc_tools.protoc, grpc_health.v1.health_pb2, hpack, hyperframe, h2",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import grpcio, grpcio-tools, grpcio-health-checking, h2, hpack, hyperframe: run scripts/install-moto.sh then scripts/install-clients.sh",
        python.display()
    );
    python
}

/// Runs tests/clients/`script` with `spec`; its JSON answer.
async fn client(script: &str, spec: Value, ascp: &AscpProcess) -> Value {
    let spec_path = ascp
        .dir()
        .join(format!("{script}-{}.json", fastrand::u64(..)));
    std::fs::write(&spec_path, spec.to_string()).expect("write the client's spec");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(&script)
            .arg(&spec_path)
            .output()
            .expect("run the Python client")
    })
    .await
    .expect("the client's thread");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client failed ({}): {}\n{stdout}\nascp log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        ascp.log()
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("client answered {stdout:?}: {e}"))
}

/// `:authority` values drivers and gRPC clients send for a unix socket.
fn authorities(socket: &Path) -> Vec<(&'static str, Option<String>)> {
    let raw = socket.display().to_string();
    let encoded = raw.replace('/', "%2F");
    vec![
        // grpc-go before driver v1.6.0: the path, raw.
        ("raw socket path", Some(raw.clone())),
        ("percent-encoded path", Some(encoded.clone())),
        // grpcio's form for a `unix:` target: no leading slash.
        (
            "grpcio-style path",
            Some(encoded.trim_start_matches("%2F").to_owned()),
        ),
        // Driver v1.6.0 and later.
        ("localhost", Some("localhost".into())),
        // Whatever this grpcio sends on its own.
        ("client default", None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_with_every_authority_form_gets_version_mount_and_invalid_argument() {
    let world = World::start().await;
    let ascp = world.ascp(&[]).await;
    for (i, (form, authority)) in authorities(ascp.socket()).into_iter().enumerate() {
        let dir = target(&ascp, &format!("grpcio-{i}"));
        let bad = target(&ascp, &format!("grpcio-bad-{i}"));
        let spec = json!({
            "socket": ascp.socket(),
            "authority": authority,
            "retry": true,
            "calls": [
                {"rpc": "Health"},
                {"rpc": "Version"},
                {"rpc": "Mount", "request": mount(&dir, &[])},
                {"rpc": "Mount", "request": malformed(&bad)},
            ],
        });
        let answer = client("grpcio_client.py", spec, &ascp).await;
        let r = &answer["results"];
        let codes: Vec<&str> = (0..4)
            .map(|i| r[i]["code"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            codes,
            ["OK", "OK", "OK", "INVALID_ARGUMENT"],
            "{form}: {answer}"
        );
        assert_eq!(r[0]["response"]["status"], "SERVING", "{form}");
        assert_eq!(r[1]["response"]["version"], "v1alpha1", "{form}");
        assert_eq!(
            r[2]["response"]["object_version"].as_array().map(Vec::len),
            Some(2),
            "{form}: {answer}"
        );
        assert!(
            r[3]["message"]
                .as_str()
                .unwrap_or("")
                .contains("invalid mount attributes"),
            "{form}: {answer}"
        );
        assert_mounted(&dir);
        assert_eq!(std::fs::read_dir(&bad).map(Iterator::count).ok(), Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_http2_every_authority_and_framing_and_a_thousand_indexed_requests() {
    let world = World::start().await;
    let ascp = world.ascp(&[]).await;
    let mut forms: Vec<(String, Option<String>)> = authorities(ascp.socket())
        .into_iter()
        .filter_map(|(name, a)| a.map(|a| (name.to_owned(), Some(a))))
        .collect();
    forms.push(("empty".into(), Some(String::new())));
    forms.push(("none".into(), None));
    let mut calls = Vec::new();
    let mut expected = Vec::new();
    let mut dirs = Vec::new();
    for (i, (name, authority)) in forms.iter().enumerate() {
        for framing in ["plain", "continuation", "padded", "table_size"] {
            let dir = target(&ascp, &format!("raw-{i}-{framing}"));
            let bad = target(&ascp, &format!("raw-bad-{i}-{framing}"));
            for (rpc, request, code) in [
                ("Version", Value::Null, 0),
                ("Mount", mount(&dir, &[]), 0),
                ("Mount", malformed(&bad), 3),
            ] {
                calls.push(json!({"rpc": rpc, "request": request, "authority": authority, "form": framing}));
                expected.push((format!("{rpc} with {name} authority, {framing}"), code));
            }
            dirs.push(dir);
        }
    }
    let spec = json!({"socket": ascp.socket(), "calls": calls, "churn": 1_100});
    let answer = client("raw_h2.py", spec, &ascp).await;
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), expected.len(), "{answer}");
    for (r, (what, code)) in results.iter().zip(&expected) {
        assert_eq!(r["code"], *code, "{what}: {r}\nascp log:\n{}", ascp.log());
        if r["rpc"] == "Version" {
            assert_eq!(r["response"]["version"], "v1alpha1", "{what}");
        }
    }
    for dir in &dirs {
        assert_mounted(dir);
    }
    // 1,100 requests on the same connection after those: `:authority` sent
    // as a one-byte index most of the time, and again as a literal each
    // time the changing grpc-timeout values evicted it.
    assert_eq!(answer["churn_ok"], 1_100, "{answer}");
    let indexed = answer["churn_indexed"].as_u64().unwrap_or(0);
    assert!((1_000..1_100).contains(&indexed), "{answer}");
}

/// How many mounts the provider logged as finished or failed.
fn mounts_logged(ascp: &AscpProcess) -> usize {
    let log = ascp.log();
    log.matches("mount failed").count() + log.matches("mount finished").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drivers_retry_policy_is_live_and_a_failing_mount_runs_once() {
    let world = World::start().await;
    // A Pod Identity Agent that is down: nothing listens on either address.
    let closed = |addr: &str| {
        let listener = std::net::TcpListener::bind(addr).expect("bind a port");
        format!(
            "http://{}/v1/credentials",
            listener.local_addr().expect("its address")
        )
    };
    let ascp = world
        .ascp(&[
            format!("--pod-identity-endpoint-ipv4={}", closed("127.0.0.1:0")),
            format!("--pod-identity-endpoint-ipv6={}", closed("[::1]:0")),
        ])
        .await;

    // Control: the same client against a stub answering UNAVAILABLE makes
    // 3 attempts, and 1 without the policy.
    let stub = ascp.dir().join("stub.sock");
    for (retry, attempts) in [(true, 3), (false, 1)] {
        let spec = json!({
            "socket": stub, "serve_unavailable": stub, "retry": retry,
            "calls": [{"rpc": "Mount", "request": malformed(&stub)}],
        });
        let answer = client("grpcio_client.py", spec, &ascp).await;
        assert_eq!(answer["results"][0]["code"], "UNAVAILABLE", "{answer}");
        assert_eq!(answer["stub_calls"], attempts, "retry {retry}: {answer}");
        std::fs::remove_file(&stub).ok();
    }

    let retrying = |request: Value| {
        json!({"socket": ascp.socket(), "authority": ascp.socket(), "retry": true,
               "calls": [{"rpc": "Mount", "request": request}]})
    };
    // Secrets Manager answering 500 on every call: 1 Mount, whose SDK makes
    // its 3 attempts, and the driver's client does not repeat it.
    let failing = world
        .net
        .proxy
        .add_rule(Rule::new().service("secretsmanager"));
    let before = mounts_logged(&ascp);
    let dir = target(&ascp, "aws-500");
    let answer = client("grpcio_client.py", retrying(mount(&dir, &[])), &ascp).await;
    let r = &answer["results"][0];
    assert_eq!(r["code"], "UNKNOWN", "{answer}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("InternalServiceError"),
        "{answer}"
    );
    assert_eq!(mounts_logged(&ascp) - before, 1, "{}", ascp.log());
    assert_eq!(world.net.proxy.fired(failing), 3);
    world.net.proxy.clear_rules();

    // Pod Identity with the agent down: 1 Mount.
    let before = mounts_logged(&ascp);
    let dir = target(&ascp, "agent-down");
    let request = mount(&dir, &[("usePodIdentity", "true")]);
    let answer = client("grpcio_client.py", retrying(request), &ascp).await;
    assert_eq!(answer["results"][0]["code"], "UNKNOWN", "{answer}");
    assert_eq!(mounts_logged(&ascp) - before, 1, "{}", ascp.log());
    assert_eq!(std::fs::read_dir(&dir).map(Iterator::count).ok(), Some(0));
}
