//! Creating test data through the AWS SDK. Every helper panics with the
//! service's error on failure: a seeding failure is a broken test setup.

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_ssm::types::ParameterType;
use aws_sdk_sts::config::Credentials;

type SecretsClient = aws_sdk_secretsmanager::Client;
type SsmClient = aws_sdk_ssm::Client;

/// What CreateSecret returned.
#[derive(Clone, Debug)]
pub struct CreatedSecret {
    pub arn: String,
    pub name: String,
    pub version_id: String,
}

/// Creates secret `name` whose AWSCURRENT version holds `value` as a string.
pub async fn create_secret_string(
    client: &SecretsClient,
    name: &str,
    value: &str,
) -> CreatedSecret {
    let out = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateSecret {name}: {}", DisplayErrorContext(&e)));
    CreatedSecret {
        arn: out.arn.expect("CreateSecret returns an ARN"),
        name: out.name.unwrap_or_else(|| name.to_owned()),
        version_id: out.version_id.expect("CreateSecret returns a version id"),
    }
}

/// Creates secret `name` whose AWSCURRENT version holds `value` as binary.
pub async fn create_secret_binary(
    client: &SecretsClient,
    name: &str,
    value: &[u8],
) -> CreatedSecret {
    let out = client
        .create_secret()
        .name(name)
        .secret_binary(Blob::new(value))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateSecret {name}: {}", DisplayErrorContext(&e)));
    CreatedSecret {
        arn: out.arn.expect("CreateSecret returns an ARN"),
        name: out.name.unwrap_or_else(|| name.to_owned()),
        version_id: out.version_id.expect("CreateSecret returns a version id"),
    }
}

/// Adds a string version to `secret_id` and returns its version id. With no
/// `stages` the new version becomes AWSCURRENT (and the old one AWSPREVIOUS);
/// otherwise it gets exactly `stages`.
pub async fn put_secret_string(
    client: &SecretsClient,
    secret_id: &str,
    value: &str,
    stages: &[&str],
) -> String {
    let mut request = client
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(value);
    for stage in stages {
        request = request.version_stages(*stage);
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutSecretValue {secret_id}: {}", DisplayErrorContext(&e)))
        .version_id
        .expect("PutSecretValue returns a version id")
}

/// Adds a binary version to `secret_id`; see [`put_secret_string`].
pub async fn put_secret_binary(
    client: &SecretsClient,
    secret_id: &str,
    value: &[u8],
    stages: &[&str],
) -> String {
    let mut request = client
        .put_secret_value()
        .secret_id(secret_id)
        .secret_binary(Blob::new(value));
    for stage in stages {
        request = request.version_stages(*stage);
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutSecretValue {secret_id}: {}", DisplayErrorContext(&e)))
        .version_id
        .expect("PutSecretValue returns a version id")
}

/// Moves staging label `stage` of `secret_id` to version `move_to` and/or
/// removes it from version `remove_from` (AWS requires `remove_from` when the
/// label is already on another version).
pub async fn update_secret_stage(
    client: &SecretsClient,
    secret_id: &str,
    stage: &str,
    move_to: Option<&str>,
    remove_from: Option<&str>,
) {
    client
        .update_secret_version_stage()
        .secret_id(secret_id)
        .version_stage(stage)
        .set_move_to_version_id(move_to.map(str::to_owned))
        .set_remove_from_version_id(remove_from.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "UpdateSecretVersionStage {secret_id} {stage}: {}",
                DisplayErrorContext(&e)
            )
        });
}

/// Creates or overwrites parameter `name` and returns its new version number.
/// SecureString values are encrypted with the account's default key.
pub async fn put_parameter(
    client: &SsmClient,
    name: &str,
    value: &str,
    kind: ParameterType,
) -> i64 {
    client
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutParameter {name}: {}", DisplayErrorContext(&e)))
        .version
}

/// Attaches `labels` to version `version` of parameter `name`.
pub async fn label_parameter(client: &SsmClient, name: &str, version: i64, labels: &[&str]) {
    let mut request = client
        .label_parameter_version()
        .name(name)
        .parameter_version(version);
    for label in labels {
        request = request.labels(*label);
    }
    let out = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("LabelParameterVersion {name}: {}", DisplayErrorContext(&e)));
    assert!(
        out.invalid_labels().is_empty(),
        "LabelParameterVersion {name}: invalid labels {:?}",
        out.invalid_labels()
    );
}

/// Assumes `role_arn` with STS AssumeRole using `config`'s endpoint and
/// credentials, and returns the temporary credentials.
///
/// moto creates no role and checks no trust policy; the credentials act in
/// the account the role ARN names.
pub async fn assume_role(config: &SdkConfig, role_arn: &str) -> Credentials {
    let out = aws_sdk_sts::Client::new(config)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("ascp-test")
        .send()
        .await
        .unwrap_or_else(|e| panic!("AssumeRole {role_arn}: {}", DisplayErrorContext(&e)));
    let c = out.credentials.expect("AssumeRole returns credentials");
    Credentials::new(
        c.access_key_id,
        c.secret_access_key,
        Some(c.session_token),
        None,
        "assume-role",
    )
}

/// Credentials that act in `account` on the moto server at `endpoint`, by
/// assuming `arn:aws:iam::<account>:role/ascp-test`. Their access key id is
/// what [`super::proxy::FaultProxy::map_account`] wants.
pub async fn account_credentials(endpoint: &str, account: &str) -> Credentials {
    let config = super::moto::sdk_config(endpoint, "us-east-1").await;
    assume_role(&config, &format!("arn:aws:iam::{account}:role/ascp-test")).await
}
