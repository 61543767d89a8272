//! The one HTTP client call the support code needs: send a request on a fresh
//! connection and collect the answer, bounded in size and time.
//!
//! A fresh connection per request keeps this trivial and is what moto wants
//! anyway: it answers every request with `connection: close`.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// `host:port` of an `http://host:port` endpoint.
pub fn authority(endpoint: &str) -> Result<String, Error> {
    let uri: Uri = endpoint.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("only http:// endpoints are supported, got {endpoint}").into());
    }
    let authority = uri.authority().ok_or("endpoint has no host")?;
    Ok(match authority.port_u16() {
        Some(_) => authority.to_string(),
        None => format!("{}:80", authority.host()),
    })
}

/// Sends `request` to `authority` and returns the response with its whole
/// body, failing if the exchange takes longer than `timeout` or the body is
/// larger than `max_body` bytes.
pub async fn send(
    authority: &str,
    request: Request<Full<Bytes>>,
    timeout: Duration,
    max_body: usize,
) -> Result<Response<Bytes>, Error> {
    tokio::time::timeout(timeout, async {
        let stream = TcpStream::connect(authority).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection future drives the socket. Abort it when we are done
        // or give up, so a silent peer cannot leave a task behind.
        let _connection = AbortOnDrop(tokio::spawn(connection));
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, max_body).collect().await?.to_bytes();
        Ok(Response::from_parts(parts, body))
    })
    .await
    .map_err(|_| format!("no answer from {authority} within {timeout:?}"))?
}

/// A bodiless request to `endpoint` + `path`, for probes and moto's own API.
pub async fn simple(
    method: &str,
    endpoint: &str,
    path: &str,
    timeout: Duration,
) -> Result<Response<Bytes>, Error> {
    let authority = authority(endpoint)?;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, &authority)
        .body(Full::new(Bytes::new()))?;
    send(&authority, request, timeout, 1 << 20).await
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
