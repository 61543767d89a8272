//! Proves the test support works against a real moto server: seeding, the
//! proxy's counting, faults, latency and cross-account emulation. Also pins
//! down moto behaviour other tests rely on.

use crate::support;

use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_ssm::types::ParameterType;
use support::*;

type Sm = aws_sdk_secretsmanager::Client;
type Ssm = aws_sdk_ssm::Client;

async fn sm(endpoint: &str, region: &str) -> Sm {
    Sm::new(&sdk_config(endpoint, region).await)
}

async fn ssm(endpoint: &str, region: &str) -> Ssm {
    Ssm::new(&sdk_config(endpoint, region).await)
}

/// A client that makes exactly one attempt, so an injected fault surfaces.
async fn sm_no_retry(endpoint: &str, region: &str) -> Sm {
    let config = config_loader(endpoint, region)
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    Sm::new(&config)
}

async fn secret_string(client: &Sm, id: &str) -> String {
    client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetSecretValue {id}: {e:?}"))
        .secret_string
        .expect("a string secret")
}

#[tokio::test]
async fn moto_starts_and_secrets_and_parameters_round_trip() {
    let moto = MotoServer::start().await;
    eprintln!("moto started in {:?}", moto.startup_time());
    let endpoint = moto.endpoint();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");

    let sm = sm(&endpoint, "us-east-1").await;
    let created = create_secret_string(&sm, "app/db", r#"{"user":"u","pass":"p"}"#).await;
    assert_eq!(created.name, "app/db");
    assert!(
        created.arn.starts_with(&format!(
            "arn:aws:secretsmanager:us-east-1:{TEST_ACCOUNT}:secret:app/db-"
        )),
        "{}",
        created.arn
    );
    assert_eq!(
        secret_string(&sm, "app/db").await,
        r#"{"user":"u","pass":"p"}"#
    );
    assert_eq!(
        secret_string(&sm, &created.arn).await,
        r#"{"user":"u","pass":"p"}"#
    );

    let binary = create_secret_binary(&sm, "app/key", &[0, 1, 0xff]).await;
    let got = sm
        .get_secret_value()
        .secret_id(&binary.arn)
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_binary, Some(Blob::new(vec![0, 1, 0xff])));
    assert_eq!(got.secret_string, None);

    // A new version moves AWSCURRENT and leaves AWSPREVIOUS on the old one;
    // a custom stage can be put on any version.
    let v2 = put_secret_string(&sm, "app/db", "two", &[]).await;
    update_secret_stage(&sm, "app/db", "CUSTOM", Some(&created.version_id), None).await;
    let described = sm
        .describe_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    let stages = described.version_ids_to_stages.expect("VersionIdsToStages");
    assert_eq!(stages[&v2], vec!["AWSCURRENT".to_owned()]);
    let mut old = stages[&created.version_id].clone();
    old.sort();
    assert_eq!(old, vec!["AWSPREVIOUS".to_owned(), "CUSTOM".to_owned()]);
    let custom = sm
        .get_secret_value()
        .secret_id("app/db")
        .version_stage("CUSTOM")
        .send()
        .await
        .unwrap();
    assert_eq!(
        custom.version_id.as_deref(),
        Some(created.version_id.as_str())
    );

    // A version with only a custom stage does not become current.
    let pending = put_secret_binary(&sm, "app/key", b"next", &["AWSPENDING"]).await;
    let current = sm
        .get_secret_value()
        .secret_id("app/key")
        .send()
        .await
        .unwrap();
    assert_eq!(
        current.version_id.as_deref(),
        Some(binary.version_id.as_str())
    );
    let by_id = sm
        .get_secret_value()
        .secret_id("app/key")
        .version_id(&pending)
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.secret_binary, Some(Blob::new(b"next".to_vec())));

    let ssm = ssm(&endpoint, "us-east-1").await;
    assert_eq!(
        put_parameter(&ssm, "/app/p", "one", ParameterType::String).await,
        1
    );
    assert_eq!(
        put_parameter(&ssm, "/app/p", "two", ParameterType::String).await,
        2
    );
    put_parameter(&ssm, "/app/list", "a,b", ParameterType::StringList).await;
    put_parameter(&ssm, "/app/sec", "hidden", ParameterType::SecureString).await;
    label_parameter(&ssm, "/app/p", 1, &["old"]).await;

    let got = ssm
        .get_parameters()
        .names("/app/p")
        .names("/app/list")
        .names("/app/sec")
        .names("/app/missing")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let mut values: Vec<(String, String)> = got
        .parameters()
        .iter()
        .map(|p| (p.name().unwrap().to_owned(), p.value().unwrap().to_owned()))
        .collect();
    values.sort();
    assert_eq!(
        values,
        [
            ("/app/list", "a,b"),
            ("/app/p", "two"),
            ("/app/sec", "hidden")
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
    assert_eq!(got.invalid_parameters(), ["/app/missing"]);

    moto.reset().await;
    let gone = sm.get_secret_value().secret_id("app/db").send().await;
    assert_eq!(
        gone.unwrap_err().code(),
        Some("ResourceNotFoundException"),
        "reset forgets everything"
    );
}

/// What moto 5.2.5 does that other tests must know about. If moto changes,
/// these fail first and say what changed.
#[tokio::test]
async fn moto_quirks_other_tests_rely_on() {
    let moto = MotoServer::start().await;
    let endpoint = moto.endpoint();
    let ssm = ssm(&endpoint, "us-east-1").await;
    put_parameter(&ssm, "/q", "v1", ParameterType::String).await;
    put_parameter(&ssm, "/q", "v2", ParameterType::String).await;
    label_parameter(&ssm, "/q", 1, &["old"]).await;

    // name:label and name:version selectors resolve to the right version, but
    // moto returns the bare name, no Selector field, and the parameters in
    // its own order, not the request's.
    let got = ssm
        .get_parameters()
        .names("/q:2")
        .names("/q:old")
        .names("/q:nolabel")
        .send()
        .await
        .unwrap();
    let mut versions: Vec<(String, Option<String>, String, i64)> = got
        .parameters()
        .iter()
        .map(|p| {
            (
                p.name().unwrap().to_owned(),
                p.selector().map(str::to_owned),
                p.value().unwrap().to_owned(),
                p.version(),
            )
        })
        .collect();
    versions.sort_by_key(|v| v.3);
    assert_eq!(
        versions,
        vec![
            ("/q".to_owned(), None, "v1".to_owned(), 1),
            ("/q".to_owned(), None, "v2".to_owned(), 2),
        ]
    );
    assert_eq!(got.invalid_parameters(), ["/q:nolabel"]);

    // BatchGetSecretValue answers found secrets and lists missing ones as
    // errors rather than failing the call.
    let sm = sm(&endpoint, "us-east-1").await;
    create_secret_string(&sm, "b1", "one").await;
    let batch = sm
        .batch_get_secret_value()
        .secret_id_list("b1")
        .secret_id_list("missing")
        .send()
        .await
        .unwrap();
    assert_eq!(batch.secret_values().len(), 1);
    assert_eq!(batch.secret_values()[0].secret_string(), Some("one"));
    assert_eq!(batch.errors().len(), 1);
    assert_eq!(batch.errors()[0].secret_id(), Some("missing"));
    assert_eq!(
        batch.errors()[0].error_code(),
        Some("ResourceNotFoundException")
    );

    // Missing secrets are 404s with the error type in x-amzn-ErrorType.
    let err = sm
        .get_secret_value()
        .secret_id("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    let raw = err.raw_response().expect("a raw response");
    assert_eq!(raw.status().as_u16(), 404);
    assert_eq!(
        raw.headers().get("x-amzn-errortype"),
        Some("ResourceNotFoundException")
    );

    // An ARN naming another account is looked up in the caller's account.
    let other = account_credentials(&endpoint, "222222222222").await;
    let sm_other = Sm::new(&sdk_config_with_credentials(&endpoint, "us-east-1", other).await);
    let theirs = create_secret_string(&sm_other, "theirs", "x").await;
    assert!(
        theirs.arn.contains(":222222222222:secret:theirs-"),
        "{}",
        theirs.arn
    );
    let err = sm
        .get_secret_value()
        .secret_id(&theirs.arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn proxy_counts_calls_per_operation_and_region() {
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let east = sm(&proxy.endpoint(), "us-east-1").await;
    let west = sm(&proxy.endpoint(), "us-west-2").await;

    create_secret_string(&east, "s", "east").await;
    create_secret_string(&west, "s", "west").await;
    assert_eq!(secret_string(&east, "s").await, "east");
    assert_eq!(secret_string(&east, "s").await, "east");
    assert_eq!(secret_string(&west, "s").await, "west");

    assert_eq!(proxy.calls("CreateSecret"), 2);
    assert_eq!(proxy.calls("GetSecretValue"), 3);
    assert_eq!(proxy.calls_in("us-east-1", "GetSecretValue"), 2);
    assert_eq!(proxy.calls_in("us-west-2", "GetSecretValue"), 1);
    assert_eq!(proxy.calls_in("eu-west-1", "GetSecretValue"), 0);
    assert_eq!(proxy.total_calls(), 5);
    let recorded = proxy.requests("GetSecretValue");
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[0].service, "secretsmanager");
    assert_eq!(
        recorded[0].access_key_id.as_deref(),
        Some(TEST_ACCESS_KEY_ID)
    );
    assert!(
        recorded[0].body.contains(r#""SecretId":"s""#),
        "{}",
        recorded[0].body
    );

    // SSM (awsJson, AmazonSSM.*) and STS (query protocol, Action= in the
    // body). AssumeRoleWithWebIdentity is unsigned, so it has no region.
    let ssm = ssm(&proxy.endpoint(), "eu-west-1").await;
    put_parameter(&ssm, "/p", "v", ParameterType::String).await;
    ssm.get_parameters().names("/p").send().await.unwrap();
    assert_eq!(proxy.calls_in("eu-west-1", "GetParameters"), 1);
    assert_eq!(proxy.calls_in("eu-west-1", "PutParameter"), 1);

    let sts = aws_sdk_sts::Client::new(&sdk_config(&proxy.endpoint(), "us-east-1").await);
    let assumed = sts
        .assume_role_with_web_identity()
        .role_arn("arn:aws:iam::333333333333:role/pod")
        .role_session_name("pod")
        .web_identity_token("token-from-kubelet")
        .send()
        .await
        .unwrap();
    assert!(
        assumed
            .assumed_role_user()
            .unwrap()
            .arn()
            .contains("333333333333"),
        "{assumed:?}"
    );
    assert_eq!(proxy.calls("AssumeRoleWithWebIdentity"), 1);
    assert_eq!(proxy.calls_in(UNKNOWN, "AssumeRoleWithWebIdentity"), 1);
    let web = &proxy.requests("AssumeRoleWithWebIdentity")[0];
    assert_eq!(web.access_key_id, None, "sent unsigned");
    assert!(
        web.body.contains("WebIdentityToken=token-from-kubelet"),
        "{}",
        web.body
    );

    proxy.reset_counts();
    assert_eq!(proxy.total_calls(), 0);
    assert!(proxy.bodies("GetSecretValue").is_empty());
}

#[tokio::test]
async fn fault_rules_fail_calls_as_aws_would() {
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let east = sm_no_retry(&proxy.endpoint(), "us-east-1").await;
    let west = sm_no_retry(&proxy.endpoint(), "us-west-2").await;
    create_secret_string(&east, "s", "east").await;
    create_secret_string(&west, "s", "west").await;

    let rule = proxy.add_rule(
        Rule::new()
            .region("us-west-2")
            .operation("GetSecretValue")
            .respond(500, "InternalServiceError")
            .times(1),
    );
    let err = west
        .get_secret_value()
        .secret_id("s")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InternalServiceError"), "{err:?}");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_internal_service_error()),
        "the SDK maps it to the modeled error: {err:?}"
    );
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 500);
    assert_eq!(
        secret_string(&east, "s").await,
        "east",
        "other regions unaffected"
    );
    assert_eq!(
        secret_string(&west, "s").await,
        "west",
        "times(1) lets the next through"
    );
    assert_eq!(proxy.fired(rule), 1);
    assert_eq!(
        proxy.calls_in("us-west-2", "GetSecretValue"),
        2,
        "faulted calls count"
    );

    // Throttling and access denied, on SSM.
    let ssm_config = config_loader(&proxy.endpoint(), "us-east-1")
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let ssm = Ssm::new(&ssm_config);
    proxy.add_rule(
        Rule::new()
            .operation("GetParameters")
            .respond_with(400, "ThrottlingException", "Rate exceeded")
            .times(1),
    );
    proxy.add_rule(
        Rule::new()
            .operation("GetParameters")
            .respond(400, "AccessDeniedException")
            .times(1),
    );
    let err = ssm.get_parameters().names("/p").send().await.unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert_eq!(err.message(), Some("Rate exceeded"));
    let err = ssm.get_parameters().names("/p").send().await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    ssm.get_parameters().names("/p").send().await.unwrap();

    // Query-protocol services get an XML error.
    let sts_config = config_loader(&proxy.endpoint(), "us-east-1")
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let sts = aws_sdk_sts::Client::new(&sts_config);
    proxy.add_rule(
        Rule::new()
            .operation("AssumeRoleWithWebIdentity")
            .respond_with(403, "AccessDenied", "Not authorized <to> assume")
            .times(1),
    );
    let err = sts
        .assume_role_with_web_identity()
        .role_arn("arn:aws:iam::333333333333:role/pod")
        .role_session_name("pod")
        .web_identity_token("token-from-kubelet")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    assert_eq!(err.message(), Some("Not authorized <to> assume"));

    // With the SDK's default retries an unlimited 500 rule is retried (three
    // attempts in all) before failing.
    proxy.reset_counts();
    proxy.add_rule(Rule::new().operation("DescribeSecret"));
    let retrying = sm(&proxy.endpoint(), "us-east-1").await;
    let err = retrying
        .describe_secret()
        .secret_id("s")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InternalServiceError"));
    assert_eq!(proxy.calls("DescribeSecret"), 3);
}

/// The attempt timeout that ends a hung call: well above what one moto call
/// takes on a machine as busy as 2 cores under a load of 20.
const HUNG_AFTER: Duration = Duration::from_secs(5);

#[tokio::test]
async fn latency_delays_hangs_and_disconnects() {
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    // Seeded without the attempt timeout: on a loaded machine moto may take
    // longer than it to create the secret.
    create_secret_string(&sm(&proxy.endpoint(), "us-east-1").await, "s", "v").await;
    let config = config_loader(&proxy.endpoint(), "us-east-1")
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(HUNG_AFTER)
                .build(),
        )
        .load()
        .await;
    let client = Sm::new(&config);

    let time = |client: Sm| async move {
        let start = Instant::now();
        let result = client.get_secret_value().secret_id("s").send().await;
        (start.elapsed(), result)
    };

    let (baseline, result) = time(client.clone()).await;
    result.unwrap();

    proxy.set_latency(Duration::from_millis(300));
    let (slow, result) = time(client.clone()).await;
    result.unwrap();
    assert!(
        slow >= Duration::from_millis(300),
        "{slow:?} (baseline {baseline:?})"
    );
    proxy.set_latency(Duration::ZERO);

    proxy.add_rule(Rule::new().delay(Duration::from_millis(400)).times(1));
    let (delayed, result) = time(client.clone()).await;
    result.unwrap();
    assert!(delayed >= Duration::from_millis(400), "{delayed:?}");

    // A hung call ends with the client's attempt timeout.
    proxy.add_rule(Rule::new().operation("GetSecretValue").hang().times(1));
    let (hung, result) = time(client.clone()).await;
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            aws_sdk_secretsmanager::error::SdkError::TimeoutError(_)
        ),
        "{err:?}"
    );
    // Lower bounds only: a busy machine makes every call slower.
    assert!(hung >= HUNG_AFTER, "{hung:?}");

    // A dropped connection is a dispatch failure, not a service error.
    proxy.add_rule(
        Rule::new()
            .operation("GetSecretValue")
            .disconnect()
            .times(1),
    );
    let (_, result) = time(client.clone()).await;
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            aws_sdk_secretsmanager::error::SdkError::DispatchFailure(_)
        ),
        "{err:?}"
    );

    let (_, result) = time(client.clone()).await;
    result.unwrap();
    eprintln!(
        "baseline {baseline:?}, +300ms latency {slow:?}, 400ms delay {delayed:?}, hang {hung:?}"
    );
}

