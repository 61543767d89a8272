//! Turns AWS failures into [`StoreError`]s: a [`FailureKind`] for the gRPC
//! code and the failover rule, the service's error code, and a message that
//! helps an operator act.
//!
//! The kind decides whether failover may hide a failure
//! ([`FailureKind::is_client_error`]): anything the caller must fix (a missing
//! secret, a denied permission, a bad request) is a client error and fails the
//! mount even when another region answers; service trouble (5xx, timeouts,
//! broken connections) is `Unavailable` and throttling that outlived the
//! retries `Throttled`, which failover may cover.
//!
//! This module never sees a value: it reads error codes, HTTP statuses and the
//! service's error messages, none of which carry secret contents. It never
//! formats a response body either, because an unparsable answer may be an
//! answer that holds a value.

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::store::{FailureKind, StoreError};

/// The longest service message kept in an error; AWS messages are short, and
/// a bound keeps a misbehaving endpoint from filling the driver's events.
const MAX_MESSAGE: usize = 512;

/// The kind of failure an AWS error `code` with HTTP `status` is.
///
/// The code decides when it is known, because the status does not always
/// agree with it (throttling comes as 400; moto answers some
/// `InvalidRequestException`s with 404). An unknown code falls back to the
/// status so that the failover rule (docs/fetching.md#failover) holds:
/// every 4xx is a client error (but
/// 408 and 429, the service's trouble), every 5xx is `Unavailable`. With
/// neither, the failure is `Internal`.
pub fn classify(code: Option<&str>, status: Option<u16>) -> FailureKind {
    if let Some(kind) = code.and_then(kind_of_code) {
        return kind;
    }
    match status {
        Some(401 | 403) => FailureKind::PermissionDenied,
        Some(404) => FailureKind::NotFound,
        // Request timeout and throttling are the service's trouble, not ours.
        Some(408) => FailureKind::Unavailable,
        Some(429) => FailureKind::Throttled,
        Some(400..=499) => FailureKind::InvalidArgument,
        Some(500..=599) => FailureKind::Unavailable,
        _ => FailureKind::Internal,
    }
}

/// The kind of a known error code, or `None` for codes we do not know.
fn kind_of_code(code: &str) -> Option<FailureKind> {
    let kind = match code {
        // The object or the asked-for version does not exist.
        "ResourceNotFoundException" | "ParameterNotFound" | "ParameterVersionNotFound" => {
            FailureKind::NotFound
        }
        // IAM said no, the credentials are not valid, or KMS would not
        // decrypt: all fixed by changing a policy, a key or the role.
        "AccessDeniedException"
        | "AccessDenied"
        | "UnauthorizedOperation"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "MissingAuthenticationToken"
        | "DecryptionFailure"
        | "KMSAccessDeniedException"
        | "KMSDisabledException"
        | "KMSInvalidStateException"
        | "KMSNotFoundException"
        | "KMSInvalidKeyUsageException"
        | "KMSOptInRequired"
        | "InvalidKeyId" => FailureKind::PermissionDenied,
        // The request itself is wrong.
        "ValidationException"
        | "InvalidParameterException"
        | "InvalidParameters"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "InvalidRequestException"
        | "InvalidNextTokenException"
        | "ParameterVersionLabelLimitExceeded"
        | "UnsupportedParameterType"
        | "SerializationException" => FailureKind::InvalidArgument,
        // Throttling that outlived the SDK's retries.
        "ThrottlingException"
        | "Throttling"
        | "ThrottledException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "ProvisionedThroughputExceededException"
        | "PriorRequestNotComplete"
        | "SlowDown" => FailureKind::Throttled,
        // Service faults.
        "RequestTimeout"
        | "RequestTimeoutException"
        | "InternalServiceError"
        | "InternalServerError"
        | "InternalFailure"
        | "InternalError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => FailureKind::Unavailable,
        _ => return None,
    };
    Some(kind)
}

