//! Serving every `:authority` a driver sends: a rewriting layer between the
//! provider socket and the HTTP/2 server.
//!
//! # Why it exists
//!
//! Secrets Store CSI drivers before v1.6.0 dial the provider socket with
//! grpc-go and send the socket path as the HTTP/2 `:authority`, raw
//! (`/var/run/secrets-store-csi-providers/aws.sock`); other gRPC clients send
//! it percent-encoded (`%2Fvar%2F…`, or grpcio's `var%2F…` for a `unix:`
//! target). h2, the HTTP/2 server under tonic, accepts only a host there and
//! resets every other stream with `PROTOCOL_ERROR`, with no option to relax
//! it (its pull request #487 is unmerged). So without this layer not even
//! `Version` works for drivers 1.4 and 1.5.
//!
//! # What it does
//!
//! [`AuthorityRewrite`] wraps each accepted connection, with [`Rewriting`]
//! as its read path. The server's bytes pass through untouched. The
//! client's bytes are parsed as HTTP/2: the connection preface, then
//! frames. Frames other than HEADERS and CONTINUATION pass through as they
//! are, byte for byte, as they arrive (never held back until complete).
//! Each request header block (one HEADERS frame and its CONTINUATION
//! frames) is collected, its padding dropped and its priority kept, its
//! Huffman-coded strings written out plainly (the `plain` module, which
//! saves the decoder building a code table per string), and decoded with an
//! HPACK decoder ([`loona_hpack`]) whose dynamic table mirrors the client's
//! encoder table, so indexed references and table size updates resolve as
//! the client meant them. grpc-go, for one, indexes `:authority` once and
//! then sends a one-byte reference, and entries are evicted and sent again
//! as literals as `grpc-timeout` churns the table: every block must be
//! decoded, not only the first.
//!
//! The decoded fields are re-encoded in their order, each as a literal
//! without indexing, with any `:authority` (empty included) replaced by
//! `localhost`; a block without one stays without (h2 accepts that). As no
//! field is ever indexed, h2's own decoder table stays empty and no table
//! size update is needed. The block is framed again as HEADERS plus
//! CONTINUATION frames of at most 16,384 bytes of payload (the frame size
//! every HTTP/2 peer accepts), with the original END_STREAM flag and
//! priority.
//!
//! The table size the client's updates may reach is 4,096 bytes: the HTTP/2
//! default, which the server keeps since tonic never advertises
//! `SETTINGS_HEADER_TABLE_SIZE`. An update above it fails the connection, as
//! it would in h2.
//!
//! # Bounds
//!
//! A client can make this layer buffer at most one header block:
//! [`MAX_FRAME_PAYLOAD`] bytes per HEADERS or CONTINUATION frame,
//! [`MAX_CONTINUATIONS`] CONTINUATION frames and [`MAX_BLOCK_BYTES`] bytes of
//! block. HPACK amplifies (a one-byte index can stand for a 4 KiB entry), so
//! the decoded list is bounded too: [`MAX_HEADER_LIST_BYTES`], counted as
//! HTTP/2 counts it (name + value + 32 per field), four times what the server
//! accepts ([`super::intake::MAX_HEADER_LIST_BYTES`], 16 KiB), so that h2
//! still answers the usual way for lists between the two. Past any of these bounds, or on input
//! that is not HTTP/2, reading fails: the server drops the connection.
//! Many small blocks amplify as well, so rewritten bytes waiting for the
//! server are bounded: past [`MAX_PENDING_OUT`], no more input is rewritten
//! until the server has read them. Nothing here panics on input.
//!
//! # When it can go
//!
//! When h2 accepts any `:authority` on the server side, or when no supported
//! driver is older than v1.6.0 (which sends `localhost`).

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

mod plain;

use loona_hpack::decoder::DecoderError;
use loona_hpack::encoder::encode_integer_into;
use tokio::io::{AsyncRead, ReadBuf};
use tracing::warn;

use super::wrapped::{ReadPath, Wrapped};

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Largest HEADERS or CONTINUATION payload accepted and emitted: the initial
/// `SETTINGS_MAX_FRAME_SIZE`, which the server never raises.
pub const MAX_FRAME_PAYLOAD: usize = 16_384;

/// Most CONTINUATION frames one header block may have.
pub const MAX_CONTINUATIONS: usize = 32;

/// Most bytes one encoded header block may have, all frames together.
pub const MAX_BLOCK_BYTES: usize = 64 * 1024;

/// Most bytes one decoded header list may have, counted as
/// `SETTINGS_MAX_HEADER_LIST_SIZE` counts them.
pub const MAX_HEADER_LIST_BYTES: usize = 64 * 1024;

/// How much rewritten output [`Rewriter::feed_some`] produces before it
/// waits for the server to read it.
pub const MAX_PENDING_OUT: usize = 64 * 1024;

