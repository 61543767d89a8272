//! The features beyond ASCP's descriptors, through the real binary against
//! moto: `objectEncoding` (base64, hex, utf-8; on objects and on jmesPath
//! entries; from SecretString, SecretBinary and parameters) and non-string
//! jmesPath results. IRSA only: identity is not what these tests are about.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ascp::proto::{MountRequest, MountResponse, ObjectVersion};
use aws_sdk_ssm::types::ParameterType;
use support::ascp_process::AscpProcess;
use support::kube_api::KubeApiStub;
use support::*;
use tonic::Code;

const NS: &str = "team";
const SA: &str = "app";
const ROLE: &str = "arn:aws:iam::123456789012:role/app";
const REGION: &str = "us-east-1";
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.FEATURES-TOKEN-1c9e.sig";

/// moto behind the counting proxy, a Kubernetes API knowing the service
/// account, and the binary.
struct World {
    moto: MotoServer,
    proxy: FaultProxy,
    _kube: KubeApiStub,
    _dir: tempfile::TempDir,
    ascp: AscpProcess,
}

impl World {
    async fn start(flags: &[&str]) -> World {
        let moto = MotoServer::start().await;
        let proxy = FaultProxy::start(&moto.endpoint()).await;
        let kube = KubeApiStub::start().await;
        kube.add_service_account(NS, SA, Some(ROLE));
        let dir = tempfile::tempdir().expect("a temporary directory");
        let kubeconfig = dir.path().join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig);
        let env: Vec<(String, String)> = [
            ("KUBECONFIG", kubeconfig.display().to_string()),
            ("AWS_ENDPOINT_URL", proxy.endpoint()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        let ascp = AscpProcess::start(Path::new(env!("CARGO_BIN_EXE_ascp")), &flags, &env).await;
        World {
            moto,
            proxy,
            _kube: kube,
            _dir: dir,
            ascp,
        }
    }

    async fn sm(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&sdk_config(&self.moto.endpoint(), REGION).await)
    }

    async fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&sdk_config(&self.moto.endpoint(), REGION).await)
    }

    /// A fresh, empty target directory.
    fn target(&self, name: &str) -> PathBuf {
        let dir = self.ascp.dir().join("targets").join(name);
        std::fs::create_dir_all(&dir).expect("create a target directory");
        dir
    }

    /// Mounts `objects` (with `extra` parameters) into `target`, sending
    /// `current` as the driver's `current_object_version`.
    async fn mount_with(
        &self,
        target: &Path,
        objects: &str,
        extra: &[(&str, &str)],
        current: Vec<ObjectVersion>,
    ) -> Result<MountResponse, tonic::Status> {
        let tokens = serde_json::json!({
            "sts.amazonaws.com": {"token": TOKEN, "expirationTimestamp": "2099-01-01T00:00:00Z"}
        });
        let mut attrs: BTreeMap<&str, String> = [
            ("csi.storage.k8s.io/pod.name", "app-0".to_owned()),
            ("csi.storage.k8s.io/pod.namespace", NS.to_owned()),
            ("csi.storage.k8s.io/pod.uid", "5e1f-uid".to_owned()),
            ("csi.storage.k8s.io/serviceAccount.name", SA.to_owned()),
            (
                "csi.storage.k8s.io/serviceAccount.tokens",
                tokens.to_string(),
            ),
            ("secretProviderClass", "features".to_owned()),
            ("region", REGION.to_owned()),
            ("objects", objects.to_owned()),
        ]
        .into_iter()
        .collect();
        attrs.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        self.ascp
            .mount(MountRequest {
                attributes: serde_json::to_string(&attrs).expect("attributes"),
                secrets: "{}".into(),
                target_path: target.display().to_string(),
                permission: "420".into(),
                current_object_version: current,
            })
            .await
    }

    /// Mounts and expects success.
    async fn mount_ok(&self, target: &Path, objects: &str) -> MountResponse {
        match self.mount_with(target, objects, &[], Vec::new()).await {
            Ok(r) => r,
            Err(s) => panic!(
                "mount failed: {:?}: {}\nascp log:\n{}",
                s.code(),
                s.message(),
                self.ascp.log()
            ),
        }
    }

    /// Mounts and expects failure with `code`; returns the message.
    async fn mount_err(&self, target: &Path, objects: &str, code: Code) -> String {
        match self.mount_with(target, objects, &[], Vec::new()).await {
            Ok(r) => panic!("mount succeeded but should fail with {code:?}: {r:?}"),
            Err(s) => {
                assert_eq!(s.code(), code, "{}", s.message());
                s.message().to_owned()
            }
        }
    }
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
    let world = World::start(&[]).await;
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
    let version = |id: &str| {
        response
            .object_version
            .iter()
            .find(|v| v.id == id)
            .map(|v| v.version.clone())
            .unwrap_or_else(|| panic!("no version for {id}"))
    };
    assert_eq!(version("keystore.p12"), keystore.version_id);

    // A driver up to v1.5 sends what is mounted: the decoded file is not the
    // value, so it is fetched again, never decoded twice.
    let current = response.object_version.clone();
    let calls = world.proxy.calls("GetSecretValue");
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
    assert_eq!(world.proxy.calls("GetSecretValue") - calls, 3);
    assert_eq!(world.proxy.calls("DescribeSecret"), 2);
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
    let world = World::start(&[]).await;
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
        let message = world.mount_err(&dir, &objects, Code::InvalidArgument).await;
        for needle in needles {
            assert!(message.contains(needle), "{needle:?} not in {message}");
        }
        assert!(!message.contains(value), "{message}");
        assert!(names(&dir).is_empty(), "nothing written: {:?}", names(&dir));
    }
    assert!(!world.ascp.log().contains("RE$G"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_non_string_jmespath_result_is_written_as_compact_json() {
    let world = World::start(&[]).await;
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
        let message = world.mount_err(&dir, &objects, Code::InvalidArgument).await;
        assert!(message.contains(path), "{message}");
        assert!(names(&dir).is_empty());
    }
}
