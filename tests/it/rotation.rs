//! Rotation on driver v1.6 (remounts without `current_object_version`),
//! through the real binary against moto: exact AWS call counts per remount
//! and per round, Kubernetes GETs, STS, a changed secret reaching every pod,
//! a denied DescribeSecret, and another account's secret of the same name.
//! The scenarios live in `tests/support/rotation.rs`, shared with
//! `examples/rotation_calls.rs`, which prints the same counts.
//!
//! Spaced rounds wait out a 15 s `--rotation-check-window` after the
//! previous round ended, so every answer of that round has expired; a round
//! itself (20 mounts, 20 reads of a changed object at most) must stay
//! shorter than the window, or the node checks twice in it: measured at up
//! to about 6 s with the machine under load, hence 15 s and not less.

use crate::support;

use std::path::Path;
use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsClient;
use aws_sdk_ssm::types::ParameterType;
use support::rotation::{
    Change, Counts, Node, Scenario, Spacing, many_pods, one_pod, read, request, total,
};
use support::{Rule, account_credentials, sdk_config_with_credentials};

const BINARY: &str = env!("CARGO_BIN_EXE_ascp");
const BATCH: &str = "--batch-get-secret-value=true";
const EVERY_REMOUNT: &str = "--rotation-check-window=0s";
const WINDOW: Duration = Duration::from_secs(15);

fn binary() -> &'static Path {
    Path::new(BINARY)
}

/// Exactly the `expected` AWS calls and no other: no STS call either.
#[track_caller]
fn assert_aws(counts: &Counts, expected: &[(&str, usize)], what: &str) {
    let got: Vec<(&str, usize)> = counts
        .aws
        .iter()
        .map(|(k, n)| (*k, *n))
        .filter(|(_, n)| *n > 0)
        .collect();
    let mut want: Vec<(&str, usize)> = expected.iter().copied().filter(|(_, n)| *n > 0).collect();
    want.sort();
    assert_eq!(got, want, "{what}: {counts}");
    assert_eq!(
        counts.aws_total,
        want.iter().map(|(_, n)| n).sum::<usize>(),
        "{what}: no other AWS call: {counts}"
    );
}

