//! Mount latency of 20 secrets: concurrent (as the provider fetches) against
//! one after another (as ASCP fetches), through the real Secrets Manager
//! store and the real AWS SDK, against a local endpoint that takes 50 ms per
//! call like a distant region.
//!
//! Run: `cargo run --release --example fetch_bench [-- ITERATIONS [LATENCY_MS]]`
//! (LATENCY_MS defaults to 50; 0 shows the provider's own cost per mount).
//!
//! The endpoint is a tiny fake of Secrets Manager's GetSecretValue on
//! 127.0.0.1 (moto is far too slow to measure latency against); it is the
//! only thing this program talks to.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use ascp::aws::{FetchOptions, StoreFactory};
use ascp::store::{FetchItem, Fetched, Stores};
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const SECRETS: usize = 20;
/// Added latency per call, in milliseconds (second argument, default 50).
static LATENCY_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(50);

fn latency() -> Duration {
    Duration::from_millis(LATENCY_MS.load(std::sync::atomic::Ordering::Relaxed))
}
const REGION: &str = "us-east-1";

#[tokio::main]
async fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    if let Some(ms) = std::env::args().nth(2).and_then(|a| a.parse().ok()) {
        LATENCY_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
    }
    let endpoint = start_fake_secrets_manager().await;

    let base = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("AKIDBENCH", "bench", None, None, "bench"))
        .load()
        .await;
    let concurrent = stores(&base, FetchOptions::default());
    let sequential = stores(
        &base,
        FetchOptions {
            max_concurrent_per_mount: 1,
            ..FetchOptions::default()
        },
    );

    // Warm both connection pools so the figures are steady-state mounts.
    mount(&concurrent).await;
    mount(&sequential).await;

    let concurrent_times: Vec<Duration> = measure(&concurrent, iterations).await;
    let sequential_times: Vec<Duration> = measure(&sequential, iterations).await;

    println!(
        "{SECRETS} secrets, {} ms per AWS call, {iterations} iterations (after one warm-up)",
        latency().as_millis()
    );
    report("concurrent (default limits)", &concurrent_times);
    report("sequential (1 at a time, as ASCP)", &sequential_times);
}

fn stores(base: &aws_config::SdkConfig, options: FetchOptions) -> Stores {
    StoreFactory::new(base, options).stores(
        REGION,
        &Credentials::new("AKIDBENCH", "bench", None, None, "bench"),
        "bench",
    )
}

async fn measure(stores: &Stores, iterations: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        mount(stores).await;
        times.push(started.elapsed());
    }
    times
}

/// One mount's worth: 20 secrets from the Secrets Manager store.
async fn mount(stores: &Stores) {
    let items = (0..SECRETS)
        .map(|i| FetchItem {
            name: format!("bench/secret-{i}"),
            version: None,
            label: None,
            mounted_version: None,
            arn: None,
        })
        .collect();
    for (i, result) in stores.secrets_manager.fetch(items).await.iter().enumerate() {
        match result {
            Ok(Fetched::Value { contents, .. }) => {
                assert_eq!(
                    contents.expose(),
                    format!("value-of-bench/secret-{i}").as_bytes()
                )
            }
            other => panic!("secret {i}: {other:?}"),
        }
    }
}

fn report(what: &str, times: &[Duration]) {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let median = if ms.is_empty() {
        0.0
    } else if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
    };
    println!(
        "{what:<36} median {median:7.1} ms   min {:7.1} ms   max {:7.1} ms",
        ms.first().copied().unwrap_or(0.0),
        ms.last().copied().unwrap_or(0.0),
    );
}

/// Serves GetSecretValue on a free loopback port, each answer after
/// [`latency`], and returns `http://127.0.0.1:PORT`.
async fn start_fake_secrets_manager() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer))
                    .await;
            });
        }
    });
    endpoint
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    tokio::time::sleep(latency()).await;

    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("SecretId")
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        });
    let (status, json) = match (operation.as_str(), id) {
        ("secretsmanager.GetSecretValue", Some(id)) => (
            200,
            serde_json::json!({
                "ARN": format!("arn:aws:secretsmanager:{REGION}:123456789012:secret:{id}-AbCdEf"),
                "Name": id,
                "VersionId": "00000000-0000-4000-8000-000000000001",
                "SecretString": format!("value-of-{id}"),
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": 1_700_000_000.0,
            }),
        ),
        _ => (
            400,
            serde_json::json!({
                "__type": "UnknownOperationException",
                "message": "the benchmark endpoint answers GetSecretValue only",
            }),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(json.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    Ok(response)
}
