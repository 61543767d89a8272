//! Every amplification path of the real binary, each pushed past its bound:
//! the outcome (code and message), that nothing was written, and the
//! provider's peak memory (VmHWM) afterwards. Then a few hundred hostile
//! inputs across all of them against one process, sampling VmRSS after
//! each. The bounds are listed in docs/limits.md.
//!
//! AWS is moto behind the fault proxy and the Kubernetes API a stub, on
//! loopback. HTTP/2 cases use tests/clients/hostile_h2.py (raw frames from
//! the PyPI hyperframe/hpack packages), a client that shares no code with
//! the provider.
//!
//! `ASCP_HOSTILE_BINARY=PATH` runs these tests against another build of the
//! provider (the figures before a fix were taken so).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ascp::proto::{MountRequest, ObjectVersion};
use aws_sdk_ssm::types::ParameterType;
use serde_json::{Value, json};
use support::ascp_process::AscpProcess;
use support::loopback::Loopback;
use support::*;
use tonic::Code;

const NS: &str = "hostile";
const SA: &str = "app";
const ROLE: &str = "arn:aws:iam::123456789012:role/app";
const REGION: &str = "us-east-1";
/// In every secret seeded here, so that a log holding it is caught.
const SECRET_MARK: &str = "hostile-SECRET-7c1e";
const TOKEN: &str = "eyJ.hostile-TOKEN-5d2a.sig";
/// The peak each single-path test allows: the idle debug binary is about
/// 20 MiB; a bound crossed means the path amplified.
const PATH_PEAK_MIB: u64 = 64;
/// The peak the HTTP/2 tests allow: the idle binary, the request budget
/// (16 MiB) and the connections' windows (64 × 128 KiB), with room.
const H2_PEAK_MIB: u64 = 80;
/// The chart's memory limit, which the hostile set stays under.
const CHART_LIMIT_MIB: u64 = 128;

/// jmesPath expressions that amplify a small JSON value (each result is
/// the value's array multiplied): bounded evaluation ends them in
/// INVALID_ARGUMENT.
const AMPLIFYING_JMES: &[&str] = &[
    "[a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a][][a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a][][a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a][]",
];

struct World {
    lb: Loopback,
    ascp: AscpProcess,
    n: std::sync::atomic::AtomicUsize,
}

impl World {
    async fn start(args: &[&str]) -> World {
        let lb = Loopback::start(&[(NS, SA, ROLE)]).await;
        let env = lb.env(&[("RUST_LOG", "info")]);
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let binary = std::env::var_os("ASCP_HOSTILE_BINARY")
            .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ascp")), PathBuf::from);
        let ascp = AscpProcess::start(&binary, &args, &env).await;
        World {
            lb,
            ascp,
            n: Default::default(),
        }
    }

    async fn sm(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&sdk_config(&self.lb.moto.endpoint(), REGION).await)
    }

    async fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&sdk_config(&self.lb.moto.endpoint(), REGION).await)
    }

    /// A fresh, empty target directory.
    fn target(&self) -> PathBuf {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = self.ascp.dir().join("targets").join(n.to_string());
        std::fs::create_dir_all(&dir).expect("create a target directory");
        dir
    }
}

/// The attributes a driver sends for `objects`, then `extra` over them.
fn attributes(objects: &str, extra: &[(&str, &str)]) -> String {
    let tokens = json!({
        "sts.amazonaws.com": {"token": TOKEN, "expirationTimestamp": "2099-01-01T00:00:00Z"},
    })
    .to_string();
    let mut a = json!({
        "csi.storage.k8s.io/pod.name": "app-0",
        "csi.storage.k8s.io/pod.namespace": NS,
        "csi.storage.k8s.io/pod.uid": "uid-0",
        "csi.storage.k8s.io/serviceAccount.name": SA,
        "csi.storage.k8s.io/serviceAccount.tokens": tokens,
        "secretProviderClass": "hostile",
        "region": REGION,
        "objects": objects,
    });
    for (k, v) in extra {
        a[*k] = json!(v);
    }
    a.to_string()
}