/// The HPACK table size the client may use: the HTTP/2 default.
const CLIENT_TABLE_SIZE: usize = 4_096;

/// The value every `:authority` becomes.
const AUTHORITY: &[u8] = b"localhost";

const FRAME_HEAD: usize = 9;
const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Stream dependency (4 bytes) and weight (1 byte) of a PRIORITY flag.
const PRIORITY_BYTES: usize = 5;

/// Why a client's bytes could not be rewritten; the connection is dropped.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// The connection did not start with the HTTP/2 preface.
    #[error("the client did not start with the HTTP/2 connection preface")]
    Preface,

    /// A HEADERS or CONTINUATION frame is larger than the server accepts.
    #[error("a {frame} frame of {len} bytes exceeds the {MAX_FRAME_PAYLOAD}-byte frame size")]
    FrameTooLarge {
        /// The frame type's name.
        frame: &'static str,
        /// Its payload length.
        len: usize,
    },

    /// A frame other than CONTINUATION arrived inside a header block.
    #[error("frame type {frame_type:#x} on stream {stream} inside a header block")]
    UnterminatedBlock {
        /// The type of the frame received.
        frame_type: u8,
        /// Its stream.
        stream: u32,
    },

    /// A CONTINUATION frame that continues no header block of its stream.
    #[error("CONTINUATION on stream {stream} without an open header block on it")]
    OrphanContinuation {
        /// Its stream.
        stream: u32,
    },

    /// A client sent PUSH_PROMISE, which only servers may send.
    #[error("the client sent PUSH_PROMISE")]
    PushPromise,

    /// A HEADERS frame's padding or priority does not fit in its payload.
    #[error("HEADERS on stream {stream}: padding or priority longer than the frame")]
    BadPadding {
        /// Its stream.
        stream: u32,
    },

    /// A header block has too many CONTINUATION frames.
    #[error(
        "header block on stream {stream} has more than {MAX_CONTINUATIONS} CONTINUATION frames"
    )]
    TooManyContinuations {
        /// Its stream.
        stream: u32,
    },

    /// A header block is larger than [`MAX_BLOCK_BYTES`].
    #[error("header block on stream {stream} exceeds {MAX_BLOCK_BYTES} bytes")]
    BlockTooLarge {
        /// Its stream.
        stream: u32,
    },

    /// A decoded header list is larger than [`MAX_HEADER_LIST_BYTES`].
    #[error("header list on stream {stream} decodes to more than {MAX_HEADER_LIST_BYTES} bytes")]
    HeaderListTooLarge {
        /// Its stream.
        stream: u32,
    },

    /// A header block is not valid HPACK.
    #[error("header block on stream {stream} is not valid HPACK")]
    Hpack {
        /// Its stream.
        stream: u32,
        /// The decoder's error.
        #[source]
        source: DecoderError,
    },
}

/// A header block being collected: a HEADERS frame and its CONTINUATIONs.
struct Block {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_BYTES]>,
    fragment: Vec<u8>,
    continuations: usize,
}

/// Where the parser is in the client's byte stream.
enum State {
    /// Matching the connection preface; this many bytes matched so far.
    Preface(usize),
    /// Collecting a 9-byte frame header.
    Head,
    /// Collecting the payload of a HEADERS or CONTINUATION frame.
    HeaderPayload {
        frame_type: u8,
        flags: u8,
        stream: u32,
        len: usize,
    },
    /// Passing this many more payload bytes of another frame through.
    Skip(usize),
}

/// The client-to-server half of the rewrite, independent of any I/O: feed it
/// the client's bytes in pieces of any size, it appends what the server
/// should read.
pub struct Rewriter {
    state: State,
    /// A partial frame header or header-frame payload.
    pending: Vec<u8>,
    block: Option<Block>,
    decoder: loona_hpack::Decoder<'static>,
}

