//! The features beyond ASCP's descriptors, through the real binary against
//! moto: `objectEncoding` (base64, hex, utf-8; on objects and on jmesPath
//! entries; from SecretString, SecretBinary and parameters), non-string
//! jmesPath results, and path objects (`prefix/*`, `prefix/**`) of both
//! stores. IRSA only: identity is not what these tests are about.

use crate::support;

use std::path::Path;

use ascp::proto::MountResponse;
use aws_sdk_ssm::types::ParameterType;
use support::loopback::{Pod, REGION, World};
use support::*;
use tonic::Code;

/// The pod every test mounts for.
const POD: Pod = Pod {
    namespace: "team",
    service_account: "app",
    role: "arn:aws:iam::123456789012:role/app",
    uid: "5e1f-uid",
    class: "features",
    token: "eyJhbGciOiJSUzI1NiJ9.FEATURES-TOKEN-1c9e.sig",
};

/// moto behind the counting proxy, a Kubernetes API knowing the service
/// account, and the binary started with `flags`.
async fn start(flags: &[&str]) -> World {
    World::start(POD, Path::new(env!("CARGO_BIN_EXE_ascp")), flags).await
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
}

fn read_text(dir: &Path, file: &str) -> String {
    String::from_utf8(read(dir, file)).expect("utf-8")
}

/// The visible names at the top of a target (not the atomic writer's `..`).
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the target")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".."))
        .collect();
    names.sort();
    names
}

/// Every byte value, then some text: binary output is checked byte for byte.
fn all_bytes() -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(b"\0keystore\r\n");
    bytes
}

