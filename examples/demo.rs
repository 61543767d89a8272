//! The main job end to end on one machine, with emulated AWS: run by
//! `scripts/demo.sh`.
//!
//! It starts moto (STS, Secrets Manager, SSM) behind the test proxy (which
//! plays the other accounts' side of cross-account reads), a stub
//! Kubernetes API (a ServiceAccount annotated with an IRSA role, a pod on a
//! node labelled with its region), stub Pod Identity Agents, seeds the
//! secrets and parameters the SecretProviderClasses in `examples/` name,
//! starts the real `ascp` binary on a temporary socket, mounts every class
//! with `ascp mount` as the CSI driver would, prints the files and versions,
//! checks byte for byte what the classes beyond ASCP mounted (a decoded
//! keystore, a path mount, a numeric jmesPath value), mounts one class again
//! to show the credential cache at work, and cleans up.
//!
//! Usage: `demo [PATH-TO-ASCP]` (default `target/debug/ascp`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_ssm::types::ParameterType;
use support::ascp_process::AscpProcess;
use support::kube_api::KubeApiStub;
use support::pod_identity_agent::AgentStub;
use support::*;

const NAMESPACE: &str = "default";
const SERVICE_ACCOUNT: &str = "web-app";
const POD: &str = "web-0";
const NODE: &str = "ip-10-0-1-23.ec2.internal";
/// The pod's own role, in moto's default account.
const ROLE: &str = "arn:aws:iam::123456789012:role/web-app";
/// The accounts the examples name in ARNs and in assumeRoleArn.
const SHARED_ACCOUNT: &str = "444455556666";
const PROD_ACCOUNT: &str = "111122223333";