impl Default for Rewriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Rewriter {
    /// A rewriter for a new connection, expecting the preface.
    pub fn new() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(CLIENT_TABLE_SIZE);
        Self {
            state: State::Preface(0),
            pending: Vec::new(),
            block: None,
            decoder,
        }
    }

    /// Consumes `input`, appending the bytes for the server to `out`.
    ///
    /// After an error the connection must be dropped: the parser's state no
    /// longer follows the client's.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        self.feed_until(input, out, usize::MAX).map(drop)
    }

    /// Like [`Rewriter::feed`], but stops once `out` holds
    /// [`MAX_PENDING_OUT`] bytes or more (HPACK amplifies: many tiny header
    /// blocks can decode to far more than they take); returns how many bytes
    /// of `input` it consumed. It consumes at least one byte of a non-empty
    /// `input` when `out` starts below the mark.
    pub fn feed_some(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, RewriteError> {
        self.feed_until(input, out, MAX_PENDING_OUT)
    }

    /// Rewrites `input` until `out` holds `mark` bytes; the bytes consumed.
    fn feed_until(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        mark: usize,
    ) -> Result<usize, RewriteError> {
        let len = input.len();
        while !input.is_empty() && out.len() < mark {
            match self.state {
                State::Preface(matched) => {
                    let n = (PREFACE.len() - matched).min(input.len());
                    if input[..n] != PREFACE[matched..matched + n] {
                        return Err(RewriteError::Preface);
                    }
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = if matched + n == PREFACE.len() {
                        State::Head
                    } else {
                        State::Preface(matched + n)
                    };
                }
                State::Skip(left) => {
                    let n = left.min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = if n == left {
                        State::Head
                    } else {
                        State::Skip(left - n)
                    };
                }
                State::Head => {
                    let Some(head) = self.take(&mut input, FRAME_HEAD) else {
                        continue;
                    };
                    self.on_frame_head(&head, out)?;
                }
                State::HeaderPayload {
                    frame_type,
                    flags,
                    stream,
                    len,
                } => {
                    let Some(payload) = self.take(&mut input, len) else {
                        continue;
                    };
                    self.state = State::Head;
                    self.on_header_frame(frame_type, flags, stream, payload, out)?;
                }
            }
        }
        Ok(len - input.len())
    }

    /// Moves bytes from `input` into `pending` until it holds `want` bytes;
    /// then returns them. `None` while more input is needed.
    fn take(&mut self, input: &mut &[u8], want: usize) -> Option<Vec<u8>> {
        let n = (want - self.pending.len()).min(input.len());
        self.pending.extend_from_slice(&input[..n]);
        *input = &input[n..];
        (self.pending.len() == want).then(|| std::mem::take(&mut self.pending))
    }

    fn on_frame_head(&mut self, head: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let frame_type = head[3];
        let flags = head[4];
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        match frame_type {
            HEADERS | CONTINUATION => {
                if len > MAX_FRAME_PAYLOAD {
                    let frame = if frame_type == HEADERS {
                        "HEADERS"
                    } else {
                        "CONTINUATION"
                    };
                    return Err(RewriteError::FrameTooLarge { frame, len });
                }
                if len == 0 {
                    // Complete already: there may be no more input to
                    // complete it with.
                    self.state = State::Head;
                    return self.on_header_frame(frame_type, flags, stream, Vec::new(), out);
                }
                self.state = State::HeaderPayload {
                    frame_type,
                    flags,
                    stream,
                    len,
                };
            }
            // Its header block would be encoded with the client's table; the
            // server fails the connection on it anyway.
            PUSH_PROMISE => return Err(RewriteError::PushPromise),
            _ => {
                if self.block.is_some() {
                    return Err(RewriteError::UnterminatedBlock { frame_type, stream });
                }
                out.extend_from_slice(head);
                self.state = if len == 0 {
                    State::Head
                } else {
                    State::Skip(len)
                };
            }
        }
        Ok(())
    }

    fn on_header_frame(
        &mut self,
        frame_type: u8,
        flags: u8,
        stream: u32,
        payload: Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        let block = match (frame_type, self.block.take()) {
            (HEADERS, None) => headers_block(flags, stream, payload)?,
            (HEADERS, Some(_)) => {
                return Err(RewriteError::UnterminatedBlock { frame_type, stream });
            }
            (_, Some(mut block)) if block.stream == stream => {
                block.continuations += 1;
                if block.continuations > MAX_CONTINUATIONS {
                    return Err(RewriteError::TooManyContinuations { stream });
                }
                block.fragment.extend_from_slice(&payload);
                block
            }
            _ => return Err(RewriteError::OrphanContinuation { stream }),
        };
        if block.fragment.len() > MAX_BLOCK_BYTES {
            return Err(RewriteError::BlockTooLarge { stream });
        }
        if flags & END_HEADERS == 0 {
            self.block = Some(block);
            return Ok(());
        }
        let fields = self.reencode(&block)?;
        write_block(&block, &fields, out);
        Ok(())
    }

    /// Decodes a complete block and encodes its fields again, `:authority`
    /// replaced, each a literal without indexing.
    fn reencode(&mut self, block: &Block) -> Result<Vec<u8>, RewriteError> {
        let stream = block.stream;
        let mut encoded = Vec::with_capacity(block.fragment.len() + 64);
        let mut list_bytes = 0usize;
        let mut fragment = Vec::with_capacity(block.fragment.len() * 2);
        plain::plain(&block.fragment, &mut fragment)
            .map_err(|source| RewriteError::Hpack { stream, source })?;
        self.decoder
            .decode_with_cb(&fragment, |name: Cow<[u8]>, value: Cow<[u8]>| {
                list_bytes = list_bytes.saturating_add(name.len() + value.len() + 32);
                // Past the bound, the rest is only decoded (to keep the table
                // in step), never copied.
                if list_bytes <= MAX_HEADER_LIST_BYTES {
                    let value: &[u8] = if &*name == b":authority" {
                        AUTHORITY
                    } else {
                        &value
                    };
                    encode_literal(&name, value, &mut encoded);
                }
            })
            .map_err(|source| RewriteError::Hpack { stream, source })?;
        if list_bytes > MAX_HEADER_LIST_BYTES {
            return Err(RewriteError::HeaderListTooLarge { stream });
        }
        Ok(encoded)
    }
}