fn request(target: &Path, attributes: String) -> MountRequest {
    MountRequest {
        attributes,
        secrets: "null".into(),
        target_path: target.display().to_string(),
        permission: "420".into(),
        current_object_version: vec![],
    }
}

/// Asserts `result` failed with `code` and a message holding every needle;
/// the message.
#[track_caller]
fn refused<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    needles: &[&str],
    what: &str,
) -> String {
    let status = result.expect_err(what);
    let message = status.message().to_owned();
    assert_eq!(status.code(), code, "{what}: {message}");
    for needle in needles {
        assert!(
            message.contains(needle),
            "{what}: {needle:?} not in {message:?}"
        );
    }
    assert!(
        message.len() <= 8 * 1024,
        "{what}: a message of {} bytes",
        message.len()
    );
    assert!(
        !message.contains(SECRET_MARK) && !message.contains(TOKEN),
        "{what}: {message}"
    );
    message
}

#[track_caller]
fn assert_empty(dir: &Path, what: &str) {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{what}: read {}: {e}", dir.display()))
        .map(|e| e.map(|e| e.file_name()))
        .collect();
    assert!(entries.is_empty(), "{what}: written {entries:?}");
}

#[track_caller]
fn assert_log_clean(ascp: &AscpProcess) {
    let log = ascp.log();
    assert!(!log.contains(SECRET_MARK), "a secret value in the log");
    assert!(!log.contains(TOKEN), "a token in the log");
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest <= 16 * 1024, "a log line of {longest} bytes");
}