/// The error for a failed call of `operation` (e.g. `GetSecretValue`).
///
/// Service errors keep their AWS code and message; transport failures say
/// what broke (timeout, connection) and are `Unavailable`.
pub fn sdk_error<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code();
            let detail = service.err().message().unwrap_or("no message");
            service_error(operation, code, Some(status), detail)
        }
        SdkError::TimeoutError(_) => StoreError::new(
            FailureKind::Unavailable,
            None,
            format!("{operation} timed out"),
        ),
        SdkError::DispatchFailure(failure) => {
            let what = if failure.is_timeout() {
                "timed out"
            } else if failure.is_io() {
                "failed to connect or lost the connection"
            } else {
                "could not be sent"
            };
            // The connector's chain names the endpoint and the I/O error;
            // it never holds a body.
            let cause = failure
                .as_connector_error()
                .map(|e| bounded(&DisplayErrorContext(e).to_string()))
                .unwrap_or_default();
            StoreError::new(
                FailureKind::Unavailable,
                None,
                format!("{operation} {what}: {cause}"),
            )
        }
        SdkError::ResponseError(response) => {
            // The answer came but could not be read. Its body is never
            // quoted: a successful answer holds the value. An unreadable 2xx
            // answer is a bug or an incompatible endpoint (`Internal`); an
            // error answer keeps the meaning of its status.
            let status = response.raw().status().as_u16();
            let kind = classify(None, Some(status));
            StoreError::new(
                kind,
                None,
                format!("{operation}: the answer (HTTP {status}) could not be read"),
            )
        }
        // Not sent: the node backs off from throttling (`super::throttle`),
        // which says why in a StoreError.
        SdkError::ConstructionFailure(_)
            if let Some(not_sent) = std::error::Error::source(err)
                .and_then(|source| source.downcast_ref::<StoreError>()) =>
        {
            StoreError::new(
                not_sent.kind,
                not_sent.code.as_deref(),
                format!("{operation} {}", not_sent.message),
            )
        }
        SdkError::ConstructionFailure(_) => StoreError::new(
            FailureKind::Internal,
            None,
            format!(
                "{operation}: the request could not be built: {}",
                bounded(&DisplayErrorContext(err).to_string())
            ),
        ),
        _ => StoreError::new(
            FailureKind::Internal,
            None,
            format!(
                "{operation} failed: {}",
                bounded(&DisplayErrorContext(err).to_string())
            ),
        ),
    }
}

/// The error for a service error `code` with `message`, from a whole call or
/// from one entry of a batch answer (BatchGetSecretValue's `Errors`).
pub fn service_error(
    operation: &str,
    code: Option<&str>,
    status: Option<u16>,
    message: &str,
) -> StoreError {
    StoreError::new(
        classify(code, status),
        code,
        format!("{operation} failed: {}", bounded(message)),
    )
}