/// Starts a block from a HEADERS payload: padding dropped, priority kept.
fn headers_block(flags: u8, stream: u32, payload: Vec<u8>) -> Result<Block, RewriteError> {
    let mut body: &[u8] = &payload;
    if flags & PADDED != 0 {
        let (&pad, rest) = body
            .split_first()
            .ok_or(RewriteError::BadPadding { stream })?;
        let keep = rest
            .len()
            .checked_sub(usize::from(pad))
            .ok_or(RewriteError::BadPadding { stream })?;
        body = &rest[..keep];
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        let (head, rest) = body
            .split_first_chunk::<PRIORITY_BYTES>()
            .ok_or(RewriteError::BadPadding { stream })?;
        priority = Some(*head);
        body = rest;
    }
    Ok(Block {
        stream,
        end_stream: flags & END_STREAM != 0,
        priority,
        fragment: body.to_vec(),
        continuations: 0,
    })
}

/// One field as a literal without indexing, with a literal name (RFC 7541
/// §6.2.2), strings not Huffman-coded.
fn encode_literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x00);
    for s in [name, value] {
        // Writing to a Vec cannot fail.
        let _ = encode_integer_into(s.len(), 7, 0, out);
        out.extend_from_slice(s);
    }
}

/// Frames `fields` as HEADERS then CONTINUATION frames.
fn write_block(block: &Block, fields: &[u8], out: &mut Vec<u8>) {
    let priority: &[u8] = block.priority.as_ref().map_or(&[], |p| &p[..]);
    let first_room = MAX_FRAME_PAYLOAD - priority.len();
    let (first, mut rest) = fields.split_at(first_room.min(fields.len()));
    let mut flags = 0;
    if block.end_stream {
        flags |= END_STREAM;
    }
    if block.priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    frame_head(
        priority.len() + first.len(),
        HEADERS,
        flags,
        block.stream,
        out,
    );
    out.extend_from_slice(priority);
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(MAX_FRAME_PAYLOAD.min(rest.len()));
        rest = tail;
        let flags = if rest.is_empty() { END_HEADERS } else { 0 };
        frame_head(chunk.len(), CONTINUATION, flags, block.stream, out);
        out.extend_from_slice(chunk);
    }
}

/// A frame header; `len` is at most [`MAX_FRAME_PAYLOAD`].
fn frame_head(len: usize, frame_type: u8, flags: u8, stream: u32, out: &mut Vec<u8>) {
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.push(frame_type);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// A connection whose client-to-server bytes go through a [`Rewriter`].
pub type AuthorityRewrite<S> = Wrapped<S, Rewriting>;

/// The read path of an [`AuthorityRewrite`]: the rewriter and its buffers.
pub struct Rewriting {
    rewriter: Rewriter,
    /// What the client sent, as read from the connection;
    /// `raw[raw_pos..raw_len]` is not rewritten yet.
    raw: Box<[u8]>,
    raw_pos: usize,
    raw_len: usize,
    /// Rewritten bytes not yet handed to the server.
    out: Vec<u8>,
    out_pos: usize,
    /// Set once the client's bytes failed to parse; every later read fails.
    failed: bool,
}

impl<S> AuthorityRewrite<S> {
    /// Wraps an accepted connection.
    pub fn new(io: S) -> Self {
        Wrapped::with(
            io,
            Rewriting {
                rewriter: Rewriter::new(),
                raw: vec![0; MAX_FRAME_PAYLOAD].into_boxed_slice(),
                raw_pos: 0,
                raw_len: 0,
                out: Vec::new(),
                out_pos: 0,
                failed: false,
            },
        )
    }
}

fn rejected() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "HTTP/2 headers could not be rewritten",
    )
}

