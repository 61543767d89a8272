//! End to end: the real `ascp` binary, driven through its socket as the CSI
//! driver does, against moto (STS, Secrets Manager, SSM) behind the
//! fault-injecting proxy, a stub Kubernetes API, a stub Pod Identity Agent
//! (IPv4 and IPv6) and a stub EKS Auth endpoint, all on loopback.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ascp::proto::{MountRequest, MountResponse};
use aws_sdk_ssm::types::ParameterType;
use support::ascp_process::AscpProcess;
use support::driver_layout::{files_of, write_like_the_driver};
use support::eks_auth::{EksAuthBehavior, EksAuthStub};
use support::kube_api::KubeMode;
use support::loopback::Loopback;
use support::pod_identity_agent::{AgentBehavior, AgentStub};
use support::*;
use tonic::Code;

const NS: &str = "shop";
const SA: &str = "web";
const POD: &str = "web-0";
const NODE: &str = "node-a";
/// The node's region label: deliberately not where the other tests' secrets live.
const NODE_REGION: &str = "eu-central-1";
const ROLE: &str = "arn:aws:iam::123456789012:role/web";
const REGION: &str = "us-east-1";
const CLUSTER: &str = "demo-cluster";
const OTHER_ACCOUNT: &str = "444455556666";

const IRSA_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.IRSA-DISTINCTIVE-TOKEN-7f3a9c.sig";
const POD_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.PODID-DISTINCTIVE-TOKEN-51be2d.sig";

/// The loopback world (moto, the proxy, the Kubernetes stub) with the pod,
/// its node and the Pod Identity stubs: both agent endpoints and EKS Auth.
struct World {
    net: Loopback,
    agent4: AgentStub,
    agent6: AgentStub,
    eks: EksAuthStub,
}

impl std::ops::Deref for World {
    type Target = Loopback;

    fn deref(&self) -> &Loopback {
        &self.net
    }
}

impl World {
    async fn start() -> World {
        let net = Loopback::start(&[(NS, SA, ROLE)]).await;
        net.kube.add_pod(NS, POD, Some(NODE));
        net.kube.add_node(NODE, Some(NODE_REGION));
        World {
            net,
            agent4: AgentStub::start("127.0.0.1:0").await,
            agent6: AgentStub::start("[::1]:0").await,
            eks: EksAuthStub::start(CLUSTER).await,
        }
    }

    /// The loopback's environment, with EKS Auth's endpoint, the node's own
    /// credentials (used for EKS Auth only) and `rust_log`.
    fn env(&self, rust_log: &str) -> Vec<(String, String)> {
        let eks = self.eks.endpoint();
        self.net.env(&[
            ("AWS_ENDPOINT_URL_EKS_AUTH", &eks),
            ("AWS_ACCESS_KEY_ID", "AKIDNODEROLE"),
            ("AWS_SECRET_ACCESS_KEY", "node-role-secret"),
            ("RUST_LOG", rust_log),
        ])
    }

    /// Starts the binary with the agent stubs' endpoints, short agent
    /// timeouts, and `extra` flags.
    async fn ascp(&self, extra: &[&str], rust_log: &str) -> AscpProcess {
        let mut args = vec![
            format!("--pod-identity-endpoint-ipv4={}", self.agent4.url()),
            format!("--pod-identity-endpoint-ipv6={}", self.agent6.url()),
            "--pod-identity-http-timeout=1s".to_owned(),
            "--pod-identity-retry-budget=3s".to_owned(),
        ];
        // A flag in `extra` replaces the default one.
        args.retain(|a| {
            let flag = a.split('=').next().unwrap_or_default();
            !extra.iter().any(|e| e.split('=').next() == Some(flag))
        });
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        AscpProcess::start(
            Path::new(env!("CARGO_BIN_EXE_ascp")),
            &args,
            &self.env(rust_log),
        )
        .await
    }

    async fn sm(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&sdk_config(&self.moto.endpoint(), region).await)
    }

    async fn ssm(&self, region: &str) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&sdk_config(&self.moto.endpoint(), region).await)
    }
}

/// The `serviceAccount.tokens` attribute.
fn tokens(irsa: Option<&str>, pod_identity: Option<&str>) -> String {
    let expires = "2099-01-01T00:00:00Z";
    let mut map = serde_json::Map::new();
    if let Some(t) = irsa {
        map.insert(
            "sts.amazonaws.com".into(),
            serde_json::json!({"token": t, "expirationTimestamp": expires}),
        );
    }
    if let Some(t) = pod_identity {
        map.insert(
            "pods.eks.amazonaws.com".into(),
            serde_json::json!({"token": t, "expirationTimestamp": expires}),
        );
    }
    serde_json::Value::Object(map).to_string()
}

/// A Mount for pod `POD` of service account `sa`, with SecretProviderClass
/// `params` and the tokens attribute (if any), into `target`.
fn request(target: &Path, sa: &str, params: &[(&str, &str)], tokens: Option<&str>) -> MountRequest {
    let mut attrs: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    attrs.insert("csi.storage.k8s.io/pod.name".into(), POD.into());
    attrs.insert("csi.storage.k8s.io/pod.namespace".into(), NS.into());
    attrs.insert("csi.storage.k8s.io/pod.uid".into(), "0b7c1d2e-uid".into());
    attrs.insert("csi.storage.k8s.io/serviceAccount.name".into(), sa.into());
    attrs.insert("csi.storage.k8s.io/ephemeral".into(), "false".into());
    attrs.insert("secretProviderClass".into(), "e2e".into());
    if let Some(t) = tokens {
        attrs.insert("csi.storage.k8s.io/serviceAccount.tokens".into(), t.into());
    }
    MountRequest {
        attributes: serde_json::to_string(&attrs).expect("attributes"),
        secrets: "{}".into(),
        target_path: target.display().to_string(),
        permission: "420".into(),
        current_object_version: vec![],
    }
}

