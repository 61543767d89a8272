//! The operator's HTTP endpoints on `--metrics-addr`: `/metrics`
//! (OpenMetrics text, which Prometheus scrapes), `/healthz` (liveness) and
//! `/readyz` (readiness).
//!
//! Liveness asks the provider's own socket through the gRPC health service
//! (`grpc.health.v1`), so "alive" means the driver could really reach us,
//! not merely that this HTTP task runs. Readiness is true from the moment
//! `main` hands the bound socket to the server (a connection made before
//! then waits in the listen backlog) while the socket file exists, and
//! false again when shutdown begins.
//!
//! This module answers only these three paths and reads nothing from the
//! request but its path; it never exposes anything but metrics and status.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tracing::warn;

/// What the probes report.
#[derive(Debug)]
pub struct HealthState {
    ready: AtomicBool,
    socket: PathBuf,
}

impl HealthState {
    /// State for the provider socket at `socket`; not ready yet.
    pub fn new(socket: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            ready: AtomicBool::new(false),
            socket,
        })
    }

    /// Marks the provider ready (socket bound, serving) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether the provider is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && self.socket.exists()
    }

    /// Whether the provider socket answers a gRPC health check.
    pub async fn is_live(&self) -> bool {
        let probe = async {
            let channel = crate::server::connect(&self.socket, Duration::from_secs(2))
                .await
                .ok()?;
            let answer = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .ok()?;
            Some(answer.into_inner().status == ServingStatus::Serving as i32)
        };
        tokio::time::timeout(Duration::from_secs(3), probe)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    }
}

/// Serves the endpoints on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HealthState>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "metrics listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(req, state.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    state: Arc<HealthState>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            crate::metrics::global().encode(),
        ),
        "/healthz" => {
            if state.is_live().await {
                (StatusCode::OK, "text/plain", "ok\n".to_owned())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "provider socket not answering\n".to_owned(),
                )
            }
        }
        "/readyz" => {
            if state.is_ready() {
                (StatusCode::OK, "text/plain", "ready\n".to_owned())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready\n".to_owned(),
                )
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    Ok(response)
}