impl<S: AsyncRead + Unpin> ReadPath<S> for Rewriting {
    fn poll_read(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self;
        loop {
            if this.out_pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_pos);
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.failed {
                return Poll::Ready(Err(rejected()));
            }
            if this.raw_pos == this.raw_len {
                let mut raw = ReadBuf::new(&mut this.raw);
                ready!(Pin::new(&mut *io).poll_read(cx, &mut raw))?;
                this.raw_len = raw.filled().len();
                this.raw_pos = 0;
                if this.raw_len == 0 {
                    // End of stream: what is left of a partial frame is
                    // dropped; the server sees a truncated connection.
                    return Poll::Ready(Ok(()));
                }
            }
            let unread = &this.raw[this.raw_pos..this.raw_len];
            match this.rewriter.feed_some(unread, &mut this.out) {
                Ok(used) => this.raw_pos += used,
                Err(e) => {
                    warn!(error = %e, "dropping a connection whose HTTP/2 request headers cannot be rewritten");
                    this.failed = true;
                    // The bytes before the failure are not handed over: the
                    // server gets no partial frame.
                    this.out.clear();
                    this.out_pos = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn frame(frame_type: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame_head(payload.len(), frame_type, flags, stream, &mut out);
        out.extend_from_slice(payload);
        out
    }

    /// What grpc-go sends for a unary call, `:authority` first if any.
    fn request(authority: Option<&str>, timeout: &str) -> Fields {
        let mut fields: Fields = Vec::new();
        if let Some(a) = authority {
            fields.push((b":authority".to_vec(), a.as_bytes().to_vec()));
        }
        for (n, v) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/v1alpha1.CSIDriverProvider/Version"),
            ("content-type", "application/grpc"),
            ("user-agent", "grpc-go/1.56.3"),
            ("te", "trailers"),
            ("grpc-timeout", timeout),
        ] {
            fields.push((n.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
        fields
    }

    fn with_localhost(fields: &Fields) -> Fields {
        fields
            .iter()
            .map(|(n, v)| {
                let v = if n == b":authority" {
                    b"localhost".to_vec()
                } else {
                    v.clone()
                };
                (n.clone(), v)
            })
            .collect()
    }

    fn encode(encoder: &mut loona_hpack::Encoder<'_>, fields: &Fields) -> Vec<u8> {
        encoder.encode(fields.iter().map(|(n, v)| (&n[..], &v[..])))
    }

    /// An encoder that indexes every field, as grpc-go does, so that
    /// `:authority` travels as a one-byte reference to the dynamic table
    /// until newer entries evict it.
    #[derive(Default)]
    struct IndexingEncoder {
        table: std::collections::VecDeque<(Vec<u8>, Vec<u8>)>,
        size: usize,
        references: usize,
        evictions: usize,
    }

    impl IndexingEncoder {
        fn encode(&mut self, fields: &Fields) -> Vec<u8> {
            let mut out = Vec::new();
            for (name, value) in fields {
                if let Some(i) = self.table.iter().position(|(n, v)| n == name && v == value) {
                    let _ = encode_integer_into(62 + i, 7, 0x80, &mut out);
                    self.references += 1;
                    continue;
                }
                out.push(0x40);
                for s in [name, value] {
                    let _ = encode_integer_into(s.len(), 7, 0, &mut out);
                    out.extend_from_slice(s);
                }
                self.size += name.len() + value.len() + 32;
                self.table.push_front((name.clone(), value.clone()));
                while self.size > CLIENT_TABLE_SIZE {
                    let (n, v) = self.table.pop_back().unwrap();
                    self.size -= n.len() + v.len() + 32;
                    self.evictions += 1;
                }
            }
            out
        }
    }

    struct Frame {
        frame_type: u8,
        flags: u8,
        stream: u32,
        payload: Vec<u8>,
    }

    /// Splits the server's side of the connection into frames, after checking
    /// the preface is intact.
    fn frames(out: &[u8]) -> Vec<Frame> {
        assert_eq!(&out[..PREFACE.len()], PREFACE);
        let mut rest = &out[PREFACE.len()..];
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            frames.push(Frame {
                frame_type: rest[3],
                flags: rest[4],
                stream: u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]),
                payload: rest[FRAME_HEAD..FRAME_HEAD + len].to_vec(),
            });
            rest = &rest[FRAME_HEAD + len..];
        }
        frames
    }

    /// The header lists the server sees, checking that each block is within
    /// the frame size and decodes without any dynamic table.
    fn header_lists(out: &[u8]) -> Vec<Fields> {
        let mut lists = Vec::new();
        let mut block: Vec<u8> = Vec::new();
        for f in frames(out) {
            assert!(f.payload.len() <= MAX_FRAME_PAYLOAD);
            match f.frame_type {
                HEADERS => {
                    assert!(block.is_empty());
                    assert_eq!(f.flags & PADDED, 0);
                    let skip = if f.flags & PRIORITY != 0 { 5 } else { 0 };
                    block.extend_from_slice(&f.payload[skip..]);
                }
                CONTINUATION => block.extend_from_slice(&f.payload),
                _ => continue,
            }
            if f.flags & END_HEADERS != 0 {
                // A fresh decoder: any reference to a dynamic entry fails.
                let mut decoder = loona_hpack::Decoder::new();
                decoder.set_max_allowed_table_size(0);
                lists.push(decoder.decode(&block).expect("literal-only block"));
                block.clear();
            }
        }
        lists
    }

    fn rewrite(input: &[u8]) -> Result<Vec<u8>, RewriteError> {
        let mut out = Vec::new();
        Rewriter::new().feed(input, &mut out)?;
        Ok(out)
    }

    fn settings() -> Vec<u8> {
        frame(0x4, 0, 0, &[0, 0x3, 0, 0, 0, 100])
    }

    #[test]
    fn every_authority_form_becomes_localhost_and_other_frames_pass_untouched() {
        for authority in [
            "/var/run/secrets-store-csi-providers/aws.sock",
            "%2Fvar%2Frun%2Fsecrets-store-csi-providers%2Faws.sock",
            "var%2Frun%2Fsecrets-store-csi-providers%2Faws.sock",
            "localhost",
            "",
        ] {
            let fields = request(Some(authority), "10S");
            let mut input = PREFACE.to_vec();
            input.extend(settings());
            input.extend(frame(
                HEADERS,
                END_HEADERS,
                1,
                &encode(&mut loona_hpack::Encoder::new(), &fields),
            ));
            let data = frame(0x0, END_STREAM, 1, &[0, 0, 0, 0, 2, 0x0a, 0x00]);
            input.extend(&data);
            let out = rewrite(&input).unwrap();
            assert_eq!(header_lists(&out), vec![with_localhost(&fields)]);
            let f = frames(&out);
            assert_eq!(f[0].payload, settings()[FRAME_HEAD..]);
            assert_eq!((f[1].stream, f[1].flags), (1, END_HEADERS));
            assert!(out.ends_with(&data), "DATA frame changed");
        }
    }

    #[test]
    fn a_block_without_authority_gets_none() {
        let fields = request(None, "1S");
        let mut input = PREFACE.to_vec();
        let block = encode(&mut loona_hpack::Encoder::new(), &fields);
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &block));
        let out = rewrite(&input).unwrap();
        assert_eq!(header_lists(&out), vec![fields]);
        assert_eq!(frames(&out)[0].flags, END_HEADERS | END_STREAM);
    }

