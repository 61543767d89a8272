//! An accepted connection with something of ours around it, written once:
//! [`Wrapped`] owns the connection and a [`ReadPath`], hands the client's
//! bytes to the server through that path, and forwards everything else
//! (writes, flushes, shutdown, vectored writes, the peer's connect info) to
//! the connection unchanged.
//!
//! Two layers use it: [`super::intake::Admitted`] (the read path is a slot
//! of the connection limit, held for the connection's life, that passes
//! bytes through) and [`super::authority::AuthorityRewrite`] (the read path
//! rewrites `:authority`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// What the client's bytes go through on their way from the connection `S`
/// to the server: by default, nothing.
pub trait ReadPath<S: AsyncRead + Unpin> {
    /// Reads from `io` into `buf`, as [`AsyncRead::poll_read`] would.
    fn poll_read(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(io).poll_read(cx, buf)
    }
}

/// The connection `io` with the read path `reads`.
#[derive(Debug)]
pub struct Wrapped<S, R> {
    io: S,
    reads: R,
}

impl<S, R> Wrapped<S, R> {
    /// Wraps `io`: reads go through `reads`, the rest straight to `io`.
    pub fn with(io: S, reads: R) -> Self {
        Self { io, reads }
    }
}

impl<S: AsyncRead + Unpin, R: ReadPath<S> + Unpin> AsyncRead for Wrapped<S, R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.reads.poll_read(&mut this.io, cx, buf)
    }
}

impl<S: AsyncWrite + Unpin, R: Unpin> AsyncWrite for Wrapped<S, R> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<S: Connected, R> Connected for Wrapped<S, R> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