/// A fresh, empty target directory.
fn target(process: &AscpProcess, name: &str) -> PathBuf {
    let dir = process.dir().join("targets").join(name);
    std::fs::create_dir_all(&dir).expect("create a target directory");
    dir
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {file} in {}: {e}", dir.display()))
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // Not the atomic-writer layout's hidden entries.
                .filter(|n| !n.starts_with(".."))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn version_of<'a>(response: &'a MountResponse, id: &str) -> &'a str {
    response
        .object_version
        .iter()
        .find(|v| v.id == id)
        .map(|v| v.version.as_str())
        .unwrap_or_else(|| panic!("no version for {id} in {:?}", response.object_version))
}

#[track_caller]
fn expect_ok(result: Result<MountResponse, tonic::Status>, process: &AscpProcess) -> MountResponse {
    match result {
        Ok(r) => r,
        Err(s) => panic!(
            "mount failed: {:?}: {}\nascp log:\n{}",
            s.code(),
            s.message(),
            process.log()
        ),
    }
}

#[track_caller]
fn expect_err(
    result: Result<MountResponse, tonic::Status>,
    code: Code,
    needles: &[&str],
) -> String {
    let status = match result {
        Ok(r) => panic!("mount succeeded but should fail with {code:?}: {r:?}"),
        Err(s) => s,
    };
    let message = status.message().to_owned();
    assert_eq!(status.code(), code, "{message}");
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }
    message
}

const IRSA_OBJECTS: &str = r#"
- objectName: "web/db"
  objectType: secretsmanager
  objectAlias: db.json
  jmesPath:
    - path: user
      objectAlias: db-user
