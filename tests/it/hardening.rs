//! The real binary's first impressions and its defences against hostile
//! classes: no instance-metadata call and no warning at start-up, no colour
//! escapes when logging to a pipe, and metric series that made-up regions
//! cannot grow.

use crate::support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use support::ascp_process::AscpProcess;
use support::kube_api::KubeApiStub;
use support::*;

/// A loopback listener standing in for the instance metadata service: it
/// counts connections and answers none of them.
struct MetadataStub {
    url: String,
    connections: Arc<AtomicUsize>,
}

impl MetadataStub {
    async fn start() -> MetadataStub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                // Held open and never answered, as an unreachable IMDS
                // behind a firewall that accepts and drops.
                held.push(stream);
            }
        });
        MetadataStub { url, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Starts the binary with stderr on a pipe and returns the lines it logs up
/// to and including the "serving" line (the socket is bound by then), and
/// whether the socket existed at that point.
fn start_and_read_until_serving(args: &[&str], env: &[(&str, String)]) -> (Vec<String>, bool) {
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("provider");
    std::fs::create_dir_all(&volume).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ascp"))
        .arg(format!("--provider-volume={}", volume.display()))
        .arg("--metrics-addr=")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ascp");
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    let mut socket_existed = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("read ascp's stderr");
        let serving = line.contains("serving");
        lines.push(line);
        if serving {
            socket_existed = volume.join("aws.sock").exists();
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.last().is_some_and(|l| l.contains("serving")),
        "ascp stopped before serving:\n{}",
        lines.join("\n")
    );
    (lines, socket_existed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_makes_no_metadata_call_logs_no_warning_and_no_colour() {
    let imds = MetadataStub::start().await;
    let kube = KubeApiStub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig);
    // No AWS_REGION, no credentials, metadata "reachable" but silent: the
    // usual pod on EKS without host networking.
    let env = [
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone()),
    ];
    for mode in [
        &[][..],
        &["--pod-identity-mode=eks-auth", "--cluster-name=demo"][..],
    ] {
        let (lines, socket_existed) = tokio::task::spawn_blocking({
            let env = env.clone();
            move || start_and_read_until_serving(mode, &env)
        })
        .await
        .unwrap();
        let log = lines.join("\n");
        assert!(socket_existed, "{log}");
        assert_eq!(
            imds.connections(),
            0,
            "instance metadata was asked ({mode:?}):\n{log}"
        );
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("WARN") || l.contains("ERROR")),
            "a warning at start-up ({mode:?}):\n{log}"
        );
        assert!(
            !log.contains("\x1b["),
            "colour escapes on a pipe ({mode:?}):\n{log}"
        );
    }
}

async fn scrape(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

/// The series of the exposition: every sample line.
fn series(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.rsplit_once(' ').map_or(l, |(name, _)| name))
        .collect()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A hostile class author names a new region in every mount. Each mount
/// reaches AWS (STS on moto, then Secrets Manager, answered by the proxy
/// with a not-found), and the number of series stays the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_regions_do_not_grow_the_metric_series() {
    const MOUNTS: usize = 1_000;
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    // Regions moto does not know: answer the store call at the proxy, at
    // once and without retries.
    proxy.add_rule(
        Rule::new()
            .operation("GetSecretValue")
            .respond(400, "ResourceNotFoundException"),
    );
    let kube = KubeApiStub::start().await;
    let role = "arn:aws:iam::123456789012:role/web";
    kube.add_service_account("shop", "web", Some(role));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig);
    let metrics = format!("127.0.0.1:{}", free_port());
    let env: Vec<(String, String)> = [
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("AWS_ENDPOINT_URL", proxy.endpoint()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("RUST_LOG", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let ascp = AscpProcess::start(
        Path::new(env!("CARGO_BIN_EXE_ascp")),
        &[format!("--metrics-addr={metrics}")],
        &env,
    )
    .await;
    let target = ascp.dir().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let tokens = serde_json::json!({"sts.amazonaws.com": {
        "token": "eyJ.cardinality.sig", "expirationTimestamp": "2099-01-01T00:00:00Z"}})
    .to_string();
    let mount = |region: String| {
        let mut attrs = BTreeMap::new();
        attrs.insert("csi.storage.k8s.io/pod.name", "web-0".to_owned());
        attrs.insert("csi.storage.k8s.io/pod.namespace", "shop".to_owned());
        attrs.insert("csi.storage.k8s.io/pod.uid", "uid-web-0".to_owned());
        attrs.insert("csi.storage.k8s.io/serviceAccount.name", "web".to_owned());
        attrs.insert("csi.storage.k8s.io/serviceAccount.tokens", tokens.clone());
        attrs.insert("region", region);
        attrs.insert(
            "objects",
            "- objectName: db\n  objectType: secretsmanager\n".to_owned(),
        );
        let request = ascp::proto::MountRequest {
            attributes: serde_json::to_string(&attrs).unwrap(),
            secrets: "{}".into(),
            target_path: target.display().to_string(),
            permission: "420".into(),
            current_object_version: vec![],
        };
        let ascp = &ascp;
        async move { ascp.mount(request).await }
    };

    // One made-up region first: it creates the series every other one
    // would map to.
    let first = mount("zz-warmup-1".into()).await.unwrap_err();
    assert_eq!(first.code(), tonic::Code::NotFound, "{}", first.message());
    let before = scrape(&metrics).await;
    assert!(
        before.contains(r#"region="other""#),
        "the made-up region is labelled other:\n{before}"
    );

    let failures: Vec<tonic::Code> = futures::stream::iter(0..MOUNTS)
        .map(|i| mount(format!("zz-{}-{}", ["north", "south", "east"][i % 3], i)))
        .buffer_unordered(16)
        .map(|r| r.map_or_else(|s| s.code(), |_| tonic::Code::Ok))
        .collect()
        .await;
    assert!(
        failures.iter().all(|c| *c == tonic::Code::NotFound),
        "every mount reaches Secrets Manager: {:?}",
        failures.iter().find(|c| **c != tonic::Code::NotFound)
    );
    assert_eq!(proxy.calls("GetSecretValue"), MOUNTS + 1);
    assert_eq!(proxy.calls("AssumeRoleWithWebIdentity"), MOUNTS + 1);

    let after = scrape(&metrics).await;
    assert_eq!(
        series(&before),
        series(&after),
        "series before:\n{before}\nafter:\n{after}"
    );
    assert!(!after.contains("zz-"), "{after}");
    // The one real region of a class still gets its own label.
    let real = mount("eu-west-1".into()).await.unwrap_err();
    assert_eq!(real.code(), tonic::Code::NotFound);
    assert!(scrape(&metrics).await.contains(r#"region="eu-west-1""#));
}