#[tokio::test]
async fn map_account_makes_cross_account_arns_resolve() {
    const OTHER: &str = "222222222222";
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;

    // The other account owns a secret and a parameter.
    let other = account_credentials(&moto.endpoint(), OTHER).await;
    let other_config =
        sdk_config_with_credentials(&moto.endpoint(), "us-east-1", other.clone()).await;
    let theirs = create_secret_string(&Sm::new(&other_config), "shared", "from-222").await;
    assert!(
        theirs.arn.contains(&format!(":{OTHER}:secret:shared-")),
        "{}",
        theirs.arn
    );
    let ssm_other = Ssm::new(&other_config);
    put_parameter(&ssm_other, "/shared", "param-222", ParameterType::String).await;
    let param_arn = format!("arn:aws:ssm:us-east-1:{OTHER}:parameter/shared");

    // The test account, through the proxy, cannot see it...
    let mine = sm(&proxy.endpoint(), "us-east-1").await;
    let ssm_mine = ssm(&proxy.endpoint(), "us-east-1").await;
    let err = mine
        .get_secret_value()
        .secret_id(&theirs.arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    // ...until the proxy maps the account.
    proxy.map_account(OTHER, other.access_key_id());
    assert_eq!(secret_string(&mine, &theirs.arn).await, "from-222");
    let last = proxy.requests("GetSecretValue").pop().unwrap();
    assert_eq!(last.access_key_id.as_deref(), Some(TEST_ACCESS_KEY_ID));
    assert_eq!(last.rewritten_to.as_deref(), Some(other.access_key_id()));
    assert!(
        proxy
            .bodies("GetSecretValue")
            .last()
            .unwrap()
            .contains(&theirs.arn),
        "the ARN travels unchanged"
    );

    let got = ssm_mine
        .get_parameters()
        .names(&param_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(got.parameters().len(), 1, "{got:?}");
    assert_eq!(got.parameters()[0].value(), Some("param-222"));
    assert!(proxy.bodies("GetParameters")[0].contains(&param_arn));

    // Requests naming no mapped account are left alone.
    create_secret_string(&mine, "own", "mine").await;
    assert_eq!(secret_string(&mine, "own").await, "mine");
    assert_eq!(
        proxy.requests("GetSecretValue").pop().unwrap().rewritten_to,
        None
    );
}

#[test]
fn missing_moto_is_a_clear_failure() {
    let result = std::panic::catch_unwind(|| {
        // What a missing install looks like: the message must say what to do.
        support::moto::moto_binary_at(std::path::Path::new("/nonexistent/moto_server"), "test")
    });
    let panic = result.unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("scripts/install-moto.sh"), "{message}");
}

/// A scratch repository whose `scripts/` hold `scripts` (name, body).
fn scratch_repo(scripts: &[(&str, &str)]) -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("create a scratch repository");
    std::fs::create_dir(repo.path().join("scripts")).expect("create scripts/");
    for (name, body) in scripts {
        std::fs::write(repo.path().join("scripts").join(name), body).expect("write a script");
    }
    repo
}

