//! What a client of the socket can make the server hold before, and while,
//! a handler runs: connections, streams, header lists and request bytes.
//!
//! The socket is reachable only by root (the driver), but a hostile or
//! broken local process could still speak HTTP/2 to it; each of these is
//! bounded so that no client can grow the process past its memory limit:
//!
//! - connections: at most [`MAX_CONNECTIONS`] are served at once; the next
//!   one waits in the listen backlog until one closes ([`admitted`]). A
//!   connection lives at most [`MAX_CONNECTION_AGE`] (then it is told to go
//!   away and its streams are given the server's request timeout,
//!   [`request_timeout`], to finish; gRPC clients reconnect on their own),
//!   so idle connections cannot hold the slots for ever;
//! - streams: at most [`MAX_STREAMS_PER_CONNECTION`] concurrent streams on
//!   a connection (the HTTP/2 setting; more are refused with
//!   `REFUSED_STREAM`, which gRPC clients queue for);
//! - header lists: [`MAX_HEADER_LIST_BYTES`] once decoded (the HTTP/2
//!   setting; the `:authority` layer bounds the encoded block and its
//!   decoding before that);
//! - bytes not yet read by a handler: flow-control windows of
//!   [`STREAM_WINDOW`] per stream and [`CONNECTION_WINDOW`] per connection;
//! - request bytes read: every DATA byte of every request is charged to one
//!   process-wide budget of [`REQUEST_BYTES_IN_FLIGHT`] as it is read
//!   ([`RequestBytesLayer`]), and stays charged until the request's answer
//!   has been handed to the connection (or dropped). A request whose next
//!   bytes do not fit waits (its stream's window stays closed meanwhile);
//!   the server's request timeout ([`request_timeout`]) ends any request,
//!   so a stalled one frees its charge;
//! - answers not yet sent: a handler marks its answer with its size
//!   ([`AnswerBytes`]), which is charged too, as far as the budget has room
//!   (an answer is never held back: it exists already), and released with
//!   the request's charge once the answer's body is gone. A client that
//!   never reads its answers therefore uses the budget up and new requests
//!   wait, instead of each adding an answer to memory.
//!
//! One request is at most [`super::MAX_REQUEST_BYTES`], less than the
//! budget, so every request can always be served eventually.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncRead;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic::codegen::{Bytes, http};

use super::wrapped::{ReadPath, Wrapped};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Concurrent streams per connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 128;
/// Largest decoded header list (`SETTINGS_MAX_HEADER_LIST_SIZE`), hyper's
/// default, set here so that it is a stated bound.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// Flow-control window of one stream: what a client may send ahead of the
/// handler reading it.
pub const STREAM_WINDOW: u32 = 128 * 1024;
/// Flow-control window of one connection, shared by its streams.
pub const CONNECTION_WINDOW: u32 = 128 * 1024;
/// Request bytes read and not yet answered, across all connections.
pub const REQUEST_BYTES_IN_FLIGHT: usize = 16 * 1024 * 1024;
/// How long a connection is kept before it is asked to go away.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(30 * 60);
/// Added to the mount deadline for a request's whole life on the server.
const TIMEOUT_SLACK: Duration = Duration::from_secs(20);

/// The server's deadline for one request, from reading its first byte to
/// its answer: the mount deadline plus a little.
pub fn request_timeout(mount_timeout: Duration) -> Duration {
    mount_timeout + TIMEOUT_SLACK
}

/// The encoded size of a handler's answer, set by the handler in the
/// response's extensions so that [`RequestBytesLayer`] charges it.
#[derive(Clone, Copy, Debug)]
pub struct AnswerBytes(pub usize);

/// An accepted connection holding one of the [`MAX_CONNECTIONS`] slots
/// until it is dropped.
pub type Admitted<S> = Wrapped<S, Slot>;

/// One of the [`MAX_CONNECTIONS`] slots, held by an [`Admitted`]
/// connection; the client's bytes pass through it unchanged.
#[derive(Debug)]
pub struct Slot {
    _held: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> ReadPath<S> for Slot {}

/// The connections of `listener`, at most `max` at once: the next accept
/// waits for a slot.
pub fn admitted(
    listener: UnixListener,
    max: usize,
) -> impl tokio_stream::Stream<Item = io::Result<Admitted<UnixStream>>> {
    let slots = Arc::new(Semaphore::new(max));
    futures::stream::unfold((listener, slots), |(listener, slots)| async move {
        let slot = slots.clone().acquire_owned().await.ok()?;
        let accepted = listener
            .accept()
            .await
            .map(|(io, _)| Wrapped::with(io, Slot { _held: slot }));
        Some((accepted, (listener, slots)))
    })
}

/// Charges every request's bytes to one budget of `bytes`, shared by every
/// connection (the layer is cloned per connection, the budget is not).
#[derive(Clone, Debug)]
pub struct RequestBytesLayer {
    budget: Arc<Semaphore>,
    bytes: usize,
}

impl RequestBytesLayer {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Self {
            budget: Arc::new(Semaphore::new(bytes)),
            bytes,
        }
    }
}

