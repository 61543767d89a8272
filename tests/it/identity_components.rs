//! The identity components against stub servers, in process: the Pod
//! Identity Agent client (retries, budget, fallback, the SDK credentials
//! trait) and the Kubernetes lookups (caches, error mapping, deadline, rate
//! limit). The whole path through the binary is in `e2e.rs`.

use crate::support;

use std::time::Duration;

use ascp::identity::kube::KubeLookups;
use ascp::identity::pod_identity::{AgentClient, AgentConfig, AgentCredentialsProvider};
use ascp::secret::Token;
use ascp::store::{AddressPreference, FailureKind};
use aws_credential_types::provider::ProvideCredentials;
use support::kube_api::{KubeApiStub, KubeMode};
use support::pod_identity_agent::{AGENT_ACCESS_KEY_ID, AgentBehavior, AgentStub};
use tonic::Code;

const TOKEN: &str = "eyJ.COMPONENT-DISTINCTIVE-TOKEN.sig";

fn config(ipv4: &str, ipv6: &str) -> AgentConfig {
    AgentConfig {
        ipv4_endpoint: ipv4.to_owned(),
        ipv6_endpoint: ipv6.to_owned(),
        attempt_timeout: Duration::from_millis(300),
        max_attempts: 4,
        retry_budget: Duration::from_secs(2),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(100),
    }
}

/// An endpoint where nothing listens.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/v1/credentials",
        listener.local_addr().expect("addr")
    );
    drop(listener);
    url
}

#[tokio::test]
async fn the_agent_client_retries_transient_failures() {
    let agent = AgentStub::start("127.0.0.1:0").await;
    agent.push(AgentBehavior::Status(500, "boom".into()));
    agent.push(AgentBehavior::Status(429, "slow down".into()));
    agent.push(AgentBehavior::Disconnect);
    let client = AgentClient::new(config(&agent.url(), &closed_url())).unwrap();
    let credentials = client
        .fetch(&Token::new(TOKEN), AddressPreference::Ipv4)
        .await
        .unwrap();
    assert_eq!(credentials.access_key_id(), AGENT_ACCESS_KEY_ID);
    assert!(credentials.expiry().is_some());
    assert_eq!(agent.calls(), 4);
    assert_eq!(agent.tokens()[0], TOKEN);
}

#[tokio::test]
async fn the_agent_client_stops_at_the_budget_and_at_client_errors() {
    let agent = AgentStub::start("127.0.0.1:0").await;
    agent.set_behavior(AgentBehavior::Hang);
    let mut c = config(&agent.url(), &closed_url());
    c.max_attempts = 100;
    c.retry_budget = Duration::from_millis(800);
    let client = AgentClient::new(c).unwrap();
    let e = client
        .fetch(&Token::new(TOKEN), AddressPreference::Ipv4)
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Unavailable);
    assert!(e.message.contains("no answer within"), "{}", e.message);
    // Attempts of at most 300 ms within 800 ms: the budget, not the 100
    // attempts allowed, ended the retries (a slower machine makes fewer).
    let attempts: u32 = e
        .message
        .split("(after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    assert!(attempts <= 3, "{}", e.message);

    // 403: not retried, PermissionDenied; 404 (no association): the
    // operator's to fix. The agent's message is passed on.
    let agent = AgentStub::start("127.0.0.1:0").await;
    let client = AgentClient::new(config(&agent.url(), &closed_url())).unwrap();
    agent.push(AgentBehavior::Status(403, r#"{"message":"denied"}"#.into()));
    let e = client
        .fetch(&Token::new(TOKEN), AddressPreference::Ipv4)
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.precondition),
        (FailureKind::PermissionDenied, false)
    );
    assert!(
        e.message.contains("HTTP 403") && e.message.contains("denied"),
        "{}",
        e.message
    );
    assert_eq!(agent.calls(), 1);
    agent.push(AgentBehavior::Status(
        400,
        "no association for this service account".into(),
    ));
    let e = client
        .fetch(&Token::new(TOKEN), AddressPreference::Ipv4)
        .await
        .unwrap_err();
    assert!(e.precondition, "{}", e.message);
    assert!(e.message.contains("no association"), "{}", e.message);
    assert!(!e.message.contains("DISTINCTIVE"));
}