#[test]
fn failed_install_is_a_clear_failure() {
    // What `cargo test` on a machine without network access meets.
    let repo = scratch_repo(&[(
        "install-moto.sh",
        "echo 'install-moto.sh: error: pip could not install moto (is PyPI reachable?)' >&2\nexit 1\n",
    )]);
    let message = support::venv::run_scripts(repo.path(), &["scripts/install-moto.sh"])
        .expect_err("a failing script fails the install");
    for needle in [
        "scripts/install-moto.sh",
        "exited with exit status: 1",
        "is PyPI reachable?",
        "bash scripts/install-moto.sh && bash scripts/install-clients.sh",
        "python3 (3.10 or newer, with venv and pip)",
        "ASCP_MOTO_SERVER",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
    // A script that fails stops the sequence: the next one never runs.
    let repo = scratch_repo(&[
        ("install-moto.sh", "exit 3\n"),
        ("install-clients.sh", "touch ran\n"),
    ]);
    let message = support::venv::run_scripts(
        repo.path(),
        &["scripts/install-moto.sh", "scripts/install-clients.sh"],
    )
    .expect_err("the first script fails");
    assert!(message.contains("exit status: 3"), "{message}");
    assert!(!repo.path().join("ran").exists());
}

#[test]
fn installs_take_turns() {
    // Eight installers at once, as test binaries starting together: the
    // script sees no other run in progress (`busy` is its own marker) and
    // runs exactly eight times.
    let repo = scratch_repo(&[(
        "install-moto.sh",
        "if [ -e busy ]; then echo overlap >> log; fi\n\
         touch busy\necho run >> log\nrm busy\n",
    )]);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                support::venv::run_scripts(repo.path(), &["scripts/install-moto.sh"])
                    .expect("the script succeeds")
            });
        }
    });
    let log = std::fs::read_to_string(repo.path().join("log")).expect("read the log");
    assert_eq!(log, "run\n".repeat(8));
}