/// Standard base64 of `bytes`, wrapped at 64 columns as PEM tools write it.
fn base64_wrapped(bytes: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    text.as_bytes()
        .chunks(64)
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

const ENCODED_OBJECTS: &str = r#"
- objectName: enc/keystore
  objectType: secretsmanager
  objectAlias: keystore.p12
  objectEncoding: base64
- objectName: enc/key-hex
  objectType: secretsmanager
  objectAlias: key.bin
  objectEncoding: hex
- objectName: enc/binary
  objectType: secretsmanager
  objectAlias: from-binary.bin
  objectEncoding: base64
- objectName: /enc/param
  objectType: ssmparameter
  objectAlias: from-parameter.bin
  objectEncoding: base64
- objectName: enc/bundle
  objectType: secretsmanager
  objectAlias: bundle.json
  jmesPath:
    - path: keystore
      objectAlias: bundle-keystore.bin
      objectEncoding: base64
    - path: user
      objectAlias: bundle-user
- objectName: enc/plain
  objectType: secretsmanager
  objectAlias: plain
  objectEncoding: utf-8
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_values_are_decoded_byte_for_byte_whatever_their_origin() {
    let world = start(&[]).await;
    let sm = world.sm().await;
    let bytes = all_bytes();
    let keystore = create_secret_string(&sm, "enc/keystore", &base64_wrapped(&bytes)).await;
    create_secret_string(&sm, "enc/key-hex", &format!("{}\n", hex_upper(&bytes))).await;
    // SecretBinary holding base64 text; padding left out.
    let unpadded = base64_wrapped(&bytes[..10])
        .trim_end_matches('=')
        .to_owned();
    create_secret_binary(&sm, "enc/binary", unpadded.as_bytes()).await;
    put_parameter(
        &world.ssm().await,
        "/enc/param",
        &base64_wrapped(&bytes),
        ParameterType::SecureString,
    )
    .await;
    let bundle = serde_json::json!({"keystore": base64_wrapped(&bytes), "user": "svc"}).to_string();
    create_secret_string(&sm, "enc/bundle", &bundle).await;
    create_secret_string(&sm, "enc/plain", "not/base64==").await;

    let dir = world.target("decoded");
    let response = world.mount_ok(&dir, ENCODED_OBJECTS).await;
    assert_eq!(read(&dir, "keystore.p12"), bytes);
    assert_eq!(read(&dir, "key.bin"), bytes);
    assert_eq!(read(&dir, "from-binary.bin"), &bytes[..10]);
    assert_eq!(read(&dir, "from-parameter.bin"), bytes);
    assert_eq!(read(&dir, "bundle-keystore.bin"), bytes);
    assert_eq!(read_text(&dir, "bundle-user"), "svc");
    // The object of the jmesPath entries keeps its value as fetched.
    assert_eq!(read_text(&dir, "bundle.json"), bundle);
    assert_eq!(read_text(&dir, "plain"), "not/base64==");
    assert_eq!(version_of(&response, "keystore.p12"), keystore.version_id);

    // A driver up to v1.5 sends what is mounted: the decoded file is not the
    // value, so it is fetched again, never decoded twice.
    let current = response.object_version.clone();
    let calls = world.net.proxy.calls("GetSecretValue");
    let again = world
        .mount_with(&dir, ENCODED_OBJECTS, &[], current)
        .await
        .expect("rotation remount");
    assert_eq!(again.object_version, response.object_version);
    assert_eq!(read(&dir, "keystore.p12"), bytes);
    assert_eq!(read(&dir, "bundle-keystore.bin"), bytes);
    assert_eq!(read_text(&dir, "plain"), "not/base64==");
    // The three decoded secrets are read again; the two whose file is the
    // value are checked with DescribeSecret and read back.
    assert_eq!(world.net.proxy.calls("GetSecretValue") - calls, 3);
    assert_eq!(world.net.proxy.calls("DescribeSecret"), 2);
    // A driver v1.6 remount (nothing sent; the provider's own records).
    world.mount_ok(&dir, ENCODED_OBJECTS).await;
    assert_eq!(read(&dir, "keystore.p12"), bytes);
    assert_eq!(read(&dir, "from-binary.bin"), &bytes[..10]);

    // The values never reach the log.
    let log = world.ascp.log();
    for value in [base64_wrapped(&bytes), hex_upper(&bytes), unpadded] {
        assert!(!log.contains(&value[..12]), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_values_fail_the_mount_naming_object_field_and_offset_only() {
    let world = start(&[]).await;
    let sm = world.sm().await;
    create_secret_string(&sm, "bad/b64", "QUJD\nRE$G").await;
    create_secret_string(&sm, "bad/hex", "00ff0").await;
    create_secret_string(&sm, "bad/bundle", r#"{"key":"AAAA#AAA"}"#).await;
    create_secret_string(&sm, "good", "fine").await;
    let dir = world.target("undecodable");

    let cases = [
        (
            "- objectName: bad/b64\n  objectType: secretsmanager\n  objectEncoding: base64\n",
            ["bad/b64", "objectEncoding base64", "byte 7"],
            "RE$G",
        ),
        (
            "- objectName: bad/hex\n  objectType: secretsmanager\n  objectEncoding: hex\n",
            ["bad/hex", "objectEncoding hex", "odd number of digits"],
            "00ff0",
        ),
        (
            "- objectName: bad/bundle\n  objectType: secretsmanager\n  jmesPath:\n    - path: key\n      objectAlias: key.bin\n      objectEncoding: base64\n",
            [
                "bad/bundle",
                "jmesPath key.bin objectEncoding base64",
                "byte 4",
            ],
            "AAAA",
        ),
    ];
    for (bad, needles, value) in cases {
        let objects = format!("- objectName: good\n  objectType: secretsmanager\n{bad}");
        let message = world
            .mount_err(&dir, &objects, Code::InvalidArgument, &needles)
            .await;
        assert!(!message.contains(value), "{message}");
        assert!(names(&dir).is_empty(), "nothing written: {:?}", names(&dir));
    }
    assert!(!world.ascp.log().contains("RE$G"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_non_string_jmespath_result_is_written_as_compact_json() {
    let world = start(&[]).await;
    let value = r#"{"port": 5432, "negative": -7, "wide": 18446744073709551615,
        "ratio": 1.50, "tls": true, "debug": false,
        "pool": {"min": 1, "hosts": ["a", "b"]}, "empty": [], "none": null}"#;
    create_secret_string(&world.sm().await, "json/config", value).await;
    let entries = [
        ("port", "5432"),
        ("negative", "-7"),
        ("wide", "18446744073709551615"),
        ("ratio", "1.5"),
        ("tls", "true"),
        ("debug", "false"),
        ("pool", r#"{"hosts":["a","b"],"min":1}"#),
        ("pool.hosts", r#"["a","b"]"#),
        ("empty", "[]"),
    ];
    let mut objects =
        "- objectName: json/config\n  objectType: secretsmanager\n  jmesPath:\n".to_owned();
    for (i, (path, _)) in entries.iter().enumerate() {
        objects.push_str(&format!("    - path: {path}\n      objectAlias: f{i}\n"));
    }
    let dir = world.target("json");
    world.mount_ok(&dir, &objects).await;
    for (i, (path, want)) in entries.iter().enumerate() {
        assert_eq!(read_text(&dir, &format!("f{i}")), *want, "{path}");
    }

    // null and a missing key stay errors.
    for path in ["none", "missing"] {
        let objects = format!(
            "- objectName: json/config\n  objectType: secretsmanager\n  jmesPath:\n    - path: {path}\n      objectAlias: x\n"
        );
        let dir = world.target(path);
        world
            .mount_err(&dir, &objects, Code::InvalidArgument, &[path])
            .await;
        assert!(names(&dir).is_empty());
    }
}

/// Every file below `dir` (following the `..data` symlinks), relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read a directory") {
            let entry = entry.expect("a directory entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("..") {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).expect("below the root");
                out.push(relative.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Runs `seed(i)` for `i` in `0..count`, a few at a time.
async fn seed_many<F: std::future::Future<Output = ()>>(count: usize, seed: impl Fn(usize) -> F) {
    use futures::StreamExt;
    futures::stream::iter(0..count)
        .for_each_concurrent(16, seed)
        .await;
}

/// Creates `count` secrets `{prefix}{i:03}` holding `value-{i}`.
async fn many_secrets(world: &World, prefix: &str, count: usize) {
    let sm = world.sm().await;
    seed_many(count, |i| {
        let sm = sm.clone();
        async move {
            create_secret_string(&sm, &format!("{prefix}{i:03}"), &format!("value-{i}")).await;
        }
    })
    .await;
}

/// Creates `count` parameters `{prefix}{i:03}` holding `value-{i}`.
async fn many_parameters(world: &World, prefix: &str, count: usize) {
    let ssm = world.ssm().await;
    seed_many(count, |i| {
        let ssm = ssm.clone();
        async move {
            let (name, value) = (format!("{prefix}{i:03}"), format!("value-{i}"));
            put_parameter(&ssm, &name, &value, ParameterType::String).await;
        }
    })
    .await;
}

fn version_of(response: &MountResponse, id: &str) -> String {
    response
        .object_version
        .iter()
        .find(|v| v.id == id)
        .map(|v| v.version.clone())
        .unwrap_or_else(|| panic!("no version for {id} in {:?}", response.object_version))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_paths_list_one_level_or_all_with_their_own_versions() {
    let world = start(&[]).await;
    let ssm = world.ssm().await;
    for (name, value) in [
        ("/app/prod/db", "db-url"),
        ("/app/prod/api", "api-key"),
        ("/app/prod/nested/x", "nested-x"),
        ("/app/prod/deep/a/b", "deep-b"),
        ("/app/production/other", "sibling"),
        ("/app/prodextra", "sibling too"),
    ] {
        put_parameter(&ssm, name, value, ParameterType::SecureString).await;
    }
    let api_v2 = put_parameter(&ssm, "/app/prod/api", "api-key-2", ParameterType::String).await;

    let dir = world.target("ssm-one-level");
    world.net.proxy.reset_counts();
    let response = world
        .mount_ok(
            &dir,
            "- objectName: /app/prod/*\n  objectType: ssmparameter\n",
        )
        .await;
    assert_eq!(tree(&dir), ["api", "db"]);
    assert_eq!(read_text(&dir, "db"), "db-url", "decrypted");
    assert_eq!(read_text(&dir, "api"), "api-key-2");
    assert_eq!(version_of(&response, "api"), api_v2.to_string());
    assert_eq!(version_of(&response, "db"), "1");
    assert_eq!(world.net.proxy.calls("GetParametersByPath"), 1);
    assert_eq!(world.net.proxy.calls("GetParameters"), 0);
    let body = &world.net.proxy.bodies("GetParametersByPath")[0];
    assert!(
        body.contains(r#""Path":"/app/prod""#)
            && body.contains(r#""Recursive":false"#)
            && body.contains(r#""WithDecryption":true"#),
        "{body}"
    );

    // Recursive, translated; with translation off, in subdirectories.
    let recursive =
        "- objectName: /app/prod/**\n  objectType: ssmparameter\n  filePermission: \"0600\"\n";
    let dir = world.target("ssm-recursive");
    world.mount_ok(&dir, recursive).await;
    assert_eq!(tree(&dir), ["api", "db", "deep_a_b", "nested_x"]);
    assert_eq!(read_text(&dir, "deep_a_b"), "deep-b");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("deep_a_b"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir = world.target("ssm-subdirectories");
    world
        .mount_with(&dir, recursive, &[("pathTranslation", "False")], Vec::new())
        .await
        .expect("mount");
    assert_eq!(tree(&dir), ["api", "db", "deep/a/b", "nested/x"]);
    assert_eq!(read_text(&dir, "nested/x"), "nested-x");

    // Past one page (ten a page), beside an ordinary object.
    many_parameters(&world, "/app/many/p", 23).await;
    world.net.proxy.reset_counts();
    let dir = world.target("ssm-pages");
    let objects = "- objectName: /app/many/*\n  objectType: ssmparameter\n- objectName: /app/prod/db\n  objectType: ssmparameter\n  objectAlias: the-db\n";
    world.mount_ok(&dir, objects).await;
    assert_eq!(tree(&dir).len(), 24);
    assert_eq!(read_text(&dir, "p022"), "value-22");
    assert_eq!(read_text(&dir, "the-db"), "db-url");
    assert_eq!(world.net.proxy.calls("GetParametersByPath"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_paths_keep_only_names_under_the_prefix_and_read_values_in_batches() {
    let world = start(&["--batch-get-secret-value=true"]).await;
    let sm = world.sm().await;
    let db = create_secret_string(&sm, "prod/web/db", "db-pass").await;
    create_secret_binary(&sm, "prod/web/cert", &[0, 1, 254, 255]).await;
    create_secret_string(&sm, "prod/web/nested/x", "nested-x").await;
    create_secret_string(&sm, "prod/webhooks", "sibling").await;
    create_secret_string(&sm, "prod/web-old/y", "sibling too").await;
    create_secret_string(&sm, "PROD/web/upper", "other case").await;
    let db2 = put_secret_string(&sm, "prod/web/db", "db-pass-2", &[]).await;

    world.net.proxy.reset_counts();
    let dir = world.target("sm-one-level");
    let response = world
        .mount_ok(
            &dir,
            "- objectName: prod/web/*\n  objectType: secretsmanager\n",
        )
        .await;
    assert_eq!(tree(&dir), ["cert", "db"]);
    assert_eq!(read_text(&dir, "db"), "db-pass-2");
    assert_eq!(read(&dir, "cert"), [0, 1, 254, 255]);
    assert_eq!(version_of(&response, "db"), db2);
    assert_ne!(db2, db.version_id);
    assert_eq!(world.net.proxy.calls("ListSecrets"), 1);
    assert_eq!(world.net.proxy.calls("BatchGetSecretValue"), 1);
    assert_eq!(world.net.proxy.calls("GetSecretValue"), 0);
    assert!(
        world.net.proxy.bodies("ListSecrets")[0].contains(r#""Values":["prod/web/"]"#),
        "{:?}",
        world.net.proxy.bodies("ListSecrets")
    );

    let dir = world.target("sm-recursive");
    world
        .mount_with(
            &dir,
            "- objectName: prod/web/**\n  objectType: secretsmanager\n",
            &[("pathTranslation", "False")],
            Vec::new(),
        )
        .await
        .expect("mount");
    assert_eq!(tree(&dir), ["cert", "db", "nested/x"]);

    // 256 matches: past two pages of ListSecrets, 13 batches of 20.
    many_secrets(&world, "bulk/s", 256).await;
    world.net.proxy.reset_counts();
    let dir = world.target("sm-256");
    let bulk = "- objectName: bulk/*\n  objectType: secretsmanager\n";
    world.mount_ok(&dir, bulk).await;
    let files = tree(&dir);
    assert_eq!(files.len(), 256);
    assert_eq!(read_text(&dir, "s255"), "value-255");
    assert_eq!(world.net.proxy.calls("ListSecrets"), 3);
    assert_eq!(world.net.proxy.calls("BatchGetSecretValue"), 13);

    // One more is refused before any value is read; nothing changes.
    create_secret_string(&sm, "bulk/s256", "one too many").await;
    world.net.proxy.reset_counts();
    let needles = ["bulk/*", "more than 256 objects under bulk/"];
    world
        .mount_err(&dir, bulk, Code::InvalidArgument, &needles)
        .await;
    assert_eq!(world.net.proxy.calls("BatchGetSecretValue"), 0);
    assert_eq!(tree(&dir), files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_paths_are_bounded_too() {
    let world = start(&[]).await;
    many_parameters(&world, "/bulk/p", 257).await;
    let dir = world.target("ssm-257");
    let objects = "- objectName: /bulk/*\n  objectType: ssmparameter\n";
    let needles = ["more than 256 objects under /bulk/"];
    world
        .mount_err(&dir, objects, Code::InvalidArgument, &needles)
        .await;
    assert!(names(&dir).is_empty());

    // Matches share what the other files leave of the mount's 1024: one
    // secret with `entries` jmesPath files (1 + entries files), then a path
    // of 5 parameters.
    many_parameters(&world, "/few/p", 5).await;
    let keys: serde_json::Map<String, serde_json::Value> = (0..1019)
        .map(|i| (format!("k{i}"), serde_json::Value::from(i)))
        .collect();
    let doc = serde_json::Value::Object(keys).to_string();
    create_secret_string(&world.sm().await, "wide", &doc).await;
    let class = |entries: usize| {
        let mut yaml =
            String::from("- objectName: wide\n  objectType: secretsmanager\n  jmesPath:\n");
        for i in 0..entries {
            yaml.push_str(&format!("    - path: k{i}\n      objectAlias: k{i}\n"));
        }
        yaml + "- objectName: /few/*\n  objectType: ssmparameter\n"
    };
    let dir = world.target("budget-full");
    world.mount_ok(&dir, &class(1018)).await;
    assert_eq!(names(&dir).len(), 1024);
    assert_eq!(read_text(&dir, "p004"), "value-4");
    let dir = world.target("budget-over");
    let needles = ["more than 1024 files in the mount", "/few/"];
    world
        .mount_err(&dir, &class(1019), Code::InvalidArgument, &needles)
        .await;
    assert!(names(&dir).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_paths_collisions_and_denials() {
    let world = start(&[]).await;
    let sm = world.sm().await;
    create_secret_string(&sm, "solo", "solo-value").await;
    create_secret_string(&sm, "col/a/b", "slash").await;
    create_secret_string(&sm, "col/a_b", "underscore").await;
    create_secret_string(&sm, "mix/solo", "clash with an object").await;
    create_secret_string(&sm, "deny/only", "denied").await;

    // A path matching nothing contributes no file...
    let dir = world.target("empty");
    let objects = "- objectName: none/*\n  objectType: secretsmanager\n- objectName: /none/**\n  objectType: ssmparameter\n- objectName: solo\n  objectType: secretsmanager\n";
    world.mount_ok(&dir, objects).await;
    assert_eq!(tree(&dir), ["solo"]);
    // ...and a mount of such paths only has nothing to mount.
    let dir = world.target("nothing");
    let objects = "- objectName: none/*\n  objectType: secretsmanager\n- objectName: /none/**\n  objectType: ssmparameter\n";
    let needles = ["nothing to mount", "none/*, /none/**"];
    world
        .mount_err(&dir, objects, Code::NotFound, &needles)
        .await;

    // Two matches translated to one name; a match clashing with an object.
    let dir = world.target("collisions");
    let objects = "- objectName: col/**\n  objectType: secretsmanager\n";
    let needles = ["col/**", "col/a/b", "col/a_b", "file name a_b"];
    world
        .mount_err(&dir, objects, Code::InvalidArgument, &needles)
        .await;
    let objects = "- objectName: solo\n  objectType: secretsmanager\n- objectName: mix/*\n  objectType: secretsmanager\n";
    let needles = ["mix/solo", "object solo"];
    world
        .mount_err(&dir, objects, Code::InvalidArgument, &needles)
        .await;
    assert!(names(&dir).is_empty());

    // A listed secret the role may not read fails the mount, named.
    world.net.proxy.add_rule(
        Rule::new()
            .operation("GetSecretValue")
            .respond(400, "AccessDeniedException"),
    );
    let objects = "- objectName: deny/*\n  objectType: secretsmanager\n";
    let needles = ["deny/*", "deny/only", "AccessDeniedException"];
    world
        .mount_err(&dir, objects, Code::PermissionDenied, &needles)
        .await;
    assert!(names(&dir).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_remounts_show_added_and_removed_matches() {
    let world = start(&[]).await;
    let sm = world.sm().await;
    let ssm = world.ssm().await;
    create_secret_string(&sm, "rot/a", "a-1").await;
    create_secret_string(&sm, "rot/b", "b-1").await;
    put_parameter(&ssm, "/rot/p", "p-1", ParameterType::String).await;
    let objects = "- objectName: rot/*\n  objectType: secretsmanager\n- objectName: /rot/*\n  objectType: ssmparameter\n  objectEncoding: utf-8\n- objectName: solo\n  objectType: secretsmanager\n";
    create_secret_string(&sm, "solo", "solo-1").await;
    let dir = world.target("rotation");
    let first = world.mount_ok(&dir, objects).await;
    assert_eq!(tree(&dir), ["a", "b", "p", "solo"]);

    // A match added, one removed, one changed.
    create_secret_string(&sm, "rot/c", "c-1").await;
    sm.delete_secret()
        .secret_id("rot/b")
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("delete rot/b");
    put_secret_string(&sm, "rot/a", "a-2", &[]).await;
    put_parameter(&ssm, "/rot/q", "q-1", ParameterType::String).await;

    // Driver v1.6: nothing sent; the provider's records know "solo".
    world.net.proxy.reset_counts();
    let second = world.mount_ok(&dir, objects).await;
    assert_eq!(tree(&dir), ["a", "c", "p", "q", "solo"]);
    assert_eq!(read_text(&dir, "a"), "a-2");
    assert_eq!(
        world.net.proxy.calls("ListSecrets"),
        1,
        "paths are always listed"
    );
    assert_eq!(world.net.proxy.calls("GetParametersByPath"), 1);
    assert!(!second.object_version.iter().any(|v| v.id == "b"));

    // Driver v1.5: what is mounted is sent; the listing still decides.
    sm.delete_secret()
        .secret_id("rot/c")
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("delete rot/c");
    world.net.proxy.reset_counts();
    world
        .mount_with(&dir, objects, &[], second.object_version.clone())
        .await
        .expect("remount");
    assert_eq!(tree(&dir), ["a", "p", "q", "solo"]);
    assert_eq!(read_text(&dir, "a"), "a-2");
    assert_eq!(world.net.proxy.calls("ListSecrets"), 1);
    assert_ne!(first.object_version, second.object_version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_fails_over_as_one_object() {
    let world = start(&[]).await;
    let east = world.sm().await;
    let west = aws_sdk_secretsmanager::Client::new(
        &sdk_config(&world.net.moto.endpoint(), "us-west-2").await,
    );
    create_secret_string(&east, "fo/a", "east-a").await;
    create_secret_string(&west, "fo/a", "west-a").await;
    create_secret_string(&west, "fo/b", "west-b").await;
    let objects = "- objectName: fo/*\n  objectType: secretsmanager\n";
    let failover = [("failoverRegion", "us-west-2")];

    // Both answer: the primary's listing wins, whole.
    let dir = world.target("failover-both");
    world
        .mount_with(&dir, objects, &failover, Vec::new())
        .await
        .expect("mount");
    assert_eq!(tree(&dir), ["a"]);
    assert_eq!(read_text(&dir, "a"), "east-a");

    // The primary's listing fails with a 5xx: the failover region's is used.
    world.net.proxy.add_rule(
        Rule::new()
            .region(REGION)
            .operation("ListSecrets")
            .respond(500, "InternalServiceError"),
    );
    let dir = world.target("failover-outage");
    world
        .mount_with(&dir, objects, &failover, Vec::new())
        .await
        .expect("mount");
    assert_eq!(tree(&dir), ["a", "b"]);
    assert_eq!(read_text(&dir, "a"), "west-a");
}