- objectName: "/web/url"
  objectType: ssmparameter
  objectAlias: url
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irsa_mounts_as_the_service_account_role_caches_credentials_and_never_logs_tokens() {
    let world = World::start().await;
    let secret = create_secret_string(
        &world.sm(REGION).await,
        "web/db",
        r#"{"user":"app","password":"pw-1"}"#,
    )
    .await;
    put_parameter(
        &world.ssm(REGION).await,
        "/web/url",
        "https://shop.example",
        ParameterType::String,
    )
    .await;
    let ascp = world.ascp(&[], "trace").await;

    let params = [("region", REGION), ("objects", IRSA_OBJECTS)];
    let token1 = tokens(Some(IRSA_TOKEN), Some(POD_TOKEN));
    let dir = target(&ascp, "first");
    let response = expect_ok(
        ascp.mount(request(&dir, SA, &params, Some(&token1))).await,
        &ascp,
    );
    assert_eq!(read(&dir, "db.json"), r#"{"user":"app","password":"pw-1"}"#);
    assert_eq!(read(&dir, "db-user"), "app");
    assert_eq!(read(&dir, "url"), "https://shop.example");
    assert_eq!(version_of(&response, "db.json"), secret.version_id);
    assert_eq!(version_of(&response, "url"), "1");

    // One STS call, with the annotation's role, the pod's token and a
    // session name derived from the pod.
    assert_eq!(world.proxy.calls("AssumeRoleWithWebIdentity"), 1);
    let body = &world.proxy.bodies("AssumeRoleWithWebIdentity")[0];
    assert!(
        body.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fweb"),
        "{body}"
    );
    assert!(body.contains("RoleSessionName=ascp-shop-web-0"), "{body}");
    assert!(
        body.contains("IRSA-DISTINCTIVE-TOKEN"),
        "the pod's token is what STS gets"
    );
    assert_eq!(world.kube.calls("serviceaccounts"), 1);

    // Ten rotation remounts with the same token: no STS call, no API read.
    for i in 0..10 {
        let dir = target(&ascp, &format!("remount-{i}"));
        expect_ok(
            ascp.mount(request(&dir, SA, &params, Some(&token1))).await,
            &ascp,
        );
        assert_eq!(read(&dir, "db-user"), "app");
    }
    assert_eq!(world.proxy.calls("AssumeRoleWithWebIdentity"), 1);
    assert_eq!(
        world.kube.calls("serviceaccounts"),
        1,
        "ServiceAccount cached for 30 s"
    );

    // A new token: new credentials.
    let token2 = tokens(Some(&format!("{IRSA_TOKEN}-rotated")), None);
    let dir = target(&ascp, "new-token");
    expect_ok(
        ascp.mount(request(&dir, SA, &params, Some(&token2))).await,
        &ascp,
    );
    assert_eq!(world.proxy.calls("AssumeRoleWithWebIdentity"), 2);

    // Fifty concurrent first mounts with one new token share one call.
    let token3 = tokens(Some(&format!("{IRSA_TOKEN}-burst")), None);
    let mounts = (0..50).map(|i| {
        let dir = target(&ascp, &format!("burst-{i}"));
        let request = request(&dir, SA, &params, Some(&token3));
        let ascp = &ascp;
        async move { (dir, ascp.mount(request).await) }
    });
    for (dir, result) in futures::future::join_all(mounts).await {
        expect_ok(result, &ascp);
        assert_eq!(read(&dir, "db-user"), "app");
    }
    assert_eq!(world.proxy.calls("AssumeRoleWithWebIdentity"), 3);

    // The failover region gets its own regional STS call.
    let failover = [
        ("region", REGION),
        ("failoverRegion", "us-west-2"),
        (
            "objects",
            "- objectName: web/db\n  objectType: secretsmanager\n",
        ),
    ];
    create_secret_string(&world.sm("us-west-2").await, "web/db", "west").await;
    let dir = target(&ascp, "failover");
    expect_ok(
        ascp.mount(request(&dir, SA, &failover, Some(&token1)))
            .await,
        &ascp,
    );
    assert_eq!(world.proxy.calls("AssumeRoleWithWebIdentity"), 4);

    // Redaction: at RUST_LOG=trace no token appears anywhere in the log.
    let log = ascp.log();
    assert!(
        log.contains("mount finished"),
        "the log is there: {}",
        &log[..log.len().min(2000)]
    );
    for secret in ["DISTINCTIVE-TOKEN", "node-role-secret", "pw-1"] {
        assert!(!log.contains(secret), "{secret} leaked into the log");
    }
    // Nor do the STS-issued session credentials the provider signs with: the
    // session token travels in each signed request's x-amz-security-token.
    let session_tokens: Vec<String> = world
        .proxy
        .requests("GetSecretValue")
        .iter()
        .flat_map(|r| r.headers.iter())
        .filter(|(name, _)| name.eq_ignore_ascii_case("x-amz-security-token"))
        .map(|(_, value)| value.clone())
        .collect();
    assert!(
        !session_tokens.is_empty(),
        "requests were signed with session credentials"
    );
    for token in &session_tokens {
        assert!(
            token.len() > 16 && !log.contains(token.as_str()),
            "a session token leaked into the log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_identity_through_the_agent_over_ipv4_then_ipv6() {
    let world = World::start().await;
    create_secret_string(&world.sm(REGION).await, "web/db", "from-pod-identity").await;
    let ascp = world.ascp(&[], "info").await;
    let objects = "- objectName: web/db\n  objectType: secretsmanager\n";
    let params = [
        ("region", REGION),
        ("objects", objects),
        ("usePodIdentity", "true"),
    ];
    let token = tokens(Some(IRSA_TOKEN), Some(POD_TOKEN));

    let dir = target(&ascp, "ipv4");
    expect_ok(
        ascp.mount(request(&dir, SA, &params, Some(&token))).await,
        &ascp,
    );
    assert_eq!(read(&dir, "web_db"), "from-pod-identity");
    assert_eq!(world.agent4.calls(), 1);
    assert_eq!(
        world.agent4.tokens(),
        vec![POD_TOKEN.to_owned()],
        "the Pod Identity token, as is"
    );
    assert_eq!(world.agent6.calls(), 0);
    assert_eq!(
        world.proxy.calls("AssumeRoleWithWebIdentity"),
        0,
        "no STS for Pod Identity"
    );
    assert_eq!(
        world.kube.calls("serviceaccounts"),
        0,
        "no ServiceAccount read for Pod Identity"
    );

    // Remounts: served from the cache.
    for i in 0..10 {
        let dir = target(&ascp, &format!("again-{i}"));
        expect_ok(
            ascp.mount(request(&dir, SA, &params, Some(&token))).await,
            &ascp,
        );
    }
    assert_eq!(world.agent4.calls(), 1);

    // preferredAddressType: ipv6 goes to the IPv6 agent.
    let v6 = [
        ("region", REGION),
        ("objects", objects),
        ("usePodIdentity", "true"),
        ("preferredAddressType", "IPv6"),
    ];
    let dir = target(&ascp, "ipv6");
    expect_ok(
        ascp.mount(request(&dir, SA, &v6, Some(&token))).await,
        &ascp,
    );
    assert_eq!(world.agent6.calls(), 1);
    assert_eq!(world.agent4.calls(), 1);

    // The IPv4 agent is down (nothing listens there): auto falls back to IPv6.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_url = format!(
        "http://{}/v1/credentials",
        closed.local_addr().expect("addr")
    );
    drop(closed);
    let down = world
        .ascp(
            &[&format!("--pod-identity-endpoint-ipv4={closed_url}")],
            "info",
        )
        .await;
    let dir = target(&down, "fallback");
    expect_ok(
        down.mount(request(&dir, SA, &params, Some(&token))).await,
        &down,
    );
    assert_eq!(read(&dir, "web_db"), "from-pod-identity");
    assert_eq!(world.agent6.calls(), 2);
    // ... but with ipv4 preferred there is no fallback.
    let v4 = [
        ("region", REGION),
        ("objects", objects),
        ("usePodIdentity", "true"),
        ("preferredAddressType", "ipv4"),
    ];
    let dir = target(&down, "v4-only");
    expect_err(
        down.mount(request(&dir, SA, &v4, Some(&token))).await,
        Code::Unknown,
        &["Pod Identity", &closed_url],
    );
    assert!(files(&dir).is_empty());

    // preferredAddressType none of ipv4, ipv6, auto: auto, as ASCP, with one
    // warning line (the IPv4 agent is down here: IPv4, then IPv6). Under
    // IRSA it is never read: no warning, no failure.
    let lenient = world
        .ascp(
            &[&format!("--pod-identity-endpoint-ipv4={closed_url}")],
            "info",
        )
        .await;
    let bogus = [
        ("region", REGION),
        ("objects", objects),
        ("usePodIdentity", "true"),
        ("preferredAddressType", "bogus"),
    ];
    let dir = target(&lenient, "bogus");
    expect_ok(
        lenient.mount(request(&dir, SA, &bogus, Some(&token))).await,
        &lenient,
    );
    assert_eq!(read(&dir, "web_db"), "from-pod-identity");
    assert_eq!(world.agent6.calls(), 3);
    let irsa_bogus = [
        ("region", REGION),
        ("objects", objects),
        ("preferredAddressType", "bogus"),
    ];
    let dir = target(&lenient, "bogus-irsa");
    expect_ok(
        lenient
            .mount(request(&dir, SA, &irsa_bogus, Some(&token)))
            .await,
        &lenient,
    );
    assert_eq!(world.agent6.calls(), 3, "IRSA asks no agent");
    let log = lenient.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("preferredAddressType"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("WARN") && warnings[0].contains("\"bogus\" is not one of"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_identity_through_eks_auth_and_region_from_the_node() {
    let world = World::start().await;
    // The secret lives only in the node's region; no region anywhere else.
    create_secret_string(
        &world.sm(NODE_REGION).await,
        "web/db",
        "from-the-node-region",
    )
    .await;
    let ascp = world
        .ascp(
            &[
                "--pod-identity-mode=eks-auth",
                &format!("--cluster-name={CLUSTER}"),
            ],
            "info",
        )
        .await;
    let objects = "- objectName: web/db\n  objectType: secretsmanager\n";
    let params = [("objects", objects), ("usePodIdentity", "true")];
    let token = tokens(None, Some(POD_TOKEN));

    let dir = target(&ascp, "eks-auth");
    expect_ok(
        ascp.mount(request(&dir, SA, &params, Some(&token))).await,
        &ascp,
    );
    assert_eq!(read(&dir, "web_db"), "from-the-node-region");
    assert_eq!(
        world.eks.requests(),
        vec![(CLUSTER.to_owned(), POD_TOKEN.to_owned())],
        "EKS Auth got the cluster name and the pod's token"
    );
    assert_eq!(
        world.agent4.calls() + world.agent6.calls(),
        0,
        "no agent in eks-auth mode"
    );
    assert_eq!(world.kube.calls("pods"), 1);
    assert_eq!(world.kube.calls("nodes"), 1);

    for i in 0..5 {
        let dir = target(&ascp, &format!("again-{i}"));
        expect_ok(
            ascp.mount(request(&dir, SA, &params, Some(&token))).await,
            &ascp,
        );
    }
    assert_eq!(world.eks.calls(), 1, "EKS Auth credentials are cached");
    assert_eq!(world.kube.calls("pods"), 1, "pod → node is cached");
    assert_eq!(world.kube.calls("nodes"), 1, "node → region is cached");

    // EKS Auth refusing the token.
    world
        .eks
        .push(EksAuthBehavior::Error(401, "InvalidTokenException".into()));
    let dir = target(&ascp, "refused");
    let other_token = tokens(None, Some("another-pod-token"));
    expect_err(
        ascp.mount(request(&dir, SA, &params, Some(&other_token)))
            .await,
        Code::PermissionDenied,
        &["AssumeRoleForPodIdentity", CLUSTER, "InvalidTokenException"],
    );
    assert!(files(&dir).is_empty());

    // A node without the region label: a clear FailedPrecondition (IRSA).
    world.kube.add_pod(NS, "lost-0", Some("node-b"));
    world.kube.add_node("node-b", None);
    let mut lost = request(
        &dir,
        SA,
        &[("objects", objects)],
        Some(&tokens(Some(IRSA_TOKEN), None)),
    );
    lost.attributes = lost.attributes.replace("\"web-0\"", "\"lost-0\"");
    expect_err(
        ascp.mount(lost).await,
        Code::FailedPrecondition,
        &["node-b", "topology.kubernetes.io/region"],
    );

    // The wrong cluster name is the operator's to fix.
    let wrong = world
        .ascp(
            &["--pod-identity-mode=eks-auth", "--cluster-name=nope"],
            "info",
        )
        .await;
    let dir = target(&wrong, "wrong-cluster");
    expect_err(
        wrong.mount(request(&dir, SA, &params, Some(&token))).await,
        Code::FailedPrecondition,
        &["nope", "ResourceNotFoundException"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_account_arn_and_assume_role_chain() {
    let world = World::start().await;
    // A secret in another account, made with that account's credentials.
    let other = account_credentials(&world.moto.endpoint(), OTHER_ACCOUNT).await;
    let other_config =
        sdk_config_with_credentials(&world.moto.endpoint(), REGION, other.clone()).await;
    let shared = create_secret_string(
        &aws_sdk_secretsmanager::Client::new(&other_config),
        "shared/api-key",
        "cross-account-value",
    )
    .await;
    put_parameter(
        &aws_sdk_ssm::Client::new(&other_config),
        "/shared/endpoint",
        "https://payments.example",
        ParameterType::String,
    )
    .await;
    assert!(shared.arn.contains(OTHER_ACCOUNT), "{}", shared.arn);
    let ascp = world.ascp(&[], "info").await;
    let token = tokens(Some(IRSA_TOKEN), None);

    // By ARN with the pod's own role (moto has no resource policies: the
    // proxy plays the other account's side).
    world
        .proxy
        .map_account(OTHER_ACCOUNT, other.access_key_id());
    let objects = format!("- objectName: \"{}\"\n  objectAlias: api-key\n", shared.arn);
    let dir = target(&ascp, "by-arn");
    expect_ok(
        ascp.mount(request(
            &dir,
            SA,
            &[("region", REGION), ("objects", &objects)],
            Some(&token),
        ))
        .await,
        &ascp,
    );
    assert_eq!(read(&dir, "api-key"), "cross-account-value");
    world.proxy.clear_rules();

    // By name through assumeRoleArn: the chained role acts in the other
    // account, where the standard-tier parameter and the secret live.
    let reader = format!("arn:aws:iam::{OTHER_ACCOUNT}:role/shared-reader");
    let objects = "- objectName: shared/api-key\n  objectType: secretsmanager\n  objectAlias: api-key\n- objectName: /shared/endpoint\n  objectType: ssmparameter\n  objectAlias: endpoint\n";
    let chain = [
        ("region", REGION),
        ("objects", objects),
        ("assumeRoleArn", reader.as_str()),
        ("assumeRoleExternalId", "ext-42"),
    ];
    let before = world.proxy.calls("AssumeRoleWithWebIdentity");
    let dir = target(&ascp, "chain");
    expect_ok(
        ascp.mount(request(&dir, SA, &chain, Some(&token))).await,
        &ascp,
    );
    assert_eq!(read(&dir, "api-key"), "cross-account-value");
    assert_eq!(read(&dir, "endpoint"), "https://payments.example");
    assert_eq!(world.proxy.calls("AssumeRole"), 1);
    let body = &world.proxy.bodies("AssumeRole")[0];
    assert!(body.contains("ExternalId=ext-42"), "{body}");
    assert!(body.contains("shared-reader"), "{body}");
    // The chain starts from the pod's own (cached) IRSA credentials.
    assert_eq!(world.proxy.calls("AssumeRoleWithWebIdentity"), before);

    for i in 0..5 {
        let dir = target(&ascp, &format!("chain-{i}"));
        expect_ok(
            ascp.mount(request(&dir, SA, &chain, Some(&token))).await,
            &ascp,
        );
    }
    assert_eq!(
        world.proxy.calls("AssumeRole"),
        1,
        "chained credentials are cached"
    );

    // Without the chain the pod's own account has no such secret.
    let dir = target(&ascp, "no-chain");
    let secret_only = "- objectName: shared/api-key\n  objectType: secretsmanager\n";
    expect_err(
        ascp.mount(request(
            &dir,
            SA,
            &[("region", REGION), ("objects", secret_only)],
            Some(&token),
        ))
        .await,
        Code::NotFound,
        &["shared/api-key"],
    );

    // The other role refusing: PermissionDenied naming it.
    world
        .proxy
        .add_rule(Rule::new().operation("AssumeRole").respond_with(
            403,
            "AccessDenied",
            "not trusted",
        ));
    let refused = [
        ("region", REGION),
        ("objects", objects),
        ("assumeRoleArn", "arn:aws:iam::444455556666:role/untrusting"),
    ];
    let dir = target(&ascp, "refused");
    expect_err(
        ascp.mount(request(&dir, SA, &refused, Some(&token))).await,
        Code::PermissionDenied,
        &["untrusting", "AccessDenied"],
    );
    assert!(files(&dir).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_give_clear_codes_write_nothing_and_the_server_keeps_serving() {
    let world = World::start().await;
    create_secret_string(&world.sm(REGION).await, "web/db", "value").await;
    for sa in [
        "plain",
        "bad-arn",
        "refused",
        "bad-token",
        "fresh",
        "forbidden",
    ] {
        let role = match sa {
            "plain" => None,
            "bad-arn" => Some("arn:aws:iam::123:role"),
            _ => Some(ROLE),
        };
        world.kube.add_service_account(NS, sa, role);
    }
    let ascp = world.ascp(&[], "debug").await;
    let objects = "- objectName: web/db\n  objectType: secretsmanager\n";
    let irsa = [("region", REGION), ("objects", objects)];
    let pod_identity = [
        ("region", REGION),
        ("objects", objects),
        ("usePodIdentity", "true"),
    ];
    let good = tokens(Some(IRSA_TOKEN), Some(POD_TOKEN));
    let mut n = 0;
    let mut dir = || {
        n += 1;
        target(&ascp, &format!("fault-{n}"))
    };

    // Tokens.
    let cases: [(Option<String>, &[&str]); 4] = [
        (None, &["no csi.storage.k8s.io/serviceAccount.tokens"]),
        (Some("{not json".into()), &["not a JSON object"]),
        (
            Some(tokens(None, Some(POD_TOKEN))),
            &["no token for this audience"],
        ),
        (Some(tokens(Some(""), None)), &["empty"]),
    ];
    let mut dirs = Vec::new();
    for (token, needles) in cases {
        let d = dir();
        let message = expect_err(
            ascp.mount(request(&d, SA, &irsa, token.as_deref())).await,
            Code::FailedPrecondition,
            needles,
        );
        assert!(
            message.contains("tokenRequests") && message.contains("sts.amazonaws.com"),
            "{message}"
        );
        dirs.push(d);
    }
    let d = dir();
    expect_err(
        ascp.mount(request(
            &d,
            SA,
            &pod_identity,
            Some(&tokens(Some(IRSA_TOKEN), None)),
        ))
        .await,
        Code::FailedPrecondition,
        &["pods.eks.amazonaws.com", "tokenRequests"],
    );
    dirs.push(d);

    // ServiceAccounts.
    let cases: [(&str, &[&str]); 3] = [
        (
            "ghost",
            &["service account ghost in namespace shop", "not found"],
        ),
        (
            "plain",
            &[
                "service account plain in namespace shop",
                "eks.amazonaws.com/role-arn",
            ],
        ),
        (
            "bad-arn",
            &["service account bad-arn", "not an IAM role ARN"],
        ),
    ];
    for (sa, needles) in cases {
        let d = dir();
        expect_err(
            ascp.mount(request(&d, sa, &irsa, Some(&good))).await,
            Code::FailedPrecondition,
            needles,
        );
        dirs.push(d);
    }

    // STS refusing the role or the token.
    let rule = world.proxy.add_rule(
        Rule::new()
            .operation("AssumeRoleWithWebIdentity")
            .times(1)
            .respond_with(
                403,
                "AccessDenied",
                "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            ),
    );
    let d = dir();
    expect_err(
        ascp.mount(request(&d, "refused", &irsa, Some(&good))).await,
        Code::PermissionDenied,
        &[
            "AssumeRoleWithWebIdentity",
            ROLE,
            "service account refused",
            "AccessDenied",
        ],
    );
    assert_eq!(world.proxy.fired(rule), 1);
    dirs.push(d);
    world.proxy.add_rule(
        Rule::new()
            .operation("AssumeRoleWithWebIdentity")
            .times(1)
            .respond_with(
                400,
                "InvalidIdentityToken",
                "Couldn't retrieve verification key",
            ),
    );
    let d = dir();
    expect_err(
        ascp.mount(request(&d, "bad-token", &irsa, Some(&good)))
            .await,
        Code::PermissionDenied,
        &["InvalidIdentityToken"],
    );
    dirs.push(d);

    // The Kubernetes API down, or refusing us.
    world.kube.set_mode(KubeMode::Unavailable);
    let d = dir();
    expect_err(
        ascp.mount(request(&d, "fresh", &irsa, Some(&good))).await,
        Code::Unknown,
        &["service account fresh", "503"],
    );
    dirs.push(d);
    world.kube.set_mode(KubeMode::Forbidden);
    let d = dir();
    expect_err(
        ascp.mount(request(&d, "forbidden", &irsa, Some(&good)))
            .await,
        Code::PermissionDenied,
        &["service account forbidden", "403", "RBAC"],
    );
    dirs.push(d);
    world.kube.set_mode(KubeMode::Normal);

    // The agent failing: 500 on every attempt (its answer in the message),
    // garbage, a 400 that echoes the token (redacted), a 429 then success.
    let other = |i: usize| tokens(None, Some(&format!("{POD_TOKEN}-{i}")));
    world
        .agent4
        .set_behavior(AgentBehavior::Status(500, "agent exploded".into()));
    world
        .agent6
        .set_behavior(AgentBehavior::Status(500, "agent6 exploded".into()));
    let d = dir();
    expect_err(
        ascp.mount(request(&d, SA, &pod_identity, Some(&other(1))))
            .await,
        Code::Unknown,
        &["HTTP 500", "agent exploded", "agent6 exploded", "attempts"],
    );
    dirs.push(d);
    assert!(world.agent4.calls() > 1, "500s are retried");
    world.agent4.set_behavior(AgentBehavior::Garbage);
    world.agent6.set_behavior(AgentBehavior::Garbage);
    let d = dir();
    expect_err(
        ascp.mount(request(&d, SA, &pod_identity, Some(&other(2))))
            .await,
        Code::Unknown,
        &["unusable answer"],
    );
    dirs.push(d);
    let echoed = format!("{POD_TOKEN}-3");
    world
        .agent4
        .set_behavior(AgentBehavior::Status(400, format!("bad token {echoed}")));
    world
        .agent6
        .set_behavior(AgentBehavior::Status(400, format!("bad token {echoed}")));
    let d = dir();
    let message = expect_err(
        ascp.mount(request(&d, SA, &pod_identity, Some(&other(3))))
            .await,
        Code::FailedPrecondition,
        &["HTTP 400", "bad token <redacted>"],
    );
    assert!(!message.contains("DISTINCTIVE"), "{message}");
    dirs.push(d);
    world.agent4.set_behavior(AgentBehavior::ok());
    world.agent6.set_behavior(AgentBehavior::ok());
    world.agent4.reset_counts();
    world
        .agent4
        .push(AgentBehavior::Status(429, "slow down".into()));
    let d = dir();
    expect_ok(
        ascp.mount(request(&d, SA, &pod_identity, Some(&other(4))))
            .await,
        &ascp,
    );
    assert_eq!(world.agent4.calls(), 2, "a 429 is retried");

    // Nothing was written by any failed mount, and the server still serves.
    for d in &dirs {
        assert!(files(d).is_empty(), "{} has {:?}", d.display(), files(d));
    }
    assert!(ascp.is_running());
    let d = dir();
    expect_ok(ascp.mount(request(&d, SA, &irsa, Some(&good))).await, &ascp);
    assert_eq!(read(&d, "web_db"), "value");
    let log = ascp.log();
    assert!(
        !log.contains("DISTINCTIVE-TOKEN"),
        "a token leaked into the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_mount_finish_then_removes_the_socket() {
    let world = World::start().await;
    create_secret_string(&world.sm(REGION).await, "web/slow", "slow-value").await;
    let ascp = world.ascp(&["--shutdown-grace=10s"], "info").await;
    // The secret read is held at the proxy for 3 s; SIGTERM goes once the
    // proxy has it, so the mount is in flight.
    world.proxy.add_rule(
        Rule::new()
            .operation("GetSecretValue")
            .delay(Duration::from_secs(3)),
    );
    let objects = "- objectName: web/slow\n  objectType: secretsmanager\n";
    let params = [("region", REGION), ("objects", objects)];
    let token = tokens(Some(IRSA_TOKEN), None);
    let dir = target(&ascp, "slow");
    let mut client = ascp.client().await;
    let request = request(&dir, SA, &params, Some(&token));
    let in_flight = tokio::spawn(async move { client.mount(request).await });
    while world.proxy.calls("GetSecretValue") == 0 {
        assert!(!in_flight.is_finished(), "the mount ended before its read");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ascp.terminate();

    let answer = in_flight
        .await
        .expect("the mount task")
        .expect("the in-flight mount succeeds");
    assert!(
        answer
            .into_inner()
            .object_version
            .iter()
            .any(|v| v.id == "web_slow")
    );
    assert_eq!(read(&dir, "web_slow"), "slow-value");
    let status = ascp
        .wait_exit(Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("ascp did not exit after SIGTERM; its log:\n{}", ascp.log()));
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        ascp.log()
    );
    assert!(!ascp.socket().exists(), "the socket is removed at exit");
    assert!(ascp.log().contains("shutting down"), "{}", ascp.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_slashes_jmespath_on_parameters_and_failover_against_moto() {
    let world = World::start().await;
    let east = world.sm(REGION).await;
    let west = world.sm("us-west-2").await;
    create_secret_string(&east, "app/db/pass", "east-pass").await;
    create_secret_string(&west, "app/db/pass", "west-pass").await;
    create_secret_string(&west, "app/db/pass-replica", "replica-pass").await;
    put_parameter(
        &world.ssm(REGION).await,
        "/app/cfg",
        r#"{"endpoint":"db.internal","port":"5432"}"#,
        ParameterType::String,
    )
    .await;
    let ascp = world.ascp(&[], "info").await;
    let token = tokens(Some(IRSA_TOKEN), None);
    let objects = r#"
- objectName: app/db/pass
  objectType: secretsmanager
- objectName: /app/cfg
  objectType: ssmparameter
  jmesPath:
    - path: endpoint
      objectAlias: cfg/endpoint
"#;

    // Each pathTranslation setting, against the real stores.
    for (translation, want) in [
        ("", ["app_db_pass", "_app_cfg", "cfg_endpoint"]),
        ("-", ["app-db-pass", "-app-cfg", "cfg-endpoint"]),
        ("False", ["app/db/pass", "app/cfg", "cfg/endpoint"]),
    ] {
        let mut params = vec![("region", REGION), ("objects", objects)];
        if !translation.is_empty() {
            params.push(("pathTranslation", translation));
        }
        let dir = target(&ascp, &format!("translation{translation}"));
        let response = expect_ok(
            ascp.mount(request(&dir, SA, &params, Some(&token))).await,
            &ascp,
        );
        assert_eq!(read(&dir, want[0]), "east-pass", "{translation:?}");
        assert_eq!(
            read(&dir, want[1]),
            r#"{"endpoint":"db.internal","port":"5432"}"#
        );
        assert_eq!(
            read(&dir, want[2]),
            "db.internal",
            "jmesPath on an SSM JSON value"
        );
        assert_eq!(version_of(&response, want[2]), "1");
    }

    // Failover: a 5xx in the primary gives the failover region's value; the
    // failoverObject names another secret there.
    let failover_objects = r#"
- objectName: app/db/pass
  objectType: secretsmanager
  objectAlias: pass
  failoverObject:
    objectName: app/db/pass-replica
"#;
    let params = [
        ("region", REGION),
        ("failoverRegion", "us-west-2"),
        ("objects", failover_objects),
    ];
    let dir = target(&ascp, "failover-healthy");
    expect_ok(
        ascp.mount(request(&dir, SA, &params, Some(&token))).await,
        &ascp,
    );
    assert_eq!(
        read(&dir, "pass"),
        "east-pass",
        "the primary wins when both answer"
    );
    let replica = world.proxy.requests("GetSecretValue");
    assert!(
        replica
            .iter()
            .any(|r| r.region == "us-west-2" && r.body.contains("app/db/pass-replica")),
        "the failover region is asked for the failoverObject's name"
    );

    let outage = world.proxy.add_rule(
        Rule::new()
            .region(REGION)
            .operation("GetSecretValue")
            .respond(500, "InternalServiceError"),
    );
    let dir = target(&ascp, "failover-outage");
    expect_ok(
        ascp.mount(request(&dir, SA, &params, Some(&token))).await,
        &ascp,
    );
    assert_eq!(read(&dir, "pass"), "replica-pass");
    assert!(world.proxy.fired(outage) > 0);

    // A client error (4xx) in either region fails the mount.
    world.proxy.clear_rules();
    world.proxy.add_rule(
        Rule::new()
            .region("us-west-2")
            .operation("GetSecretValue")
            .respond(400, "AccessDeniedException"),
    );
    let dir = target(&ascp, "failover-denied");
    expect_err(
        ascp.mount(request(&dir, SA, &params, Some(&token))).await,
        Code::PermissionDenied,
        &["app/db/pass-replica", "us-west-2", "AccessDeniedException"],
    );
    assert!(files(&dir).is_empty(), "nothing written");
    world.proxy.clear_rules();
    world.proxy.add_rule(
        Rule::new()
            .region(REGION)
            .operation("GetSecretValue")
            .respond(400, "AccessDeniedException"),
    );
    expect_err(
        ascp.mount(request(&dir, SA, &params, Some(&token))).await,
        Code::PermissionDenied,
        &["app/db/pass", REGION],
    );
    assert!(files(&dir).is_empty(), "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_of_40_secrets_and_25_parameters_and_its_rotation_remount_cost() {
    let world = World::start().await;
    let sm = world.sm(REGION).await;
    let ssm = world.ssm(REGION).await;
    let mut objects = String::new();
    for i in 0..40 {
        create_secret_string(&sm, &format!("bulk/s{i:02}"), &format!("secret-{i}")).await;
        objects.push_str(&format!(
            "- {{objectName: bulk/s{i:02}, objectType: secretsmanager}}\n"
        ));
    }
    for i in 0..25 {
        put_parameter(
            &ssm,
            &format!("/bulk/p{i:02}"),
            &format!("param-{i}"),
            ParameterType::String,
        )
        .await;
        objects.push_str(&format!(
            "- {{objectName: /bulk/p{i:02}, objectType: ssmparameter}}\n"
        ));
    }
    let params = [("region", REGION), ("objects", objects.as_str())];
    let token = tokens(Some(IRSA_TOKEN), None);

    for (flags, first, remount) in [
        (
            vec![],
            [
                ("GetSecretValue", 40),
                ("GetParameters", 3),
                ("DescribeSecret", 0),
            ],
            [
                ("GetSecretValue", 0),
                ("GetParameters", 3),
                ("DescribeSecret", 40),
            ],
        ),
        (
            // The first mount's batch answers are the node's version checks
            // for the window: the remount inside it asks nothing of them.
            vec!["--batch-get-secret-value=true"],
            [
                ("BatchGetSecretValue", 2),
                ("GetParameters", 3),
                ("GetSecretValue", 0),
            ],
            [
                ("BatchGetSecretValue", 0),
                ("GetParameters", 3),
                ("DescribeSecret", 0),
            ],
        ),
        (
            // Every remount checked (a zero window): the 40 misses are
            // re-read in 2 batches rather than checked with 40 DescribeSecret.
            vec![
                "--batch-get-secret-value=true",
                "--rotation-check-window=0s",
            ],
            [
                ("BatchGetSecretValue", 2),
                ("GetParameters", 3),
                ("GetSecretValue", 0),
            ],
            [
                ("BatchGetSecretValue", 2),
                ("GetParameters", 3),
                ("DescribeSecret", 0),
            ],
        ),
        (
            // The driver writes the files in the atomic-writer layout; the
            // remount reads unchanged ones back through its links.
            vec!["--driver-writes-secrets"],
            [
                ("GetSecretValue", 40),
                ("GetParameters", 3),
                ("DescribeSecret", 0),
            ],
            [
                ("GetSecretValue", 0),
                ("GetParameters", 3),
                ("DescribeSecret", 40),
            ],
        ),
    ] {
        let ascp = world.ascp(&flags, "info").await;
        world.proxy.reset_counts();
        let dir = target(&ascp, "bulk");
        let response = expect_ok(
            ascp.mount(request(&dir, SA, &params, Some(&token))).await,
            &ascp,
        );
        for (op, n) in first {
            assert_eq!(world.proxy.calls(op), n, "{flags:?} first mount: {op}");
        }
        if !response.files.is_empty() {
            write_like_the_driver(&dir, &files_of(&response));
        }
        assert_eq!(files(&dir).len(), 65);
        assert_eq!(read(&dir, "bulk_s07"), "secret-7");
        assert_eq!(read(&dir, "_bulk_p24"), "param-24");

        // The driver's rotation remount, carrying what is mounted now.
        world.proxy.reset_counts();
        let mut again = request(&dir, SA, &params, Some(&token));
        again.current_object_version = response.object_version.clone();
        let second = expect_ok(ascp.mount(again).await, &ascp);
        for (op, n) in remount {
            assert_eq!(world.proxy.calls(op), n, "{flags:?} remount: {op}");
        }
        assert_eq!(second.object_version, response.object_version);
        assert_eq!(second.files, response.files);
        assert_eq!(
            read(&dir, "bulk_s39"),
            "secret-39",
            "unchanged contents reused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_writes_remount_of_a_pinned_version_makes_no_aws_call() {
    let world = World::start().await;
    let sm = world.sm(REGION).await;
    let created = create_secret_string(&sm, "pinned/db", "pinned-value").await;
    let objects = format!(
        "- {{objectName: pinned/db, objectType: secretsmanager, objectVersion: {}}}\n",
        created.version_id
    );
    let params = [("region", REGION), ("objects", objects.as_str())];
    let token = tokens(Some(IRSA_TOKEN), None);
    let ascp = world.ascp(&["--driver-writes-secrets"], "info").await;
    let dir = target(&ascp, "pinned");
    world.proxy.reset_counts();
    let response = expect_ok(
        ascp.mount(request(&dir, SA, &params, Some(&token))).await,
        &ascp,
    );
    assert_eq!(world.proxy.calls("GetSecretValue"), 1);
    assert!(write_like_the_driver(&dir, &files_of(&response)));
    assert_eq!(read(&dir, "pinned_db"), "pinned-value");

    world.proxy.reset_counts();
    let mut again = request(&dir, SA, &params, Some(&token));
    again.current_object_version = response.object_version.clone();
    let second = expect_ok(ascp.mount(again).await, &ascp);
    assert_eq!(
        world.proxy.total_calls(),
        0,
        "the pinned version is mounted: read back, nothing asked of AWS"
    );
    assert_eq!(second.files, response.files);
    assert_eq!(second.object_version, response.object_version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sts_failure_in_one_region_fails_over_and_an_sts_refusal_fails_the_mount() {
    const WEST: &str = "us-west-2";
    let world = World::start().await;
    create_secret_string(&world.sm(REGION).await, "sts/db", "east").await;
    create_secret_string(&world.sm(WEST).await, "sts/db", "west").await;
    let ascp = world.ascp(&[], "info").await;
    let objects = "- objectName: sts/db\n  objectType: secretsmanager\n  objectAlias: db\n";
    let alone = |region| [("region", region), ("objects", objects)];
    let failover = [
        ("region", REGION),
        ("failoverRegion", WEST),
        ("objects", objects),
    ];
    let sts_fails = |status, error_type| {
        world.proxy.clear_rules();
        world.proxy.add_rule(
            Rule::new()
                .operation("AssumeRoleWithWebIdentity")
                .respond(status, error_type),
        )
    };
    // Unsigned STS calls name no region, so each case first mounts one
    // region alone: its credentials are cached, and then only the other
    // region calls STS.

    // A 5xx from STS in the primary region alone: the failover region's value.
    let token = tokens(Some(&format!("{IRSA_TOKEN}-sts-outage")), None);
    let dir = target(&ascp, "sts-warm-west");
    expect_ok(
        ascp.mount(request(&dir, SA, &alone(WEST), Some(&token)))
            .await,
        &ascp,
    );
    let outage = sts_fails(503, "ServiceUnavailable");
    world.proxy.reset_counts();
    let dir = target(&ascp, "sts-outage");
    expect_ok(
        ascp.mount(request(&dir, SA, &failover, Some(&token))).await,
        &ascp,
    );
    assert_eq!(read(&dir, "db"), "west");
    assert!(world.proxy.fired(outage) > 0);
    assert_eq!(
        world.proxy.calls_in(REGION, "GetSecretValue"),
        0,
        "no credentials in the primary region, no fetch there"
    );
    assert_eq!(world.proxy.calls_in(WEST, "GetSecretValue"), 1);
    assert!(
        ascp.log()
            .contains("primary region failed; using the failover region's value"),
        "{}",
        ascp.log()
    );

    // A 4xx from STS in the primary region fails the mount.
    sts_fails(403, "AccessDenied");
    let dir = target(&ascp, "sts-refused-primary");
    expect_err(
        ascp.mount(request(&dir, SA, &failover, Some(&token))).await,
        Code::PermissionDenied,
        &["AssumeRoleWithWebIdentity", REGION, "AccessDenied"],
    );
    assert!(files(&dir).is_empty(), "nothing written");

    // A 4xx from STS in the failover region fails it too.
    world.proxy.clear_rules();
    let token = tokens(Some(&format!("{IRSA_TOKEN}-sts-refused")), None);
    let dir = target(&ascp, "sts-warm-east");
    expect_ok(
        ascp.mount(request(&dir, SA, &alone(REGION), Some(&token)))
            .await,
        &ascp,
    );
    sts_fails(403, "AccessDenied");
    let dir = target(&ascp, "sts-refused-failover");
    expect_err(
        ascp.mount(request(&dir, SA, &failover, Some(&token))).await,
        Code::PermissionDenied,
        &["AssumeRoleWithWebIdentity", WEST, "AccessDenied"],
    );
    assert!(files(&dir).is_empty(), "nothing written");
    world.proxy.clear_rules();
}