impl<S> tower::Layer<S> for RequestBytesLayer {
    type Service = RequestBytes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestBytes {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RequestBytesLayer`].
#[derive(Clone, Debug)]
pub struct RequestBytes<S> {
    inner: S,
    layer: RequestBytesLayer,
}

/// The charge of one request: released when both its body and its answer's
/// body are gone.
#[derive(Default)]
struct Charge(Mutex<Option<OwnedSemaphorePermit>>);

impl Charge {
    fn add(&self, permit: OwnedSemaphorePermit) {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match held.as_mut() {
            Some(h) => h.merge(permit),
            None => *held = Some(permit),
        }
    }
}

type Acquire =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, tokio::sync::AcquireError>> + Send>>;

/// A request body whose bytes are charged as they are read.
struct Charged {
    inner: tonic::body::Body,
    layer: RequestBytesLayer,
    charge: Arc<Charge>,
    /// A frame read but not yet paid for, and the wait for its bytes.
    waiting: Option<(Frame<Bytes>, Acquire)>,
}

impl Body for Charged {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if let Some((_, acquire)) = &mut this.waiting {
            let permit = ready!(acquire.as_mut().poll(cx))
                .map_err(|_| Status::internal("the request budget is closed"))?;
            this.charge.add(permit);
            let (frame, _) = this.waiting.take().expect("waiting is set");
            return Poll::Ready(Some(Ok(frame)));
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        // A frame larger than the whole budget (never, with hyper's frame
        // size) pays the whole budget rather than waiting for ever.
        let n = frame
            .data_ref()
            .map_or(0, Bytes::len)
            .min(this.layer.bytes)
            .min(u32::MAX as usize) as u32;
        if n == 0 {
            return Poll::Ready(Some(Ok(frame)));
        }
        match this.layer.budget.clone().try_acquire_many_owned(n) {
            Ok(permit) => {
                this.charge.add(permit);
                Poll::Ready(Some(Ok(frame)))
            }
            Err(_) => {
                let acquire = Box::pin(this.layer.budget.clone().acquire_many_owned(n));
                this.waiting = Some((frame, acquire));
                // Polls the wait once, which registers the waker.
                Pin::new(this).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body, holding its request's charge until it is dropped.
struct Holding {
    inner: tonic::body::Body,
    _charge: Arc<Charge>,
}

impl Body for Holding {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for RequestBytes<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Send,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let charge = Arc::new(Charge::default());
        let layer = self.layer.clone();
        let request_charge = charge.clone();
        let request = request.map(move |inner| {
            tonic::body::Body::new(Charged {
                inner,
                layer,
                charge: request_charge,
                waiting: None,
            })
        });
        let answer = self.inner.call(request);
        let budget = self.layer.budget.clone();
        Box::pin(async move {
            let response = answer.await?;
            if let Some(AnswerBytes(n)) = response.extensions().get::<AnswerBytes>().copied() {
                // What there is room for, at once: the answer exists already.
                let n = n.min(budget.available_permits()).min(u32::MAX as usize) as u32;
                if let Ok(permit) = budget.try_acquire_many_owned(n) {
                    charge.add(permit);
                }
            }
            Ok(response.map(|inner| {
                tonic::body::Body::new(Holding {
                    inner,
                    _charge: charge,
                })
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body(chunks: &[usize]) -> tonic::body::Body {
        let frames: Vec<Result<Frame<Bytes>, Status>> = chunks
            .iter()
            .map(|n| Ok(Frame::data(Bytes::from(vec![0u8; *n]))))
            .collect();
        tonic::body::Body::new(http_body_util::StreamBody::new(futures::stream::iter(
            frames,
        )))
    }

    fn charged(layer: &RequestBytesLayer, chunks: &[usize]) -> (Charged, Arc<Charge>) {
        let charge = Arc::new(Charge::default());
        let body = Charged {
            inner: body(chunks),
            layer: layer.clone(),
            charge: charge.clone(),
            waiting: None,
        };
        (body, charge)
    }

    #[tokio::test]
    async fn bytes_are_charged_as_read_and_released_with_the_charge() {
        let layer = RequestBytesLayer::new(100);
        let (body, charge) = charged(&layer, &[30, 40]);
        let read = body.collect().await.unwrap().to_bytes();
        assert_eq!(read.len(), 70);
        assert_eq!(layer.budget.available_permits(), 30);
        drop(charge);
        assert_eq!(layer.budget.available_permits(), 100);
    }

    #[tokio::test]
    async fn a_request_waits_for_bytes_another_holds() {
        let layer = RequestBytesLayer::new(100);
        let (first, first_charge) = charged(&layer, &[80]);
        assert_eq!(first.collect().await.unwrap().to_bytes().len(), 80);
        let (second, _second_charge) = charged(&layer, &[10, 50]);
        let mut second = std::pin::pin!(second.collect());
        // 10 fit, 50 do not: the second waits while the first is held (the
        // 10 left are already set aside for it).
        assert!(futures::poll!(second.as_mut()).is_pending());
        assert_eq!(layer.budget.available_permits(), 0);
        drop(first_charge);
        assert_eq!(second.await.unwrap().to_bytes().len(), 60);
        assert_eq!(layer.budget.available_permits(), 40);
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_budget_pays_all_of_it() {
        let layer = RequestBytesLayer::new(10);
        let (body, charge) = charged(&layer, &[25]);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 25);
        assert_eq!(layer.budget.available_permits(), 0);
        drop(charge);
        assert_eq!(layer.budget.available_permits(), 10);
    }
}
