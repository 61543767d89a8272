//! The throttling scenario of issue 22 through the real `ascp` binary: the
//! node of [`super::rotation`] (moto behind the counting proxy, pods under
//! two IAM roles remounting as driver v1.6 does), every Secrets Manager and
//! SSM call answered `ThrottlingException` by the proxy for a while.
//! Shared by `tests/throttle.rs`, which asserts counts and outcomes, and
//! `examples/throttle.rs`, which prints rates.

use std::net::SocketAddr;

use futures::StreamExt;
use tonic::Code;

use super::proxy::{FaultProxy, Rule};
use super::rotation::{Node, Pod, request};

/// Remounts in flight at once, as kubelet republishes volumes.
pub const CONCURRENCY: usize = 4;
/// The throttled services, as the proxy reads them from the signature.
pub const SERVICES: [&str; 2] = ["secretsmanager", "ssm"];

/// What one round of mounts did.
#[derive(Debug, Default)]
pub struct Round {
    /// Mounts answered OK.
    pub ok: usize,
    /// Mounts that failed, with their status.
    pub failed: Vec<(Code, String)>,
    /// AWS calls the node made during the round.
    pub aws: usize,
}

impl Round {
    pub fn mounts(&self) -> usize {
        self.ok + self.failed.len()
    }

    pub fn add(&mut self, other: Round) {
        self.ok += other.ok;
        self.failed.extend(other.failed);
        self.aws += other.aws;
    }

    /// AWS calls per mount.
    pub fn per_mount(&self) -> f64 {
        self.aws as f64 / self.mounts().max(1) as f64
    }
}

/// Every pod mounts `objects` once, [`CONCURRENCY`] at a time; failures
/// are kept, not raised.
pub async fn round(node: &Node, pods: &[Pod], objects: &str) -> Round {
    let before = node.net.proxy.total_calls();
    let results: Vec<_> = futures::stream::iter(pods)
        .map(|pod| node.ascp.mount(request(pod, objects)))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut round = Round {
        aws: node.net.proxy.total_calls() - before,
        ..Round::default()
    };
    for result in results {
        match result {
            Ok(_) => round.ok += 1,
            Err(status) => round
                .failed
                .push((status.code(), status.message().to_owned())),
        }
    }
    round
}

/// From now on every Secrets Manager and SSM call answers throttling.
pub fn throttle_stores(proxy: &FaultProxy) {
    for service in SERVICES {
        proxy.add_rule(Rule::new().service(service).respond_with(
            400,
            "ThrottlingException",
            "Rate exceeded",
        ));
    }
}

/// A free loopback address for `--metrics-addr`.
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address")
}

/// The provider's `/metrics` text.
pub async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to --metrics-addr");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("ask for /metrics");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read /metrics");
    out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

/// The value of the sample `name{labels}` (labels as encoded, e.g.
/// `service="ssm",region="us-east-1"`), if present.
pub fn sample(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}
