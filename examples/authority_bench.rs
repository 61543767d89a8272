//! Cost of the `:authority` rewrite (src/server/authority.rs) per request.
//!
//! Run: `cargo run --release --example authority_bench [-- BLOCKS RPCS]`
//!
//! 1. The rewrite alone: BLOCKS (default 100,000) request header blocks as
//!    grpc-go sends them on one connection (HPACK with a dynamic table, the
//!    socket path as `:authority`, a new `grpc-timeout` each time), fed
//!    through a `Rewriter`: time per header block. Then what one
//!    Huffman-coded string adds to a block. Then 16 KiB DATA frames, which
//!    only pass through: throughput.
//! 2. Whole calls: RPCS (default 20,000) gRPC health checks, one after the
//!    other on one connection, to two tonic servers on unix sockets, one
//!    behind the rewrite and one without: time per call of each.
//!
//! Everything runs in this process, on sockets in a temporary directory.

use std::path::Path;
use std::time::{Duration, Instant};

use ascp::server::authority::{AuthorityRewrite, Rewriter};
use tokio::net::UnixListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnixListenerStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(frame_type: u8, flags: u8, stream: u32, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len())
        .expect("a small frame")
        .to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.push(frame_type);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// `n` request header blocks of one connection, after the preface.
fn header_blocks(n: u32) -> Vec<u8> {
    let mut encoder = loona_hpack::Encoder::new();
    let mut input = PREFACE.to_vec();
    for i in 0..n {
        let timeout = format!("{}m", 100_000 + i % 50_000);
        let fields: [(&[u8], &[u8]); 8] = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/v1alpha1.CSIDriverProvider/Mount"),
            (
                b":authority",
                b"/var/run/secrets-store-csi-providers/aws.sock",
            ),
            (b"content-type", b"application/grpc"),
            (b"user-agent", b"grpc-go/1.56.3"),
            (b"te", b"trailers"),
            (b"grpc-timeout", timeout.as_bytes()),
        ];
        let block = encoder.encode(fields);
        frame(0x1, 0x4, 2 * i + 1, &block, &mut input);
    }
    input
}

fn bench_rewriter(blocks: u32) {
    let input = header_blocks(blocks);
    let mut out = Vec::with_capacity(input.len() * 4);
    let mut rewriter = Rewriter::new();
    let started = Instant::now();
    // In reads of 16 KiB, as the connection hands them over.
    for chunk in input.chunks(16 * 1024) {
        rewriter.feed(chunk, &mut out).expect("valid input");
    }
    let elapsed = started.elapsed();
    println!(
        "rewrite: {blocks} header blocks ({} bytes in, {} out) in {elapsed:.2?}: {:.2} µs per block",
        input.len(),
        out.len(),
        elapsed.as_secs_f64() * 1e6 / f64::from(blocks)
    );

    // What one Huffman-coded string adds: blocks of one field whose value
    // is "www.example.com" Huffman-coded (RFC 7541 C.4.1), against the
    // same blocks with the value plain.
    let strings = 20_000u32;
    let per_block = |value: &[u8]| {
        let mut input = PREFACE.to_vec();
        for i in 0..strings {
            let mut block = vec![0x00, 0x0c];
            block.extend_from_slice(b"grpc-timeout");
            block.extend_from_slice(value);
            frame(0x1, 0x4, 2 * i + 1, &block, &mut input);
        }
        let mut out = Vec::with_capacity(input.len() * 2);
        let mut rewriter = Rewriter::new();
        let started = Instant::now();
        rewriter.feed(&input, &mut out).expect("valid input");
        started.elapsed().as_secs_f64() * 1e6 / f64::from(strings)
    };
    let huffman = per_block(&[
        0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
    ]);
    let plain = per_block(b"\x0fwww.example.com");
    println!(
        "huffman: {:.2} µs per Huffman-coded string ({huffman:.2} µs per block with one, {plain:.2} without)",
        huffman - plain
    );

    let mut data = PREFACE.to_vec();
    let payload = vec![0u8; 16 * 1024];
    let frames = 20_000u32;
    for i in 0..frames {
        frame(0x0, 0, 2 * i + 1, &payload, &mut data);
    }
    let mut out = Vec::with_capacity(data.len());
    let mut rewriter = Rewriter::new();
    let started = Instant::now();
    for chunk in data.chunks(16 * 1024) {
        rewriter.feed(chunk, &mut out).expect("valid input");
    }
    let elapsed = started.elapsed();
    println!(
        "pass-through: {} MiB of DATA frames in {elapsed:.2?}: {:.0} MiB/s",
        data.len() >> 20,
        (data.len() >> 20) as f64 / elapsed.as_secs_f64()
    );
}

/// Serves gRPC health on `path`, its connections behind the rewrite or not.
async fn serve(path: &Path, rewrite: bool) {
    let listener = UnixListener::bind(path).expect("bind");
    let (_reporter, service) = tonic_health::server::health_reporter();
    let router = tonic::transport::Server::builder().add_service(service);
    let incoming = UnixListenerStream::new(listener);
    tokio::spawn(async move {
        if rewrite {
            let incoming = incoming.map(|s| s.map(AuthorityRewrite::new));
            router.serve_with_incoming(incoming).await
        } else {
            router.serve_with_incoming(incoming).await
        }
    });
}

async fn calls(path: &Path, n: u32) -> Duration {
    let channel = ascp::cli::mount::connect(path, Duration::from_secs(10))
        .await
        .expect("connect");
    let mut client = HealthClient::new(channel);
    let started = Instant::now();
    for _ in 0..n {
        client
            .check(HealthCheckRequest::default())
            .await
            .expect("a health check");
    }
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let blocks: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rpcs: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    bench_rewriter(blocks);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let with = dir.path().join("with.sock");
    let without = dir.path().join("without.sock");
    serve(&with, true).await;
    serve(&without, false).await;
    // Warm both up, then alternate so that neither gets a quieter machine.
    calls(&with, 1_000).await;
    calls(&without, 1_000).await;
    let (mut t_with, mut t_without) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..4 {
        t_with += calls(&with, rpcs / 4).await;
        t_without += calls(&without, rpcs / 4).await;
    }
    let per = |t: Duration| t.as_secs_f64() * 1e6 / f64::from(rpcs / 4 * 4);
    println!(
        "health check round trips ({rpcs} each): {:.1} µs with the rewrite, {:.1} µs without: {:+.1} µs per call",
        per(t_with),
        per(t_without),
        per(t_with) - per(t_without)
    );
}