/// `count` anchors, each a list of nine references to the previous one: a
/// billion laughs in the objects YAML.
fn laughs(levels: usize) -> String {
    let mut yaml = String::from(
        "- objectName: db\n  objectType: secretsmanager\n  l0: &l0 [\"ha\",\"ha\",\"ha\",\"ha\",\"ha\",\"ha\",\"ha\",\"ha\",\"ha\"]\n",
    );
    for i in 1..levels {
        let p = i - 1;
        yaml.push_str(&format!(
            "  l{i}: &l{i} [*l{p},*l{p},*l{p},*l{p},*l{p},*l{p},*l{p},*l{p},*l{p}]\n"
        ));
    }
    yaml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_yaml_aliases_cannot_amplify() {
    let w = World::start(&[]).await;
    for (what, yaml, needle) in [
        ("billion laughs", laughs(10), "not a YAML list of objects"),
        (
            "deep nesting",
            format!(
                "- objectName: db\n  x: {}{}\n",
                "[".repeat(5000),
                "]".repeat(5000)
            ),
            "objects",
        ),
        (
            "1 MiB plus one",
            format!("# {}\n- objectName: db\n", "x".repeat(1024 * 1024)),
            "bytes",
        ),
    ] {
        let target = w.target();
        refused(
            w.ascp.mount(request(&target, attributes(&yaml, &[]))).await,
            Code::InvalidArgument,
            &["objects", needle],
            what,
        );
        assert_empty(&target, what);
    }
    w.ascp
        .assert_peak_below_mib(PATH_PEAK_MIB, "YAML aliases, depth and size");
    assert_log_clean(&w.ascp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_json_is_bounded_in_size_keys_and_depth() {
    let w = World::start(&[]).await;
    // Just under the 2 MiB limit: a million numbers, skipped unbuilt (a
    // JSON tree of them is 32 MiB); four at once.
    let wide = format!(
        "{{\"objects\":\"- objectName: db\",\"x\":[{}0]}}",
        "0,".repeat(1024 * 1024 - 40)
    );
    let targets: Vec<PathBuf> = (0..4).map(|_| w.target()).collect();
    let wides = futures::future::join_all(
        targets
            .iter()
            .map(|t| w.ascp.mount(request(t, wide.clone()))),
    )
    .await;
    for (result, target) in wides.into_iter().zip(&targets) {
        refused(
            result,
            Code::InvalidArgument,
            &["not a string: \"x\""],
            "wide",
        );
        assert_empty(target, "wide");
    }
    let many_keys = format!(
        "{{{}}}",
        (0..100_000)
            .map(|i| format!("\"k{i}\":\"\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let deep = format!("{{\"x\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let over = format!("{{\"x\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
    for (what, attrs, needle) in [
        ("many keys", many_keys, "more than 256 keys"),
        // Skipped unbuilt, at any depth.
        ("deep", deep, "not a string: \"x\""),
        ("over 2 MiB", over, "more than the limit"),
    ] {
        let target = w.target();
        refused(
            w.ascp.mount(request(&target, attrs)).await,
            Code::InvalidArgument,
            &["invalid mount attributes", needle],
            what,
        );
        assert_empty(&target, what);
    }
    w.ascp
        .assert_peak_below_mib(PATH_PEAK_MIB, "attributes JSON");
    assert_log_clean(&w.ascp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_json_is_bounded() {
    let w = World::start(&[]).await;
    let objects = "- objectName: db\n  objectType: secretsmanager\n";
    let deep = format!(
        "{{\"sts.amazonaws.com\":{}{}}}",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let big = json!({"sts.amazonaws.com": {"token": "a".repeat(300 * 1024)}}).to_string();
    let wide = format!(
        "{{{}}}",
        (0..20_000)
            .map(|i| format!("\"a{i}\":{{}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    for (what, tokens, needle) in [
        ("deep", deep, "not a JSON object of audience"),
        ("over 256 KiB", big, "more than the 262144 allowed"),
        ("many audiences", wide, "sts.amazonaws.com"),
    ] {
        let target = w.target();
        let attrs = attributes(
            objects,
            &[("csi.storage.k8s.io/serviceAccount.tokens", &tokens)],
        );
        refused(
            w.ascp.mount(request(&target, attrs)).await,
            Code::FailedPrecondition,
            &["service account token", needle],
            what,
        );
        assert_empty(&target, what);
    }
    w.ascp.assert_peak_below_mib(PATH_PEAK_MIB, "tokens JSON");
    assert_log_clean(&w.ascp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_object_versions_are_counted_before_decoding() {
    let w = World::start(&[]).await;
    // Two bytes each on the wire, 48 once decoded: 1.9 million in 3.8 MiB,
    // four requests at once.
    let targets: Vec<PathBuf> = (0..4).map(|_| w.target()).collect();
    let results = futures::future::join_all(targets.iter().map(|t| {
        let mut r = request(
            t,
            attributes("- objectName: db\n  objectType: secretsmanager\n", &[]),
        );
        r.current_object_version = vec![ObjectVersion::default(); 1_900_000];
        w.ascp.mount(r)
    }))
    .await;
    for (result, target) in results.into_iter().zip(&targets) {
        refused(
            result,
            Code::InvalidArgument,
            &["more than 4112 fields (current_object_version entries"],
            "versions flood",
        );
        assert_empty(target, "versions flood");
    }
    // Long ids and versions are as long as the request allows, no more.
    let target = w.target();
    let mut r = request(
        &target,
        attributes("- objectName: db\n", &[("region", "not a region!")]),
    );
    r.current_object_version = (0..1000)
        .map(|i| ObjectVersion {
            id: format!("{i}{}", "i".repeat(1500)),
            version: "v".repeat(1500),
        })
        .collect();
    refused(
        w.ascp.mount(r).await,
        Code::InvalidArgument,
        &["region"],
        "long versions",
    );
    assert_empty(&target, "long versions");
    w.ascp
        .assert_peak_below_mib(PATH_PEAK_MIB, "current_object_version");
    assert_log_clean(&w.ascp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_message_limit_are_refused_before_buffering() {
    let w = World::start(&[]).await;
    // Eight at once, 15 MiB each: refused on their declared length.
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(15 * 1024 * 1024));
    let targets: Vec<PathBuf> = (0..8).map(|_| w.target()).collect();
    let results = futures::future::join_all(
        targets
            .iter()
            .map(|t| w.ascp.mount(request(t, big.clone()))),
    )
    .await;
    for (result, target) in results.into_iter().zip(&targets) {
        refused(
            result,
            Code::OutOfRange,
            &["message length too large"],
            "15 MiB request",
        );
        assert_empty(target, "15 MiB request");
    }
    // Between the attributes' limit and the message's: our own message.
    let target = w.target();
    let over = format!("{{\"x\":\"{}\"}}", "a".repeat(3 * 1024 * 1024));
    refused(
        w.ascp.mount(request(&target, over)).await,
        Code::InvalidArgument,
        &["more than the limit of 2097152"],
        "3 MiB attributes",
    );
    // A target path past PATH_MAX: refused, and shown only in part.
    let long = w.target().join("x".repeat(1_000_000));
    let message = refused(
        w.ascp
            .mount(request(&long, attributes("- objectName: db\n", &[])))
            .await,
        Code::InvalidArgument,
        &["invalid target path", "longer than the 4096"],
        "1 MB target path",
    );
    assert!(message.len() < 1024, "{message}");
    w.ascp.assert_peak_below_mib(PATH_PEAK_MIB, "message size");
    assert_log_clean(&w.ascp);
}

/// A secret whose value is deeply nested JSON reaches jmesPath, and one
/// that does not decode as its objectEncoding: refused, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_nested_or_undecodable_are_refused() {
    let w = World::start(&[]).await;
    let sm = w.sm().await;
    let nested = format!(
        "{}\"{SECRET_MARK}\"{}",
        "[".repeat(30_000),
        "]".repeat(30_000)
    );
    create_secret_string(&sm, "h/nested", &nested).await;
    create_secret_string(&sm, "h/not-b64", &format!("{SECRET_MARK}!!")).await;
    create_secret_string(&sm, "h/odd-hex", "abc").await;
    // Base64 of the largest value Secrets Manager holds decodes smaller.
    let big = "QUJD".repeat(16 * 1024);
    create_secret_string(&sm, "h/b64", &big).await;
    for (what, objects, needles) in [
        (
            "nested JSON",
            "- objectName: h/nested\n  objectType: secretsmanager\n  jmesPath:\n    - path: a\n      objectAlias: a\n",
            &["h/nested"][..],
        ),
        (
            "not base64",
            "- objectName: h/not-b64\n  objectType: secretsmanager\n  objectEncoding: base64\n",
            &["h/not-b64", "base64"][..],
        ),
        (
            "odd hex",
            "- objectName: h/odd-hex\n  objectType: secretsmanager\n  objectEncoding: hex\n",
            &["h/odd-hex", "hex"][..],
        ),
    ] {
        let target = w.target();
        refused(
            w.ascp
                .mount(request(&target, attributes(objects, &[])))
                .await,
            Code::InvalidArgument,
            needles,
            what,
        );
        assert_empty(&target, what);
    }
    let target = w.target();
    w.ascp
        .mount(request(
            &target,
            attributes(
                "- objectName: h/b64\n  objectType: secretsmanager\n  objectEncoding: base64\n",
                &[],
            ),
        ))
        .await
        .expect("valid base64");
    assert_eq!(
        std::fs::read(target.join("h_b64")).unwrap().len(),
        48 * 1024
    );
    w.ascp.assert_peak_below_mib(PATH_PEAK_MIB, "secret values");
    assert_log_clean(&w.ascp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_listings_are_bounded_in_matches() {
    let w = World::start(&[]).await;
    let ssm = w.ssm().await;
    for i in 0..257 {
        put_parameter(
            &ssm,
            &format!("/h/many/p{i:03}"),
            SECRET_MARK,
            ParameterType::String,
        )
        .await;
    }
    let target = w.target();
    refused(
        w.ascp
            .mount(request(
                &target,
                attributes("- objectName: /h/many/*\n  objectType: ssmparameter\n", &[]),
            ))
            .await,
        Code::InvalidArgument,
        &["more than 256 objects under /h/many/"],
        "257 matches",
    );
    assert_empty(&target, "257 matches");
    // Two paths share the mount's files: 1024 at most.
    let target = w.target();
    let objects: String = (0..5)
        .map(|i| format!("- objectName: /h/many/**\n  objectType: ssmparameter\n  x{i}: 0\n"))
        .collect();
    let _ = w
        .ascp
        .mount(request(&target, attributes(&objects, &[])))
        .await;
    assert_empty(&target, "paths over the mount's files");
    assert_eq!(
        w.lb.proxy.calls("GetParametersByPath"),
        26,
        "pages followed: 10 a page, stopped at the 257th match"
    );
    w.ascp.assert_peak_below_mib(PATH_PEAK_MIB, "path listings");
    assert_log_clean(&w.ascp);
}

// ---- HTTP/2, through an independent client ----

/// The shared virtualenv's interpreter, with the client packages importable.
fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import grpc_tools.protoc, hpack, hyperframe"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import grpcio-tools, hpack, hyperframe: run scripts/install-moto.sh then scripts/install-clients.sh",
        python.display()
    );
    python
}

fn h2_command(ascp: &AscpProcess, spec: Value) -> Command {
    let mut spec = spec;
    spec["socket"] = json!(ascp.socket());
    let path = ascp.dir().join(format!("h2-{}.json", fastrand::u64(..)));
    std::fs::write(&path, spec.to_string()).expect("write the client's spec");
    let mut command = Command::new(python());
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/hostile_h2.py"))
        .arg(path);
    command
}

/// Runs a case of the hostile HTTP/2 client; its JSON answer.
async fn h2(ascp: &AscpProcess, spec: Value) -> Value {
    let mut command = h2_command(ascp, spec);
    let output = tokio::task::spawn_blocking(move || command.output().expect("run the client"))
        .await
        .expect("the client's thread");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client failed ({}): {}\n{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("client answered {stdout:?}: {e}"))
}

/// After a hostile client: the provider still answers a mount.
async fn still_serves(w: &World) {
    let target = w.target();
    refused(
        w.ascp
            .mount(request(
                &target,
                attributes("- objectName: db\n", &[("region", "!")]),
            ))
            .await,
        Code::InvalidArgument,
        &["region"],
        "a mount after the hostile client",
    );
    assert!(w.ascp.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_per_connection_and_their_bytes_are_bounded() {
    let w = World::start(&[]).await;
    // 300 streams, each sending 1 MiB of a 4 MB message it never finishes.
    let seen = h2(
        &w.ascp,
        json!({"case": "streams", "streams": 300, "per_stream": 1 << 20}),
    )
    .await;
    assert_eq!(seen["max_concurrent_streams"], 128, "{seen}");
    assert_eq!(seen["refused"], 300 - 128, "{seen}");
    let sent = seen["bytes_sent"].as_u64().unwrap();
    assert!(sent <= 17 << 20, "{sent} bytes accepted: {seen}");
    w.ascp
        .assert_peak_below_mib(H2_PEAK_MIB, "300 streams of 1 MiB");
    still_serves(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_are_bounded() {
    let w = World::start(&[]).await;
    let seen = h2(
        &w.ascp,
        json!({"case": "connections", "connections": 300, "per_stream": 1 << 20}),
    )
    .await;
    let served = seen["served"].as_u64().unwrap();
    assert!(served > 0 && served <= 64, "{seen}");
    w.ascp
        .assert_peak_below_mib(H2_PEAK_MIB, "300 connections of 1 MiB");
    still_serves(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_header_lists_and_authority_blocks_are_bounded() {
    let w = World::start(&[]).await;
    let seen = h2(
        &w.ascp,
        json!({"case": "headers", "sizes": [8 * 1024, 40 * 1024, 200 * 1024],
               "continuations": 10_000, "table_size": 1 << 20}),
    )
    .await;
    // Within the 16 KiB list: served (no message, so a gRPC error).
    assert_eq!(seen["header 8192"], "status 200 grpc-status 13", "{seen}");
    // Past it, within the rewrite layer's 64 KiB: 431 from the server.
    assert_eq!(
        seen["header 40960"], "status 431 grpc-status None",
        "{seen}"
    );
    // Past the rewrite layer's bounds: the connection is dropped.
    for case in ["header 204800", "continuations", "table size"] {
        assert_eq!(seen[case], "closed", "{case}: {seen}");
    }
    w.ascp.assert_peak_below_mib(H2_PEAK_MIB, "header lists");
    still_serves(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_a_client_that_never_reads_holds_little() {
    let w = World::start(&["--driver-writes-secrets"]).await;
    let sm = w.sm().await;
    // Near the largest value Secrets Manager holds.
    create_secret_string(
        &sm,
        "h/big",
        &format!("{SECRET_MARK}{}", "s".repeat(60 * 1024)),
    )
    .await;
    let target = w.target();
    let spec = json!({
        "case": "slow_reader",
        "requests": 100,
        "request": {
            "attributes": attributes("- objectName: h/big\n  objectType: secretsmanager\n", &[]),
            "secrets": "null",
            "target_path": target.display().to_string(),
            "permission": "420",
        },
    });
    let mut command = h2_command(&w.ascp, spec);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the client");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).expect("read the client");
        line
    })
    .await
    .unwrap();
    let seen: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(seen["opened"], 100, "{seen}");
    // Answers held while the client does not read: the budget caps them.
    w.ascp
        .assert_peak_below_mib(H2_PEAK_MIB, "100 answers never read");
    drop(child.stdin.take());
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    assert_empty(&target, "driver writes");
    still_serves(&w).await;
    assert_log_clean(&w.ascp);
}

// ---- the hostile set ----

/// A few hundred hostile inputs of every kind above, against one process:
/// VmRSS never exceeds the chart's limit, no input crashes it, nothing is
/// written outside a target, no secret value reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_set_against_one_process() {
    let w = World::start(&[]).await;
    let sm = w.sm().await;
    let ssm = w.ssm().await;
    create_secret_string(
        &sm,
        "h/json",
        &format!("{{\"a\":[1,2,3,4,5,6,7,8],\"s\":\"{SECRET_MARK}\"}}"),
    )
    .await;
    create_secret_string(
        &sm,
        "h/nested",
        &format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000)),
    )
    .await;
    create_secret_string(&sm, "h/text", &format!("{SECRET_MARK}!")).await;
    for i in 0..40 {
        put_parameter(
            &ssm,
            &format!("/h/list/p{i:02}"),
            SECRET_MARK,
            ParameterType::String,
        )
        .await;
    }
    let outside = w.ascp.dir().join("outside");
    std::fs::create_dir_all(&outside).unwrap();

    let mut inputs: Vec<(String, MountRequest)> = Vec::new();
    let mut add = |what: String, attrs: String, versions: Vec<ObjectVersion>| {
        let mut r = request(&w.target(), attrs);
        r.current_object_version = versions;
        inputs.push((what, r));
    };
    for levels in 2..12 {
        add(
            format!("laughs {levels}"),
            attributes(&laughs(levels), &[]),
            vec![],
        );
    }
    for depth in [100, 1_000, 10_000, 100_000] {
        add(
            format!("yaml depth {depth}"),
            attributes(
                &format!(
                    "- objectName: db\n  x: {}{}\n",
                    "[".repeat(depth),
                    "]".repeat(depth)
                ),
                &[],
            ),
            vec![],
        );
        add(
            format!("attributes depth {depth}"),
            format!("{{\"x\":{}{}}}", "[".repeat(depth), "]".repeat(depth)),
            vec![],
        );
        add(
            format!("tokens depth {depth}"),
            attributes(
                "- objectName: h/text\n  objectType: secretsmanager\n",
                &[(
                    "csi.storage.k8s.io/serviceAccount.tokens",
                    &format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
                )],
            ),
            vec![],
        );
    }
    for k in [1usize, 64, 512, 4096] {
        let wide = format!("{{\"objects\":\"x\",\"x\":[{}0]}}", "0,".repeat(k * 256));
        add(format!("attributes wide {k}"), wide, vec![]);
        let keys = format!(
            "{{{}}}",
            (0..k)
                .map(|i| format!("\"k{i}\":\"\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        add(format!("attributes keys {k}"), keys, vec![]);
        add(
            format!("versions {k}"),
            attributes("- objectName: h/text\n  objectType: secretsmanager\n", &[]),
            vec![
                ObjectVersion {
                    id: "h_text".into(),
                    version: "v".repeat(64)
                };
                k * 2
            ],
        );
    }
    for n in [1usize, 16, 64, 255, 256, 257, 300] {
        let objects: String = (0..n)
            .map(|i| {
                format!("- objectName: h/json\n  objectType: secretsmanager\n  objectAlias: a{i}\n")
            })
            .collect();
        add(format!("{n} objects"), attributes(&objects, &[]), vec![]);
        let jmes: String = (0..n)
            .map(|i| format!("    - path: a\n      objectAlias: j{i}\n"))
            .collect();
        add(
            format!("{n} jmesPath entries"),
            attributes(
                &format!("- objectName: h/json\n  objectType: secretsmanager\n  jmesPath:\n{jmes}"),
                &[],
            ),
            vec![],
        );
    }
    for (i, expr) in [
        "a",
        "s",
        "a[*]",
        "[a,a,a,a]",
        "a[0]",
        "to_string(@)",
        "keys(@)",
        "[[[[[[[[[[a]]]]]]]]]]",
        "length(s)",
        "a | [@,@,@,@,@,@,@,@]",
        &"(".repeat(40),
        &"a.".repeat(600),
        "`[1,2,3]`",
    ]
    .iter()
    .enumerate()
    {
        let objects = format!(
            "- objectName: h/json\n  objectType: secretsmanager\n  jmesPath:\n    - path: {}\n      objectAlias: e{i}\n",
            json!(expr)
        );
        add(
            format!("jmesPath {expr:.40}"),
            attributes(&objects, &[]),
            vec![],
        );
    }
    for expr in AMPLIFYING_JMES {
        let objects = format!(
            "- objectName: h/json\n  objectType: secretsmanager\n  jmesPath:\n    - path: {}\n      objectAlias: amp\n",
            json!(expr)
        );
        add(
            format!("amplifying jmes {expr:.40}"),
            attributes(&objects, &[]),
            vec![],
        );
    }
    for enc in ["base64", "hex", "utf-8", "BASE64", "rot13"] {
        for name in ["h/text", "h/json"] {
            add(
                format!("{name} as {enc}"),
                attributes(
                    &format!(
                        "- objectName: {name}\n  objectType: secretsmanager\n  objectEncoding: {enc}\n"
                    ),
                    &[],
                ),
                vec![],
            );
        }
    }
    add(
        "nested secret to jmesPath".into(),
        attributes(
            "- objectName: h/nested\n  objectType: secretsmanager\n  jmesPath:\n    - path: '[0]'\n      objectAlias: n\n",
            &[],
        ),
        vec![],
    );
    for pattern in ["/h/list/*", "/h/list/**", "/h/*", "/h/**", "/nothing/*"] {
        add(
            format!("path {pattern}"),
            attributes(
                &format!("- objectName: {pattern}\n  objectType: ssmparameter\n"),
                &[],
            ),
            vec![],
        );
    }
    for name in [
        "../../outside/x".to_owned(),
        "/../outside/y".to_owned(),
        "a/".repeat(2000),
        "x\ny: forged".to_owned(),
        "\u{1b}[31mred".to_owned(),
        "a".repeat(3000),
        "..data".to_owned(),
    ] {
        for alias in [None, Some("../outside/z"), Some("..data/x")] {
            let mut entry = json!({"objectName": name, "objectType": "secretsmanager"});
            if let Some(alias) = alias {
                entry["objectAlias"] = json!(alias);
            }
            let objects = serde_json::to_string(&json!([entry])).unwrap();
            add(
                format!("name {:.20} alias {alias:?}", name.escape_debug()),
                attributes(&objects, &[("pathTranslation", "False")]),
                vec![],
            );
        }
    }
    for (k, v) in [
        ("region", "a".repeat(100_000)),
        ("region", "us-east-1\nforged".into()),
        ("failoverRegion", REGION.into()),
        ("pathTranslation", "ab".into()),
        ("usePodIdentity", "maybe".into()),
        ("preferredAddressType", "x".repeat(10_000)),
        (
            "assumeRoleArn",
            "arn:aws:iam::1:role/".to_owned() + &"r".repeat(5000),
        ),
        ("csi.storage.k8s.io/pod.name", "p\nforged".into()),
        ("secretProviderClass", "c".repeat(4000)),
    ] {
        add(
            format!("parameter {k}"),
            attributes(
                "- objectName: h/text\n  objectType: secretsmanager\n",
                &[(k, &v)],
            ),
            vec![],
        );
    }
    // Fill to a few hundred with mixtures of the above, deterministically.
    let mut rng = fastrand::Rng::with_seed(20261207);
    let base = inputs.len();
    while inputs.len() < 320 {
        let (what, r) = &inputs[rng.usize(..base)];
        let mut r = r.clone();
        r.target_path = w.target().display().to_string();
        match rng.u8(..4) {
            0 => r.permission = ["0", "511", "512", "-1", "1e9", "\"420\""][rng.usize(..6)].into(),
            1 => r.secrets = "[".repeat(rng.usize(..5000)),
            2 => r.current_object_version.push(ObjectVersion {
                id: "../x".into(),
                version: "1".into(),
            }),
            _ => {}
        }
        inputs.push((format!("{what} (mixed)"), r));
    }

    let mut peak_rss = 0;
    for (i, (what, r)) in inputs.iter().enumerate() {
        let target = PathBuf::from(&r.target_path);
        let result = w.ascp.mount(r.clone()).await;
        assert!(
            w.ascp.is_running(),
            "input #{i} ({what}) crashed the provider:\n{}",
            w.ascp.log()
        );
        match &result {
            Ok(_) => {}
            Err(status) => {
                assert_ne!(status.code(), Code::Unavailable, "#{i} {what}: {status:?}");
                assert_ne!(status.code(), Code::Internal, "#{i} {what}: {status:?}");
                assert!(status.message().len() <= 8 * 1024, "#{i} {what}");
                assert!(!status.message().contains(SECRET_MARK), "#{i} {what}");
                if target.exists() {
                    assert_empty(&target, &format!("#{i} {what}"));
                }
            }
        }
        let rss = w.ascp.memory().rss_kib;
        peak_rss = peak_rss.max(rss);
        assert!(
            rss <= CHART_LIMIT_MIB * 1024,
            "after #{i} ({what}): VmRSS {rss} KiB"
        );
    }
    assert_empty(&outside, "outside every target");
    w.ascp
        .assert_peak_below_mib(CHART_LIMIT_MIB, "the hostile set");
    assert_log_clean(&w.ascp);
    eprintln!(
        "hostile set: {} inputs, peak VmRSS {peak_rss} KiB, VmHWM {} KiB",
        inputs.len(),
        w.ascp.memory().hwm_kib
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_the_request_cannot_forge_or_flood_log_lines() {
    let w = World::start(&[]).await;
    let forged = "app\nFORGED mount finished outcome=success";
    let long = "p".repeat(400 * 1024);
    for (what, pod) in [("newline", forged), ("400 KiB name", long.as_str())] {
        let target = w.target();
        let attrs = attributes(
            "- objectName: missing\n  objectType: secretsmanager\n",
            &[
                ("csi.storage.k8s.io/pod.name", pod),
                ("secretProviderClass", pod),
            ],
        );
        let status = w.ascp.mount(request(&target, attrs)).await.expect_err(what);
        assert_ne!(status.code(), Code::Ok, "{what}");
        assert_empty(&target, what);
    }
    let log = w.ascp.log();
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a forged log line:\n{log}"
    );
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest <= 4 * 1024, "a log line of {longest} bytes");
    w.ascp.assert_peak_below_mib(PATH_PEAK_MIB, "names in logs");
}
