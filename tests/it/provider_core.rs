//! The provider core through its real unix socket, with in-memory stores:
//! Version, Mount in both output modes, all-or-nothing writes, failover and
//! rotation rules, hostile input, panic isolation, and the `ascp mount` tool.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use tonic::Code;

use ascp::proto::{MountRequest, MountResponse, ObjectVersion, VersionRequest};
use ascp::store::FailureKind;

use crate::support;
use support::memory::{Answer, Harness, MemBackend, attributes, request};

/// Every entry below `dir`: relative path, mode, contents (or "->link").
fn snapshot(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u32, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            // The atomic-writer layout as a pod sees it: hidden `..` entries
            // skipped, links into `..data` followed.
            if rel.starts_with("..") {
                continue;
            }
            let into_data = std::fs::read_link(&path).is_ok_and(|l| l.starts_with("..data"));
            let meta = if into_data {
                std::fs::metadata(&path).unwrap()
            } else {
                std::fs::symlink_metadata(&path).unwrap()
            };
            let mode = meta.permissions().mode() & 0o777;
            if meta.file_type().is_symlink() {
                out.push((
                    rel,
                    0,
                    format!("->{}", std::fs::read_link(&path).unwrap().display()).into_bytes(),
                ));
            } else if meta.is_dir() {
                out.push((rel.clone(), mode, b"<dir>".to_vec()));
                walk(root, &path, out);
            } else {
                out.push((rel, mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

const OBJECTS: &str = r#"
- objectName: "prod/db"
  objectType: secretsmanager
  jmesPath:
    - path: username
      objectAlias: dbuser
    - path: password
      objectAlias: dbpass
      filePermission: "0400"
- objectName: "/app/flag"
  objectType: ssmparameter
  filePermission: "0640"
- objectName: "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-AbCdEf"
  objectAlias: api
"#;

fn seed(h: &Harness) {
    let sm = h.backend.sm("us-east-1");
    sm.put(
        "prod/db",
        Answer::Value(r#"{"username":"admin","password":"s3cr3t"}"#, "v-db-1"),
    );
    sm.put(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-AbCdEf",
        Answer::Value("api-key-value", "v-api-1"),
    );
    h.backend
        .ssm("us-east-1")
        .put("/app/flag", Answer::Value("on", "3"));
}

fn expected_files() -> Vec<(String, u32, Vec<u8>)> {
    vec![
        ("_app_flag".into(), 0o640, b"on".to_vec()),
        ("api".into(), 0o644, b"api-key-value".to_vec()),
        ("dbpass".into(), 0o400, b"s3cr3t".to_vec()),
        ("dbuser".into(), 0o644, b"admin".to_vec()),
        (
            "prod_db".into(),
            0o644,
            br#"{"username":"admin","password":"s3cr3t"}"#.to_vec(),
        ),
    ]
}

fn versions(resp: &MountResponse) -> Vec<(String, String)> {
    resp.object_version
        .iter()
        .map(|v| (v.id.clone(), v.version.clone()))
        .collect()
}

fn expected_versions() -> Vec<(String, String)> {
    [
        ("_app_flag", "3"),
        ("api", "v-api-1"),
        ("dbpass", "v-db-1"),
        ("dbuser", "v-db-1"),
        ("prod_db", "v-db-1"),
    ]
    .iter()
    .map(|(a, b)| ((*a).into(), (*b).into()))
    .collect()
}

#[tokio::test]
async fn version_answers_v1alpha1() {
    let mut h = Harness::start(false).await;
    let v = h
        .client
        .version(VersionRequest {
            version: "v1alpha1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.version, "v1alpha1");
    assert_eq!(v.runtime_name, ascp::PROGRAM);
    assert_eq!(v.runtime_version, ascp::VERSION);
    let mode = std::fs::metadata(&h.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    h.stop().await;
}

#[tokio::test]
async fn provider_writes_files_byte_for_byte_with_modes() {
    let mut h = Harness::start(false).await;
    seed(&h);
    let target = tempfile::tempdir().unwrap();
    let resp = h.mount(request(target.path(), OBJECTS, &[])).await.unwrap();
    assert!(
        resp.files.is_empty(),
        "provider-writes mode returns no files"
    );
    assert_eq!(snapshot(target.path()), expected_files());
    assert_eq!(versions(&resp), expected_versions());
    h.stop().await;
}

#[tokio::test]
async fn driver_writes_mode_returns_files_and_writes_nothing() {
    let mut h = Harness::start(true).await;
    seed(&h);
    let target = tempfile::tempdir().unwrap();
    let resp = h.mount(request(target.path(), OBJECTS, &[])).await.unwrap();
    assert!(snapshot(target.path()).is_empty());
    let mut files: Vec<(String, u32, Vec<u8>)> = resp
        .files
        .iter()
        .map(|f| (f.path.clone(), f.mode as u32, f.contents.clone()))
        .collect();
    files.sort();
    assert_eq!(files, expected_files());
    assert_eq!(versions(&resp), expected_versions());
    h.stop().await;
}

#[tokio::test]
async fn one_failing_object_leaves_the_target_untouched() {
    let mut h = Harness::start(false).await;
    seed(&h);
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("prod_db"), "old contents").unwrap();
    let before = snapshot(target.path());
    let objects = format!("{OBJECTS}\n- objectName: missing\n  objectType: secretsmanager\n");
    let err = h
        .mount(request(target.path(), &objects, &[]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("missing") && err.message().contains("us-east-1"),
        "{}",
        err.message()
    );
    assert_eq!(snapshot(target.path()), before);
    // A jmesPath failure is found after fetching, still before writing.
    h.backend
        .sm("us-east-1")
        .put("prod/db", Answer::Value("not json", "v2"));
    let err = h
        .mount(request(target.path(), OBJECTS, &[]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(snapshot(target.path()), before);
    h.stop().await;
}

#[tokio::test]
async fn subdirectories_without_translation_and_symlinks_are_not_followed() {
    let mut h = Harness::start(false).await;
    h.backend
        .ssm("us-east-1")
        .put("/app/db/password", Answer::Value("pw", "1"));
    let target = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let objects = "- objectName: /app/db/password\n  objectType: ssmparameter\n";
    let extra = [("pathTranslation", "False")];
    h.mount(request(target.path(), objects, &extra))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(target.path().join("app/db/password")).unwrap(),
        b"pw"
    );

    // A symlink planted as a directory on the path: replaced by the
    // layout's link, nothing written outside.
    let t2 = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), t2.path().join("app")).unwrap();
    h.mount(request(t2.path(), objects, &extra)).await.unwrap();
    assert_eq!(
        std::fs::read_link(t2.path().join("app")).unwrap(),
        Path::new("..data/app")
    );
    assert_eq!(
        std::fs::read(t2.path().join("app/db/password")).unwrap(),
        b"pw"
    );
    assert!(snapshot(outside.path()).is_empty());

    // A symlink planted at the file name is replaced, never written through.
    let t3 = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, t3.path().join("_app_db_password")).unwrap();
    h.mount(request(t3.path(), objects, &[])).await.unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(
        std::fs::read_link(t3.path().join("_app_db_password")).unwrap(),
        Path::new("..data/_app_db_password")
    );
    assert_eq!(
        std::fs::read(t3.path().join("_app_db_password")).unwrap(),
        b"pw"
    );
    h.stop().await;
}

#[tokio::test]
async fn bad_requests_are_invalid_argument_and_touch_nothing() {
    let mut h = Harness::start(false).await;
    seed(&h);
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("keep"), "x").unwrap();
    let before = snapshot(target.path());
    let good = request(target.path(), OBJECTS, &[]);
    let mut cases: Vec<(&str, MountRequest)> = Vec::new();
    let mut r = good.clone();
    r.attributes = "{not json".into();
    cases.push(("not JSON", r));
    let mut r = good.clone();
    r.attributes = r#"{"objects": 5, "csi.storage.k8s.io/serviceAccount.tokens": {"token": "tok-SECRET-123"}}"#.into();
    cases.push(("non-string", r));
    let mut r = good.clone();
    // Past the attributes' 2 MiB, within the message's 4 MiB (a larger
    // message is OUT_OF_RANGE, see tests/it/hostile.rs).
    r.attributes = format!(r#"{{"pad":"{}"}}"#, "a".repeat(3 * 1024 * 1024));
    cases.push(("3 MB", r));
    cases.push(("not a list", request(target.path(), "objectName: x", &[])));
    cases.push((
        "unknown type",
        request(target.path(), "- objectName: x\n  objectType: vault\n", &[]),
    ));
    let many: String = (0..10_000)
        .map(|i| format!("- {{objectName: s{i}, objectType: secretsmanager}}\n"))
        .collect();
    cases.push(("10,000 objects", request(target.path(), &many, &[])));
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    cases.push(("deep YAML", request(target.path(), &nested, &[])));
    let bomb = "- &a [x,x,x,x,x,x,x,x,x]\n- &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n- &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n- &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n- &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n- &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n- &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
    cases.push(("alias bomb", request(target.path(), bomb, &[])));
    cases.push((
        "NUL",
        request(
            target.path(),
            "- objectName: \"a\\0b\"\n  objectType: secretsmanager\n",
            &[],
        ),
    ));
    cases.push((
        "dot-dot",
        request(
            target.path(),
            "- objectName: a/../../etc/passwd\n  objectType: secretsmanager\n",
            &[("pathTranslation", "false")],
        ),
    ));
    let mut r = good.clone();
    r.permission = "512".into();
    cases.push(("permission", r));
    let mut r = good.clone();
    r.target_path = target.path().join("nope").display().to_string();
    cases.push(("missing target", r));
    let mut r = good.clone();
    r.target_path = target.path().join("keep").display().to_string();
    cases.push(("target not a dir", r));
    for (what, req) in cases {
        let err = h.mount(req).await.expect_err(what);
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{what}: {}",
            err.message()
        );
        assert!(
            !err.message().contains("tok-SECRET"),
            "{what}: {}",
            err.message()
        );
        assert!(err.message().len() < 4096, "{what}: message too long");
    }
    assert_eq!(snapshot(target.path()), before);
    // The server is still serving.
    h.mount(good).await.unwrap();
    h.stop().await;
}

#[tokio::test]
async fn a_panicking_request_does_not_take_the_server_down() {
    let mut h = Harness::start(false).await;
    seed(&h);
    let err = h.mount_a_panicking_store().await;
    let target = tempfile::tempdir().unwrap();
    assert_eq!(err.code(), Code::Internal);
    assert!(!err.message().contains("exploded"));
    h.mount(request(target.path(), OBJECTS, &[])).await.unwrap();
    h.stop().await;
}

#[tokio::test]
async fn failover_uses_the_other_region_only_for_service_errors() {
    let mut h = Harness::start(false).await;
    let objects = r#"
- objectName: db
  objectType: secretsmanager
  objectAlias: db
  failoverObject:
    objectName: db-replica
"#;
    let extra = [("failoverRegion", "us-west-2")];
    let target = tempfile::tempdir().unwrap();
    let primary = h.backend.sm("us-east-1");
    let secondary = h.backend.sm("us-west-2");
    secondary.put("db-replica", Answer::Value("from-west", "w1"));

    primary.put("db", Answer::Value("from-east", "e1"));
    let resp = h
        .mount(request(target.path(), objects, &extra))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(target.path().join("db")).unwrap(),
        b"from-east"
    );
    assert_eq!(versions(&resp), vec![("db".to_string(), "e1".to_string())]);
    assert_eq!(secondary.last_items.lock().unwrap()[0].name, "db-replica");

    primary.put(
        "db",
        Answer::Fail(FailureKind::Unavailable, "InternalServiceError"),
    );
    h.mount(request(target.path(), objects, &extra))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(target.path().join("db")).unwrap(),
        b"from-west"
    );

    primary.put(
        "db",
        Answer::Fail(FailureKind::PermissionDenied, "AccessDeniedException"),
    );
    let err = h
        .mount(request(target.path(), objects, &extra))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    primary.put("db", Answer::Value("from-east", "e1"));
    secondary.put(
        "db-replica",
        Answer::Fail(FailureKind::NotFound, "ResourceNotFoundException"),
    );
    let err = h
        .mount(request(target.path(), objects, &extra))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("us-west-2") && err.message().contains("db-replica"),
        "{}",
        err.message()
    );

    primary.put(
        "db",
        Answer::Fail(FailureKind::Unavailable, "InternalServiceError"),
    );
    secondary.put(
        "db-replica",
        Answer::Fail(FailureKind::Unavailable, "ServiceUnavailable"),
    );
    let err = h
        .mount(request(target.path(), objects, &extra))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unknown);
    assert!(err.message().contains("db"));
    h.stop().await;
}

#[tokio::test]
async fn rotation_remount_reuses_unchanged_contents_and_merges_versions() {
    let mut h = Harness::start(false).await;
    seed(&h);
    let target = tempfile::tempdir().unwrap();
    let first = h.mount(request(target.path(), OBJECTS, &[])).await.unwrap();
    let sm = h.backend.sm("us-east-1");
    let fetched_before = sm.fetched.load(Ordering::SeqCst);

    let mut again = request(target.path(), OBJECTS, &[]);
    again.current_object_version = first.object_version.clone();
    again.current_object_version.push(ObjectVersion {
        id: "old-file".into(),
        version: "9".into(),
    });
    let resp = h.mount(again.clone()).await.unwrap();
    assert_eq!(
        sm.fetched.load(Ordering::SeqCst),
        fetched_before,
        "unchanged secrets are not fetched"
    );
    assert_eq!(snapshot(target.path()), expected_files());
    let mut want = expected_versions();
    want.push(("old-file".into(), "9".into()));
    want.sort();
    assert_eq!(versions(&resp), want);

    // Mounted file gone: fetched again instead.
    std::fs::remove_file(target.path().join("prod_db")).unwrap();
    h.mount(again.clone()).await.unwrap();
    assert_eq!(snapshot(target.path()), expected_files());

    // A new version is fetched and written.
    sm.put(
        "prod/db",
        Answer::Value(r#"{"username":"root","password":"n3w"}"#, "v-db-2"),
    );
    let resp = h.mount(again).await.unwrap();
    assert_eq!(
        std::fs::read(target.path().join("dbuser")).unwrap(),
        b"root"
    );
    assert!(versions(&resp).contains(&("prod_db".into(), "v-db-2".into())));
    h.stop().await;
}

#[tokio::test]
async fn region_comes_from_the_backend_when_unset_and_arn_regions_must_match() {
    let backend = MemBackend {
        node_region: Some("eu-west-1".into()),
        ..Default::default()
    };
    let mut h = Harness::start_with(backend, false).await;
    h.backend.sm("eu-west-1").put("x", Answer::Value("v", "1"));
    let target = tempfile::tempdir().unwrap();
    let mut req = request(
        target.path(),
        "- objectName: x\n  objectType: secretsmanager\n",
        &[],
    );
    req.attributes = req.attributes.replace(r#""region":"us-east-1","#, "");
    h.mount(req.clone()).await.unwrap();
    assert_eq!(std::fs::read(target.path().join("x")).unwrap(), b"v");
    let arn = "- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:x\n";
    req.attributes = attributes(arn, &[]).replace(r#""region":"us-east-1","#, "");
    let err = h.mount(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("eu-west-1"), "{}", err.message());
    h.stop().await;
}

#[tokio::test]
async fn ascp_mount_tool_plays_the_driver() {
    let h = Harness::start(true).await;
    seed(&h);
    let dir = tempfile::tempdir().unwrap();
    let spc = dir.path().join("spc.yaml");
    let objects = OBJECTS.replace('\n', "\n      ");
    std::fs::write(
        &spc,
        format!(
            "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: web-secrets\nspec:\n  provider: aws\n  parameters:\n    region: us-east-1\n    objects: |\n      {objects}\n"
        ),
    )
    .unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-VERY-SECRET").unwrap();
    let target = dir.path().join("mnt");
    let socket = h.socket.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ascp"))
            .args(["mount", "--socket"])
            .arg(&socket)
            .arg("--spc")
            .arg(&spc)
            .arg("--target")
            .arg(&target)
            .args([
                "--namespace",
                "shop",
                "--service-account",
                "web",
                "--pod-name",
                "web-0",
            ])
            .arg(format!("--token=sts.amazonaws.com={}", token.display()))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("dbuser") && stdout.contains("v-db-1") && stdout.contains("400"),
        "{stdout}"
    );
    assert!(!stdout.contains("tok-VERY-SECRET") && !stdout.contains("s3cr3t"));
    assert_eq!(snapshot(&dir.path().join("mnt")), expected_files());

    // A failing mount: the tool exits non-zero with the code and message.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "kind: SecretProviderClass\nmetadata: {name: bad}\nspec:\n  provider: aws\n  parameters:\n    region: us-east-1\n    objects: |\n      - objectName: nothere\n        objectType: secretsmanager\n",
    )
    .unwrap();
    let socket = h.socket.clone();
    let target = dir.path().join("mnt2");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ascp"))
            .args(["mount", "--socket"])
            .arg(&socket)
            .arg("--spc")
            .arg(&bad)
            .arg("--target")
            .arg(&target)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("NotFound") && stderr.contains("nothere"),
        "{stderr}"
    );
    h.stop().await;
}

#[tokio::test]
async fn ascp_mount_tool_reports_an_unreachable_provider() {
    let dir = tempfile::tempdir().unwrap();
    let spc = dir.path().join("spc.yaml");
    std::fs::write(&spc, "kind: SecretProviderClass\nmetadata: {name: x}\nspec:\n  provider: aws\n  parameters:\n    objects: |\n      - {objectName: a, objectType: secretsmanager}\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ascp"))
        .args(["mount", "--timeout=2s", "--socket"])
        .arg(dir.path().join("nope.sock"))
        .arg("--spc")
        .arg(&spc)
        .arg("--target")
        .arg(dir.path().join("t"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

/// Driver v1.6: remounts without `current_object_version`. Pinned objects
/// are served from the provider's records: no store call, nothing written,
/// every version returned, the target's mtime moved. (Provider writes: in
/// this harness nobody writes the driver's files to read back.)
#[tokio::test]
async fn pinned_objects_cost_nothing_on_remounts_without_versions() {
    for driver_writes in [false] {
        let mut h = Harness::start(driver_writes).await;
        let sm = h.backend.sm("us-east-1");
        sm.put("pinned@v-7", Answer::Value("pinned-value", "v-7"));
        h.backend
            .ssm("us-east-1")
            .put("/p@4", Answer::Value("param-value", "4"));
        let objects = r#"
- objectName: "pinned"
  objectType: secretsmanager
  objectVersion: "v-7"
- objectName: "/p"
  objectType: ssmparameter
  objectVersion: "4"
"#;
        let target = tempfile::tempdir().unwrap();
        let first = h.mount(request(target.path(), objects, &[])).await.unwrap();
        let fetched = sm.fetched.load(Ordering::SeqCst);
        let data = std::fs::read_link(target.path().join("..data")).ok();
        for _ in 0..3 {
            let dir = std::fs::File::open(target.path()).unwrap();
            dir.set_modified(std::time::UNIX_EPOCH).unwrap();
            let again = h.mount(request(target.path(), objects, &[])).await.unwrap();
            assert_eq!(again.object_version, first.object_version);
            assert_eq!(again.files.len(), first.files.len());
            assert_eq!(
                sm.fetched.load(Ordering::SeqCst),
                fetched,
                "driver_writes={driver_writes}"
            );
            assert_eq!(std::fs::read_link(target.path().join("..data")).ok(), data);
            let mtime = std::fs::metadata(target.path())
                .unwrap()
                .modified()
                .unwrap();
            assert!(mtime > std::time::UNIX_EPOCH, "the target's mtime moves");
        }
        h.stop().await;
    }
}
