//! GetSecretValue, one object at a time as ASCP reads it: the rotation
//! check first when the object is mounted, then the read unless still
//! current.

use aws_sdk_secretsmanager::primitives::Blob;
use tracing::debug;

use super::{ItemResult, SecretsManagerStore};
use crate::aws::classify::sdk_error;
use crate::aws::limits::Gate;
use crate::aws::throttle::Service;
use crate::secret::SecretBytes;
use crate::store::{FailureKind, FetchItem, Fetched, StoreError};

impl SecretsManagerStore {
    /// Reads one object as ASCP does: the rotation check first when the
    /// object is mounted, then GetSecretValue unless still current.
    pub(super) async fn fetch_one(&self, gate: &Gate, item: &FetchItem) -> ItemResult {
        if let Some(current) = &item.mounted_version
            && self.still_current(gate, item, current).await?
        {
            debug!(object = %item.name, region = %self.region, version = %current, "unchanged");
            return Ok(Fetched::Unchanged {
                version: current.clone(),
            });
        }
        let sent = gate
            .call(Service::SecretsManager, || {
                self.client
                    .get_secret_value()
                    .secret_id(&item.name)
                    .set_version_id(item.version.clone())
                    .set_version_stage(item.label.clone())
                    .send()
            })
            .await;
        let result = match sent {
            Ok(out) => value(
                "GetSecretValue",
                out.secret_string,
                out.secret_binary,
                out.version_id,
                out.arn,
            ),
            Err(e) => Err(sdk_error("GetSecretValue", &e)),
        };
        crate::aws::log_result("secret", &self.region, &item.name, &result);
        result
    }
}

/// The value of an answer: SecretString's bytes, else SecretBinary's, as
/// they are, with the answer's VersionId and ARN.
pub(super) fn value(
    operation: &str,
    string: Option<String>,
    binary: Option<Blob>,
    version: Option<String>,
    arn: Option<String>,
) -> ItemResult {
    let contents = match (string, binary) {
        (Some(s), _) => SecretBytes::from(s),
        (None, Some(b)) => SecretBytes::new(b.into_inner()),
        (None, None) => {
            return Err(StoreError::new(
                FailureKind::Internal,
                None,
                format!("{operation}: the answer has neither SecretString nor SecretBinary"),
            ));
        }
    };
    let Some(version) = version else {
        return Err(StoreError::new(
            FailureKind::Internal,
            None,
            format!("{operation}: the answer has no VersionId"),
        ));
    };
    Ok(Fetched::Value {
        contents,
        version,
        arn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_prefer_the_string_and_need_a_version() {
        let v = value(
            "Op",
            Some("s".into()),
            Some(Blob::new(vec![1])),
            Some("v1".into()),
            None,
        );
        assert_eq!(
            v.ok(),
            Some(Fetched::Value {
                contents: SecretBytes::from("s".to_owned()),
                version: "v1".into(),
                arn: None
            })
        );
        let b = value(
            "Op",
            None,
            Some(Blob::new(vec![0, 255])),
            Some("v2".into()),
            None,
        );
        assert_eq!(
            b.ok(),
            Some(Fetched::Value {
                contents: SecretBytes::new(vec![0, 255]),
                version: "v2".into(),
                arn: None
            })
        );
        assert!(value("Op", None, None, Some("v".into()), None).is_err());
        assert!(value("Op", Some("s".into()), None, None, None).is_err());
    }
}