/// One pod, 40 secrets + 25 parameters, 5 unchanged remounts.
async fn one_pod_remounts(flags: &[&str], pinned: bool) -> Vec<Counts> {
    let (first, remounts) = one_pod(binary(), flags, 40, 25, pinned, 5).await;
    assert_eq!(first.aws("AssumeRoleWithWebIdentity"), 1, "{first}");
    for (i, r) in remounts.iter().enumerate() {
        println!("one pod {flags:?} pinned={pinned} remount {}: {r}", i + 1);
        assert!(r.kube_total() <= 1, "remount {}: {r}", i + 1);
    }
    remounts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pod_default_one_describe_per_secret_per_window() {
    let r = one_pod_remounts(&[], false).await;
    assert_aws(
        &r[0],
        &[("DescribeSecret", 40), ("GetParameters", 3)],
        "the first remount checks each secret once, the parameters ten a call",
    );
    for c in &r[1..] {
        assert_aws(c, &[], "inside the window");
    }
    for c in one_pod_remounts(&[EVERY_REMOUNT], false).await {
        assert_aws(
            &c,
            &[("DescribeSecret", 40), ("GetParameters", 3)],
            "every remount checked",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pod_batching_two_batches_per_window() {
    // The first mount's batch answers serve the whole window; the first
    // remount checks the parameters.
    let r = one_pod_remounts(&[BATCH], false).await;
    assert_aws(&r[0], &[("GetParameters", 3)], "the parameters checked");
    for c in &r[1..] {
        assert_aws(c, &[], "inside the window");
    }
    // Every remount checked: 40 misses are re-read in 2 batches, not
    // checked with 40 DescribeSecret.
    for c in one_pod_remounts(&[BATCH, EVERY_REMOUNT], false).await {
        assert_aws(
            &c,
            &[("BatchGetSecretValue", 2), ("GetParameters", 3)],
            "every remount checked",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pod_everything_pinned_costs_no_aws_call() {
    for flags in [&[EVERY_REMOUNT][..], &[BATCH, EVERY_REMOUNT]] {
        for c in one_pod_remounts(flags, true).await {
            assert_aws(&c, &[], "pinned");
        }
    }
}

/// 20 pods, 10 secrets + 5 parameters, 5 rounds, under `roles` roles; a
/// `change` before a round, which must reach every pod in that round.
fn scenario(roles: usize, change: Option<(Change, usize)>) -> Scenario {
    Scenario::twenty_pods(roles, change)
}

/// Runs `scenario` and checks each round's calls against `per_round` (the
/// last entry repeats), then returns the rounds' total.
async fn twenty_pods(
    flags: &[&str],
    spacing: Spacing,
    scenario: &Scenario,
    per_round: &[&[(&str, usize)]],
) -> Counts {
    let run = many_pods(binary(), flags, spacing, scenario).await;
    assert_eq!(
        run.first.aws("AssumeRoleWithWebIdentity"),
        20,
        "one per pod token"
    );
    for (i, round) in run.rounds.iter().enumerate() {
        println!("20 pods {flags:?} {spacing:?} round {}: {round}", i + 1);
        let expected = per_round[i.min(per_round.len() - 1)];
        assert_aws(round, expected, &format!("round {}", i + 1));
        assert!(
            round.kube.get("serviceaccounts").copied().unwrap_or(0) <= scenario.roles,
            "at most one GET per ServiceAccount per round: {round}"
        );
        assert_eq!(
            round.kube_total(),
            round.kube.get("serviceaccounts").copied().unwrap_or(0)
        );
    }
    if scenario.change.is_some() {
        assert_eq!(run.updated, 20, "every pod has the new value");
    }
    let all = total(&run.rounds);
    println!("20 pods {flags:?} {spacing:?} 5 rounds: {all}");
    assert!(all.aws_total <= 80, "{all}");
    all
}

const SECRET_BEFORE_ROUND_4: Option<(Change, usize)> = Some((Change::Secret, 4));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pods_default_inside_one_window() {
    // The first round's checks serve the whole window, for both roles.
    let first: &[(&str, usize)] = &[("DescribeSecret", 10), ("GetParameters", 1)];
    let rest: &[(&str, usize)] = &[];
    let all = twenty_pods(
        &[],
        Spacing::InsideWindow,
        &scenario(2, None),
        &[first, rest],
    )
    .await;
    assert_eq!(all.aws_total, 11);
}

/// Issue 22's scenario: one role, rounds beyond the window, a secret
/// changed before round 4. Each round checks each secret and the five
/// parameters once for the node; the changed secret is read by each pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pods_default_beyond_the_window_and_a_change_reaches_every_pod() {
    let each: &[(&str, usize)] = &[("DescribeSecret", 10), ("GetParameters", 1)];
    let changed: &[(&str, usize)] = &[
        ("DescribeSecret", 10),
        ("GetSecretValue", 20),
        ("GetParameters", 1),
    ];
    let all = twenty_pods(
        &[],
        Spacing::BeyondWindow(WINDOW),
        &scenario(1, SECRET_BEFORE_ROUND_4),
        &[each, each, each, changed, each],
    )
    .await;
    assert_eq!(all.aws_total, 75);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pods_batching_inside_one_window() {
    // The first mounts' batch answers serve the window; the parameters
    // are checked once.
    let first: &[(&str, usize)] = &[("GetParameters", 1)];
    let rest: &[(&str, usize)] = &[];
    let all = twenty_pods(
        &[BATCH],
        Spacing::InsideWindow,
        &scenario(2, None),
        &[first, rest],
    )
    .await;
    assert_eq!(all.aws_total, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pods_batching_beyond_the_window_and_a_change_reaches_every_pod() {
    // The first pod re-reads its 10 misses in one batch, which is the
    // node's check of all 10; the parameters are checked once.
    let each: &[(&str, usize)] = &[("BatchGetSecretValue", 1), ("GetParameters", 1)];
    // The others learn the change from it and read that secret in a batch
    // of their own.
    let changed: &[(&str, usize)] = &[("BatchGetSecretValue", 20), ("GetParameters", 1)];
    let all = twenty_pods(
        &[BATCH],
        Spacing::BeyondWindow(WINDOW),
        &scenario(1, SECRET_BEFORE_ROUND_4),
        &[each, each, each, changed, each],
    )
    .await;
    assert_eq!(all.aws_total, 29);
}

/// A parameter changed between rounds reaches every pod of both roles at
/// the first round after the window: one node check sees the change, and
/// each pod reads the parameter with its own credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pods_a_changed_parameter_reaches_every_pod() {
    let each: &[(&str, usize)] = &[("DescribeSecret", 10), ("GetParameters", 1)];
    let changed: &[(&str, usize)] = &[("DescribeSecret", 10), ("GetParameters", 21)];
    let all = twenty_pods(
        &[],
        Spacing::BeyondWindow(WINDOW),
        &scenario(2, Some((Change::Parameter, 2))),
        &[each, changed, each],
    )
    .await;
    assert_eq!(all.aws_total, 11 * 4 + 31);
}

/// A labelled parameter is checked as `ARN:label`, without decryption;
/// moving the label reaches the pod, a pinned version is never checked.
/// Every remount checks (a zero window), so each step is one check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_labels_are_checked_by_arn_and_label_and_pins_never() {
    let node = Node::start(binary(), &[EVERY_REMOUNT]).await;
    let v1 = support::put_parameter(&node.ssm, "/lab/p", "p-v1", ParameterType::String).await;
    support::label_parameter(&node.ssm, "/lab/p", v1, &["prod"]).await;
    let objects = format!(
        "- {{objectName: /lab/p, objectType: ssmparameter, objectVersionLabel: prod, objectAlias: labelled}}\n\
         - {{objectName: /lab/p, objectType: ssmparameter, objectVersion: \"{v1}\", objectAlias: pinned}}\n"
    );
    let pods = node.pods(1);
    let pod = &pods[0];
    node.mount(pod, &objects).await;
    let remount = |what: &'static str, expected: &'static [(&'static str, usize)]| {
        let objects = objects.clone();
        let node = &node;
        async move {
            let before = node.counts();
            node.mount(pod, &objects).await;
            assert_aws(&node.counts().since(&before), expected, what);
        }
    };
    remount("unchanged: one check", &[("GetParameters", 1)]).await;
    let check = node
        .net
        .proxy
        .bodies("GetParameters")
        .pop()
        .expect("a check");
    let check: serde_json::Value = serde_json::from_str(&check).expect("JSON body");
    assert_eq!(
        check,
        serde_json::json!({
            "Names": ["arn:aws:ssm:us-east-1:123456789012:parameter/lab/p:prod"],
            "WithDecryption": false
        })
    );
    let v2 = support::put_parameter(&node.ssm, "/lab/p", "p-v2", ParameterType::String).await;
    remount("a new version, the label unmoved", &[("GetParameters", 1)]).await;
    assert_eq!(read(pod, "labelled"), "p-v1");
    support::label_parameter(&node.ssm, "/lab/p", v2, &["prod"]).await;
    remount("the label moved: check, then read", &[("GetParameters", 2)]).await;
    assert_eq!(read(pod, "labelled"), "p-v2");
    assert_eq!(read(pod, "pinned"), "p-v1");
}

/// Two roles; role b loses `ssm:GetParameters` (the proxy denies its pod's
/// credentials), then the parameter changes. Pod a's check sees the change
/// and pod a reads it; pod b's remount learns the change from that check,
/// but its own read is denied: the mount fails, naming the parameter, and
/// pod b's files stay as they were. No call of pod b's is answered with
/// the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_denied_a_parameter_never_gets_it_from_anothers_check() {
    let node = Node::start(binary(), &[]).await;
    let objects = node.seed("iso", 0, 1, false).await;
    let pods = node.pods(2);
    let (a, b) = (&pods[0], &pods[1]);
    node.mount(a, &objects).await;
    node.mount(b, &objects).await;
    let key_b = node
        .net
        .proxy
        .requests("GetParameters")
        .last()
        .and_then(|r| r.access_key_id.clone())
        .expect("pod b's read was signed");
    let key_a = node.net.proxy.requests("GetParameters")[0]
        .access_key_id
        .clone();
    assert_ne!(
        key_a.as_deref(),
        Some(key_b.as_str()),
        "two roles, two keys"
    );
    let denied = node.net.proxy.add_rule(
        Rule::new()
            .operation("GetParameters")
            .access_key(&key_b)
            .respond_with(400, "AccessDeniedException", "not authorized"),
    );
    let data_b = std::fs::read_link(b.target.join("..data")).expect("pod b's ..data");
    support::put_parameter(&node.ssm, "/iso/p00", "p0-v2", ParameterType::String).await;

    // Pod a: one check (sees version 2), one read of its own.
    let before = node.counts();
    node.mount(a, &objects).await;
    assert_aws(
        &node.counts().since(&before),
        &[("GetParameters", 2)],
        "pod a",
    );
    assert_eq!(read(a, "_iso_p00"), "p0-v2");

    // Pod b, twice: the node's answer says changed, so no check; its own
    // read is denied every time.
    for attempt in 1..=2 {
        let before = node.counts();
        let status = node
            .ascp
            .mount(request(b, &objects))
            .await
            .expect_err("pod b may not read the parameter");
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(
            status.message().contains("/iso/p00") && status.message().contains("AccessDenied"),
            "{}",
            status.message()
        );
        assert!(!status.message().contains("p0-v"), "{}", status.message());
        assert_aws(
            &node.counts().since(&before),
            &[("GetParameters", 1)],
            &format!("pod b, attempt {attempt}"),
        );
        assert_eq!(read(b, "_iso_p00"), "p0-v1", "pod b keeps its own file");
        assert_eq!(
            std::fs::read_link(b.target.join("..data")).expect("pod b's ..data"),
            data_b,
            "nothing written for pod b"
        );
    }
    assert_eq!(node.net.proxy.fired(denied), 2);
}

/// The proxy denies DescribeSecret to everyone (moto enforces no IAM
/// policy): remounts still succeed with each pod's own read, a role's
/// denial is remembered for that role only, and a change still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_describe_never_fails_a_remount() {
    let node = Node::start(binary(), &[]).await;
    let objects = node.seed("deny", 1, 0, false).await;
    let pods = node.pods(2);
    node.round(&pods, &objects).await;
    node.net
        .proxy
        .add_rule(Rule::new().operation("DescribeSecret").respond_with(
            400,
            "AccessDeniedException",
            "not authorized",
        ));
    let a = &pods[..1];
    let b = &pods[1..];
    let checked = [("DescribeSecret", 1), ("GetSecretValue", 1)];
    let skipped = [("GetSecretValue", 1)];
    assert_aws(&node.round(a, &objects).await, &checked, "role a denied");
    assert_aws(&node.round(a, &objects).await, &skipped, "role a skips");
    assert_aws(&node.round(b, &objects).await, &checked, "role b checks");
    assert_aws(&node.round(b, &objects).await, &skipped, "role b skips");
    support::put_secret_string(&node.sm, "deny/s00", "s0-v2", &[]).await;
    assert_aws(
        &node.round(&pods, &objects).await,
        &[("GetSecretValue", 2)],
        "changed",
    );
    for pod in &pods {
        assert_eq!(read(pod, "deny_s00"), "s0-v2");
    }
}

/// Two accounts hold a secret of the same name with the same VersionId
/// (a VersionId is whatever ClientRequestToken its writer chose). One pod
/// mounts ours by name, the other theirs by ARN; after theirs changes, our
/// check (our ARN, still current) does not decide for their pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_of_one_accounts_secret_never_decides_for_anothers() {
    const OTHER: &str = "444455556666";
    const TOKEN: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    let node = Node::start(binary(), &[]).await;
    let owner = account_credentials(&node.net.moto.endpoint(), OTHER).await;
    let owner_sm = SecretsClient::new(
        &sdk_config_with_credentials(&node.net.moto.endpoint(), "us-east-1", owner.clone()).await,
    );
    node.net.proxy.map_account(OTHER, owner.access_key_id());
    let create = |client: &SecretsClient, value: &str| {
        client
            .create_secret()
            .name("same/db")
            .secret_string(value)
            .client_request_token(TOKEN)
            .send()
    };
    let ours = create(&node.sm, "ours").await.expect("our secret");
    let theirs = create(&owner_sm, "theirs-v1").await.expect("their secret");
    assert_eq!(ours.version_id.as_deref(), Some(TOKEN));
    assert_eq!(theirs.version_id.as_deref(), Some(TOKEN));
    let their_arn = theirs.arn.expect("an ARN");
    assert!(their_arn.contains(OTHER));

    let pods = node.pods(2);
    let by_name = "- {objectName: same/db, objectType: secretsmanager, objectAlias: db}\n";
    let by_arn = format!("- {{objectName: \"{their_arn}\", objectAlias: db}}\n");
    node.mount(&pods[0], by_name).await;
    node.mount(&pods[1], &by_arn).await;
    assert_eq!(read(&pods[1], "db"), "theirs-v1");

    support::put_secret_string(&owner_sm, "same/db", "theirs-v2", &[]).await;
    let before = node.counts();
    node.mount(&pods[0], by_name).await;
    node.mount(&pods[1], &by_arn).await;
    let after = node.counts();
    assert_eq!(read(&pods[0], "db"), "ours");
    assert_eq!(read(&pods[1], "db"), "theirs-v2");
    assert_eq!(
        after.aws("DescribeSecret") - before.aws("DescribeSecret"),
        2,
        "one check per ARN"
    );
    assert_eq!(
        after.aws("GetSecretValue") - before.aws("GetSecretValue"),
        1
    );
}
