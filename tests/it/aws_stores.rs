//! The AWS stores (src/aws) against moto, through the fault proxy: the
//! fetching behaviour of docs/fetching.md, error classification,
//! cross-account ARNs, call counts with and without BatchGetSecretValue,
//! and observable concurrency.
//!
//! One moto server serves the whole test binary (it is slow to start); every
//! test uses its own names and its own proxy, so counts and faults never mix.

use crate::support;

use std::sync::OnceLock;
use std::time::Duration;

use ascp::aws::{FetchOptions, StoreFactory};
use ascp::store::{FailureKind, FetchItem, Fetched, StoreError, Stores};
use aws_config::AppName;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_sdk_ssm::types::ParameterType;
use support::{FaultProxy, MotoServer, Rule, TEST_ACCESS_KEY_ID, TEST_ACCOUNT};

const REGION: &str = "us-east-1";
const PRINCIPAL: &str = "arn:aws:iam::123456789012:role/app";
const APP_ID: &str = "ascp-test-0.0.1";

type SecretsClient = aws_sdk_secretsmanager::Client;
type SsmClient = aws_sdk_ssm::Client;
type Results = Vec<Result<Fetched, StoreError>>;

/// The binary's moto, started on first use on a runtime of its own (each
/// test has its own runtime, which ends with the test).
fn moto() -> &'static MotoServer {
    static MOTO: OnceLock<MotoServer> = OnceLock::new();
    MOTO.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to start moto")
                .block_on(MotoServer::start())
        })
        .join()
        .expect("moto started")
    })
}

/// One test's world: a proxy in front of the shared moto, a factory aimed at
/// the proxy, and seeding clients aimed at moto directly (so seeding is not
/// counted).
struct World {
    proxy: FaultProxy,
    factory: StoreFactory,
    sm: SecretsClient,
    ssm: SsmClient,
}

impl World {
    async fn new(options: FetchOptions) -> World {
        World::with_timeouts(options, None).await
    }

    async fn with_timeouts(options: FetchOptions, timeouts: Option<TimeoutConfig>) -> World {
        let moto = moto();
        let proxy = FaultProxy::start(&moto.endpoint()).await;
        let mut loader = support::config_loader(&proxy.endpoint(), "eu-west-3")
            .app_name(AppName::new(APP_ID).expect("valid app id"))
            // Standard retries (3 attempts), with short backoffs for tests.
            .retry_config(
                RetryConfig::standard()
                    .with_initial_backoff(Duration::from_millis(5))
                    .with_max_backoff(Duration::from_millis(50)),
            );
        if let Some(timeouts) = timeouts {
            loader = loader.timeout_config(timeouts);
        }
        let base = loader.load().await;
        let factory = StoreFactory::new(&base, options);
        let seed = support::sdk_config(&moto.endpoint(), REGION).await;
        World {
            proxy,
            factory,
            sm: SecretsClient::new(&seed),
            ssm: SsmClient::new(&seed),
        }
    }

    fn stores(&self) -> Stores {
        self.stores_as(support::test_credentials(), PRINCIPAL)
    }

    fn stores_as(&self, credentials: Credentials, principal: &str) -> Stores {
        self.factory.stores(REGION, &credentials, principal)
    }
}

fn options(batch: bool) -> FetchOptions {
    FetchOptions {
        batch_get_secret_value: batch,
        ..FetchOptions::default()
    }
}

fn item(name: &str) -> FetchItem {
    FetchItem {
        name: name.to_owned(),
        version: None,
        label: None,
        mounted_version: None,
        arn: None,
    }
}

fn pinned(name: &str, version: &str) -> FetchItem {
    FetchItem {
        version: Some(version.to_owned()),
        ..item(name)
    }
}

fn labelled(name: &str, label: &str) -> FetchItem {
    FetchItem {
        label: Some(label.to_owned()),
        ..item(name)
    }
}

fn mounted(mut item: FetchItem, current: &str) -> FetchItem {
    item.mounted_version = Some(current.to_owned());
    item
}

/// The contents and version of a `Value`, or a panic naming what came.
fn value(result: &Result<Fetched, StoreError>) -> (Vec<u8>, String) {
    match result {
        Ok(Fetched::Value {
            contents, version, ..
        }) => (contents.expose().to_vec(), version.clone()),
        other => panic!("expected a value, got {other:?}"),
    }
}

fn text(result: &Result<Fetched, StoreError>) -> (String, String) {
    let (bytes, version) = value(result);
    (String::from_utf8(bytes).expect("utf-8 value"), version)
}

fn error(result: &Result<Fetched, StoreError>) -> &StoreError {
    match result {
        Err(e) => e,
        Ok(other) => panic!("expected an error, got {other:?}"),
    }
}

async fn fetch_secrets(stores: &Stores, items: Vec<FetchItem>) -> Results {
    let n = items.len();
    let results = stores.secrets_manager.fetch(items).await;
    assert_eq!(results.len(), n, "one result per item");
    results
}

async fn fetch_parameters(stores: &Stores, items: Vec<FetchItem>) -> Results {
    let n = items.len();
    let results = stores.parameter_store.fetch(items).await;
    assert_eq!(results.len(), n, "one result per item");
    results
}

// ---------------------------------------------------------------- Secrets Manager