#[tokio::test]
async fn auto_falls_back_to_ipv6_at_once_when_ipv4_refuses() {
    let agent6 = AgentStub::start("[::1]:0").await;
    let client = AgentClient::new(config(&closed_url(), &agent6.url())).unwrap();
    let credentials = client
        .fetch(&Token::new(TOKEN), AddressPreference::Auto)
        .await
        .unwrap();
    assert_eq!(credentials.access_key_id(), AGENT_ACCESS_KEY_ID);
    assert_eq!(agent6.calls(), 1);

    // Both refusing: Unavailable, naming both endpoints.
    let ipv4 = closed_url();
    let ipv6 = closed_url();
    let client = AgentClient::new(config(&ipv4, &ipv6)).unwrap();
    let e = client
        .fetch(&Token::new(TOKEN), AddressPreference::Auto)
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Unavailable);
    assert!(
        e.message.contains(&ipv4) && e.message.contains(&ipv6),
        "{}",
        e.message
    );
    // A refused IPv4 is tried once when IPv6 follows; the last endpoint
    // gets the retries.
    let ipv4_part = e.message.split("; ").find(|p| p.contains(&ipv4)).unwrap();
    assert!(!ipv4_part.contains("attempts"), "{}", e.message);
}

#[tokio::test]
async fn the_agent_client_is_an_sdk_credentials_provider() {
    let agent = AgentStub::start("127.0.0.1:0").await;
    let client = AgentClient::new(config(&agent.url(), &closed_url())).unwrap();
    let provider =
        AgentCredentialsProvider::new(client.clone(), Token::new(TOKEN), AddressPreference::Ipv4);
    assert!(!format!("{provider:?}").contains("DISTINCTIVE"));
    let credentials = provider.provide_credentials().await.unwrap();
    assert_eq!(credentials.access_key_id(), AGENT_ACCESS_KEY_ID);
    assert!(!format!("{credentials:?}").contains("stub-agent-secret"));
    agent.set_behavior(AgentBehavior::Garbage);
    assert!(provider.provide_credentials().await.is_err());
    assert!(
        AgentClient::new(config(
            "https://169.254.170.23/v1/credentials",
            &closed_url()
        ))
        .is_err()
    );
}

async fn lookups(stub: &KubeApiStub, qps: u32, burst: u32, timeout: Duration) -> KubeLookups {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    stub.write_kubeconfig(&path);
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.default_retry = false;
    KubeLookups::new(kube::Client::try_from(config).unwrap(), qps, burst, timeout)
}

#[tokio::test]
async fn kube_lookups_cache_and_explain_failures() {
    let stub = KubeApiStub::start().await;
    stub.add_service_account("shop", "web", Some("arn:aws:iam::123456789012:role/web"));
    stub.add_service_account("shop", "plain", None);
    stub.add_pod("shop", "web-0", Some("node-a"));
    stub.add_node("node-a", Some("eu-west-3"));
    let kube = lookups(&stub, 100, 100, Duration::from_millis(500)).await;

    for _ in 0..3 {
        assert_eq!(
            kube.role_arn("shop", "web").await.unwrap(),
            "arn:aws:iam::123456789012:role/web"
        );
        assert_eq!(
            kube.pod_region("shop", "web-0", "uid-1").await.unwrap(),
            "eu-west-3"
        );
    }
    assert_eq!(stub.calls("serviceaccounts"), 1);
    assert_eq!(stub.calls("pods"), 1);
    assert_eq!(stub.calls("nodes"), 1);

    let e = kube.role_arn("shop", "ghost").await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.full_message());
    assert!(
        e.full_message()
            .contains("service account ghost in namespace shop")
    );
    let e = kube.role_arn("shop", "plain").await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.full_message().contains("eks.amazonaws.com/role-arn"));
    let e = kube.pod_region("shop", "gone", "uid-2").await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.full_message());

    stub.set_mode(KubeMode::Forbidden);
    let e = kube.role_arn("shop", "other").await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.full_message());
    stub.set_mode(KubeMode::Hang);
    let e = kube.role_arn("shop", "slow").await.unwrap_err();
    assert_eq!(e.code(), Code::Unknown, "{}", e.full_message());
    assert!(
        e.full_message().contains("did not answer"),
        "{}",
        e.full_message()
    );
    // Cached answers still serve while the API is away.
    assert!(kube.role_arn("shop", "web").await.is_ok());
}