    #[test]
    fn indexed_authority_is_followed_over_thousands_of_requests() {
        // `:authority` becomes a one-byte reference; changing timeouts evict
        // it and it is sent again as a literal, many times over.
        let mut encoder = IndexingEncoder::default();
        let mut input = PREFACE.to_vec();
        let mut expected = Vec::new();
        for i in 0..2_000u32 {
            let fields = request(Some("/var/run/x/aws.sock"), &format!("{}m", 100_000 + i));
            input.extend(frame(
                HEADERS,
                END_HEADERS,
                2 * i + 1,
                &encoder.encode(&fields),
            ));
            expected.push(with_localhost(&fields));
        }
        assert!(encoder.references > 10_000 && encoder.evictions > 1_000);
        let out = rewrite(&input).unwrap();
        assert_eq!(header_lists(&out), expected);
    }

    #[test]
    fn any_split_of_the_input_gives_the_same_output() {
        let mut encoder = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(settings());
        for i in 0..5 {
            let block = encode(&mut encoder, &request(Some("/x.sock"), &format!("{i}S")));
            let (a, b) = block.split_at(block.len() / 2);
            input.extend(frame(HEADERS, 0, 1 + 2 * i, a));
            input.extend(frame(CONTINUATION, 0, 1 + 2 * i, &[]));
            input.extend(frame(CONTINUATION, END_HEADERS, 1 + 2 * i, b));
            input.extend(frame(0x0, END_STREAM, 1 + 2 * i, b"data"));
        }
        let whole = rewrite(&input).unwrap();
        for piece in [1, 2, 7, 9, 100] {
            let mut rewriter = Rewriter::new();
            let mut out = Vec::new();
            for chunk in input.chunks(piece) {
                rewriter.feed(chunk, &mut out).unwrap();
            }
            assert_eq!(out, whole, "pieces of {piece} bytes");
        }
        assert_eq!(header_lists(&whole).len(), 5);
    }