#[tokio::test]
async fn secret_string_binary_version_id_and_stages() {
    let w = World::new(options(false)).await;
    let s = support::create_secret_string(&w.sm, "t1/db", "first").await;
    let second = support::put_secret_string(&w.sm, "t1/db", "second", &[]).await;
    let pending = support::put_secret_string(&w.sm, "t1/db", "third", &["CUSTOM"]).await;
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let b = support::create_secret_binary(&w.sm, "t1/bin", &all_bytes).await;

    let r = fetch_secrets(
        &w.stores(),
        vec![
            item("t1/db"),
            item(&s.arn),
            item("t1/bin"),
            pinned("t1/db", &s.version_id),
            labelled("t1/db", "AWSPREVIOUS"),
            labelled("t1/db", "CUSTOM"),
            FetchItem {
                label: Some("AWSCURRENT".into()),
                ..pinned("t1/db", &second)
            },
        ],
    )
    .await;
    assert_eq!(text(&r[0]), ("second".into(), second.clone()));
    assert_eq!(text(&r[1]), ("second".into(), second.clone()), "by ARN");
    assert_eq!(
        value(&r[2]),
        (all_bytes, b.version_id),
        "SecretBinary bytes exact"
    );
    assert_eq!(
        text(&r[3]),
        ("first".into(), s.version_id.clone()),
        "VersionId"
    );
    assert_eq!(text(&r[4]), ("first".into(), s.version_id), "AWSPREVIOUS");
    assert_eq!(text(&r[5]), ("third".into(), pending), "custom stage");
    assert_eq!(
        text(&r[6]),
        ("second".into(), second),
        "VersionId and VersionStage"
    );
    assert_eq!(w.proxy.calls("GetSecretValue"), 7);

    // The request asked for what the item said, and the SDK carried the app id.
    let requests = w.proxy.requests("GetSecretValue");
    assert!(
        requests
            .iter()
            .any(|r| r.body.contains(r#""VersionStage":"AWSPREVIOUS""#))
    );
    assert!(
        requests.iter().all(|r| r.region == REGION),
        "the store's region, not the base's"
    );
    let app = format!("app/{APP_ID}");
    assert!(
        requests[0]
            .headers
            .iter()
            .any(|(k, v)| k.ends_with("user-agent") && v.contains(&app)),
        "user agent headers: {:?}",
        requests[0]
            .headers
            .iter()
            .filter(|(k, _)| k.ends_with("user-agent"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn secret_of_64_kib_is_fetched_whole() {
    let w = World::new(options(false)).await;
    let big: String = (0..65536)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let s = support::create_secret_string(&w.sm, "t2/big", &big).await;
    let r = fetch_secrets(&w.stores(), vec![item("t2/big")]).await;
    let (bytes, version) = value(&r[0]);
    assert_eq!(bytes.len(), 65536);
    assert!(bytes == big.as_bytes());
    assert_eq!(version, s.version_id);
}

#[tokio::test]
async fn rotation_unchanged_secret_costs_one_describe_and_no_read() {
    let w = World::new(options(false)).await;
    let s = support::create_secret_string(&w.sm, "t3/db", "v1").await;
    let r = fetch_secrets(&w.stores(), vec![mounted(item("t3/db"), &s.version_id)]).await;
    assert_eq!(
        r[0].as_ref().ok(),
        Some(&Fetched::Unchanged {
            version: s.version_id.clone()
        })
    );
    assert_calls(&w, 1, 0);
}

/// The DescribeSecret and GetSecretValue calls the proxy saw.
fn assert_calls(w: &World, describe: usize, get: usize) {
    assert_eq!(w.proxy.calls("DescribeSecret"), describe);
    assert_eq!(w.proxy.calls("GetSecretValue"), get);
}

#[tokio::test]
async fn rotation_changed_secret_gives_new_value_and_version() {
    let w = World::new(options(false)).await;
    let s = support::create_secret_string(&w.sm, "t4/db", "v1").await;
    let v2 = support::put_secret_string(&w.sm, "t4/db", "v2", &[]).await;
    let r = fetch_secrets(&w.stores(), vec![mounted(item("t4/db"), &s.version_id)]).await;
    assert_eq!(text(&r[0]), ("v2".into(), v2));
    assert_eq!(w.proxy.calls("DescribeSecret"), 1);
    assert_eq!(w.proxy.calls("GetSecretValue"), 1);
}

#[tokio::test]
async fn rotation_checks_the_objects_label_and_pinned_versions() {
    let w = World::new(options(false)).await;
    let s = support::create_secret_string(&w.sm, "t5/db", "v1").await;
    let v2 = support::put_secret_string(&w.sm, "t5/db", "v2", &[]).await;
    let r = fetch_secrets(
        &w.stores(),
        vec![
            // v1 now carries AWSPREVIOUS: still current for that label.
            mounted(labelled("t5/db", "AWSPREVIOUS"), &s.version_id),
            // A pinned version equal to the mounted one needs no call.
            mounted(pinned("t5/db", &s.version_id), &s.version_id),
            // A pinned version other than the mounted one is read.
            mounted(pinned("t5/db", &v2), &s.version_id),
        ],
    )
    .await;
    assert_eq!(
        r[0].as_ref().ok(),
        Some(&Fetched::Unchanged {
            version: s.version_id.clone()
        })
    );
    assert_eq!(
        r[1].as_ref().ok(),
        Some(&Fetched::Unchanged {
            version: s.version_id.clone()
        })
    );
    assert_eq!(text(&r[2]), ("v2".into(), v2));
    assert_eq!(w.proxy.calls("DescribeSecret"), 1);
    assert_eq!(w.proxy.calls("GetSecretValue"), 1);
}

// ---------------------------------------------------------------- Parameter Store

#[tokio::test]
async fn parameter_types_selectors_and_arns() {
    let w = World::new(options(false)).await;
    support::put_parameter(&w.ssm, "/t6/plain", "hello", ParameterType::String).await;
    support::put_parameter(&w.ssm, "/t6/list", "a,b,c", ParameterType::StringList).await;
    support::put_parameter(&w.ssm, "/t6/secure", "s3cr3t", ParameterType::SecureString).await;
    support::put_parameter(&w.ssm, "/t6/multi", "one", ParameterType::String).await;
    support::put_parameter(&w.ssm, "/t6/multi", "two", ParameterType::String).await;
    support::put_parameter(&w.ssm, "/t6/multi", "three", ParameterType::String).await;
    support::label_parameter(&w.ssm, "/t6/multi", 2, &["stable"]).await;
    let arn = format!("arn:aws:ssm:{REGION}:{TEST_ACCOUNT}:parameter/t6/plain");

    let r = fetch_parameters(
        &w.stores(),
        vec![
            item("/t6/plain"),
            item("/t6/list"),
            item("/t6/secure"),
            item("/t6/multi"),
            pinned("/t6/multi", "1"),
            labelled("/t6/multi", "stable"),
            item(&arn),
            // The same object twice (two aliases) is asked for once.
            item("/t6/plain"),
            // Rotation never shortcuts parameters.
            mounted(item("/t6/secure"), "1"),
        ],
    )
    .await;
    assert_eq!(text(&r[0]), ("hello".into(), "1".into()));
    assert_eq!(
        text(&r[1]),
        ("a,b,c".into(), "1".into()),
        "StringList as returned"
    );
    assert_eq!(
        text(&r[2]),
        ("s3cr3t".into(), "1".into()),
        "SecureString decrypted"
    );
    assert_eq!(text(&r[3]), ("three".into(), "3".into()));
    assert_eq!(text(&r[4]), ("one".into(), "1".into()), "version selector");
    assert_eq!(text(&r[5]), ("two".into(), "2".into()), "label selector");
    assert_eq!(text(&r[6]), ("hello".into(), "1".into()), "by ARN");
    assert_eq!(text(&r[7]), ("hello".into(), "1".into()));
    assert_eq!(text(&r[8]), ("s3cr3t".into(), "1".into()));

    let bodies = w.proxy.bodies("GetParameters").join("\n");
    assert!(bodies.contains(r#""/t6/multi:1""#), "{bodies}");
    assert!(bodies.contains(r#""/t6/multi:stable""#), "{bodies}");
    assert!(bodies.contains(r#""WithDecryption":true"#), "{bodies}");
    // Three spellings of /t6/multi and two of /t6/plain: three calls.
    assert_eq!(w.proxy.calls("GetParameters"), 3);
}

#[tokio::test]
async fn twenty_five_parameters_take_three_calls() {
    let w = World::new(options(false)).await;
    for i in 0..25 {
        support::put_parameter(
            &w.ssm,
            &format!("/t7/p{i}"),
            &format!("v{i}"),
            ParameterType::String,
        )
        .await;
    }
    let items = (0..25).map(|i| item(&format!("/t7/p{i}"))).collect();
    let r = fetch_parameters(&w.stores(), items).await;
    for (i, result) in r.iter().enumerate() {
        assert_eq!(
            text(result),
            (format!("v{i}"), "1".into()),
            "item {i} in its place"
        );
    }
    assert_eq!(w.proxy.calls("GetParameters"), 3);
    for body in w.proxy.bodies("GetParameters") {
        assert!(body.matches("/t7/p").count() <= 10, "{body}");
    }
}

#[tokio::test]
async fn invalid_parameters_fail_each_affected_item_and_are_listed_once() {
    let w = World::new(options(false)).await;
    support::put_parameter(&w.ssm, "/t8/ok", "fine", ParameterType::String).await;
    let r = fetch_parameters(
        &w.stores(),
        vec![
            item("/t8/missing"),
            item("/t8/ok"),
            item("/t8/missing"),
            pinned("/t8/ok", "7"),
            labelled("/t8/ok", "nolabel"),
        ],
    )
    .await;
    assert_eq!(text(&r[1]), ("fine".into(), "1".into()));
    for i in [0, 2, 3, 4] {
        let e = error(&r[i]);
        assert_eq!(e.kind, FailureKind::InvalidArgument, "item {i}");
        assert_eq!(e.code.as_deref(), Some("InvalidParameters"));
        let shown = e.to_string();
        assert_eq!(shown.matches("/t8/missing").count(), 1, "{shown}");
        assert!(
            shown.contains("/t8/ok:7") && shown.contains("/t8/ok:nolabel"),
            "{shown}"
        );
    }
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn not_found_answers_from_moto_are_not_found() {
    let w = World::new(options(false)).await;
    let s = support::create_secret_string(&w.sm, "t9/db", "v").await;
    let r = fetch_secrets(
        &w.stores(),
        vec![
            item("t9/none"),
            pinned("t9/db", "00000000-0000-0000-0000-000000000000"),
            labelled("t9/db", "NOSUCHSTAGE"),
            mounted(item("t9/none"), &s.version_id),
        ],
    )
    .await;
    for (i, result) in r.iter().enumerate() {
        let e = error(result);
        assert_eq!(e.kind, FailureKind::NotFound, "item {i}: {e}");
        assert_eq!(e.code.as_deref(), Some("ResourceNotFoundException"));
        assert!(e.kind.is_client_error());
    }
    assert!(error(&r[3]).to_string().contains("DescribeSecret"));
    // A client error is not retried.
    assert_eq!(w.proxy.calls("GetSecretValue"), 3);
}

#[tokio::test]
async fn server_errors_are_unavailable_after_the_retries() {
    let w = World::new(options(false)).await;
    support::create_secret_string(&w.sm, "t10/db", "v").await;
    support::put_parameter(&w.ssm, "/t10/p", "v", ParameterType::String).await;
    w.proxy
        .add_rule(Rule::new().respond(500, "InternalServiceError"));
    let stores = w.stores();
    let r = fetch_secrets(&stores, vec![item("t10/db")]).await;
    let e = error(&r[0]);
    assert_eq!(e.kind, FailureKind::Unavailable);
    assert_eq!(e.code.as_deref(), Some("InternalServiceError"));
    assert_eq!(
        w.proxy.calls("GetSecretValue"),
        3,
        "standard mode: three attempts"
    );

    let r = fetch_parameters(&stores, vec![item("/t10/p")]).await;
    assert_eq!(error(&r[0]).kind, FailureKind::Unavailable);
    assert_eq!(w.proxy.calls("GetParameters"), 3);

    // Throttling that outlives the retries is the service's trouble too.
    // It is sent twice, not three times: the SDK does not retry it, the
    // node's backoff (aws::throttle) retries it once.
    w.proxy.clear_rules();
    w.proxy.reset_counts();
    w.proxy
        .add_rule(Rule::new().respond(400, "ThrottlingException"));
    let r = fetch_secrets(&stores, vec![item("t10/db")]).await;
    assert_eq!(error(&r[0]).kind, FailureKind::Throttled);
    assert_eq!(w.proxy.calls("GetSecretValue"), 2);

    // A 500 that goes away is retried into a value. A new mount's stores:
    // this one's calls to Secrets Manager stop at its throttled one.
    let stores = w.stores();
    w.proxy.clear_rules();
    w.proxy.reset_counts();
    w.proxy.add_rule(
        Rule::new()
            .operation("GetSecretValue")
            .respond(503, "ServiceUnavailable")
            .times(1),
    );
    let r = fetch_secrets(&stores, vec![item("t10/db")]).await;
    assert_eq!(text(&r[0]).0, "v");
    assert_eq!(w.proxy.calls("GetSecretValue"), 2);
}

#[tokio::test]
async fn denials_are_permission_denied_and_not_retried() {
    let w = World::new(options(false)).await;
    support::create_secret_string(&w.sm, "t11/db", "v").await;
    support::put_parameter(&w.ssm, "/t11/p", "v", ParameterType::SecureString).await;
    w.proxy
        .add_rule(Rule::new().operation("GetSecretValue").respond_with(
            400,
            "AccessDeniedException",
            "not authorized to perform GetSecretValue",
        ));
    w.proxy
        .add_rule(Rule::new().operation("GetParameters").respond_with(
            400,
            "KMSAccessDeniedException",
            "not allowed to use the key",
        ));
    let stores = w.stores();
    let r = fetch_secrets(&stores, vec![item("t11/db")]).await;
    let e = error(&r[0]);
    assert_eq!(e.kind, FailureKind::PermissionDenied);
    assert_eq!(e.code.as_deref(), Some("AccessDeniedException"));
    assert!(e.to_string().contains("not authorized"), "{e}");
    assert!(e.kind.is_client_error());
    assert_eq!(w.proxy.calls("GetSecretValue"), 1);

    let r = fetch_parameters(&stores, vec![item("/t11/p")]).await;
    assert_eq!(error(&r[0]).kind, FailureKind::PermissionDenied);
    assert_eq!(w.proxy.calls("GetParameters"), 1);

    w.proxy.clear_rules();
    w.proxy.add_rule(
        Rule::new()
            .operation("GetSecretValue")
            .respond(400, "DecryptionFailure"),
    );
    let r = fetch_secrets(&stores, vec![item("t11/db")]).await;
    assert_eq!(error(&r[0]).kind, FailureKind::PermissionDenied);
}

#[tokio::test]
async fn hangs_and_dropped_connections_are_unavailable() {
    let timeouts = TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_millis(300))
        .operation_timeout(Duration::from_secs(2))
        .build();
    let w = World::with_timeouts(options(false), Some(timeouts)).await;
    support::create_secret_string(&w.sm, "t12/db", "v").await;
    let stores = w.stores();

    w.proxy
        .add_rule(Rule::new().operation("GetSecretValue").hang());
    let r = fetch_secrets(&stores, vec![item("t12/db")]).await;
    let e = error(&r[0]);
    assert_eq!(e.kind, FailureKind::Unavailable, "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");

    w.proxy.clear_rules();
    w.proxy
        .add_rule(Rule::new().operation("GetSecretValue").disconnect());
    let r = fetch_secrets(&stores, vec![item("t12/db")]).await;
    assert_eq!(error(&r[0]).kind, FailureKind::Unavailable, "{:?}", r[0]);
}

// ---------------------------------------------------------------- cross-account

#[tokio::test]
async fn another_accounts_secret_is_fetched_by_its_arn() {
    const OTHER: &str = "111122223333";
    let w = World::new(options(true)).await;
    let owner = support::account_credentials(&moto().endpoint(), OTHER).await;
    let owner_sm = SecretsClient::new(
        &support::sdk_config_with_credentials(&moto().endpoint(), REGION, owner.clone()).await,
    );
    let s = support::create_secret_string(&owner_sm, "t13/shared", "theirs").await;
    assert!(s.arn.contains(OTHER), "{}", s.arn);
    w.proxy.map_account(OTHER, owner.access_key_id());

    // The caller's credentials know their account: the foreign ARN is not
    // batched even with batching on.
    let caller = Credentials::builder()
        .access_key_id(TEST_ACCESS_KEY_ID)
        .secret_access_key(support::TEST_SECRET_ACCESS_KEY)
        .account_id(TEST_ACCOUNT)
        .provider_name("test")
        .build();
    let r = fetch_secrets(&w.stores_as(caller, PRINCIPAL), vec![item(&s.arn)]).await;
    assert_eq!(text(&r[0]), ("theirs".into(), s.version_id));
    assert_eq!(w.proxy.calls("BatchGetSecretValue"), 0);

    let requests = w.proxy.requests("GetSecretValue");
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert!(
        sent.body.contains(&format!(r#""SecretId":"{}""#, s.arn)),
        "{}",
        sent.body
    );
    assert_eq!(sent.access_key_id.as_deref(), Some(TEST_ACCESS_KEY_ID));
    assert_eq!(sent.rewritten_to.as_deref(), Some(owner.access_key_id()));

    // A shared (advanced-tier) parameter of that account, by ARN, next to an
    // own parameter of the same name: matched back by ARN, not by name.
    let owner_ssm = SsmClient::new(
        &support::sdk_config_with_credentials(&moto().endpoint(), REGION, owner.clone()).await,
    );
    support::put_parameter(
        &owner_ssm,
        "/t13/shared",
        "their-param",
        ParameterType::String,
    )
    .await;
    support::put_parameter(&w.ssm, "/t13/shared", "our-param", ParameterType::String).await;
    let arn = format!("arn:aws:ssm:{REGION}:{OTHER}:parameter/t13/shared");
    let r = fetch_parameters(&w.stores(), vec![item(&arn), item("/t13/shared")]).await;
    assert_eq!(text(&r[0]), ("their-param".into(), "1".into()));
    assert_eq!(text(&r[1]), ("our-param".into(), "1".into()));
    let sent = w.proxy.requests("GetParameters");
    let by_arn = sent
        .iter()
        .find(|r| r.body.contains(&arn))
        .expect("a GetParameters call naming the ARN");
    assert_eq!(by_arn.rewritten_to.as_deref(), Some(owner.access_key_id()));
}

// ---------------------------------------------------------------- call counts

/// 40 secrets and 25 parameters, seeded; returns the secrets' version ids.
async fn seed_mount(w: &World, tag: &str) -> Vec<String> {
    let mut versions = Vec::new();
    for i in 0..40 {
        let s =
            support::create_secret_string(&w.sm, &format!("{tag}/s{i}"), &format!("secret-{i}"))
                .await;
        versions.push(s.version_id);
    }
    for i in 0..25 {
        support::put_parameter(
            &w.ssm,
            &format!("/{tag}/p{i}"),
            &format!("param-{i}"),
            ParameterType::String,
        )
        .await;
    }
    versions
}

/// Fetches the mount (secrets and parameters at once, as the mount does) and
/// checks every value.
async fn fetch_mount(
    stores: &Stores,
    tag: &str,
    versions: Option<&[String]>,
) -> (Results, Results) {
    let secrets: Vec<FetchItem> = (0..40)
        .map(|i| {
            let it = item(&format!("{tag}/s{i}"));
            match versions {
                Some(v) => mounted(it, &v[i]),
                None => it,
            }
        })
        .collect();
    let parameters: Vec<FetchItem> = (0..25).map(|i| item(&format!("/{tag}/p{i}"))).collect();
    let (s, p) = futures::join!(
        fetch_secrets(stores, secrets),
        fetch_parameters(stores, parameters)
    );
    for (i, result) in p.iter().enumerate() {
        assert_eq!(text(result).0, format!("param-{i}"));
    }
    (s, p)
}

fn counts(proxy: &FaultProxy) -> [usize; 4] {
    [
        proxy.calls("GetSecretValue"),
        proxy.calls("DescribeSecret"),
        proxy.calls("BatchGetSecretValue"),
        proxy.calls("GetParameters"),
    ]
}

#[tokio::test]
async fn a_mount_of_40_secrets_and_25_parameters_costs_43_calls_then_43_checks() {
    let w = World::new(options(false)).await;
    let versions = seed_mount(&w, "t14").await;
    let stores = w.stores();

    let (s, _) = fetch_mount(&stores, "t14", None).await;
    for (i, result) in s.iter().enumerate() {
        assert_eq!(text(result), (format!("secret-{i}"), versions[i].clone()));
    }
    assert_eq!(
        counts(&w.proxy),
        [40, 0, 0, 3],
        "[Get, Describe, Batch, GetParameters]"
    );

    w.proxy.reset_counts();
    let (s, _) = fetch_mount(&stores, "t14", Some(&versions)).await;
    for (i, result) in s.iter().enumerate() {
        assert_eq!(
            result.as_ref().ok(),
            Some(&Fetched::Unchanged {
                version: versions[i].clone()
            })
        );
    }
    assert_eq!(
        counts(&w.proxy),
        [0, 40, 0, 3],
        "[Get, Describe, Batch, GetParameters]"
    );
}

#[tokio::test]
async fn with_batching_the_same_mount_costs_5_calls_both_times() {
    let w = World::new(options(true)).await;
    let versions = seed_mount(&w, "t15").await;
    let stores = w.stores();

    let (s, _) = fetch_mount(&stores, "t15", None).await;
    for (i, result) in s.iter().enumerate() {
        assert_eq!(text(result), (format!("secret-{i}"), versions[i].clone()));
    }
    assert_eq!(
        counts(&w.proxy),
        [0, 0, 2, 3],
        "[Get, Describe, Batch, GetParameters]"
    );
    for body in w.proxy.bodies("BatchGetSecretValue") {
        assert_eq!(body.matches("t15/s").count(), 20, "{body}");
    }

    // Remount carrying the current versions: still one batch per 20 secrets,
    // and the batched answer is returned as the value.
    w.proxy.reset_counts();
    let (s, _) = fetch_mount(&stores, "t15", Some(&versions)).await;
    for (i, result) in s.iter().enumerate() {
        assert_eq!(text(result), (format!("secret-{i}"), versions[i].clone()));
    }
    assert_eq!(
        counts(&w.proxy),
        [0, 0, 2, 3],
        "[Get, Describe, Batch, GetParameters]"
    );
}

#[tokio::test]
async fn a_denied_batch_falls_back_and_is_not_tried_again_for_that_principal() {
    let w = World::new(options(true)).await;
    let versions = seed_mount(&w, "t16").await;
    w.proxy
        .add_rule(Rule::new().operation("BatchGetSecretValue").respond_with(
            400,
            "AccessDeniedException",
            "not authorized to perform BatchGetSecretValue",
        ));
    let stores = w.stores();
    assert!(!w.factory.batch_denied(PRINCIPAL));

    let (s, _) = fetch_mount(&stores, "t16", None).await;
    for (i, result) in s.iter().enumerate() {
        assert_eq!(text(result), (format!("secret-{i}"), versions[i].clone()));
    }
    let [get, describe, batch, parameters] = counts(&w.proxy);
    assert_eq!((get, describe, parameters), (40, 0, 3));
    assert!(
        (1..=2).contains(&batch),
        "one call per chunk at most: {batch}"
    );
    assert!(w.factory.batch_denied(PRINCIPAL));

    // The next mount of the same principal (new stores, as a new mount gets)
    // goes straight to per-secret reads.
    w.proxy.reset_counts();
    let (s, _) = fetch_mount(&w.stores(), "t16", None).await;
    assert_eq!(text(&s[39]).0, "secret-39");
    assert_eq!(
        counts(&w.proxy),
        [40, 0, 0, 3],
        "[Get, Describe, Batch, GetParameters]"
    );

    // Another principal is not affected.
    w.proxy.clear_rules();
    w.proxy.reset_counts();
    let other = w.stores_as(
        support::test_credentials(),
        "arn:aws:iam::123456789012:role/other",
    );
    let r = fetch_secrets(&other, vec![item("t16/s0")]).await;
    assert_eq!(text(&r[0]).0, "secret-0");
    assert_eq!(w.proxy.calls("BatchGetSecretValue"), 1);
}

#[tokio::test]
async fn batch_answers_are_matched_and_per_secret_errors_classified() {
    let w = World::new(options(true)).await;
    let a = support::create_secret_string(&w.sm, "t17/a", "A").await;
    let b = support::create_secret_binary(&w.sm, "t17/b", &[0, 1, 2, 255]).await;
    let v2 = support::put_secret_string(&w.sm, "t17/a", "A2", &[]).await;
    let caller = Credentials::builder()
        .access_key_id(TEST_ACCESS_KEY_ID)
        .secret_access_key(support::TEST_SECRET_ACCESS_KEY)
        .account_id(TEST_ACCOUNT)
        .provider_name("test")
        .build();
    let stores = w.stores_as(caller, PRINCIPAL);
    let r = fetch_secrets(
        &stores,
        vec![
            item("t17/missing"),
            item(&b.arn),
            item("t17/a"),
            pinned("t17/a", &a.version_id),
            item("t17/a"),
            labelled("t17/a", "AWSPREVIOUS"),
        ],
    )
    .await;
    let e = error(&r[0]);
    assert_eq!(e.kind, FailureKind::NotFound);
    assert_eq!(e.code.as_deref(), Some("ResourceNotFoundException"));
    assert_eq!(
        value(&r[1]),
        (vec![0, 1, 2, 255], b.version_id),
        "own ARN, binary"
    );
    assert_eq!(text(&r[2]), ("A2".into(), v2.clone()));
    assert_eq!(
        text(&r[3]),
        ("A".into(), a.version_id.clone()),
        "pinned: GetSecretValue"
    );
    assert_eq!(text(&r[4]), ("A2".into(), v2));
    assert_eq!(
        text(&r[5]),
        ("A".into(), a.version_id),
        "label: GetSecretValue"
    );
    assert_eq!(w.proxy.calls("BatchGetSecretValue"), 1);
    assert_eq!(w.proxy.calls("GetSecretValue"), 2);
    let body = &w.proxy.bodies("BatchGetSecretValue")[0];
    assert_eq!(body.matches("t17/a").count(), 1, "asked once: {body}");

    // Without a known account, an ARN is never batched.
    w.proxy.reset_counts();
    let r = fetch_secrets(&w.stores(), vec![item(&b.arn), item("t17/a")]).await;
    assert_eq!(value(&r[1]).0, b"A2");
    assert_eq!(w.proxy.calls("BatchGetSecretValue"), 1);
    assert_eq!(w.proxy.calls("GetSecretValue"), 1);
    assert!(!w.proxy.bodies("BatchGetSecretValue")[0].contains("arn:"));
}

#[tokio::test]
async fn a_failed_batch_fails_its_items() {
    let w = World::new(options(true)).await;
    support::create_secret_string(&w.sm, "t18/a", "A").await;
    w.proxy.add_rule(
        Rule::new()
            .operation("BatchGetSecretValue")
            .respond(500, "InternalServiceError"),
    );
    let r = fetch_secrets(&w.stores(), vec![item("t18/a"), item("t18/a")]).await;
    for result in &r {
        assert_eq!(error(result).kind, FailureKind::Unavailable);
    }
    assert_eq!(
        w.proxy.calls("BatchGetSecretValue"),
        3,
        "retried, not fallen back"
    );
    assert_eq!(w.proxy.calls("GetSecretValue"), 0);
    assert!(!w.factory.batch_denied(PRINCIPAL));
}

// ---------------------------------------------------------------- concurrency

#[tokio::test]
async fn twenty_secrets_are_fetched_at_once() {
    let w = World::new(options(false)).await;
    for i in 0..20 {
        support::create_secret_string(&w.sm, &format!("t19/s{i}"), &format!("v{i}")).await;
    }
    let items = || {
        (0..20)
            .map(|i| item(&format!("t19/s{i}")))
            .collect::<Vec<_>>()
    };
    let r = fetch_secrets(&w.stores(), items()).await;
    for (i, result) in r.iter().enumerate() {
        assert_eq!(text(result).0, format!("v{i}"));
    }

    // Every read held at the proxy: all twenty reach it while none has
    // been answered, so they are in flight at once. (How much faster that
    // is than one after another is a benchmark: examples/fetch_bench.rs.)
    w.proxy.reset_counts();
    w.proxy
        .add_rule(Rule::new().operation("GetSecretValue").hang());
    let stores = w.stores();
    let fetch = tokio::spawn(async move { fetch_secrets(&stores, items()).await });
    while w.proxy.calls("GetSecretValue") < 20 {
        assert!(!fetch.is_finished(), "the fetch ended before its reads");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let distinct: std::collections::HashSet<String> =
        w.proxy.bodies("GetSecretValue").into_iter().collect();
    assert_eq!(distinct.len(), 20, "one read per secret");
    fetch.abort();
}

// ---------------------------------------------------------------- credentials

#[tokio::test]
async fn mounts_with_the_same_credentials_share_clients_and_both_stores_answer() {
    let w = World::new(options(false)).await;
    support::create_secret_string(&w.sm, "t20/db", "v").await;
    support::put_parameter(&w.ssm, "/t20/p", "v", ParameterType::String).await;
    // Two mounts of pods with the same cached credentials: the second
    // reuses the first's SDK clients (src/aws/clients.rs), the Parameter
    // Store's built on its first use.
    let first = w.stores();
    let second = w.stores();
    let (s, p, again) = futures::join!(
        fetch_secrets(&first, vec![item("t20/db"), item("t20/db")]),
        fetch_parameters(&second, vec![item("/t20/p")]),
        fetch_secrets(&second, vec![item("t20/db")]),
    );
    assert_eq!(text(&s[0]).0, "v");
    assert_eq!(text(&p[0]).0, "v");
    assert_eq!(text(&again[0]).0, "v");
    assert_eq!(w.proxy.calls("GetSecretValue"), 3);
    assert_eq!(w.proxy.calls("GetParameters"), 1);
}

// ---------------------------------------------------------------- shared version checks

fn recorded(name: &str, version: &str, arn: &str) -> FetchItem {
    FetchItem {
        arn: Some(arn.to_owned()),
        ..mounted(item(name), version)
    }
}

#[tokio::test]
async fn one_describe_per_secret_arn_serves_every_principal_within_the_window() {
    let w = World::new(options(false)).await;
    let s = support::create_secret_string(&w.sm, "rot1/db", "v1").await;
    for principal in [
        "arn:aws:iam::123456789012:role/a",
        "arn:aws:iam::123456789012:role/b",
    ] {
        for _ in 0..3 {
            let stores = w.stores_as(support::test_credentials(), principal);
            let r = fetch_secrets(&stores, vec![recorded("rot1/db", &s.version_id, &s.arn)]).await;
            assert_eq!(
                r[0].as_ref().ok(),
                Some(&Fetched::Unchanged {
                    version: s.version_id.clone()
                })
            );
        }
    }
    assert_calls(&w, 1, 0);
}

#[tokio::test]
async fn a_changed_or_unchecked_secret_is_fetched_with_the_pods_own_call() {
    let w = World::new(FetchOptions {
        rotation_check_window: Duration::ZERO,
        ..FetchOptions::default()
    })
    .await;
    let s = support::create_secret_string(&w.sm, "rot2/db", "v1").await;
    let v2 = support::put_secret_string(&w.sm, "rot2/db", "v2", &[]).await;
    let r = fetch_secrets(
        &w.stores(),
        vec![recorded("rot2/db", &s.version_id, &s.arn)],
    )
    .await;
    assert_eq!(text(&r[0]), ("v2".into(), v2.clone()));
    assert_eq!(w.proxy.calls("DescribeSecret"), 1);
    assert_eq!(w.proxy.calls("GetSecretValue"), 1);

    // DescribeSecret denied: the mount still succeeds with its own read,
    // and the role skips the check afterwards.
    w.proxy.reset_counts();
    w.proxy.add_rule(
        Rule::new()
            .operation("DescribeSecret")
            .respond(400, "AccessDeniedException"),
    );
    for _ in 0..2 {
        let r = fetch_secrets(&w.stores(), vec![recorded("rot2/db", &v2, &s.arn)]).await;
        assert_eq!(text(&r[0]), ("v2".into(), v2.clone()));
    }
    assert_eq!(w.proxy.calls("DescribeSecret"), 1);
    assert_eq!(w.proxy.calls("GetSecretValue"), 2);
}

#[tokio::test]
async fn a_check_of_one_accounts_secret_never_decides_for_anothers_of_the_same_name() {
    const OTHER: &str = "111122223333";
    let w = World::new(options(false)).await;
    let owner = support::account_credentials(&moto().endpoint(), OTHER).await;
    let owner_sm = SecretsClient::new(
        &support::sdk_config_with_credentials(&moto().endpoint(), REGION, owner.clone()).await,
    );
    w.proxy.map_account(OTHER, owner.access_key_id());
    let ours = support::create_secret_string(&w.sm, "rot3/same", "ours").await;
    let theirs = support::create_secret_string(&owner_sm, "rot3/same", "theirs").await;
    let theirs_v2 = support::put_secret_string(&owner_sm, "rot3/same", "theirs-2", &[]).await;
    assert_ne!(ours.arn, theirs.arn);

    // Our check says our version is current.
    let r = fetch_secrets(
        &w.stores(),
        vec![recorded("rot3/same", &ours.version_id, &ours.arn)],
    )
    .await;
    assert!(matches!(r[0], Ok(Fetched::Unchanged { .. })));
    // The other account's pod, mounted at their first version, gets its own
    // check (keyed by its ARN) and its own new version.
    let r = fetch_secrets(
        &w.stores_as(owner, "arn:aws:iam::111122223333:role/x"),
        vec![recorded("rot3/same", &theirs.version_id, &theirs.arn)],
    )
    .await;
    assert_eq!(text(&r[0]), ("theirs-2".into(), theirs_v2));
    assert_eq!(w.proxy.calls("DescribeSecret"), 2);
}

#[tokio::test]
async fn with_batching_recorded_secrets_are_answered_by_the_nodes_batches_first() {
    let w = World::new(options(true)).await;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(support::create_secret_string(&w.sm, &format!("rot4/s{i}"), "v1").await);
    }
    let recorded_all = |created: &[support::CreatedSecret]| -> Vec<FetchItem> {
        created
            .iter()
            .map(|s| recorded(&s.name, &s.version_id, &s.arn))
            .collect()
    };

    // 25 misses: re-read in 2 batches, not checked with 25 DescribeSecret.
    let r = fetch_secrets(&w.stores(), recorded_all(&created)).await;
    assert_eq!(text(&r[24]), ("v1".into(), created[24].version_id.clone()));
    assert_eq!(
        counts(&w.proxy),
        [0, 0, 2, 0],
        "[Get, Describe, Batch, GetParameters]"
    );

    // Those batch answers serve another principal's mount: no call.
    w.proxy.reset_counts();
    let other = w.stores_as(
        support::test_credentials(),
        "arn:aws:iam::123456789012:role/other",
    );
    let r = fetch_secrets(&other, recorded_all(&created)).await;
    assert!(r.iter().all(|r| matches!(r, Ok(Fetched::Unchanged { .. }))));
    assert_eq!(counts(&w.proxy), [0, 0, 0, 0]);

    // A label is not told by a batch answer: that object is read by itself.
    let v2 = support::put_secret_string(&w.sm, "rot4/s0", "v2", &[]).await;
    w.proxy.reset_counts();
    let previous = FetchItem {
        label: Some("AWSPREVIOUS".into()),
        ..recorded(&created[0].name, &created[0].version_id, &created[0].arn)
    };
    let r = fetch_secrets(&w.stores(), vec![previous]).await;
    assert_eq!(text(&r[0]), ("v1".into(), created[0].version_id.clone()));
    assert_eq!(counts(&w.proxy), [1, 0, 0, 0]);

    // Every remount checked (no window): one miss is checked (a batch would
    // cost as much), two are re-read in one batch; a changed one is read in
    // a batch after its check.
    let w0 = World::new(FetchOptions {
        rotation_check_window: Duration::ZERO,
        ..options(true)
    })
    .await;
    let fetch = |items| async { fetch_secrets(&w0.stores(), items).await };
    let r = fetch(recorded_all(&created[1..2])).await;
    assert!(matches!(r[0], Ok(Fetched::Unchanged { .. })));
    assert_eq!(counts(&w0.proxy), [0, 1, 0, 0]);
    w0.proxy.reset_counts();
    fetch(recorded_all(&created[1..3])).await;
    assert_eq!(counts(&w0.proxy), [0, 0, 1, 0]);
    w0.proxy.reset_counts();
    let r = fetch(recorded_all(&created[..1])).await;
    assert_eq!(text(&r[0]), ("v2".into(), v2));
    assert_eq!(counts(&w0.proxy), [0, 1, 1, 0]);
}

#[tokio::test]
async fn parameter_checks_are_keyed_by_the_full_arn_and_a_read_returns_it() {
    const OTHER: &str = "111122223333";
    let w = World::new(options(false)).await;
    let owner = support::account_credentials(&moto().endpoint(), OTHER).await;
    let owner_ssm = SsmClient::new(
        &support::sdk_config_with_credentials(&moto().endpoint(), REGION, owner.clone()).await,
    );
    w.proxy.map_account(OTHER, owner.access_key_id());
    let name = "/rot6/same";
    let ours_arn = format!("arn:aws:ssm:{REGION}:123456789012:parameter/rot6/same");
    let theirs_arn = format!("arn:aws:ssm:{REGION}:{OTHER}:parameter/rot6/same");
    support::put_parameter(&w.ssm, name, "ours", ParameterType::String).await;
    support::put_parameter(&owner_ssm, name, "theirs", ParameterType::String).await;
    support::put_parameter(&owner_ssm, name, "theirs-2", ParameterType::String).await;

    // A read returns the ARN its answer named: the key of later checks.
    let r = fetch_parameters(&w.stores(), vec![item(name)]).await;
    match &r[0] {
        Ok(Fetched::Value { arn, version, .. }) => {
            assert_eq!(arn.as_deref(), Some(ours_arn.as_str()));
            assert_eq!(version, "1");
        }
        other => panic!("expected a value, got {other:?}"),
    }
    w.proxy.reset_counts();

    // Our check (our ARN): version 1 is current. Theirs, mounted at their
    // version 1 by ARN, is checked under their ARN, sees version 2 and is
    // read with their pod's own call.
    let r = fetch_parameters(&w.stores(), vec![recorded(name, "1", &ours_arn)]).await;
    assert!(
        matches!(&r[0], Ok(Fetched::Unchanged { version }) if version == "1"),
        "{r:?}"
    );
    let their_stores = w.stores_as(owner, "arn:aws:iam::111122223333:role/x");
    let r = fetch_parameters(&their_stores, vec![recorded(&theirs_arn, "1", &theirs_arn)]).await;
    assert_eq!(text(&r[0]), ("theirs-2".into(), "2".into()));
    assert_eq!(w.proxy.calls("GetParameters"), 3, "two checks, one read");
    let bodies = w.proxy.bodies("GetParameters");
    assert!(bodies[0].contains(&ours_arn) && bodies[0].contains("\"WithDecryption\":false"));
    assert!(bodies[1].contains(&theirs_arn) && bodies[1].contains("\"WithDecryption\":false"));
    assert!(bodies[2].contains("\"WithDecryption\":true"));

    // Within the window both answers are free, for any principal.
    w.proxy.reset_counts();
    let r = fetch_parameters(&w.stores(), vec![recorded(name, "1", &ours_arn)]).await;
    assert!(matches!(&r[0], Ok(Fetched::Unchanged { .. })));
    assert_eq!(w.proxy.calls("GetParameters"), 0);

    // A denied check is no answer: the pod reads the parameter itself and
    // gets its own answer (here the same denial).
    let w = World::new(options(false)).await;
    w.proxy
        .add_rule(Rule::new().operation("GetParameters").respond_with(
            400,
            "AccessDeniedException",
            "not authorized",
        ));
    let r = fetch_parameters(&w.stores(), vec![recorded(name, "1", &ours_arn)]).await;
    match &r[0] {
        Err(e) => assert_eq!(e.kind, FailureKind::PermissionDenied, "{e}"),
        other => panic!("expected the pod's own denial, got {other:?}"),
    }
    assert_eq!(
        w.proxy.calls("GetParameters"),
        2,
        "the check, then the read"
    );
}