/// `text` cut to [`MAX_MESSAGE`] bytes.
fn bounded(text: &str) -> String {
    crate::bounded_text::truncate(text, MAX_MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_decide_whatever_the_status() {
        let cases = [
            ("ResourceNotFoundException", 400, FailureKind::NotFound),
            ("ParameterNotFound", 400, FailureKind::NotFound),
            ("ParameterVersionNotFound", 400, FailureKind::NotFound),
            ("AccessDeniedException", 400, FailureKind::PermissionDenied),
            ("DecryptionFailure", 400, FailureKind::PermissionDenied),
            (
                "KMSAccessDeniedException",
                400,
                FailureKind::PermissionDenied,
            ),
            ("KMSDisabledException", 400, FailureKind::PermissionDenied),
            ("InvalidKeyId", 400, FailureKind::PermissionDenied),
            (
                "UnrecognizedClientException",
                400,
                FailureKind::PermissionDenied,
            ),
            ("ExpiredTokenException", 400, FailureKind::PermissionDenied),
            ("ValidationException", 400, FailureKind::InvalidArgument),
            (
                "InvalidParameterException",
                400,
                FailureKind::InvalidArgument,
            ),
            ("InvalidParameters", 400, FailureKind::InvalidArgument),
            // moto answers this one with 404.
            ("InvalidRequestException", 404, FailureKind::InvalidArgument),
            (
                "ParameterVersionLabelLimitExceeded",
                400,
                FailureKind::InvalidArgument,
            ),
            ("ThrottlingException", 400, FailureKind::Throttled),
            ("TooManyRequestsException", 429, FailureKind::Throttled),
            ("InternalServiceError", 500, FailureKind::Unavailable),
            ("InternalServerError", 500, FailureKind::Unavailable),
        ];
        for (code, status, kind) in cases {
            assert_eq!(classify(Some(code), Some(status)), kind, "{code} {status}");
        }
    }

    #[test]
    fn unknown_codes_follow_the_status() {
        assert_eq!(classify(Some("Weird"), Some(503)), FailureKind::Unavailable);
        assert_eq!(classify(Some("Weird"), Some(500)), FailureKind::Unavailable);
        assert_eq!(
            classify(Some("Weird"), Some(403)),
            FailureKind::PermissionDenied
        );
        assert_eq!(classify(Some("Weird"), Some(404)), FailureKind::NotFound);
        assert_eq!(classify(Some("Weird"), Some(429)), FailureKind::Throttled);
        assert_eq!(
            classify(Some("Weird"), Some(400)),
            FailureKind::InvalidArgument
        );
        assert_eq!(classify(None, Some(502)), FailureKind::Unavailable);
        assert_eq!(classify(Some("Weird"), None), FailureKind::Internal);
        assert_eq!(classify(None, None), FailureKind::Internal);
        assert_eq!(classify(None, Some(200)), FailureKind::Internal);
    }

    #[test]
    fn every_4xx_is_a_client_error_and_every_5xx_is_not() {
        for status in 400..500u16 {
            let kind = classify(None, Some(status));
            if status == 408 || status == 429 {
                assert!(!kind.is_client_error(), "{status}: {kind:?}");
            } else {
                assert!(kind.is_client_error(), "{status}: {kind:?}");
            }
        }
        for status in 500..600u16 {
            assert!(!classify(Some("Weird"), Some(status)).is_client_error());
        }
    }

    #[test]
    fn service_errors_keep_code_and_message() {
        let e = service_error(
            "GetSecretValue",
            Some("ResourceNotFoundException"),
            Some(400),
            "Secrets Manager can't find the specified secret.",
        );
        assert_eq!(e.kind, FailureKind::NotFound);
        assert_eq!(e.code.as_deref(), Some("ResourceNotFoundException"));
        let shown = e.to_string();
        assert!(
            shown.starts_with("ResourceNotFoundException: GetSecretValue failed: "),
            "{shown}"
        );
        assert!(shown.contains("can't find"), "{shown}");
    }

    #[test]
    fn calls_not_sent_for_throttling_say_so() {
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        let err =
            SdkError::<GetSecretValueError, HttpResponse>::construction_failure(StoreError::new(
                FailureKind::Throttled,
                None,
                "not sent: secretsmanager in us-east-1 is throttling this node, \
                 which backs off (at most 2.0 calls/s now)",
            ));
        let e = sdk_error("GetSecretValue", &err);
        assert_eq!(e.kind, FailureKind::Throttled);
        assert_eq!(
            e.to_string(),
            "GetSecretValue not sent: secretsmanager in us-east-1 is throttling this node, \
             which backs off (at most 2.0 calls/s now)"
        );
    }

    #[test]
    fn long_messages_are_bounded() {
        let long = "é".repeat(1000);
        let e = service_error(
            "GetParameters",
            Some("ValidationException"),
            Some(400),
            &long,
        );
        assert!(e.message.len() < MAX_MESSAGE + 64, "{}", e.message.len());
    }
}
