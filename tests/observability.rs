//! Metrics, health probes and redaction, with the provider on a real socket
//! and in-memory stores. One test function: the metrics registry is
//! process-wide, so counters are compared before and after in one sequence.

use ascp::health::HealthState;
use ascp::proto::ObjectVersion;
use ascp::store::FailureKind;

mod support;
use support::log::CapturedLog;
use support::memory::{Answer, Harness, request};

const SECRET: &str = "SECRET-VALUE-7f3a9c";
const TOKEN: &str = "TOKEN-VALUE-b81d2e";

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

fn counter(metrics: &str, line_prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_probes_and_redaction() {
    let capture = CapturedLog::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .json()
        .with_writer(move || writer.clone())
        .init();

    // Readiness before the socket is bound, then after.
    let dir = tempfile::tempdir().unwrap();
    let state = HealthState::new(dir.path().join("aws.sock"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ascp::health::serve(
        listener,
        state.clone(),
        std::future::pending(),
    ));
    assert_eq!(get(addr, "/readyz").await.0, 503);
    assert_eq!(get(addr, "/healthz").await.0, 503);
    assert_eq!(get(addr, "/nothing").await.0, 404);

    let mut h = Harness::start(false).await;
    let state = HealthState::new(h.socket.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ascp::health::serve(
        listener,
        state.clone(),
        std::future::pending(),
    ));
    assert_eq!(get(addr, "/readyz").await.0, 503, "not ready until marked");
    state.set_ready(true);
    assert_eq!(get(addr, "/readyz").await.0, 200);
    assert_eq!(
        get(addr, "/healthz").await.0,
        200,
        "the socket answers grpc.health.v1"
    );

    let sm = h.backend.sm("us-east-1");
    sm.put(
        "app/db",
        Answer::Value(r#"{"password":"SECRET-VALUE-7f3a9c"}"#, "v1"),
    );
    let target = tempfile::tempdir().unwrap();
    let objects = "- objectName: app/db\n  objectType: secretsmanager\n  jmesPath:\n    - {path: password, objectAlias: pw}\n";
    let tokens = format!(
        r#"{{"sts.amazonaws.com":{{"token":"{TOKEN}","expirationTimestamp":"2030-01-01T00:00:00Z"}}}}"#
    );
    let extra = [("csi.storage.k8s.io/serviceAccount.tokens", tokens.as_str())];

    let before = get(addr, "/metrics").await.1;
    let ok = r#"ascp_mount_requests_total{outcome="success",code="Ok"}"#;
    let not_found = r#"ascp_mount_requests_total{outcome="failure",code="NotFound"}"#;
    let objects_sm = r#"ascp_objects_mounted_total{store="secretsmanager"}"#;

    let mut errors = Vec::new();
    let first = h
        .mount(request(target.path(), objects, &extra))
        .await
        .unwrap();
    let mut remount = request(target.path(), objects, &extra);
    remount.current_object_version = first.object_version.clone();
    remount.current_object_version.push(ObjectVersion {
        id: "x".into(),
        version: "1".into(),
    });
    h.mount(remount).await.unwrap();
    for (kind, code) in [
        (FailureKind::NotFound, "ResourceNotFoundException"),
        (FailureKind::PermissionDenied, "AccessDeniedException"),
        (FailureKind::Unavailable, "InternalServiceError"),
        (FailureKind::InvalidArgument, "ValidationException"),
    ] {
        sm.put("app/db", Answer::Fail(kind, code));
        errors.push(
            h.mount(request(target.path(), objects, &extra))
                .await
                .unwrap_err()
                .message()
                .to_owned(),
        );
    }
    let bad_attrs = format!(
        r#"{{"objects": 1, "csi.storage.k8s.io/serviceAccount.tokens": "{TOKEN}", "x": {{"token": "{TOKEN}"}}}}"#
    );
    let mut req = request(target.path(), objects, &extra);
    req.attributes = bad_attrs;
    errors.push(h.mount(req).await.unwrap_err().message().to_owned());
    sm.put(
        "app/db",
        Answer::Value("not json SECRET-VALUE-7f3a9c", "v2"),
    );
    errors.push(
        h.mount(request(target.path(), objects, &extra))
            .await
            .unwrap_err()
            .message()
            .to_owned(),
    );

    let after = get(addr, "/metrics").await.1;
    assert_eq!(counter(&after, ok) - counter(&before, ok), 2.0, "{after}");
    assert_eq!(
        counter(&after, not_found) - counter(&before, not_found),
        1.0,
        "{after}"
    );
    assert_eq!(
        counter(&after, objects_sm) - counter(&before, objects_sm),
        2.0,
        "{after}"
    );
    assert!(after.contains(r#"ascp_mount_requests_total{outcome="failure",code="Unknown"}"#));
    assert!(after.contains("ascp_mount_duration_seconds_bucket"));
    assert!(after.contains("ascp_mounts_in_flight 0"));
    assert!(after.contains("ascp_build_info"));

    h.stop().await;
    let logs = capture.text();
    assert!(
        logs.contains("mount finished") && logs.contains("mount failed"),
        "logs captured"
    );
    let mount_ids: std::collections::HashSet<&str> = logs
        .lines()
        .filter(|l| l.contains("\"mount finished\""))
        .filter_map(|l| l.split("\"id\":\"").nth(1))
        .collect();
    assert!(!mount_ids.is_empty(), "json lines carry the mount id");
    for (what, text) in [
        ("logs", logs.as_str()),
        ("metrics", after.as_str()),
        ("errors", &errors.join("\n")),
    ] {
        assert!(!text.contains(SECRET), "secret value in {what}");
        assert!(!text.contains(TOKEN), "token in {what}");
    }
}