    #[test]
    fn padding_is_dropped_and_priority_kept() {
        let fields = request(Some("/a/b.sock"), "5S");
        let block = encode(&mut loona_hpack::Encoder::new(), &fields);
        let mut payload = vec![7u8]; // pad length
        payload.extend([0x80, 0, 0, 3, 15]); // exclusive, depends on 3, weight 16
        payload.extend(&block);
        payload.extend([0u8; 7]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM | PADDED | PRIORITY,
            5,
            &payload,
        ));
        let out = rewrite(&input).unwrap();
        let f = frames(&out);
        assert_eq!(f[0].flags, END_HEADERS | END_STREAM | PRIORITY);
        assert_eq!(f[0].payload[..5], [0x80, 0, 0, 3, 15]);
        assert_eq!(header_lists(&out), vec![with_localhost(&fields)]);
    }

    #[test]
    fn table_size_updates_are_followed_and_bounded() {
        let mut encoder = loona_hpack::Encoder::new();
        let fields = request(Some("/s.sock"), "1S");
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &encode(&mut encoder, &fields),
        ));
        // Shrink to 0 (evicts everything), then back to 4096, then a block
        // the encoder writes against an empty table.
        let mut block = vec![0x20, 0x3f, 0xe1, 0x1f];
        let mut fresh = loona_hpack::Encoder::new();
        block.extend(encode(&mut fresh, &fields));
        input.extend(frame(HEADERS, END_HEADERS, 3, &block));
        let out = rewrite(&input).unwrap();
        assert_eq!(header_lists(&out), vec![with_localhost(&fields); 2]);

        // 4097: more than the server allows the client's table.
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &[0x3f, 0xe2, 0x1f, 0x82]));
        assert!(matches!(
            rewrite(&input),
            Err(RewriteError::Hpack { stream: 1, .. })
        ));
    }

    #[test]
    fn a_large_block_is_framed_again_within_the_frame_size() {
        let mut fields = request(Some("/s.sock"), "1S");
        fields.push((b"x-big".to_vec(), vec![b'v'; 40_000]));
        let block = encode(&mut loona_hpack::Encoder::new(), &fields);
        let mut input = PREFACE.to_vec();
        let mut chunks = block.chunks(MAX_FRAME_PAYLOAD).peekable();
        let first = chunks.next().unwrap();
        input.extend(frame(HEADERS, 0, 1, first));
        while let Some(c) = chunks.next() {
            let flags = if chunks.peek().is_none() {
                END_HEADERS
            } else {
                0
            };
            input.extend(frame(CONTINUATION, flags, 1, c));
        }
        let out = rewrite(&input).unwrap();
        let f = frames(&out);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].frame_type, HEADERS);
        assert_eq!(f[2].frame_type, CONTINUATION);
        assert_eq!(f[2].flags, END_HEADERS);
        assert_eq!(header_lists(&out), vec![with_localhost(&fields)]);
    }

    #[test]
    fn what_a_client_can_make_it_buffer_is_bounded() {
        let with = |frames: &[Vec<u8>]| {
            let mut input = PREFACE.to_vec();
            for f in frames {
                input.extend(f);
            }
            rewrite(&input).unwrap_err()
        };
        // An oversized frame fails at its header, before its payload.
        let mut big = Vec::new();
        frame_head(MAX_FRAME_PAYLOAD + 1, HEADERS, 0, 1, &mut big);
        assert!(matches!(with(&[big]), RewriteError::FrameTooLarge { .. }));

        let mut many = vec![frame(HEADERS, 0, 1, &[0x82])];
        many.extend((0..=MAX_CONTINUATIONS).map(|_| frame(CONTINUATION, 0, 1, &[0x84])));
        assert!(matches!(
            with(&many),
            RewriteError::TooManyContinuations { stream: 1 }
        ));

        let mut long = vec![frame(HEADERS, 0, 1, &[0; MAX_FRAME_PAYLOAD])];
        long.extend((0..4).map(|_| frame(CONTINUATION, 0, 1, &[0; MAX_FRAME_PAYLOAD])));
        assert!(matches!(
            with(&long),
            RewriteError::BlockTooLarge { stream: 1 }
        ));

        // HPACK amplification: one 4,000-byte entry, then 16,000 one-byte
        // references to it, would decode to 64 MB.
        let mut bomb = vec![0x40, 0x01, b'x'];
        let _ = encode_integer_into(4_000, 7, 0, &mut bomb);
        bomb.extend([b'v'; 4_000]);
        let first = frame(HEADERS, END_HEADERS, 1, &bomb);
        let refs = frame(HEADERS, END_HEADERS, 3, &[0xbe; 16_000]);
        assert!(matches!(
            with(&[first, refs]),
            RewriteError::HeaderListTooLarge { stream: 3 }
        ));
    }

    #[test]
    fn many_small_blocks_cannot_amplify_without_bound() {
        // One 4,000-byte entry, then 1,600 blocks of one reference each:
        // 16 KB of input that decodes to 6.4 MB.
        let mut entry = vec![0x40, 0x01, b'x'];
        let _ = encode_integer_into(4_000, 7, 0, &mut entry);
        entry.extend([b'v'; 4_000]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &entry));
        for i in 0..1_600 {
            input.extend(frame(HEADERS, END_HEADERS, 3 + 2 * i, &[0xbe]));
        }
        let mut rewriter = Rewriter::new();
        let mut out = Vec::new();
        let used = rewriter.feed_some(&input, &mut out).unwrap();
        assert!(used < input.len() / 2, "{used}");
        assert!(out.len() < MAX_PENDING_OUT + 8 * 1024, "{}", out.len());
        // Once the server has read it, the rest follows.
        out.clear();
        let more = rewriter.feed_some(&input[used..], &mut out).unwrap();
        assert!(more > 0 && out.len() < MAX_PENDING_OUT + 8 * 1024);
    }

    #[test]
    fn malformed_framing_is_refused() {
        let bad = |input: Vec<u8>| rewrite(&[PREFACE, &input].concat()).unwrap_err();
        assert!(matches!(
            rewrite(b"GET / HTTP/1.1\r\n\r\n"),
            Err(RewriteError::Preface)
        ));
        assert!(matches!(
            bad(frame(CONTINUATION, END_HEADERS, 1, &[0x82])),
            RewriteError::OrphanContinuation { stream: 1 }
        ));
        assert!(matches!(
            bad([frame(HEADERS, 0, 1, &[0x82]), frame(0x0, 0, 1, b"x")].concat()),
            RewriteError::UnterminatedBlock { frame_type: 0, .. }
        ));
        assert!(matches!(
            bad([
                frame(HEADERS, 0, 1, &[0x82]),
                frame(CONTINUATION, 0, 3, &[])
            ]
            .concat()),
            RewriteError::OrphanContinuation { stream: 3 }
        ));
        assert!(matches!(
            bad(frame(HEADERS, END_HEADERS | PADDED, 1, &[9, 0x82])),
            RewriteError::BadPadding { stream: 1 }
        ));
        assert!(matches!(
            bad(frame(HEADERS, END_HEADERS | PRIORITY, 1, &[0, 0])),
            RewriteError::BadPadding { stream: 1 }
        ));
        assert!(matches!(
            bad(frame(PUSH_PROMISE, END_HEADERS, 1, &[0, 0, 0, 2])),
            RewriteError::PushPromise
        ));
        assert!(matches!(
            bad(frame(
                HEADERS,
                END_HEADERS,
                1,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
            )),
            RewriteError::Hpack { stream: 1, .. }
        ));
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = fastrand::Rng::with_seed(9);
        for _ in 0..2_000 {
            let mut input = PREFACE.to_vec();
            for _ in 0..rng.usize(1..6) {
                let frame_type = [HEADERS, CONTINUATION, 0x0, 0x4][rng.usize(..4)];
                let payload: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
                input.extend(frame(frame_type, rng.u8(..), rng.u32(0..4), &payload));
            }
            let mut rewriter = Rewriter::new();
            let mut out = Vec::new();
            for chunk in input.chunks(rng.usize(1..40)) {
                if rewriter.feed(chunk, &mut out).is_err() {
                    break;
                }
            }
        }
        // Well-framed blocks of random HPACK, and valid blocks with bytes
        // flipped, on one connection until one fails.
        let valid = IndexingEncoder::default().encode(&request(Some("/a.sock"), "1S"));
        for round in 0..5_000 {
            let mut block: Vec<u8> = if round % 2 == 0 {
                (0..rng.usize(0..48)).map(|_| rng.u8(..)).collect()
            } else {
                valid.clone()
            };
            for _ in 0..rng.usize(1..4) {
                if !block.is_empty() {
                    let i = rng.usize(..block.len());
                    block[i] ^= 1 << rng.u8(0..8);
                }
            }
            let mut input = PREFACE.to_vec();
            input.extend(frame(HEADERS, END_HEADERS, 1, &valid));
            input.extend(frame(HEADERS, END_HEADERS, 3, &block));
            let _ = rewrite(&input);
        }
    }

    #[tokio::test]
    async fn the_connection_rewrites_reads_and_passes_writes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let (mut client, server) = tokio::io::duplex(64);
        let mut server = AuthorityRewrite::new(server);
        let fields = request(Some("/run/aws.sock"), "3S");
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &encode(&mut loona_hpack::Encoder::new(), &fields),
        ));
        let writer = tokio::spawn(async move {
            client.write_all(&input).await.unwrap();
            client.shutdown().await.unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            answer
        });
        let mut seen = Vec::new();
        server.read_to_end(&mut seen).await.unwrap();
        assert_eq!(header_lists(&seen), vec![with_localhost(&fields)]);
        server.write_all(b"server bytes").await.unwrap();
        server.shutdown().await.unwrap();
        drop(server);
        assert_eq!(writer.await.unwrap(), b"server bytes");

        // Garbage after the preface: reading fails, and keeps failing.
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = AuthorityRewrite::new(server);
        client
            .write_all(&[PREFACE, &frame(CONTINUATION, 0, 1, &[])].concat())
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let err = loop {
            if let Err(e) = server.read(&mut buf).await {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(server.read(&mut buf).await.is_err());
    }
}