#[tokio::test]
async fn kube_lookups_are_rate_limited() {
    let stub = KubeApiStub::start().await;
    for i in 0..6 {
        stub.add_service_account(
            "ns",
            &format!("sa-{i}"),
            Some("arn:aws:iam::123456789012:role/r"),
        );
    }
    // Burst 2, then 5 a second: six reads take at least 4 × 200 ms. Only
    // the lower bound is the limiter's promise; how much longer they take
    // depends on the machine (the exact schedule is the unit test's, on
    // tokio's paused clock).
    let kube = lookups(&stub, 5, 2, Duration::from_secs(5)).await;
    let started = tokio::time::Instant::now();
    for i in 0..6 {
        kube.role_arn("ns", &format!("sa-{i}")).await.unwrap();
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(790), "{took:?}");
    assert_eq!(stub.calls("serviceaccounts"), 6);
}

/// Moves tokio's clock `by` without waiting, then lets it run again: the
/// stub's I/O runs on a running clock, the caches' ages see the jump.
async fn skip(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

#[tokio::test]
async fn kube_answers_that_fail_a_mount_are_reread_after_five_seconds() {
    let stub = KubeApiStub::start().await;
    stub.add_service_account("shop", "web", None);
    stub.add_service_account("shop", "typo", Some("arn:aws:iam::123456789012:user/web"));
    stub.add_pod("shop", "web-0", Some("node-a"));
    stub.add_node("node-a", None);
    let kube = lookups(&stub, 100, 100, Duration::from_secs(5)).await;
    let negative = ascp::identity::kube::NEGATIVE_TTL;
    assert_eq!(negative, Duration::from_secs(5));

    // A burst of mounts costs one read each.
    for _ in 0..3 {
        assert!(kube.role_arn("shop", "web").await.is_err());
        assert!(kube.role_arn("shop", "typo").await.is_err());
        assert!(kube.pod_region("shop", "web-0", "uid-1").await.is_err());
    }
    assert_eq!(stub.calls("serviceaccounts"), 2);
    assert_eq!(stub.calls("nodes"), 1);

    // The operator fixes all three; within the negative TTL the old answer
    // still holds.
    let role = "arn:aws:iam::123456789012:role/web";
    stub.add_service_account("shop", "web", Some(role));
    stub.add_service_account("shop", "typo", Some(role));
    stub.add_node("node-a", Some("eu-west-3"));
    // The clock stays paused while the cache answers (no I/O, no timer).
    tokio::time::pause();
    tokio::time::advance(negative - Duration::from_secs(1)).await;
    assert!(kube.role_arn("shop", "web").await.is_err());
    assert!(kube.pod_region("shop", "web-0", "uid-1").await.is_err());
    assert_eq!(stub.calls("serviceaccounts"), 2);
    assert_eq!(stub.calls("nodes"), 1);

    // After it, the next mount reads again and succeeds.
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::time::resume();
    assert_eq!(kube.role_arn("shop", "web").await.unwrap(), role);
    assert_eq!(kube.role_arn("shop", "typo").await.unwrap(), role);
    assert_eq!(
        kube.pod_region("shop", "web-0", "uid-1").await.unwrap(),
        "eu-west-3"
    );
    assert_eq!(stub.calls("serviceaccounts"), 4);
    assert_eq!(stub.calls("nodes"), 2);
    assert_eq!(stub.calls("pods"), 1, "the pod's node was found and kept");

    // Usable answers stay cached well past the negative TTL.
    skip(Duration::from_secs(20)).await;
    assert_eq!(kube.role_arn("shop", "web").await.unwrap(), role);
    assert_eq!(stub.calls("serviceaccounts"), 4);
}
