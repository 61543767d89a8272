//! A tiny HTTP/1.1 server on loopback for the stubs (Kubernetes API, Pod
//! Identity Agent, EKS Auth): every request goes to one handler, which
//! answers or asks to drop the connection.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// What a handler does with a request.
pub enum Reply {
    /// Answer this.
    Answer(Response<Full<Bytes>>),
    /// Close the connection without answering.
    Disconnect,
    /// Never answer (until the server is dropped).
    Hang,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply::with_headers(status, "application/json", &body.to_string(), &[])
    }

    /// An answer with `content_type`, `body` and extra headers.
    pub fn with_headers(
        status: u16,
        content_type: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
        *response.status_mut() = StatusCode::from_u16(status).expect("a valid status");
        let h = response.headers_mut();
        h.insert(
            hyper::header::CONTENT_TYPE,
            content_type.parse().expect("a valid content type"),
        );
        for (k, v) in headers {
            h.insert(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).expect("a header name"),
                v.parse().expect("a header value"),
            );
        }
        Reply::Answer(response)
    }
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// A request's head and whole body in, a reply out.
pub type Handler = Arc<dyn Fn(Parts, Bytes) -> BoxFuture<Reply> + Send + Sync>;

/// The server; stops (with every connection) when dropped.
pub struct StubServer {
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl StubServer {
    /// Listens on `bind` (`127.0.0.1:0`, `[::1]:0`) and serves `handler`.
    pub async fn start(bind: &str, handler: Handler) -> StubServer {
        let listener = TcpListener::bind(bind)
            .await
            .unwrap_or_else(|e| panic!("bind a stub server to {bind}: {e}"));
        let addr = listener.local_addr().expect("stub server address");
        let server = tokio::spawn(serve(listener, handler));
        StubServer { addr, server }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` or `http://[::1]:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, handler: Handler) {
    serve_http1(listener, move || {
        let handler = handler.clone();
        hyper::service::service_fn(move |request| handle(handler.clone(), request))
    })
    .await
}

/// Serves HTTP/1 connections on `listener` until the task is aborted, each
/// with a service from `make`. Shared by the stubs and the fault proxy.
pub async fn serve_http1<F, S>(listener: TcpListener, make: F)
where
    F: Fn() -> S,
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Full<Bytes>>,
            Error = Dropped,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, say: back off rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let service = make();
        connections.spawn(async move {
            // Errors here are clients going away or deliberate drops.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Returned to hyper to make it drop the connection without an answer.
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    handler: Handler,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, 1 << 20)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    match handler(parts, body).await {
        Reply::Answer(response) => Ok(response),
        Reply::Disconnect => Err(Dropped),
        Reply::Hang => std::future::pending().await,
    }
}