/// The classes mounted, in order, and what each shows.
const CLASSES: [(&str, &str); 8] = [
    (
        "IRSA",
        "IRSA: the role in the ServiceAccount's annotation, assumed with the pod's token",
    ),
    (
        "JmesPath",
        "jmesPath: keys of a JSON secret as files of their own (a number written as JSON)",
    ),
    (
        "Keystore",
        "objectEncoding: a base64 keystore mounted as its binary file, a hex key picked by jmesPath",
    ),
    (
        "Paths",
        "paths: every parameter under /prod/web/, every secret under prod/web/ (prod/webhooks left out)",
    ),
    (
        "PodIdentity",
        "EKS Pod Identity through the node's agent (IPv4); no region in the class: the node's label decides",
    ),
    (
        "AssumeRole",
        "assumeRoleArn: the pod's role chains into a role of another account",
    ),
    (
        "CrossAccount",
        "cross-account ARNs read with the pod's own role",
    ),
    (
        "Failover",
        "failover: every object from both regions, the primary's value wins",
    ),
];

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ascp_bin = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/debug/ascp"));
    if !ascp_bin.is_file() {
        return Err(format!(
            "{} not found: build it with `cargo build`",
            ascp_bin.display()
        ));
    }

    step("starting moto (emulated STS, Secrets Manager, SSM) and the stubs");
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let kube = KubeApiStub::start().await;
    kube.add_service_account(NAMESPACE, SERVICE_ACCOUNT, Some(ROLE));
    kube.add_pod(NAMESPACE, POD, Some(NODE));
    kube.add_node(NODE, Some("us-east-1"));
    let agent4 = AgentStub::start("127.0.0.1:0").await;
    let agent6 = AgentStub::start("[::1]:0").await;
    println!(
        "  moto              {} (behind the proxy at {})",
        moto.endpoint(),
        proxy.endpoint()
    );
    println!(
        "  Kubernetes API    {} (ServiceAccount {NAMESPACE}/{SERVICE_ACCOUNT} → {ROLE})",
        kube.endpoint()
    );
    println!("  Pod Identity      {} and {}", agent4.url(), agent6.url());

    step("seeding secrets and parameters");
    let arns = seed(&moto, &proxy).await;

    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    kube.write_kubeconfig(&work.path().join("kubeconfig"));
    let sts_token = work.path().join("sts.token");
    let pod_token = work.path().join("pods.token");
    std::fs::write(&sts_token, "eyJhbGciOiJSUzI1NiJ9.demo-irsa-token.sig")
        .map_err(|e| e.to_string())?;
    std::fs::write(
        &pod_token,
        "eyJhbGciOiJSUzI1NiJ9.demo-pod-identity-token.sig",
    )
    .map_err(|e| e.to_string())?;

    step("starting ascp");
    let env: Vec<(String, String)> = [
        (
            "KUBECONFIG",
            work.path().join("kubeconfig").display().to_string(),
        ),
        ("AWS_ENDPOINT_URL", proxy.endpoint()),
        ("AWS_ACCESS_KEY_ID", "AKIDDEMONODE".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "demo-node-secret".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("NO_COLOR", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let args = vec![
        format!("--pod-identity-endpoint-ipv4={}", agent4.url()),
        format!("--pod-identity-endpoint-ipv6={}", agent6.url()),
    ];
    let ascp = AscpProcess::start(&ascp_bin, &args, &env).await;
    println!(
        "  {} serving on {}",
        ascp_bin.display(),
        ascp.socket().display()
    );

    for (name, what) in CLASSES {
        let source = repo.join(format!("examples/ExampleSecretProviderClass-{name}.yaml"));
        let text = std::fs::read_to_string(&source)
            .map_err(|e| format!("read {}: {e}", source.display()))?;
        // moto gives each secret a random ARN suffix: put the real ones in
        // place of the examples' placeholders.
        let spc = work.path().join(format!("{name}.yaml"));
        std::fs::write(&spc, with_real_arns(&text, &arns)).map_err(|e| e.to_string())?;
        let target = work.path().join("mounts").join(name);
        step(&format!(
            "{what}\n  ascp mount --spc examples/{}",
            source
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let report = ascp_mount(
            &ascp_bin,
            ascp.socket(),
            &spc,
            &target,
            &sts_token,
            &pod_token,
        )
        .await?;
        print!("{}", indent(&report));
        print_files(&target)?;
        verify(name, &target)?;
    }

    step("mounting IRSA again, as the driver's rotation does every two minutes");
    let before = proxy.calls("AssumeRoleWithWebIdentity");
    let spc = work.path().join("IRSA.yaml");
    let target = work.path().join("mounts").join("IRSA-again");
    ascp_mount(
        &ascp_bin,
        ascp.socket(),
        &spc,
        &target,
        &sts_token,
        &pod_token,
    )
    .await?;
    println!(
        "  STS AssumeRoleWithWebIdentity calls: {before} before, {} after (credentials cached until 5 minutes before they expire)",
        proxy.calls("AssumeRoleWithWebIdentity")
    );
    println!(
        "  Pod Identity Agent calls: {}",
        agent4.calls() + agent6.calls()
    );

    step("ascp's log");
    print!("{}", indent(&ascp.log()));
    drop(ascp);
    println!("\ndone: every class mounted; temporary files, moto and the stubs are gone.");
    Ok(())
}

/// Seeds every object the example classes name; returns the real ARNs of
/// the secrets that the classes name by ARN, keyed by `region:account:name`.
async fn seed(moto: &MotoServer, proxy: &FaultProxy) -> Vec<(String, String)> {
    let endpoint = moto.endpoint();
    let own = |region: &'static str| {
        let endpoint = endpoint.clone();
        async move { sdk_config(&endpoint, region).await }
    };
    let east = own("us-east-1").await;
    let west = own("us-west-2").await;
    let sm = aws_sdk_secretsmanager::Client::new;
    let ssm = aws_sdk_ssm::Client::new;

    let mut arns = Vec::new();
    create_secret_string(&sm(&east), "prod/web/api-key", "demo-api-key-east").await;
    create_secret_string(&sm(&west), "prod/web/api-key", "demo-api-key-west").await;
    put_parameter(
        &ssm(&east),
        "/prod/web/config",
        "log_level=info\nfeature_x=on",
        ParameterType::String,
    )
    .await;
    create_secret_string(
        &sm(&east),
        "prod/db",
        r#"{"username":"app","password":"demo-password","endpoint":{"host":"db.internal","port":5432}}"#,
    )
    .await;
    create_secret_string(&sm(&east), "prod/web/oauth/client-id", "demo-client-id").await;
    create_secret_string(&sm(&east), "prod/webhooks", "not under prod/web/").await;
    create_secret_string(&sm(&east), "prod/tls/keystore", &keystore_base64()).await;
    create_secret_string(
        &sm(&east),
        "prod/tls/signing",
        &format!(
            r#"{{"kid":"demo-2026","key":"{}"}}"#,
            SIGNING_KEY
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
    )
    .await;
    println!(
        "  account 123456789012 (the pod's own): prod/web/api-key (us-east-1, us-west-2), /prod/web/config, prod/db, prod/web/oauth/client-id, prod/webhooks, prod/tls/keystore (base64), prod/tls/signing (a hex key in JSON)"
    );

    let shared = account_credentials(&endpoint, SHARED_ACCOUNT).await;
    let shared_east = sdk_config_with_credentials(&endpoint, "us-east-1", shared.clone()).await;
    create_secret_string(
        &sm(&shared_east),
        "shared/payments/api-key",
        "demo-payments-key",
    )
    .await;
    put_parameter(
        &ssm(&shared_east),
        "/shared/payments/endpoint",
        "https://payments.internal",
        ParameterType::String,
    )
    .await;
    let db = create_secret_string(
        &sm(&shared_east),
        "shared/db",
        r#"{"dsn":"postgres://shared"}"#,
    )
    .await;
    arns.push((format!("us-east-1:{SHARED_ACCOUNT}:shared/db"), db.arn));
    put_parameter(
        &ssm(&shared_east),
        "/shared/feature-flags",
        "beta,dark-mode",
        ParameterType::StringList,
    )
    .await;
    proxy.map_account(SHARED_ACCOUNT, shared.access_key_id());
    println!(
        "  account {SHARED_ACCOUNT} (shared): shared/payments/api-key, /shared/payments/endpoint, shared/db, /shared/feature-flags"
    );

    let prod = account_credentials(&endpoint, PROD_ACCOUNT).await;
    for (region, value) in [("us-east-1", "prod-db-east"), ("us-west-2", "prod-db-west")] {
        let config = sdk_config_with_credentials(&endpoint, region, prod.clone()).await;
        let secret = create_secret_string(&sm(&config), "prod/db", value).await;
        arns.push((format!("{region}:{PROD_ACCOUNT}:prod/db"), secret.arn));
    }
    proxy.map_account(PROD_ACCOUNT, prod.access_key_id());
    println!("  account {PROD_ACCOUNT} (prod): prod/db (us-east-1, us-west-2)");
    arns
}

/// The demo keystore's bytes: binary, as a PKCS#12 file is.
fn keystore_bytes() -> Vec<u8> {
    let mut bytes = vec![0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x03];
    bytes.extend((0..=255u8).rev());
    bytes
}

/// The keystore as stored: base64, wrapped at 64 columns as PEM tools do.
fn keystore_base64() -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(keystore_bytes());
    text.as_bytes()
        .chunks(64)
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The demo signing key, stored as hex in a JSON field.
const SIGNING_KEY: [u8; 8] = [0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0xfe, 0xff];

/// Checks what the classes beyond ASCP mounted, byte for byte.
fn verify(class: &str, dir: &Path) -> Result<(), String> {
    let expected: Vec<(&str, Vec<u8>)> = match class {
        "JmesPath" => vec![("db-port", b"5432".to_vec())],
        "Keystore" => vec![
            ("keystore.p12", keystore_bytes()),
            ("signing.key", SIGNING_KEY.to_vec()),
            ("signing.kid", b"demo-2026".to_vec()),
        ],
        "Paths" => vec![
            ("config", b"log_level=info\nfeature_x=on".to_vec()),
            ("api-key", b"demo-api-key-east".to_vec()),
            ("oauth_client-id", b"demo-client-id".to_vec()),
        ],
        _ => return Ok(()),
    };
    for (file, want) in &expected {
        let got = std::fs::read(dir.join(file)).map_err(|e| format!("{class}: {file}: {e}"))?;
        if got != *want {
            return Err(format!("{class}: {file} does not hold what was seeded"));
        }
    }
    // Nothing else under the paths: prod/webhooks is a sibling, not a match.
    if class == "Paths" {
        let names = visible_names(dir)?;
        if names != ["api-key", "config", "oauth_client-id"] {
            return Err(format!("Paths: mounted {names:?}"));
        }
    }
    println!(
        "  verified: {}",
        expected
            .iter()
            .map(|(f, _)| *f)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// `text` with every `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX`
/// whose secret was seeded replaced by the seeded secret's ARN.
fn with_real_arns(text: &str, arns: &[(String, String)]) -> String {
    let mut out = text.to_owned();
    for (key, arn) in arns {
        let mut parts = key.splitn(3, ':');
        let (Some(region), Some(account), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let prefix = format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-");
        let mut from = 0;
        while let Some(found) = out[from..].find(&prefix) {
            let at = from + found;
            let end = at + prefix.len() + 6;
            if end > out.len() || !out.is_char_boundary(end) {
                break;
            }
            out.replace_range(at..end, arn);
            from = at + arn.len();
        }
    }
    out
}

/// Runs `ascp mount` as a separate process, as an operator would.
async fn ascp_mount(
    ascp: &Path,
    socket: &Path,
    spc: &Path,
    target: &Path,
    sts_token: &Path,
    pod_token: &Path,
) -> Result<String, String> {
    let mut command = Command::new(ascp);
    command
        .arg("mount")
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--spc={}", spc.display()))
        .arg(format!("--target={}", target.display()))
        .arg(format!("--namespace={NAMESPACE}"))
        .arg(format!("--service-account={SERVICE_ACCOUNT}"))
        .arg(format!("--pod-name={POD}"))
        .arg(format!("--token=sts.amazonaws.com={}", sts_token.display()))
        .arg(format!(
            "--token=pods.eks.amazonaws.com={}",
            pod_token.display()
        ));
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("run ascp mount: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "ascp mount {} failed: {}",
            spc.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The visible names at the top of a target (not the `..data` layout's).
fn visible_names(dir: &Path) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".."))
        .collect();
    names.sort();
    Ok(names)
}

/// Prints each mounted file with its contents (demo values only).
fn print_files(dir: &Path) -> Result<(), String> {
    for name in visible_names(dir)? {
        let contents = std::fs::read(dir.join(&name)).map_err(|e| e.to_string())?;
        match std::str::from_utf8(&contents) {
            Ok(text) if !text.contains('\0') => {
                println!("    {name} = {}", text.replace('\n', "\\n"));
            }
            _ => {
                let head: String = contents
                    .iter()
                    .take(8)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                println!("    {name} = ({} bytes, binary: {head}…)", contents.len());
            }
        }
    }
    Ok(())
}

fn step(what: &str) {
    println!("\n==> {what}");
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
