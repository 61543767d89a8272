//! Rotation on driver v1.6 (remounts without `current_object_version`),
//! through the real binary against moto: exact AWS call counts per remount
//! and per round, Kubernetes GETs, STS, a changed secret reaching every pod,
//! a denied DescribeSecret, and another account's secret of the same name.
//! The scenarios live in `tests/support/rotation.rs`, shared with
//! `examples/rotation_calls.rs`, which prints the same counts.
//!
//! Spaced rounds wait out a 5 s `--rotation-check-window` after the previous
//! round ended, so every answer of that round has expired; a round itself
//! (20 mounts that each make one GetParameters) is far shorter than 5 s.

mod support;

use std::path::Path;
use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsClient;
use support::rotation::{Counts, Node, Spacing, many_pods, one_pod, read, total};
use support::{Rule, account_credentials, sdk_config_with_credentials};

const BINARY: &str = env!("CARGO_BIN_EXE_ascp");
const BATCH: &str = "--batch-get-secret-value=true";
const EVERY_REMOUNT: &str = "--rotation-check-window=0s";
const WINDOW: Duration = Duration::from_secs(5);

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
        "the first remount checks each secret once",
    );
    for c in &r[1..] {
        assert_aws(c, &[("GetParameters", 3)], "inside the window");
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
    // The first mount's batch answers serve the whole window.
    for c in one_pod_remounts(&[BATCH], false).await {
        assert_aws(&c, &[("GetParameters", 3)], "inside the window");
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

/// 20 pods under two roles, 10 secrets + 5 parameters, 5 rounds.
/// Spaced runs also check the round after one secret changed against
/// `after_change`.
async fn twenty_pods(
    flags: &[&str],
    spacing: Spacing,
    per_round: &[&[(&str, usize)]],
    after_change: Option<&[(&str, usize)]>,
) -> Counts {
    let run = many_pods(binary(), flags, spacing, 20, 10, 5, 5).await;
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
            round.kube.get("serviceaccounts").copied().unwrap_or(0) <= 2,
            "at most one GET per ServiceAccount per round: {round}"
        );
        assert_eq!(
            round.kube_total(),
            round.kube.get("serviceaccounts").copied().unwrap_or(0)
        );
    }
    let all = total(&run.rounds);
    println!("20 pods {flags:?} {spacing:?} 5 rounds: {all}");
    assert!(all.aws_total <= 150, "{all}");
    assert_eq!(run.changed.is_some(), after_change.is_some());
    if let (Some(changed), Some(expected)) = (&run.changed, after_change) {
        println!("20 pods {flags:?} {spacing:?} round after a change: {changed}");
        assert_aws(changed, expected, "the round after a change");
        assert_eq!(run.updated, 20, "every pod has the new value");
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pods_default_inside_one_window() {
    let first: &[(&str, usize)] = &[("DescribeSecret", 10), ("GetParameters", 20)];
    let rest: &[(&str, usize)] = &[("GetParameters", 20)];
    let all = twenty_pods(&[], Spacing::InsideWindow, &[first, rest], None).await;
    assert_eq!(all.aws_total, 110);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pods_default_beyond_the_window_and_a_change_reaches_every_pod() {
    let each: &[(&str, usize)] = &[("DescribeSecret", 10), ("GetParameters", 20)];
    // The changed secret: each pod reads it with its own call.
    let changed: &[(&str, usize)] = &[
        ("DescribeSecret", 10),
        ("GetSecretValue", 20),
        ("GetParameters", 20),
    ];
    let all = twenty_pods(&[], Spacing::BeyondWindow(WINDOW), &[each], Some(changed)).await;
    assert_eq!(all.aws_total, 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pods_batching_inside_one_window() {
    let each: &[(&str, usize)] = &[("GetParameters", 20)];
    let all = twenty_pods(&[BATCH], Spacing::InsideWindow, &[each], None).await;
    assert_eq!(all.aws_total, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pods_batching_beyond_the_window_and_a_change_reaches_every_pod() {
    let each: &[(&str, usize)] = &[("BatchGetSecretValue", 1), ("GetParameters", 20)];
    // The first pod re-reads its 10 misses in one batch; the others learn
    // the change from it and read that secret in a batch of their own.
    let changed: &[(&str, usize)] = &[("BatchGetSecretValue", 20), ("GetParameters", 20)];
    let all = twenty_pods(
        &[BATCH],
        Spacing::BeyondWindow(WINDOW),
        &[each],
        Some(changed),
    )
    .await;
    assert_eq!(all.aws_total, 105);
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
